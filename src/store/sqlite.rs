//! SQLite backend (the embedded default).
//!
//! Every write transaction starts with `BEGIN IMMEDIATE` and bumps `revision_counter` (the
//! store's change sequence) as its first statement: SQLite's single write lock is taken up
//! front (waiting up to the busy timeout rather than failing), so writers are serialised and
//! revisions follow commit order. Reads run in deferred transactions, which in WAL mode see
//! one consistent snapshot and never wait for writers.
//!
//! A server follows writes made by another process (the CLI's import, a rollback run against
//! the same file) by polling the change sequence: each written configuration's head records
//! the sequence of its last write.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::sync::mpsc;

use super::diagnose;
use super::reads::{Db, Dialect};
use super::rows::{AccountRow, ConfigColumns, ExtensionId};
use super::{
    CHANGE_BUFFER, Change, LOAD_BATCH, LoadSink, POLL_INTERVAL, StoreError, StoreOptions,
    parse_scope,
};
use crate::secret::SecretKey;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: u32 = 8;

static DIALECT: Dialect = Dialect {
    extension_columns: "sid, name, configuration, enabled, date_created, date_updated, revision",
    account_columns: "account_sid, configuration, enabled, date_created, date_updated, revision",
    revision_columns: "scope, revision, action, date_created, actor, remote_addr, enabled, \
                       configuration, rollback_of, changes",
    // A deferred transaction in WAL mode reads one snapshot, taken at its first read.
    begin_snapshot: "BEGIN",
    begin_write: "BEGIN IMMEDIATE",
    // One writer at a time already.
    gate_shared: None,
    gate_exclusive: None,
    lock_scope: None,
    bump_change_seq: Some(
        "UPDATE revision_counter SET value = value + 1 WHERE id = 1 RETURNING value",
    ),
    notify: None,
    timestamp: |n| format!("${n}"),
};

#[derive(Clone)]
pub(crate) struct SqliteStore {
    pub db: Db<Sqlite>,
}

impl SqliteStore {
    pub async fn connect(url: &str, options: StoreOptions) -> Result<SqliteStore, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("DATABASE_URL is not a valid sqlite URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = connect.get_filename().to_owned();
        let pool = if in_memory {
            // An in-memory database lives as long as one connection to it: keep exactly one
            // (a shared-cache database answers SQLITE_LOCKED, not BUSY, to concurrent writers).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(connect)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                // Writers queue on SQLite's lock (up to BUSY_TIMEOUT) while holding a
                // connection: waiting for one must outlast that.
                .acquire_timeout(BUSY_TIMEOUT * 2)
                .connect_with(connect)
                .await
                // A file that cannot be opened fails at once (no retry): name the path.
                .map_err(|e| diagnose::sqlite(&path, e))?
        };
        Ok(SqliteStore {
            db: Db::new(pool, &DIALECT, options),
        })
    }

    /// Runs the migrations; the versions this run applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        // Before the run: the table does not exist on a fresh database.
        let before: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.db.pool)
            .await
            .unwrap_or_default();
        MIGRATOR.run(&self.db.pool).await?;
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| !before.contains(v))
            .collect())
    }

    fn secret(&self) -> Option<&SecretKey> {
        self.db.secret.as_ref()
    }

    pub async fn load_into(&self, sink: LoadSink) -> Result<(), StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let extension = self.db.extension(&mut *tx).await?;
        // One JSON document rather than 100,000 rows: sqlx hands SQLite rows over one at a
        // time from its worker thread, which costs several times more than SQLite building
        // the array and serde_json parsing it.
        let all: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(account_sid, configuration, \
             CASE WHEN enabled THEN 1 ELSE 0 END, date_created, date_updated, revision)) \
             FROM account_configurations",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;

        let (id, global) = match extension {
            Some(row) => (row.id(), Some(row.into_record(self.secret())?)),
            None => (ExtensionId::orphan(), None),
        };
        type Row = (String, String, i64, i64, i64, i64);
        let rows: Vec<Row> = serde_json::from_str(&all)
            .map_err(|e| StoreError::Corrupt(format!("unexpected stored data: {e}")))?;
        drop(all);
        let accounts = rows.into_iter().map(
            |(account_sid, configuration, enabled, date_created, date_updated, revision)| {
                AccountRow {
                    account_sid,
                    config: ConfigColumns {
                        configuration,
                        enabled: enabled != 0,
                        date_created,
                        date_updated,
                        revision,
                    },
                }
                .into_record(&id, self.secret())
            },
        );
        let mut records = global.map(Ok).into_iter().chain(accounts);
        loop {
            let batch = records
                .by_ref()
                .take(LOAD_BATCH)
                .collect::<Result<Vec<_>, _>>()?;
            if batch.is_empty() || sink.send(batch).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Polls the change sequence every `POLL_INTERVAL` and reports the configurations whose
    /// head moved since the last look (this process's own writes included: applying them
    /// again is harmless, the cache keeps the newest revision).
    pub async fn listen(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(CHANGE_BUFFER);
        let pool = self.db.pool.clone();
        // Read before the caller loads its snapshot, so that nothing committed after that
        // snapshot can go unnoticed.
        let mut seen = poll(&pool, None).await.ok().map(|(seq, _)| seq);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                match poll(&pool, seen).await {
                    Ok((seq, changes)) => {
                        seen = Some(seq);
                        for change in changes {
                            if tx.send(change).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot poll for changes"),
                }
            }
        });
        rx
    }
}

/// The current change sequence and what changed after `seen` (nothing on the first look:
/// the cache was loaded from a snapshot at least as new).
async fn poll(pool: &SqlitePool, seen: Option<i64>) -> Result<(i64, Vec<Change>), StoreError> {
    let seq: i64 = sqlx::query_scalar("SELECT value FROM revision_counter WHERE id = 1")
        .fetch_one(pool)
        .await?;
    let Some(seen) = seen.filter(|seen| *seen < seq) else {
        return Ok((seq, Vec::new()));
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT scope, revision FROM configuration_heads WHERE seq > $1 AND seq <= $2 LIMIT $3",
    )
    .bind(seen)
    .bind(seq)
    .bind(RESYNC_ABOVE + 1)
    .fetch_all(pool)
    .await?;
    if rows.len() > RESYNC_ABOVE as usize {
        return Ok((seq, vec![Change::Resync]));
    }
    let changes = rows
        .into_iter()
        .filter_map(|(scope, revision)| {
            parse_scope(&scope).map(|account_sid| Change::Scope {
                account_sid,
                revision,
            })
        })
        .collect();
    Ok((seq, changes))
}

/// More changes than this since the last poll are applied as one full reload.
const RESYNC_ABOVE: i64 = 64;
