//! What an operator reads: log lines name the configuration as `account_sid=AC…` or
//! `account_sid=global` (not `Some(AC…)`), and `/health/ready` times the database check to
//! the microsecond rather than to float noise.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::app::{AppOptions, spawn_app};
use common::db::fresh_sqlite;

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

#[tokio::test]
async fn logs_name_the_account_or_global_and_readiness_rounds_its_timing() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init()
        .expect("the only subscriber of this test binary");

    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let account = "AC0123456789abcdef0123456789abcdef";
    for pairs in [
        vec![("AccountSid", account), ("ConfigurationData", "{}")],
        vec![("ConfigurationData", "{}")],
    ] {
        let mut form = vec![("ExtensionName", "multi_provider")];
        form.extend(pairs);
        let r = app
            .post_form("/2012-04-24/ExtensionsConfiguration.json", &form)
            .await;
        assert_eq!(r.status(), 200);
    }

    let body = app.get("/health/ready").await.text().await.unwrap();
    let timing = body
        .split("\"database_check_ms\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or_else(|| panic!("no database_check_ms in {body}"));
    let decimals = timing.split_once('.').map_or(0, |(_, d)| d.len());
    assert!(decimals <= 3, "database_check_ms is {timing}");
    app.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let stored: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("configuration stored"))
        .collect();
    assert_eq!(stored.len(), 2, "{logs}");
    assert!(
        stored[0].contains(&format!("account_sid={account}")),
        "{}",
        stored[0]
    );
    assert!(stored[1].contains("account_sid=global"), "{}", stored[1]);
    assert!(!logs.contains("Some("), "{logs}");
}
