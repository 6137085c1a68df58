//! The command line of docs/operations.md, run as the built binary: `validate` and `resolve`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::constants::{SMS_EXAMPLE_PATH, VOICE_EXAMPLE, VOICE_EXAMPLE_PATH};
use crate::common::process::BIN;

/// Runs the binary with `args`, feeding `stdin` (nothing: an empty, closed standard input).
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Nothing here may depend on the server's environment.
        .env_remove("DATABASE_URL")
        .env_remove("MULTIPROVIDER_LISTEN")
        .spawn()
        .expect("the binary starts");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn stdout_json(o: &Output) -> Value {
    let text = String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {text:?}; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The example of docs/api.md: `value` misspelt `value7` in the third proxy's third header.
fn value7_config() -> String {
    let config = VOICE_EXAMPLE.replace(
        r#"{"headerName": "To", "key": "newkey7", "value": "newvalue7"}"#,
        r#"{"headerName": "To", "key": "newkey7", "value7": "newvalue7"}"#,
    );
    assert_ne!(config, VOICE_EXAMPLE);
    config
}

fn value7_body() -> Value {
    json!({"status": 400, "message": "ConfigurationData is invalid",
           "errors": [{"pointer": "/outbound-voice/0/proxy/2/headers/2/value7", "message": "unknown field `value7`"},
                      {"pointer": "/outbound-voice/0/proxy/2/headers/2", "message": "missing field `value`"}]})
}

fn temp_file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(contents).unwrap();
    f.flush().unwrap();
    f
}

// ---- validate ----

#[test]
fn validate_accepts_the_documentation_examples() {
    for file in [VOICE_EXAMPLE_PATH, SMS_EXAMPLE_PATH] {
        let o = run(&["validate", file], None);
        assert_eq!(code(&o), 0, "{file}: {}", stderr(&o));
    }
}

#[test]
fn validate_reports_the_spec_error_body_and_exits_1() {
    let f = temp_file(value7_config().as_bytes());
    let o = run(&["validate", f.path().to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(stdout_json(&o), value7_body());
}

#[test]
fn validate_reads_standard_input() {
    for args in [&["validate", "-"][..], &["validate"][..]] {
        let o = run(args, Some(VOICE_EXAMPLE.as_bytes()));
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let o = run(args, Some(value7_config().as_bytes()));
        assert_eq!(code(&o), 1, "{args:?}");
        assert_eq!(stdout_json(&o), value7_body(), "{args:?}");
    }
}

#[test]
fn validate_reports_syntax_errors_and_the_backslash_hint() {
    let o = run(
        &["validate", "-"],
        Some(br#"{"outbound-voice": [{"proxy": [{"uri": "a.com", "match": "uri[12]\.com"}]}]}"#),
    );
    assert_eq!(code(&o), 1);
    let body = stdout_json(&o);
    assert_eq!(body["status"], 400);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["pointer"], "");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("line 1 column"), "{message}");
    assert!(message.contains(r"\\."), "{message}");

    // Empty input is not JSON either: invalid, not a usage error.
    let o = run(&["validate", "-"], Some(b""));
    assert_eq!(code(&o), 1);
    assert_eq!(stdout_json(&o)["errors"][0]["pointer"], "");
}

#[test]
fn validate_a_file_that_is_not_utf8_is_invalid() {
    let f = temp_file(b"{\"outbound-sms\": [{\"destination_network_id\": \"\xff\"}]}");
    let o = run(&["validate", f.path().to_str().unwrap()], None);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let body = stdout_json(&o);
    assert_eq!(body["status"], 400);
    assert_eq!(body["errors"][0]["pointer"], "");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
}

#[test]
fn validate_usage_errors_exit_2() {
    let o = run(&["validate", "/nonexistent/dir/config.json"], None);
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("/nonexistent/dir/config.json"),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let o = run(&["validate", dir.path().to_str().unwrap()], None);
    assert_eq!(code(&o), 2, "a directory is unreadable as a file");

    let o = run(&["validate", "--bogus", VOICE_EXAMPLE_PATH], None);
    assert_eq!(code(&o), 2);
    assert!(!stderr(&o).is_empty());

    let o = run(&["validate", VOICE_EXAMPLE_PATH, SMS_EXAMPLE_PATH], None);
    assert_eq!(code(&o), 2, "one file at most");

    let o = run(&["--bogus"], None);
    assert_eq!(code(&o), 2);
    let o = run(&["frobnicate"], None);
    assert_eq!(code(&o), 2);
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["help"][..],
        &["validate", "--help"][..],
        &["resolve", "--help"][..],
        &["--version"][..],
    ] {
        let o = run(args, None);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(!o.stdout.is_empty(), "{args:?}");
    }
    let help = String::from_utf8(run(&["--help"], None).stdout).unwrap();
    for command in ["serve", "migrate", "validate", "resolve"] {
        assert!(help.contains(command), "{help}");
    }
}

