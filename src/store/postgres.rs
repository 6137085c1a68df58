//! PostgreSQL backend.
//!
//! Writers run concurrently (so that commits share WAL flushes: one flush per commit in
//! turn would cap writes at a few hundred per second). Writers of one configuration take an
//! advisory lock on it first, so its revisions follow commit order, which is all the cache
//! needs to apply writes and notifications in any order. Every writer also holds a shared
//! "gate" lock that a bulk import takes exclusively: an import then needs no lock per
//! configuration (PostgreSQL's lock table could not hold a hundred thousand).
//!
//! Each write `NOTIFY`s channel `multiprovider` with `<AC…|global>:<revision>` (or `resync`
//! after a bulk import) inside its transaction, so the notification is delivered if and only
//! if the write commits.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::mpsc;

use super::diagnose;
use super::reads::{Db, Dialect};
use super::rows::{AccountRow, ExtensionId};
use super::{
    CHANGE_BUFFER, Change, LOAD_BATCH, LoadSink, NOTIFY_CHANNEL, StoreError, StoreOptions,
    parse_notify_payload,
};
use crate::secret::SecretKey;

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

static DIALECT: Dialect = Dialect {
    extension_columns: "sid, name, configuration, enabled, \
        (EXTRACT(EPOCH FROM date_created) * 1000000)::BIGINT AS date_created, \
        (EXTRACT(EPOCH FROM date_updated) * 1000000)::BIGINT AS date_updated, revision",
    account_columns: "account_sid, configuration, enabled, \
        (EXTRACT(EPOCH FROM date_created) * 1000000)::BIGINT AS date_created, \
        (EXTRACT(EPOCH FROM date_updated) * 1000000)::BIGINT AS date_updated, revision",
    revision_columns: "scope, revision, action, \
        (EXTRACT(EPOCH FROM date_created) * 1000000)::BIGINT AS date_created, \
        actor, remote_addr, enabled, configuration, rollback_of, changes",
    begin_snapshot: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    begin_write: "BEGIN",
    // Two-key advisory locks: their key space is apart from the one-key locks below.
    gate_shared: Some("SELECT pg_advisory_xact_lock_shared(7315, 0)"),
    gate_exclusive: Some("SELECT pg_advisory_xact_lock(7315, 0)"),
    lock_scope: Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"),
    bump_change_seq: None,
    notify: Some("SELECT pg_notify($1, $2)"),
    timestamp: |n| format!("(TIMESTAMPTZ 'epoch' + ${n}::BIGINT * INTERVAL '1 microsecond')"),
};

#[derive(Clone)]
pub(crate) struct PostgresStore {
    pub db: Db<Postgres>,
    /// For the listener's own pool (boxed: the options are large and `Store` is cloned).
    options: Arc<PgConnectOptions>,
}

impl PostgresStore {
    pub async fn connect(url: &str, options: StoreOptions) -> Result<PostgresStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|_| {
                StoreError::Unavailable("DATABASE_URL is not a valid postgres URL".into())
            })?
            .application_name("multiprovider");
        // One connection on its own first: the pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out; this names the cause at
        // once (docs/operations.md: refused, unknown database, authentication, TLS).
        let target = diagnose::PgTarget::new(url, &connect);
        match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, PgConnection::connect_with(&connect))
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
            .connect_with(connect.clone())
            .await?;
        Ok(PostgresStore {
            db: Db::new(pool, &DIALECT, options),
            options: Arc::new(connect),
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
        use futures_util::TryStreamExt as _;

        let mut tx = self.db.pool.begin_with(DIALECT.begin_snapshot).await?;
        let extension = self.db.extension(&mut *tx).await?;
        let secret = self.secret();
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let ext = match extension {
            Some(row) => {
                let id = row.id();
                batch.push(row.into_record(secret)?);
                id
            }
            None => ExtensionId::orphan(),
        };
        // Row by row, a batch at a time: only what the compiler has not taken yet is held.
        {
            let query = format!(
                "SELECT {} FROM account_configurations",
                DIALECT.account_columns
            );
            let mut rows = sqlx::query_as::<_, AccountRow>(&query).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                batch.push(row.into_record(&ext, secret)?);
                if batch.len() == LOAD_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(LOAD_BATCH));
                    if sink.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        tx.commit().await?;
        if !batch.is_empty() {
            let _ = sink.send(batch).await;
        }
        Ok(())
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
