//! One call's answer through the compiled proxies (docs/routing.md, steps 2–6): which proxies match,
//! the Request-URI, the headers and routes of each, written straight into the answer.

use super::capacity::CapacityView;
use super::compiled::{CompiledVoice, Proxy, RuleKind, write_appended};
use super::conditions::LookupInput;
use super::destination::{Destination, Kind};
use super::health::{Health, order_by_health};
use super::output::{push_decimal, write_json_str_with};
use super::policy::PolicyTable;
use super::select::{Rule, select};
use super::sip;
use super::validate::MAX_HEADERS;

/// The capacity step (docs/routing.md, capacity), after health: the first proxy that is not
/// limited or whose bucket gives a token becomes the route (it takes the token); a limited
/// fallback stays only while its bucket holds one (it takes none). When every proxy is left
/// out, the answer is `unavailable` until the first token returns.
fn leave_out_full<'a>(
    answer: VoiceAnswer<'a>,
    policy: &PolicyTable,
    capacity: &dyn CapacityView,
) -> VoiceAnswer<'a> {
    let VoiceAnswer {
        route,
        fallbacks,
        health_reordered,
        rule,
        ..
    } = answer;
    let Some(first) = route else {
        return VoiceAnswer::none();
    };
    let limited = |i: usize| policy.proxies[i].limits.is_some();
    let mut route = None;
    let mut kept = Vec::with_capacity(fallbacks.len());
    let (mut skipped, mut retry_after) = (0usize, u64::MAX);
    let mut skipped_before_route = false;
    for r in std::iter::once(first).chain(fallbacks) {
        let i = r.proxy.index();
        let verdict = match (limited(i), route.is_none()) {
            (false, _) => Ok(()),
            (true, true) => capacity.take(i),
            (true, false) => capacity.peek(i),
        };
        match verdict {
            Ok(()) if route.is_none() => route = Some(r),
            Ok(()) => kept.push(r),
            Err(ms) => {
                skipped += 1;
                retry_after = retry_after.min(ms);
                skipped_before_route |= route.is_none();
            }
        }
    }
    let unavailable = route.is_none().then_some(retry_after);
    capacity.left_out(skipped, unavailable.is_some());
    VoiceAnswer {
        route,
        fallbacks: kept,
        health_reordered,
        rule: if skipped_before_route && unavailable.is_none() {
            Rule::Capacity
        } else {
            rule
        },
        unavailable,
        capacity_skips: skipped,
    }
}

/// The route and fallbacks for `input` (docs/routing.md): the matching proxies in
/// configured order — or, for a configuration with a routing policy, in the policy's order
/// (`select`) —, then ordered by `health` (of each proxy index; docs/operations.md).
pub(crate) fn resolve<'a>(
    voice: &'a CompiledVoice,
    input: LookupInput<'a>,
    health: impl Fn(usize) -> Health,
    capacity: &dyn CapacityView,
) -> VoiceAnswer<'a> {
    let (dest, supplied) = (input.dest, input.headers);
    if let Some(policy) = &voice.policy {
        let selection = select(voice, policy, &input);
        let routes = selection.order.iter().map(|&i| VoiceRoute {
            proxy: voice.proxy(i),
            dest,
            supplied,
            health: health(i),
        });
        let answer = answer(routes, selection.rule);
        if !policy.limited {
            return answer;
        }
        return leave_out_full(answer, policy, capacity);
    }
    let matched = super::matcher::matching(&voice.set, dest.target());
    if matched.is_empty() {
        // Known without walking one flag per proxy.
        return VoiceAnswer::none();
    }
    let routes = matched.iter().map(|i| VoiceRoute {
        proxy: voice.proxy(i.as_usize()),
        dest,
        supplied,
        health: health(i.as_usize()),
    });
    answer(routes, Rule::FirstMatch)
}

/// The answer for `routes` in selection order, `down` ones then put last.
fn answer<'a>(mut routes: impl Iterator<Item = VoiceRoute<'a>>, rule: Rule) -> VoiceAnswer<'a> {
    let Some(mut route) = routes.next() else {
        return VoiceAnswer::none();
    };
    let mut fallbacks: Vec<VoiceRoute<'a>> = routes.collect();
    // docs/operations.md: `down` proxies after the others, the order kept within each group.
    // Only when one is down, so that the usual answer costs no more than before.
    let mut health_reordered = false;
    let mut route_moved = false;
    if route.health == Health::Down || fallbacks.iter().any(|r| r.health == Health::Down) {
        let first = route.proxy.index();
        fallbacks.insert(0, route);
        health_reordered = order_by_health(&mut fallbacks, |r| r.health);
        route = fallbacks.remove(0);
        route_moved = route.proxy.index() != first;
    }
    VoiceAnswer {
        route: Some(route),
        fallbacks,
        health_reordered,
        // Health decided only when it changed the route; a down fallback moved last leaves
        // the rule that chose the route (docs/routing.md).
        rule: if route_moved { Rule::Health } else { rule },
        unavailable: None,
        capacity_skips: 0,
    }
}

