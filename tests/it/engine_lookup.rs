//! docs/api.md over real HTTP: the POST body read as JSON whatever its `Content-Type`, `header=`
//! on GET, `header_list` on every route object, `revision` on every answer; and every new
//! input refused with the usual error body, never a 500 or a malformed answer.

use multiprovider::sid::AccountSid;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, A1, ENGINE_TOKEN, J, SMS_1, VOICE_EXAMPLE};
use crate::common::db::fresh_sqlite;
use crate::common::on_every_db;
use crate::common::raw::Outcome;
use crate::common::reliability::runtime;
use crate::common::wire::encode;

async fn stored_revision(app: &TestApp, account: Option<&str>) -> i64 {
    match account {
        Some(a) => {
            let sid = AccountSid::parse(a).unwrap();
            app.state()
                .configs
                .store()
                .get(sid)
                .await
                .unwrap()
                .unwrap()
                .revision
        }
        None => {
            app.state()
                .configs
                .store()
                .global()
                .await
                .unwrap()
                .unwrap()
                .revision
        }
    }
}

/// `GET` of `path_and_query` exactly as given (no client-side re-encoding).
async fn raw_get(app: &TestApp, path_and_query: &str) -> Outcome {
    app.raw(
        &format!("GET {path_and_query} HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}"),
        b"",
    )
    .await
}

/// `POST …/voice-route` with `body` and, if given, `content_type`.
async fn raw_post(
    app: &TestApp,
    account: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Outcome {
    let mut head = format!(
        "POST /v1/accounts/{account}/voice-route HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}\r\nContent-Length: {}",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("\r\nContent-Type: {ct}"));
    }
    app.raw(&head, body).await
}

/// The answer's body, which must be JSON.
fn answer_json(r: &Outcome) -> Value {
    serde_json::from_str(&r.body_text()).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// The error body of docs/api.md, status 400, and the name of the first parameter at fault.
fn bad_request(r: &Outcome) -> Value {
    assert_eq!(r.status(), Some(400), "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let v = answer_json(r);
    assert_eq!(v["status"], 400, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["errors"].is_array(), "{v}");
    v
}

#[tokio::test]
async fn post_body_is_json_whatever_its_content_type() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let body = json!({"to": "sip:bob@uri1.com", "headers": {"To": "<sip:bob@uri1.com>;tag=9"}})
        .to_string();
    let mut answers = Vec::new();
    for ct in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/octet-stream"),
        Some("multipart/form-data; boundary=x"),
        Some("nonsense"),
    ] {
        let r = raw_post(&app, A1, ct, body.as_bytes()).await;
        assert_eq!(r.status(), Some(200), "{ct:?}: {r:?}");
        let v = answer_json(&r);
        assert_eq!(
            v["route"]["headers"]["To"], "<sip:bob@uri1.com>;tag=9;newkey3=newvalue3",
            "{ct:?}"
        );
        answers.push(v);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    app.stop().await;
}

#[tokio::test]
async fn post_bodies_of_the_wrong_shape_are_400_naming_the_problem() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    // (body, the parameter named, or None for a body-level message, and a word of it)
    let cases: Vec<(&[u8], Option<&str>, &str)> = vec![
        (b"", None, "empty"),
        (b"   \n", None, "empty"),
        (b"to=sip:bob@uri1.com", None, "not JSON"),
        (b"{\"to\": \"sip:bob@uri1.com\"", None, "not JSON"),
        (b"\xff\xfe{}", None, "not JSON"),
        (b"[]", None, "an array"),
        (b"\"sip:bob@uri1.com\"", None, "a string"),
        (b"null", None, "null"),
        (b"15551234", None, "a number"),
        (b"{}", Some("to"), "required"),
        (b"{\"to\": 15551234}", Some("to"), "must be a string"),
        (b"{\"to\": null}", Some("to"), "must be a string"),
        (
            b"{\"to\": \"+1\", \"extra\": 1}",
            Some("extra"),
            "unknown member",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": []}",
            Some("headers"),
            "object",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": \"To: x\"}",
            Some("headers"),
            "object",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"To\": 1}}",
            Some("headers"),
            "must be a string",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"To\": null}}",
            Some("headers"),
            "must be a string",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"To\": \"a\\r\\nVia: x\"}}",
            Some("headers"),
            "CR or LF",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"To\": \"a\\n\"}}",
            Some("headers"),
            "CR or LF",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"Bad Name\": \"a\"}}",
            Some("headers"),
            "not a SIP header name",
        ),
        (
            b"{\"to\": \"+1\", \"headers\": {\"\": \"a\"}}",
            Some("headers"),
            "not a SIP header name",
        ),
        (b"{\"to\": \"client:alice\"}", Some("to"), "neither"),
        (b"{\"to\": \"a\\r\\nb\"}", Some("to"), "control"),
    ];
    for (body, parameter, word) in cases {
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let r = raw_post(&app, A1, ct, body).await;
            let v = bad_request(&r);
            let text = v.to_string();
            assert!(
                text.contains(word),
                "{:?}: {text}",
                String::from_utf8_lossy(body)
            );
            match parameter {
                Some(p) => assert_eq!(v["errors"][0]["parameter"], p, "{text}"),
                None => assert!(
                    v["message"].as_str().unwrap().contains("JSON object"),
                    "{text}"
                ),
            }
        }
    }
    // Every problem at once.
    let r = raw_post(
        &app,
        A1,
        None,
        br#"{"to": 1, "x": 2, "headers": {"To": 3}}"#,
    )
    .await;
    let v = bad_request(&r);
    let named: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["x", "to", "headers"], "{v}");
    app.stop().await;
}

