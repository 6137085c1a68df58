//! Reliability battery, limits: body size, configuration size, proxy and header counts, regex
//! size and complexity, HTTP header counts and sizes, long or malformed destinations, and slow
//! clients. Each limit is probed on both sides of its boundary; beyond it the answer is a 4xx
//! (never a 5xx, never a hang), and the server keeps serving everyone else.

use std::time::{Duration, Instant};

use crate::common::app::{AppOptions, ENGINE_TOKEN, FORM, TestApp, encode, form, spawn_app};
use crate::common::on_every_db;
use crate::common::reliability::{Outcome, exchange, stored};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const J: &str = "/2012-04-24/ExtensionsConfiguration.json";
const A1: &str = "AC0123456789abcdef0123456789abcdef";
const A2: &str = "AC11111111111111111111111111111111";
const LIMIT: usize = 256 * 1024;
const SMS: &str = r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#;

async fn raw(app: &TestApp, head: &str, body: &[u8]) -> Outcome {
    let mut request =
        format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", app.addr).into_bytes();
    request.extend_from_slice(body);
    exchange(app.addr, request, Duration::from_secs(20)).await
}

fn status(outcome: &Outcome) -> u16 {
    outcome
        .status()
        .unwrap_or_else(|| panic!("no answer: {outcome:?}"))
}

async fn post_config(app: &TestApp, account: &str, config: &str) -> (u16, Value) {
    let r = app
        .post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", account),
                ("ConfigurationData", config),
            ],
        )
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn pointers(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["pointer"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn voice(app: &TestApp, account: &str, to: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = app
        .client
        .get(app.url(&format!(
            "/v1/accounts/{account}/voice-route?to={}",
            encode(to)
        )))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

// ------------------------------------------------------------------------ body size

on_every_db!(body_size_boundary_on_both_framings, |app, db| {
    let auth = app.admin_authorization();
    let prefix = "ExtensionName=multi_provider&AccountSid=AC11111111111111111111111111111111&ConfigurationData=";
    for (size, want) in [(LIMIT, 400), (LIMIT + 1, 413), (4 * LIMIT, 413)] {
        // Valid JSON padded with spaces (%20 is 3 bytes of body each).
        let mut body = format!("{prefix}{}", encode(SMS)).into_bytes();
        body.resize(size, b'+');
        let before = stored(&app.state().store).await;
        let declared = raw(
            &app,
            &format!(
                "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nContent-Length: {size}"
            ),
            &body,
        )
        .await;
        assert_eq!(status(&declared), want, "{size} bytes: {declared:?}");
        // Chunked, in 8 KiB chunks: the limit holds without a declared length.
        let mut chunked = Vec::new();
        for chunk in body.chunks(8192) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let outcome = raw(
            &app,
            &format!(
                "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked"
            ),
            &chunked,
        )
        .await;
        assert_eq!(status(&outcome), want, "chunked {size} bytes: {outcome:?}");
        // At the limit the body is read and the (too large) configuration refused: 400.
        assert_eq!(stored(&app.state().store).await, before);
    }
    // The lookup API has the same body limit, with the same answer.
    let big = format!(
        r#"{{"to": "+1", "headers": {{"X": "{}"}}}}"#,
        "a".repeat(LIMIT)
    );
    let outcome = raw(
        &app,
        &format!(
            "POST /v1/accounts/{A1}/voice-route HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}",
            big.len()
        ),
        big.as_bytes(),
    )
    .await;
    assert_eq!(status(&outcome), 413, "{outcome:?}");
    // A Content-Length that no one could send.
    let outcome = raw(
        &app,
        &format!(
            "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nContent-Length: 99999999999999999999"
        ),
        b"",
    )
    .await;
    assert!((400..500).contains(&status(&outcome)), "{outcome:?}");
});

// ------------------------------------------------------------------------ configuration

/// `SMS` padded with JSON whitespace to exactly `len` bytes.
fn padded(len: usize) -> String {
    let mut c = SMS.to_owned();
    c.push_str(&" ".repeat(len - SMS.len()));
    c
}

on_every_db!(configuration_size_and_counts, |app, db| {
    let started = Instant::now();
    let (s, body) = post_config(&app, A1, &padded(65_536)).await;
    assert_eq!(s, 200, "exactly 65,536 bytes is allowed: {body}");
    assert_eq!(body["configuration"].as_str().unwrap().len(), 65_536);
    let (s, body) = post_config(&app, A1, &padded(65_537)).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(pointers(&body), [""], "{body}");
    assert!(body.to_string().contains("65536"), "{body}");

    let proxies = |n: usize| {
        json!({"outbound-voice": [{"proxy": (0..n).map(|i| json!({"uri": format!("p{i}.example.com")})).collect::<Vec<_>>()}]})
            .to_string()
    };
    assert_eq!(post_config(&app, A1, &proxies(100)).await.0, 200);
    let (s, body) = post_config(&app, A1, &proxies(101)).await;
    assert_eq!(s, 400);
    assert_eq!(pointers(&body), ["/outbound-voice/0/proxy"], "{body}");
    let (s, body) = post_config(&app, A1, &proxies(0)).await;
    assert_eq!(
        (s, pointers(&body)),
        (400, vec!["/outbound-voice/0/proxy".to_owned()])
    );

    let headers = |n: usize| {
        json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "headers":
            (0..n).map(|i| json!({"headerName": format!("X-H{i}"), "key": "k", "value": "v"})).collect::<Vec<_>>()}]}]})
            .to_string()
    };
    assert_eq!(post_config(&app, A1, &headers(50)).await.0, 200);
    let (s, body) = post_config(&app, A1, &headers(51)).await;
    assert_eq!(s, 400);
    assert_eq!(
        pointers(&body),
        ["/outbound-voice/0/proxy/0/headers"],
        "{body}"
    );

    // Credentials: 256 bytes allowed, 257 refused without quoting them back.
    let creds = |n: usize| {
        json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "username": "u", "password": "ß".repeat(n / 2)}]}]})
            .to_string()
    };
    assert_eq!(post_config(&app, A1, &creds(256)).await.0, 200);
    let (s, body) = post_config(&app, A1, &creds(258)).await;
    assert_eq!(s, 400);
    assert!(!body.to_string().contains("ßßßß"), "{body}");

    // Deep nesting within the size limit: an error, not a stack overflow.
    for deep in [
        format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
        format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)),
        "[".repeat(60_000),
    ] {
        let (s, body) = post_config(&app, A1, &deep).await;
        assert_eq!(s, 400, "{body}");
    }
    eprintln!("configuration limits probed in {:?}", started.elapsed());
    // The server is still fine.
    assert_eq!(app.get("/health/live").await.status(), 200);
});

