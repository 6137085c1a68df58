//! Percent-decoding of request input, the two ways this API needs it.
//!
//! - Form rules (`application/x-www-form-urlencoded`, what `curl -d` sends, and the admin
//!   API's query strings, as Restcomm's servlet container reads them): `+` is a space, and a
//!   `%` not followed by two hex digits stays as it is, as browsers and the `url` crate do.
//! - Strict RFC 3986 rules (the lookup API's query string, docs/routing.md): `+` is a literal plus,
//!   so `?to=+15551234` works, and a malformed escape is an error rather than a guess.
//!
//! Both are linear in their input and borrow it when there is nothing to decode.

use std::borrow::Cow;

use percent_encoding::percent_decode;

/// Decodes one form component (name or value) to bytes; `None` only if they are not UTF-8.
pub fn form_component(raw: &[u8]) -> Option<Cow<'_, str>> {
    let bytes: Cow<'_, [u8]> = if raw.contains(&b'+') {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        Cow::Owned(percent_decode(&spaced).collect())
    } else {
        percent_decode(raw).into()
    };
    match bytes {
        Cow::Borrowed(b) => std::str::from_utf8(b).ok().map(Cow::Borrowed),
        Cow::Owned(b) => String::from_utf8(b).ok().map(Cow::Owned),
    }
}

/// Decodes one query component under RFC 3986: `None` when a `%` is not followed by two hex
/// digits or the result is not UTF-8.
pub fn strict_component(raw: &str) -> Option<Cow<'_, str>> {
    let bytes = raw.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_decode(bytes).decode_utf8().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_rules() {
        assert_eq!(form_component(b"a+b%20c%2B%7b").unwrap(), "a b c+{");
        assert_eq!(form_component(b"100%").unwrap(), "100%");
        assert_eq!(form_component(b"%zz%4").unwrap(), "%zz%4");
        assert!(matches!(
            form_component(b"plain"),
            Some(Cow::Borrowed("plain"))
        ));
        assert!(form_component(b"a=%ff").is_none());
    }

    #[test]
    fn strict_rules() {
        assert_eq!(strict_component("+15551234").unwrap(), "+15551234");
        assert_eq!(
            strict_component("sip%3Abob%40uri1.com").unwrap(),
            "sip:bob@uri1.com"
        );
        assert_eq!(strict_component("%2B1").unwrap(), "+1");
        assert_eq!(strict_component("a%0Db").unwrap(), "a\rb");
        assert_eq!(strict_component("%2b%2B").unwrap(), "++");
        for bad in ["%ZZ", "%ff", "%4", "%+A", "%"] {
            assert!(strict_component(bad).is_none(), "{bad}");
        }
    }
}
