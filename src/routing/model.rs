//! A validated `ConfigurationData` (docs/routing.md), before compilation.

use std::sync::Arc;

use super::matcher::MatchSet;
use super::schedule::Schedule;

#[derive(Debug)]
pub(crate) struct Model {
    pub voice: Option<VoiceModel>,
    pub sms: Option<u32>,
    /// The document was `{}`.
    pub empty: bool,
}

/// The `outbound-voice` section.
#[derive(Debug)]
pub(crate) struct VoiceModel {
    pub proxies: Vec<ProxyModel>,
    /// The proxies' `match` expressions compiled as one set.
    pub set: Arc<MatchSet>,
    /// The `caller` expressions of the proxies that have one, in configured order, compiled
    /// as one set; `None` when no proxy has a `caller`.
    pub callers: Option<Arc<MatchSet>>,
}

pub(crate) struct ProxyModel {
    /// Validated: `sip::parse_proxy_uri` accepts it.
    pub uri: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub headers: Vec<HeaderRule>,
    pub policy: PolicyModel,
}

/// The routing policy members of one proxy (docs/routing.md); all optional.
#[derive(Debug, Default)]
pub(crate) struct PolicyModel {
    /// Given explicitly (even as 0): a member of the policy.
    pub priority: Option<u16>,
    pub weight: Option<u16>,
    /// Validated as an expression by the caller of `check_proxy`.
    pub caller: Option<String>,
    pub schedule: Option<Schedule>,
    pub limits: Option<Limits>,
}

/// A proxy's `limits` (docs/routing.md, capacity): routes per second and the bucket's size,
/// for the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cps: u32,
    pub burst: u32,
}

impl PolicyModel {
    pub fn is_empty(&self) -> bool {
        self.priority.is_none()
            && self.weight.is_none()
            && self.caller.is_none()
            && self.schedule.is_none()
            && self.limits.is_none()
    }
}

impl std::fmt::Debug for ProxyModel {
    // Holds a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyModel")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderRule {
    pub header: String,
    pub key: String,
    pub value: String,
}

/// Header names that route rewriting may never touch (and their compact forms): changing them
/// would break the transaction or the body.
pub(crate) const FORBIDDEN_HEADERS: [&str; 10] = [
    "via",
    "call-id",
    "cseq",
    "max-forwards",
    "content-length",
    "content-type",
    "v",
    "i",
    "l",
    "c",
];
