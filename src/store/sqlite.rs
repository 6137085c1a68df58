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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    ConfigRecord, EXTENSION_NAME, ExtensionId, PING_TIMEOUT, RawConfig, Snapshot, StoreError,
    Write, db_error, now_micros,
};
use crate::secret::{self, SecretKey};
use crate::sid::AccountSid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: u32 = 8;

const EXT_COLUMNS: &str = "sid, name, configuration, enabled, date_created, date_updated, revision";
const ACCOUNT_COLUMNS: &str =
    "account_sid, configuration, enabled, date_created, date_updated, revision";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    secret: Option<SecretKey>,
}

super::row_decoders!(SqliteRow);

impl SqliteStore {
    pub async fn connect(url: &str, secret: Option<SecretKey>) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::Unavailable("DATABASE_URL is not a valid sqlite URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
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
                .await
        } else {
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                // Writers queue on SQLite's lock (up to BUSY_TIMEOUT) while holding a
                // connection: waiting for one must outlast that.
                .acquire_timeout(BUSY_TIMEOUT * 2)
                .connect_with(options)
                .await
        }
        .map_err(db_error)?;
        Ok(SqliteStore { pool, secret })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| db_error(e.into()))
    }

    pub async fn ping(&self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(PING_TIMEOUT, probe).await, Ok(Ok(_)))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> Result<(Transaction<'static, Sqlite>, i64, i64), StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        let revision: i64 = sqlx::query_scalar(
            "UPDATE revision_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        Ok((tx, revision, now_micros()))
    }

    async fn extension_in(
        tx: &mut Transaction<'static, Sqlite>,
    ) -> Result<Option<(ExtensionId, RawConfig)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EXT_COLUMNS} FROM extensions WHERE id = 1"
        ))
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_error)?;
        row.as_ref().map(ext_from_row).transpose().map_err(db_error)
    }

    async fn insert_extension(
        tx: &mut Transaction<'static, Sqlite>,
        configuration: &str,
        enabled: bool,
        now: i64,
        revision: i64,
    ) -> Result<(ExtensionId, RawConfig), StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO extensions (id, {EXT_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING {EXT_COLUMNS}"
        ))
        .bind(crate::sid::new_extension_sid())
        .bind(EXTENSION_NAME)
        .bind(configuration)
        .bind(enabled)
        .bind(now)
        .bind(now)
        .bind(revision)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
        ext_from_row(&row).map_err(db_error)
    }

    pub async fn upsert(&self, write: &Write) -> Result<ConfigRecord, StoreError> {
        let sealed = write
            .configuration
            .as_deref()
            .map(|c| secret::seal(self.secret.as_ref(), c));
        let (mut tx, revision, now) = self.begin_write().await?;
        let existing = Self::extension_in(&mut tx).await?;

        let Some(account) = write.account_sid else {
            let (ext, raw) = match existing {
                None => {
                    let Some(configuration) = sealed.as_deref() else {
                        tx.rollback().await.map_err(db_error)?;
                        return Err(StoreError::MissingConfiguration);
                    };
                    let enabled = write.enabled.unwrap_or(true);
                    Self::insert_extension(&mut tx, configuration, enabled, now, revision).await?
                }
                Some(_) => {
                    let row = sqlx::query(&format!(
                        "UPDATE extensions SET configuration = COALESCE(?, configuration), \
                         enabled = COALESCE(?, enabled), date_updated = ?, revision = ? \
                         WHERE id = 1 RETURNING {EXT_COLUMNS}"
                    ))
                    .bind(sealed.as_deref())
                    .bind(write.enabled)
                    .bind(now)
                    .bind(revision)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                    ext_from_row(&row).map_err(db_error)?
                }
            };
            // Converted before committing: a row this instance cannot read is not written.
            let record = raw.into_record(&ext, self.secret.as_ref())?;
            tx.commit().await.map_err(db_error)?;
            return Ok(record);
        };

        let account_text = account.to_string();
        let row = match sealed.as_deref() {
            Some(configuration) => sqlx::query(&format!(
                "INSERT INTO account_configurations ({ACCOUNT_COLUMNS}) \
                 VALUES (?1, ?2, COALESCE(?3, TRUE), ?4, ?4, ?5) \
                 ON CONFLICT (account_sid) DO UPDATE SET \
                 configuration = excluded.configuration, \
                 enabled = COALESCE(?3, account_configurations.enabled), \
                 date_updated = excluded.date_updated, revision = excluded.revision \
                 RETURNING {ACCOUNT_COLUMNS}"
            ))
            .bind(&account_text)
            .bind(configuration)
            .bind(write.enabled)
            .bind(now)
            .bind(revision)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?,
            None => {
                let row = sqlx::query(&format!(
                    "UPDATE account_configurations SET enabled = COALESCE(?, enabled), \
                     date_updated = ?, revision = ? WHERE account_sid = ? \
                     RETURNING {ACCOUNT_COLUMNS}"
                ))
                .bind(write.enabled)
                .bind(now)
                .bind(revision)
                .bind(&account_text)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                match row {
                    Some(row) => row,
                    None => {
                        tx.rollback().await.map_err(db_error)?;
                        return Err(StoreError::MissingConfiguration);
                    }
                }
            }
        };
        let raw = account_from_row(&row).map_err(db_error)?;
        let ext = match existing {
            Some((ext, _)) => ext,
            None => {
                Self::insert_extension(
                    &mut tx,
                    &secret::seal(self.secret.as_ref(), "{}"),
                    true,
                    now,
                    revision,
                )
                .await?
                .0
            }
        };
        let record = raw.into_record(&ext, self.secret.as_ref())?;
        tx.commit().await.map_err(db_error)?;
        Ok(record)
    }

    pub async fn get(&self, account: &AccountSid) -> Result<Option<ConfigRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS}, \
             (SELECT sid FROM extensions WHERE id = 1), (SELECT name FROM extensions WHERE id = 1) \
             FROM account_configurations WHERE account_sid = ?"
        ))
        .bind(account.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let raw = account_from_row(&row).map_err(db_error)?;
        let sid: Option<String> = row.try_get(6).map_err(db_error)?;
        let name: Option<String> = row.try_get(7).map_err(db_error)?;
        let ext = match (sid, name) {
            (Some(sid), Some(name)) => ExtensionId { sid, name },
            _ => orphan_extension(),
        };
        raw.into_record(&ext, self.secret.as_ref()).map(Some)
    }

    pub async fn global(&self) -> Result<Option<ConfigRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EXT_COLUMNS} FROM extensions WHERE id = 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let (ext, raw) = ext_from_row(&row).map_err(db_error)?;
        raw.into_record(&ext, self.secret.as_ref()).map(Some)
    }

    pub async fn delete(&self, account: &AccountSid) -> Result<Option<i64>, StoreError> {
        let (mut tx, revision, _) = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM account_configurations WHERE account_sid = ?")
            .bind(account.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        if deleted == 0 {
            // Nothing to delete: roll the counter back too.
            tx.rollback().await.map_err(db_error)?;
            return Ok(None);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(Some(revision))
    }

    pub async fn list_accounts(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ConfigRecord>, i64), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let ext = Self::extension_in(&mut tx).await?.map(|(ext, _)| ext);
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM account_configurations")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let rows = if limit > 0 && offset < total {
            sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM account_configurations \
                 ORDER BY date_created, account_sid LIMIT ? OFFSET ?"
            ))
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
        } else {
            Vec::new()
        };
        tx.commit().await.map_err(db_error)?;
        let ext = ext.unwrap_or_else(orphan_extension);
        let records = rows
            .iter()
            .map(|row| {
                account_from_row(row)
                    .map_err(db_error)?
                    .into_record(&ext, self.secret.as_ref())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, total))
    }

    pub async fn load_all(&self) -> Result<Snapshot, StoreError> {
        // A deferred transaction in WAL mode reads one snapshot, taken at its first read.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision_counter WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let extension = Self::extension_in(&mut tx).await?;
        // One JSON document rather than 100,000 rows: sqlx hands SQLite rows over one at a
        // time from its worker thread, which costs several times more than SQLite building
        // the array and serde_json parsing it.
        let all: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(account_sid, configuration, \
             CASE WHEN enabled THEN 1 ELSE 0 END, date_created, date_updated, revision)) \
             FROM account_configurations",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;

        let secret = self.secret.as_ref();
        let (ext, global) = match extension {
            Some((ext, raw)) => {
                let global = raw.into_record(&ext, secret)?;
                (ext, Some(global))
            }
            None => (orphan_extension(), None),
        };
        type Row = (String, String, i64, i64, i64, i64);
        let rows: Vec<Row> = serde_json::from_str(&all)
            .map_err(|e| StoreError::Corrupt(format!("unexpected stored data: {e}")))?;
        drop(all);
        let accounts = rows
            .into_iter()
            .map(
                |(account_sid, configuration, enabled, created, updated, revision)| {
                    RawConfig {
                        account_sid: Some(account_sid),
                        configuration,
                        enabled: enabled != 0,
                        date_created: created,
                        date_updated: updated,
                        revision,
                    }
                    .into_record(&ext, secret)
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
