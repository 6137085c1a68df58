//! PostgreSQL backend.
//!
//! Writers run concurrently (so that commits share WAL flushes: one flush per commit in
//! turn would cap writes at a few hundred per second). Each write takes its revision from
//! the `config_revision` sequence *after* it has modified its row, while it holds that row's
//! lock: every earlier write of the same row has committed (with a smaller revision), every
//! later one waits for this commit. So per configuration, revisions follow commit order,
//! which is all the cache needs to apply writes and notifications in any order. (Across
//! rows there is no such order; the cache does not rely on one when it loads a snapshot.)
//!
//! Each write `NOTIFY`s channel `multiprovider` with `<AC…|global>:<revision>` inside its
//! transaction, so the notification is delivered if and only if the write commits.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::sync::mpsc;

use super::diagnose;
use super::reads::{Db, Dialect};
use super::rows::{AccountRow, ExtensionId, ExtensionRow};
use super::{
    Change, ConfigRecord, EXTENSION_NAME, NOTIFY_CHANNEL, Snapshot, StoreError, Write,
    notify_payload, parse_notify_payload,
};
use crate::secret::{self, SecretKey};
use crate::sid::AccountSid;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;
/// A dead database must surface as `Unavailable` quickly.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The first connection at start: DNS, TCP, TLS and authentication of a distant managed
/// database fit well within this.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Listener reconnect back-off bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Buffered changes between the listener task and its consumer.
const CHANGE_BUFFER: usize = 1024;

const EXT_COLUMNS: &str = "sid, name, configuration, enabled, \
     (EXTRACT(EPOCH FROM date_created) * 1000000)::BIGINT AS date_created, \
     (EXTRACT(EPOCH FROM date_updated) * 1000000)::BIGINT AS date_updated, revision";
const ACCOUNT_COLUMNS: &str = "account_sid, configuration, enabled, \
     (EXTRACT(EPOCH FROM date_created) * 1000000)::BIGINT AS date_created, \
     (EXTRACT(EPOCH FROM date_updated) * 1000000)::BIGINT AS date_updated, revision";

static DIALECT: Dialect = Dialect {
    extension_columns: EXT_COLUMNS,
    account_columns: ACCOUNT_COLUMNS,
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
};

/// SQL turning a bound `BIGINT` of unix microseconds into a `TIMESTAMPTZ`, exactly.
macro_rules! ts {
    ($n:literal) => {
        concat!(
            "(TIMESTAMPTZ 'epoch' + $",
            $n,
            "::BIGINT * INTERVAL '1 microsecond')"
        )
    };
}

#[derive(Clone)]
pub(crate) struct PostgresStore {
    pub db: Db<Postgres>,
    /// For the listener's own pool (boxed: the options are large and `Store` is cloned).
    options: Arc<PgConnectOptions>,
    /// The extension record's identity once seen: it is never deleted nor renamed, so
    /// account writes need not read it again (one round trip less per write).
    extension: Arc<std::sync::OnceLock<ExtensionId>>,
}

