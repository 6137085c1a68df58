//! Persistence of the extension record and the per-account configurations.
//!
//! One `Store` type over two sqlx backends (SQLite embedded by default, PostgreSQL for
//! production). Every write is one transaction and carries a `revision` taken from one
//! monotonically increasing counter *while the row is locked*, so that the cache can apply
//! writes and notifications in any order and still end at the state the database holds.
//!
//! INTERFACE CONTRACT (relied on by `cache` and `http`; keep the signatures):
//! - `Store::connect(url, secret)`: opens the pool (SQLite: file created if missing, WAL,
//!   busy timeout ≥ 30 s so contention never surfaces as an error). Does not migrate.
//! - `Store::migrate()`: runs the versioned migrations of `migrations/{sqlite,postgres}`.
//! - `Store::upsert(&Write)`: one transaction: ensures the extension record exists (fresh
//!   `EX…` sid, `{}` configuration, enabled) then creates or updates the target
//!   configuration. `enabled: None` = true for a new one, unchanged otherwise;
//!   `configuration: None` = unchanged, and `StoreError::MissingConfiguration` when the target
//!   does not exist yet (nothing written). PostgreSQL: `NOTIFY multiprovider, '<scope>:<revision>'`
//!   in the same transaction (`scope` = account sid or `global`).
//! - `Store::delete(account)`: `Ok(Some(revision))` if a row was removed, `Ok(None)` if none
//!   existed. PostgreSQL: NOTIFY as above.
//! - `Store::listen()`: PostgreSQL only (`None` on SQLite): a background task LISTENing on
//!   channel `multiprovider` that reconnects forever; it sends `Change::Scope` per
//!   notification and `Change::Resync` after every (re)connect, since notifications may have
//!   been missed while disconnected.
//! - Errors: `Unavailable` for anything that means the database could not answer or take the
//!   write (→ HTTP 503). Messages never contain secrets.

mod diagnose;
mod postgres;
mod reads;
mod rows;
mod sqlite;

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::secret::SecretKey;
use crate::sid::AccountSid;

/// One stored configuration: the global one (`account_sid == None`) or an account's.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub extension_sid: String,
    pub extension_name: String,
    pub account_sid: Option<AccountSid>,
    /// `ConfigurationData` exactly as posted (decrypted when a secret key is set).
    pub configuration: String,
    pub enabled: bool,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub revision: i64,
}

impl std::fmt::Debug for ConfigRecord {
    // The configuration holds proxy passwords: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigRecord")
            .field("extension_sid", &self.extension_sid)
            .field("account_sid", &self.account_sid)
            .field("enabled", &self.enabled)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// A validated create-or-update of one configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Write {
    pub account_sid: Option<AccountSid>,
    pub enabled: Option<bool>,
    pub configuration: Option<String>,
}

/// The whole stored state, for filling the cache.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every row in the snapshot is at or below this revision (SQLite: the counter when the
    /// snapshot was read; PostgreSQL: the highest revision read). Informational: the cache
    /// decides what a reload may drop by its own apply sequence (`RoutingCache::mark`).
    pub revision: i64,
    /// The extension record (global configuration), if it was ever created.
    pub global: Option<ConfigRecord>,
    pub accounts: Vec<ConfigRecord>,
}

/// What the PostgreSQL listener reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One configuration changed (`None` = the global one) at this revision.
    Scope {
        account_sid: Option<AccountSid>,
        revision: i64,
    },
    /// The listener (re)connected: anything may have changed.
    Resync,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("ConfigurationData is required to create a configuration")]
    MissingConfiguration,
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
}

/// The database: SQLite or PostgreSQL, chosen by the URL.
#[derive(Clone)]
pub struct Store(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend_name())
    }
}

