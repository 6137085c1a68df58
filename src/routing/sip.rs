//! The small part of RFC 3261 that routing needs: tokens, hosts, proxy URIs and URI
//! parameters. Strict on purpose: whatever passes here is copied into SIP messages, so it must
//! not be able to carry CR, LF, another parameter or another header.

use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 3261 `token`: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// Checks `host`: a DNS name, an IPv4 address, or an IPv6 address in brackets.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("`{}` lacks its closing `]`", printable(host)))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("`{}` is not an IPv6 address", printable(inner)));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("`{}` is not an IPv4 address", printable(host)));
    }
    if host.contains(':') {
        return Err(format!(
            "`{}` looks like an IPv6 address: write it in brackets, e.g. `[::1]`",
            printable(host)
        ));
    }
    check_dns_name(host)
}

/// RFC 3261 `hostname`: dot-separated labels of letters, digits and inner hyphens; the last
/// label starts with a letter; an optional trailing dot.
fn check_dns_name(host: &str) -> Result<(), String> {
    let bad = || format!("`{}` is not a valid host name", printable(host));
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    let top = name.rsplit('.').next().unwrap_or_default();
    if !top.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    Ok(())
}

/// Splits `host[:port]` (host possibly `[IPv6]`) and checks both parts.
pub(crate) fn parse_hostport(s: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let (host, rest) = s.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if rest.is_empty() => (host, None),
                    None => return Err(format!("unexpected `{}` after the host", printable(rest))),
                }
            }
            None => (s, None),
        }
    } else if s.bytes().filter(|&b| b == b':').count() > 1 {
        (s, None) // an unbracketed IPv6 address: check_host explains
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    check_host(host)?;
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, String> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{}` is not a port number", printable(p)));
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("port {p} is out of range 1-65535")),
    }
}

/// One URI parameter, `name` or `name=value`, borrowed from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// A parsed proxy `uri`: `[sip:|sips:]host[:port][;param[=value]]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyUri<'a> {
    pub secure: bool,
    /// Where the host starts in the uri (after the scheme).
    pub host_at: usize,
    pub host: &'a str,
    pub port: Option<u16>,
    /// The raw `;a=b;c` tail (empty without parameters).
    pub params_raw: &'a str,
    pub params: Vec<Param<'a>>,
}

pub(crate) fn parse_proxy_uri(uri: &str) -> Result<ProxyUri<'_>, String> {
    if let Some(c) = uri.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("the uri contains the forbidden character {c:?}"));
    }
    let (secure, rest) = strip_scheme(uri);
    let host_at = uri.len() - rest.len();
    let (hostport, params_raw) = match rest.find(';') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if hostport.contains('@') {
        return Err("a proxy uri has no user part: give only host[:port][;params]".into());
    }
    let (host, port) = parse_hostport(hostport)?;
    let mut params = Vec::new();
    for raw in params_raw.split(';').skip(1) {
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (raw, None),
        };
        if !is_token(name) {
            return Err(format!(
                "parameter name `{}` is not a SIP token",
                printable(name)
            ));
        }
        if let Some(v) = value
            && !is_token(v)
        {
            return Err(format!(
                "the value of parameter `{name}` (`{}`) is not a SIP token",
                printable(v)
            ));
        }
        params.push(Param { name, value });
    }
    Ok(ProxyUri {
        secure,
        host_at,
        host,
        port,
        params_raw,
        params,
    })
}

/// Strips `sip:` or `sips:` (any case); returns whether it was `sips:`.
pub(crate) fn strip_scheme(s: &str) -> (bool, &str) {
    // `get`, not slicing: the 4th or 5th byte may be inside a multi-byte character.
    if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("sips:")) {
        (true, &s[5..])
    } else if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        (false, &s[4..])
    } else {
        (false, s)
    }
}

/// True when `s` starts with `sip:` or `sips:` (any case).
pub(crate) fn has_sip_scheme(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:"))
        || s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("sips:"))
}

/// Writes the parameter list `params` (`;a=b;c`) with every `(name, value)` of `set` applied
/// in order, as docs/routing.md says: a value replaces the first parameter of that name (any case),
/// otherwise the parameter is appended — so an appended name keeps its first spelling and
/// takes its last value. Written in one pass, without collecting the list, in time
/// proportional to `params` × `set` (the engine's URI can hold hundreds of parameters; `set`
/// at most `MAX_SETTINGS`).
pub(crate) fn write_params_set<'s, I>(out: &mut Vec<u8>, params: &str, set: I)
where
    I: Iterator<Item = (&'s str, &'s str)> + Clone,
{
    // A name's settings are known by the first of them; bit `i` is set once the name of
    // setting `i` has replaced a parameter (so later parameters of that name stay as they are,
    // and the name is not appended).
    let group_of = |name: &str| set.clone().position(|(n, _)| n.eq_ignore_ascii_case(name));
    let last_value = |name: &str| {
        set.clone()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .last()
            .map_or("", |(_, v)| v)
    };
    let mut replaced: u64 = 0;
    for param in params.split(';').filter(|p| !p.is_empty()) {
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        out.push(b';');
        match group_of(name).map(|g| 1u64 << g) {
            Some(bit) if replaced & bit == 0 => {
                replaced |= bit;
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(last_value(name).as_bytes());
            }
            _ => out.extend_from_slice(param.as_bytes()),
        }
    }
    for (i, (name, _)) in set.clone().enumerate() {
        if group_of(name) == Some(i) && replaced & (1u64 << i) == 0 {
            out.push(b';');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(last_value(name).as_bytes());
        }
    }
}

