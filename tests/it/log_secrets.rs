//! At the most verbose log level, no password, token or key appears in any log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, J, SECRET_KEY_HEX};
use crate::common::on_every_db;

const PASSWORD: &str = "pw-Sup3rSecret-4711";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `test` on a runtime whose threads (and the calling one) log at trace level into a
/// buffer, and returns what was logged. The capture is scoped to these threads: a global
/// subscriber would also record (and slow down) every other test of this binary.
fn with_captured_logs(test: impl std::future::Future<Output = ()>) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            // Blocking-pool threads of this runtime: theirs for as long as they live.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("tokio runtime");
    runtime.block_on(test);
    drop(runtime);
    String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned()
}

/// What a server is asked during the capture: a configuration with `PASSWORD` written, refused
/// (with a control character), read back and resolved, and the tokens sent where they are
/// wrong.
async fn exercise(app: &TestApp) {
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
}

on_every_db!(blocking no_secret_reaches_the_log_even_at_trace_level, |db| {
    let log = with_captured_logs(async {
        let app = spawn_app(&db.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
        exercise(&app).await;
        app.stop().await;
    });
    assert!(
        log.len() > 1000,
        "the capture saw the server's logs:\n{log}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_SID}:{ADMIN_TOKEN}"));
    for secret in [PASSWORD, ADMIN_TOKEN, ENGINE_TOKEN, SECRET_KEY_HEX, basic.as_str()] {
        if let Some(at) = log.find(secret) {
            let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("secret {secret:?} logged: {}", &log[line_start..line_end]);
        }
    }
});