#[tokio::test]
async fn get_takes_header_parameters_like_the_post_headers() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let path = format!("/v1/accounts/{A1}/voice-route");
    let to = "<sip:bob@uri1.com>;tag=a+b&c";
    // Upper- and lowercase escapes, whitespace after the colon, `+` literal, `&` as %26.
    for query in [
        format!("to=sip:bob@uri1.com&header=To:{}", encode(to)),
        format!(
            "to=sip:bob@uri1.com&header=To%3A%20%09{}",
            encode(to).to_lowercase()
        ),
        format!("header=To:%20{}&to=sip%3abob%40uri1.com", encode(to)),
        "to=sip:bob@uri1.com&header=To:%3Csip:bob@uri1.com%3E;tag=a+b%26c".to_owned(),
    ] {
        let r = raw_get(&app, &format!("{path}?{query}")).await;
        assert_eq!(r.status(), Some(200), "{query}: {r:?}");
        let v = answer_json(&r);
        assert_eq!(
            v["route"]["headers"]["To"],
            format!("{to};newkey3=newvalue3"),
            "{query}"
        );
        assert_eq!(
            v["route"]["header_list"][0],
            json!({"name": "To", "value": format!("{to};newkey3=newvalue3")}),
            "{query}"
        );
    }
    // The same answer as the POST with the same headers; names compare in any case.
    let get = answer_json(
        &raw_get(
            &app,
            &format!(
                "{path}?to=%2B15551234&header=to:{}&header=X-CUSTOMHEADER:abc",
                encode("<sip:+15551234@x>")
            ),
        )
        .await,
    );
    let post = answer_json(
        &raw_post(
            &app,
            A1,
            None,
            json!({"to": "+15551234", "headers": {"to": "<sip:+15551234@x>", "X-CUSTOMHEADER": "abc"}})
                .to_string()
                .as_bytes(),
        )
        .await,
    );
    assert_eq!(get, post);
    assert_eq!(
        get["route"]["headers"]["X-CustomHeader"],
        "abc;newkey8=newvalue8"
    );
    // An empty value is a value.
    let v = answer_json(&raw_get(&app, &format!("{path}?to=sip:bob@uri1.com&header=To:")).await);
    assert_eq!(v["route"]["headers"]["To"], ";newkey3=newvalue3");

    // Refused, each with the usual error body naming `header`.
    let many: String = (0..65).map(|i| format!("&header=X-H{i}:v")).collect();
    for (query, word) in [
        ("header=To".to_owned(), "no colon"),
        ("header=".to_owned(), "no colon"),
        ("header=To%0D%0AVia:x".to_owned(), "not a SIP header name"),
        ("header=Bad%20Name:x".to_owned(), "not a SIP header name"),
        ("header=To%20:x".to_owned(), "not a SIP header name"),
        ("header=:x".to_owned(), "not a SIP header name"),
        ("header=To:a%0D%0AVia:%20x".to_owned(), "CR or LF"),
        ("header=To:a%0Ab".to_owned(), "CR or LF"),
        ("header=To:a%0db".to_owned(), "CR or LF"),
        ("header=To:%zz".to_owned(), "percent-encoded"),
        ("header=To:%4".to_owned(), "percent-encoded"),
        ("header=To:%ff".to_owned(), "percent-encoded"),
        ("header=To:a&header=to:b".to_owned(), "more than once"),
        (many, "at most 64"),
    ] {
        let r = raw_get(&app, &format!("{path}?to=sip:bob@uri1.com&{query}")).await;
        let v = bad_request(&r);
        assert_eq!(v["errors"][0]["parameter"], "header", "{query}: {v}");
        assert!(v.to_string().contains(word), "{query}: {v}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_route_object_has_header_list_in_configured_order() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let config = json!({"outbound-voice": [{"proxy": [
        {"uri": "a.example.com", "headers": [
            {"headerName": "X.Dot", "key": "k", "value": "1"},
            {"headerName": "Request-URI", "key": "r", "value": "2"},
            {"headerName": "To", "key": "t", "value": "3"},
            {"headerName": "x.dot", "key": "l", "value": "4"}]},
        {"uri": "b.example.com"},
        {"uri": "c.example.com", "headers": [{"headerName": "Route", "key": "x", "value": "edge.example.com"}]}
    ]}]})
    .to_string();
    app.configure(Some(A1), &config).await;
    let v = answer_json(
        &raw_get(
            &app,
            &format!("/v1/accounts/{A1}/voice-route?to=%2B1555&header=To:%3Csip:1555@x%3E"),
        )
        .await,
    );
    assert_eq!(
        v["route"]["header_list"],
        json!([{"name": "X.Dot", "value": "k=1;l=4"}, {"name": "To", "value": "<sip:1555@x>;t=3"}])
    );
    assert_eq!(v["fallbacks"][0]["header_list"], json!([]));
    assert_eq!(v["fallbacks"][1]["header_list"], json!([]));
    assert_eq!(
        v["fallbacks"][1]["routes"],
        json!(["<sip:edge.example.com;lr>"])
    );
    // Keys in the documented order: header_list right after headers.
    let text = raw_get(&app, &format!("/v1/accounts/{A1}/voice-route?to=%2B1555"))
        .await
        .body_text();
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(at("headers") < at("header_list") && at("header_list") < at("header_params"));
    app.stop().await;
}

