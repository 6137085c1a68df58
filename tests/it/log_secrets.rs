//! At the most verbose log level, no password, token or key appears in any log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::common::app::{ADMIN_SID, ADMIN_TOKEN, AppOptions, ENGINE_TOKEN, spawn_app};
use crate::common::on_every_db;
use base64::Engine as _;

const PASSWORD: &str = "pw-Sup3rSecret-4711";
const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

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

on_every_db!(blocking no_secret_reaches_the_log_even_at_trace_level, |db| {
    let log = with_captured_logs(async {
        let options = AppOptions {
            engine_token: Some(ENGINE_TOKEN.into()),
            secret_key: Some(KEY_HEX.into()),
        };
        let app = spawn_app(&db.url, options).await;
        let config = format!(
            r#"{{"outbound-voice": [{{"proxy": [{{"uri": "p.example.com", "username": "u", "password": "{PASSWORD}"}}]}}]}}"#
        );
        let account = "AC0123456789abcdef0123456789abcdef";
        let r = app
            .post_form(
                "/2012-04-24/ExtensionsConfiguration.json",
                &[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", account),
                    ("ConfigurationData", &config),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        // An invalid one (control character in the password) must not be echoed either.
        let bad = config.replace(PASSWORD, &format!("{PASSWORD}\\u0007"));
        let r = app
            .post_form(
                "/2012-04-24/ExtensionsConfiguration.json",
                &[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", account),
                    ("ConfigurationData", &bad),
                ],
            )
            .await;
        assert_eq!(r.status(), 400);
        assert!(!r.text().await.unwrap().contains(PASSWORD));
        let r = app
            .get(&format!(
                "/2012-04-24/ExtensionsConfiguration.json/multi_provider?AccountSid={account}"
            ))
            .await;
        assert!(
            r.text().await.unwrap().contains(PASSWORD),
            "the API answers ConfigurationData as posted"
        );
        let r = app
            .client
            .get(app.url(&format!("/v1/accounts/{account}/voice-route?to=%2B1555")))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // Failed attempts with the tokens in the wrong place.
        let _ = app
            .client
            .get(app.url(&format!(
                "/2012-04-24/ExtensionsConfiguration.json/multi_provider?token={ADMIN_TOKEN}"
            )))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await;
        let _ = app
            .client
            .get(app.url("/v1/accounts/x/sms-route"))
            .basic_auth(ADMIN_SID, Some(ENGINE_TOKEN))
            .send()
            .await;
        app.stop().await;
    });
    assert!(
        log.len() > 1000,
        "the capture saw the server's logs:\n{log}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_SID}:{ADMIN_TOKEN}"));
    for secret in [PASSWORD, ADMIN_TOKEN, ENGINE_TOKEN, KEY_HEX, basic.as_str()] {
        if let Some(at) = log.find(secret) {
            let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            panic!("secret {secret:?} logged: {}", &log[line_start..line_end]);
        }
    }
});
