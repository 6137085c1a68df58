//! What an operator reads: log lines name the configuration as `account_sid=AC…` or
//! `account_sid=global` (not `Some(AC…)`), and `/health/ready` times the database check to
//! the microsecond rather than to float noise.

use crate::common::app::{AppOptions, spawn_app};
use crate::common::constants::{A1, SMS};
use crate::common::logs::with_captured_logs;
use crate::common::on_every_db;

on_every_db!(
    blocking logs_name_the_account_or_global_and_readiness_rounds_its_timing,
    |db| {
        let logs = with_captured_logs("info", async {
            let app = spawn_app(&db.url, AppOptions::default()).await;
            // The first account write also creates the global configuration ("{}"): the
            // global write below changes it, or it would store (and log) nothing.
            app.configure(Some(A1), "{}").await;
            app.configure(None, SMS).await;

            let body = app.get("/health/ready").await.text().await.unwrap();
            let timing = body
                .split("\"database_check_ms\":")
                .nth(1)
                .and_then(|rest| rest.split([',', '}']).next())
                .unwrap_or_else(|| panic!("no database_check_ms in {body}"));
            let decimals = timing.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 3, "database_check_ms is {timing}");
            app.stop().await;
        });

        let stored: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("configuration stored"))
            .collect();
        assert_eq!(stored.len(), 2, "{logs}");
        assert!(
            stored[0].contains(&format!("account_sid={A1}")),
            "{}",
            stored[0]
        );
        assert!(stored[1].contains("account_sid=global"), "{}", stored[1]);
        assert!(!logs.contains("Some("), "{logs}");
    }
);
