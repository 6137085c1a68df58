//! Property tests of the routing core (docs/routing.md): validation never panics and always points
//! into the document; any valid configuration resolves any accepted destination into valid JSON
//! that only carries what the configuration says, without CR or LF.

use std::net::{Ipv4Addr, Ipv6Addr};

use multiprovider::routing::{
    self, Destination, Problem, Source, check_supplied_headers, compile, voice_response_json,
};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value, json};

use crate::common::constants::{A1, VOICE_EXAMPLE};

/// 512 cases per property; `PROPTEST_CASES=…` for a longer search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        // Seeds of past failures live next to this file, in `routing_props.proptest-regressions`.
        // (The default, `SourceParallel`, would find `tests/it/main.rs` and look in
        // `tests/proptest-regressions/routing_props.txt` instead.)
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// (a) validation of arbitrary input
// ---------------------------------------------------------------------------------------------

/// Checks the invariants every validation answer keeps, and returns its problems.
fn validate_checked(text: &str) -> Vec<Problem> {
    let validated = routing::validate(text);
    let compiled = compile(text);
    assert_eq!(
        validated.is_ok(),
        compiled.is_ok(),
        "validate and compile disagree on {text:?}"
    );
    let problems = validated.err().unwrap_or_default();
    for p in &problems {
        assert!(
            p.pointer.is_empty() || p.pointer.starts_with('/'),
            "pointer {:?} is not an RFC 6901 pointer (for {text:?})",
            p.pointer
        );
        assert!(!p.message.is_empty(), "empty message at {:?}", p.pointer);
        assert!(
            !p.message.contains(['\r', '\n']),
            "message on several lines: {:?}",
            p.message
        );
    }
    problems
}

/// For a document that is JSON (without duplicate members): every problem points at something
/// that exists in it — the offending member, or the object or array at fault.
fn validate_value_checked(doc: &Value) {
    let text = doc.to_string();
    for p in validate_checked(&text) {
        assert!(
            doc.pointer(&p.pointer).is_some(),
            "pointer {:?} ({}) does not resolve in {text}",
            p.pointer,
            p.message
        );
    }
}