on_every_db!(regex_size_and_complexity_are_bounded, |app, db| {
    let with_match = |m: &str| {
        json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "match": m}]}]}).to_string()
    };
    // Length: 1,024 bytes allowed, 1,025 refused.
    assert_eq!(
        post_config(&app, A1, &with_match(&"a".repeat(1024)))
            .await
            .0,
        200
    );
    let (s, body) = post_config(&app, A1, &with_match(&"a".repeat(1025))).await;
    assert_eq!(
        (s, pointers(&body)),
        (400, vec!["/outbound-voice/0/proxy/0/match".to_owned()])
    );

    // Complexity: expressions short enough but expensive to compile, or pathological for
    // backtracking engines. Each is answered quickly, 200 or 400, never 5xx.
    let nasty = [
        r"\w{1000}",
        r"(\w{100}){100}",
        r"((a|b|c|d|e){20}){20}",
        r"(.*){1000}",
        r"(a+)+$",
        r"(a|aa)+b",
        r"[\p{L}\p{N}\p{S}]{300}",
        r"(?i)(\p{Greek}|\p{Cyrillic}|\p{Han}){200}",
        r"((((((((((a*)*)*)*)*)*)*)*)*)*)*",
        r"\d{1,1000}",
        "(?x) a # comment",
        r"x{1001}",
        r"a{4294967295}",
    ];
    let mut report = Vec::new();
    for pattern in nasty {
        let started = Instant::now();
        let (s, body) = post_config(&app, A2, &with_match(pattern)).await;
        let took = started.elapsed();
        assert!(s == 200 || s == 400, "{pattern}: {s} {body}");
        assert!(took < Duration::from_secs(10), "{pattern}: {took:?}");
        report.push(format!("{pattern} → {s} in {took:?}"));
        if s == 200 {
            // Matching is linear: a long target against it is answered at once.
            let (status, _, took) = voice(&app, A2, &format!("sip:{}@x", "a".repeat(30))).await;
            assert_eq!(status, 200);
            let (status, _, took2) = voice(&app, A2, &"9".repeat(64)).await;
            assert_eq!(status, 200);
            assert!(took.max(took2) < Duration::from_secs(2), "{pattern}");
        } else {
            assert_eq!(
                pointers(&body),
                ["/outbound-voice/0/proxy/0/match"],
                "{pattern}: {body}"
            );
        }
    }
    // 100 proxies each with a large expression: the set as a whole is bounded too.
    let many = json!({"outbound-voice": [{"proxy": (0..60).map(|i| json!({
        "uri": format!("p{i}.example.com"), "match": format!(r"[\p{{L}}\p{{N}}]{{40}}{i}")}))
        .collect::<Vec<_>>()}]})
    .to_string();
    assert!(many.len() <= 65_536);
    let started = Instant::now();
    let (s, body) = post_config(&app, A2, &many).await;
    let took = started.elapsed();
    assert!(s == 200 || s == 400, "{s} {body}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    report.push(format!(
        "60 proxies × [\\p{{L}}\\p{{N}}]{{40}} → {s} in {took:?}"
    ));
    eprintln!("regex complexity:\n  {}", report.join("\n  "));
    assert_eq!(app.get("/health/live").await.status(), 200);
});

