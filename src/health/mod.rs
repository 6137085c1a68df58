//! Per-proxy health (docs/operations.md): one breaker per proxy identity (lowercase host and port),
//! shared by every configuration that names the proxy.
//!
//! The lookup hot path never takes a lock here: each cached configuration holds a
//! `ProxyStates`, the `Arc`s of its proxies' cells in proxy order, registered when the
//! configuration is compiled into the cache; a lookup reads one atomic byte per matching
//! proxy. Reports and probes lock one proxy's breaker (`breaker`, pure) to change it, then
//! publish the new state to that byte.
//!
//! Memory is bounded by the configurations: a cell exists only while some cached
//! configuration names its proxy (each cell counts its configurations; the periodic `tick`
//! forgets cells that none uses any more), and a report for any other proxy changes nothing.
//!
//! Several instances on one PostgreSQL share transitions (`share`): this instance's own
//! transitions go to an outbox that a task writes to the database (which notifies the
//! others); theirs arrive through the store's change follower and are applied with
//! `apply_remote`. Cool-down expiries are not shared: each instance derives them from the
//! shared time the proxy went down.

pub mod breaker;
pub mod probe;
pub mod share;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;

pub use breaker::{Breaker, Observation, Policy, Transition};

use crate::routing::{CompiledRouting, Health, ProxyKey};

/// How often cool-downs are checked (their precision).
pub const TICK: Duration = Duration::from_millis(100);
/// How often unused cells are forgotten.
const SWEEP_EVERY_TICKS: u32 = 10;

/// Unix time in microseconds, the clock of the breakers.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// One proxy's health.
struct Cell {
    key: ProxyKey,
    /// `Health as u8`: what lookups read.
    state: AtomicU8,
    /// Cached configurations that name this proxy.
    configurations: AtomicUsize,
    /// Enabled configurations that name it with `sip:` (not `sips:`): probing targets.
    probe_users: AtomicUsize,
    breaker: Mutex<Breaker>,
}

impl Cell {
    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        // A panic while holding it cannot leave a breaker half-changed: recover the value.
        self.breaker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn health(&self) -> Health {
        Health::from_u8(self.state.load(Ordering::Relaxed))
    }
}

/// The health of one configuration's proxies, by proxy index: what a lookup reads.
#[derive(Clone, Default)]
pub struct ProxyStates(Option<Arc<Registration>>);

impl std::fmt::Debug for ProxyStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.as_ref().map_or(0, |r| r.cells.len());
        write!(f, "ProxyStates({n} proxies)")
    }
}

impl ProxyStates {
    /// The health of proxy `index` (`up` for an index this configuration does not have).
    #[inline]
    pub fn get(&self, index: usize) -> Health {
        match &self.0 {
            Some(r) => r.cells.get(index).map_or(Health::Up, |c| c.health()),
            None => Health::Up,
        }
    }
}

/// A configuration's hold on its proxies' cells; released when the configuration leaves the
/// cache (the last clone is dropped). Small on purpose: one per cached configuration.
struct Registration {
    cells: Box<[Arc<Cell>]>,
    /// Bit i: `cells[i]` is the first of its proxy here (counted once as a configuration).
    /// At most 100 proxies a configuration (validated), so 128 bits hold them.
    counted: u128,
    /// Bit i: this configuration counts as a probe user of `cells[i]`.
    probes: u128,
}

