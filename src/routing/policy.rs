//! The compiled routing policy of a configuration (docs/routing.md): each proxy's
//! `priority`, `weight`, `caller`, `schedule` and `limits`. Data only: `select` reads it.

use std::sync::Arc;

use super::matcher::MatchSet;
use super::model::Limits;
use super::schedule::Schedule;

/// The policy members of every proxy of a configuration that uses any.
#[derive(Debug)]
pub(crate) struct PolicyTable {
    pub(crate) proxies: Box<[ProxyPolicy]>,
    /// The `caller` expressions, as one set (`ProxyPolicy::caller` indexes it).
    pub(crate) callers: Option<Arc<MatchSet>>,
    /// Some proxy has `limits`: the capacity step runs.
    pub(crate) limited: bool,
}

#[derive(Debug)]
pub(crate) struct ProxyPolicy {
    pub(crate) priority: u16,
    pub(crate) weight: Option<u16>,
    /// Index of this proxy's expression in `PolicyTable::callers`.
    pub(crate) caller: Option<u32>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) limits: Option<Limits>,
}