/// The route through one proxy for one call. Its Request-URI and headers are written
/// straight into the answer; `request_uri()` and `headers()` build them for other callers.
#[derive(Debug)]
pub struct VoiceRoute<'a> {
    pub proxy: Proxy<'a>,
    dest: &'a Destination<'a>,
    supplied: &'a [(&'a str, &'a str)],
    /// The proxy's health when the answer was made (docs/operations.md).
    pub health: Health,
}

impl VoiceRoute<'_> {
    /// The final Request-URI (docs/routing.md, step 3).
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

    /// Appends this route's docs/api.md JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let p = &self.proxy;
        out.extend_from_slice(b"{\"proxy_index\":");
        // At most 100 proxies (validated), so the index fits.
        let index = u32::try_from(p.index()).unwrap_or(u32::MAX);
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
        // Where each header's quoted name and value were written: `header_list` (docs/api.md)
        // copies those bytes rather than building the values twice. A proxy has at most
        // MAX_HEADERS instructions, so at most that many headers: no allocation.
        let mut written = [(0u32, 0u32, 0u32); MAX_HEADERS];
        let mut count = 0;
        for (i, (first, name)) in p.header_groups().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let name_at = out.len();
            p.put_quoted(out, name);
            out.push(b':');
            let value_at = out.len();
            write_json_str_with(out, |out| p.write_header_value(out, first, self.supplied));
            // Offsets in an answer of a few kilobytes (at most 100 routes of 50 headers).
            written[i] = (name_at as u32, value_at as u32, out.len() as u32);
            count = i + 1;
        }
        out.extend_from_slice(b"},\"header_list\":[");
        for (i, &(name_at, value_at, end)) in written[..count].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            // The quoted name, without the `:` written after it.
            out.extend_from_within(name_at as usize..value_at as usize - 1);
            out.extend_from_slice(b",\"value\":");
            out.extend_from_within(value_at as usize..end as usize);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"header_params\":[");
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
        out.push(b']');
        // docs/operations.md: the proxy's health, last member of every route object.
        out.extend_from_slice(b",\"health\":\"");
        out.extend_from_slice(self.health.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
}

impl VoiceRoute<'_> {
    /// Appends this route's compact object of `view=engine` (docs/api.md): only what an
    /// engine applies — `hop` (the next hop), `ruri` (the final Request-URI), `user` and
    /// `pass` when configured, `headers` as an ordered `[{"name", "value"}]` list and `route`
    /// (the `Route` headers to add, in order).
    pub fn write_engine_json(&self, out: &mut Vec<u8>) {
        let p = &self.proxy;
        out.extend_from_slice(b"{\"hop\":");
        write_json_str_with(out, |out| p.write_sip_uri(out));
        out.extend_from_slice(b",\"ruri\":");
        write_json_str_with(out, |out| self.write_request_uri(out));
        if let Some(user) = p.username() {
            out.extend_from_slice(b",\"user\":");
            p.put_quoted(out, user);
        }
        if let Some(password) = p.password() {
            out.extend_from_slice(b",\"pass\":");
            p.put_quoted(out, password);
        }
        out.extend_from_slice(b",\"headers\":[");
        for (i, (first, name)) in p.header_groups().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            p.put_quoted(out, name);
            out.extend_from_slice(b",\"value\":");
            write_json_str_with(out, |out| p.write_header_value(out, first, self.supplied));
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"route\":[");
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
    /// True when proxy health changed the configured order (`explain` in docs/api.md).
    pub health_reordered: bool,
    /// The rule that put the route first (docs/api.md, `explain`'s `reason`).
    pub rule: Rule,
    /// Every matching proxy was left out for capacity: milliseconds until the first token
    /// returns (docs/api.md, `unavailable`).
    pub unavailable: Option<u64>,
    /// Proxies left out for capacity.
    pub capacity_skips: usize,
}

impl VoiceAnswer<'_> {
    pub fn none() -> Self {
        VoiceAnswer {
            route: None,
            fallbacks: Vec::new(),
            health_reordered: false,
            rule: Rule::FirstMatch,
            unavailable: None,
            capacity_skips: 0,
        }
    }
}
