//! Writing JSON text into a byte buffer: string escaping and decimals. The lookup answers
//! are written by hand (no intermediate values) because they are the hot path.

/// Appends `n` in decimal (ports, indexes, TLV values) without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `s` JSON-escaped (without quotes).
pub(crate) fn escape_into(out: &mut Vec<u8>, s: &str) {
    // Answers are almost always plain: copy the clean prefix in one go (found eight bytes at a
    // time) and escape byte by byte only from the first word that needs it.
    let bytes = s.as_bytes();
    let clean = clean_prefix_len(bytes);
    out.extend_from_slice(&bytes[..clean]);
    if clean < bytes.len() {
        escape_slow(out, &bytes[clean..]);
    }
}

/// A length, at most `bytes.len()`, before which no byte needs escaping (`"`, `\\` or a
/// control character below 0x20); `bytes.len()` when none does.
pub(crate) fn clean_prefix_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Non-zero iff some byte of `w` is below `n` (n <= 0x80): the classic SWAR test.
    let any_below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let any_equal = |w: u64, b: u8| any_below(w ^ (ONES * u64::from(b)), 1);
    let dirty = |w: [u8; 8]| {
        let w = u64::from_le_bytes(w);
        any_below(w, 0x20) | any_equal(w, b'"') | any_equal(w, b'\\') != 0
    };
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        if dirty(chunk.try_into().expect("eight bytes")) {
            return i;
        }
        i += 8;
    }
    if i == bytes.len() {
        return i;
    }
    // The last few bytes: the last eight (overlapping what was checked), or all of a short
    // string padded with a byte that needs no escaping.
    let last = match bytes.len().checked_sub(8) {
        Some(from) => bytes[from..].try_into().expect("eight bytes"),
        None => {
            let mut padded = [b' '; 8];
            padded[..bytes.len()].copy_from_slice(bytes);
            padded
        }
    };
    if dirty(last) { i } else { bytes.len() }
}

fn escape_slow(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
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

/// Writes a JSON string whose raw text `write` appends: escaped in place, which costs
/// nothing for the usual text that needs no escaping.
pub(crate) fn write_json_str_with(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    out.push(b'"');
    let start = out.len();
    write(out);
    let clean = start + clean_prefix_len(&out[start..]);
    if clean < out.len() {
        let raw = out.split_off(clean);
        escape_slow(out, &raw);
    }
    out.push(b'"');
}

pub(crate) fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
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
            "0123456\"89abcdef",
            "01234567\\9abcdef",
            "0123456789abcde\u{1}",
            "\u{7f}\u{80}ÿ\u{9f}\u{a0}!#[]^_`{}~",
            "sip:bob@uri1.com;newkey1=newvalue1;newkey2=newvalue2\n",
        ] {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn the_word_at_a_time_fast_path_changes_nothing() {
        // Every ASCII byte and a multi-byte character, at every position of strings of 1 to 17
        // bytes: the fast path must agree with escaping byte by byte.
        for c in (0u8..0x80).map(char::from).chain(['é', '€', '\u{80}']) {
            for (len, at) in (1..=17).flat_map(|len| (0..len).map(move |at| (len, at))) {
                let mut s: String = "x".repeat(len);
                s.replace_range(at..at + 1, &c.to_string());
                let mut fast = Vec::new();
                escape_into(&mut fast, &s);
                let mut slow = Vec::new();
                escape_slow(&mut slow, s.as_bytes());
                assert_eq!(fast, slow, "{s:?}");
                let mut quoted = Vec::new();
                push_json_str(&mut quoted, &s);
                let back: String = serde_json::from_slice(&quoted).unwrap();
                assert_eq!(back, s);
            }
        }
    }
}
