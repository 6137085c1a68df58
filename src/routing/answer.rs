//! The lookup answers of SPEC §6, written straight into a byte buffer: the static parts of
//! each proxy were rendered at compile time, so an answer costs little more than a copy.

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

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Account => "account",
            Source::Global => "global",
            Source::None => "none",
        }
    }
}

pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

pub(crate) fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn head(out: &mut Vec<u8>, account_sid: Option<&str>, source: Source) {
    out.extend_from_slice(b"{\"account_sid\":");
    write_opt_str(out, account_sid);
    out.extend_from_slice(b",\"source\":\"");
    out.extend_from_slice(source.as_str().as_bytes());
    out.push(b'"');
}

/// `{"account_sid": …, "source": …, "route": …, "fallbacks": […]}`
pub fn voice_response_json(
    account_sid: Option<&str>,
    source: Source,
    answer: &VoiceAnswer<'_>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    head(&mut out, account_sid, source);
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
    out.extend_from_slice(b"]}");
    out
}

/// `{"account_sid": …, "source": …, "tlvs": […]}`
pub fn sms_response_json(account_sid: Option<&str>, source: Source, tlvs: &[Tlv]) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    head(&mut out, account_sid, source);
    out.extend_from_slice(b",\"tlvs\":");
    serde_json::to_writer(&mut out, tlvs).expect("writing to a Vec cannot fail");
    out.push(b'}');
    out
}
