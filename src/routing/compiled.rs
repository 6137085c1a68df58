//! The compiled form of an `outbound-voice` section.
//!
//! Compact on purpose: every string of a configuration lives in one arena and proxies refer
//! to it by offsets, so 100,000 accounts with ten proxies each fit in a few hundred
//! megabytes. The answer for the one or two matching proxies is rendered per call (`render`);
//! that costs a microsecond, against tens of kilobytes per account for pre-rendering.

use std::sync::Arc;

use super::matcher::MatchSet;
use super::model::{ProxyModel, VoiceModel};
use super::output::{clean_prefix_len, escape_into, push_decimal, write_json_str_with};
use super::policy::{PolicyTable, ProxyPolicy};
use super::sip;

/// A range of a compiled configuration's arena.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) len: u32,
}

impl Span {
    pub(super) fn get(self, arena: &str) -> &str {
        &arena[self.start as usize..(self.start + self.len) as usize]
    }

    /// The part of `self` from byte `from` (relative) for `len` bytes.
    pub(super) fn sub(self, from: usize, len: usize) -> Span {
        Span {
            start: self.start + from as u32,
            len: len as u32,
        }
    }
}

#[derive(Default)]
struct Arena(String);

impl Arena {
    pub(super) fn push(&mut self, s: &str) -> Span {
        let start = self.0.len() as u32;
        self.0.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }
}

pub(super) struct ProxyEntry {
    pub(super) uri: Span,
    pub(super) host: Span,
    /// The raw `;a=b;c` tail of the uri.
    pub(super) params: Span,
    pub(super) port: Option<u16>,
    pub(super) secure: bool,
    /// `sip_uri` adds `;lr` unless the configured uri has it.
    pub(super) needs_lr: bool,
    /// None of this proxy's text needs escaping in JSON.
    pub(super) plain_json: bool,
    /// Setting the `Request-URI` parameters on the proxy's own parameters only appends them
    /// (the usual case), so a PSTN Request-URI is written without looking for names.
    pub(super) ruri_appends: bool,
    pub(super) username: Option<Span>,
    pub(super) password: Option<Span>,
    /// This proxy's header instructions: `rules[first..first + count]`.
    pub(super) first_rule: u32,
    pub(super) rule_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RuleKind {
    RequestUri,
    Route,
    Header,
}

pub(super) struct RuleEntry {
    pub(super) kind: RuleKind,
    pub(super) header: Span,
    pub(super) key: Span,
    pub(super) value: Span,
}

/// The compiled `outbound-voice` section.
pub struct CompiledVoice {
    pub(super) set: Arc<MatchSet>,
    arena: Box<str>,
    proxies: Box<[ProxyEntry]>,
    rules: Box<[RuleEntry]>,
    /// The routing policy; `None` when no proxy has a policy member, so that such a
    /// configuration takes the first-match path at its old cost.
    pub(super) policy: Option<Box<PolicyTable>>,
}

impl std::fmt::Debug for CompiledVoice {
    // The arena holds passwords: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledVoice")
            .field("proxies", &self.proxies.len())
            .finish_non_exhaustive()
    }
}

impl CompiledVoice {
    /// Number of configured proxies.
    pub(super) fn proxy_count(&self) -> usize {
        self.proxies.len()
    }

    pub(super) fn proxy(&self, index: usize) -> Proxy<'_> {
        Proxy {
            voice: self,
            index,
            entry: &self.proxies[index],
        }
    }

    /// Every proxy, in configured order.
    pub(super) fn proxies(&self) -> impl Iterator<Item = Proxy<'_>> {
        (0..self.proxies.len()).map(|i| self.proxy(i))
    }
}

/// One configured proxy.
#[derive(Clone, Copy)]
pub struct Proxy<'a> {
    voice: &'a CompiledVoice,
    index: usize,
    pub(super) entry: &'a ProxyEntry,
}

impl std::fmt::Debug for Proxy<'_> {
    // Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("index", &self.index)
            .field("uri", &self.uri())
            .finish_non_exhaustive()
    }
}

