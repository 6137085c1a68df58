//! The lookup answer documents of SPEC §6, written straight into a byte buffer: the head
//! (`account_sid`, `source`) and the voice routes or SMS TLVs.

use serde::Serialize;

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
    // About 700 bytes a route with a few header instructions.
    let routes = usize::from(answer.route.is_some()) + answer.fallbacks.len();
    let mut out = Vec::with_capacity(64 + 896 * routes.max(1));
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