// ------------------------------------------------------------------------ HTTP framing limits

on_every_db!(header_counts_and_sizes_are_refused_with_4xx, |app, db| {
    let auth = app.admin_authorization();
    let before = stored(&app.state().store).await;
    let mut report = Vec::new();
    // Up to hyper's 100 headers a request is served; beyond, refused.
    for (n, ok) in [(90, true), (101, false), (5000, false)] {
        let mut head = format!("GET {J}/multi_provider HTTP/1.1\r\nAuthorization: {auth}");
        for i in 0..n {
            head.push_str(&format!("\r\nX-Filler-{i}: {i}"));
        }
        let outcome = raw(&app, &head, b"").await;
        let s = status(&outcome);
        report.push(format!("{n} headers → {s}"));
        if ok {
            assert!(s == 200 || s == 404, "{n} headers: {outcome:?}");
        } else {
            assert!((400..500).contains(&s), "{n} headers: {outcome:?}");
        }
    }
    // One huge header, a huge request line, a huge query string.
    for (what, head) in [
        (
            "a 1 MiB header",
            format!(
                "GET /health/live HTTP/1.1\r\nX-Big: {}",
                "a".repeat(1 << 20)
            ),
        ),
        (
            "a 70 KB path",
            format!("GET /{} HTTP/1.1", "a".repeat(70_000)),
        ),
        (
            "a 60 KB to",
            format!(
                "GET /v1/accounts/{A1}/voice-route?to={} HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}",
                "9".repeat(60_000)
            ),
        ),
        (
            "a 100 KB Authorization",
            format!(
                "GET {J}/multi_provider HTTP/1.1\r\nAuthorization: Basic {}",
                "A".repeat(100_000)
            ),
        ),
    ] {
        let started = Instant::now();
        let outcome = raw(&app, &head, b"").await;
        let s = status(&outcome);
        report.push(format!("{what} → {s} in {:?}", started.elapsed()));
        assert!((400..500).contains(&s), "{what}: {outcome:?}");
    }
    // Below hyper's ~400 KiB head buffer a big header is simply served.
    let outcome = raw(
        &app,
        &format!(
            "GET /health/live HTTP/1.1\r\nX-Big: {}",
            "a".repeat(300 * 1024)
        ),
        b"",
    )
    .await;
    report.push(format!("a 300 KiB header → {}", status(&outcome)));
    assert_eq!(status(&outcome), 200, "{outcome:?}");
    eprintln!("HTTP framing limits: {}", report.join(", "));
    assert_eq!(stored(&app.state().store).await, before);
    assert_eq!(app.get("/health/live").await.status(), 200);
});

// ------------------------------------------------------------------------ destinations

