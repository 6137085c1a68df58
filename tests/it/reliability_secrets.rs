//! Reliability battery, secrets at rest: with MULTIPROVIDER_SECRET_KEY set, no proxy password
//! (nor any other part of a configuration) is in the database in plaintext — every column of
//! every table is read raw, and on SQLite every byte of the database and WAL files — while the
//! admin API answers `ConfigurationData` exactly as posted and the lookups carry the password.
//! A restart with the same key reads everything back; without the key, or with another one,
//! the server refuses to start (it would otherwise serve routes without those accounts), and
//! lookups never answer from a cache that was not filled.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::Row;

use crate::common::app::{
    AppOptions, ServeError, TestApp, spawn_app, spawn_unloaded, start_and_stop,
};
use crate::common::constants::{A_NONE, A1, A2, ADMIN_TOKEN, ENGINE_TOKEN, J, SECRET_KEY_HEX};
use crate::common::db::{TestDb, fresh_sqlite};
use crate::common::on_every_db;

/// Passwords (and a host) that must never be found in the database in plaintext.
const PW_GLOBAL: &str = "glob4l-Secr3t-pw";
const PW_A1: &str = "a1-P@ss w0rd-Ünïcødé";
const PW_A2: &str = "a2-hunter2-hunter2";
const HOST: &str = "secret-edge.example.net";

fn key_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(hex::decode(SECRET_KEY_HEX).unwrap())
}

/// Documents whose exact bytes (spacing, escapes, member order) must come back.
fn configurations() -> [(Option<&'static str>, String); 3] {
    [
        (
            None,
            format!(
                "{{ \"outbound-voice\" : [ {{\"proxy\": [{{\"uri\": \"sip:{HOST}:5080\", \"username\": \"g\", \"password\": \"{PW_GLOBAL}\"}}]}} ] }}\n"
            ),
        ),
        (
            Some(A1),
            // The password as JSON escapes: stored (and answered) as written, resolved decoded.
            format!(
                "{{\"outbound-sms\":[{{\"destination_network_id\":\"0042\"}}],\n \"outbound-voice\": [{{\"proxy\": [{{\"password\": \"{}\", \"uri\": \"{HOST}\", \"username\": \"u1\"}}]}}]}}",
                PW_A1.replace('Ü', "\\u00dc").replace(' ', "\\u0020")
            ),
        ),
        (
            Some(A2),
            json!({"outbound-voice": [{"proxy": [
                {"uri": "first.example.com", "match": "nothing-matches-this"},
                {"uri": format!("sips:{HOST};transport=tls"), "username": "u2", "password": PW_A2}]}]})
            .to_string(),
        ),
    ]
}

/// What must not be readable: the passwords (A1's also as the JSON escapes it was posted
/// with) and a host that only the configurations name.
fn secrets() -> [&'static str; 5] {
    [PW_GLOBAL, PW_A1, "a1-P@ss", PW_A2, HOST]
}

/// Every value of every column of every table, as bytes, read without the application.
async fn raw_values(db: &TestDb) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if db.kind == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .unwrap();
        for table in tables {
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let select = columns
                .iter()
                .map(|c| format!("CAST(\"{c}\" AS BLOB)"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows = sqlx::query(&format!("SELECT {select} FROM \"{table}\""))
                .fetch_all(&pool)
                .await
                .unwrap();
            for row in rows {
                for (i, c) in columns.iter().enumerate() {
                    let v: Option<Vec<u8>> = row.try_get(i).unwrap();
                    out.push((format!("{table}.{c}"), v.unwrap_or_default()));
                }
            }
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for table in tables {
            // A row's text form holds every column.
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| (table.clone(), r.into_bytes())));
        }
        pool.close().await;
    }
    out
}

