//! SQLite backend (the embedded default).
//!
//! Every write transaction starts with `BEGIN IMMEDIATE` and bumps `revision_counter` as its
//! first statement: SQLite's single write lock is taken up front (waiting up to the busy
//! timeout rather than failing), so writers are serialised and revisions follow commit order.
//! Reads run in deferred transactions, which in WAL mode see one consistent snapshot and
//! never wait for writers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Sqlite, Transaction};

use super::diagnose;
use super::reads::{Db, Dialect};
use super::rows::{AccountRow, ConfigColumns, ExtensionId, ExtensionRow};
use super::{ConfigRecord, EXTENSION_NAME, Snapshot, StoreError, Write, now_micros};
use crate::secret::{self, SecretKey};
use crate::sid::AccountSid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: u32 = 8;

const EXT_COLUMNS: &str = "sid, name, configuration, enabled, date_created, date_updated, revision";
const ACCOUNT_COLUMNS: &str =
    "account_sid, configuration, enabled, date_created, date_updated, revision";

static DIALECT: Dialect = Dialect {
    extension_columns: EXT_COLUMNS,
    account_columns: ACCOUNT_COLUMNS,
    // A deferred transaction in WAL mode reads one snapshot, taken at its first read.
    begin_snapshot: "BEGIN",
};

#[derive(Clone)]
pub(crate) struct SqliteStore {
    pub db: Db<Sqlite>,
}

impl SqliteStore {
    pub async fn connect(url: &str, secret: Option<SecretKey>) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("DATABASE_URL is not a valid sqlite URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let path = options.get_filename().to_owned();
        let pool = if in_memory {
            // An in-memory database lives as long as one connection to it: keep exactly one
            // (a shared-cache database answers SQLITE_LOCKED, not BUSY, to concurrent writers).
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                // Writers queue on SQLite's lock (up to BUSY_TIMEOUT) while holding a
                // connection: waiting for one must outlast that.
                .acquire_timeout(BUSY_TIMEOUT * 2)
                .connect_with(options)
                .await
                // A file that cannot be opened fails at once (no retry): name the path.
                .map_err(|e| diagnose::sqlite(&path, e))?
        };
        Ok(SqliteStore {
            db: Db {
                pool,
                dialect: &DIALECT,
                secret,
            },
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.db.pool).await?)
    }

    fn secret(&self) -> Option<&SecretKey> {
        self.db.secret.as_ref()
    }

    async fn begin_write(&self) -> Result<(Transaction<'static, Sqlite>, i64, i64), StoreError> {
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let revision: i64 = sqlx::query_scalar(
            "UPDATE revision_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok((tx, revision, now_micros()))
    }

    async fn insert_extension(
        tx: &mut Transaction<'static, Sqlite>,
        configuration: &str,
        enabled: bool,
        now: i64,
        revision: i64,
    ) -> Result<ExtensionRow, StoreError> {
        let row = sqlx::query_as(&format!(
            "INSERT INTO extensions (id, {EXT_COLUMNS}) VALUES (1, $1, $2, $3, $4, $5, $5, $6) \
             RETURNING {EXT_COLUMNS}"
        ))
        .bind(crate::sid::new_extension_sid())
        .bind(EXTENSION_NAME)
        .bind(configuration)
        .bind(enabled)
        .bind(now)
        .bind(revision)
        .fetch_one(&mut **tx)
        .await?;
        Ok(row)
    }

    pub async fn upsert(&self, write: &Write) -> Result<ConfigRecord, StoreError> {
        let sealed = write
            .configuration
            .as_deref()
            .map(|c| secret::seal(self.secret(), c));
        let (mut tx, revision, now) = self.begin_write().await?;
        let existing = self.db.extension(&mut *tx).await?;

        let Some(account) = write.account_sid else {
            let row = match existing {
                None => {
                    let Some(configuration) = sealed.as_deref() else {
                        tx.rollback().await?;
                        return Err(StoreError::MissingConfiguration);
                    };
                    let enabled = write.enabled.unwrap_or(true);
                    Self::insert_extension(&mut tx, configuration, enabled, now, revision).await?
                }
                Some(_) => {
                    sqlx::query_as(&format!(
                        "UPDATE extensions SET configuration = COALESCE($1, configuration), \
                         enabled = COALESCE($2, enabled), date_updated = $3, revision = $4 \
                         WHERE id = 1 RETURNING {EXT_COLUMNS}"
                    ))
                    .bind(sealed.as_deref())
                    .bind(write.enabled)
                    .bind(now)
                    .bind(revision)
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            // Converted before committing: a row this instance cannot read is not written.
            let record = row.into_record(self.secret())?;
            tx.commit().await?;
            return Ok(record);
        };

        let account_text = account.to_string();
        let row: AccountRow = match sealed.as_deref() {
            Some(configuration) => {
                sqlx::query_as(&format!(
                    "INSERT INTO account_configurations ({ACCOUNT_COLUMNS}) \
                     VALUES ($1, $2, COALESCE($3, TRUE), $4, $4, $5) \
                     ON CONFLICT (account_sid) DO UPDATE SET \
                     configuration = excluded.configuration, \
                     enabled = COALESCE($3, account_configurations.enabled), \
                     date_updated = excluded.date_updated, revision = excluded.revision \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(&account_text)
                .bind(configuration)
                .bind(write.enabled)
                .bind(now)
                .bind(revision)
                .fetch_one(&mut *tx)
                .await?
            }
            None => {
                let row = sqlx::query_as(&format!(
                    "UPDATE account_configurations SET enabled = COALESCE($1, enabled), \
                     date_updated = $2, revision = $3 WHERE account_sid = $4 \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(write.enabled)
                .bind(now)
                .bind(revision)
                .bind(&account_text)
                .fetch_optional(&mut *tx)
                .await?;
                match row {
                    Some(row) => row,
                    None => {
                        tx.rollback().await?;
                        return Err(StoreError::MissingConfiguration);
                    }
                }
            }
        };
        let extension = match existing {
            Some(row) => row.id(),
            None => {
                let sealed_empty = secret::seal(self.secret(), "{}");
                Self::insert_extension(&mut tx, &sealed_empty, true, now, revision)
                    .await?
                    .id()
            }
        };
        let record = row.into_record(&extension, self.secret())?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn delete(&self, account: &AccountSid) -> Result<Option<i64>, StoreError> {
        let (mut tx, revision, _) = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM account_configurations WHERE account_sid = $1")
            .bind(account.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            // Nothing to delete: roll the counter back too.
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(revision))
    }

    pub async fn load_all(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision_counter WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
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
        let accounts = rows
            .into_iter()
            .map(
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
            )
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            revision,
            global,
            accounts,
        })
    }
}