on_every_db!(every_answer_carries_the_revision_that_decided, |app, db| {
    let voice = |account: &'static str| {
        let app = &app;
        async move {
            answer_json(
                &raw_get(
                    app,
                    &format!("/v1/accounts/{account}/voice-route?to=sip:bob@uri1.com"),
                )
                .await,
            )
        }
    };
    let sms = |account: &'static str| {
        let app = &app;
        async move { answer_json(&raw_get(app, &format!("/v1/accounts/{account}/sms-route")).await) }
    };
    // Nothing configured: null, right after `source`.
    let text = raw_get(&app, &format!("/v1/accounts/{A1}/sms-route"))
        .await
        .body_text();
    assert!(
        text.starts_with(&format!(
            r#"{{"account_sid":"{A1}","source":"none","revision":null,"#
        )),
        "{text}"
    );
    assert_eq!(voice(A1).await["revision"], Value::Null);

    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let first = stored_revision(&app, Some(A1)).await;
    assert_eq!(voice(A1).await["revision"], first, "{}", db.kind);
    assert_eq!(sms(A1).await["revision"], first, "{}", db.kind);
    // A change is a new revision, seen by the next lookup.
    app.configure(Some(A1), &VOICE_EXAMPLE.replace("someuser1", "someone"))
        .await;
    let second = stored_revision(&app, Some(A1)).await;
    assert!(second > first);
    assert_eq!(voice(A1).await["revision"], second, "{}", db.kind);

    // The global configuration's own revision for an account without one.
    app.configure(None, SMS_1).await;
    let global = stored_revision(&app, None).await;
    let v = sms(A_NONE).await;
    assert_eq!(
        (v["source"].clone(), v["revision"].clone()),
        (json!("global"), json!(global))
    );
    // Switched off: nothing decides, no revision.
    let r = app
        .post_form(
            &format!("{J}/multi_provider"),
            &[("AccountSid", A1), ("Enabled", "false")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let v = voice(A1).await;
    assert_eq!(
        (v["source"].clone(), v["revision"].clone()),
        (json!("none"), Value::Null)
    );
    app.stop().await;
});

