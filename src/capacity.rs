//! Carrier capacity (docs/routing.md, capacity): one token bucket per (account or global,
//! `uri`, `username`) of a proxy with `limits`, refilled continuously, and this instance's
//! share of it when several instances serve one PostgreSQL (`cps / N`, `max(1, burst / N)`).
//!
//! The lookup path locks one bucket (a few instructions, never the database); N is an atomic
//! refreshed in the background by the instance registry (`instances`).
//!
//! Memory is bounded by the configurations: each cached configuration holds its buckets
//! (`ProxyBuckets`); the registry only remembers them weakly, so a bucket lives exactly as
//! long as some cached configuration names it with limits. An edit that keeps a proxy's
//! (scope, `uri`, `username`) finds its bucket alive (the old configuration still holds it
//! while the new one registers) and keeps its tokens, capped at the new `burst`.

pub mod instances;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use crate::routing::{CapacityState, CapacityView, CompiledRouting, Limits};
use crate::sid::AccountSid;

/// A clock in microseconds that never goes back (injectable for tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process's monotonic clock.
pub fn monotonic() -> Clock {
    let start = Instant::now();
    Arc::new(move || u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX))
}

/// One bucket's tokens, in this instance's share. Pure: the time is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketState {
    limits: Limits,
    tokens: f64,
    /// When `tokens` was last brought up to date (µs).
    at: u64,
}

impl BucketState {
    /// A full bucket at `now` for `instances` instances.
    pub fn new(limits: Limits, now: u64, instances: u32) -> BucketState {
        BucketState {
            limits,
            tokens: share(limits, instances).1,
            at: now,
        }
    }

    /// Refills for the time since the last call, up to this instance's `burst`.
    fn refill(&mut self, now: u64, instances: u32) {
        let (cps, burst) = share(self.limits, instances);
        let elapsed = now.saturating_sub(self.at) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed * cps).min(burst);
        self.at = self.at.max(now);
    }

    /// Milliseconds until one whole token is there (at least 1).
    fn retry_after_ms(&self, instances: u32) -> u64 {
        let (cps, _) = share(self.limits, instances);
        let ms = ((1.0 - self.tokens) / cps * 1000.0).ceil();
        (ms as u64).max(1)
    }

    /// Takes one token, or says in how many milliseconds the first returns.
    pub fn take(&mut self, now: u64, instances: u32) -> Result<(), u64> {
        self.refill(now, instances);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.retry_after_ms(instances))
        }
    }

    /// As `take`, taking nothing.
    pub fn peek(&mut self, now: u64, instances: u32) -> Result<(), u64> {
        self.refill(now, instances);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.retry_after_ms(instances))
        }
    }

    /// This instance's share and its tokens now.
    pub fn state(&mut self, now: u64, instances: u32) -> CapacityState {
        self.refill(now, instances);
        let (cps, burst) = share(self.limits, instances);
        CapacityState {
            cps,
            burst,
            tokens: self.tokens,
        }
    }

    /// New limits after an edit: the tokens so far are kept, capped at the new `burst`.
    pub fn set_limits(&mut self, limits: Limits, now: u64, instances: u32) {
        if limits == self.limits {
            return;
        }
        self.refill(now, instances);
        self.limits = limits;
        self.tokens = self.tokens.min(share(limits, instances).1);
    }

    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

/// This instance's `(cps, burst)`: `cps / N` and `max(1, burst / N)`.
pub fn share(limits: Limits, instances: u32) -> (f64, f64) {
    let n = f64::from(instances.max(1));
    (
        f64::from(limits.cps) / n,
        (f64::from(limits.burst) / n).max(1.0),
    )
}

/// What every bucket shares: the clock and the number of live instances.
struct Shared {
    clock: Clock,
    instances: AtomicU32,
}

impl Shared {
    fn now(&self) -> u64 {
        (self.clock)()
    }
    fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed).max(1)
    }
}

/// One proxy's bucket, shared by every cached configuration of one scope that names the
/// proxy (by `uri` and `username`) with limits.
pub struct Bucket {
    state: Mutex<BucketState>,
    shared: Arc<Shared>,
}

impl Bucket {
    fn with<T>(&self, f: impl FnOnce(&mut BucketState, u64, u32) -> T) -> T {
        let now = self.shared.now();
        let n = self.shared.instances();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state, now, n)
    }
}

type Key = (Option<AccountSid>, Box<str>, Option<Box<str>>);

/// Every live bucket, weakly: the cached configurations own them.
pub struct CapacityRegistry {
    shared: Arc<Shared>,
    /// This instance and the live ones (N is their number).
    members: instances::Instances,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<Key, Weak<Bucket>>,
    /// Sweep when the map reaches this size (twice the live ones at the last sweep).
    sweep_at: usize,
}

impl Default for CapacityRegistry {
    fn default() -> Self {
        CapacityRegistry::new(monotonic())
    }
}