/// The raw bytes of the SQLite database and its WAL and shared-memory files.
fn sqlite_files(db: &TestDb) -> Vec<(String, Vec<u8>)> {
    let path = db.url.strip_prefix("sqlite://").unwrap();
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| {
            let p = format!("{path}{suffix}");
            std::fs::read(&p).ok().map(|b| (p, b))
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn configuration_of(app: &TestApp, account: Option<&str>) -> String {
    let path = match account {
        Some(a) => format!("{J}/multi_provider?AccountSid={a}"),
        None => format!("{J}/multi_provider"),
    };
    let r = app.get(&path).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["configuration"].as_str().unwrap().to_owned()
}

/// The route of `account`'s voice answer for `to`, which must be a 200.
async fn route(app: &TestApp, account: &str, to: &str) -> Value {
    let (status, v) = app.voice_route(account, to).await;
    assert_eq!(status, 200);
    v["route"].clone()
}

/// The API and the lookups answer what was posted, whatever is stored.
async fn check_transparent(app: &TestApp) {
    for (account, config) in configurations() {
        assert_eq!(configuration_of(app, account).await, config, "{account:?}");
    }
    let list: Value = app
        .get(&format!("{J}/multi_provider/Accounts.json"))
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = list["extension_configurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["configuration"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&configurations()[1].1, &configurations()[2].1]);
    assert_eq!(route(app, A1, "+15551234").await["password"], PW_A1);
    assert_eq!(route(app, A2, "+15551234").await["password"], PW_A2);
    assert_eq!(route(app, A_NONE, "+15551234").await["password"], PW_GLOBAL);
    assert_eq!(app.sms_route(A1).await.1["tlvs"][0]["value"], "42");
}

/// A server on `db` with a secret key (hex on SQLite, base64 on PostgreSQL: both spellings)
/// and the three `configurations()`, the last one also rewritten with `Enabled` only (which
/// must keep it sealed): the server and its key.
async fn sealed(db: &TestDb) -> (TestApp, String) {
    let key = if db.kind == "sqlite" {
        SECRET_KEY_HEX.to_owned()
    } else {
        key_base64()
    };
    let app = spawn_app(&db.url, AppOptions::with_secret_key(&key)).await;
    for (account, config) in configurations() {
        let answer = app.configure(account, &config).await;
        assert_eq!(answer["configuration"], json!(config));
    }
    for enabled in ["false", "true"] {
        let r = app
            .post_form(
                &format!("{J}/multi_provider"),
                &[("AccountSid", A2), ("Enabled", enabled)],
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    (app, key)
}

on_every_db!(
    configurations_are_sealed_at_rest_and_answered_as_posted,
    |db| {
        let (app, _) = sealed(&db).await;
        check_transparent(&app).await;
        // Nothing readable in the database.
        let values = raw_values(&db).await;
        let mut sealed = 0;
        for (column, value) in &values {
            for secret in secrets() {
                assert!(
                    !contains(value, secret),
                    "{}: {column} holds {secret:?} in plaintext",
                    db.kind
                );
            }
            // Revisions (their configuration and their changes) are sealed like the current
            // configurations (docs/api.md).
            let holds_configuration =
                column.ends_with(".configuration") || column.ends_with(".changes");
            if holds_configuration && !value.is_empty() {
                assert!(
                    value.starts_with(multiprovider::secret::ENCRYPTED_PREFIX.as_bytes()),
                    "{}: {column} is not sealed",
                    db.kind
                );
            }
            let table = column.split('.').next().unwrap_or_default();
            let current = table == "extensions" || table == "account_configurations";
            if current && contains(value, multiprovider::secret::ENCRYPTED_PREFIX) {
                sealed += 1;
            }
        }
        // The global configuration and the two accounts'.
        assert_eq!(sealed, 3, "{}: sealed values", db.kind);
        if db.kind == "sqlite" {
            for (file, bytes) in sqlite_files(&db) {
                for secret in secrets() {
                    assert!(!contains(&bytes, secret), "{file} holds {secret:?}");
                }
            }
        }
        eprintln!(
            "{}: {} raw values read, {sealed} sealed configurations, no plaintext secret",
            db.kind,
            values.len()
        );
        app.stop().await;
    }
);

on_every_db!(a_restart_with_the_same_key_reads_everything_back, |db| {
    let (app, _) = sealed(&db).await;
    let app = app.restart().await;
    check_transparent(&app).await;
    app.stop().await;
});

on_every_db!(a_start_without_the_key_or_with_another_is_refused, |db| {
    let (app, key) = sealed(&db).await;
    app.stop().await;
    // The server refuses to start, and says why without quoting anything it could not read.
    for (what, key) in [("no key", None), ("another key", Some("11".repeat(32)))] {
        let err = start_and_stop(&db.url, key.as_deref())
            .await
            .expect_err("an unreadable store must not be served");
        let message = err.to_string();
        assert!(
            matches!(err, ServeError::Unreadable(_)),
            "{what}: {message}"
        );
        assert!(
            message.contains("MULTIPROVIDER_SECRET_KEY"),
            "{what}: {message}"
        );
        for secret in secrets() {
            assert!(!message.contains(secret), "{what}: {message}");
        }
        eprintln!("{}, restart with {what}: {message}", db.kind);
    }
    // The store is untouched by the refused starts: with the key, all is there.
    let app = spawn_app(&db.url, AppOptions::with_secret_key(&key)).await;
    check_transparent(&app).await;
    app.stop().await;
});

// The binary: without the key it exits 1 with a message naming the variable.
on_every_db!(
    the_binary_refuses_an_encrypted_store_without_its_key,
    |db| {
        let app = spawn_app(&db.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
        app.configure(Some(A1), &configurations()[1].1).await;
        app.stop().await;
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATABASE_URL", &db.url)
                .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
                .env("MULTIPROVIDER_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("RUST_LOG", "debug")
                .output(),
        )
        .await
        .expect("exits by itself")
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stderr}\n{stdout}");
        assert!(stderr.contains("MULTIPROVIDER_SECRET_KEY"), "{stderr}");
        for secret in secrets() {
            assert!(!stderr.contains(secret) && !stdout.contains(secret));
        }
        assert!(!stdout.contains(ADMIN_TOKEN) && !stderr.contains(ADMIN_TOKEN));
        eprintln!("{}: {}", db.kind, stderr.trim());
    }
);

// Rows written before a key was configured are sealed when a server starts with the key
// (current configurations and revisions alike), and read as they were.
on_every_db!(
    rows_written_before_the_key_are_sealed_at_the_next_start,
    |app, db| {
        let config = configurations()[2].1.clone();
        app.configure(Some(A2), &config).await;
        app.configure(Some(A2), &configurations()[1].1).await;
        let app = app.restart().await;
        let plaintext =
            |values: &[(String, Vec<u8>)]| values.iter().any(|(_, v)| contains(v, PW_A2));
        assert!(
            plaintext(&raw_values(&db).await),
            "as written without a key"
        );
        app.stop().await;
        let options = AppOptions::with_secret_key(SECRET_KEY_HEX);
        let app = spawn_app(&db.url, options).await;
        assert!(!plaintext(&raw_values(&db).await), "sealed at start");
        assert_eq!(
            configuration_of(&app, Some(A2)).await,
            configurations()[1].1
        );
        let history = app
            .get(&format!(
                "{J}/multi_provider/History/1.json?AccountSid={A2}"
            ))
            .await;
        let history: Value = history.json().await.unwrap();
        assert_eq!(history["configuration"], json!(config), "read as written");
        app.stop().await;
    }
);

/// A server whose cache was never filled answers lookups 503 (not "no configuration"), as
/// `/health/ready` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_503_until_the_cache_is_loaded() {
    let db = fresh_sqlite();
    let (addr, server) = spawn_unloaded(&db.url).await;
    let client = reqwest::Client::new();
    for path in [
        format!("/v1/accounts/{A1}/sms-route"),
        format!("/v1/accounts/{A1}/voice-route?to=%2B1555"),
    ] {
        let r = client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], 503);
    }
    let r = client
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Bad input is still a 400 first.
    let r = client
        .get(format!("http://{addr}/v1/accounts/{A1}/voice-route?to="))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    server.abort();
}
