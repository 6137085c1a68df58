//! The rules and examples of docs/routing.md, one test each.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

const VOICE_EXAMPLE: &str = include_str!("../../tests/fixtures/voice.json");

fn problems(config: &str) -> Vec<(String, String)> {
    compile(config)
        .err()
        .unwrap_or_else(|| panic!("expected problems for {config}"))
        .into_iter()
        .map(|p| (p.pointer, p.message))
        .collect()
}

fn pointers(config: &str) -> Vec<String> {
    problems(config).into_iter().map(|(p, _)| p).collect()
}

fn voice(config: &str, to: &str, headers: &[(&str, &str)]) -> Value {
    let compiled = compile(config).unwrap_or_else(|p| panic!("{p:?}"));
    let dest = Destination::parse(to).unwrap();
    let answer = compiled.resolve_voice(&dest, headers);
    serde_json::from_slice(&voice_response_json(
        Some("AC0"),
        Source::Account,
        Some(7),
        &answer,
    ))
    .unwrap()
}

fn one_proxy(proxy: Value) -> String {
    json!({"outbound-voice": [{"proxy": [proxy]}]}).to_string()
}

// ---- §4 validation ----

#[test]
fn documentation_examples_are_valid() {
    compile(VOICE_EXAMPLE).unwrap();
    compile(r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#).unwrap();
    assert!(compile("{}").unwrap().is_empty());
    assert!(!compile(VOICE_EXAMPLE).unwrap().is_empty());
}

#[test]
fn spec_error_example_reports_both_problems() {
    let config = VOICE_EXAMPLE.replace(
        r#"{"headerName": "To", "key": "newkey7", "value": "newvalue7"}"#,
        r#"{"headerName": "To", "key": "newkey7", "value7": "newvalue7"}"#,
    );
    assert_eq!(
        problems(&config),
        [
            (
                "/outbound-voice/0/proxy/2/headers/2/value7".to_owned(),
                "unknown field `value7`".to_owned()
            ),
            (
                "/outbound-voice/0/proxy/2/headers/2".to_owned(),
                "missing field `value`".to_owned()
            ),
        ]
    );
}

#[test]
fn top_level_must_be_an_object_without_unknown_members() {
    assert_eq!(pointers("[]"), [""]);
    assert_eq!(pointers("\"x\""), [""]);
    assert_eq!(pointers(r#"{"outbound-mms": []}"#), ["/outbound-mms"]);
}

#[test]
fn unknown_members_everywhere_are_errors() {
    let p = problems(&one_proxy(json!({"uri": "a.com", "usename": "x"})));
    assert_eq!(
        p,
        [(
            "/outbound-voice/0/proxy/0/usename".to_owned(),
            "unknown field `usename`".to_owned()
        )]
    );
    assert_eq!(
        pointers(r#"{"outbound-voice": [{"proxy": [{"uri": "a.com"}], "x": 1}]}"#),
        ["/outbound-voice/0/x"]
    );
    assert_eq!(
        pointers(r#"{"outbound-sms": [{"destination_network_id": 1, "tlv": 2}]}"#),
        ["/outbound-sms/0/tlv"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let config = json!({"outbound-voice": [{"proxy": [
        {"uri": "bad host", "match": "(?=x)"},
        {"uri": "ok.com", "username": 5, "headers": [{"headerName": "Via", "key": "k", "value": "v"}]}
    ]}], "outbound-sms": [{"destination_network_id": "x"}]})
    .to_string();
    let mut found = pointers(&config);
    found.sort();
    assert_eq!(
        found,
        [
            "/outbound-sms/0/destination_network_id",
            "/outbound-voice/0/proxy/0/match",
            "/outbound-voice/0/proxy/0/uri",
            "/outbound-voice/0/proxy/1/headers/0/headerName",
            "/outbound-voice/0/proxy/1/username",
        ]
    );
}

#[test]
fn unparseable_json_has_one_problem_with_line_and_column() {
    let p = problems("{\n\"outbound-sms\": [\n}");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "");
    assert!(p[0].1.contains("line 3 column"), "{}", p[0].1);
}

#[test]
fn documentation_backslash_gets_a_hint() {
    let p =
        problems(r#"{"outbound-voice": [{"proxy": [{"uri": "a.com", "match": "uri[12]\.com"}]}]}"#);
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains(r"`\\.`"), "{}", p[0].1);
}

#[test]
fn duplicate_members_are_errors_at_their_pointer() {
    let p = pointers(
        r#"{"outbound-voice": [{"proxy": [{"uri": "a.com", "match": "a", "match": "b"}]}]}"#,
    );
    assert_eq!(p, ["/outbound-voice/0/proxy/0/match"]);
    // The duplicate, and the first occurrence's own length problem.
    assert_eq!(
        pointers(r#"{"outbound-sms": [], "outbound-sms": []}"#),
        ["/outbound-sms", "/outbound-sms"]
    );
}

#[test]
fn sms_section_rules() {
    let ok = |v: Value| {
        let c =
            compile(&json!({"outbound-sms": [{"destination_network_id": v}]}).to_string()).unwrap();
        c.sms_tlvs()[0].value.to_string()
    };
    assert_eq!(ok(json!("1000")), "1000");
    assert_eq!(ok(json!(1000)), "1000");
    assert_eq!(ok(json!("0001000")), "1000");
    assert_eq!(ok(json!(0)), "0");
    assert_eq!(ok(json!("0000")), "0");
    assert_eq!(ok(json!(2147483647)), "2147483647");
    assert_eq!(ok(json!("2147483647")), "2147483647");
    for bad in [
        json!(-1),
        json!(2147483648u64),
        json!("2147483648"),
        json!("99999999999999999999"),
        json!(""),
        json!("+5"),
        json!("1e3"),
        json!(" 1"),
        json!(10.0),
        json!(10.5),
        json!(null),
        json!(true),
        json!([1]),
    ] {
        let config = json!({"outbound-sms": [{"destination_network_id": bad}]}).to_string();
        assert_eq!(
            pointers(&config),
            ["/outbound-sms/0/destination_network_id"],
            "{bad}"
        );
    }
    assert_eq!(pointers(r#"{"outbound-sms": []}"#), ["/outbound-sms"]);
    assert_eq!(
        pointers(
            r#"{"outbound-sms": [{"destination_network_id": 1}, {"destination_network_id": 2}]}"#
        ),
        ["/outbound-sms"]
    );
    assert_eq!(
        pointers(r#"{"outbound-sms": {"destination_network_id": 1}}"#),
        ["/outbound-sms"]
    );
    assert_eq!(pointers(r#"{"outbound-sms": [{}]}"#), ["/outbound-sms/0"]);
    assert_eq!(pointers(r#"{"outbound-sms": [5]}"#), ["/outbound-sms/0"]);
}

#[test]
fn voice_section_shape_and_proxy_count() {
    assert_eq!(pointers(r#"{"outbound-voice": []}"#), ["/outbound-voice"]);
    assert_eq!(
        pointers(r#"{"outbound-voice": [{}]}"#),
        ["/outbound-voice/0"]
    );
    assert_eq!(
        pointers(r#"{"outbound-voice": [{"proxy": []}]}"#),
        ["/outbound-voice/0/proxy"]
    );
    assert_eq!(
        pointers(r#"{"outbound-voice": [{"proxy": {}}]}"#),
        ["/outbound-voice/0/proxy"]
    );
    let hundred: Vec<Value> = (0..100)
        .map(|i| json!({"uri": format!("p{i}.com")}))
        .collect();
    compile(&json!({"outbound-voice": [{"proxy": hundred}]}).to_string()).unwrap();
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"uri": format!("p{i}.com")}))
        .collect();
    assert_eq!(
        pointers(&json!({"outbound-voice": [{"proxy": many}]}).to_string()),
        ["/outbound-voice/0/proxy"]
    );
    assert_eq!(
        pointers(&one_proxy(json!({}))),
        ["/outbound-voice/0/proxy/0"]
    );
}

#[test]
fn proxy_uri_rules() {
    for ok in [
        "192.168.0.1",
        "sip:uri.com",
        "sips:uri.com:5061",
        "SIP:uri.com",
        "[::1]",
        "sip:[2001:db8::1]:5060;transport=tcp",
        "192.168.0.1;uriprop1=uri_prop_value1;uriprop2=uri_prop_value2",
        "a.com;lr",
        "a.com:65535",
    ] {
        compile(&one_proxy(json!({"uri": ok}))).unwrap_or_else(|p| panic!("{ok}: {p:?}"));
    }
    for bad in [
        "",
        "sip:",
        "a.com:0",
        "a.com:65536",
        "a.com:x",
        "::1",
        "[::1",
        "a com",
        "a.com;x=y z",
        "a.com;x=\"y\"",
        "a.com;x=<y>",
        "a.com\r\nX: y",
        "a.com;x=1,y=2",
        "a.com?x=y",
        "bob@a.com",
        "tel:+1555",
        "a.com;;x",
        "999.0.0.1",
        "a_b.com",
        "a.com;x=y;",
    ] {
        assert_eq!(
            pointers(&one_proxy(json!({"uri": bad}))),
            ["/outbound-voice/0/proxy/0/uri"],
            "{bad:?}"
        );
    }
    assert_eq!(
        pointers(&one_proxy(json!({"uri": 5}))),
        ["/outbound-voice/0/proxy/0/uri"]
    );
}

#[test]
fn credentials_rules_and_no_echo() {
    compile(&one_proxy(
        json!({"uri": "a.com", "username": "u", "password": "p@ss w;rd\"<>"}),
    ))
    .unwrap();
    compile(&one_proxy(
        json!({"uri": "a.com", "password": "x".repeat(256)}),
    ))
    .unwrap();
    let p = problems(&one_proxy(
        json!({"uri": "a.com", "password": "x".repeat(257)}),
    ));
    assert_eq!(p[0].0, "/outbound-voice/0/proxy/0/password");
    let p = problems(&one_proxy(
        json!({"uri": "a.com", "password": "sekrit\r\nVia: x", "username": "u\u{7}"}),
    ));
    assert_eq!(p.len(), 2);
    for (_, message) in &p {
        assert!(!message.contains("sekrit"), "{message}");
    }
    assert_eq!(
        pointers(&one_proxy(json!({"uri": "a.com", "username": null}))),
        ["/outbound-voice/0/proxy/0/username"]
    );
}

#[test]
fn match_rules() {
    compile(&one_proxy(
        json!({"uri": "a.com", "match": "a".repeat(1024)}),
    ))
    .unwrap();
    compile(&one_proxy(json!({"uri": "a.com", "match": "[\"<>;, ]"}))).unwrap();
    for bad in [
        json!("a".repeat(1025)),
        json!("("),
        json!("(?=a)"),
        json!("(?<!a)b"),
        json!(r"(a)\1"),
        json!("a)|(b"),
        json!(r"\w{1000}\w{1000}"),
        json!(5),
    ] {
        assert_eq!(
            pointers(&one_proxy(json!({"uri": "a.com", "match": bad}))),
            ["/outbound-voice/0/proxy/0/match"],
            "{bad}"
        );
    }
    let p = problems(&one_proxy(json!({"uri": "a.com", "match": "(?=a)"})));
    assert!(p[0].1.contains("look-around"), "{}", p[0].1);
    let p = problems(&one_proxy(json!({"uri": "a.com", "match": r"(a)\1"})));
    assert!(p[0].1.contains("backreference"), "{}", p[0].1);
}

#[test]
fn a_set_too_large_together_is_reported_on_the_list() {
    let proxies: Vec<Value> = (0..100)
        .map(|_| json!({"uri": "a.com", "match": r"\w{40}[a-z]{100}"}))
        .collect();
    let config = json!({"outbound-voice": [{"proxy": proxies}]}).to_string();
    if let Err(p) = compile(&config) {
        assert_eq!(p[0].pointer, "/outbound-voice/0/proxy");
    }
}

#[test]
fn header_rules() {
    let with = |h: Value| one_proxy(json!({"uri": "a.com", "headers": [h]}));
    for ok in [
        json!({"headerName": "Request-URI", "key": "k", "value": "v"}),
        json!({"headerName": "X-Custom", "key": "k", "value": "10.0.0.1:5060"}),
        json!({"headerName": "Route", "key": "k", "value": "[::1]:5060"}),
        json!({"headerName": "To", "key": "tag", "value": "a.b-c_d"}),
    ] {
        compile(&with(ok.clone())).unwrap_or_else(|p| panic!("{ok}: {p:?}"));
    }
    for name in [
        "Via",
        "via",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
        "Content-Length",
        "content-type",
        "v",
        "i",
        "l",
        "c",
        "I",
    ] {
        let p = problems(&with(json!({"headerName": name, "key": "k", "value": "v"})));
        assert_eq!(
            p[0].0, "/outbound-voice/0/proxy/0/headers/0/headerName",
            "{name}"
        );
    }
    for (field, bad) in [
        ("headerName", "X A"),
        ("headerName", "X:A"),
        ("headerName", ""),
        ("key", "a=b"),
        ("key", "a;b"),
        ("key", ""),
        ("value", "a;b=c"),
        ("value", "a\r\nVia: x"),
        ("value", "a,b"),
        ("value", "a?b"),
        ("value", "<a>"),
        ("value", "\"a\""),
        ("value", "a b"),
        ("value", "a.com:99999"),
        ("value", ""),
    ] {
        let mut h = json!({"headerName": "X", "key": "k", "value": "v"});
        h[field] = json!(bad);
        assert_eq!(
            pointers(&with(h)),
            [format!("/outbound-voice/0/proxy/0/headers/0/{field}")],
            "{field}={bad:?}"
        );
    }
    let fifty: Vec<Value> = (0..50)
        .map(|i| json!({"headerName": "X", "key": format!("k{i}"), "value": "v"}))
        .collect();
    compile(&one_proxy(json!({"uri": "a.com", "headers": fifty}))).unwrap();
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"headerName": "X", "key": format!("k{i}"), "value": "v"}))
        .collect();
    assert_eq!(
        pointers(&one_proxy(json!({"uri": "a.com", "headers": many}))),
        ["/outbound-voice/0/proxy/0/headers"]
    );
    assert_eq!(
        pointers(&with(json!({}))),
        ["/outbound-voice/0/proxy/0/headers/0"; 3]
    );
}

#[test]
fn size_limit() {
    let padding = " ".repeat(MAX_CONFIGURATION_BYTES - 2);
    compile(&format!("{{{padding}}}")).unwrap();
    let p = problems(&format!("{{{padding} }}"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "");
}

#[test]
fn pointer_tokens_with_slash_and_tilde_are_escaped() {
    assert_eq!(pointers(r#"{"a/b~c": 1}"#), ["/a~1b~0c"]);
}

// ---- §5 voice ----

#[test]
fn seed_example_sip_bob_at_uri1() {
    let v = voice(VOICE_EXAMPLE, "sip:bob@uri1.com", &[]);
    let route = &v["route"];
    assert_eq!(route["proxy_index"], 1);
    assert_eq!(
        route["proxy"],
        json!({"uri": "192.168.0.1", "host": "192.168.0.1", "port": null, "params": [], "sip_uri": "sip:192.168.0.1;lr"})
    );
    assert_eq!(route["username"], "someuser1");
    assert_eq!(route["password"], "somepassword1");
    assert_eq!(
        route["request_uri"],
        "sip:bob@uri1.com;newkey1=newvalue1;newkey2=newvalue2"
    );
    assert_eq!(
        route["headers"],
        json!({"To": "newkey3=newvalue3", "X-CustomHeader": "newkey4=newvalue4"})
    );
    assert_eq!(
        route["header_params"][0],
        json!({"header": "Request-URI", "key": "newkey1", "value": "newvalue1"})
    );
    assert_eq!(route["header_params"].as_array().unwrap().len(), 4);
    assert_eq!(route["routes"], json!([]));
    let fallbacks = v["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 1);
    assert_eq!(fallbacks[0]["proxy_index"], 2);
    assert_eq!(
        fallbacks[0]["request_uri"],
        "sip:bob@uri1.com;newkey5=newvalue5;newkey6=newvalue6"
    );
    assert_eq!(v["account_sid"], "AC0");
    assert_eq!(v["source"], "account");
    // Key order is part of the contract's readability.
    let keys: Vec<&str> = route
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "proxy_index",
            "proxy",
            "username",
            "password",
            "request_uri",
            "headers",
            "header_list",
            "header_params",
            "routes",
            "health"
        ]
    );
}

#[test]
fn seed_example_sip_alice_at_uri_com_takes_the_first_proxy() {
    let v = voice(VOICE_EXAMPLE, "sip:alice@uri.com", &[]);
    assert_eq!(v["route"]["proxy_index"], 0);
    assert_eq!(v["route"]["request_uri"], "sip:alice@uri.com");
    assert_eq!(v["route"]["headers"], json!({}));
    assert_eq!(
        v["route"]["proxy"]["params"],
        json!([{"name": "uriprop1", "value": "uri_prop_value1"}, {"name": "uriprop2", "value": "uri_prop_value2"}])
    );
    assert_eq!(
        v["route"]["proxy"]["sip_uri"],
        "sip:192.168.0.1;uriprop1=uri_prop_value1;uriprop2=uri_prop_value2;lr"
    );
    assert_eq!(
        v["fallbacks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["proxy_index"].clone())
            .collect::<Vec<_>>(),
        [json!(2)]
    );
}

#[test]
fn seed_example_sip_alice_at_uri3_falls_to_the_catch_all() {
    let v = voice(VOICE_EXAMPLE, "sip:alice@uri3.com", &[]);
    assert_eq!(v["route"]["proxy_index"], 2);
    assert_eq!(v["route"]["username"], "someuser2");
    assert_eq!(
        v["route"]["request_uri"],
        "sip:alice@uri3.com;newkey5=newvalue5;newkey6=newvalue6"
    );
    assert_eq!(
        v["route"]["headers"],
        json!({"To": "newkey7=newvalue7", "X-CustomHeader": "newkey8=newvalue8"})
    );
    assert_eq!(v["fallbacks"], json!([]));
}

#[test]
fn pstn_number_is_routed_at_the_proxy() {
    let v = voice(VOICE_EXAMPLE, "+15551234", &[]);
    assert_eq!(v["route"]["proxy_index"], 2);
    assert_eq!(
        v["route"]["request_uri"],
        "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
    );
    let v = voice(VOICE_EXAMPLE, "tel:+15551234;phone-context=x", &[]);
    assert_eq!(
        v["route"]["request_uri"],
        "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
    );
}

#[test]
fn uk_numbers_through_a_proxy_with_port_and_parameters() {
    let config = json!({"outbound-voice": [{"proxy": [
        {"uri": "sip:uk.example.net:5080;transport=tcp;x=1", "match": r"\+44\d+", "username": "uk",
         "headers": [{"headerName": "Request-URI", "key": "x", "value": "2"}, {"headerName": "Request-URI", "key": "y", "value": "3"}]},
        {"uri": "sips:other.example.net", "match": ".*"}
    ]}]}).to_string();
    let v = voice(&config, "+442071234567", &[]);
    assert_eq!(v["route"]["proxy_index"], 0);
    assert_eq!(v["route"]["proxy"]["port"], 5080);
    assert_eq!(v["route"]["proxy"]["host"], "uk.example.net");
    assert_eq!(
        v["route"]["proxy"]["sip_uri"],
        "sip:uk.example.net:5080;transport=tcp;x=1;lr"
    );
    assert_eq!(
        v["route"]["request_uri"],
        "sip:+442071234567@uk.example.net:5080;transport=tcp;x=2;y=3"
    );
    assert_eq!(
        v["fallbacks"][0]["request_uri"],
        "sips:+442071234567@other.example.net"
    );
    assert_eq!(
        v["fallbacks"][0]["proxy"]["sip_uri"],
        "sips:other.example.net;lr"
    );
    let v = voice(&config, "+15551234", &[]);
    assert_eq!(v["route"]["proxy_index"], 1);
}

#[test]
fn ipv6_hosts_match_with_brackets() {
    let config = one_proxy(json!({"uri": "[2001:db8::1]:5060", "match": r"\[2001:db8::2\]"}));
    let v = voice(&config, "sip:bob@[2001:db8::2]:5070;transport=udp", &[]);
    assert_eq!(v["route"]["proxy"]["host"], "[2001:db8::1]");
    assert_eq!(v["route"]["proxy"]["sip_uri"], "sip:[2001:db8::1]:5060;lr");
    assert_eq!(
        v["route"]["request_uri"],
        "sip:bob@[2001:db8::2]:5070;transport=udp"
    );
    let pstn = voice(&one_proxy(json!({"uri": "[::1]"})), "123", &[]);
    assert_eq!(pstn["route"]["request_uri"], "sip:123@[::1]");
}

#[test]
fn match_is_whole_target_and_case_insensitive() {
    let config = one_proxy(json!({"uri": "p.com", "match": "uri.com"}));
    assert!(voice(&config, "sip:bob@URI.COM", &[])["route"].is_object());
    assert!(voice(&config, "sip:bob@uri.com.evil", &[])["route"].is_null());
    assert!(voice(&config, "sip:bob@xuri.com", &[])["route"].is_null());
    // The user part is not the target for SIP calls.
    let config = one_proxy(json!({"uri": "p.com", "match": "bob"}));
    assert!(voice(&config, "sip:bob@uri.com", &[])["route"].is_null());
}

#[test]
fn request_uri_parameters_are_replaced_or_appended_in_order() {
    let config = one_proxy(json!({"uri": "p.com", "headers": [
        {"headerName": "request-uri", "key": "transport", "value": "tcp"},
        {"headerName": "Request-URI", "key": "new", "value": "1"},
        {"headerName": "Request-URI", "key": "new", "value": "2"}
    ]}));
    let v = voice(
        &config,
        "sip:bob@uri.com:5060;Transport=udp;lr?Subject=hi",
        &[],
    );
    assert_eq!(
        v["route"]["request_uri"],
        "sip:bob@uri.com:5060;Transport=tcp;lr;new=2?Subject=hi"
    );
}

#[test]
fn route_entries_and_header_grouping() {
    let config = one_proxy(json!({"uri": "p.com", "headers": [
        {"headerName": "Route", "key": "ignored", "value": "edge1.example.com"},
        {"headerName": "X-A", "key": "a", "value": "1"},
        {"headerName": "route", "key": "k", "value": "10.0.0.1:5060"},
        {"headerName": "x-a", "key": "b", "value": "2"},
        {"headerName": "To", "key": "t", "value": "3"}
    ]}));
    let v = voice(
        &config,
        "sip:bob@uri.com",
        &[("TO", "<sip:bob@uri.com>;tag=1")],
    );
    assert_eq!(
        v["route"]["routes"],
        json!(["<sip:edge1.example.com;lr>", "<sip:10.0.0.1:5060;lr>"])
    );
    assert_eq!(
        v["route"]["headers"],
        json!({"X-A": "a=1;b=2", "To": "<sip:bob@uri.com>;tag=1;t=3"})
    );
    let keys: Vec<String> = v["route"]["headers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["X-A", "To"]);
    assert_eq!(v["route"]["header_params"].as_array().unwrap().len(), 5);
}

#[test]
fn supplied_to_header_is_appended() {
    let v = voice(
        VOICE_EXAMPLE,
        "sip:bob@uri1.com",
        &[("To", "<sip:bob@uri1.com>"), ("From", "x")],
    );
    assert_eq!(
        v["route"]["headers"]["To"],
        "<sip:bob@uri1.com>;newkey3=newvalue3"
    );
    assert!(v["route"]["headers"].get("From").is_none());
}

#[test]
fn sip_uri_keeps_a_configured_lr() {
    let v = voice(&one_proxy(json!({"uri": "p.com;lr;x=1"})), "1", &[]);
    assert_eq!(v["route"]["proxy"]["sip_uri"], "sip:p.com;lr;x=1");
}

#[test]
fn hash_in_numbers_is_escaped_in_the_request_uri() {
    let v = voice(&one_proxy(json!({"uri": "p.com"})), "*123#", &[]);
    assert_eq!(v["route"]["request_uri"], "sip:*123%23@p.com");
}

#[test]
fn no_voice_section_routes_nothing() {
    let v = voice(
        r#"{"outbound-sms": [{"destination_network_id": 1}]}"#,
        "sip:a@b.com",
        &[],
    );
    assert_eq!(v["route"], Value::Null);
    assert_eq!(v["fallbacks"], json!([]));
}

#[test]
fn destinations() {
    let target = |to: &str| Destination::parse(to).map(|d| d.target().to_owned());
    assert_eq!(target("sip:bob@uri1.com").unwrap(), "uri1.com");
    assert_eq!(
        target("SIPS:bob@uri1.com:5061;transport=tls").unwrap(),
        "uri1.com"
    );
    assert_eq!(target("sip:uri1.com").unwrap(), "uri1.com");
    assert_eq!(target("sip:+1;npdi@uri1.com").unwrap(), "uri1.com");
    assert_eq!(target("sip:bob@[::1]:5060").unwrap(), "[::1]");
    assert_eq!(target("tel:+15551234;ext=1").unwrap(), "+15551234");
    assert_eq!(target("+15551234").unwrap(), "+15551234");
    assert_eq!(target("alice").unwrap(), "alice");
    assert_eq!(target("(555)123-4567").unwrap(), "(555)123-4567");
    assert_eq!(target(&"1".repeat(64)).unwrap(), "1".repeat(64));
    for bad in [
        "",
        "client:alice",
        "sip:",
        "sip:bob@",
        "sip:bob@bad host",
        "sip:bob@a_b.com",
        "sip:bob@[::1",
        "sip:a@b.com:0",
        "+",
        "++1",
        "1+1",
        "a b",
        "x\r\ny",
        "tel:",
        "tel:a b;x",
        "bob@uri.com",
        "sip:bob@uri.com\n",
        "%41",
    ] {
        assert!(Destination::parse(bad).is_err(), "{bad:?}");
    }
    assert!(Destination::parse(&"1".repeat(65)).is_err());
    assert!(Destination::parse(&format!("sip:{}@a.com", "x".repeat(3000))).is_err());
    assert_eq!(
        Destination::parse("client:alice").unwrap_err().parameter,
        "to"
    );
}

#[test]
fn supplied_headers_with_cr_or_lf_are_refused() {
    assert!(check_supplied_headers(&[("To", "<sip:a@b>")]).is_ok());
    assert!(check_supplied_headers(&[("To", "a\r\nVia: x")]).is_err());
    assert!(check_supplied_headers(&[("To", "a\n")]).is_err());
    assert!(check_supplied_headers(&[("Bad Name", "a")]).is_err());
}

// ---- SMS ----

#[test]
fn sms_answer_shape() {
    let c = compile(r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#).unwrap();
    let v: Value = serde_json::from_slice(&sms_response_json(
        None,
        Source::Account,
        None,
        c.sms_tlvs(),
    ))
    .unwrap();
    assert_eq!(
        v,
        json!({"account_sid": null, "source": "account", "revision": null, "tlvs": [
        {"tag": 1550, "name": "dest_network_id", "value": "1000", "value_hex": "000003E8", "cstring_hex": "3130303000"}]})
    );
    assert!(compile(VOICE_EXAMPLE).unwrap().sms_tlvs().is_empty());
}

// ---- docs/api.md: revision and header_list ----

#[test]
fn revision_comes_right_after_source_and_is_null_when_nothing_decided() {
    let c = compile(r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#).unwrap();
    let text = sms_response_json(Some("AC0"), Source::Global, Some(12), c.sms_tlvs());
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.starts_with(r#"{"account_sid":"AC0","source":"global","revision":12,"tlvs":"#),
        "{text}"
    );
    // `none` never carries a revision, whatever the caller passes.
    let none = voice_response_json(Some("AC0"), Source::None, Some(12), &VoiceAnswer::none());
    assert_eq!(
        serde_json::from_slice::<Value>(&none).unwrap(),
        json!({"account_sid": "AC0", "source": "none", "revision": null, "route": null, "fallbacks": []})
    );
    let v = voice(VOICE_EXAMPLE, "sip:bob@uri1.com", &[]);
    assert_eq!(v["revision"], 7);
}

#[test]
fn header_list_is_headers_in_first_configured_order() {
    let config = one_proxy(json!({"uri": "p.com", "headers": [
        {"headerName": "X.Dot", "key": "a", "value": "1"},
        {"headerName": "Request-URI", "key": "r", "value": "2"},
        {"headerName": "To", "key": "b", "value": "3"},
        {"headerName": "Route", "key": "x", "value": "edge.p.com"},
        {"headerName": "x.dot", "key": "c", "value": "4"},
        {"headerName": "Accept-Contact", "key": "d", "value": "5"}
    ]}));
    let v = voice(
        &config,
        "sip:bob@uri1.com",
        &[("to", "\"Bob \\ \u{1}\" <sip:bob@uri1.com>")],
    );
    let route = &v["route"];
    assert_eq!(
        route["header_list"],
        json!([
            {"name": "X.Dot", "value": "a=1;c=4"},
            {"name": "To", "value": "\"Bob \\ \u{1}\" <sip:bob@uri1.com>;b=3"},
            {"name": "Accept-Contact", "value": "d=5"}
        ])
    );
    // The same final values as `headers`, in the same order.
    let headers = route["headers"].as_object().unwrap();
    let from_list: Vec<(&str, &Value)> = route["header_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), &h["value"]))
        .collect();
    let from_object: Vec<(&str, &Value)> = headers.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(from_list, from_object);
    // No header changed: always present, empty.
    let bare = voice(&one_proxy(json!({"uri": "p.com"})), "+1555", &[]);
    assert_eq!(bare["route"]["header_list"], json!([]));
    // Every route object carries it, fallbacks included.
    let v = voice(VOICE_EXAMPLE, "sip:bob@uri1.com", &[]);
    assert_eq!(
        v["fallbacks"][0]["header_list"],
        json!([{"name": "To", "value": "newkey7=newvalue7"}, {"name": "X-CustomHeader", "value": "newkey8=newvalue8"}])
    );
}

#[test]
fn interner_shares_sets_across_documents() {
    let interner = RegexInterner::default();
    let a = compile_with(VOICE_EXAMPLE, &interner).unwrap();
    let b = compile_with(&VOICE_EXAMPLE.replace("someuser1", "other"), &interner).unwrap();
    assert!(Arc::ptr_eq(
        &a.voice.as_ref().unwrap().set,
        &b.voice.as_ref().unwrap().set
    ));
    assert_eq!(interner.live_sets(), 1);
}

#[test]
fn debug_output_never_shows_passwords() {
    let c = compile(VOICE_EXAMPLE).unwrap();
    assert!(!format!("{c:?}").contains("somepassword"));
}

#[test]
fn verbose_expressions_with_comments_are_valid_and_anchored() {
    // Any expression of the regex crate's dialect: an `(?x)` comment must not swallow the
    // anchors the expression is wrapped in.
    let config = one_proxy(json!({"uri": "p.com", "match": "(?x) \\+44 \\d+  # United Kingdom"}));
    let v = voice(&config, "+4412345", &[]);
    assert_eq!(v["route"]["proxy_index"], 0);
    assert_eq!(voice(&config, "+15551234", &[])["route"], Value::Null);
}

/// `request_uri()` and `headers()` are the API of an engine that embeds the routing core
/// instead of asking over HTTP: they must say exactly what the JSON answer says.
#[test]
fn the_embedding_api_agrees_with_the_json_answer() {
    let compiled = compile(VOICE_EXAMPLE).unwrap();
    for (to, supplied) in [
        ("sip:bob@uri1.com", vec![]),
        ("sip:bob@uri2.com;x=1", vec![("To", "<sip:bob@uri2.com>")]),
        ("+15551234", vec![("x-customheader", "a=b")]),
    ] {
        let dest = Destination::parse(to).unwrap();
        let answer = compiled.resolve_voice(&dest, &supplied);
        let json: Value =
            serde_json::from_slice(&voice_response_json(None, Source::Account, None, &answer))
                .unwrap();
        let routes = answer.route.iter().chain(&answer.fallbacks);
        let objects = std::iter::once(&json["route"]).chain(json["fallbacks"].as_array().unwrap());
        for (route, object) in routes.zip(objects) {
            assert_eq!(route.request_uri(), object["request_uri"], "{to}");
            let headers: serde_json::Map<String, Value> = route
                .headers()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), Value::from(value)))
                .collect();
            assert_eq!(Value::Object(headers), object["headers"], "{to}");
            let list: Vec<Value> = route
                .headers()
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            assert_eq!(Value::Array(list), object["header_list"], "{to}");
        }
    }
}

#[test]
fn limits_rules() {
    let ok = |limits: Value| {
        let config = one_proxy(json!({"uri": "10.0.0.1", "limits": limits}));
        compile(&config).map(|c| c.limits())
    };
    assert_eq!(
        ok(json!({"cps": 10})).unwrap(),
        vec![Some(crate::routing::Limits { cps: 10, burst: 10 })]
    );
    assert_eq!(
        ok(json!({"cps": 100000, "burst": 1000000})).unwrap(),
        vec![Some(crate::routing::Limits {
            cps: 100_000,
            burst: 1_000_000
        })]
    );
    let p = |limits: Value| pointers(&one_proxy(json!({"uri": "10.0.0.1", "limits": limits})));
    let at = |member: &str| format!("/outbound-voice/0/proxy/0/limits{member}");
    assert_eq!(p(json!({})), vec![at("")]);
    assert_eq!(p(json!([])), vec![at("")]);
    assert_eq!(
        p(json!({"cps": 0, "burst": 0})),
        vec![at("/cps"), at("/burst")]
    );
    assert_eq!(p(json!({"cps": 100001})), vec![at("/cps")]);
    assert_eq!(p(json!({"cps": 1, "burst": 1000001})), vec![at("/burst")]);
    assert_eq!(
        p(json!({"cps": 1.5, "burst": "2"})),
        vec![at("/cps"), at("/burst")]
    );
    assert_eq!(p(json!({"cps": 1, "rate": 2})), vec![at("/rate")]);
    // Every problem at once, the other members' too.
    let both = pointers(&one_proxy(
        json!({"uri": "10.0.0.1", "weight": -1, "limits": {"cps": -3}}),
    ));
    assert_eq!(
        both,
        vec!["/outbound-voice/0/proxy/0/weight".to_owned(), at("/cps")]
    );
    // A configuration without limits holds no buckets.
    let plain = compile(&one_proxy(json!({"uri": "10.0.0.1", "priority": 1}))).unwrap();
    assert!(plain.limits().is_empty());
}

/// Health decides only when it changes the route: a down fallback moved last leaves the
/// weighted choice as the rule; a down route makes health the rule.
#[test]
fn health_is_the_rule_only_when_it_moves_the_route() {
    let routing = compile(
        r#"{"outbound-voice": [{"proxy": [
            {"uri": "a.example.com", "weight": 1},
            {"uri": "b.example.com", "weight": 1}]}]}"#,
    )
    .unwrap();
    let dest = Destination::parse("+15551234").unwrap();
    let input =
        || LookupInput::new(&dest, &[]).with_key(crate::routing::SelectionKey::Given("call-1"));
    let up = routing.resolve(input(), |_| Health::Up);
    let chosen = up.route.as_ref().unwrap().proxy.index();
    assert_eq!(up.rule, Rule::Weighted);
    let other = 1 - chosen;
    let fallback_down =
        routing.resolve(
            input(),
            |i| {
                if i == other { Health::Down } else { Health::Up }
            },
        );
    assert_eq!(fallback_down.route.as_ref().unwrap().proxy.index(), chosen);
    assert_eq!(fallback_down.rule, Rule::Weighted);
    let route_down = routing.resolve(input(), |i| {
        if i == chosen {
            Health::Down
        } else {
            Health::Up
        }
    });
    assert_eq!(route_down.route.as_ref().unwrap().proxy.index(), other);
    assert_eq!(route_down.rule, Rule::Health);
}
