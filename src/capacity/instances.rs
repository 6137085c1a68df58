//! The instance registry (docs/routing.md, capacity): a heartbeat each second; the live
//! instances' count is N, by which every bucket divides its limits. The lookup path reads N
//! from an atomic; this task refreshes it. When the database is away, the last known N and
//! list stay.

use std::sync::{Arc, Mutex};

use std::time::Duration;

use super::CapacityRegistry;
use crate::store::{InstanceRow, Store};

/// How often the heartbeat is recorded and N refreshed.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// This instance, and the live ones as last seen.
#[derive(Debug)]
pub struct Instances {
    me: InstanceRow,
    live: Mutex<Vec<InstanceRow>>,
}

impl Instances {
    /// This instance, started now, alone until the first heartbeat says otherwise.
    pub fn new() -> Instances {
        let now = now_micros();
        let me = InstanceRow {
            id: format!("{:016x}", rand::random::<u64>()),
            started_at: now,
            last_seen: now,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        Instances {
            live: Mutex::new(vec![me.clone()]),
            me,
        }
    }

    pub fn id(&self) -> &str {
        &self.me.id
    }

    /// The live instances as last seen (SQLite: this one, seen now).
    pub fn live(&self) -> Vec<InstanceRow> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<InstanceRow>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One heartbeat: records it, and on an answer sets the live list and N.
    pub async fn beat(&self, store: &Store, capacity: &CapacityRegistry) {
        match store.heartbeat(&self.me.id, &self.me.version).await {
            Ok(Some(rows)) => {
                // This instance is live even if its row was read a moment before its write
                // became visible.
                let n = if rows.iter().any(|r| r.id == self.me.id) {
                    rows.len()
                } else {
                    rows.len() + 1
                };
                capacity.set_instances(u32::try_from(n).unwrap_or(u32::MAX));
                *self.lock() = rows;
            }
            Ok(None) => {
                let mut live = self.lock();
                if let Some(me) = live.first_mut() {
                    me.last_seen = now_micros();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, instances = capacity.instances(),
                    "cannot record the heartbeat; limits stay shared by the last known number of instances");
            }
        }
    }
}

impl Default for Instances {
    fn default() -> Self {
        Instances::new()
    }
}

/// Beats every second until aborted; also forgets buckets no configuration holds.
pub async fn run(capacity: Arc<CapacityRegistry>, store: Store) {
    let instances = capacity.members();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A database that hangs must not stop the beat from reporting later.
        if tokio::time::timeout(HEARTBEAT * 3, instances.beat(&store, &capacity))
            .await
            .is_err()
        {
            tracing::warn!(
                "the heartbeat timed out; limits stay shared by the last known number of instances"
            );
        }
        capacity.sweep();
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