fn arb_json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1i64..3_000_000_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        any::<String>().prop_map(Value::from),
        "[0-9]{0,12}".prop_map(Value::from),
        select(vec![
            "",
            ".*",
            "(",
            "(?=a)b",
            r"(a)\1",
            r"\w{1000}\w{1000}",
            "uri[12]\\.com",
            "a)|(b",
            "sip:",
            "sips:[::1]:5061;transport=tls",
            "a.com;x=1,y",
            "a.com\r\nVia: x",
            "Request-URI",
            "Route",
            "Via",
            "v",
            "To",
            "newvalue1",
            "host.example.com:5060",
            "1000",
            "2147483648",
            "-1",
            "bob@a.com",
            "[::1",
            "é",
            "a\u{0}b",
        ])
        .prop_map(Value::from),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Member names: the real ones (so that generated documents get deep), typos, and anything.
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec![
            "outbound-voice", "outbound-sms", "proxy", "uri", "username", "password", "match",
            "headers", "headerName", "key", "value", "destination_network_id", "value7",
            "usename", "a/b", "~0", "",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Every path (as pointer tokens) to a node of `v`, the root included.
fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(i.to_string());
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Object(members) => {
            for (k, item) in members {
                prefix.push(k.clone());
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |v, token| match v {
        Value::Array(items) => &mut items[token.parse::<usize>().unwrap()],
        Value::Object(members) => members.get_mut(token).unwrap(),
        _ => unreachable!("paths only go through containers"),
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace a leaf (a node that is not a container) by a value.
    ReplaceLeaf(Index, Value),
    /// Replace any node, containers included.
    ReplaceNode(Index, Value),
    /// Remove a member of an object, or an element of an array.
    Drop(Index),
    /// Add a member to an object.
    Add(Index, String, Value),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::ReplaceLeaf(i, v)),
        (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::ReplaceNode(i, v)),
        any::<Index>().prop_map(Mutation::Drop),
        (any::<Index>(), arb_key(), arb_json()).prop_map(|(i, k, v)| Mutation::Add(i, k, v)),
    ]
}

fn mutate(doc: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(doc, &mut Vec::new(), &mut all);
    match m {
        Mutation::ReplaceLeaf(i, v) => {
            let leaves: Vec<_> = all
                .iter()
                .filter(|p| !matches!(node_at(doc, p), Value::Array(_) | Value::Object(_)))
                .cloned()
                .collect();
            if !leaves.is_empty() {
                *node_mut(doc, i.get::<Vec<String>>(&leaves)) = v.clone();
            }
        }
        Mutation::ReplaceNode(i, v) => *node_mut(doc, i.get::<Vec<String>>(&all)) = v.clone(),
        Mutation::Drop(i) => {
            let children: Vec<_> = all.iter().filter(|p| !p.is_empty()).cloned().collect();
            if children.is_empty() {
                return;
            }
            let path = i.get::<Vec<String>>(&children);
            let (last, parent) = path.split_last().unwrap();
            match node_mut(doc, parent) {
                Value::Array(items) => {
                    items.remove(last.parse::<usize>().unwrap());
                }
                Value::Object(members) => {
                    members.shift_remove(last);
                }
                _ => unreachable!(),
            }
        }
        Mutation::Add(i, key, v) => {
            let objects: Vec<_> = all
                .iter()
                .filter(|p| matches!(node_at(doc, p), Value::Object(_)))
                .cloned()
                .collect();
            if objects.is_empty() {
                return;
            }
            if let Value::Object(members) = node_mut(doc, i.get::<Vec<String>>(&objects)) {
                members.insert(key.clone(), v.clone());
            }
        }
    }
}

fn node_at<'a>(v: &'a Value, path: &[String]) -> &'a Value {
    path.iter().fold(v, |v, token| match v {
        Value::Array(items) => &items[token.parse::<usize>().unwrap()],
        Value::Object(members) => &members[token],
        _ => unreachable!(),
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_never_panics_on_arbitrary_strings(s in any::<String>()) {
        validate_checked(&s);
    }

    #[test]
    fn validate_never_panics_on_near_json(s in r#"[{}\[\]":,a-z0-9\\. -]{0,200}"#) {
        validate_checked(&s);
    }

    #[test]
    fn validate_never_panics_on_near_json_with_real_names(
        parts in prop::collection::vec(prop_oneof![
            select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\\", "\\.", "\\\\.", " ", "\n", "1000",
                "\"outbound-voice\"", "\"outbound-sms\"", "\"proxy\"", "\"uri\"", "\"match\"",
                "\"headers\"", "\"headerName\"", "\"key\"", "\"value\"", "\"a.com\"",
                "\"destination_network_id\"", "null", "true", "-1", "1e400", "\"Request-URI\"",
            ]).prop_map(str::to_owned),
            any::<String>(),
        ], 0..60)
    ) {
        validate_checked(&parts.concat());
    }

    #[test]
    fn validate_points_into_arbitrary_json(doc in arb_json()) {
        validate_value_checked(&doc);
    }

    #[test]
    fn validate_points_into_arbitrary_documents_of_the_right_shape(
        voice in prop::option::of(arb_json()),
        sms in prop::option::of(arb_json()),
    ) {
        let mut doc = Map::new();
        if let Some(v) = voice {
            doc.insert("outbound-voice".into(), json!([{"proxy": [v]}]));
        }
        if let Some(s) = sms {
            doc.insert("outbound-sms".into(), json!([{"destination_network_id": s}]));
        }
        validate_value_checked(&Value::Object(doc));
    }

    #[test]
    fn validate_points_into_mutated_documentation_example(
        mutations in prop::collection::vec(arb_mutation(), 1..4)
    ) {
        let mut doc: Value = serde_json::from_str(VOICE_EXAMPLE).unwrap();
        for m in &mutations {
            mutate(&mut doc, m);
        }
        validate_value_checked(&doc);
    }
}

