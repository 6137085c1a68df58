//! Voice routing (SPEC §5): proxy selection by anchored regex set, Request-URI rewriting,
//! `Route` entries and header parameters. Everything that does not depend on the call is
//! rendered once at compile time, including the static parts of the JSON answer.

use std::borrow::Cow;
use std::sync::Arc;

use regex::RegexSet;

use super::CompiledRouting;
use super::answer::{push_json_str, write_opt_str};
use super::matcher::RegexInterner;
use super::model::{HeaderRule, Model, ProxyModel};
use super::sip::{self, Param, printable};
use super::sms::Tlv;
use super::validate::Problem;

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

/// The compiled `outbound-voice` section.
#[derive(Debug)]
pub struct CompiledVoice {
    pub(crate) set: Arc<RegexSet>,
    proxies: Vec<CompiledProxy>,
}

/// One header changed or added by a proxy: its configured spelling and `k=v;k2=v2`.
#[derive(Debug)]
struct HeaderGroup {
    name: Box<str>,
    params: Box<str>,
}

/// One compiled proxy.
pub struct CompiledProxy {
    index: usize,
    uri: Box<str>,
    secure: bool,
    host: Box<str>,
    port: Option<u16>,
    params: Vec<Param>,
    sip_uri: Box<str>,
    username: Option<Box<str>>,
    password: Option<Box<str>>,
    /// `Request-URI` instructions, in order.
    ruri_rules: Box<[(Box<str>, Box<str>)]>,
    /// What follows the number in a PSTN Request-URI: `@host[:port];params`.
    pstn_suffix: Box<str>,
    groups: Box<[HeaderGroup]>,
    routes: Box<[Box<str>]>,
    rules: Box<[HeaderRule]>,
    /// `{"proxy_index":…,"proxy":{…},"username":…,"password":…,"request_uri":`
    json_head: Box<str>,
    /// `,"header_params":[…],"routes":[…]}`
    json_tail: Box<str>,
}

impl std::fmt::Debug for CompiledProxy {
    // Holds a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledProxy")
            .field("index", &self.index)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl CompiledProxy {
    pub fn index(&self) -> usize {
        self.index
    }
    /// The `uri` as configured.
    pub fn uri(&self) -> &str {
        &self.uri
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// `sip:host[:port];params;lr` (`sips:` when configured).
    pub fn sip_uri(&self) -> &str {
        &self.sip_uri
    }
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
    /// The `Route` values to add, rendered `<sip:value;lr>`.
    pub fn routes(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &**r)
    }
    /// The URI parameters of the proxy `uri`, as `(name, value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_deref()))
    }
    /// The configured header instructions, in order, as `(header, key, value)`.
    pub fn header_params(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.rules
            .iter()
            .map(|r| (r.header.as_str(), r.key.as_str(), r.value.as_str()))
    }

    fn route<'a>(&'a self, dest: &Destination<'_>, supplied: &[(&str, &str)]) -> VoiceRoute<'a> {
        let request_uri = match dest.kind {
            Kind::Sip { .. } if self.ruri_rules.is_empty() => Cow::Owned(dest.raw.to_owned()),
            Kind::Sip { params_at } => Cow::Owned(self.rewrite_sip_uri(dest.raw, params_at)),
            Kind::Pstn { number } => Cow::Owned(self.pstn_uri(number)),
        };
        let headers = self
            .groups
            .iter()
            .map(|g| {
                let value = match supplied
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&g.name))
                {
                    Some((_, current)) => {
                        let mut v = String::with_capacity(current.len() + 1 + g.params.len());
                        v.push_str(current);
                        v.push(';');
                        v.push_str(&g.params);
                        v
                    }
                    None => String::from(&*g.params),
                };
                (&*g.name, value)
            })
            .collect();
        VoiceRoute {
            proxy: self,
            request_uri,
            headers,
        }
    }

    fn rewrite_sip_uri(&self, uri: &str, params_at: usize) -> String {
        let (base, rest) = uri.split_at(params_at);
        let (params, headers) = match rest.find('?') {
            Some(q) => rest.split_at(q),
            None => (rest, ""),
        };
        let mut params = sip::split_params(params);
        for (k, v) in self.ruri_rules.iter() {
            sip::set_param(&mut params, k, v);
        }
        let mut out = String::with_capacity(uri.len() + 64);
        out.push_str(base);
        sip::render_params(&mut out, &params);
        out.push_str(headers);
        out
    }

    fn pstn_uri(&self, number: &str) -> String {
        let mut out = String::with_capacity(5 + number.len() + 2 + self.pstn_suffix.len());
        out.push_str(if self.secure { "sips:" } else { "sip:" });
        // `#` is not allowed unescaped in a SIP user part (RFC 3261 §25.1).
        for c in number.chars() {
            match c {
                '#' => out.push_str("%23"),
                c => out.push(c),
            }
        }
        out.push_str(&self.pstn_suffix);
        out
    }
}

