//! Voice routing (SPEC §5): proxy selection by anchored regex set, Request-URI rewriting,
//! `Route` entries and header parameters.
//!
//! A compiled configuration is compact on purpose: every string of it lives in one arena and
//! proxies refer to it by offsets, so 100,000 accounts with ten proxies each fit in a few
//! hundred megabytes. The answer for the one or two matching proxies is rendered per call;
//! that costs a microsecond, against tens of kilobytes per account for pre-rendering.

use std::sync::Arc;

use super::matcher::MatchSet;

use super::CompiledRouting;
use super::answer::{clean_prefix_len, escape_into, push_decimal, write_json_str_with};
use super::model::{Model, ProxyModel};
use super::sip::{self, printable};
use super::sms::Tlv;

/// Longest `to` accepted (a SIP URI with parameters; numbers are limited to 64 characters).
pub const MAX_DESTINATION_BYTES: usize = 2048;
const MAX_NUMBER_CHARS: usize = 64;

/// A lookup input that cannot be routed: answered with 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    /// The input at fault: `to`, or `headers` for a supplied header.
    pub parameter: String,
    pub message: String,
}

fn to_error(message: impl Into<String>) -> LookupError {
    LookupError {
        parameter: "to".into(),
        message: message.into(),
    }
}

/// A parsed call destination.
#[derive(Debug, Clone)]
pub struct Destination<'a> {
    raw: &'a str,
    /// What the proxies' expressions are matched against.
    target: &'a str,
    kind: Kind<'a>,
}

#[derive(Debug, Clone)]
enum Kind<'a> {
    /// A SIP call: keeps its URI; parameters start at `params_at`.
    Sip { params_at: usize },
    /// A PSTN (or client) call to `number`.
    Pstn { number: &'a str },
}

impl<'a> Destination<'a> {
    /// Parses `to` as SPEC §5 step 1 says.
    pub fn parse(to: &'a str) -> Result<Destination<'a>, LookupError> {
        if to.is_empty() {
            return Err(to_error("`to` is empty"));
        }
        if to.len() > MAX_DESTINATION_BYTES {
            return Err(to_error(format!(
                "`to` is longer than {MAX_DESTINATION_BYTES} bytes"
            )));
        }
        if to.chars().any(char::is_control) {
            return Err(to_error("`to` contains a control character"));
        }
        if sip::has_sip_scheme(to) {
            return parse_sip(to);
        }
        if to.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tel:")) {
            let number = to[4..].split(';').next().unwrap_or_default();
            check_number(number)?;
            return Ok(Destination {
                raw: to,
                target: number,
                kind: Kind::Pstn { number },
            });
        }
        check_number(to)?;
        Ok(Destination {
            raw: to,
            target: to,
            kind: Kind::Pstn { number: to },
        })
    }

    /// The string matched against the proxies' expressions.
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// True for a `sip:`/`sips:` destination.
    pub fn is_sip(&self) -> bool {
        matches!(self.kind, Kind::Sip { .. })
    }
}

fn parse_sip(to: &str) -> Result<Destination<'_>, LookupError> {
    if let Some(c) = to
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(to_error(format!(
            "`to` contains {c:?}, which a SIP URI cannot hold"
        )));
    }
    let (_, rest) = sip::strip_scheme(to);
    let scheme_len = to.len() - rest.len();
    let before_headers = rest.split('?').next().unwrap_or_default();
    let host_start = before_headers.find('@').map_or(0, |i| i + 1);
    let after_user = &rest[host_start..];
    let hostport_len = after_user.find([';', '?']).unwrap_or(after_user.len());
    let hostport = &after_user[..hostport_len];
    let (host, _port) = sip::parse_hostport(hostport)
        .map_err(|e| to_error(format!("`to` is a SIP URI without a valid host: {e}")))?;
    let host_at = scheme_len + host_start;
    Ok(Destination {
        raw: to,
        target: &to[host_at..host_at + host.len()],
        kind: Kind::Sip {
            params_at: host_at + hostport_len,
        },
    })
}

