//! Persistence of the extension record, the per-account configurations and their revisions.
//!
//! One `Store` type over two sqlx backends (SQLite embedded by default, PostgreSQL for
//! production), one code path for both (`reads`, `writes`); the backends differ only in how
//! they connect, lock, load everything at once and tell other instances (`sqlite`,
//! `postgres`).
//!
//! Every write of a configuration is one transaction that also stores an immutable revision
//! (docs/api.md), numbered per configuration from 1 without gaps. Writers of one configuration
//! are serialised (SQLite: its single write lock, taken by `BEGIN IMMEDIATE`; PostgreSQL: an
//! advisory lock per configuration), so revisions follow commit order: the cache can apply
//! writes and notifications in any order and still end at the state the database holds.
//!
//! - `Store::write` / `delete` / `rollback` / `import`: check the `Condition` (If-Match)
//!   atomically with the write; a write that changes nothing stores nothing and says so.
//! - `Store::listen()`: the changes other processes commit. PostgreSQL: LISTEN on channel
//!   `multiprovider` (payload `<AC…|global>:<revision>`, sent in the writing transaction;
//!   proxy health transitions too, `health …`, see `health`),
//!   reconnecting forever, `Change::Resync` after every (re)connect. SQLite: a poll of the
//!   change sequence every second (the CLI's import may write the file a server uses).
//! - Errors: `Unavailable` for anything that means the database could not answer or take the
//!   write (→ HTTP 503). Messages never contain secrets.

/// `impl<DB> Db<DB> { … }` with the bounds that the statements of both backends need,
/// written once here for `reads.rs` and `writes.rs`. A trait alias cannot carry them: Rust
/// implies a trait's supertraits but not its other where-clauses (`String: Encode<'_, DB>`,
/// `&mut DB::Connection: Executor<'_>`), so a `DB: Backend` bound would need them restated at
/// every impl. Invoked with parentheses, so that rustfmt formats the items inside.
macro_rules! impl_db {
    ($($item:tt)*) => {
        impl<DB> $crate::store::reads::Db<DB>
        where
            DB: ::sqlx::Database,
            for<'c> &'c mut DB::Connection: ::sqlx::Executor<'c, Database = DB>,
            for<'q> DB::Arguments<'q>: ::sqlx::IntoArguments<'q, DB>,
            for<'q> String: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> &'q str: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<String>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<&'q str>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> i64: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<i64>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> bool: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            (i64,): for<'r> ::sqlx::FromRow<'r, DB::Row>,
            (Option<i64>,): for<'r> ::sqlx::FromRow<'r, DB::Row>,
            (String, String): for<'r> ::sqlx::FromRow<'r, DB::Row>,
            (String, i64): for<'r> ::sqlx::FromRow<'r, DB::Row>,
            (String, i64, String): for<'r> ::sqlx::FromRow<'r, DB::Row>,
            $crate::store::rows::ExtensionRow: for<'r> ::sqlx::FromRow<'r, DB::Row>,
            $crate::store::rows::AccountRow: for<'r> ::sqlx::FromRow<'r, DB::Row>,
            $crate::store::rows::AccountWithExtensionRow: for<'r> ::sqlx::FromRow<'r, DB::Row>,
            $crate::store::rows::RevisionRow: for<'r> ::sqlx::FromRow<'r, DB::Row>,
        {
            $($item)*
        }
    };
}

mod diagnose;
mod health;
mod instances;
mod operators;
mod plan;
mod postgres;
mod reads;
mod rows;
mod sqlite;
mod writes;

use std::borrow::Borrow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::secret::SecretKey;
use crate::sid::AccountSid;

pub use health::HealthRow;
pub use instances::{InstanceRow, SILENT_SECONDS};
pub use operators::OperatorRow;
pub use writes::ImportLine;

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
    /// This configuration's revision (docs/api.md): 1, 2, 3… per configuration.
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
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Write {
    pub account_sid: Option<AccountSid>,
    /// `None`: true for a new configuration, unchanged otherwise.
    pub enabled: Option<bool>,
    /// `None`: unchanged (`StoreError::MissingConfiguration` when there is none yet).
    pub configuration: Option<String>,
    pub condition: Condition,
}

/// Who made a write: `actor` is the admin Sid that authenticated (`cli` for the command
/// line), `remote_addr` the client's IP address for API writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub actor: String,
    pub remote_addr: Option<String>,
}

impl Origin {
    /// A write made by the command line.
    pub fn cli() -> Origin {
        Origin {
            actor: "cli".into(),
            remote_addr: None,
        }
    }
}