/// The route through one proxy for one call.
#[derive(Debug)]
pub struct VoiceRoute<'a> {
    pub proxy: &'a CompiledProxy,
    pub request_uri: Cow<'a, str>,
    /// Headers changed or added: configured spelling → final value, in configured order.
    pub headers: Vec<(&'a str, String)>,
}

impl VoiceRoute<'_> {
    /// Appends this route's SPEC §6 JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.proxy.json_head.as_bytes());
        push_json_str(out, &self.request_uri);
        out.extend_from_slice(b",\"headers\":{");
        for (i, (name, value)) in self.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_json_str(out, name);
            out.push(b':');
            push_json_str(out, value);
        }
        out.push(b'}');
        out.extend_from_slice(self.proxy.json_tail.as_bytes());
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

impl CompiledVoice {
    pub(crate) fn resolve<'a>(
        &'a self,
        dest: &Destination<'_>,
        supplied: &[(&str, &str)],
    ) -> VoiceAnswer<'a> {
        let matched = self.set.matches(dest.target);
        let mut routes = matched
            .iter()
            .map(|i| self.proxies[i].route(dest, supplied));
        let route = routes.next();
        VoiceAnswer {
            route,
            fallbacks: routes.collect(),
        }
    }

    pub fn proxies(&self) -> &[CompiledProxy] {
        &self.proxies
    }
}

pub(crate) fn compile_model(
    model: Model,
    interner: &mut RegexInterner,
) -> Result<CompiledRouting, Vec<Problem>> {
    let voice = match model.voice {
        None => None,
        Some(proxies) => {
            let patterns: Vec<&str> = proxies
                .iter()
                .map(|p| p.pattern.as_deref().unwrap_or(".*"))
                .collect();
            // Validation built (or found) this set already; this is a map lookup.
            let set = interner.get_or_build(&patterns).map_err(|e| {
                vec![Problem {
                    pointer: "/outbound-voice/0/proxy".into(),
                    message: e,
                }]
            })?;
            let proxies = proxies
                .into_iter()
                .enumerate()
                .map(|(i, p)| compile_proxy(i, p))
                .collect();
            Some(CompiledVoice { set, proxies })
        }
    };
    let sms = model.sms.map(Tlv::dest_network_id).into_iter().collect();
    Ok(CompiledRouting {
        voice,
        sms,
        empty: model.empty,
    })
}

