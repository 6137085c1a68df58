//! Keeping the cache equal to the store: the first full load (retried while the database is
//! unreachable) and, on PostgreSQL, the changes other instances commit.

use tokio::sync::mpsc;

use super::{RETRY_MAX, RETRY_MIN};
use crate::health;
use crate::http::{AppState, ops};
use crate::store::{Change, StoreError};

/// Reads every configuration and replaces the cache's content with it.
pub(super) async fn load_cache(state: &AppState) -> Result<(), StoreError> {
    match state.configs.reload().await {
        Ok(()) => {
            tracing::info!(
                accounts = state.configs.cache().len(),
                "routing cache loaded"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the routing cache");
            ops::database_error();
            Err(e)
        }
    }
}

/// `load_cache` until it succeeds, backing off (the server answers "not ready" meanwhile).
pub(super) async fn retry_load(state: AppState) {
    let mut delay = RETRY_MIN;
    loop {
        tokio::time::sleep(delay).await;
        if load_cache(&state).await.is_ok() {
            break;
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// Applies the changes other instances commit (PostgreSQL LISTEN/NOTIFY): proxy health
/// transitions at once (they carry their data, none of it secret); each notified
/// configuration is re-read (the notification carries no data, so nothing secret travels
/// through it), and everything is reloaded after a (re)connect of the listener.
pub(super) async fn follow_changes(state: AppState, mut changes: mpsc::Receiver<Change>) {
    while let Some(change) = changes.recv().await {
        if let Change::Scope {
            account_sid,
            revision,
        } = change
            && state.configs.holds(account_sid, revision)
        {
            continue;
        }
        let result = match change {
            Change::Health(row) => {
                health::share::apply(state.configs.cache().health(), &row);
                Ok(())
            }
            Change::Resync => match state.configs.reload().await {
                // Transitions notified while the listener was away (docs/operations.md).
                Ok(()) => {
                    health::share::load(state.configs.cache().health(), state.configs.store())
                        .await
                        .map(|_| ())
                }
                Err(e) => Err(e),
            },
            Change::Scope {
                account_sid,
                revision,
            } => state.configs.apply_notified(account_sid, revision).await,
        };
        if let Err(e) = result {
            // The listener reconnects and sends `Resync` once the database is back.
            tracing::warn!(error = %e, "cannot apply a change notified by another instance");
            ops::database_error();
        }
    }
}
