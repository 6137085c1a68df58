//! The call's destination (docs/routing.md, step 1): what the proxies' expressions are matched
//! against, and whether the call keeps its SIP URI or is a PSTN call; and the header values
//! an engine supplies.

use super::sip::{self, printable};

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
    pub(super) raw: &'a str,
    /// What the proxies' expressions are matched against.
    target: &'a str,
    pub(super) kind: Kind<'a>,
}

#[derive(Debug, Clone)]
pub(super) enum Kind<'a> {
    /// A SIP call: keeps its URI; parameters start at `params_at`.
    Sip { params_at: usize },
    /// A PSTN (or client) call to `number`.
    Pstn { number: &'a str },
}

impl<'a> Destination<'a> {
    /// Parses `to` as docs/routing.md, step 1 says.
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

pub(super) fn check_number(number: &str) -> Result<(), LookupError> {
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