fn check_number(number: &str) -> Result<(), LookupError> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    let ok = !digits.is_empty()
        && digits.chars().count() <= MAX_NUMBER_CHARS
        && digits.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'*' | b'#' | b'.' | b'-' | b'(' | b')')
        });
    if ok {
        Ok(())
    } else {
        Err(to_error(format!(
            "`{}` is neither a sip:/sips: URI, a tel: URI, nor a number or client name \
             (1 to {MAX_NUMBER_CHARS} of 0-9 A-Z a-z * # . - ( ), optionally after a +)",
            printable(number)
        )))
    }
}

/// Checks headers supplied by the engine: names are SIP tokens, values hold no CR or LF.
pub fn check_supplied_headers(headers: &[(&str, &str)]) -> Result<(), LookupError> {
    for (name, value) in headers {
        if !sip::is_token(name) {
            return Err(LookupError {
                parameter: "headers".into(),
                message: format!("`{}` is not a SIP header name", printable(name)),
            });
        }
        if value.contains(['\r', '\n']) {
            return Err(LookupError {
                parameter: "headers".into(),
                message: format!("the value of header `{name}` contains CR or LF"),
            });
        }
    }
    Ok(())
}

/// A range of a compiled configuration's arena.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn get(self, arena: &str) -> &str {
        &arena[self.start as usize..(self.start + self.len) as usize]
    }

    /// The part of `self` from byte `from` (relative) for `len` bytes.
    fn sub(self, from: usize, len: usize) -> Span {
        Span {
            start: self.start + from as u32,
            len: len as u32,
        }
    }
}

#[derive(Default)]
struct Arena(String);

impl Arena {
    fn push(&mut self, s: &str) -> Span {
        let start = self.0.len() as u32;
        self.0.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }
}

struct ProxyEntry {
    uri: Span,
    host: Span,
    /// The raw `;a=b;c` tail of the uri.
    params: Span,
    port: Option<u16>,
    secure: bool,
    /// `sip_uri` adds `;lr` unless the configured uri has it.
    needs_lr: bool,
    /// None of this proxy's text needs escaping in JSON.
    plain_json: bool,
    /// Setting the `Request-URI` parameters on the proxy's own parameters only appends them
    /// (the usual case), so a PSTN Request-URI is written without looking for names.
    ruri_appends: bool,
    username: Option<Span>,
    password: Option<Span>,
    /// This proxy's header instructions: `rules[first..first + count]`.
    first_rule: u32,
    rule_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleKind {
    RequestUri,
    Route,
    Header,
}

struct RuleEntry {
    kind: RuleKind,
    header: Span,
    key: Span,
    value: Span,
}

/// The compiled `outbound-voice` section.
pub struct CompiledVoice {
    pub(crate) set: Arc<MatchSet>,
    arena: Box<str>,
    proxies: Box<[ProxyEntry]>,
    rules: Box<[RuleEntry]>,
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
    pub(crate) fn resolve<'a>(
        &'a self,
        dest: &'a Destination<'a>,
        supplied: &'a [(&'a str, &'a str)],
    ) -> VoiceAnswer<'a> {
        let matched = super::matcher::matching(&self.set, dest.target);
        if matched.is_empty() {
            // Known without walking one flag per proxy.
            return VoiceAnswer::none();
        }
        let mut routes = matched
            .iter()
            .map(|i| self.proxy(i.as_usize()).route(dest, supplied));
        let route = routes.next();
        VoiceAnswer {
            route,
            fallbacks: routes.collect(),
        }
    }

    /// The proxies, in configured order.
    pub fn proxies(&self) -> impl ExactSizeIterator<Item = Proxy<'_>> {
        (0..self.proxies.len()).map(|i| self.proxy(i))
    }

    fn proxy(&self, index: usize) -> Proxy<'_> {
        Proxy {
            voice: self,
            index,
            entry: &self.proxies[index],
        }
    }
}

