//! The read paths, written once for both backends. SQLite accepts PostgreSQL's `$1`
//! placeholders, so the statements differ only in how a date column is read (PostgreSQL
//! keeps `TIMESTAMPTZ`, SQLite unix microseconds) and in how a consistent snapshot begins.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::{Database, Executor, Pool};

use super::rows::{AccountRow, AccountWithExtensionRow, ExtensionId, ExtensionRow, RevisionRow};
use super::{ConfigRecord, HistoryPage, Revision, StoreError, StoreOptions, scope_key};
use crate::secret::SecretKey;
use crate::sid::AccountSid;

/// How long `ping` waits.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What differs between the backends.
pub(crate) struct Dialect {
    /// `SELECT` list of the extension row, aliased to `ExtensionRow`'s fields.
    pub extension_columns: &'static str,
    /// `SELECT` list of an account row, aliased to `AccountRow`'s fields.
    pub account_columns: &'static str,
    /// `SELECT` list of a revision row, aliased to `RevisionRow`'s fields.
    pub revision_columns: &'static str,
    /// Begins a read-only transaction that sees one snapshot.
    pub begin_snapshot: &'static str,
    /// Begins a write transaction.
    pub begin_write: &'static str,
    /// Taken by every writer (shared) and by a bulk import (exclusive), if the backend has
    /// more than one writer at a time.
    pub gate_shared: Option<&'static str>,
    pub gate_exclusive: Option<&'static str>,
    /// Locks one configuration (`$1`: its scope key) until the transaction ends.
    pub lock_scope: Option<&'static str>,
    /// Bumps and returns the store's change sequence (followed by polling).
    pub bump_change_seq: Option<&'static str>,
    /// `NOTIFY` (`$1` channel, `$2` payload), for backends whose followers listen.
    pub notify: Option<&'static str>,
    /// The SQL of a date bound as unix microseconds in parameter `$n`.
    pub timestamp: fn(u8) -> String,
}

/// A pool, its dialect, the key that opens stored configurations and how many revisions
/// are kept.
pub(crate) struct Db<DB: Database> {
    pub pool: Pool<DB>,
    pub dialect: &'static Dialect,
    pub secret: Option<SecretKey>,
    pub history_limit: Option<u32>,
    /// The extension record's identity once a write that saw it has committed: it is never
    /// deleted nor renamed, so account writes need not read it again. (Remembered only after
    /// a commit: a transaction that created it may roll back.)
    extension: Arc<OnceLock<ExtensionId>>,
}

impl<DB: Database> Clone for Db<DB> {
    fn clone(&self) -> Self {
        Db {
            pool: self.pool.clone(),
            dialect: self.dialect,
            secret: self.secret.clone(),
            history_limit: self.history_limit,
            extension: self.extension.clone(),
        }
    }
}

impl<DB: Database> Db<DB> {
    pub fn new(pool: Pool<DB>, dialect: &'static Dialect, options: StoreOptions) -> Db<DB> {
        Db {
            pool,
            dialect,
            secret: options.secret,
            history_limit: options.history_limit,
            extension: Arc::default(),
        }
    }

    pub fn known_extension(&self) -> Option<ExtensionId> {
        self.extension.get().cloned()
    }

    pub fn remember_extension(&self, id: ExtensionId) -> ExtensionId {
        let _ = self.extension.set(id.clone());
        id
    }
}