impl std::fmt::Debug for CapacityRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapacityRegistry")
            .field("instances", &self.instances())
            .finish_non_exhaustive()
    }
}

impl CapacityRegistry {
    pub fn new(clock: Clock) -> CapacityRegistry {
        CapacityRegistry {
            shared: Arc::new(Shared {
                clock,
                instances: AtomicU32::new(1),
            }),
            members: instances::Instances::new(),
            buckets: Mutex::default(),
        }
    }

    /// This instance and the live ones as last seen.
    pub fn members(&self) -> &instances::Instances {
        &self.members
    }

    /// Live instances sharing the limits (at least 1).
    pub fn instances(&self) -> u32 {
        self.shared.instances()
    }

    /// Sets N, as the instance registry last saw it.
    pub fn set_instances(&self, n: u32) {
        self.shared.instances.store(n.max(1), Ordering::Relaxed);
    }

    /// Buckets held in memory (live ones).
    pub fn len(&self) -> usize {
        self.lock()
            .map
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buckets of `routing`'s limited proxies in scope `account` (`None`: global), by
    /// proxy index: existing ones kept (limits updated), new ones full. Nothing for a
    /// configuration without limits.
    pub fn register(&self, account: Option<AccountSid>, routing: &CompiledRouting) -> ProxyBuckets {
        let limits = routing.limits();
        if limits.is_empty() {
            return ProxyBuckets(None);
        }
        let now = self.shared.now();
        let n = self.shared.instances();
        let mut buckets = self.lock();
        let map = &mut buckets.map;
        let cells: Arc<[Option<Arc<Bucket>>]> = routing
            .proxies()
            .zip(limits)
            .map(|(proxy, limits)| {
                let limits = limits?;
                let key: Key = (
                    account,
                    proxy.uri().into(),
                    proxy.username().map(Into::into),
                );
                if let Some(bucket) = map.get(&key).and_then(Weak::upgrade) {
                    bucket.with(|s, _, _| s.set_limits(limits, now, n));
                    return Some(bucket);
                }
                let bucket = Arc::new(Bucket {
                    state: Mutex::new(BucketState::new(limits, now, n)),
                    shared: self.shared.clone(),
                });
                map.insert(key, Arc::downgrade(&bucket));
                Some(bucket)
            })
            .collect();
        // Forget buckets no configuration holds any more; amortised: the map at most
        // doubles between sweeps.
        if buckets.map.len() >= buckets.sweep_at {
            buckets.sweep();
        }
        ProxyBuckets(Some(cells))
    }

    /// Forgets the buckets no configuration holds any more.
    pub fn sweep(&self) {
        self.lock().sweep();
    }
}

impl Buckets {
    fn sweep(&mut self) {
        self.map.retain(|_, w| w.strong_count() > 0);
        self.sweep_at = (self.map.len() * 2).max(64);
    }
}

/// The buckets of one cached configuration, by proxy index (`None`: no limits). Empty for a
/// configuration without limits: nothing is held and nothing is asked.
#[derive(Clone, Default)]
pub struct ProxyBuckets(Option<Arc<[Option<Arc<Bucket>>]>>);

impl std::fmt::Debug for ProxyBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ProxyBuckets")
            .field(&self.0.as_ref().map_or(0, |c| c.len()))
            .finish()
    }
}

impl ProxyBuckets {
    fn bucket(&self, index: usize) -> Option<&Bucket> {
        self.0.as_ref()?.get(index)?.as_deref()
    }
}

impl CapacityView for ProxyBuckets {
    fn take(&self, index: usize) -> Result<(), u64> {
        match self.bucket(index) {
            Some(b) => b.with(|s, now, n| s.take(now, n)),
            None => Ok(()),
        }
    }

    fn peek(&self, index: usize) -> Result<(), u64> {
        match self.bucket(index) {
            Some(b) => b.with(|s, now, n| s.peek(now, n)),
            None => Ok(()),
        }
    }

    fn state(&self, index: usize) -> Option<CapacityState> {
        self.bucket(index)
            .map(|b| b.with(|s, now, n| s.state(now, n)))
    }

    fn left_out(&self, skipped: usize, unavailable: bool) {
        if skipped > 0 {
            metrics::counter!("multiprovider_capacity_skips_total").increment(skipped as u64);
        }
        if unavailable {
            metrics::counter!("multiprovider_lookups_unavailable_total", "reason" => "capacity")
                .increment(1);
        }
    }
}

/// Describes the capacity series and exports them from zero.
pub fn init_metrics() {
    metrics::describe_counter!(
        "multiprovider_capacity_skips_total",
        "proxies left out of answers because their calls-per-second bucket was empty"
    );
    metrics::describe_counter!(
        "multiprovider_lookups_unavailable_total",
        "voice lookups answered unavailable, by reason"
    );
    metrics::counter!("multiprovider_capacity_skips_total").increment(0);
    metrics::counter!("multiprovider_lookups_unavailable_total", "reason" => "capacity")
        .increment(0);
}

#[cfg(test)]
mod tests;