/// One configured proxy.
#[derive(Clone, Copy)]
pub struct Proxy<'a> {
    voice: &'a CompiledVoice,
    index: usize,
    entry: &'a ProxyEntry,
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
    fn text(&self, span: Span) -> &'a str {
        span.get(&self.voice.arena)
    }

    fn rules(&self) -> &'a [RuleEntry] {
        let first = self.entry.first_rule as usize;
        &self.voice.rules[first..first + self.entry.rule_count as usize]
    }

    fn rules_of(&self, kind: RuleKind) -> impl Iterator<Item = &'a RuleEntry> + Clone + use<'a> {
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
    /// `sip:host[:port];params;lr` (`sips:` when configured; `;lr` once).
    pub fn sip_uri(&self) -> String {
        let mut out = Vec::with_capacity(self.entry.uri.len as usize + 12);
        self.write_sip_uri(&mut out);
        String::from_utf8(out).expect("built from strings")
    }
    fn write_sip_uri(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.scheme().as_bytes());
        self.push_hostport(out);
        out.extend_from_slice(self.text(self.entry.params).as_bytes());
        if self.entry.needs_lr {
            out.extend_from_slice(b";lr");
        }
    }
    fn scheme(&self) -> &'static str {
        if self.entry.secure { "sips:" } else { "sip:" }
    }
    pub fn username(&self) -> Option<&'a str> {
        self.entry.username.map(|s| self.text(s))
    }
    pub fn password(&self) -> Option<&'a str> {
        self.entry.password.map(|s| self.text(s))
    }
    /// The `Route` values to add, rendered `<sip:value;lr>`.
    pub fn routes(&self) -> impl Iterator<Item = String> + use<'a> {
        let voice = self.voice;
        self.rules_of(RuleKind::Route)
            .map(move |r| format!("<sip:{};lr>", r.value.get(&voice.arena)))
    }
    /// The configured header instructions, in order, as `(header, key, value)`.
    pub fn header_params(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + use<'a> {
        let arena = &self.voice.arena;
        self.rules()
            .iter()
            .map(move |r| (r.header.get(arena), r.key.get(arena), r.value.get(arena)))
    }

    fn push_hostport(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.host().as_bytes());
        if let Some(port) = self.entry.port {
            out.push(b':');
            push_decimal(out, port.into());
        }
    }

    fn route<'r>(
        &self,
        dest: &'r Destination<'r>,
        supplied: &'r [(&'r str, &'r str)],
    ) -> VoiceRoute<'r>
    where
        'a: 'r,
    {
        VoiceRoute {
            proxy: *self,
            dest,
            supplied,
        }
    }

    /// The `Request-URI` instructions as `(key, value)`, in order.
    fn ruri_settings(&self) -> impl Iterator<Item = (&'a str, &'a str)> + Clone + use<'a> {
        let arena = &self.voice.arena;
        self.rules_of(RuleKind::RequestUri)
            .map(move |r| (r.key.get(arena), r.value.get(arena)))
    }

    /// The headers this proxy changes or adds, grouped by name (any case) in first-configured
    /// order and spelling: `(index of the group's first rule, name)`.
    fn header_groups(&self) -> impl Iterator<Item = (usize, &'a str)> + use<'a> {
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
    fn write_header_value(&self, out: &mut Vec<u8>, first: usize, supplied: &[(&str, &str)]) {
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
    fn put(&self, out: &mut Vec<u8>, s: &str) {
        if self.entry.plain_json {
            out.extend_from_slice(s.as_bytes());
        } else {
            escape_into(out, s);
        }
    }
    fn put_quoted(&self, out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        self.put(out, s);
        out.push(b'"');
    }
    fn put_opt(&self, out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => self.put_quoted(out, s),
            None => out.extend_from_slice(b"null"),
        }
    }

    fn write_proxy_json(&self, out: &mut Vec<u8>) {
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
fn write_appended<'s>(out: &mut Vec<u8>, settings: impl Iterator<Item = (&'s str, &'s str)>) {
    for (key, value) in settings {
        out.push(b';');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
}

/// The route through one proxy for one call. Its Request-URI and headers are written
/// straight into the answer; `request_uri()` and `headers()` build them for other callers.
#[derive(Debug)]
pub struct VoiceRoute<'a> {
    pub proxy: Proxy<'a>,
    dest: &'a Destination<'a>,
    supplied: &'a [(&'a str, &'a str)],
}

impl VoiceRoute<'_> {
    /// The final Request-URI (SPEC §5 step 3).
    pub fn request_uri(&self) -> String {
        let mut out =
            Vec::with_capacity(self.dest.raw.len() + self.proxy.entry.uri.len as usize + 32);
        self.write_request_uri(&mut out);
        String::from_utf8(out).expect("built from strings")
    }

    /// Headers changed or added: configured spelling → final value, in configured order.
    pub fn headers(&self) -> Vec<(&str, String)> {
        self.proxy
            .header_groups()
            .map(|(first, name)| {
                let mut value = Vec::new();
                self.proxy
                    .write_header_value(&mut value, first, self.supplied);
                (name, String::from_utf8(value).expect("built from strings"))
            })
            .collect()
    }

    fn write_request_uri(&self, out: &mut Vec<u8>) {
        let p = &self.proxy;
        match self.dest.kind {
            Kind::Sip { params_at } => {
                let uri = self.dest.raw;
                if p.ruri_settings().next().is_none() {
                    out.extend_from_slice(uri.as_bytes());
                    return;
                }
                let (base, rest) = uri.split_at(params_at);
                let (params, headers) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
                out.extend_from_slice(base.as_bytes());
                sip::write_params_set(out, params, p.ruri_settings());
                out.extend_from_slice(headers.as_bytes());
            }
            Kind::Pstn { number } => {
                out.extend_from_slice(p.scheme().as_bytes());
                // `#` is not allowed unescaped in a SIP user part (RFC 3261 §25.1).
                for part in number.split_inclusive('#') {
                    match part.strip_suffix('#') {
                        Some(part) => {
                            out.extend_from_slice(part.as_bytes());
                            out.extend_from_slice(b"%23");
                        }
                        None => out.extend_from_slice(part.as_bytes()),
                    }
                }
                out.push(b'@');
                p.push_hostport(out);
                let params = p.text(p.entry.params);
                if p.entry.ruri_appends {
                    out.extend_from_slice(params.as_bytes());
                    write_appended(out, p.ruri_settings());
                } else {
                    sip::write_params_set(out, params, p.ruri_settings());
                }
            }
        }
    }

    /// Appends this route's SPEC §6 JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let p = &self.proxy;
        out.extend_from_slice(b"{\"proxy_index\":");
        // At most 100 proxies (validated), so the index fits.
        let index = u32::try_from(p.index).unwrap_or(u32::MAX);
        push_decimal(out, index);
        out.extend_from_slice(b",\"proxy\":");
        p.write_proxy_json(out);
        out.extend_from_slice(b",\"username\":");
        p.put_opt(out, p.username());
        out.extend_from_slice(b",\"password\":");
        p.put_opt(out, p.password());
        out.extend_from_slice(b",\"request_uri\":");
        write_json_str_with(out, |out| self.write_request_uri(out));
        out.extend_from_slice(b",\"headers\":{");
        for (i, (first, name)) in p.header_groups().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            p.put_quoted(out, name);
            out.push(b':');
            write_json_str_with(out, |out| p.write_header_value(out, first, self.supplied));
        }
        out.extend_from_slice(b"},\"header_params\":[");
        for (i, (header, key, value)) in p.header_params().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"header\":");
            p.put_quoted(out, header);
            out.extend_from_slice(b",\"key\":");
            p.put_quoted(out, key);
            out.extend_from_slice(b",\"value\":");
            p.put_quoted(out, value);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"routes\":[");
        for (i, r) in p.rules_of(RuleKind::Route).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"\"<sip:");
            p.put(out, p.text(r.value));
            out.extend_from_slice(b";lr>\"");
        }
        out.extend_from_slice(b"]}");
    }
}

/// The first matching proxy and the other matching ones, in configured order.
#[derive(Debug)]
pub struct VoiceAnswer<'a> {
    pub route: Option<VoiceRoute<'a>>,
    pub fallbacks: Vec<VoiceRoute<'a>>,
}

impl VoiceAnswer<'_> {
    pub fn none() -> Self {
        VoiceAnswer {
            route: None,
            fallbacks: Vec::new(),
        }
    }
}

pub(crate) fn compile_model(model: Model) -> CompiledRouting {
    CompiledRouting {
        voice: model
            .voice
            .map(|(proxies, set)| compile_voice(set, &proxies)),
        sms: model.sms.map(Tlv::dest_network_id),
        empty: model.empty,
    }
}

fn compile_voice(set: Arc<MatchSet>, proxies: &[ProxyModel]) -> CompiledVoice {
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
    }
}