impl_db!(
    /// True when the database answers a trivial query within 2 seconds.
    pub async fn ping(&self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(PING_TIMEOUT, probe).await, Ok(Ok(_)))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The extension row, read through `executor` (the pool or a transaction).
    pub async fn extension<'e, E>(&self, executor: E) -> Result<Option<ExtensionRow>, StoreError>
    where
        E: Executor<'e, Database = DB>,
    {
        let sql = format!(
            "SELECT {} FROM extensions WHERE id = 1",
            self.dialect.extension_columns
        );
        Ok(sqlx::query_as(&sql).fetch_optional(executor).await?)
    }

    /// The extension record as the global configuration; `None` before it was created.
    pub async fn global(&self) -> Result<Option<ConfigRecord>, StoreError> {
        let row = self.extension(&self.pool).await?;
        row.map(|row| row.into_record(self.secret.as_ref()))
            .transpose()
    }

    /// One account's configuration.
    pub async fn get(&self, account: &AccountSid) -> Result<Option<ConfigRecord>, StoreError> {
        let sql = format!(
            "SELECT {}, (SELECT sid FROM extensions WHERE id = 1) AS extension_sid, \
             (SELECT name FROM extensions WHERE id = 1) AS extension_name \
             FROM account_configurations WHERE account_sid = $1",
            self.dialect.account_columns
        );
        let row: Option<AccountWithExtensionRow> = sqlx::query_as(&sql)
            .bind(account.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.into_record(self.secret.as_ref()))
            .transpose()
    }

    /// One page of account configurations ordered by `date_created` then `account_sid`,
    /// and their total, read in one snapshot.
    pub async fn list_accounts(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ConfigRecord>, i64), StoreError> {
        let mut tx = self.pool.begin_with(self.dialect.begin_snapshot).await?;
        let extension = self.extension(&mut *tx).await?.map(|row| row.id());
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM account_configurations")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<AccountRow> = if limit > 0 && offset < total {
            let sql = format!(
                "SELECT {} FROM account_configurations \
                 ORDER BY date_created, account_sid LIMIT $1 OFFSET $2",
                self.dialect.account_columns
            );
            sqlx::query_as(&sql)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *tx)
                .await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        let extension = extension.unwrap_or_else(ExtensionId::orphan);
        let records = rows
            .into_iter()
            .map(|row| row.into_record(&extension, self.secret.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, total))
    }

    /// Revision `revision` of a configuration, read through `executor`.
    pub async fn revision_in<'e, E>(
        &self,
        executor: E,
        account: Option<AccountSid>,
        revision: i64,
    ) -> Result<Option<Revision>, StoreError>
    where
        E: Executor<'e, Database = DB>,
    {
        let sql = format!(
            "SELECT {} FROM configuration_revisions WHERE scope = $1 AND revision = $2",
            self.dialect.revision_columns
        );
        let row: Option<RevisionRow> = sqlx::query_as(&sql)
            .bind(scope_key(account.as_ref()))
            .bind(revision)
            .fetch_optional(executor)
            .await?;
        row.map(|row| row.into_revision(self.secret.as_ref()))
            .transpose()
    }

    /// One revision of a configuration.
    pub async fn revision(
        &self,
        account: Option<AccountSid>,
        revision: i64,
    ) -> Result<Option<Revision>, StoreError> {
        self.revision_in(&self.pool, account, revision).await
    }

    /// Page `page` of a configuration's revisions, newest first. Revisions are numbered
    /// without gaps and only the oldest are ever pruned, so a page is a range of numbers:
    /// read by primary key, in the same time for page 0 and page 1,000.
    pub async fn history(
        &self,
        account: Option<AccountSid>,
        page: i64,
        page_size: i64,
    ) -> Result<HistoryPage, StoreError> {
        let scope = scope_key(account.as_ref());
        let mut tx = self.pool.begin_with(self.dialect.begin_snapshot).await?;
        let head: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM configuration_heads WHERE scope = $1")
                .bind(&scope)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(head) = head else {
            tx.commit().await?;
            return Err(StoreError::NeverExisted);
        };
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(revision) FROM configuration_revisions WHERE scope = $1",
        )
        .bind(&scope)
        .fetch_one(&mut *tx)
        .await?;
        let oldest = oldest.unwrap_or(head + 1);
        let total = (head - oldest + 1).max(0);
        let newest_on_page = page
            .checked_mul(page_size)
            .and_then(|skip| head.checked_sub(skip))
            .unwrap_or(i64::MIN);
        let rows: Vec<RevisionRow> = if newest_on_page >= oldest && page_size > 0 {
            let oldest_on_page = (newest_on_page - page_size + 1).max(oldest);
            let sql = format!(
                "SELECT {} FROM configuration_revisions \
                 WHERE scope = $1 AND revision >= $2 AND revision <= $3 ORDER BY revision DESC",
                self.dialect.revision_columns
            );
            sqlx::query_as(&sql)
                .bind(&scope)
                .bind(oldest_on_page)
                .bind(newest_on_page)
                .fetch_all(&mut *tx)
                .await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        let revisions = rows
            .into_iter()
            .map(|row| row.into_revision(self.secret.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryPage { revisions, total })
    }
);