// ---- resolve ----

fn proxy_route(
    index: u64,
    host: &str,
    user: &str,
    request_uri: &str,
    headers: Value,
    keys: [u32; 4],
) -> Value {
    let [a, b, c, d] = keys;
    json!({
        "proxy_index": index,
        "proxy": {"uri": host, "host": host, "port": null, "params": [], "sip_uri": format!("sip:{host};lr")},
        "username": format!("someuser{user}"),
        "password": format!("somepassword{user}"),
        "request_uri": request_uri,
        "headers": headers,
        "header_list": headers.as_object().unwrap().iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect::<Vec<_>>(),
        "header_params": [
            {"header": "Request-URI", "key": format!("newkey{a}"), "value": format!("newvalue{a}")},
            {"header": "Request-URI", "key": format!("newkey{b}"), "value": format!("newvalue{b}")},
            {"header": "To", "key": format!("newkey{c}"), "value": format!("newvalue{c}")},
            {"header": "X-CustomHeader", "key": format!("newkey{d}"), "value": format!("newvalue{d}")}
        ],
        "routes": [],
        "health": "up"
    })
}

#[test]
fn resolve_prints_the_spec_answer() {
    let o = run(
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let expected = json!({
        "account_sid": null,
        "source": "account",
        "revision": null,
        "route": proxy_route(1, "192.168.0.1", "1", "sip:bob@uri1.com;newkey1=newvalue1;newkey2=newvalue2",
            json!({"To": "newkey3=newvalue3", "X-CustomHeader": "newkey4=newvalue4"}), [1, 2, 3, 4]),
        "fallbacks": [
            proxy_route(2, "192.168.0.2", "2", "sip:bob@uri1.com;newkey5=newvalue5;newkey6=newvalue6",
                json!({"To": "newkey7=newvalue7", "X-CustomHeader": "newkey8=newvalue8"}), [5, 6, 7, 8])
        ]
    });
    assert_eq!(stdout_json(&o), expected);
    // The route's keys come in the documented order.
    let text = String::from_utf8(o.stdout).unwrap();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(at("account_sid") < at("source") && at("source") < at("route"));
    assert!(at("proxy_index") < at("request_uri") && at("request_uri") < at("header_params"));
}

#[test]
fn resolve_appends_to_supplied_headers() {
    let o = run(
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
            "--header",
            "To: <sip:bob@uri1.com>",
            "--header",
            "From: <sip:alice@example.com>;tag=1",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = stdout_json(&o);
    assert_eq!(
        v["route"]["headers"],
        json!({"To": "<sip:bob@uri1.com>;newkey3=newvalue3", "X-CustomHeader": "newkey4=newvalue4"})
    );
    assert_eq!(
        v["fallbacks"][0]["headers"]["To"],
        "<sip:bob@uri1.com>;newkey7=newvalue7"
    );
    // Header names compare case-insensitively; the configured spelling is answered.
    let o = run(
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
            "--header",
            "x-customheader:abc",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout_json(&o)["route"]["headers"]["X-CustomHeader"],
        "abc;newkey4=newvalue4"
    );
}

#[test]
fn resolve_a_number() {
    let o = run(
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "+15551234",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = stdout_json(&o);
    assert_eq!(v["route"]["proxy_index"], 2);
    assert_eq!(
        v["route"]["request_uri"],
        "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
    );
    assert_eq!(v["fallbacks"], json!([]));

    let o = run(
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to=tel:+15551234;ext=1",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout_json(&o)["route"]["request_uri"],
        "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
    );
}

#[test]
fn resolve_reads_the_configuration_from_standard_input() {
    let o = run(
        &["resolve", "--config", "-", "--to", "sip:alice@uri.com"],
        Some(VOICE_EXAMPLE.as_bytes()),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["route"]["proxy_index"], 0);
}

#[test]
fn resolve_without_a_match_or_a_voice_section_answers_a_null_route() {
    let o = run(
        &[
            "resolve",
            "--config",
            SMS_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout_json(&o),
        json!({"account_sid": null, "source": "account", "revision": null, "route": null, "fallbacks": []})
    );
}

#[test]
fn resolve_sms_prints_the_tlv() {
    let o = run(&["resolve", "--config", SMS_EXAMPLE_PATH, "--sms"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout_json(&o),
        json!({"account_sid": null, "source": "account", "revision": null, "tlvs": [
            {"tag": 1550, "name": "dest_network_id", "value": "1000", "value_hex": "000003E8", "cstring_hex": "3130303000"}]})
    );
    // No `outbound-sms`: no TLVs.
    let o = run(&["resolve", "--config", VOICE_EXAMPLE_PATH, "--sms"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["tlvs"], json!([]));
}

#[test]
fn resolve_refuses_a_bad_destination_or_header_with_exit_2() {
    for to in ["client:alice", "sip:", "sip:bob@bad host", ""] {
        let o = run(
            &["resolve", "--config", VOICE_EXAMPLE_PATH, "--to", to],
            None,
        );
        assert_eq!(code(&o), 2, "{to:?}");
        assert!(o.stdout.is_empty(), "{to:?}");
        let err = stderr(&o);
        assert!(err.contains("to"), "{to:?}: {err}");
    }
    for header in ["no colon", ": value", "To: a\r\nVia: x", "Bad Name: x"] {
        let o = run(
            &[
                "resolve",
                "--config",
                VOICE_EXAMPLE_PATH,
                "--to",
                "sip:bob@uri1.com",
                "--header",
                header,
            ],
            None,
        );
        assert_eq!(code(&o), 2, "{header:?}");
        assert!(o.stdout.is_empty(), "{header:?}");
        assert!(!stderr(&o).is_empty());
    }
}

#[test]
fn resolve_usage_errors_exit_2() {
    for args in [
        &["resolve", "--config", VOICE_EXAMPLE_PATH][..], // neither --to nor --sms
        &["resolve", "--to", "sip:bob@uri1.com"][..],     // no --config
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--sms",
            "--to",
            "1",
        ][..],
        &[
            "resolve",
            "--config",
            SMS_EXAMPLE_PATH,
            "--sms",
            "--header",
            "To: x",
        ][..],
        &[
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "1",
            "--bogus",
        ][..],
        &[
            "resolve",
            "--config",
            "/nonexistent/config.json",
            "--to",
            "1",
        ][..],
        &["resolve", "--config", "/nonexistent/config.json", "--sms"][..],
    ] {
        let o = run(args, None);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn resolve_with_an_invalid_configuration_exits_1_with_the_error_body() {
    let f = temp_file(value7_config().as_bytes());
    let path = f.path().to_str().unwrap();
    let o = run(
        &["resolve", "--config", path, "--to", "sip:bob@uri1.com"],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(stdout_json(&o), value7_body());
    let o = run(&["resolve", "--config", path, "--sms"], None);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout_json(&o), value7_body());
}

#[test]
fn resolve_takes_the_routing_policy_inputs() {
    let config = temp_file(
        br#"{"outbound-voice": [{"proxy": [
            {"uri": "premium.example.com", "caller": "\\+4930.*"},
            {"uri": "a.example.com", "priority": 1, "weight": 70},
            {"uri": "b.example.com", "priority": 1, "weight": 30},
            {"uri": "office.example.com", "priority": 2, "schedule": {"timezone": "Europe/Berlin",
                "windows": [{"days": ["thu"], "start": "08:00", "end": "18:00"}]}}]}]}"#,
    );
    let path = config.path().to_str().unwrap();
    let resolve = |extra: &[&str]| {
        let mut args = vec!["resolve", "--config", path, "--to", "+4420123"];
        args.extend_from_slice(extra);
        run(&args, None)
    };
    let o = resolve(&[
        "--from",
        "sip:+4930555@pbx.example.com",
        "--key",
        "call-1@host",
        "--at",
        "2026-12-24T10:00:00+01:00",
        "--explain",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v = stdout_json(&o);
    assert_eq!(v["route"]["proxy_index"], 0);
    let e = &v["explain"];
    assert_eq!(
        (&e["caller"], &e["key"], &e["at"]),
        (
            &json!("+4930555"),
            &json!("call-1@host"),
            &json!("2026-12-24T09:00:00Z")
        )
    );
    assert_eq!(e["candidates"][3]["conditions"]["schedule"], true);
    // The same key, the same order, every time; without `--from` the premium trunk is out.
    let order = |o: &Output| {
        let v = stdout_json(o);
        let mut got = vec![v["route"]["proxy_index"].as_u64().unwrap()];
        for f in v["fallbacks"].as_array().unwrap() {
            got.push(f["proxy_index"].as_u64().unwrap());
        }
        got
    };
    let at = ["--key", "call-2@host", "--at", "2026-12-24T22:00:00Z"];
    let first = order(&resolve(&at));
    assert!(first == [1, 2] || first == [2, 1], "{first:?}");
    for _ in 0..3 {
        assert_eq!(order(&resolve(&at)), first);
    }
    // Bad inputs: exit 2, each named.
    let o = resolve(&["--from", "client:x", "--key", "a b", "--at", "tomorrow"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    for name in ["from:", "key:", "at:"] {
        assert!(err.contains(name), "{name} in {err}");
    }
}
