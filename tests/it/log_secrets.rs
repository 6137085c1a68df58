//! At the most verbose log level, no password, token or key appears in any log line.

use base64::Engine as _;

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, J, SECRET_KEY_HEX};
use crate::common::logs::with_captured_logs;
use crate::common::on_every_db;

const PASSWORD: &str = "pw-Sup3rSecret-4711";
/// An operator's password (docs/security.md), used right and wrong until its name locks.
const OPERATOR_PASSWORD: &str = "op-Passphrase-0815";

/// What a server is asked during the capture: a configuration with `PASSWORD` written, refused
/// (with a control character), read back and resolved, and the tokens sent where they are
/// wrong.
async fn exercise(app: &TestApp) -> String {
    let config = format!(
        r#"{{"outbound-voice": [{{"proxy": [{{"uri": "p.example.com", "username": "u", "password": "{PASSWORD}"}}]}}]}}"#
    );
    app.configure(Some(A1), &config).await;
    // An invalid one (control character in the password) must not be echoed either.
    let bad = config.replace(PASSWORD, &format!("{PASSWORD}\\u0007"));
    let r = app.write(Some(A1), Some(&bad), None).await;
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains(PASSWORD));
    let r = app
        .get(&format!("{J}/multi_provider?AccountSid={A1}"))
        .await;
    assert!(
        r.text().await.unwrap().contains(PASSWORD),
        "the API answers ConfigurationData as posted"
    );
    assert_eq!(app.voice_route(A1, "+1555").await.0, 200);
    // Failed attempts with the tokens in the wrong place.
    let _ = app
        .client
        .get(app.url(&format!("{J}/multi_provider?token={ADMIN_TOKEN}")))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await;
    let _ = app
        .client
        .get(app.url("/v1/accounts/x/sms-route"))
        .basic_auth(ADMIN_SID, Some(ENGINE_TOKEN))
        .send()
        .await;
    // An operator: a login, failed ones up to the lockout, a login refused while locked.
    let store = app.state().configs.store();
    let operator = multiprovider::operators::new_operator(
        "ops.anna",
        multiprovider::operators::Role::Viewer,
        OPERATOR_PASSWORD,
    );
    assert!(store.add_operator(&operator).await.unwrap());
    let read = app.url(&format!("{J}/multi_provider?AccountSid={A1}"));
    let as_anna = |password: &str| {
        app.client
            .get(&read)
            .basic_auth("ops.anna", Some(password))
            .send()
    };
    assert_eq!(as_anna(OPERATOR_PASSWORD).await.unwrap().status(), 200);
    for _ in 0..5 {
        let wrong = format!("{OPERATOR_PASSWORD}-wrong");
        assert_eq!(as_anna(&wrong).await.unwrap().status(), 401);
    }
    let locked = as_anna(OPERATOR_PASSWORD).await.unwrap();
    assert_eq!(locked.status(), 429);
    assert!(!locked.text().await.unwrap().contains(OPERATOR_PASSWORD));
    operator.password_hash
}

on_every_db!(blocking no_secret_reaches_the_log_even_at_trace_level, |db| {
    let mut hash = String::new();
    let log = with_captured_logs("trace", async {
        let app = spawn_app(&db.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
        hash = exercise(&app).await;
        app.stop().await;
    });
    assert!(log.contains("locked out"), "the lockout is logged:\n{log}");
    let anna = base64::engine::general_purpose::STANDARD
        .encode(format!("ops.anna:{OPERATOR_PASSWORD}"));
    // The hash's salt and digest (its parameters are public and the same for everyone).
    let (digest, salt) = hash.rsplit_once('$').expect("a PHC string");
    let salt = salt.rsplit('$').next().unwrap_or_default();
    assert!(digest.len() > 20 && salt.len() > 10, "{hash}");
    assert!(
        log.len() > 1000,
        "the capture saw the server's logs:\n{log}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_SID}:{ADMIN_TOKEN}"));
    for secret in [
        PASSWORD,
        ADMIN_TOKEN,
        ENGINE_TOKEN,
        SECRET_KEY_HEX,
        basic.as_str(),
        OPERATOR_PASSWORD,
        anna.as_str(),
        digest,
        salt,
    ] {
        if let Some(at) = log.find(secret) {
            let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("secret {secret:?} logged: {}", &log[line_start..line_end]);
        }
    }
});
