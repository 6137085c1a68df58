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

/// Writes `s` JSON-escaped (without quotes).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s",
            "\r\n\t",
            "\u{0}\u{1f}\u{7f}",
            "é€😀",
            "<sip:a@b>;x=1",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }
}
