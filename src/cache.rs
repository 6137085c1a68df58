//! Every configuration compiled and held in memory: the lookup path never touches the database.
//!
//! Writes and notifications may arrive in any order (two requests committing at once, a
//! NOTIFY overtaking the writer's own update); each carries the store's `revision`, and an
//! entry is only ever replaced by a newer revision, so the cache converges on what the
//! database holds. Deleted accounts leave a tombstone (16 bytes + revision) for the same reason.
//!
//! A full reload must not undo what was applied while its snapshot was being read: entries
//! remember when (in this cache's own sequence) they were applied, and a load only drops
//! entries that are missing from its snapshot *and* older than the load.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::capacity::{CapacityRegistry, ProxyBuckets};
use crate::health::{HealthRegistry, ProxyStates};
use crate::routing::{self, CompiledRouting, Decider, RegexInterner, Source};
use crate::sid::AccountSid;
use crate::store::ConfigRecord;

#[derive(Debug)]
struct Entry {
    revision: i64,
    /// This cache's apply sequence number (see `mark`).
    applied: u64,
    enabled: bool,
    routing: Arc<CompiledRouting>,
    /// The health cells of the configuration's proxies (docs/operations.md), held while it is cached.
    health: ProxyStates,
    /// The buckets of its limited proxies (docs/routing.md, capacity), held while cached.
    capacity: ProxyBuckets,
}

/// What a lookup resolved to: which configuration decides, its revision (docs/api.md: `null`
/// when nothing decides), its compiled routing, and the health of its proxies (by proxy
/// index; atomic reads, no lock).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: Source,
    pub revision: Option<i64>,
    pub routing: Option<Arc<CompiledRouting>>,
    pub health: ProxyStates,
    /// The buckets of its limited proxies (empty without limits).
    pub capacity: ProxyBuckets,
}

impl Resolved {
    fn none() -> Resolved {
        Resolved {
            source: Source::None,
            revision: None,
            routing: None,
            health: ProxyStates::default(),
            capacity: ProxyBuckets::default(),
        }
    }
}

/// Account Sids hash with foldhash (seeded per process) rather than SipHash, the standard
/// library's default, which costs several times as much for a 16-byte key.
type SidHasher = foldhash::fast::RandomState;

#[derive(Default)]
pub struct RoutingCache {
    accounts: DashMap<AccountSid, Entry, SidHasher>,
    tombstones: DashMap<AccountSid, i64, SidHasher>,
    global: ArcSwapOption<Entry>,
    interner: RegexInterner,
    loaded: AtomicBool,
    applies: AtomicU64,
    /// Every cached configuration registers its proxies here (docs/operations.md).
    health: Arc<HealthRegistry>,
    /// Every cached configuration with limits holds its buckets from here.
    capacity: Arc<CapacityRegistry>,
}

impl RoutingCache {
    pub fn new() -> RoutingCache {
        RoutingCache::default()
    }

    /// A cache whose configurations register their proxies in `health`.
    pub fn with_health(health: Arc<HealthRegistry>) -> RoutingCache {
        RoutingCache {
            health,
            ..RoutingCache::default()
        }
    }

    /// A cache whose configurations hold their buckets in `capacity` (the server's, which
    /// the instance registry keeps told of N).
    pub fn with_capacity(mut self, capacity: Arc<CapacityRegistry>) -> RoutingCache {
        self.capacity = capacity;
        self
    }

    /// The buckets of the limited proxies (docs/routing.md, capacity).
    pub fn capacity(&self) -> &Arc<CapacityRegistry> {
        &self.capacity
    }

    /// The proxies' breakers, shared by every configuration that names them.
    pub fn health(&self) -> &Arc<HealthRegistry> {
        &self.health
    }

    /// True once a full snapshot has been loaded (`/health/ready`).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Where the apply sequence stands: take it *before* reading a snapshot and pass it to
    /// `load`, so that nothing applied meanwhile is dropped.
    pub fn mark(&self) -> u64 {
        self.applies.load(Ordering::SeqCst)
    }