async fn notify(
    tx: &mut Transaction<'static, Postgres>,
    account: Option<&AccountSid>,
    revision: i64,
) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(notify_payload(account, revision))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl PostgresStore {
    pub async fn connect(
        url: &str,
        secret: Option<SecretKey>,
    ) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| {
                StoreError::Unavailable("DATABASE_URL is not a valid postgres URL".into())
            })?
            .application_name("multiprovider");
        // One connection on its own first: the pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out; this names the cause at
        // once (SPEC §12: refused, unknown database, authentication, TLS).
        let target = diagnose::PgTarget::new(url, &options);
        match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
        {
            Ok(Ok(first)) => {
                let _ = first.close().await;
            }
            Ok(Err(e)) => return Err(diagnose::postgres(&target, e)),
            Err(_) => {
                return Err(diagnose::postgres_timeout(
                    &target,
                    FIRST_CONNECT_TIMEOUT.as_secs(),
                ));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(600))
            .connect_with(options.clone())
            .await?;
        Ok(PostgresStore {
            extension: Arc::default(),
            db: Db {
                pool,
                dialect: &DIALECT,
                secret,
            },
            options: Arc::new(options),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        Ok(MIGRATOR.run(&self.db.pool).await?)
    }

    fn secret(&self) -> Option<&SecretKey> {
        self.db.secret.as_ref()
    }

    /// Begins a write; the timestamp is this instance's clock in unix microseconds.
    async fn begin_write(&self) -> Result<(Transaction<'static, Postgres>, i64), StoreError> {
        let tx = self.db.pool.begin().await?;
        Ok((tx, super::now_micros()))
    }

    /// Creates the extension record (global `{}`) unless it exists; returns it either way.
    async fn ensure_extension(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        now: i64,
    ) -> Result<ExtensionId, StoreError> {
        if let Some(ext) = self.extension.get() {
            return Ok(ext.clone());
        }
        if let Some(row) = self.db.extension(&mut **tx).await? {
            let _ = self.extension.set(row.id());
            return Ok(row.id());
        }
        let created: Option<ExtensionRow> = sqlx::query_as(&format!(
            "INSERT INTO extensions (id, sid, name, configuration, enabled, date_created, \
             date_updated, revision) VALUES (1, $1, $2, $3, TRUE, {ts4}, {ts4}, \
             nextval('config_revision')) ON CONFLICT (id) DO NOTHING RETURNING {EXT_COLUMNS}",
            ts4 = ts!(4)
        ))
        .bind(crate::sid::new_extension_sid())
        .bind(EXTENSION_NAME)
        .bind(secret::seal(self.secret(), "{}"))
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        match created {
            Some(row) => {
                notify(tx, None, row.config.revision).await?;
                Ok(row.id())
            }
            // Created by a concurrent write that committed meanwhile.
            None => self
                .db
                .extension(&mut **tx)
                .await?
                .map(|row| row.id())
                .ok_or_else(|| StoreError::Unavailable("the extension record vanished".into())),
        }
    }

    pub async fn upsert(&self, write: &Write) -> Result<ConfigRecord, StoreError> {
        let sealed = write
            .configuration
            .as_deref()
            .map(|c| secret::seal(self.secret(), c));
        let (mut tx, now) = self.begin_write().await?;

        let Some(account) = write.account_sid else {
            let changed = match sealed.as_deref() {
                Some(configuration) => {
                    sqlx::query(&format!(
                        "INSERT INTO extensions AS t (id, sid, name, configuration, enabled, \
                         date_created, date_updated, revision) \
                         VALUES (1, $1, $2, $3, COALESCE($4, TRUE), {ts5}, {ts5}, 0) \
                         ON CONFLICT (id) DO UPDATE SET configuration = EXCLUDED.configuration, \
                         enabled = COALESCE($4, t.enabled), date_updated = EXCLUDED.date_updated \
                         RETURNING 1",
                        ts5 = ts!(5)
                    ))
                    .bind(crate::sid::new_extension_sid())
                    .bind(EXTENSION_NAME)
                    .bind(configuration)
                    .bind(write.enabled)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query(&format!(
                        "UPDATE extensions SET enabled = COALESCE($1, enabled), \
                         date_updated = {ts2} WHERE id = 1 RETURNING 1",
                        ts2 = ts!(2)
                    ))
                    .bind(write.enabled)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            if changed.is_none() {
                tx.rollback().await?;
                return Err(StoreError::MissingConfiguration);
            }
            // The row is locked by this transaction now: see the module comment.
            let row: ExtensionRow = sqlx::query_as(&format!(
                "UPDATE extensions SET revision = nextval('config_revision') WHERE id = 1 \
                 RETURNING {EXT_COLUMNS}"
            ))
            .fetch_one(&mut *tx)
            .await?;
            notify(&mut tx, None, row.config.revision).await?;
            // Converted before committing: a row this instance cannot read is not written.
            let record = row.into_record(self.secret())?;
            tx.commit().await?;
            return Ok(record);
        };

        let ext = self.ensure_extension(&mut tx, now).await?;
        let account_text = account.to_string();
        let changed = match sealed.as_deref() {
            Some(configuration) => {
                sqlx::query(&format!(
                    "INSERT INTO account_configurations AS t (account_sid, configuration, \
                     enabled, date_created, date_updated, revision) \
                     VALUES ($1, $2, COALESCE($3, TRUE), {ts4}, {ts4}, 0) \
                     ON CONFLICT (account_sid) DO UPDATE SET \
                     configuration = EXCLUDED.configuration, \
                     enabled = COALESCE($3, t.enabled), \
                     date_updated = EXCLUDED.date_updated \
                     RETURNING 1",
                    ts4 = ts!(4)
                ))
                .bind(&account_text)
                .bind(configuration)
                .bind(write.enabled)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "UPDATE account_configurations SET enabled = COALESCE($1, enabled), \
                     date_updated = {ts2} WHERE account_sid = $3 RETURNING 1",
                    ts2 = ts!(2)
                ))
                .bind(write.enabled)
                .bind(now)
                .bind(&account_text)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        if changed.is_none() {
            // Also undoes an extension record created above: nothing is written.
            tx.rollback().await?;
            return Err(StoreError::MissingConfiguration);
        }
        // The row is locked by this transaction now: see the module comment.
        // The notification goes out in the same statement (one round trip less per write).
        let row: AccountRow = sqlx::query_as(&format!(
            "UPDATE account_configurations SET revision = nextval('config_revision') \
             WHERE account_sid = $1 \
             RETURNING {ACCOUNT_COLUMNS}, pg_notify($2, account_sid || ':' || revision)::TEXT"
        ))
        .bind(&account_text)
        .bind(NOTIFY_CHANNEL)
        .fetch_one(&mut *tx)
        .await?;
        let record = row.into_record(&ext, self.secret())?;
        tx.commit().await?;
        Ok(record)
    }

    pub async fn delete(&self, account: &AccountSid) -> Result<Option<i64>, StoreError> {
        let (mut tx, _) = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM account_configurations WHERE account_sid = $1")
            .bind(account.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        // Taken while the deleted row stays locked: see the module comment.
        let revision: i64 = sqlx::query_scalar("SELECT nextval('config_revision')")
            .fetch_one(&mut *tx)
            .await?;
        notify(&mut tx, Some(account), revision).await?;
        tx.commit().await?;
        Ok(Some(revision))
    }

    pub async fn load_all(&self) -> Result<Snapshot, StoreError> {
        use futures_util::TryStreamExt as _;

        let mut tx = self.db.pool.begin_with(DIALECT.begin_snapshot).await?;
        let extension = self.db.extension(&mut *tx).await?;
        let secret = self.secret();
        let (ext, global) = match extension {
            Some(row) => (row.id(), Some(row.into_record(secret)?)),
            None => (ExtensionId::orphan(), None),
        };
        // Row by row: at 100,000 accounts, holding every raw row beside every record would
        // double the few hundred megabytes a full load needs.
        let mut accounts = Vec::new();
        {
            let query = format!("SELECT {ACCOUNT_COLUMNS} FROM account_configurations");
            let mut rows = sqlx::query_as::<_, AccountRow>(&query).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                accounts.push(row.into_record(&ext, secret)?);
            }
        }
        tx.commit().await?;
        // Informational: the cache does not rely on it (see `RoutingCache::load`).
        let revision = accounts
            .iter()
            .chain(global.iter())
            .map(|r| r.revision)
            .max()
            .unwrap_or(0);
        Ok(Snapshot {
            revision,
            global,
            accounts,
        })
    }

    /// Spawns the LISTEN task on its own one-connection pool (so that a busy main pool never
    /// delays notifications and the listener never takes a request's connection).
    pub fn listen(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(CHANGE_BUFFER);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with((*self.options).clone());
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                let outcome = tokio::select! {
                    _ = tx.closed() => break,
                    outcome = listen_session(&pool, &tx, &mut backoff) => outcome,
                };
                match outcome {
                    Ok(Session::ReceiverGone) => break,
                    Ok(Session::ConnectionLost) => {
                        tracing::warn!("database notification connection lost; reconnecting");
                    }
                    Err(e) => {
                        let e = StoreError::from(e);
                        tracing::warn!(error = %e, "database notification listener failed; retrying");
                    }
                }
                tokio::select! {
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            pool.close().await;
        });
        rx
    }
}

enum Session {
    ReceiverGone,
    ConnectionLost,
}

/// One connection's worth of listening: LISTEN, report `Resync`, then forward notifications
/// until the connection is lost.
async fn listen_session(
    pool: &PgPool,
    tx: &mpsc::Sender<Change>,
    backoff: &mut Duration,
) -> Result<Session, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnection is ours to do, so that every reconnect is followed by a Resync.
    listener.eager_reconnect(false);
    listener.listen(NOTIFY_CHANNEL).await?;
    *backoff = BACKOFF_MIN;
    tracing::debug!("listening for database notifications");
    if tx.send(Change::Resync).await.is_err() {
        return Ok(Session::ReceiverGone);
    }
    loop {
        let Some(notification) = listener.try_recv().await? else {
            return Ok(Session::ConnectionLost);
        };
        let change = parse_notify_payload(notification.payload()).unwrap_or_else(|| {
            // Not one of ours: the safe reaction is a full reload.
            tracing::warn!("unexpected payload on the notification channel; resyncing");
            Change::Resync
        });
        if tx.send(change).await.is_err() {
            return Ok(Session::ReceiverGone);
        }
    }
}
