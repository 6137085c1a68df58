//! Why a lookup answered what it did (docs/api.md): the deciding configuration, every proxy of
//! it with whether its `match` covered the target and what it became, and one plain sentence.
//!
//! Written only when asked for (`explain=true`): the answer without it is not touched.

use super::CompiledRouting;
use super::capacity::{CapacityState, CapacityView};
use super::compiled::CompiledVoice;
use super::conditions::{LookupInput, SelectionKey};
use super::destination::Destination;
use super::health::Health;
use super::matcher;
use super::model::Limits;
use super::output::{push_decimal, push_json_str, write_json_str_with, write_opt_str};
use super::render::VoiceAnswer;
use super::select::{Conditions, Rule, Weighed, rfc3339, select};

/// Which configuration decided a lookup, as the cache found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decider {
    /// The account's own configuration. Disabled, it switches routing off for the account.
    Account { revision: i64, enabled: bool },
    /// The account has its own configuration, but the global one is disabled, which
    /// switches routing off for every account.
    SwitchedOff {
        account_revision: i64,
        global_revision: i64,
    },
    /// The account has none: the global configuration, which routes only when enabled and
    /// not empty.
    Global {
        revision: i64,
        enabled: bool,
        empty: bool,
    },
    /// No configuration at all.
    Nothing,
    /// A configuration being tried, never stored (`POST /v1/simulate/…`).
    Draft,
    /// A configuration file resolved offline as an account's (`multiprovider resolve`):
    /// no stored revision.
    File,
}

impl Decider {
    fn configuration(self) -> &'static str {
        match self {
            Decider::Account { .. } | Decider::SwitchedOff { .. } | Decider::File => "account",
            Decider::Global { .. } => "global",
            Decider::Nothing => "none",
            Decider::Draft => "draft",
        }
    }

    fn revision(self) -> Option<i64> {
        match self {
            Decider::Account { revision, .. } | Decider::Global { revision, .. } => Some(revision),
            Decider::SwitchedOff {
                account_revision, ..
            } => Some(account_revision),
            Decider::Nothing | Decider::Draft | Decider::File => None,
        }
    }

    /// Why nothing decided, when nothing did: the configuration routes nobody.
    fn why_nothing_decided(self) -> Option<String> {
        let reason = match self {
            Decider::Account { enabled: false, .. } => {
                "the account's configuration is disabled (Enabled=false), which switches \
                 routing off for this account"
                    .to_owned()
            }
            Decider::SwitchedOff {
                global_revision, ..
            } => format!(
                "the global configuration (revision {global_revision}) is disabled, which \
                 switches routing off for every account, this one's own configuration included"
            ),
            Decider::Global { enabled: false, .. } => {
                "no configuration applies: the account has none and the global one is disabled"
                    .to_owned()
            }
            Decider::Global { empty: true, .. } => {
                "no configuration applies: the account has none and the global one is empty"
                    .to_owned()
            }
            Decider::Nothing => {
                "no configuration applies: the account has none and there is no global one"
                    .to_owned()
            }
            Decider::Account { .. } | Decider::Global { .. } | Decider::Draft | Decider::File => {
                return None;
            }
        };
        Some(reason)
    }

    /// How the reason names the deciding configuration.
    fn name(self) -> &'static str {
        match self {
            Decider::Global { .. } => "the global configuration",
            Decider::Draft => "the draft configuration",
            Decider::File => "the configuration",
            _ => "the account's configuration",
        }
    }
}

/// How the destination was read (`target_kind`, docs/api.md).
fn target_kind(dest: &Destination<'_>) -> &'static str {
    if dest.is_sip() {
        "sip"
    } else if dest
        .raw
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("tel:"))
    {
        "tel"
    } else {
        "number"
    }
}