    /// Number of account configurations held.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The decision of docs/routing.md: global switch, then the account's own configuration, then the
    /// global one when it is enabled and not `{}`.
    pub fn resolve(&self, account: &AccountSid) -> Resolved {
        let global = self.global.load();
        if let Some(g) = global.as_ref()
            && !g.enabled
        {
            return Resolved::none();
        }
        if let Some(entry) = self.accounts.get(account) {
            return if entry.enabled {
                Resolved {
                    source: Source::Account,
                    revision: Some(entry.revision),
                    routing: Some(entry.routing.clone()),
                    health: entry.health.clone(),
                    capacity: entry.capacity.clone(),
                }
            } else {
                Resolved::none()
            };
        }
        match global.as_ref() {
            Some(g) if !g.routing.is_empty() => Resolved {
                source: Source::Global,
                revision: Some(g.revision),
                routing: Some(g.routing.clone()),
                health: g.health.clone(),
                capacity: g.capacity.clone(),
            },
            _ => Resolved::none(),
        }
    }

    /// `resolve`, and which configuration decided as `explain` tells it (docs/api.md): from the
    /// same reads, so that the two cannot disagree. Off the hot path.
    pub fn resolve_explained(&self, account: &AccountSid) -> (Resolved, Decider) {
        let global = self.global.load();
        let entry = self.accounts.get(account);
        let decider = match (entry.as_deref(), global.as_deref()) {
            (Some(e), Some(g)) if !g.enabled => Decider::SwitchedOff {
                account_revision: e.revision,
                global_revision: g.revision,
            },
            (Some(e), _) => Decider::Account {
                revision: e.revision,
                enabled: e.enabled,
            },
            (None, Some(g)) => Decider::Global {
                revision: g.revision,
                enabled: g.enabled,
                empty: g.routing.is_empty(),
            },
            (None, None) => Decider::Nothing,
        };
        let routed = |source, e: &Entry| Resolved {
            source,
            revision: Some(e.revision),
            routing: Some(e.routing.clone()),
            health: e.health.clone(),
            capacity: e.capacity.clone(),
        };
        let resolved = match (decider, entry.as_deref(), global.as_deref()) {
            (Decider::Account { enabled: true, .. }, Some(e), _) => routed(Source::Account, e),
            (
                Decider::Global {
                    enabled: true,
                    empty: false,
                    ..
                },
                _,
                Some(g),
            ) => routed(Source::Global, g),
            _ => Resolved::none(),
        };
        (resolved, decider)
    }

    fn compile(&self, record: &ConfigRecord) -> Option<Arc<CompiledRouting>> {
        match routing::compile_stored(&record.configuration, &self.interner) {
            Ok(compiled) => Some(Arc::new(compiled)),
            Err(problems) => {
                // Stored data that no longer validates: keep serving what we had.
                tracing::error!(
                    account_sid = %crate::sid::Scope(record.account_sid.as_ref()),
                    problems = problems.len(),
                    "stored configuration does not compile; keeping the previous one"
                );
                None
            }
        }
    }

    /// Validates and compiles `configuration` with the cache's shared expressions: the admin
    /// API validates through here, so a write whose expressions some account already uses
    /// costs no regex compilation at all.
    pub fn compile_configuration(
        &self,
        configuration: &str,
    ) -> Result<Arc<CompiledRouting>, Vec<routing::Problem>> {
        routing::compile_with(configuration, &self.interner).map(Arc::new)
    }

    /// True when the cache already holds `revision` (or a newer one) of the configuration:
    /// a notification of it, typically of this instance's own write, needs no re-read.
    pub fn holds(&self, account: Option<AccountSid>, revision: i64) -> bool {
        match account {
            None => self
                .global
                .load()
                .as_ref()
                .is_some_and(|g| g.revision >= revision),
            Some(account) => {
                self.accounts
                    .get(&account)
                    .is_some_and(|e| e.revision >= revision)
                    || self
                        .tombstones
                        .get(&account)
                        .is_some_and(|t| *t >= revision)
            }
        }
    }

