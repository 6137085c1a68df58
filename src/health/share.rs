//! Sharing transitions between instances on one PostgreSQL (docs/operations.md): this instance's own
//! transitions are written to the store (which notifies the others), and a starting or
//! reconnected instance takes the stored states.

use std::sync::Arc;
use std::time::Duration;

use super::{HealthRegistry, SharedState};
use crate::routing::ProxyKey;
use crate::store::{HealthRow, Store, StoreError};

/// Back-off after a failed write (the transitions are kept and retried).
const RETRY: Duration = Duration::from_secs(1);

/// Writes this instance's transitions to `store` as they happen, for ever. Transitions made
/// while the database is unreachable are written once it is back (the latest per proxy).
pub async fn publish(registry: Arc<HealthRegistry>, store: Store) {
    registry.enable_sharing();
    loop {
        registry.outbox_ready().await;
        let states = registry.take_outbox();
        if states.is_empty() {
            continue;
        }
        let rows: Vec<HealthRow> = states.iter().map(row).collect();
        if let Err(e) = store.record_health(&rows).await {
            tracing::warn!(error = %e, proxies = rows.len(), "cannot share proxy health changes; retrying");
            registry.requeue(states);
            tokio::time::sleep(RETRY).await;
            // Wake the loop again for what was put back.
            registry.outbox_ready.notify_one();
        }
    }
}

fn row(state: &SharedState) -> HealthRow {
    HealthRow {
        proxy: state.proxy.to_string(),
        health: state.health,
        since: state.since,
    }
}

/// Applies the states stored by every instance (at start, and after the change follower
/// reconnected): newer than what this instance knows, they win.
pub async fn load(registry: &HealthRegistry, store: &Store) -> Result<usize, StoreError> {
    let rows = store.proxy_health().await?;
    for r in &rows {
        apply(registry, r);
    }
    Ok(rows.len())
}

/// Applies one state another instance shared.
pub fn apply(registry: &HealthRegistry, row: &HealthRow) {
    // Stored keys were written by `ProxyKey`; parse anyway, so that a hand-edited row that
    // is not canonical still finds its proxy.
    match ProxyKey::parse(&row.proxy) {
        Ok(key) => registry.apply_remote(key.as_str(), row.health, row.since),
        Err(_) => {
            tracing::debug!(proxy = %row.proxy, "ignoring a stored state of an unknown proxy form")
        }
    }
}
