//! Restcomm Sids: `AC` + 32 hex digits for accounts, `EX` + 32 hex digits for the extension.

use std::fmt;

/// An account Sid, always held in lowercase (`AC` + 32 lowercase hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountSid([u8; 16]);

impl AccountSid {
    /// Parses `AC` + 32 hex digits, either case (the `AC` prefix too).
    pub fn parse(s: &str) -> Option<AccountSid> {
        let b = s.as_bytes();
        if b.len() != 34 || !b[..2].eq_ignore_ascii_case(b"AC") {
            return None;
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(&b[2..], &mut out).ok()?;
        Some(AccountSid(out))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl AccountSid {
    /// The canonical text (`AC` + lowercase hex, as Restcomm stores it), without allocating:
    /// every lookup answer carries it.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 34]) -> &'b str {
        buf[..2].copy_from_slice(b"AC");
        hex::encode_to_slice(self.0, &mut buf[2..]).expect("32 hex digits fit");
        std::str::from_utf8(buf).expect("ASCII")
    }
}

impl fmt::Display for AccountSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode(&mut [0; 34]))
    }
}

impl fmt::Debug for AccountSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Which configuration a log line is about: the account's Sid, or `global` (rather than
/// `Some(AC…)`/`None`, which is what `Debug` of the option would print).
#[derive(Clone, Copy)]
pub struct Scope<'a>(pub Option<&'a AccountSid>);

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(account) => fmt::Display::fmt(account, f),
            None => f.write_str("global"),
        }
    }
}

/// A fresh extension Sid: `EX` + 32 random lowercase hex digits.
pub fn new_extension_sid() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("EX{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_prints_the_sid_or_global() {
        let sid = AccountSid::parse("AC0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            Scope(Some(&sid)).to_string(),
            "AC0123456789abcdef0123456789abcdef"
        );
        assert_eq!(Scope(None).to_string(), "global");
    }

    #[test]
    fn account_sid_is_case_insensitive_and_lowercased() {
        let sid = AccountSid::parse("ac0123456789ABCDEF0123456789abcdef").unwrap();
        assert_eq!(sid.to_string(), "AC0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn account_sid_rejects_bad_input() {
        for bad in [
            "",
            "AC",
            "AC0123",
            "XX0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdeg",
            "AC0123456789abcdef0123456789abcdef0",
        ] {
            assert!(AccountSid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn extension_sid_shape() {
        let sid = new_extension_sid();
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("EX"));
        assert!(
            sid[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
