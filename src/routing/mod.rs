//! The routing core: pure and synchronous (no I/O, no async, nothing else of ours).
//!
//! `compile` validates a `ConfigurationData` document (SPEC §4), reporting every problem with
//! its JSON pointer, and turns it into an immutable `CompiledRouting` that resolves voice
//! routes (SPEC §5) and SMS TLVs without allocating more than the answer needs.

mod answer;
mod json;
mod matcher;
mod model;
mod sip;
mod sms;
mod validate;
mod voice;

pub use answer::{Source, sms_response_json, voice_response_json};
pub use sms::Tlv;
pub use validate::{
    MAX_CONFIGURATION_BYTES, MAX_CREDENTIAL_BYTES, MAX_HEADERS, MAX_MATCH_BYTES, MAX_PROXIES,
    Problem,
};
pub use voice::{
    CompiledVoice, Destination, LookupError, MAX_DESTINATION_BYTES, Proxy, VoiceAnswer, VoiceRoute,
    check_supplied_headers,
};

use std::sync::Arc;

/// Shares compiled regex sets between configurations that use the same patterns, so that
/// 100,000 accounts with the same proxies do not hold 100,000 copies of one automaton.
pub use matcher::RegexInterner;

/// A validated, compiled `ConfigurationData`.
#[derive(Debug)]
pub struct CompiledRouting {
    pub(crate) voice: Option<voice::CompiledVoice>,
    pub(crate) sms: Option<Tlv>,
    pub(crate) empty: bool,
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
    let model = validate::validate(config, interner)?;
    Ok(voice::compile_model(model))
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

    /// The voice route for `dest`; `supplied` are headers the engine is about to send.
    pub fn resolve_voice<'a>(
        &'a self,
        dest: &'a Destination<'a>,
        supplied: &'a [(&'a str, &'a str)],
    ) -> VoiceAnswer<'a> {
        match &self.voice {
            Some(v) => v.resolve(dest, supplied),
            None => VoiceAnswer::none(),
        }
    }

    /// The compiled `outbound-voice` section, if any (for engines embedding the library).
    pub fn voice(&self) -> Option<&CompiledVoice> {
        self.voice.as_ref()
    }

    /// The TLVs to add to an SMPP `submit_sm` (empty without `outbound-sms`).
    pub fn sms_tlvs(&self) -> &[Tlv] {
        self.sms.as_slice()
    }
}

/// Convenience for callers holding an `Arc`.
pub type SharedRouting = Arc<CompiledRouting>;

#[cfg(test)]
mod tests;
