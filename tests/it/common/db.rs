//! Fresh databases for tests: a SQLite file in a temporary directory, or a fresh PostgreSQL
//! database created through `TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`). The PostgreSQL variants of the tests only
//! run when built with `cfg(postgres_tests)` (see `build.rs`); once they run, a missing or
//! unreachable PostgreSQL fails them: they never pass without having run.

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
    /// Removed (with the database file) on drop.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish()
    }
}

impl TestDb {
    /// The name of this PostgreSQL database.
    pub fn postgres_name(&self) -> &str {
        match &self.guard {
            Guard::Postgres { name, .. } => name,
            Guard::Sqlite { .. } => panic!("{} is not a PostgreSQL database", self.url),
        }
    }

    /// A pool on the server's administrative database (`TEST_DATABASE_URL`), to kill sessions
    /// or drop this database behind the application's back.
    pub async fn postgres_admin(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&postgres_admin_url())
            .await
            .expect("connect to TEST_DATABASE_URL")
    }

    /// Drops this PostgreSQL database now, under whoever is connected to it.
    pub async fn drop_now(&self) {
        let admin = self.postgres_admin().await;
        sqlx::query(&format!(
            "DROP DATABASE \"{}\" WITH (FORCE)",
            self.postgres_name()
        ))
        .execute(&admin)
        .await
        .expect("DROP DATABASE");
        admin.close().await;
    }
}

/// Evaluates `$body` with `$pool`, a plain sqlx pool on `$db` (a `&TestDb`: SQLite or
/// PostgreSQL), then closes the pool: raw SQL, read or written without the application.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {{
        let db: &$crate::common::db::TestDb = $db;
        if db.kind == "sqlite" {
            let $pool = sqlx::SqlitePool::connect(&db.url).await.expect("connect");
            let out = $body;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
            let out = $body;
            $pool.close().await;
            out
        }
    }};
}
pub(crate) use with_pool;

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

/// A fresh SQLite database file (`sqlite://<tempdir>/test.db`, not yet created).
pub fn fresh_sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    TestDb {
        kind: "sqlite",
        url,
        guard: Guard::Sqlite { _dir: dir },
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

/// `TEST_DATABASE_URL`: the PostgreSQL server the tests create their databases on. Panics when it
/// is not set, saying which variable is missing.
pub fn postgres_admin_url() -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("MULTIPROVIDER_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => panic!(
            "MULTIPROVIDER_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set \
             (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
        ),
        _ => panic!(
            "TEST_DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
             it was when this test binary was built"
        ),
    }
}

/// A fresh PostgreSQL database created through `TEST_DATABASE_URL`. Panics when the variable is
/// not set or the server cannot be reached: a PostgreSQL test that runs never skips itself.
pub async fn fresh_postgres() -> TestDb {
    fresh_postgres_on(postgres_admin_url()).await
}

/// A new empty database on the PostgreSQL server of `admin_url` (dropped with the guard).
pub async fn fresh_postgres_on(admin_url: String) -> TestDb {
    let options = PgConnectOptions::from_str(&admin_url)
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is not a valid postgres URL: {e}"));
    let connect =
        tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options));
    let mut conn = match connect.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("TEST_DATABASE_URL is unreachable: {e}"),
        Err(_) => panic!("TEST_DATABASE_URL is unreachable: no connection within 5 s"),
    };
    let name = format!("mp_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    let url = with_database(&admin_url, &name);
    TestDb {
        kind: "postgres",
        url,
        guard: Guard::Postgres { admin_url, name },
    }
}
