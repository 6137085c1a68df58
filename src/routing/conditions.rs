//! The lookup inputs of the routing policy (docs/routing.md): the caller (`from`) and the
//! selection key (`key`), checked as the lookup API states; and the one input type of a
//! lookup, so that a new input is one more field.

use jiff::Timestamp;

use super::destination::{Destination, LookupError, check_number};
use super::sip::{self, printable};

/// Longest `key` accepted (characters, each one byte from `!` to `~`).
pub const MAX_KEY_CHARS: usize = 256;
/// Longest `from` accepted, as for `to`.
const MAX_FROM_BYTES: usize = super::destination::MAX_DESTINATION_BYTES;

/// The caller of a lookup: what the proxies' `caller` expressions are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    target: &'a str,
}

fn from_error(message: impl Into<String>) -> LookupError {
    LookupError {
        parameter: "from".into(),
        message: message.into(),
    }
}

impl<'a> Caller<'a> {
    /// Parses `from`: a SIP/SIPS URI (its user part is the target), a `tel:` URI (its
    /// number), or a number or name with the character rules of `to`.
    pub fn parse(from: &'a str) -> Result<Caller<'a>, LookupError> {
        if from.is_empty() {
            return Err(from_error("`from` is empty"));
        }
        if from.len() > MAX_FROM_BYTES {
            return Err(from_error(format!(
                "`from` is longer than {MAX_FROM_BYTES} bytes"
            )));
        }
        if from.chars().any(char::is_control) {
            return Err(from_error("`from` contains a control character"));
        }
        if sip::has_sip_scheme(from) {
            return parse_sip_user(from);
        }
        let number = match from.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("tel:") => {
                from[4..].split(';').next().unwrap_or_default()
            }
            _ => from,
        };
        check_number(number).map_err(|e| from_error(e.message.replacen("`to`", "`from`", 1)))?;
        Ok(Caller { target: number })
    }

    /// What the `caller` expressions are matched against.
    pub fn target(&self) -> &'a str {
        self.target
    }
}

/// The user part of a SIP URI, which must also have a valid host.
fn parse_sip_user(from: &str) -> Result<Caller<'_>, LookupError> {
    if let Some(c) = from
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
    {
        return Err(from_error(format!(
            "`from` contains {c:?}, which a SIP URI cannot hold"
        )));
    }
    let (_, rest) = sip::strip_scheme(from);
    let before_headers = rest.split('?').next().unwrap_or_default();
    let Some(at) = before_headers.find('@') else {
        return Err(from_error(
            "`from` is a SIP URI without a user part: the caller is its user part",
        ));
    };
    let userinfo = &rest[..at];
    // `user:password@host`: the password is not the caller.
    let user = userinfo.split(':').next().unwrap_or_default();
    let after_user = &rest[at + 1..];
    let hostport = &after_user[..after_user.find([';', '?']).unwrap_or(after_user.len())];
    sip::parse_hostport(hostport)
        .map_err(|e| from_error(format!("`from` is a SIP URI without a valid host: {e}")))?;
    if user.is_empty() {
        return Err(from_error(format!(
            "`{}` has an empty user part",
            printable(from)
        )));
    }
    Ok(Caller { target: user })
}

/// Checks `key`: 1 to 256 characters from `!` to `~`.
pub fn check_key(key: &str) -> Result<(), LookupError> {
    let error = |message: String| LookupError {
        parameter: "key".into(),
        message,
    };
    if key.is_empty() {
        return Err(error("`key` is empty".into()));
    }
    if key.len() > MAX_KEY_CHARS {
        return Err(error(format!(
            "`key` is longer than {MAX_KEY_CHARS} characters"
        )));
    }
    if let Some(c) = key.chars().find(|c| !matches!(c, '!'..='~')) {
        return Err(error(format!(
            "`key` contains {c:?}; a key is 1 to {MAX_KEY_CHARS} printable ASCII characters \
             from ! to ~ (no spaces)"
        )));
    }
    Ok(())
}

/// `at` of a simulation or `resolve`: RFC 3339 (a date, `T`, a time, and `Z` or an offset).
pub fn parse_at(at: &str) -> Result<Timestamp, String> {
    let shape = at.len() >= 20
        && at.as_bytes()[10].eq_ignore_ascii_case(&b'T')
        && (at.ends_with(['Z', 'z'])
            || at.as_bytes()[at.len() - 6] == b'+'
            || at.as_bytes()[at.len() - 6] == b'-');
    match at.parse::<Timestamp>() {
        Ok(t) if shape && !at.contains('[') => Ok(t),
        _ => Err(format!(
            "`{}` is not an RFC 3339 instant such as 2026-12-24T17:30:00Z or \
             2026-12-24T18:30:00+01:00",
            printable(at)
        )),
    }
}

/// The key that orders weighted proxies: the caller's (normally the Call-ID), or drawn at
/// random by the caller of the routing core for a lookup without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionKey<'a> {
    Given(&'a str),
    Drawn(u64),
}

/// Everything a voice lookup is decided on. Built with `new` and the `with_*` setters, so
/// that adding an input is adding a field.
#[derive(Debug, Clone, Copy)]
pub struct LookupInput<'a> {
    pub dest: &'a Destination<'a>,
    /// The headers the engine is about to send.
    pub headers: &'a [(&'a str, &'a str)],
    /// `from`; `None`: no proxy with a `caller` matches.
    pub caller: Option<Caller<'a>>,
    pub key: SelectionKey<'a>,
    /// The instant `schedule`s are read at.
    pub at: Timestamp,
}

impl<'a> LookupInput<'a> {
    /// No caller, the drawn key 0, the Unix epoch: fine for a configuration without routing
    /// policy, which reads none of them. Callers of a policy set them.
    pub fn new(dest: &'a Destination<'a>, headers: &'a [(&'a str, &'a str)]) -> Self {
        LookupInput {
            dest,
            headers,
            caller: None,
            key: SelectionKey::Drawn(0),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    pub fn with_caller(self, caller: Option<Caller<'a>>) -> Self {
        LookupInput { caller, ..self }
    }

    pub fn with_key(self, key: SelectionKey<'a>) -> Self {
        LookupInput { key, ..self }
    }

    pub fn with_at(self, at: Timestamp) -> Self {
        LookupInput { at, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers() {
        let t = |s| Caller::parse(s).map(|c| c.target().to_owned());
        assert_eq!(t("sip:+4930123@example.com").unwrap(), "+4930123");
        assert_eq!(t("SIPS:alice@[::1]:5061;transport=tls").unwrap(), "alice");
        assert_eq!(t("sip:bob:secret@example.com").unwrap(), "bob");
        assert_eq!(t("tel:+4930123;phone-context=x").unwrap(), "+4930123");
        assert_eq!(t("+4930123").unwrap(), "+4930123");
        assert_eq!(t("alice").unwrap(), "alice");
        for bad in [
            "",
            "sip:example.com",
            "sip:@example.com",
            "sip:a@",
            "a b",
            "tel:",
            "client:alice",
            "x\ny",
        ] {
            let e = Caller::parse(bad).unwrap_err();
            assert_eq!(e.parameter, "from", "{bad:?}");
        }
    }

    #[test]
    fn keys() {
        assert!(check_key("a84b4c76e66710@pc33.atlanta.com").is_ok());
        assert!(check_key(&"~".repeat(256)).is_ok());
        for bad in ["", "a b", "é", "\u{7f}", &"a".repeat(257)] {
            assert_eq!(check_key(bad).unwrap_err().parameter, "key", "{bad:?}");
        }
    }
}
