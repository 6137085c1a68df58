//! The lookup answers of SPEC §6, serialised.
use serde::Serialize;

use super::sms::Tlv;
use super::voice::VoiceAnswer;

/// Which configuration decided a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Account,
    Global,
    None,
}

pub fn voice_response_json(account_sid: Option<&str>, source: Source, answer: &VoiceAnswer<'_>) -> String {
    let _ = (account_sid, source, answer);
    String::new()
}

pub fn sms_response_json(account_sid: Option<&str>, source: Source, tlvs: &[Tlv]) -> String {
    let _ = (account_sid, source, tlvs);
    String::new()
}
