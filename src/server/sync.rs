//! Keeping the cache equal to the store: the first full load (retried while the database is
//! unreachable) and, on PostgreSQL, the changes other instances commit.

use tokio::sync::mpsc;

use super::{RETRY_MAX, RETRY_MIN};
use crate::health;
use crate::http::{AppState, ops};
use crate::store::{Change, StoreError};

/// Reads every configuration and replaces the cache's content with it.
pub(super) async fn load_cache(state: &AppState) -> Result<(), StoreError> {
    match full_load(state).await {
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

/// Reads one snapshot and compiles it while it streams in, off the async workers (seconds
/// of CPU at 100,000 accounts); the cache drops what the snapshot lacks only once the whole
/// snapshot has been read. The snapshot's read transaction stays open while the compiler
/// catches up (the channel is bounded, to bound memory): about 20 s at 1,000,000 accounts on
/// two cores, during which PostgreSQL's vacuum horizon waits and a schema migration would.
async fn full_load(state: &AppState) -> Result<(), StoreError> {
    let mark = state.configs.cache().mark();
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (sink, batches) = mpsc::channel(2 * threads);
    let cache = state.configs.cache().clone();
    let compiling = tokio::task::spawn_blocking(move || cache.apply_batches(batches));
    let read = state.configs.store().load_into(sink).await;
    let present = compiling
        .await
        .map_err(|e| StoreError::Corrupt(format!("compiling the snapshot failed: {e}")))?;
    read?;
    // A pass over every account (150 ms at 1,000,000): not on an async worker either.
    let cache = state.configs.cache().clone();
    let accounts = tokio::task::spawn_blocking(move || {
        cache.finish_load(&present, mark);
        release_free_memory();
        present.len()
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("finishing the load failed: {e}")))?;
    tracing::debug!(
        accounts,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot compiled"
    );
    Ok(())
}

/// A full load reads every stored configuration (gigabytes of text at 1,000,000 accounts,
/// a batch at a time) and keeps only the compiled form; glibc keeps the freed pages unless
/// asked.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free heap memory to the kernel; it has no
        // preconditions and touches no memory still in use.
        unsafe {
            malloc_trim(0);
        }
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
            Change::Resync => match full_load(&state).await {
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
