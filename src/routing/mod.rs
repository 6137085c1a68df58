//! The routing core: pure and synchronous (no I/O, no async, nothing else of ours).
//!
//! `compile` validates a `ConfigurationData` document (docs/routing.md), reporting every problem with
//! its JSON pointer, and turns it into an immutable `CompiledRouting` that resolves voice
//! routes (docs/routing.md) and SMS TLVs without allocating more than the answer needs.
//!
//! Inside: `json` parses keeping order and duplicates, `validate` walks the document into a
//! `model`, `matcher` compiles the `match` expressions, `compiled` holds the compact form,
//! `destination` parses a call's target, `render` writes one call's routes, `answer` the
//! whole lookup document, `sms` the TLV; `sip` and `output` are the small shared writers.

mod answer;
mod capacity;
mod compiled;
mod conditions;
mod destination;
mod explain;
mod health;
mod json;
mod matcher;
mod model;
mod output;
mod policy;
mod problem;
mod problems;
mod render;
mod schedule;
mod select;
mod sip;
mod sms;
mod validate;

pub use answer::{
    Source, sms_response_json, voice_answer, voice_engine_json, voice_response_json, with_explain,
};
pub use capacity::{CapacityState, CapacityView, FullBuckets, Reading};
pub use compiled::{CompiledVoice, Proxy};
pub use conditions::{Caller, LookupInput, MAX_KEY_CHARS, SelectionKey, check_key, parse_at};
pub use destination::{Destination, LookupError, MAX_DESTINATION_BYTES, check_supplied_headers};
pub use explain::{Decider, write_sms_explain, write_voice_explain};
pub use health::{Health, ProxyKey, order_by_health};
/// Shares compiled regex sets between configurations that use the same patterns, so that
/// 100,000 accounts with the same proxies do not hold 100,000 copies of one automaton.
pub use matcher::RegexInterner;
pub use model::Limits;
pub use problem::Problem;
pub use render::{VoiceAnswer, VoiceRoute};
pub use select::{Conditions, Rule, Weighed, unit};
pub use sip::printable;
pub use sms::Tlv;
pub use validate::{
    MAX_CONFIGURATION_BYTES, MAX_CREDENTIAL_BYTES, MAX_HEADERS, MAX_MATCH_BYTES, MAX_PROXIES,
};

/// A validated, compiled `ConfigurationData`.
#[derive(Debug)]
pub struct CompiledRouting {
    voice: Option<CompiledVoice>,
    sms: Option<Tlv>,
    empty: bool,
}

/// Validates and compiles one configuration.
pub fn compile(config: &str) -> Result<CompiledRouting, Vec<Problem>> {
    compile_with(config, &RegexInterner::default())
}

/// As `compile`, sharing regex sets through `interner`.
pub fn compile_with(
    config: &str,
    interner: &RegexInterner,
) -> Result<CompiledRouting, Vec<Problem>> {
    compile_under(config, interner, validate::Rules::Input)
}

/// As `compile_with`, for a configuration read back from the database: the rules that only
/// guard input (whitespace in `match`, docs/routing.md) are not applied again, so a row stored
/// before such a rule existed still loads.
pub fn compile_stored(
    config: &str,
    interner: &RegexInterner,
) -> Result<CompiledRouting, Vec<Problem>> {
    compile_under(config, interner, validate::Rules::Stored)
}

fn compile_under(
    config: &str,
    interner: &RegexInterner,
    rules: validate::Rules,
) -> Result<CompiledRouting, Vec<Problem>> {
    let model = validate::validate_with(config, interner, rules)?;
    Ok(CompiledRouting {
        voice: model.voice.map(compiled::compile_voice),
        sms: model.sms.map(Tlv::dest_network_id),
        empty: model.empty,
    })
}

/// Validates only (the compiled value is dropped).
pub fn validate(config: &str) -> Result<(), Vec<Problem>> {
    compile(config).map(|_| ())
}

impl CompiledRouting {
    /// True for a document with no members (`{}`): a global `{}` routes nobody.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The voice route for `dest`; `supplied` are headers the engine is about to send. No
    /// caller, no key, the Unix epoch: see `resolve` for a lookup with a routing policy.
    pub fn resolve_voice<'a>(
        &'a self,
        dest: &'a Destination<'a>,
        supplied: &'a [(&'a str, &'a str)],
    ) -> VoiceAnswer<'a> {
        self.resolve(LookupInput::new(dest, supplied), |_| Health::Up)
    }

    /// As `resolve_voice`, with the health of each proxy (by 0-based index) given by
    /// `health`: `down` proxies go last (docs/routing.md).
    pub fn resolve_voice_with_health<'a>(
        &'a self,
        dest: &'a Destination<'a>,
        supplied: &'a [(&'a str, &'a str)],
        health: impl Fn(usize) -> Health,
    ) -> VoiceAnswer<'a> {
        self.resolve(LookupInput::new(dest, supplied), health)
    }

    /// The voice route for `input` (docs/routing.md: conditions, priority, weight, then
    /// `health` of each proxy by 0-based index).
    pub fn resolve<'a>(
        &'a self,
        input: LookupInput<'a>,
        health: impl Fn(usize) -> Health,
    ) -> VoiceAnswer<'a> {
        self.resolve_with_capacity(input, health, &FullBuckets)
    }

    /// As `resolve`, the buckets of limited proxies seen through `capacity` (docs/routing.md,
    /// capacity): the route takes a token through it, full proxies are left out.
    pub fn resolve_with_capacity<'a>(
        &'a self,
        input: LookupInput<'a>,
        health: impl Fn(usize) -> Health,
        capacity: &dyn CapacityView,
    ) -> VoiceAnswer<'a> {
        match &self.voice {
            Some(v) => render::resolve(v, input, health, capacity),
            None => VoiceAnswer::none(),
        }
    }

    /// The `limits` of each voice proxy, in configured order (`None` where it has none);
    /// empty when no proxy has limits, so that the caller holds no buckets.
    pub fn limits(&self) -> Vec<Option<Limits>> {
        match self.voice.as_ref().and_then(|v| v.policy.as_ref()) {
            Some(p) if p.limited => p.proxies.iter().map(|p| p.limits).collect(),
            _ => Vec::new(),
        }
    }

    /// True when a proxy has a routing policy member: a lookup then needs the instant and a
    /// key (drawn when none is given). Without one they are never read.
    pub fn has_policy(&self) -> bool {
        self.voice.as_ref().is_some_and(|v| v.policy.is_some())
    }

    /// The configured voice proxies, in order (none without `outbound-voice`).
    pub fn proxies(&self) -> impl Iterator<Item = Proxy<'_>> {
        self.voice.iter().flat_map(|v| v.proxies())
    }

    /// The TLVs to add to an SMPP `submit_sm` (empty without `outbound-sms`).
    pub fn sms_tlvs(&self) -> &[Tlv] {
        self.sms.as_slice()
    }
}

#[cfg(test)]
mod tests;
