//! Upgrade in place (docs/api.md): a database made by the first release (migration 0001 only)
//! with configurations in it is migrated — by `multiprovider migrate`, or by a server
//! starting on it — and its configurations become revision 1, action `create`, actor
//! `migration`: the history shows them, lookups answer revision 1, and writes go on from there.

use std::str::FromStr;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, A1, A2, A3, J, SMS_1, VOICE_EXAMPLE, sms};
use crate::common::db::TestDb;
use crate::common::on_every_db;
use crate::common::process::{outcome, run_cli};
use crate::common::wire::json_of;
use crate::revisions::assert_revisions_consistent;

const EXTENSION_SID: &str = "EX0a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// 2023-11-14 22:13:20 UTC, in unix microseconds.
const CREATED: i64 = 1_700_000_000_000_000;

/// The rows of the old schema: (account or `None`, configuration, enabled, old revision).
fn old_rows() -> Vec<(Option<&'static str>, String, bool, i64)> {
    vec![
        (None, SMS_1.to_owned(), true, 17),
        (Some(A1), VOICE_EXAMPLE.to_owned(), true, 18),
        (Some(A2), sms(2), false, 19),
        (Some(A3), sms(3), true, 20),
    ]
}

/// Applies migration 0001 alone (from a directory holding only that file, so that the
/// checksum the later migrator checks is the one it expects) and fills the old schema.
async fn first_release_database(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let first = format!(
        "{}/migrations/{}/0001_init.sql",
        env!("CARGO_MANIFEST_DIR"),
        db.kind
    );
    std::fs::copy(&first, dir.path().join("0001_init.sql")).unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let quote = |s: &str| s.replace('\'', "''");
    if db.kind == "sqlite" {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url)
            .unwrap()
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        migrator.run(&mut conn).await.unwrap();
        for (account, configuration, enabled, revision) in old_rows() {
            let (c, e) = (quote(&configuration), i32::from(enabled));
            let sql = match account {
                None => format!(
                    "INSERT INTO extensions VALUES (1, '{EXTENSION_SID}', 'multi_provider', \
                     '{c}', {e}, {CREATED}, {CREATED} + 5, {revision})"
                ),
                Some(a) => format!(
                    "INSERT INTO account_configurations VALUES ('{a}', '{c}', {e}, \
                     {CREATED} + {revision}, {CREATED} + {revision}, {revision})"
                ),
            };
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        sqlx::query("UPDATE revision_counter SET value = 20")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        migrator.run(&mut conn).await.unwrap();
        let date =
            |micros: i64| format!("TIMESTAMPTZ 'epoch' + {micros} * INTERVAL '1 microsecond'");
        for (account, configuration, enabled, revision) in old_rows() {
            let c = quote(&configuration);
            let sql = match account {
                None => format!(
                    "INSERT INTO extensions VALUES (1, '{EXTENSION_SID}', 'multi_provider', \
                     '{c}', {enabled}, {}, {}, {revision})",
                    date(CREATED),
                    date(CREATED + 5)
                ),
                Some(a) => format!(
                    "INSERT INTO account_configurations VALUES ('{a}', '{c}', {enabled}, {}, {}, \
                     {revision})",
                    date(CREATED + revision),
                    date(CREATED + revision)
                ),
            };
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        }
        sqlx::query("SELECT setval('config_revision', 20)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

/// What the upgraded database must show through `app`.
async fn upgraded(app: &TestApp, db: &TestDb) {
    for (account, configuration, enabled, _) in old_rows() {
        let query = account.map_or(String::new(), |a| format!("?AccountSid={a}"));
        let what = format!("{}: {}", db.kind, account.unwrap_or("global"));
        // The configuration: as it was, now at revision 1.
        let response = app.get(&format!("{J}/multi_provider{query}")).await;
        assert_eq!(
            response.headers().get("etag").map(|v| v.to_str().unwrap()),
            Some("\"1\""),
            "{what}"
        );
        let (status, current) = json_of(response).await;
        assert_eq!(status, 200, "{what}: {current}");
        assert_eq!(
            (
                &current["revision"],
                &current["configuration"],
                &current["enabled"],
                &current["sid"]
            ),
            (
                &json!(1),
                &json!(configuration),
                &json!(enabled),
                &json!(EXTENSION_SID)
            ),
            "{what}"
        );
        // Its history: one revision, created by the migration.
        let history = format!("{J}/multi_provider/History.json{query}");
        let (status, body) = json_of(app.get(&history).await).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["total"], 1, "{what}: {body}");
        let revision = &body["revisions"][0];
        assert_eq!(
            (
                &revision["revision"],
                &revision["action"],
                &revision["actor"],
                &revision["remote_addr"],
                &revision["enabled"],
                &revision["configuration"],
                &revision["changes"],
                &revision["rollback_of"],
            ),
            (
                &json!(1),
                &json!("create"),
                &json!("migration"),
                &Value::Null,
                &json!(enabled),
                &json!(configuration),
                &Value::Null,
                &Value::Null,
            ),
            "{what}"
        );
        assert!(
            revision["date_created"]
                .as_str()
                .is_some_and(|d| d.contains("Nov 2023")),
            "{what}: {revision}"
        );
    }
    // Lookups answer revision 1.
    let (status, v) = app.sms_route(A3).await;
    assert_eq!(
        (status, &v["source"], &v["revision"], &v["tlvs"][0]["value"]),
        (200, &json!("account"), &json!(1), &json!("3")),
        "{}: {v}",
        db.kind
    );
    let (status, v) = app.voice_route(A1, "sip:bob@uri1.com").await;
    assert_eq!(
        (status, &v["source"], &v["revision"]),
        (200, &json!("account"), &json!(1)),
        "{}: {v}",
        db.kind
    );
    let (_, v) = app.sms_route(A_NONE).await;
    assert_eq!(
        (&v["source"], &v["revision"]),
        (&json!("global"), &json!(1)),
        "{}: {v}",
        db.kind
    );
    let (_, v) = app.sms_route(A2).await;
    assert_eq!(v["source"], "none", "{}: A2 stays disabled", db.kind);
    // Writes go on from revision 1.
    assert_eq!(app.configure(Some(A3), &sms(30)).await["revision"], 2);
    let history = format!("{J}/multi_provider/History.json?AccountSid={A3}");
    let (_, body) = json_of(app.get(&history).await).await;
    assert_eq!(
        body["revisions"][0]["changes"],
        json!([{"op": "replace", "path": "/outbound-sms/0/destination_network_id", "value": "30"}])
    );
    let (_, v) = app.sms_route(A3).await;
    assert_eq!(v["revision"], 2);
    assert_revisions_consistent(db).await;
}

on_every_db!(migrate_upgrades_a_first_release_database_in_place, |db| {
    first_release_database(&db).await;
    let o = run_cli(&["migrate"], &[("DATABASE_URL", db.url.as_str())]).await;
    let (code, _, stderr) = outcome(&o);
    assert_eq!(code, 0, "{}: {stderr}", db.kind);
    assert!(stderr.contains("migrations applied"), "{stderr}");
    let (_, stdout, _) = outcome(&o);
    assert!(stdout.contains("database migrations applied"), "{stdout}");
    // Running it again changes nothing, and says so in one line, without PostgreSQL's
    // notices ("relation … already exists, skipping").
    let o = run_cli(&["migrate"], &[("DATABASE_URL", db.url.as_str())]).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("database schema is current"), "{stdout}");
    assert!(!stdout.contains("already exists"), "{stdout}");
    assert!(!stdout.contains("notice"), "{stdout}");
    let app = spawn_app(&db.url, AppOptions::default()).await;
    upgraded(&app, &db).await;
    app.stop().await;
});

on_every_db!(a_starting_server_upgrades_a_first_release_database, |db| {
    first_release_database(&db).await;
    let app = spawn_app(&db.url, AppOptions::default()).await;
    upgraded(&app, &db).await;
    app.stop().await;
});