/// Strings aimed at the hand-written parsers: schemes, brackets, separators and multi-byte
/// characters right where a byte index would land.
fn parser_torture() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        r"(sips?|SIPS?|tel|Sip):\PC{0,12}",
        r"(sips?:)?[a-zé¡\[\]:.0-9-]{0,12}(:[0-9é]{0,6})?(;[a-z=é;]{0,8}){0,3}",
        "[sipé¡:]{0,6}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proxy_fields_never_panic(
        uri in parser_torture(),
        pattern in prop::option::of(any::<String>()),
        header in prop::option::of((parser_torture(), parser_torture(), parser_torture())),
        credential in prop::option::of(any::<String>()),
    ) {
        let mut proxy = Map::new();
        proxy.insert("uri".into(), uri.into());
        if let Some(p) = pattern {
            proxy.insert("match".into(), p.into());
        }
        if let Some((h, k, v)) = header {
            proxy.insert("headers".into(), json!([{"headerName": h, "key": k, "value": v}]));
        }
        if let Some(c) = credential {
            proxy.insert("password".into(), c.into());
        }
        validate_value_checked(&json!({"outbound-voice": [{"proxy": [proxy]}]}));
    }
}

#[test]
fn multi_byte_characters_after_a_scheme_do_not_panic() {
    // Found by `destination_parse_never_panics…`: `strip_scheme` sliced `s[..5]` inside `¡`.
    for s in ["sip:¡", "sip:é", "sipé", "sips¡", "tel¡", "té"] {
        let _ = Destination::parse(s);
        validate_value_checked(&json!({"outbound-voice": [{"proxy": [{"uri": s}]}]}));
        validate_value_checked(&json!({"outbound-voice": [{"proxy": [{"uri": "a.com",
            "headers": [{"headerName": "Route", "key": "k", "value": s}]}]}]}));
    }
    assert!(Destination::parse("sip:¡").is_err());
}

#[test]
fn documentation_examples_are_valid_and_pointers_resolve_on_known_errors() {
    let doc: Value = serde_json::from_str(VOICE_EXAMPLE).unwrap();
    validate_value_checked(&doc);
    assert!(routing::validate(VOICE_EXAMPLE).is_ok());
    let bad = VOICE_EXAMPLE.replace("\"value\": \"newvalue7\"", "\"value7\": \"newvalue7\"");
    let problems = validate_checked(&bad);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

// ---------------------------------------------------------------------------------------------
// (b) resolution of valid configurations
// ---------------------------------------------------------------------------------------------

const TOKEN: &str = "[A-Za-z0-9.!%*_+`'~-]{1,10}";

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
}

fn dns_name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(dns_label(), 0..3),
        "[a-z]([a-z0-9-]{0,6}[a-z0-9])?",
    )
        .prop_map(|(mut labels, top)| {
            labels.push(top);
            labels.join(".")
        })
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => dns_name(),
        2 => select(vec![
            "uri.com", "uri1.com", "uri2.com", "uri3.com", "URI1.COM", "target.example.net",
            "a.example.com", "192.168.0.1", "[2001:db8::2]", "localhost",
        ])
        .prop_map(str::to_owned),
        1 => any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        1 => any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
    ]
}

fn hostport() -> impl Strategy<Value = String> {
    (host(), prop::option::of(1u16..=65535)).prop_map(|(h, p)| match p {
        Some(p) => format!("{h}:{p}"),
        None => h,
    })
}

fn uri_params() -> impl Strategy<Value = Vec<(String, Option<String>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                2 => TOKEN.prop_map(String::from),
                1 => select(vec!["transport", "lr", "newkey1", "Transport", "user", "x"])
                    .prop_map(str::to_owned),
            ],
            prop::option::of(TOKEN),
        ),
        0..4,
    )
}