/// The preconditions of a write (`If-Match`, `If-None-Match`), checked atomically with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub if_match: Option<Tags>,
    pub if_none_match: Option<Tags>,
}

/// The entity tags of a precondition: `*` or a list of revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tags {
    Any,
    Revisions(Vec<i64>),
}

impl Condition {
    /// Whether the preconditions hold for a configuration currently at `current` (`None`:
    /// it does not exist, never did or was deleted).
    pub fn holds(&self, current: Option<i64>) -> bool {
        let matches = |tags: &Tags| match (tags, current) {
            (_, None) => false,
            (Tags::Any, Some(_)) => true,
            (Tags::Revisions(list), Some(revision)) => list.contains(&revision),
        };
        self.if_match.as_ref().is_none_or(matches)
            && self
                .if_none_match
                .as_ref()
                .is_none_or(|tags| !matches(tags))
    }
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct Written {
    /// The configuration after the write (the current one when nothing changed).
    pub record: ConfigRecord,
    /// False when the write changed neither `ConfigurationData` nor `Enabled`: no revision.
    pub changed: bool,
}

/// What kind of write made a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Rollback,
    Import,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Rollback => "rollback",
            Action::Import => "import",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        [
            Action::Create,
            Action::Update,
            Action::Delete,
            Action::Rollback,
            Action::Import,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One immutable revision of a configuration (docs/api.md).
#[derive(Clone, PartialEq, Eq)]
pub struct Revision {
    pub account_sid: Option<AccountSid>,
    pub revision: i64,
    pub action: Action,
    pub date_created: DateTime<Utc>,
    pub actor: String,
    pub remote_addr: Option<String>,
    pub enabled: bool,
    /// The stored `ConfigurationData`; `None` for a delete.
    pub configuration: Option<String>,
    pub rollback_of: Option<i64>,
    /// RFC 6902 JSON Patch (JSON text) from the previous revision's `ConfigurationData`;
    /// `None` when there was none to compare with (create, delete, a deleted one restored).
    pub changes: Option<String>,
}

impl std::fmt::Debug for Revision {
    // The configuration and the changes hold proxy passwords: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revision")
            .field("account_sid", &self.account_sid)
            .field("revision", &self.revision)
            .field("action", &self.action)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A page of a configuration's history, newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    pub revisions: Vec<Revision>,
    /// Revisions kept (all of them, or the newest `MULTIPROVIDER_HISTORY_LIMIT`).
    pub total: i64,
}

/// Where a full load sends what it reads: batches of records (the global one, if it was ever
/// created, first), so that the reader never holds the whole stored state at once — at
/// 1,000,000 accounts its text alone is gigabytes. Bounded: the reader waits for the
/// compiler.
pub type LoadSink = mpsc::Sender<Vec<ConfigRecord>>;

/// The whole stored state at once (export, tests); the server loads with `load_into`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The extension record (global configuration), if it was ever created.
    pub global: Option<ConfigRecord>,
    pub accounts: Vec<ConfigRecord>,
}

/// Records per batch of a full load.
pub const LOAD_BATCH: usize = 512;

/// What the change follower reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One configuration changed (`None` = the global one) at this revision.
    Scope {
        account_sid: Option<AccountSid>,
        revision: i64,
    },
    /// Anything may have changed (a reconnect, a bulk import): reload everything.
    Resync,
    /// Another instance changed a proxy's health (docs/operations.md).
    Health(HealthRow),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("ConfigurationData is required to create a configuration")]
    MissingConfiguration,
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// `If-Match` / `If-None-Match` did not hold: nothing was written.
    #[error("precondition failed: the configuration is {}", describe_current(*.current))]
    PreconditionFailed { current: Option<i64> },
    /// The configuration has no revision at all (it never existed).
    #[error("this configuration never existed")]
    NeverExisted,
    #[error("revision {0} does not exist")]
    NoSuchRevision(i64),
    #[error("revision {0} is a delete: there is nothing to roll back to")]
    RevisionIsDelete(i64),
}

fn describe_current(current: Option<i64>) -> String {
    match current {
        Some(revision) => format!("at revision {revision}"),
        None => "absent".to_owned(),
    }
}

/// The database: SQLite or PostgreSQL, chosen by the URL.
#[derive(Clone)]
pub struct Store(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// Runs `$body` with `$db` bound to the backend's shared `reads::Db`.
macro_rules! on_db {
    ($store:expr, |$db:ident| $body:expr) => {
        match &$store.0 {
            Backend::Sqlite(s) => {
                let $db = &s.db;
                $body
            }
            Backend::Postgres(s) => {
                let $db = &s.db;
                $body
            }
        }
    };
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend_name())
    }
}