impl<'a> Proxy<'a> {
    pub(super) fn text(&self, span: Span) -> &'a str {
        span.get(&self.voice.arena)
    }

    pub(super) fn rules(&self) -> &'a [RuleEntry] {
        let first = self.entry.first_rule as usize;
        &self.voice.rules[first..first + self.entry.rule_count as usize]
    }

    pub(super) fn rules_of(
        &self,
        kind: RuleKind,
    ) -> impl Iterator<Item = &'a RuleEntry> + Clone + use<'a> {
        self.rules().iter().filter(move |r| r.kind == kind)
    }

    /// 0-based position in the configuration.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The `uri` as configured.
    pub fn uri(&self) -> &'a str {
        self.text(self.entry.uri)
    }
    /// The host, IPv6 with its brackets.
    pub fn host(&self) -> &'a str {
        self.text(self.entry.host)
    }
    pub fn port(&self) -> Option<u16> {
        self.entry.port
    }
    pub fn is_sips(&self) -> bool {
        self.entry.secure
    }
    /// The URI parameters of the proxy `uri`, in order.
    pub fn params(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + use<'a> {
        sip::params(self.text(self.entry.params)).map(|p| (p.name, p.value))
    }
    /// Writes `sip:host[:port];params;lr` (`sips:` when configured; `;lr` once).
    pub(super) fn write_sip_uri(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.scheme().as_bytes());
        self.push_hostport(out);
        out.extend_from_slice(self.text(self.entry.params).as_bytes());
        if self.entry.needs_lr {
            out.extend_from_slice(b";lr");
        }
    }
    pub(super) fn scheme(&self) -> &'static str {
        if self.entry.secure { "sips:" } else { "sip:" }
    }
    pub fn username(&self) -> Option<&'a str> {
        self.entry.username.map(|s| self.text(s))
    }
    pub fn password(&self) -> Option<&'a str> {
        self.entry.password.map(|s| self.text(s))
    }
    /// The configured header instructions, in order, as `(header, key, value)`.
    pub fn header_params(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + use<'a> {
        let arena = &self.voice.arena;
        self.rules()
            .iter()
            .map(move |r| (r.header.get(arena), r.key.get(arena), r.value.get(arena)))
    }

    pub(super) fn push_hostport(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.host().as_bytes());
        if let Some(port) = self.entry.port {
            out.push(b':');
            push_decimal(out, port.into());
        }
    }

    /// The `Request-URI` instructions as `(key, value)`, in order.
    pub(super) fn ruri_settings(
        &self,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let arena = &self.voice.arena;
        self.rules_of(RuleKind::RequestUri)
            .map(move |r| (r.key.get(arena), r.value.get(arena)))
    }

    /// The headers this proxy changes or adds, grouped by name (any case) in first-configured
    /// order and spelling: `(index of the group's first rule, name)`.
    pub(super) fn header_groups(&self) -> impl Iterator<Item = (usize, &'a str)> + use<'a> {
        let rules = self.rules();
        let arena = &self.voice.arena;
        rules.iter().enumerate().filter_map(move |(i, r)| {
            let name = r.header.get(arena);
            let first = r.kind == RuleKind::Header
                && !rules[..i].iter().any(|earlier| {
                    earlier.kind == RuleKind::Header
                        && earlier.header.get(arena).eq_ignore_ascii_case(name)
                });
            first.then_some((i, name))
        })
    }

    /// The final value of the header group starting at rule `first`: the engine's value and
    /// `;` when it supplied one, then the group's `key=value` joined by `;`.
    pub(super) fn write_header_value(
        &self,
        out: &mut Vec<u8>,
        first: usize,
        supplied: &[(&str, &str)],
    ) {
        let rules = &self.rules()[first..];
        let name = self.text(rules[0].header);
        if let Some((_, current)) = supplied.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            out.extend_from_slice(current.as_bytes());
            out.push(b';');
        }
        let group = rules.iter().filter(|r| {
            r.kind == RuleKind::Header && self.text(r.header).eq_ignore_ascii_case(name)
        });
        for (i, r) in group.enumerate() {
            if i > 0 {
                out.push(b';');
            }
            out.extend_from_slice(self.text(r.key).as_bytes());
            out.push(b'=');
            out.extend_from_slice(self.text(r.value).as_bytes());
        }
    }

    /// Configured text into the answer: copied as it is when none of the proxy's text needs
    /// JSON escaping (known when compiled), escaped otherwise.
    pub(super) fn put(&self, out: &mut Vec<u8>, s: &str) {
        if self.entry.plain_json {
            out.extend_from_slice(s.as_bytes());
        } else {
            escape_into(out, s);
        }
    }
    pub(super) fn put_quoted(&self, out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        self.put(out, s);
        out.push(b'"');
    }
    pub(super) fn put_opt(&self, out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => self.put_quoted(out, s),
            None => out.extend_from_slice(b"null"),
        }
    }

    pub(super) fn write_proxy_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"uri\":");
        self.put_quoted(out, self.uri());
        out.extend_from_slice(b",\"host\":");
        self.put_quoted(out, self.host());
        out.extend_from_slice(b",\"port\":");
        match self.entry.port {
            Some(port) => push_decimal(out, port.into()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"params\":[");
        for (i, (name, value)) in self.params().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            self.put_quoted(out, name);
            out.extend_from_slice(b",\"value\":");
            self.put_opt(out, value);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"sip_uri\":");
        if self.entry.plain_json {
            out.push(b'"');
            self.write_sip_uri(out);
            out.push(b'"');
        } else {
            write_json_str_with(out, |out| self.write_sip_uri(out));
        }
        out.push(b'}');
    }
}