/// What a well-formed answer of the lookup API is: a JSON object whose header names are SIP
/// tokens and whose values hold no CR or LF, with `header_list` equal to `headers`.
fn check_answer(r: &Outcome) -> Result<u16, TestCaseError> {
    let Outcome::Answered { status, body, .. } = r else {
        return Err(TestCaseError::fail(format!("no answer: {r:?}")));
    };
    let status = *status;
    prop_assert!(status < 500, "{:?}", r);
    if body.is_empty() {
        // hyper's own refusal of an unreadable request line: no body to check.
        prop_assert_eq!(status, 400, "{:?}", r);
        return Ok(status);
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("malformed JSON ({e}): {r:?}")))?;
    if status != 200 {
        prop_assert_eq!(&v["status"], &json!(status), "{:?}", r);
        prop_assert!(
            v["message"].is_string() && v["errors"].is_array(),
            "{:?}",
            r
        );
        return Ok(status);
    }
    let routes = std::iter::once(&v["route"]).chain(v["fallbacks"].as_array().unwrap());
    for route in routes.filter(|r| !r.is_null()) {
        let list = route["header_list"].as_array().unwrap();
        let headers = route["headers"].as_object().unwrap();
        prop_assert_eq!(list.len(), headers.len());
        for (item, (name, value)) in list.iter().zip(headers) {
            prop_assert_eq!(&item["name"], &json!(name));
            prop_assert_eq!(&item["value"], value);
            let value = value.as_str().unwrap();
            prop_assert!(!value.contains(['\r', '\n']), "{:?}", value);
            prop_assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
                "{:?}",
                name
            );
        }
    }
    Ok(200)
}

/// Arbitrary `header=` values, percent-encoded or raw, never give a 500 or a malformed
/// answer; a well-formed one is answered as the same header given in a POST.
#[test]
fn arbitrary_header_parameters_never_break_an_answer() {
    let rt = runtime();
    let db = fresh_sqlite();
    let app = rt.block_on(async {
        let app = spawn_app(&db.url, AppOptions::default()).await;
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        app
    });
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let header = prop_oneof![
        // Any text, percent-encoded: reaches the parser intact.
        any::<String>().prop_map(|s| encode(&s)),
        // A plausible header with any value.
        (
            "(To|to|X-CustomHeader|From|X\\.Dot|Bad Name|)",
            any::<String>()
        )
            .prop_map(|(n, v)| format!("{}:{}", encode(&n), encode(&v))),
        // Raw printable ASCII: `%`, `+`, `&`, `#`, `=`, `:` as they come.
        "[!-~]{0,40}",
        // Broken escapes.
        "(To:)?(%[0-9a-fA-FzZ]?){1,4}",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let tally = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(&proptest::collection::vec(header, 1..4), |headers| {
            rt.block_on(async {
                let query: String = headers.iter().map(|h| format!("&header={h}")).collect();
                let r = raw_get(
                    &app,
                    &format!("/v1/accounts/{A1}/voice-route?to=sip:bob@uri1.com{query}"),
                )
                .await;
                let status = check_answer(&r)?;
                *tally.lock().unwrap().entry(status).or_default() += 1;
                Ok(())
            })
        })
        .unwrap();
    // Both outcomes were exercised.
    let tally = tally.into_inner().unwrap();
    assert!(tally.get(&200).is_some_and(|n| *n > 10), "{tally:?}");
    assert!(tally.get(&400).is_some_and(|n| *n > 10), "{tally:?}");
    rt.block_on(app.stop());
}