/// How writes are kept and attributed.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Encrypts stored configurations and revisions (docs/operations.md).
    pub secret: Option<SecretKey>,
    /// Keep only the newest N revisions per configuration (docs/api.md); `None`: keep all.
    pub history_limit: Option<u32>,
}

impl Store {
    pub async fn connect(url: &str, secret: Option<SecretKey>) -> Result<Store, StoreError> {
        Store::open(
            url,
            StoreOptions {
                secret,
                history_limit: None,
            },
        )
        .await
    }

    pub async fn open(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store(Backend::Postgres(
                postgres::PostgresStore::connect(url, options).await?,
            )))
        } else if url.starts_with("sqlite:") {
            Ok(Store(Backend::Sqlite(
                sqlite::SqliteStore::connect(url, options).await?,
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
    /// One line says which migrations were applied, or that the schema was current.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let applied = match &self.0 {
            Backend::Sqlite(s) => s.migrate().await?,
            Backend::Postgres(s) => s.migrate().await?,
        };
        if applied.is_empty() {
            tracing::info!(backend = self.backend_name(), "database schema is current");
        } else {
            let versions: Vec<String> = applied.iter().map(i64::to_string).collect();
            tracing::info!(
                backend = self.backend_name(),
                applied = %versions.join(", "),
                "database migrations applied"
            );
        }
        Ok(())
    }

    /// With a secret key: seals every value written before the key was set (current
    /// configurations and revisions), without adding revisions. Returns how many.
    pub async fn reseal(&self) -> Result<u64, StoreError> {
        on_db!(self, |db| db.reseal().await)
    }

    /// True when the database answers a trivial query within 2 seconds.
    pub async fn ping(&self) -> bool {
        on_db!(self, |db| db.ping().await)
    }

    /// Creates or updates one configuration, as a new revision by `origin`.
    pub async fn write(&self, write: &Write, origin: &Origin) -> Result<Written, StoreError> {
        on_db!(self, |db| db.upsert(write, origin).await)
    }

    /// Creates or updates one configuration without conditions, by the command line: the
    /// stored record (tests, seeding).
    pub async fn upsert(&self, write: &Write) -> Result<ConfigRecord, StoreError> {
        self.write(write, &Origin::cli()).await.map(|w| w.record)
    }

    /// One account's configuration.
    pub async fn get(
        &self,
        account: impl Borrow<AccountSid>,
    ) -> Result<Option<ConfigRecord>, StoreError> {
        let account = account.borrow();
        on_db!(self, |db| db.get(account).await)
    }

    /// The extension record as a configuration with `account_sid: None`; `None` if the
    /// extension was never created.
    pub async fn global(&self) -> Result<Option<ConfigRecord>, StoreError> {
        on_db!(self, |db| db.global().await)
    }

    /// Removes one account's configuration (a revision with action `delete`): `Some(revision)`
    /// of the delete, or `None` if there was none (the condition is not checked then).
    pub async fn remove(
        &self,
        account: AccountSid,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Option<i64>, StoreError> {
        on_db!(self, |db| db.delete(account, condition, origin).await)
    }

    /// `remove` without conditions, by the command line.
    pub async fn delete(
        &self,
        account: impl Borrow<AccountSid>,
    ) -> Result<Option<i64>, StoreError> {
        self.remove(*account.borrow(), &Condition::default(), &Origin::cli())
            .await
    }

    /// Gives a configuration revision `revision`'s `ConfigurationData` and `Enabled` as a
    /// new revision with action `rollback`.
    pub async fn rollback(
        &self,
        account: Option<AccountSid>,
        revision: i64,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Written, StoreError> {
        on_db!(self, |db| db
            .rollback(account, revision, condition, origin)
            .await)
    }

    /// Writes every line in one transaction, each changed configuration as a revision with
    /// action `import`; with `dry_run` nothing is kept. The configurations that changed (or
    /// would), in the order of `lines`.
    pub async fn import(
        &self,
        lines: &[ImportLine],
        origin: &Origin,
        dry_run: bool,
    ) -> Result<Vec<Option<AccountSid>>, StoreError> {
        on_db!(self, |db| db.import(lines, origin, dry_run).await)
    }

    /// One page of a configuration's revisions, newest first (`page` from 0). Pages cost the
    /// same however long the history is.
    pub async fn history(
        &self,
        account: Option<AccountSid>,
        page: i64,
        page_size: i64,
    ) -> Result<HistoryPage, StoreError> {
        on_db!(self, |db| db.history(account, page, page_size).await)
    }

    /// One revision of a configuration.
    pub async fn revision(
        &self,
        account: Option<AccountSid>,
        revision: i64,
    ) -> Result<Option<Revision>, StoreError> {
        on_db!(self, |db| db.revision(account, revision).await)
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
        on_db!(self, |db| db.list_accounts(offset, limit).await)
    }

    /// Everything, read in one consistent snapshot, held at once.
    pub async fn load_all(&self) -> Result<Snapshot, StoreError> {
        let (sink, mut batches) = mpsc::channel::<Vec<ConfigRecord>>(4);
        let collecting = async move {
            let mut snapshot = Snapshot::default();
            while let Some(batch) = batches.recv().await {
                for record in batch {
                    match record.account_sid {
                        None => snapshot.global = Some(record),
                        Some(_) => snapshot.accounts.push(record),
                    }
                }
            }
            snapshot
        };
        let (read, snapshot) = tokio::join!(self.load_into(sink), collecting);
        read.map(|()| snapshot)
    }

    /// Everything, read in one consistent snapshot, sent to `sink` in batches as it is read.
    /// On an error, what was sent is a part of that snapshot, and the error says the rest
    /// is missing. A closed sink ends the read early, without an error.
    pub async fn load_into(&self, sink: LoadSink) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(s) => s.load_into(sink).await,
            Backend::Postgres(s) => s.load_into(sink).await,
        }
    }

    /// Starts the background task that reports the changes other processes commit (see the
    /// module documentation); it ends when the receiver is dropped. Call it before loading a
    /// snapshot: whatever commits after the call is reported.
    pub async fn listen(&self) -> mpsc::Receiver<Change> {
        match &self.0 {
            Backend::Sqlite(s) => s.listen().await,
            Backend::Postgres(s) => s.listen(),
        }
    }

    /// Closes the connection pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        on_db!(self, |db| db.close().await)
    }
}