fn render_params(params: &[(String, Option<String>)]) -> String {
    params
        .iter()
        .map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        })
        .collect()
}

fn proxy_uri() -> impl Strategy<Value = String> {
    (
        select(vec!["", "sip:", "sips:", "SIP:"]),
        hostport(),
        uri_params(),
    )
        .prop_map(|(scheme, hp, params)| format!("{scheme}{hp}{}", render_params(&params)))
}

const PATTERNS: &[&str] = &[
    ".*",
    "uri.com",
    r"uri[12]\.com",
    "^uri.*",
    r"\+44\d+",
    r"\+?\d+",
    r"[a-z]+\.example\.(com|net)",
    r"target\.example\.net",
    "UR.*",
    r"\[2001:db8::\d\]",
    r".*\.com",
    "1.*",
    "a|b",
    "",
];

const HEADER_NAMES: &[&str] = &[
    "Request-URI",
    "request-uri",
    "Route",
    "route",
    "To",
    "to",
    "From",
    "Contact",
    "X-CustomHeader",
    "x-customheader",
    "X-A",
    "P-Asserted-Identity",
    "Diversion",
];

fn header_rule() -> impl Strategy<Value = (String, String, String)> {
    (
        select(HEADER_NAMES.to_vec()).prop_map(str::to_owned),
        prop_oneof![
            TOKEN.prop_map(String::from),
            select(vec!["newkey1", "transport", "Transport", "lr", "x"]).prop_map(str::to_owned),
        ],
        prop_oneof![TOKEN.prop_map(String::from), hostport()],
    )
}

#[derive(Debug, Clone)]
struct ProxySpec {
    uri: String,
    username: Option<String>,
    password: Option<String>,
    pattern: Option<String>,
    headers: Vec<(String, String, String)>,
}

fn proxy_spec() -> impl Strategy<Value = ProxySpec> {
    (
        proxy_uri(),
        prop::option::of("\\PC{0,20}"),
        prop::option::of("\\PC{0,20}"),
        prop::option::of(select(PATTERNS.to_vec()).prop_map(str::to_owned)),
        prop::collection::vec(header_rule(), 0..6),
    )
        .prop_map(|(uri, username, password, pattern, headers)| ProxySpec {
            uri,
            username,
            password,
            pattern,
            headers,
        })
}

fn config_json(proxies: &[ProxySpec]) -> String {
    let proxies: Vec<Value> = proxies
        .iter()
        .map(|p| {
            let mut o = Map::new();
            o.insert("uri".into(), p.uri.clone().into());
            if let Some(u) = &p.username {
                o.insert("username".into(), u.clone().into());
            }
            if let Some(pw) = &p.password {
                o.insert("password".into(), pw.clone().into());
            }
            if let Some(m) = &p.pattern {
                o.insert("match".into(), m.clone().into());
            }
            if !p.headers.is_empty() {
                let headers: Vec<Value> = p
                    .headers
                    .iter()
                    .map(|(h, k, v)| json!({"headerName": h, "key": k, "value": v}))
                    .collect();
                o.insert("headers".into(), headers.into());
            }
            Value::Object(o)
        })
        .collect();
    json!({"outbound-voice": [{"proxy": proxies}]}).to_string()
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        r"\+?[0-9]{1,15}",
        r"\+?[0-9A-Za-z*#.()-]{1,64}",
        select(vec!["+15551234", "+442071234567", "alice", "*123#", "1"]).prop_map(str::to_owned),
    ]
}

