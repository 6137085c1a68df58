//! Operators and failed logins (docs/security.md), the same statements on both backends.
//!
//! The store keeps what it is given: names, roles and Argon2id hashes are checked and made by
//! `crate::operators`. Dates are unix microseconds on both backends.

use super::{Backend, Store, StoreError};

/// One operator as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRow {
    pub name: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// Argon2id, PHC string format.
    pub password_hash: String,
    /// Unix microseconds.
    pub created: i64,
    pub last_login: Option<i64>,
}

impl std::fmt::Debug for OperatorRow {
    // The hash must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorRow")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created", &self.created)
            .field("last_login", &self.last_login)
            .finish_non_exhaustive()
    }
}

type Columns = (String, String, String, i64, Option<i64>);

const COLUMNS: &str = "name, role, password_hash, created, last_login";

fn row((name, role, password_hash, created, last_login): Columns) -> OperatorRow {
    OperatorRow {
        name,
        role,
        password_hash,
        created,
        last_login,
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool (SQLite accepts PostgreSQL's `$n`).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.0 {
            Backend::Sqlite(s) => {
                let $pool = &s.db.pool;
                $body
            }
            Backend::Postgres(s) => {
                let $pool = &s.db.pool;
                $body
            }
        }
    };
}

impl Store {
    /// One operator, if it exists.
    pub async fn operator(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM operators WHERE name = $1");
        let found: Option<Columns> = on_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(name)
            .fetch_optional(pool)
            .await?);
        Ok(found.map(row))
    }

    /// Every operator, by name.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM operators ORDER BY name");
        let rows: Vec<Columns> =
            on_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(row).collect())
    }

    /// Adds an operator; false (nothing written) when the name is taken.
    pub async fn add_operator(&self, operator: &OperatorRow) -> Result<bool, StoreError> {
        let sql = "INSERT INTO operators (name, role, password_hash, created, last_login) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(&operator.name)
            .bind(&operator.role)
            .bind(&operator.password_hash)
            .bind(operator.created)
            .bind(operator.last_login)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Changes an operator's role; false when there is no such operator.
    pub async fn set_operator_role(&self, name: &str, role: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE operators SET role = $2 WHERE name = $1";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(name)
            .bind(role)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Replaces an operator's password hash and forgets its failed logins (a new password
    /// ends a lockout); false when there is no such operator.
    pub async fn set_operator_password(
        &self,
        name: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE operators SET password_hash = $2 WHERE name = $1";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(name)
            .bind(password_hash)
            .execute(pool)
            .await?
            .rows_affected());
        if done == 1 {
            self.clear_login_failures(name).await?;
        }
        Ok(done == 1)
    }

    /// Removes an operator; false when there was none. Its revisions keep its name.
    pub async fn remove_operator(&self, name: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM operators WHERE name = $1";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(done == 1)
    }

    /// Records a successful login at `now` (unix microseconds).
    pub async fn touch_operator(&self, name: &str, now: i64) -> Result<(), StoreError> {
        let sql = "UPDATE operators SET last_login = $2 WHERE name = $1";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(name)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// How many failed logins `name` has had since `since` (unix microseconds).
    pub async fn login_failures_since(&self, name: &str, since: i64) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM login_failures WHERE name = $1 AND at >= $2";
        let (count,): (i64,) = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(name)
            .bind(since)
            .fetch_one(pool)
            .await?);
        Ok(count)
    }

    /// The `limit`th most recent failed login of `name` since `since`, if there were that many
    /// (when a lockout that it completes ends depends on the oldest of them).
    pub async fn oldest_of_recent_failures(
        &self,
        name: &str,
        since: i64,
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = "SELECT at FROM login_failures WHERE name = $1 AND at >= $2 \
                   ORDER BY at DESC LIMIT 1 OFFSET $3";
        let found: Option<(i64,)> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(name)
            .bind(since)
            .bind(limit - 1)
            .fetch_optional(pool)
            .await?);
        Ok(found.map(|(at,)| at))
    }

    /// Records a failed login of `name` at `at`, and deletes every record older than
    /// `forget_before` (all names): the table holds one window's failures.
    pub async fn record_login_failure(
        &self,
        name: &str,
        at: i64,
        forget_before: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM login_failures WHERE at < $1")
                .bind(forget_before)
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO login_failures (name, at) VALUES ($1, $2)")
                .bind(name)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Forgets `name`'s failed logins.
    pub async fn clear_login_failures(&self, name: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "DELETE FROM login_failures WHERE name = $1"
        )
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }
}