/// Most settings `write_params_set` takes (validation allows fewer `headers` per proxy).
pub(crate) const MAX_SETTINGS: usize = 64;

/// The parameters of a `;`-separated list (as given by the engine, or a validated proxy's).
pub(crate) fn params(s: &str) -> impl Iterator<Item = Param<'_>> {
    s.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, value)) => Param {
                name,
                value: Some(value),
            },
            None => Param {
                name: p,
                value: None,
            },
        })
}

/// Error messages quote user input; keep them on one line.
pub fn printable(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("newkey1"));
        assert!(is_token("a-b.c!d%e*f_g+h`i'j~k"));
        for bad in [
            "", "a b", "a;b", "a,b", "a?b", "a<b", "a>b", "a\"b", "a\rb", "a\nb", "a=b", "a:b", "é",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        for ok in [
            "uri.com",
            "a",
            "localhost",
            "192.168.0.1",
            "[::1]",
            "[2001:db8::1]",
            "sip-1.example.com.",
            "x1.y2",
        ] {
            assert!(check_host(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "999.1.1.1",
            "1.2.3",
            "::1",
            "[::1",
            "[zz::1]",
            "-a.com",
            "a-.com",
            "a..com",
            "a_b.com",
            "exa mple.com",
        ] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostports() {
        assert_eq!(
            parse_hostport("uri.com:5060").unwrap(),
            ("uri.com", Some(5060))
        );
        assert_eq!(parse_hostport("[::1]:5061").unwrap(), ("[::1]", Some(5061)));
        assert_eq!(parse_hostport("[::1]").unwrap(), ("[::1]", None));
        for bad in [
            "uri.com:0",
            "uri.com:65536",
            "uri.com:",
            "uri.com:5o60",
            "[::1]x",
            "a:1:2",
        ] {
            assert!(parse_hostport(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_uris() {
        let u = parse_proxy_uri("192.168.0.1;uriprop1=uri_prop_value1;lr").unwrap();
        assert!(!u.secure);
        assert_eq!(u.host, "192.168.0.1");
        assert_eq!(u.port, None);
        assert_eq!(u.params.len(), 2);
        assert_eq!(
            u.params[1],
            Param {
                name: "lr",
                value: None
            }
        );
        assert_eq!(u.params_raw, ";uriprop1=uri_prop_value1;lr");
        let u = parse_proxy_uri("SIPS:[2001:db8::1]:5061;transport=tls").unwrap();
        assert!(u.secure);
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        for bad in [
            "",
            "sip:",
            "a.com;",
            "a.com;x=",
            "a.com;=x",
            "a.com;x=a b",
            "a.com;x=<y>",
            "bob@a.com",
            "a.com\r\nVia: x",
            "a.com;x=1,y",
        ] {
            assert!(parse_proxy_uri(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_params_replace_case_insensitively_or_append() {
        let set = |params: &str, set: &[(&str, &str)]| {
            let mut out = Vec::new();
            write_params_set(&mut out, params, set.iter().copied());
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            set("a=1;B=2;c", &[("b", "3"), ("d", "4")]),
            ";a=1;B=3;c;d=4"
        );
        assert_eq!(set("", &[]), "");
        assert_eq!(set(";;a", &[]), ";a");
        assert_eq!(set("a=1;A=2", &[("a", "3")]), ";a=3;A=2");
        assert_eq!(
            set("c", &[("x", "1"), ("X", "2"), ("y", "3")]),
            ";c;x=2;y=3"
        );
        assert_eq!(set("lr", &[("LR", "on")]), ";lr=on");
        assert_eq!(set("a;a;A;b", &[("a", "1"), ("A", "2")]), ";a=2;a;A;b");
        // Hundreds of parameters from the engine: linear, and only the first is replaced.
        let many = ";tgrp".repeat(400);
        let out = set(&many, &[("tgrp", "x")]);
        assert_eq!(out, format!(";tgrp=x{}", ";tgrp".repeat(399)));
    }

    /// The definition: apply each setting in turn to the list.
    fn set_params_one_by_one(params: &str, set: &[(String, String)]) -> String {
        let mut list: Vec<(String, Option<String>)> = params
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (p.to_owned(), None),
            })
            .collect();
        for (name, value) in set {
            match list.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(p) => p.1 = Some(value.clone()),
                None => list.push((name.clone(), Some(value.clone()))),
            }
        }
        list.iter()
            .map(|(n, v)| match v {
                Some(v) => format!(";{n}={v}"),
                None => format!(";{n}"),
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn one_pass_setting_equals_setting_one_by_one(
            params in proptest::collection::vec(("[aAbBcC]{1,2}", proptest::option::of("[0-9]{0,2}")), 0..6),
            set in proptest::collection::vec(("[aAbBcCdD]{1,2}", "[0-9]{1,2}"), 0..6),
            empty_at in 0usize..8,
        ) {
            let mut parts: Vec<String> = params
                .iter()
                .map(|(n, v)| match v { Some(v) => format!("{n}={v}"), None => n.clone() })
                .collect();
            parts.insert(empty_at.min(parts.len()), String::new());
            let params = format!(";{}", parts.join(";"));
            let mut out = Vec::new();
            write_params_set(&mut out, &params, set.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), set_params_one_by_one(&params, &set));
        }
    }
}