on_every_db!(long_or_malformed_destinations_are_400, |app, db| {
    let voice_config = include_str!("../fixtures/voice.json");
    assert_eq!(post_config(&app, A1, voice_config).await.0, 200);
    // A number: 1 to 64 characters after an optional `+`.
    let number64 = format!("+{}", "1".repeat(64));
    let cases: Vec<(String, u16)> = vec![
        (number64.clone(), 200),
        (format!("{number64}1"), 400),
        ("1".repeat(64), 200),
        ("1".repeat(65), 400),
        // 2,048 bytes in all is the longest `to` (a long user part; hosts stop at 253).
        (format!("sip:{}@uri1.com", "b".repeat(2048 - 13)), 200),
        (format!("sip:{}@uri1.com", "b".repeat(2049 - 13)), 400),
        (format!("sip:bob@{}com", "a.".repeat(125)), 200),
        (format!("sip:bob@{}com", "a.".repeat(126)), 400),
        ("9".repeat(60_000), 400),
        (format!("sip:{}", "@".repeat(3000)), 400),
        ("sip:bob@uri1.com\r\nVia: SIP/2.0/UDP evil".into(), 400),
        ("sip:bob@uri1.com\u{0}".into(), 400),
        ("+1555\u{7f}".into(), 400),
        ("sip:bob@[::1".into(), 400),
        ("sip:bob@[::1]:99999".into(), 400),
        ("sip:bob@".into(), 400),
        ("tel:".into(), 400),
        ("client:alice".into(), 400),
        (String::new(), 400),
        ("\u{202e}15551234".into(), 400),
        ("sip:bob@ürì.com".into(), 400),
        ("+1 555 1234".into(), 400),
    ];
    let mut slowest = Duration::ZERO;
    for (to, want) in &cases {
        let (s, body, took) = voice(&app, A1, to).await;
        slowest = slowest.max(took);
        assert_eq!(s, *want, "to={:?}: {body}", &to[..to.len().min(80)]);
        if *want == 400 {
            assert_eq!(body["errors"][0]["parameter"], "to", "{body}");
        }
    }
    // Bytes that are not valid percent-encoded UTF-8, written raw into the query.
    for query in [
        "to=%FF",
        "to=%C3%28",
        "to=%",
        "to=%4",
        "to=%zz",
        "to=1&to=2",
        "",
        "x=1",
    ] {
        let outcome = raw(
            &app,
            &format!(
                "GET /v1/accounts/{A1}/voice-route?{query} HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}"
            ),
            b"",
        )
        .await;
        assert_eq!(status(&outcome), 400, "{query}: {outcome:?}");
    }
    // POST: a 200 KB destination, 5,000 supplied headers, a header value with CR LF.
    let post = |body: Value| {
        let app = &app;
        async move {
            let started = Instant::now();
            let r = app
                .client
                .post(app.url(&format!("/v1/accounts/{A1}/voice-route")))
                .bearer_auth(ENGINE_TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), started.elapsed())
        }
    };
    let many: serde_json::Map<String, Value> =
        (0..5000).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    for (body, want) in [
        (json!({"to": "9".repeat(200_000)}), 400),
        (json!({"to": "sip:bob@uri1.com", "headers": many}), 200),
        (
            json!({"to": "sip:bob@uri1.com", "headers": {"To": "a\r\nVia: x"}}),
            400,
        ),
        (json!({"to": "sip:bob@uri1.com", "headers": {"To": 1}}), 400),
        (json!({"to": 15551234}), 400),
        (json!({"to": "+1", "extra": true}), 400),
        (json!([]), 400),
    ] {
        let (s, took) = post(body).await;
        slowest = slowest.max(took);
        assert_eq!(s, want);
    }
    eprintln!(
        "{} destinations and 7 POST bodies probed; slowest answer {slowest:?}",
        cases.len() + 8
    );
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
});

// ------------------------------------------------------------------------ slow clients

// A client that sends a valid request a few bytes at a time is served when it is done (the
// server has no minimum rate), while others are served at once meanwhile.
on_every_db!(slow_clients_do_not_hold_up_others, |app, db| {
    let auth = app.admin_authorization();
    let body = form(&[
        ("ExtensionName", "multi_provider"),
        ("AccountSid", A1),
        ("ConfigurationData", SMS),
    ]);
    let request = format!(
        "POST {J} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The head quickly, the body 3 bytes every 50 ms (about 2 s in all).
    let (head, rest) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
    let (head, rest) = (head.to_owned(), rest.as_bytes().to_vec());
    let addr = app.addr;
    let slow_body = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        for chunk in rest.chunks(3) {
            s.write_all(chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        (answer, started.elapsed())
    });
    // 200 connections that never finish their headers (slowloris), kept alive by one more
    // header byte every 500 ms.
    let mut loris = Vec::new();
    for i in 0..200 {
        let addr = app.addr;
        loris.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(format!("GET /health/live HTTP/1.1\r\nX-{i}: ").as_bytes())
                .await
                .ok()?;
            let mut sent = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if s.write_all(b"a").await.is_err() {
                    return Some(sent);
                }
                sent += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile everyone else is served at once: admin reads, writes and lookups.
    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let started = Instant::now();
        let (s, _) = post_config(
            &app,
            A2,
            &format!(r#"{{"outbound-sms": [{{"destination_network_id": {i}}}]}}"#),
        )
        .await;
        assert_eq!(s, 200);
        let (s, _, _) = voice(&app, A2, "+15551234").await;
        assert_eq!(s, 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, took) = slow_body.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Connections that trickle their head are closed after HEADER_READ_TIMEOUT (10 s);
    // this test is shorter, so most may still be open: they only must not hurt others.
    let alive = loris.iter().filter(|l| !l.is_finished()).count();
    for l in &loris {
        l.abort();
    }
    eprintln!(
        "a body sent over {took:?} was answered 200; with 200 slowloris connections open, \
         30 write+lookup pairs took at most {slowest:?}; slowloris connections still open: {alive}"
    );
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
});

/// What a server should do with a client that opens a connection and never completes its
/// request head: close it after a bounded time (hyper's `header_read_timeout`, 30 s by
/// default, needs a timer: the server sets one, with `HEADER_READ_TIMEOUT` = 10 s).
#[tokio::test]
async fn a_silent_connection_is_closed_within_a_minute() {
    let db = crate::common::db::fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
    assert!(read.is_ok(), "the connection is still open after 20 s");
    eprintln!("closed after {:?}", started.elapsed());
    app.stop().await;
}
