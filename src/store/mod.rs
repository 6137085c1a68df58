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

pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, Utc};

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
    /// The store's revision counter when the snapshot was read: every row in it is at or
    /// below this revision.
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

#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl Store {
    pub async fn connect(url: &str, secret: Option<SecretKey>) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PostgresStore::connect(url, secret).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::connect(url, secret).await?))
        } else {
            Err(StoreError::Unavailable(
                "DATABASE_URL must start with sqlite:// or postgres://".into(),
            ))
        }
    }
}