/// Channel of the PostgreSQL notifications; payload `<AC…|global>:<revision>`, `resync`, or
/// `health <state> <since µs> <proxy>` (docs/operations.md).
pub const NOTIFY_CHANNEL: &str = "multiprovider";

/// Name of the extension (the only one this service implements).
pub const EXTENSION_NAME: &str = "multi_provider";

/// Buffered changes between a change follower and its consumer.
const CHANGE_BUFFER: usize = 1024;

/// How often a SQLite server looks for writes made by another process.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The scope key of a configuration in the revision tables and notifications.
pub(crate) fn scope_key(account: Option<&AccountSid>) -> String {
    match account {
        Some(account) => account.to_string(),
        None => "global".to_owned(),
    }
}

/// Parses a scope key; `None` if it is neither `global` nor an account Sid.
pub(crate) fn parse_scope(scope: &str) -> Option<Option<AccountSid>> {
    if scope == "global" {
        Some(None)
    } else {
        AccountSid::parse(scope).map(Some)
    }
}

/// Parses a NOTIFY payload; `None` if it is not one of ours.
pub fn parse_notify_payload(payload: &str) -> Option<Change> {
    if payload == "resync" {
        return Some(Change::Resync);
    }
    if let Some(health) = health::parse_payload(payload) {
        return health;
    }
    let (scope, revision) = payload.rsplit_once(':')?;
    Some(Change::Scope {
        account_sid: parse_scope(scope)?,
        revision: revision.parse().ok()?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions() {
        let any = || Some(Tags::Any);
        let revs = |r: &[i64]| Some(Tags::Revisions(r.to_vec()));
        let c = |if_match, if_none_match| Condition {
            if_match,
            if_none_match,
        };
        assert!(Condition::default().holds(None) && Condition::default().holds(Some(3)));
        assert!(c(any(), None).holds(Some(1)) && !c(any(), None).holds(None));
        assert!(c(revs(&[2, 3]), None).holds(Some(3)) && !c(revs(&[2]), None).holds(Some(3)));
        assert!(!c(revs(&[3]), None).holds(None));
        assert!(c(None, any()).holds(None) && !c(None, any()).holds(Some(1)));
        assert!(c(None, revs(&[3])).holds(Some(4)) && !c(None, revs(&[3])).holds(Some(3)));
    }

    #[test]
    fn notify_payloads() {
        assert_eq!(parse_notify_payload("resync"), Some(Change::Resync));
        assert_eq!(
            parse_notify_payload("global:7"),
            Some(Change::Scope {
                account_sid: None,
                revision: 7
            })
        );
        let account = AccountSid::parse("AC0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            parse_notify_payload(&format!("{account}:3")),
            Some(Change::Scope {
                account_sid: Some(account),
                revision: 3
            })
        );
        assert_eq!(parse_notify_payload("nonsense"), None);
    }
}