impl Drop for Registration {
    fn drop(&mut self) {
        for (i, cell) in self.cells.iter().enumerate() {
            if self.counted & (1 << i) != 0 {
                cell.configurations.fetch_sub(1, Ordering::AcqRel);
            }
            if self.probes & (1 << i) != 0 {
                cell.probe_users.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// One proxy as `GET /v1/proxies` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyView {
    pub proxy: ProxyKey,
    pub health: Health,
    pub consecutive_failures: u32,
    /// Unix microseconds of the last state change.
    pub since: Option<i64>,
    pub last_outcome_at: Option<i64>,
    pub configurations: usize,
}

/// A transition to share with the other instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedState {
    pub proxy: ProxyKey,
    pub health: Health,
    /// Unix microseconds.
    pub since: i64,
}

type KeyHasher = foldhash::fast::RandomState;

/// Every tracked proxy's breaker.
pub struct HealthRegistry {
    cells: DashMap<ProxyKey, Arc<Cell>, KeyHasher>,
    policy: Policy,
    /// Set once a task shares transitions (PostgreSQL); until then nothing is queued.
    sharing: AtomicBool,
    /// This instance's transitions not yet shared: the latest per proxy.
    outbox: Mutex<HashMap<ProxyKey, (Health, i64)>>,
    outbox_ready: tokio::sync::Notify,
}

impl Default for HealthRegistry {
    fn default() -> HealthRegistry {
        HealthRegistry::new(Policy::default())
    }
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry")
            .field("proxies", &self.cells.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HealthRegistry {
    pub fn new(policy: Policy) -> HealthRegistry {
        HealthRegistry {
            cells: DashMap::default(),
            policy,
            sharing: AtomicBool::new(false),
            outbox: Mutex::default(),
            outbox_ready: tokio::sync::Notify::new(),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Proxies tracked (some may have just lost their last configuration).
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Takes a hold on the cells of `routing`'s proxies (created `up` when new), for as long
    /// as the returned value (or a clone) lives. `enabled`: whether the configuration is
    /// switched on (only those are probed).
    pub fn register(&self, routing: &CompiledRouting, enabled: bool) -> ProxyStates {
        let proxies: Vec<(ProxyKey, bool)> =
            routing.proxies().map(|p| (p.key(), p.is_sips())).collect();
        if proxies.is_empty() {
            return ProxyStates(None);
        }
        // Validated: at most 100 proxies, within the 128 bits of the masks.
        let proxies = &proxies[..proxies.len().min(128)];
        let mut cells: Vec<Arc<Cell>> = Vec::with_capacity(proxies.len());
        let (mut counted, mut probes) = (0u128, 0u128);
        for (i, (key, secure)) in proxies.iter().enumerate() {
            let probe = enabled && !secure;
            // At most 100 proxies a configuration: a scan is cheaper than a set.
            if let Some(first) = proxies[..i].iter().position(|(k, _)| k == key) {
                let cell = cells[first].clone();
                if probe && probes & (1 << first) == 0 {
                    // Already counted as a configuration of this cell, so it cannot be
                    // forgotten meanwhile.
                    cell.probe_users.fetch_add(1, Ordering::AcqRel);
                    probes |= 1 << first;
                }
                cells.push(cell);
                continue;
            }
            cells.push(self.acquire(key, probe));
            counted |= 1 << i;
            if probe {
                probes |= 1 << i;
            }
        }
        ProxyStates(Some(Arc::new(Registration {
            cells: cells.into_boxed_slice(),
            counted,
            probes,
        })))
    }

    /// The cell of `key`, created if new, with one more configuration counted. The count
    /// changes under the map's shard lock, which `sweep` takes to forget unused cells, so
    /// a cell is never forgotten between being found and being counted.
    fn acquire(&self, key: &ProxyKey, probe: bool) -> Arc<Cell> {
        let count = |cell: &Cell| {
            cell.configurations.fetch_add(1, Ordering::AcqRel);
            if probe {
                cell.probe_users.fetch_add(1, Ordering::AcqRel);
            }
        };
        if let Some(cell) = self.cells.get(key.as_str()) {
            count(&cell);
            return cell.clone();
        }
        let cell = self.cells.entry(key.clone()).or_insert_with(|| {
            Arc::new(Cell {
                key: key.clone(),
                state: AtomicU8::new(Health::Up as u8),
                configurations: AtomicUsize::new(0),
                probe_users: AtomicUsize::new(0),
                breaker: Mutex::default(),
            })
        });
        count(&cell);
        cell.clone()
    }

    fn tracked(&self, proxy: &str) -> Option<Arc<Cell>> {
        self.cells
            .get(proxy)
            .filter(|c| c.configurations.load(Ordering::Acquire) > 0)
            .map(|c| c.clone())
    }

    /// A report or probe result for `proxy` (a `ProxyKey` string) at `now`; false when no
    /// configuration uses that proxy (then nothing is kept).
    pub fn observe(&self, proxy: &str, observation: Observation, now: i64) -> bool {
        let Some(cell) = self.tracked(proxy) else {
            return false;
        };
        let transition = {
            let mut breaker = cell.breaker();
            let t = breaker.observe(observation, now, self.policy);
            cell.state.store(breaker.state() as u8, Ordering::Release);
            t
        };
        if let Some(t) = transition {
            self.transitioned(&cell, t, true);
        }
        true
    }

    /// Another instance's transition of `proxy` to `health` at `since` (unix microseconds).
    pub fn apply_remote(&self, proxy: &str, health: Health, since: i64) {
        let Some(cell) = self.tracked(proxy) else {
            return;
        };
        let transition = {
            let mut breaker = cell.breaker();
            let t = breaker.apply_remote(health, since);
            cell.state.store(breaker.state() as u8, Ordering::Release);
            t
        };
        if let Some(t) = transition {
            self.transitioned(&cell, t, false);
        }
    }

    fn transitioned(&self, cell: &Cell, t: Transition, share: bool) {
        transition_counter(t.to).increment(1);
        tracing::info!(proxy = %cell.key, from = %t.from, to = %t.to, local = share, "proxy health changed");
        if share && self.sharing.load(Ordering::Acquire) {
            self.outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cell.key.clone(), (t.to, t.at));
            self.outbox_ready.notify_one();
        }
    }

    /// Cool-downs that ended by `now` (`down` → `probing`). Only `down` cells are locked.
    pub fn tick(&self, now: i64) {
        let due: Vec<Arc<Cell>> = self
            .cells
            .iter()
            .filter(|c| c.health() == Health::Down)
            .map(|c| c.clone())
            .collect();
        for cell in due {
            let transition = {
                let mut breaker = cell.breaker();
                let t = breaker.tick(now, self.policy);
                cell.state.store(breaker.state() as u8, Ordering::Release);
                t
            };
            if let Some(t) = transition {
                self.transitioned(&cell, t, false);
            }
        }
    }

    /// Forgets the proxies no configuration uses any more.
    pub fn sweep(&self) {
        self.cells
            .retain(|_, c| c.configurations.load(Ordering::Acquire) > 0);
    }

    /// Sets `multiprovider_proxies{health}` (when `/metrics` is scraped).
    pub fn export_gauges(&self) {
        let mut counts = [0usize; 3];
        for cell in self.cells.iter() {
            if cell.configurations.load(Ordering::Acquire) > 0 {
                counts[cell.health() as usize] += 1;
            }
        }
        for health in Health::ALL {
            metrics::gauge!("multiprovider_proxies", "health" => health.as_str())
                .set(counts[health as usize] as f64);
        }
    }

    /// The health of `proxy` if it is tracked, else `up`; takes no hold on anything (a
    /// simulation reads the live states without registering its draft's proxies).
    pub fn peek(&self, proxy: &ProxyKey) -> Health {
        self.cells
            .get(proxy)
            .map_or(Health::Up, |cell| cell.health())
    }

    /// Every proxy some configuration uses, ordered by `proxy`.
    pub fn list(&self) -> Vec<ProxyView> {
        let mut views: Vec<ProxyView> = self
            .cells
            .iter()
            .filter_map(|cell| {
                let configurations = cell.configurations.load(Ordering::Acquire);
                (configurations > 0).then(|| {
                    let b = cell.breaker();
                    ProxyView {
                        proxy: cell.key.clone(),
                        health: b.state(),
                        consecutive_failures: b.consecutive_failures(),
                        since: b.since(),
                        last_outcome_at: b.last_outcome_at(),
                        configurations,
                    }
                })
            })
            .collect();
        views.sort_by(|a, b| a.proxy.cmp(&b.proxy));
        views
    }

    /// The proxies to probe: used by an enabled configuration with `sip:` (not `sips:`).
    pub fn probe_targets(&self) -> Vec<ProxyKey> {
        let mut keys: Vec<ProxyKey> = self
            .cells
            .iter()
            .filter(|c| c.probe_users.load(Ordering::Acquire) > 0)
            .map(|c| c.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Starts queueing this instance's transitions for `take_outbox`.
    pub fn enable_sharing(&self) {
        self.sharing.store(true, Ordering::Release);
    }

    /// The transitions queued since the last call (the latest per proxy).
    pub fn take_outbox(&self) -> Vec<SharedState> {
        let drained = std::mem::take(&mut *self.outbox.lock().unwrap_or_else(|e| e.into_inner()));
        drained
            .into_iter()
            .map(|(proxy, (health, since))| SharedState {
                proxy,
                health,
                since,
            })
            .collect()
    }

    /// Puts back transitions that could not be shared, unless newer ones were queued since.
    pub fn requeue(&self, states: Vec<SharedState>) {
        let mut outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        for s in states {
            outbox.entry(s.proxy).or_insert((s.health, s.since));
        }
    }

    /// Waits until `take_outbox` has something (or spuriously).
    pub async fn outbox_ready(&self) {
        self.outbox_ready.notified().await;
    }
}

/// Runs `tick` every `TICK` and `sweep` every second, for ever.
pub async fn run_ticker(registry: Arc<HealthRegistry>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        interval.tick().await;
        registry.tick(now_micros());
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
            registry.sweep();
        }
    }
}

fn transition_counter(to: Health) -> &'static metrics::Counter {
    static HANDLES: std::sync::OnceLock<[metrics::Counter; 3]> = std::sync::OnceLock::new();
    let handles = HANDLES.get_or_init(|| {
        Health::ALL
            .map(|h| metrics::counter!("multiprovider_proxy_transitions_total", "to" => h.as_str()))
    });
    &handles[to as usize]
}

fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(
            "multiprovider_proxies",
            "proxies used by configurations, by health"
        );
        metrics::describe_counter!(
            "multiprovider_proxy_transitions_total",
            "proxy health state changes seen by this instance, by new state"
        );
    });
}

/// Exports the two series from the start (zero), so that alerts can use them at once. Call
/// it once the metrics recorder is installed: counter handles are kept once taken.
pub fn init_metrics(registry: &HealthRegistry) {
    describe_metrics();
    for h in Health::ALL {
        transition_counter(h).increment(0);
    }
    registry.export_gauges();
}

#[cfg(test)]
mod tests;
