//! Fresh databases for tests: always a SQLite file in a temporary directory, plus a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` is set (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`). With `MULTIPROVIDER_REQUIRE_POSTGRES=1`
//! a missing or unreachable PostgreSQL fails the test instead of skipping it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// One fresh, empty (not migrated) database. Dropping it removes it.
pub struct TestDb {
    /// `"sqlite"` or `"postgres"`.
    pub kind: &'static str,
    pub url: String,
    guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Guard::Postgres { admin_url, name } = &self.guard else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a Tokio runtime: do the blocking work on a thread of its own.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(options) = PgConnectOptions::from_str(&admin_url) else {
                    return;
                };
                let connect = PgConnection::connect_with(&options);
                let Ok(Ok(mut conn)) = tokio::time::timeout(Duration::from_secs(5), connect).await
                else {
                    return;
                };
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            });
        });
        let _ = dropper.join();
    }
}

fn require_postgres() -> bool {
    std::env::var("MULTIPROVIDER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh SQLite database file (`sqlite://<tempdir>/test.db`, not yet created).
pub fn fresh_sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    TestDb {
        kind: "sqlite",
        url,
        guard: Guard::Sqlite(dir),
    }
}

/// `url` with its database name replaced by `name` (query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// A fresh PostgreSQL database created through `TEST_DATABASE_URL`; `None` when that is unset
/// (or unreachable), unless `MULTIPROVIDER_REQUIRE_POSTGRES=1`, which makes that a panic.
pub async fn fresh_postgres() -> Option<TestDb> {
    let admin_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(
                !require_postgres(),
                "MULTIPROVIDER_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            );
            return None;
        }
    };
    let options = match PgConnectOptions::from_str(&admin_url) {
        Ok(options) => options,
        Err(e) => panic!("TEST_DATABASE_URL is not a valid postgres URL: {e}"),
    };
    let connect =
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options));
    let mut conn = match connect.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            assert!(!require_postgres(), "TEST_DATABASE_URL is unreachable: {e}");
            eprintln!("TEST_DATABASE_URL is unreachable ({e}); skipping PostgreSQL");
            return None;
        }
        Err(_) => {
            assert!(
                !require_postgres(),
                "TEST_DATABASE_URL is unreachable: timed out"
            );
            eprintln!("TEST_DATABASE_URL is unreachable (timed out); skipping PostgreSQL");
            return None;
        }
    };
    let name = format!("mp_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    let url = with_database(&admin_url, &name);
    Some(TestDb {
        kind: "postgres",
        url,
        guard: Guard::Postgres { admin_url, name },
    })
}

/// Every backend to run a test against: a fresh SQLite always, a fresh PostgreSQL when
/// `TEST_DATABASE_URL` is set.
pub async fn test_databases() -> Vec<TestDb> {
    let mut dbs = vec![fresh_sqlite()];
    if let Some(pg) = fresh_postgres().await {
        dbs.push(pg);
    }
    dbs
}