fn destination() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => number(),
        2 => (number(), prop::option::of(r"(;[a-z-]{1,10}(=[a-z0-9.+-]{1,10})?){1,3}"))
            .prop_map(|(n, p)| format!("tel:{n}{}", p.unwrap_or_default())),
        5 => (
            select(vec!["sip:", "sips:", "SIP:", "Sips:"]),
            prop::option::of(r"[a-z0-9+.-]{1,10}(;npdi)?(:[a-z0-9]{1,6})?"),
            hostport(),
            uri_params(),
            prop::option::of(r"\?[A-Za-z]{1,8}=[a-z0-9%]{0,8}(&[a-z]{1,4}=[a-z]{1,4})?"),
        )
            .prop_map(|(scheme, user, hp, params, headers)| {
                let user = user.map(|u| format!("{u}@")).unwrap_or_default();
                format!(
                    "{scheme}{user}{hp}{}{}",
                    render_params(&params),
                    headers.unwrap_or_default()
                )
            }),
        1 => any::<String>(),
        1 => r"(sip|tel|client):[ -~]{0,30}",
    ]
}

fn supplied_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                3 => select(HEADER_NAMES.to_vec()).prop_map(str::to_owned),
                1 => select(vec!["TO", "FROM", "x-a", "Subject"]).prop_map(str::to_owned),
                1 => any::<String>(),
            ],
            prop_oneof![
                select(vec![
                    "<sip:bob@uri1.com>",
                    "<sip:bob@uri1.com>;tag=1",
                    "",
                    "x"
                ])
                .prop_map(str::to_owned),
                "[^\r\n]{0,30}",
            ],
        ),
        0..4,
    )
}

/// The `;`-separated parameters of a URI (after the user part, before any `?headers`), as raw
/// segments.
fn uri_param_segments(uri: &str) -> Vec<&str> {
    let before_headers = uri.split('?').next().unwrap_or_default();
    let hostport_params = before_headers
        .split_once('@')
        .map_or(before_headers, |(_, rest)| rest);
    hostport_params
        .split(';')
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect()
}

fn param_name(segment: &str) -> &str {
    segment.split_once('=').map_or(segment, |(n, _)| n)
}

fn param_value(segment: &str) -> Option<&str> {
    segment.split_once('=').map(|(_, v)| v)
}

fn no_crlf(what: &str, s: &str) {
    assert!(!s.contains(['\r', '\n']), "{what} holds CR or LF: {s:?}");
}

fn anchored_match(pattern: Option<&str>, target: &str) -> bool {
    let pattern = pattern.unwrap_or(".*");
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(true)
        .build()
        .unwrap()
        .is_match(target)
}

