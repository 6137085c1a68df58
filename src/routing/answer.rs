//! The lookup answer documents of docs/api.md, written straight into a byte buffer: the
//! head (`account_sid`, `source`, `revision`) and the voice routes or SMS TLVs.

use serde::Serialize;

use super::CompiledRouting;
use super::capacity::{CapacityView, Reading};
use super::conditions::LookupInput;
use super::explain::{Decider, write_voice_explain};
use super::health::Health;
use super::output::write_opt_str;
use super::render::VoiceAnswer;
use super::sms::Tlv;

/// Which configuration decided a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Account,
    Global,
    None,
    /// A configuration being tried, never stored (a simulation, docs/api.md).
    Draft,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Account => "account",
            Source::Global => "global",
            Source::None => "none",
            Source::Draft => "draft",
        }
    }
}

/// `revision` is that of the configuration that decided (docs/api.md); it is written `null` when
/// nothing decided (`source` `none`), whatever the caller passed.
fn head(out: &mut Vec<u8>, account_sid: Option<&str>, source: Source, revision: Option<i64>) {
    out.extend_from_slice(b"{\"account_sid\":");
    write_opt_str(out, account_sid);
    out.extend_from_slice(b",\"source\":\"");
    out.extend_from_slice(source.as_str().as_bytes());
    out.extend_from_slice(b"\",\"revision\":");
    match revision.filter(|_| source != Source::None) {
        Some(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `,"explain":{…}` (written by `explain`) to a finished answer document: the answer
/// without it is byte for byte what `voice_response_json` or `sms_response_json` wrote, and
/// costs nothing more.
pub fn with_explain(mut answer: Vec<u8>, explain: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    debug_assert_eq!(answer.last(), Some(&b'}'));
    answer.pop();
    answer.extend_from_slice(b",\"explain\":");
    explain(&mut answer);
    answer.push(b'}');
    answer
}

/// `{"account_sid": …, "source": …, "revision": …, "route": …, "fallbacks": […]}`
pub fn voice_response_json(
    account_sid: Option<&str>,
    source: Source,
    revision: Option<i64>,
    answer: &VoiceAnswer<'_>,
) -> Vec<u8> {
    // About 800 bytes a route with a few header instructions.
    let routes = usize::from(answer.route.is_some()) + answer.fallbacks.len();
    let mut out = Vec::with_capacity(96 + 1024 * routes.max(1));
    head(&mut out, account_sid, source, revision);
    out.extend_from_slice(b",\"route\":");
    match &answer.route {
        Some(route) => route.write_json(&mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"fallbacks\":[");
    for (i, route) in answer.fallbacks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        route.write_json(&mut out);
    }
    out.push(b']');
    // Only when every matching proxy was left out for capacity (docs/api.md): any other
    // answer is byte for byte what it was.
    if let Some(ms) = answer.unavailable {
        out.extend_from_slice(b",\"unavailable\":{\"reason\":\"capacity\",\"retry_after_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// The voice lookup answer for `input` through `routing` (the deciding configuration when it
/// routes), each proxy's health by index from `health`; with its `explain` when `explain`
/// names the deciding configuration. The one builder of lookups, simulations and `resolve`.
/// The route takes a token from `capacity` unless the answer is explained (explain only
/// reads the buckets; docs/routing.md, capacity).
#[allow(clippy::too_many_arguments)]
pub fn voice_answer(
    account_sid: Option<&str>,
    source: Source,
    revision: Option<i64>,
    routing: Option<&CompiledRouting>,
    input: LookupInput<'_>,
    health: impl Fn(usize) -> Health,
    capacity: &dyn CapacityView,
    explain: Option<Decider>,
) -> Vec<u8> {
    let reading = Reading(capacity);
    let view: &dyn CapacityView = match explain {
        None => capacity,
        Some(_) => &reading,
    };
    let answer = match routing {
        Some(r) => r.resolve_with_capacity(input, &health, view),
        None => VoiceAnswer::none(),
    };
    let body = voice_response_json(account_sid, source, revision, &answer);
    match explain {
        None => body,
        Some(decider) => with_explain(body, |out| {
            write_voice_explain(out, decider, routing, &input, &answer, &health, view)
        }),
    }
}

/// The compact voice answer of `view=engine` (docs/api.md): `{"routes": [route, fallbacks…],
/// "revision": n}` — the route first, then the fallbacks in the full answer's order; each
/// route holds only what an engine applies (`VoiceRoute::write_engine_json`). `revision` is
/// left out when nothing decided.
pub fn voice_engine_json(
    source: Source,
    revision: Option<i64>,
    answer: &VoiceAnswer<'_>,
) -> Vec<u8> {
    let routes = usize::from(answer.route.is_some()) + answer.fallbacks.len();
    let mut out = Vec::with_capacity(32 + 256 * routes);
    out.extend_from_slice(b"{\"routes\":[");
    for (i, route) in answer.route.iter().chain(&answer.fallbacks).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        route.write_engine_json(&mut out);
    }
    out.push(b']');
    if let Some(n) = revision.filter(|_| source != Source::None) {
        out.extend_from_slice(b",\"revision\":");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
    // Only when every matching proxy was left out for capacity, as in the full answer.
    if let Some(ms) = answer.unavailable {
        out.extend_from_slice(b",\"unavailable\":{\"reason\":\"capacity\",\"retry_after_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(ms).as_bytes());
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// `{"account_sid": …, "source": …, "revision": …, "tlvs": […]}`
pub fn sms_response_json(
    account_sid: Option<&str>,
    source: Source,
    revision: Option<i64>,
    tlvs: &[Tlv],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(224);
    head(&mut out, account_sid, source, revision);
    out.extend_from_slice(b",\"tlvs\":[");
    for (i, tlv) in tlvs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        tlv.write_json(&mut out);
    }
    out.extend_from_slice(b"]}");
    out
}
