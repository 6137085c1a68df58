//! The read paths, written once for both backends. SQLite accepts PostgreSQL's `$1`
//! placeholders, so the statements differ only in how a date column is read (PostgreSQL
//! keeps `TIMESTAMPTZ`, SQLite unix microseconds) and in how a consistent snapshot begins.

use std::time::Duration;

use sqlx::{Database, Executor, FromRow, IntoArguments, Pool};

use super::rows::{AccountRow, AccountWithExtensionRow, ExtensionId, ExtensionRow};
use super::{ConfigRecord, StoreError};
use crate::secret::SecretKey;
use crate::sid::AccountSid;

/// How long `ping` waits.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What differs between the backends' reads.
pub(crate) struct Dialect {
    /// `SELECT` list of the extension row, aliased to `ExtensionRow`'s fields.
    pub extension_columns: &'static str,
    /// `SELECT` list of an account row, aliased to `AccountRow`'s fields.
    pub account_columns: &'static str,
    /// Begins a read-only transaction that sees one snapshot.
    pub begin_snapshot: &'static str,
}

/// A pool, its dialect and the key that opens stored configurations.
pub(crate) struct Db<DB: Database> {
    pub pool: Pool<DB>,
    pub dialect: &'static Dialect,
    pub secret: Option<SecretKey>,
}

impl<DB: Database> Clone for Db<DB> {
    fn clone(&self) -> Self {
        Db {
            pool: self.pool.clone(),
            dialect: self.dialect,
            secret: self.secret.clone(),
        }
    }
}

impl<DB> Db<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
    ExtensionRow: for<'r> FromRow<'r, DB::Row>,
    AccountRow: for<'r> FromRow<'r, DB::Row>,
    AccountWithExtensionRow: for<'r> FromRow<'r, DB::Row>,
{
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
}