    /// Applies a committed write (or a re-read after a notification) if it is newer.
    pub fn apply(&self, record: &ConfigRecord) {
        if let Some(routing) = self.compile(record) {
            self.apply_compiled(record, routing);
        }
    }

    /// As `apply`, with `routing` already compiled from `record.configuration`.
    pub fn apply_compiled(&self, record: &ConfigRecord, routing: Arc<CompiledRouting>) {
        let entry = Entry {
            revision: record.revision,
            applied: self.applies.fetch_add(1, Ordering::SeqCst) + 1,
            enabled: record.enabled,
            health: self.health.register(&routing, record.enabled),
            capacity: self.capacity.register(record.account_sid, &routing),
            routing,
        };
        match record.account_sid {
            None => {
                let newer = self
                    .global
                    .load()
                    .as_ref()
                    .is_none_or(|g| g.revision < entry.revision);
                if newer {
                    // Only the store's writers race here; rcu keeps the newest.
                    self.global.rcu(|cur| match cur {
                        Some(g) if g.revision >= entry.revision => Some(g.clone()),
                        _ => Some(Arc::new(Entry {
                            revision: entry.revision,
                            applied: entry.applied,
                            enabled: entry.enabled,
                            routing: entry.routing.clone(),
                            health: entry.health.clone(),
                            capacity: entry.capacity.clone(),
                        })),
                    });
                }
            }
            Some(account) => {
                // The account's slot stays locked while the tombstone is consulted, and
                // `remove` takes the same lock first: a delete cannot slip in between.
                let slot = self.accounts.entry(account);
                let deleted_after = self
                    .tombstones
                    .get(&account)
                    .is_some_and(|t| *t >= entry.revision);
                match slot {
                    dashmap::Entry::Occupied(mut o) => {
                        if o.get().revision < entry.revision && !deleted_after {
                            o.insert(entry);
                        }
                    }
                    dashmap::Entry::Vacant(v) => {
                        if !deleted_after {
                            v.insert(entry);
                        }
                    }
                }
            }
        }
    }

    /// Applies a committed delete of `account` at `revision`.
    pub fn remove(&self, account: AccountSid, revision: i64) {
        let slot = self.accounts.entry(account);
        self.tombstones
            .entry(account)
            .and_modify(|t| *t = (*t).max(revision))
            .or_insert(revision);
        if let dashmap::Entry::Occupied(o) = slot
            && o.get().revision < revision
        {
            o.remove();
        }
    }

    /// Compiles the batches of a full load as they arrive, on every core, until the sender
    /// is dropped; returns the accounts seen. At 1,000,000 accounts this is what stands
    /// between a start and readiness, and only the batches in flight are held as text beside
    /// the compiled forms.
    pub fn apply_batches(&self, batches: mpsc::Receiver<Vec<ConfigRecord>>) -> HashSet<AccountSid> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let batches = std::sync::Mutex::new(batches);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut seen = Vec::new();
                        loop {
                            // The lock is held only to take the next batch.
                            let next = batches
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .blocking_recv();
                            let Some(batch) = next else {
                                return seen;
                            };
                            for record in batch {
                                seen.extend(record.account_sid);
                                self.apply(&record);
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }

    /// Ends a complete full load read after `mark` was taken: drops the accounts it did not
    /// have, keeping any entry applied since (a write that committed after the snapshot was
    /// read).
    pub fn finish_load(&self, present: &HashSet<AccountSid>, mark: u64) {
        self.accounts
            .retain(|account, e| present.contains(account) || e.applied > mark);
        self.loaded.store(true, Ordering::Release);
    }
}
