//! Routing policy selection (docs/routing.md): which proxies match (destination, caller,
//! schedule), in which order (priority, then weighted rendezvous hashing on the key, standby
//! proxies last in each priority). Health comes after, in `render`; a capacity step would
//! come after health.
//!
//! Only configurations that use a policy member come here: the others keep the first-match
//! path of `render`, unchanged and at its cost.

use jiff::Timestamp;
use xxhash_rust::xxh3::Xxh3Default;

use super::compiled::CompiledVoice;
use super::conditions::{LookupInput, SelectionKey};
use super::matcher;
use super::policy::PolicyTable;

/// How one proxy fared against the conditions: `None` where it has no such condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    pub matched: bool,
    pub caller: Option<bool>,
    pub schedule: Option<bool>,
}

impl Conditions {
    /// Their conjunction: the proxy matches.
    pub fn all(&self) -> bool {
        self.matched && self.caller != Some(false) && self.schedule != Some(false)
    }
}

/// Which rule put the route first (docs/api.md, `explain`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rule {
    /// The first matching proxy in configured order.
    #[default]
    FirstMatch,
    /// A proxy of a lower priority than an earlier configured matching one.
    Priority,
    /// The lowest weighted score for the key among several weighted proxies.
    Weighted,
    /// Health moved the proxies before it last.
    Health,
    /// Proxies before it were left out: their buckets were empty (docs/routing.md, capacity).
    Capacity,
}

/// One proxy as the selection weighed it.
#[derive(Debug, Clone, Copy)]
pub struct Weighed {
    pub conditions: Conditions,
    pub priority: u16,
    pub weight: Option<u16>,
    /// `-ln(u) / weight`; `None` when the proxy does not match, has no weight or is standby.
    pub score: Option<f64>,
    /// Its weight over the sum of its matching priority group's; `0` for standby; `None`
    /// without weights or when it does not match.
    pub share: Option<f64>,
}

/// Every proxy weighed (in configured order) and the matching ones in selection order
/// (before health).
#[derive(Debug)]
pub(crate) struct Selection {
    pub(crate) weighed: Vec<Weighed>,
    pub(crate) order: Vec<usize>,
    pub(crate) rule: Rule,
}

/// The conditions of every proxy of `voice` for `input`.
fn conditions(
    voice: &CompiledVoice,
    policy: &PolicyTable,
    input: &LookupInput<'_>,
) -> Vec<Conditions> {
    let matched = matcher::matching(&voice.set, input.dest.target());
    let callers = match (&policy.callers, input.caller) {
        (Some(set), Some(caller)) => Some(matcher::matching(set, caller.target())),
        _ => None,
    };
    policy
        .proxies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let matched = matched.contains(regex_automata::PatternID::new_unchecked(i));
            Conditions {
                matched,
                caller: p.caller.map(|c| {
                    callers.as_ref().is_some_and(|set| {
                        set.contains(regex_automata::PatternID::new_unchecked(c as usize))
                    })
                }),
                schedule: p.schedule.as_ref().map(|s| s.covers(input.at)),
            }
        })
        .collect()
}

/// Selects for `input` (docs/routing.md, selection steps 1–3).
pub(crate) fn select(
    voice: &CompiledVoice,
    policy: &PolicyTable,
    input: &LookupInput<'_>,
) -> Selection {
    let conditions = conditions(voice, policy, input);
    let mut weighed: Vec<Weighed> = policy
        .proxies
        .iter()
        .zip(&conditions)
        .map(|(p, c)| Weighed {
            conditions: *c,
            priority: p.priority,
            weight: p.weight,
            score: None,
            share: None,
        })
        .collect();
    let mut order: Vec<usize> = (0..weighed.len())
        .filter(|&i| weighed[i].conditions.all())
        .collect();
    // Stable: configured order within one priority.
    order.sort_by_key(|&i| weighed[i].priority);
    let mut rule = match order.first() {
        Some(&first) if order.iter().any(|&i| i < first) => Rule::Priority,
        _ => Rule::FirstMatch,
    };
    let mut start = 0;
    while start < order.len() {
        let priority = weighed[order[start]].priority;
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| weighed[i].priority == priority)
                .count();
        let group = &mut order[start..end];
        if weighed[group[0]].weight.is_some() {
            let total: u32 = group
                .iter()
                .map(|&i| u32::from(weighed[i].weight.unwrap_or(0)))
                .sum();
            for &i in group.iter() {
                let weight = weighed[i].weight.unwrap_or(0);
                weighed[i].share = Some(match total {
                    0 => 0.0,
                    total => f64::from(weight) / f64::from(total),
                });
                if weight > 0 {
                    let proxy = voice.proxy(i);
                    let u = unit(input.key, proxy.uri(), proxy.username());
                    weighed[i].score = Some(-u.ln() / f64::from(weight));
                }
            }
            // Weighted first by score (ties: configured order, the sort is stable), then
            // standby in configured order.
            group.sort_by(|&a, &b| match (weighed[a].score, weighed[b].score) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
            let weighted = group
                .iter()
                .filter(|&&i| weighed[i].score.is_some())
                .count();
            if start == 0 && weighted > 1 {
                rule = Rule::Weighted;
            }
        }
        start = end;
    }
    Selection {
        weighed,
        order,
        rule,
    }
}

/// `u` in (0, 1) for one proxy and key: the 64-bit XXH3 (seed 0) of the key's bytes, a zero
/// byte, the proxy's `uri` as configured, a zero byte and its `username` as configured
/// (nothing when absent); the top 53 bits `h`, `u = (h + 0.5) / 2^53`. Neither a key, a uri
/// nor a username can hold a zero byte, so no two inputs share bytes. Fixed: the same key
/// orders the same way on every instance and release (docs/routing.md).
pub fn unit(key: SelectionKey<'_>, uri: &str, username: Option<&str>) -> f64 {
    let mut hasher = Xxh3Default::new();
    match key {
        SelectionKey::Given(key) => hasher.update(key.as_bytes()),
        // A drawn key is its 16 lowercase hexadecimal digits.
        SelectionKey::Drawn(n) => hasher.update(format!("{n:016x}").as_bytes()),
    }
    hasher.update(&[0]);
    hasher.update(uri.as_bytes());
    hasher.update(&[0]);
    hasher.update(username.unwrap_or("").as_bytes());
    let h = hasher.digest() >> 11;
    (h as f64 + 0.5) / (1u64 << 53) as f64
}

/// `at` as written in an explanation: RFC 3339, UTC.
pub(crate) fn rfc3339(at: Timestamp) -> String {
    at.to_string()
}