/// Checks one route object of the answer against the proxy it names.
fn check_route(
    route: &Value,
    proxies: &[ProxySpec],
    dest: &Destination<'_>,
    raw: &str,
    supplied: &[(&str, &str)],
) {
    let index = route["proxy_index"].as_u64().expect("proxy_index") as usize;
    let spec = &proxies[index];
    let proxy = &route["proxy"];
    assert_eq!(proxy["uri"], spec.uri.as_str());
    let sip_uri = proxy["sip_uri"].as_str().expect("sip_uri");
    no_crlf("sip_uri", sip_uri);
    assert!(
        sip_uri.ends_with(";lr")
            || uri_param_segments(sip_uri)
                .iter()
                .any(|s| param_name(s).eq_ignore_ascii_case("lr")),
        "{sip_uri}"
    );
    let secure = spec
        .uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"));
    assert!(
        sip_uri.starts_with(if secure { "sips:" } else { "sip:" }),
        "{sip_uri}"
    );
    assert_eq!(route["username"].as_str(), spec.username.as_deref());
    assert_eq!(route["password"].as_str(), spec.password.as_deref());

    // Request-URI.
    let request_uri = route["request_uri"].as_str().expect("request_uri");
    no_crlf("request_uri", request_uri);
    let ruri_rules: Vec<(&str, &str)> = spec
        .headers
        .iter()
        .filter(|(h, _, _)| h.eq_ignore_ascii_case("request-uri"))
        .map(|(_, k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A PSTN call gets the proxy's parameters, never those of a `tel:` destination.
    let dest_segments = if dest.is_sip() {
        uri_param_segments(raw)
    } else {
        Vec::new()
    };
    let proxy_segments = uri_param_segments(&spec.uri);
    let segments = uri_param_segments(request_uri);
    for segment in &segments {
        let from_rule = ruri_rules.iter().any(|(k, v)| {
            param_name(segment).eq_ignore_ascii_case(k) && param_value(segment) == Some(*v)
        });
        assert!(
            from_rule || dest_segments.contains(segment) || proxy_segments.contains(segment),
            "request_uri {request_uri:?} holds `{segment}`, which neither {raw:?}, the proxy \
             uri {:?} nor a Request-URI rule ({ruri_rules:?}) gave",
            spec.uri
        );
    }
    // The last rule for a key decides the (first) parameter of that name.
    for (k, _) in &ruri_rules {
        let last = ruri_rules
            .iter()
            .rev()
            .find(|(k2, _)| k2.eq_ignore_ascii_case(k))
            .unwrap()
            .1;
        let first = segments
            .iter()
            .find(|s| param_name(s).eq_ignore_ascii_case(k))
            .unwrap_or_else(|| panic!("request_uri {request_uri:?} lacks parameter {k}"));
        assert_eq!(
            param_value(first),
            Some(last),
            "{request_uri:?} for key {k}"
        );
    }
    if dest.is_sip() {
        if ruri_rules.is_empty() {
            assert_eq!(request_uri, raw, "a SIP call keeps its URI");
        }
        if let Some((_, headers)) = raw.split_once('?') {
            assert!(
                request_uri.ends_with(&format!("?{headers}")),
                "{request_uri:?}"
            );
        }
    } else {
        let host = proxy["host"].as_str().unwrap();
        let hostport = match proxy["port"].as_u64() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let expected_start = format!(
            "{}{}@{hostport}",
            if secure { "sips:" } else { "sip:" },
            dest.target().replace('#', "%23")
        );
        assert!(
            request_uri == expected_start || request_uri.starts_with(&format!("{expected_start};")),
            "{request_uri:?} does not start with {expected_start:?}"
        );
    }

    // Routes: one per Route rule, in order.
    let routes: Vec<&str> = route["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let expected_routes: Vec<String> = spec
        .headers
        .iter()
        .filter(|(h, _, _)| h.eq_ignore_ascii_case("route"))
        .map(|(_, _, v)| format!("<sip:{v};lr>"))
        .collect();
    assert_eq!(routes, expected_routes);
    for r in &routes {
        no_crlf("route", r);
    }

    // Headers: configured `k=v` parameters appended to the supplied value, nothing else.
    let mut expected: Vec<(String, String)> = Vec::new();
    for (h, k, v) in &spec.headers {
        if h.eq_ignore_ascii_case("request-uri") || h.eq_ignore_ascii_case("route") {
            continue;
        }
        match expected.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(h)) {
            Some((_, params)) => params.push_str(&format!(";{k}={v}")),
            None => expected.push((h.clone(), format!("{k}={v}"))),
        }
    }
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(name, params)| {
            let value = match supplied.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                Some((_, current)) => format!("{current};{params}"),
                None => params,
            };
            (name, value)
        })
        .collect();
    let headers: Vec<(String, String)> = route["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(headers, expected);
    for (name, value) in &headers {
        no_crlf("header name", name);
        no_crlf("header value", value);
    }

    // header_params: the raw instructions, in order.
    let header_params: Vec<(String, String, String)> = route["header_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["header"].as_str().unwrap().to_owned(),
                p["key"].as_str().unwrap().to_owned(),
                p["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(header_params, spec.headers);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_configurations_resolve_to_what_they_say(
        proxies in prop::collection::vec(proxy_spec(), 1..8),
        destinations in prop::collection::vec(destination(), 1..6),
        supplied in supplied_headers(),
    ) {
        let config = config_json(&proxies);
        let compiled = compile(&config)
            .unwrap_or_else(|p| panic!("a valid configuration was refused: {p:?}\n{config}"));
        let supplied: Vec<(&str, &str)> =
            supplied.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let supplied: &[(&str, &str)] = if check_supplied_headers(&supplied).is_ok() {
            &supplied
        } else {
            &[]
        };
        for raw in &destinations {
            let Ok(dest) = Destination::parse(raw) else { continue };
            let answer = compiled.resolve_voice(&dest, supplied);
            let bytes = voice_response_json(Some(A1), Source::Global, Some(3), &answer);
            let v: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
            prop_assert_eq!(&v["source"], "global");

            // Selection: the first proxy whose expression matches the whole target, then the
            // others in order.
            let matching: Vec<u64> = proxies
                .iter()
                .enumerate()
                .filter(|(_, p)| anchored_match(p.pattern.as_deref(), dest.target()))
                .map(|(i, _)| i as u64)
                .collect();
            let mut indices: Vec<u64> = Vec::new();
            if !v["route"].is_null() {
                indices.push(v["route"]["proxy_index"].as_u64().unwrap());
            }
            indices.extend(v["fallbacks"].as_array().unwrap().iter().map(|f| f["proxy_index"].as_u64().unwrap()));
            prop_assert_eq!(&indices, &matching, "target {:?}", dest.target());

            for route in std::iter::once(&v["route"]).filter(|r| !r.is_null()).chain(v["fallbacks"].as_array().unwrap()) {
                check_route(route, &proxies, &dest, raw, supplied);
            }
        }
    }

    // (c) destinations and supplied headers

    #[test]
    fn destination_parse_never_panics_and_accepts_no_control_characters(
        to in prop_oneof![any::<String>(), destination(), r"(sip|sips|tel):\PC{0,40}", "[\\x00-\\x7f]{0,40}"]
    ) {
        if let Ok(dest) = Destination::parse(&to) {
            prop_assert!(!dest.target().is_empty());
            prop_assert!(!dest.target().chars().any(char::is_control), "{:?}", dest.target());
            prop_assert!(!to.chars().any(char::is_control), "{:?}", to);
            prop_assert!(to.contains(dest.target()));
        }
    }

    #[test]
    fn supplied_headers_with_cr_or_lf_are_refused(
        name in prop_oneof![select(HEADER_NAMES.to_vec()).prop_map(str::to_owned), any::<String>()],
        value in prop_oneof![any::<String>(), "[a-z<>:@;]{0,5}[\r\n][a-z\r\n:]{0,5}"],
    ) {
        let result = check_supplied_headers(&[("From", "x"), (&name, &value)]);
        if value.contains(['\r', '\n']) {
            let e = result.unwrap_err();
            prop_assert_eq!(e.parameter.as_str(), "headers");
            prop_assert!(!e.message.contains(['\r', '\n']), "{:?}", e.message);
        } else if result.is_ok() {
            prop_assert!(!name.is_empty());
        }
    }
}

#[test]
fn a_hundred_proxies_resolve_in_order() {
    let proxies: Vec<ProxySpec> = (0..100)
        .map(|i| ProxySpec {
            uri: format!("p{i}.example.com"),
            username: None,
            password: None,
            pattern: Some(if i % 2 == 0 {
                ".*".into()
            } else {
                format!(r"uri{i}\.com")
            }),
            headers: vec![("Request-URI".into(), "k".into(), format!("v{i}"))],
        })
        .collect();
    let compiled = compile(&config_json(&proxies)).unwrap();
    let raw = "sip:bob@uri51.com";
    let dest = Destination::parse(raw).unwrap();
    let answer = compiled.resolve_voice(&dest, &[]);
    let v: Value =
        serde_json::from_slice(&voice_response_json(None, Source::Account, None, &answer)).unwrap();
    assert_eq!(v["route"]["proxy_index"], 0);
    let fallbacks: Vec<u64> = v["fallbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["proxy_index"].as_u64().unwrap())
        .collect();
    let mut expected: Vec<u64> = (2..100).step_by(2).collect();
    expected.insert(25, 51);
    assert_eq!(fallbacks, expected);
    check_route(&v["route"], &proxies, &dest, raw, &[]);
}