fn compile_proxy(index: usize, p: ProxyModel) -> CompiledProxy {
    let ProxyModel {
        uri,
        parsed,
        username,
        password,
        pattern: _,
        headers: rules,
    } = p;
    let scheme = if parsed.secure { "sips:" } else { "sip:" };
    let mut hostport = parsed.host.clone();
    if let Some(port) = parsed.port {
        hostport.push(':');
        hostport.push_str(&port.to_string());
    }

    let mut sip_uri = format!("{scheme}{hostport}");
    sip::render_params(&mut sip_uri, &parsed.params);
    if !parsed
        .params
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("lr"))
    {
        sip_uri.push_str(";lr");
    }

    let mut ruri_rules = Vec::new();
    let mut routes = Vec::new();
    let mut groups: Vec<(String, String)> = Vec::new();
    for rule in &rules {
        if rule.header.eq_ignore_ascii_case("request-uri") {
            ruri_rules.push((Box::from(rule.key.as_str()), Box::from(rule.value.as_str())));
        } else if rule.header.eq_ignore_ascii_case("route") {
            routes.push(format!("<sip:{};lr>", rule.value).into_boxed_str());
        } else {
            let kv = format!("{}={}", rule.key, rule.value);
            match groups
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&rule.header))
            {
                Some((_, params)) => {
                    params.push(';');
                    params.push_str(&kv);
                }
                None => groups.push((rule.header.clone(), kv)),
            }
        }
    }

    let mut pstn_params = parsed.params.clone();
    for (k, v) in &ruri_rules {
        sip::set_param(&mut pstn_params, k, v);
    }
    let mut pstn_suffix = format!("@{hostport}");
    sip::render_params(&mut pstn_suffix, &pstn_params);

    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(format!("{{\"proxy_index\":{index},\"proxy\":{{\"uri\":").as_bytes());
    push_json_str(&mut head, &uri);
    head.extend_from_slice(b",\"host\":");
    push_json_str(&mut head, &parsed.host);
    head.extend_from_slice(b",\"port\":");
    match parsed.port {
        Some(port) => head.extend_from_slice(port.to_string().as_bytes()),
        None => head.extend_from_slice(b"null"),
    }
    head.extend_from_slice(b",\"params\":[");
    for (i, param) in parsed.params.iter().enumerate() {
        if i > 0 {
            head.push(b',');
        }
        head.extend_from_slice(b"{\"name\":");
        push_json_str(&mut head, &param.name);
        head.extend_from_slice(b",\"value\":");
        write_opt_str(&mut head, param.value.as_deref());
        head.push(b'}');
    }
    head.extend_from_slice(b"],\"sip_uri\":");
    push_json_str(&mut head, &sip_uri);
    head.extend_from_slice(b"},\"username\":");
    write_opt_str(&mut head, username.as_deref());
    head.extend_from_slice(b",\"password\":");
    write_opt_str(&mut head, password.as_deref());
    head.extend_from_slice(b",\"request_uri\":");

    let mut tail = Vec::with_capacity(128);
    tail.extend_from_slice(b",\"header_params\":[");
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            tail.push(b',');
        }
        tail.extend_from_slice(b"{\"header\":");
        push_json_str(&mut tail, &rule.header);
        tail.extend_from_slice(b",\"key\":");
        push_json_str(&mut tail, &rule.key);
        tail.extend_from_slice(b",\"value\":");
        push_json_str(&mut tail, &rule.value);
        tail.push(b'}');
    }
    tail.extend_from_slice(b"],\"routes\":[");
    for (i, route) in routes.iter().enumerate() {
        if i > 0 {
            tail.push(b',');
        }
        push_json_str(&mut tail, route);
    }
    tail.extend_from_slice(b"]}");

    let utf8 = |v: Vec<u8>| {
        String::from_utf8(v)
            .expect("JSON built from str is UTF-8")
            .into_boxed_str()
    };
    CompiledProxy {
        index,
        uri: uri.into_boxed_str(),
        secure: parsed.secure,
        host: parsed.host.into_boxed_str(),
        port: parsed.port,
        params: parsed.params,
        sip_uri: sip_uri.into_boxed_str(),
        username: username.map(String::into_boxed_str),
        password: password.map(String::into_boxed_str),
        ruri_rules: ruri_rules.into_boxed_slice(),
        pstn_suffix: pstn_suffix.into_boxed_str(),
        groups: groups
            .into_iter()
            .map(|(name, params)| HeaderGroup {
                name: name.into_boxed_str(),
                params: params.into_boxed_str(),
            })
            .collect(),
        routes: routes.into_boxed_slice(),
        rules: rules.into_boxed_slice(),
        json_head: utf8(head),
        json_tail: utf8(tail),
    }
}
