//! Capacity as routing sees it (docs/routing.md, capacity): the token buckets live outside
//! the core (they change with time and are shared by lookups); the core is given a view of
//! them and decides which proxies are left out. Pure: no clock here.

/// This instance's share of a proxy's bucket, as `explain` shows it: `cps / N`,
/// `max(1, burst / N)` and the tokens it holds now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityState {
    pub cps: f64,
    pub burst: f64,
    pub tokens: f64,
}

impl CapacityState {
    /// No whole token: the proxy is left out.
    pub fn exhausted(&self) -> bool {
        self.tokens < 1.0
    }
}

/// The buckets of one configuration's proxies, by 0-based proxy index. Only asked about
/// proxies that have `limits`.
pub trait CapacityView {
    /// Takes one token from the proxy's bucket; when it is empty, the milliseconds until
    /// the first token returns.
    fn take(&self, index: usize) -> Result<(), u64>;
    /// As `take`, taking nothing.
    fn peek(&self, index: usize) -> Result<(), u64>;
    /// The bucket as it stands; `None` when none is held (a draft, an offline resolve): then
    /// the proxy counts as having its full `burst`.
    fn state(&self, index: usize) -> Option<CapacityState>;
    /// Told once per answer that takes tokens: how many proxies were left out, and whether
    /// that left the answer `unavailable`.
    fn left_out(&self, _skipped: usize, _unavailable: bool) {}
}

/// Every bucket full, nothing held: drafts, offline resolves, tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FullBuckets;

impl CapacityView for FullBuckets {
    fn take(&self, _: usize) -> Result<(), u64> {
        Ok(())
    }
    fn peek(&self, _: usize) -> Result<(), u64> {
        Ok(())
    }
    fn state(&self, _: usize) -> Option<CapacityState> {
        None
    }
}

/// A view that only reads: `take` peeks (explain and simulation never take tokens).
pub struct Reading<'v>(pub &'v dyn CapacityView);

impl CapacityView for Reading<'_> {
    fn take(&self, index: usize) -> Result<(), u64> {
        self.0.peek(index)
    }
    fn peek(&self, index: usize) -> Result<(), u64> {
        self.0.peek(index)
    }
    fn state(&self, index: usize) -> Option<CapacityState> {
        self.0.state(index)
    }
}