/// `;key=value` for each setting, as they are.
pub(super) fn write_appended<'s>(
    out: &mut Vec<u8>,
    settings: impl Iterator<Item = (&'s str, &'s str)>,
) {
    for (key, value) in settings {
        out.push(b';');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
}

pub(super) fn compile_voice(model: VoiceModel) -> CompiledVoice {
    let VoiceModel {
        proxies,
        set,
        callers,
    } = model;
    let policy = policy_table(&proxies, callers);
    let mut voice = compile_proxies(set, &proxies);
    voice.policy = policy;
    voice
}

/// The policy table, when any proxy has a policy member.
fn policy_table(
    proxies: &[ProxyModel],
    callers: Option<Arc<MatchSet>>,
) -> Option<Box<PolicyTable>> {
    if proxies.iter().all(|p| p.policy.is_empty()) {
        return None;
    }
    let mut next_caller = 0u32;
    let table = proxies
        .iter()
        .map(|p| ProxyPolicy {
            priority: p.policy.priority.unwrap_or(0),
            weight: p.policy.weight,
            caller: p.policy.caller.as_ref().map(|_| {
                next_caller += 1;
                next_caller - 1
            }),
            schedule: p.policy.schedule.clone(),
            limits: p.policy.limits,
        })
        .collect();
    Some(Box::new(PolicyTable {
        proxies: table,
        callers,
        limited: proxies.iter().any(|p| p.policy.limits.is_some()),
    }))
}

fn compile_proxies(set: Arc<MatchSet>, proxies: &[ProxyModel]) -> CompiledVoice {
    let size: usize = proxies
        .iter()
        .map(|p| {
            p.uri.len()
                + p.username.as_ref().map_or(0, String::len)
                + p.password.as_ref().map_or(0, String::len)
                + p.headers
                    .iter()
                    .map(|h| h.header.len() + h.key.len() + h.value.len())
                    .sum::<usize>()
        })
        .sum();
    let mut arena = Arena(String::with_capacity(size));
    let mut entries = Vec::with_capacity(proxies.len());
    let mut rules = Vec::with_capacity(proxies.iter().map(|p| p.headers.len()).sum());
    for p in proxies {
        let parsed = sip::parse_proxy_uri(&p.uri).expect("validated proxy uri");
        let uri = arena.push(&p.uri);
        let host = uri.sub(parsed.host_at, parsed.host.len());
        let params = uri.sub(
            p.uri.len() - parsed.params_raw.len(),
            parsed.params_raw.len(),
        );
        let username = p.username.as_deref().map(|u| arena.push(u));
        let password = p.password.as_deref().map(|u| arena.push(u));
        let first_rule = rules.len() as u32;
        for h in &p.headers {
            let kind = if h.header.eq_ignore_ascii_case("request-uri") {
                RuleKind::RequestUri
            } else if h.header.eq_ignore_ascii_case("route") {
                RuleKind::Route
            } else {
                RuleKind::Header
            };
            rules.push(RuleEntry {
                kind,
                header: arena.push(&h.header),
                key: arena.push(&h.key),
                value: arena.push(&h.value),
            });
        }
        // Everything of this proxy was pushed after its uri.
        let text = &arena.0.as_bytes()[uri.start as usize..];
        let plain_json = clean_prefix_len(text) == text.len();
        let ruri_settings = || {
            p.headers
                .iter()
                .filter(|h| h.header.eq_ignore_ascii_case("request-uri"))
                .map(|h| (h.key.as_str(), h.value.as_str()))
        };
        let (mut set, mut appended) = (Vec::new(), params.get(&arena.0).as_bytes().to_vec());
        sip::write_params_set(&mut set, params.get(&arena.0), ruri_settings());
        write_appended(&mut appended, ruri_settings());
        entries.push(ProxyEntry {
            uri,
            host,
            params,
            port: parsed.port,
            secure: parsed.secure,
            needs_lr: !sip::params(params.get(&arena.0)).any(|p| p.name.eq_ignore_ascii_case("lr")),
            plain_json,
            ruri_appends: set == appended,
            username,
            password,
            first_rule,
            rule_count: p.headers.len() as u32,
        });
    }
    CompiledVoice {
        set,
        arena: arena.0.into_boxed_str(),
        proxies: entries.into_boxed_slice(),
        rules: rules.into_boxed_slice(),
        policy: None,
    }
}