fn head(out: &mut Vec<u8>, decider: Decider) {
    out.extend_from_slice(b"\"configuration\":\"");
    out.extend_from_slice(decider.configuration().as_bytes());
    out.extend_from_slice(b"\",\"revision\":");
    match decider.revision() {
        Some(revision) => out.extend_from_slice(revision.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the voice `explain` object. `routing` is the deciding configuration when it
/// routes (enabled, not empty), `input` what the lookup was asked (its `key` written `null`
/// when drawn), `answer` what the lookup answered with it, `health` each proxy's health by
/// index, as the answer saw it (docs/operations.md).
pub fn write_voice_explain(
    out: &mut Vec<u8>,
    decider: Decider,
    routing: Option<&CompiledRouting>,
    input: &LookupInput<'_>,
    answer: &VoiceAnswer<'_>,
    health: &dyn Fn(usize) -> Health,
    capacity: &dyn CapacityView,
) {
    let dest = input.dest;
    out.extend_from_slice(b"{\"target\":");
    push_json_str(out, dest.target());
    out.extend_from_slice(b",\"target_kind\":\"");
    out.extend_from_slice(target_kind(dest).as_bytes());
    out.extend_from_slice(b"\",\"caller\":");
    write_opt_str(out, input.caller.map(|c| c.target()));
    out.extend_from_slice(b",\"key\":");
    match input.key {
        SelectionKey::Given(key) => push_json_str(out, key),
        SelectionKey::Drawn(_) => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"at\":");
    push_json_str(out, &rfc3339(input.at));
    out.push(b',');
    head(out, decider);
    out.extend_from_slice(b",\"candidates\":[");
    let voice = routing.and_then(|r| r.voice.as_ref());
    let weighed = voice.map(|v| weigh(v, input));
    if let (Some(voice), Some((weighed, _))) = (voice, &weighed) {
        let route = answer.route.as_ref().map(|r| r.proxy.index());
        for (index, w) in weighed.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"proxy_index\":");
            push_decimal(out, index as u32);
            out.extend_from_slice(b",\"pointer\":\"/outbound-voice/0/proxy/");
            push_decimal(out, index as u32);
            out.extend_from_slice(b"\",\"match\":");
            push_json_str(out, voice.set.pattern(index));
            out.extend_from_slice(b",\"matched\":");
            push_bool(out, w.conditions.all());
            out.extend_from_slice(b",\"chosen\":");
            let chosen = if route == Some(index) {
                "\"route\""
            } else if answer.fallbacks.iter().any(|f| f.proxy.index() == index) {
                "\"fallback\""
            } else {
                "null"
            };
            out.extend_from_slice(chosen.as_bytes());
            out.extend_from_slice(b",\"health\":\"");
            out.extend_from_slice(health(index).as_str().as_bytes());
            out.extend_from_slice(b"\",\"priority\":");
            push_decimal(out, w.priority.into());
            out.extend_from_slice(b",\"weight\":");
            match w.weight {
                Some(weight) => push_decimal(out, weight.into()),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b",\"score\":");
            push_number(out, w.score);
            out.extend_from_slice(b",\"share\":");
            push_number(out, w.share);
            out.extend_from_slice(b",\"conditions\":{\"match\":");
            push_bool(out, w.conditions.matched);
            out.extend_from_slice(b",\"caller\":");
            push_opt_bool(out, w.conditions.caller);
            out.extend_from_slice(b",\"schedule\":");
            push_opt_bool(out, w.conditions.schedule);
            out.extend_from_slice(b"},\"capacity\":");
            let limits = voice
                .policy
                .as_ref()
                .and_then(|p| p.proxies.get(index))
                .and_then(|p| p.limits);
            write_capacity(out, limits, capacity.state(index));
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"],\"reason\":");
    let order = weighed.as_ref().map(|(_, order)| order.as_slice());
    let weighed = weighed.as_ref().map(|(w, _)| w.as_slice());
    let policy = voice.is_some_and(|v| v.policy.is_some());
    let facts = Facts {
        decider,
        routing,
        input,
        answer,
        health,
        weighed: weighed.unwrap_or_default(),
        order: order.unwrap_or_default(),
        policy,
        capacity,
    };
    write_json_str_with(out, |out| {
        out.extend_from_slice(facts.voice_reason().as_bytes())
    });
    out.push(b'}');
}

/// A candidate's `capacity`: `null` without limits, else this instance's share of its
/// bucket (the configured limits, full, when no bucket is held).
fn write_capacity(out: &mut Vec<u8>, limits: Option<Limits>, state: Option<CapacityState>) {
    let Some(limits) = limits else {
        out.extend_from_slice(b"null");
        return;
    };
    let state = state.unwrap_or(CapacityState {
        cps: f64::from(limits.cps),
        burst: f64::from(limits.burst),
        tokens: f64::from(limits.burst),
    });
    // Three decimals: a bucket refills continuously.
    let round = |n: f64| (n * 1000.0).floor() / 1000.0;
    out.extend_from_slice(b"{\"cps\":");
    push_number(out, Some(round(state.cps)));
    out.extend_from_slice(b",\"burst\":");
    push_number(out, Some(round(state.burst)));
    out.extend_from_slice(b",\"tokens\":");
    push_number(out, Some(round(state.tokens)));
    out.extend_from_slice(b",\"exhausted\":");
    push_bool(out, state.exhausted());
    out.push(b'}');
}

/// Every proxy weighed for `input`, and the matching ones in the selection's order (before
/// health): the policy's, or configured order for a configuration without one.
fn weigh(voice: &CompiledVoice, input: &LookupInput<'_>) -> (Vec<Weighed>, Vec<usize>) {
    if let Some(policy) = &voice.policy {
        let selection = select(voice, policy, input);
        return (selection.weighed, selection.order);
    }
    let mut matched = vec![false; voice.proxy_count()];
    for id in matcher::matching(&voice.set, input.dest.target()).iter() {
        matched[id.as_usize()] = true;
    }
    let order = (0..matched.len()).filter(|&i| matched[i]).collect();
    let weighed = matched
        .into_iter()
        .map(|matched| Weighed {
            conditions: Conditions {
                matched,
                caller: None,
                schedule: None,
            },
            priority: 0,
            weight: None,
            score: None,
            share: None,
        })
        .collect();
    (weighed, order)
}

fn push_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn push_opt_bool(out: &mut Vec<u8>, b: Option<bool>) {
    match b {
        Some(b) => push_bool(out, b),
        None => out.extend_from_slice(b"null"),
    }
}

/// A finite number as JSON (Rust's shortest round-trip decimal, never an exponent), or null.
fn push_number(out: &mut Vec<u8>, n: Option<f64>) {
    match n.filter(|n| n.is_finite()) {
        Some(n) => out.extend_from_slice(format!("{n}").as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// What the reason is written from.
struct Facts<'f, 'a> {
    decider: Decider,
    routing: Option<&'f CompiledRouting>,
    input: &'f LookupInput<'a>,
    answer: &'f VoiceAnswer<'a>,
    health: &'f dyn Fn(usize) -> Health,
    weighed: &'f [Weighed],
    order: &'f [usize],
    policy: bool,
    capacity: &'f dyn CapacityView,
}

fn list(indexes: &[usize]) -> String {
    match indexes {
        [one] => format!("proxy {one}"),
        many => format!(
            "proxies {}",
            many.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl Facts<'_, '_> {
    fn voice_reason(&self) -> String {
        let Facts {
            decider,
            routing,
            answer,
            health,
            ..
        } = *self;
        if let Some(reason) = decider.why_nothing_decided() {
            return reason;
        }
        let target = self.input.dest.target();
        let has_voice = routing.and_then(|r| r.voice.as_ref()).is_some();
        if !has_voice {
            return format!(
                "{} has no outbound-voice, so it routes no calls",
                decider.name()
            );
        }
        let Some(route) = &answer.route else {
            if let Some(ms) = answer.unavailable {
                let full: Vec<usize> = self
                    .order
                    .iter()
                    .copied()
                    .filter(|&i| self.weighed[i].conditions.all())
                    .collect();
                return format!(
                    "capacity: every matching proxy of {} ({}) is at its calls-per-second \
                     limit, so all are left out and the answer is unavailable; the first token \
                     returns in {ms} ms",
                    decider.name(),
                    list(&full),
                );
            }
            let failed: Vec<usize> = (0..self.weighed.len())
                .filter(|&i| self.weighed[i].conditions.matched)
                .collect();
            if !failed.is_empty() {
                return format!(
                    "no proxy of {} matches: {} {} the whole target {target} but {} its \
                     caller or schedule condition{}",
                    decider.name(),
                    list(&failed),
                    if failed.len() == 1 { "covers" } else { "cover" },
                    if failed.len() == 1 {
                        "fails"
                    } else {
                        "each fail"
                    },
                    self.conditions_said()
                );
            }
            return format!(
                "no proxy of {} has a match that covers the whole target {target}",
                decider.name()
            );
        };
        let chosen = route.proxy.index();
        let first = if self.policy {
            "comes first in the routing policy's order".to_owned()
        } else {
            format!("is the first whose match covers the whole target {target}")
        };
        // The matching proxies ahead of the route before health: down ones that health put
        // last.
        let ahead = self
            .order
            .iter()
            .position(|&i| i == chosen)
            .map_or(&[][..], |at| &self.order[..at]);
        let passed_over: Vec<usize> = ahead
            .iter()
            .copied()
            .filter(|&i| health(i) == Health::Down)
            .collect();
        if answer.health_reordered && !passed_over.is_empty() {
            let one = passed_over.len() == 1;
            return format!(
                "proxy {chosen} {first} and that is not down: {} also {} first but {} \
                 down, so health moved {} last",
                list(&passed_over),
                if one { "matches" } else { "match" },
                if one { "is" } else { "are" },
                if one { "it" } else { "them" },
            );
        }
        if health(chosen) == Health::Down {
            return format!(
                "proxy {chosen} {first}; every matching proxy is down, so the route stays the \
                 first of them"
            );
        }
        let w = self.weighed.get(chosen);
        if answer.rule == Rule::Capacity {
            let ahead: Vec<usize> = self
                .order
                .iter()
                .copied()
                .take_while(|&i| i != chosen)
                .filter(|&i| self.capacity_exhausted(i))
                .collect();
            return format!(
                "capacity: {} {} before proxy {chosen} in the routing policy's order but {} at \
                 {} calls-per-second limit, so capacity left {} out; proxy {chosen} is the \
                 first with a token",
                list(&ahead),
                if ahead.len() == 1 { "comes" } else { "come" },
                if ahead.len() == 1 { "is" } else { "are" },
                if ahead.len() == 1 { "its" } else { "their" },
                if ahead.len() == 1 { "it" } else { "them" },
            );
        }
        match answer.rule {
            Rule::Weighted => {
                let priority = w.map_or(0, |w| w.priority);
                let group = self
                    .order
                    .iter()
                    .filter(|&&i| {
                        self.weighed[i].priority == priority && self.weighed[i].score.is_some()
                    })
                    .count();
                let key = match self.input.key {
                    SelectionKey::Given(key) => format!("the key {key}"),
                    SelectionKey::Drawn(_) => {
                        "a key drawn at random (the lookup gave none)".to_owned()
                    }
                };
                format!(
                    "weighted choice with {key}: proxy {chosen} has the lowest score of the \
                     {group} weighted proxies of priority {priority} that match{}; its weight \
                     {} is a share of {}; the others follow by score, standby ones last",
                    self.conditions_said(),
                    w.and_then(|w| w.weight).unwrap_or(0),
                    w.and_then(|w| w.share)
                        .map_or("unknown".to_owned(), |s| format!("{:.1} %", s * 100.0)),
                )
            }
            Rule::Priority => format!(
                "priority: proxy {chosen} matches{} and has the lowest priority ({}) of the \
                 matching proxies, so it goes before proxies configured earlier",
                self.conditions_said(),
                w.map_or(0, |w| w.priority)
            ),
            _ if self.policy => {
                let skipped: Vec<usize> = (0..chosen)
                    .filter(|&i| {
                        self.weighed[i].conditions.matched && !self.weighed[i].conditions.all()
                    })
                    .collect();
                let mut reason = format!(
                    "proxy {chosen} is the first that matches: its match covers the whole \
                     target {target}{}",
                    self.conditions_said()
                );
                if !skipped.is_empty() {
                    reason.push_str(&format!(
                        "; {} before it {} the target but {} its caller or schedule condition",
                        list(&skipped),
                        if skipped.len() == 1 {
                            "covers"
                        } else {
                            "cover"
                        },
                        if skipped.len() == 1 {
                            "fails"
                        } else {
                            "each fail"
                        },
                    ));
                }
                reason
            }
            _ => {
                format!("proxy {chosen} is the first whose match covers the whole target {target}")
            }
        }
    }

    /// The proxy has limits and no whole token now.
    fn capacity_exhausted(&self, index: usize) -> bool {
        let limited = self
            .routing
            .and_then(|r| r.voice.as_ref())
            .and_then(|v| v.policy.as_ref())
            .and_then(|p| p.proxies.get(index))
            .is_some_and(|p| p.limits.is_some());
        limited && self.capacity.state(index).is_some_and(|s| s.exhausted())
    }

    /// ` (caller +4930…, at 2026-…Z)`: the inputs the conditions were read with.
    fn conditions_said(&self) -> String {
        let any = |f: fn(&Conditions) -> Option<bool>| {
            self.weighed.iter().any(|w| f(&w.conditions).is_some())
        };
        let mut parts = Vec::new();
        if any(|c| c.caller) {
            match self.input.caller {
                Some(c) => parts.push(format!("caller {}", c.target())),
                None => parts.push("no caller given".to_owned()),
            }
        }
        if any(|c| c.schedule) {
            parts.push(format!("at {}", rfc3339(self.input.at)));
        }
        match parts.is_empty() {
            true => String::new(),
            false => format!(" ({})", parts.join(", ")),
        }
    }
}

/// Appends the SMS `explain` object.
pub fn write_sms_explain(out: &mut Vec<u8>, decider: Decider, routing: Option<&CompiledRouting>) {
    out.push(b'{');
    head(out, decider);
    let tlv = routing.and_then(|r| r.sms_tlvs().first());
    out.extend_from_slice(b",\"pointer\":");
    match tlv {
        Some(_) => out.extend_from_slice(b"\"/outbound-sms/0/destination_network_id\""),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reason\":");
    let reason = match (decider.why_nothing_decided(), tlv) {
        (Some(reason), _) => reason,
        (None, Some(tlv)) => format!(
            "{} sets destination_network_id {}: TLV 0x060E (dest_network_id) is added",
            decider.name(),
            tlv.value
        ),
        (None, None) => format!("{} has no outbound-sms, so no TLV is added", decider.name()),
    };
    push_json_str(out, &reason);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::routing::compile;

    const CONFIG: &str = r#"{"outbound-voice": [{"proxy": [
        {"uri": "192.168.0.1", "match": "uri.com"},
        {"uri": "192.168.0.2", "match": "uri[12]\\.com"},
        {"uri": "192.168.0.3"}]}],
        "outbound-sms": [{"destination_network_id": 1000}]}"#;

    fn explain(decider: Decider, config: Option<&str>, to: &str) -> Value {
        let compiled = config.map(|c| compile(c).unwrap());
        let dest = Destination::parse(to).unwrap();
        let answer = match &compiled {
            Some(c) => c.resolve_voice(&dest, &[]),
            None => VoiceAnswer::none(),
        };
        let mut out = Vec::new();
        write_voice_explain(
            &mut out,
            decider,
            compiled.as_ref(),
            &LookupInput::new(&dest, &[]),
            &answer,
            &|_| Health::Up,
            &super::super::FullBuckets,
        );
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn the_spec_example() {
        let account = Decider::Account {
            revision: 3,
            enabled: true,
        };
        let e = explain(account, Some(CONFIG), "sip:bob@uri1.com");
        assert_eq!(
            e,
            json!({
                "target": "uri1.com", "target_kind": "sip",
                "caller": null, "key": null, "at": "1970-01-01T00:00:00Z",
                "configuration": "account", "revision": 3,
                "candidates": [
                    {"proxy_index": 0, "pointer": "/outbound-voice/0/proxy/0", "match": "uri.com", "matched": false, "chosen": null, "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": false, "caller": null, "schedule": null}, "capacity": null},
                    {"proxy_index": 1, "pointer": "/outbound-voice/0/proxy/1", "match": "uri[12]\\.com", "matched": true, "chosen": "route", "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": true, "caller": null, "schedule": null}, "capacity": null},
                    {"proxy_index": 2, "pointer": "/outbound-voice/0/proxy/2", "match": ".*", "matched": true, "chosen": "fallback", "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": true, "caller": null, "schedule": null}, "capacity": null}
                ],
                "reason": "proxy 1 is the first whose match covers the whole target uri1.com"
            })
        );
    }

    #[test]
    fn every_reason_for_no_route() {
        let off = |d| {
            explain(d, None, "+1555")["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(
            off(Decider::Account {
                revision: 2,
                enabled: false
            })
            .contains("account's configuration is disabled")
        );
        assert!(
            off(Decider::SwitchedOff {
                account_revision: 2,
                global_revision: 5
            })
            .contains("global configuration (revision 5) is disabled")
        );
        let global = |enabled, empty| Decider::Global {
            revision: 1,
            enabled,
            empty,
        };
        assert!(off(global(false, false)).contains("global one is disabled"));
        assert!(off(global(true, true)).contains("global one is empty"));
        assert!(off(Decider::Nothing).contains("there is no global one"));
        let account = Decider::Account {
            revision: 1,
            enabled: true,
        };
        let sms_only = r#"{"outbound-sms": [{"destination_network_id": 1}]}"#;
        let e = explain(account, Some(sms_only), "+1555");
        assert_eq!(e["candidates"], json!([]));
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("has no outbound-voice")
        );
        let e = explain(
            account,
            Some(
                CONFIG
                    .replace(r#", "match": "uri[12]\\.com""#, r#", "match": "x""#)
                    .replace(
                        r#"{"uri": "192.168.0.3"}"#,
                        r#"{"uri": "192.168.0.3", "match": "y"}"#,
                    )
                    .as_str(),
            ),
            "sip:a@uri9.com",
        );
        assert!(e["reason"].as_str().unwrap().starts_with("no proxy"), "{e}");
        assert_eq!(e["candidates"].as_array().unwrap().len(), 3);
        assert_eq!(e["target_kind"], "sip");
        assert_eq!(
            explain(account, Some(CONFIG), "tel:+1555;x=1")["target_kind"],
            "tel"
        );
        assert_eq!(
            explain(account, Some(CONFIG), "alice")["target_kind"],
            "number"
        );
        let e = explain(Decider::Nothing, None, "+1");
        assert_eq!(e["revision"], Value::Null);
        assert_eq!(e["configuration"], "none");
    }

    #[test]
    fn health_that_changed_the_order_is_named() {
        let compiled = compile(CONFIG).unwrap();
        let dest = Destination::parse("sip:a@uri1.com").unwrap();
        let explain = |down: &[usize]| {
            let health = |i: usize| {
                if down.contains(&i) {
                    Health::Down
                } else {
                    Health::Up
                }
            };
            let answer = compiled.resolve_voice_with_health(&dest, &[], health);
            let mut out = Vec::new();
            let account = Decider::Account {
                revision: 1,
                enabled: true,
            };
            let input = LookupInput::new(&dest, &[]);
            write_voice_explain(
                &mut out,
                account,
                Some(&compiled),
                &input,
                &answer,
                &health,
                &super::super::FullBuckets,
            );
            serde_json::from_slice::<Value>(&out).unwrap()
        };
        let e = explain(&[1]);
        assert_eq!(e["candidates"][1]["health"], "down");
        assert_eq!(e["candidates"][1]["chosen"], "fallback");
        assert_eq!(e["candidates"][2]["chosen"], "route");
        assert_eq!(
            e["reason"],
            "proxy 2 is the first whose match covers the whole target uri1.com and that is not \
             down: proxy 1 also matches first but is down, so health moved it last"
        );
        let e = explain(&[1, 2]);
        assert_eq!(e["candidates"][1]["chosen"], "route");
        assert!(
            e["reason"]
                .as_str()
                .unwrap()
                .contains("every matching proxy is down"),
            "{e}"
        );
    }

    #[test]
    fn sms() {
        let sms = |decider, config: Option<&str>| {
            let compiled = config.map(|c| compile(c).unwrap());
            let mut out = Vec::new();
            write_sms_explain(&mut out, decider, compiled.as_ref());
            serde_json::from_slice::<Value>(&out).unwrap()
        };
        let account = Decider::Account {
            revision: 4,
            enabled: true,
        };
        let e = sms(account, Some(CONFIG));
        assert_eq!(e["pointer"], "/outbound-sms/0/destination_network_id");
        assert_eq!(e["revision"], 4);
        assert!(e["reason"].as_str().unwrap().contains("1000"));
        let e = sms(
            account,
            Some(r#"{"outbound-voice": [{"proxy": [{"uri": "a.com"}]}]}"#),
        );
        assert_eq!(e["pointer"], Value::Null);
        assert!(e["reason"].as_str().unwrap().contains("no outbound-sms"));
        assert_eq!(sms(Decider::Draft, Some(CONFIG))["configuration"], "draft");
    }
}
