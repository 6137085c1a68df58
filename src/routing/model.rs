//! A validated `ConfigurationData` (docs/routing.md), before compilation.

use std::sync::Arc;

use super::matcher::MatchSet;

#[derive(Debug)]
pub(crate) struct Model {
    /// The proxies and their expressions compiled as one set.
    pub voice: Option<(Vec<ProxyModel>, Arc<MatchSet>)>,
    pub sms: Option<u32>,
    /// The document was `{}`.
    pub empty: bool,
}

pub(crate) struct ProxyModel {
    /// Validated: `sip::parse_proxy_uri` accepts it.
    pub uri: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub headers: Vec<HeaderRule>,
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