impl Store {
    pub async fn connect(url: &str, secret: Option<SecretKey>) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store(Backend::Postgres(
                postgres::PostgresStore::connect(url, secret).await?,
            )))
        } else if url.starts_with("sqlite:") {
            Ok(Store(Backend::Sqlite(
                sqlite::SqliteStore::connect(url, secret).await?,
            )))
        } else {
            Err(StoreError::Unavailable(
                "DATABASE_URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.0 {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Runs the embedded versioned migrations (idempotent; safe to run from several
    /// instances at once on PostgreSQL, which takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(s) => s.migrate().await,
            Backend::Postgres(s) => s.migrate().await,
        }
    }

    /// True when the database answers a trivial query within 2 seconds.
    pub async fn ping(&self) -> bool {
        match &self.0 {
            Backend::Sqlite(s) => s.db.ping().await,
            Backend::Postgres(s) => s.db.ping().await,
        }
    }

    /// Creates or updates one configuration (see the module documentation).
    pub async fn upsert(&self, write: &Write) -> Result<ConfigRecord, StoreError> {
        match &self.0 {
            Backend::Sqlite(s) => s.upsert(write).await,
            Backend::Postgres(s) => s.upsert(write).await,
        }
    }

    /// One account's configuration.
    pub async fn get(
        &self,
        account: impl Borrow<AccountSid>,
    ) -> Result<Option<ConfigRecord>, StoreError> {
        let account = account.borrow();
        match &self.0 {
            Backend::Sqlite(s) => s.db.get(account).await,
            Backend::Postgres(s) => s.db.get(account).await,
        }
    }

    /// The extension record as a configuration with `account_sid: None`; `None` if the
    /// extension was never created.
    pub async fn global(&self) -> Result<Option<ConfigRecord>, StoreError> {
        match &self.0 {
            Backend::Sqlite(s) => s.db.global().await,
            Backend::Postgres(s) => s.db.global().await,
        }
    }

    /// Removes one account's configuration: `Some(revision)` of the delete, or `None` if
    /// there was none.
    pub async fn delete(
        &self,
        account: impl Borrow<AccountSid>,
    ) -> Result<Option<i64>, StoreError> {
        let account = account.borrow();
        match &self.0 {
            Backend::Sqlite(s) => s.delete(account).await,
            Backend::Postgres(s) => s.delete(account).await,
        }
    }

    /// One page of account configurations ordered by `date_created` then `account_sid`,
    /// and the total number of account configurations (read consistently with the page).
    /// Negative `offset`/`limit` count as 0.
    pub async fn list_accounts(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ConfigRecord>, i64), StoreError> {
        let (offset, limit) = (offset.max(0), limit.max(0));
        match &self.0 {
            Backend::Sqlite(s) => s.db.list_accounts(offset, limit).await,
            Backend::Postgres(s) => s.db.list_accounts(offset, limit).await,
        }
    }

    /// Everything, read in one consistent snapshot.
    pub async fn load_all(&self) -> Result<Snapshot, StoreError> {
        match &self.0 {
            Backend::Sqlite(s) => s.load_all().await,
            Backend::Postgres(s) => s.load_all().await,
        }
    }

    /// PostgreSQL: starts the background LISTEN task (see the module documentation); it
    /// ends when the receiver is dropped. SQLite: `None` (a single instance owns the file).
    /// Must be called from within a Tokio runtime.
    pub fn listen(&self) -> Option<mpsc::Receiver<Change>> {
        match &self.0 {
            Backend::Sqlite(_) => None,
            Backend::Postgres(s) => Some(s.listen()),
        }
    }

    /// Closes the connection pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        match &self.0 {
            Backend::Sqlite(s) => s.db.close().await,
            Backend::Postgres(s) => s.db.close().await,
        }
    }
}

/// Channel of the PostgreSQL notifications; payload `<AC…|global>:<revision>`.
pub const NOTIFY_CHANNEL: &str = "multiprovider";

/// Name of the extension (the only one this service implements).
pub const EXTENSION_NAME: &str = "multi_provider";

/// The NOTIFY payload of a write.
pub(crate) fn notify_payload(account: Option<&AccountSid>, revision: i64) -> String {
    match account {
        Some(account) => format!("{account}:{revision}"),
        None => format!("global:{revision}"),
    }
}

/// Parses a NOTIFY payload; `None` if it is not one of ours.
pub fn parse_notify_payload(payload: &str) -> Option<Change> {
    let (scope, revision) = payload.rsplit_once(':')?;
    let revision: i64 = revision.parse().ok()?;
    let account_sid = if scope == "global" {
        None
    } else {
        Some(AccountSid::parse(scope)?)
    };
    Some(Change::Scope {
        account_sid,
        revision,
    })
}

/// Now, truncated to microseconds (what both backends store).
pub(crate) fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// A sqlx error as a `StoreError` whose message never contains the connection URL or
/// stored data.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        use sqlx::Error as E;
        let message = match &e {
            E::PoolTimedOut => "timed out waiting for a database connection".to_string(),
            E::PoolClosed => "the database connection pool is closed".to_string(),
            E::Io(io) => format!("I/O error talking to the database: {io}"),
            // rustls' messages name the failure (certificate, protocol), never a secret.
            E::Tls(tls) => format!("TLS error talking to the database: {tls}"),
            E::Protocol(_) => "database protocol error".to_string(),
            E::WorkerCrashed => "database worker crashed".to_string(),
            E::Configuration(_) => {
                "invalid database configuration (check DATABASE_URL)".to_string()
            }
            E::Database(db) => match db.code() {
                Some(code) => format!("database error {code}: {}", db.message()),
                None => format!("database error: {}", db.message()),
            },
            E::Migrate(m) => format!("migration failed: {m}"),
            E::BeginFailed => "could not begin a transaction".to_string(),
            E::RowNotFound
            | E::ColumnNotFound(_)
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnDecode { .. }
            | E::Decode(_)
            | E::TypeNotFound { .. } => {
                return StoreError::Corrupt(format!("unexpected stored data: {e}"));
            }
            _ => "database error".to_string(),
        };
        StoreError::Unavailable(message)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> StoreError {
        sqlx::Error::from(e).into()
    }
}
