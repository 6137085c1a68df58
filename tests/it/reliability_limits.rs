//! Reliability battery, limits: body size, configuration size, proxy and header counts, regex
//! size and complexity, HTTP header counts and sizes, long or malformed destinations, and slow
//! clients. Each limit is probed on both sides of its boundary; beyond it the answer is a 4xx
//! (never a 5xx, never a hang), and the server keeps serving everyone else.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, A2, BODY_LIMIT, ENGINE_TOKEN, FORM, J, SMS, VOICE_EXAMPLE};
use crate::common::db::fresh_sqlite;
use crate::common::on_every_db;
use crate::common::reliability::stored;
use crate::common::wire::{encode, error_pointers, form};

/// POST of `config` for `account`: the status and the answer (`Null` when not JSON).
async fn post_config(app: &TestApp, account: &str, config: &str) -> (u16, Value) {
    let r = app.write(Some(account), Some(config), None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `GET …/voice-route?to=…`: the status, the answer, and how long it took.
async fn voice(app: &TestApp, account: &str, to: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = app.voice_route(account, to).await;
    (status, body, started.elapsed())
}

/// The server is still fine.
async fn assert_alive(app: &TestApp) {
    assert_eq!(app.get("/health/live").await.status(), 200);
}

// ------------------------------------------------------------------------ body size

on_every_db!(body_size_boundary_on_both_framings, |app, db| {
    let auth = app.admin_authorization();
    let prefix = format!("ExtensionName=multi_provider&AccountSid={A2}&ConfigurationData=");
    for (size, want) in [
        (BODY_LIMIT, 400),
        (BODY_LIMIT + 1, 413),
        (4 * BODY_LIMIT, 413),
    ] {
        // Valid JSON padded with spaces (%20 is 3 bytes of body each).
        let mut body = format!("{prefix}{}", encode(SMS)).into_bytes();
        body.resize(size, b'+');
        let before = stored(app.state().configs.store()).await;
        let declared = app
            .raw(
                &format!(
                    "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nContent-Length: {size}"
                ),
                &body,
            )
            .await;
        assert_eq!(declared.expect_status(), want, "{size} bytes: {declared:?}");
        // Chunked, in 8 KiB chunks: the limit holds without a declared length.
        let mut chunked = Vec::new();
        for chunk in body.chunks(8192) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let outcome = app
            .raw(
                &format!(
                    "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked"
                ),
                &chunked,
            )
            .await;
        assert_eq!(
            outcome.expect_status(),
            want,
            "chunked {size} bytes: {outcome:?}"
        );
        // At the limit the body is read and the (too large) configuration refused: 400.
        assert_eq!(stored(app.state().configs.store()).await, before);
    }
});

on_every_db!(the_lookup_api_has_the_same_body_limit, |app, db| {
    let big = format!(
        r#"{{"to": "+1", "headers": {{"X": "{}"}}}}"#,
        "a".repeat(BODY_LIMIT)
    );
    let outcome = app
        .raw(
            &format!(
                "POST /v1/accounts/{A1}/voice-route HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}",
                big.len()
            ),
            big.as_bytes(),
        )
        .await;
    assert_eq!(outcome.expect_status(), 413, "{outcome:?}");
});

on_every_db!(a_content_length_no_one_could_send_is_4xx, |app, db| {
    let outcome = app
        .raw(
            &format!(
                "POST {J} HTTP/1.1\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: 99999999999999999999",
                app.admin_authorization()
            ),
            b"",
        )
        .await;
    assert!((400..500).contains(&outcome.expect_status()), "{outcome:?}");
});

// ------------------------------------------------------------------------ configuration

/// `SMS` padded with JSON whitespace to exactly `len` bytes.
fn padded(len: usize) -> String {
    let mut c = SMS.to_owned();
    c.push_str(&" ".repeat(len - SMS.len()));
    c
}

on_every_db!(a_configuration_of_65536_bytes_is_the_largest, |app, db| {
    let (s, body) = post_config(&app, A1, &padded(65_536)).await;
    assert_eq!(s, 200, "exactly 65,536 bytes is allowed: {body}");
    assert_eq!(body["configuration"].as_str().unwrap().len(), 65_536);
    let (s, body) = post_config(&app, A1, &padded(65_537)).await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(error_pointers(&body), [""], "{body}");
    assert!(body.to_string().contains("65536"), "{body}");
});

on_every_db!(one_to_a_hundred_proxies, |app, db| {
    let proxies = |n: usize| {
        json!({"outbound-voice": [{"proxy": (0..n).map(|i| json!({"uri": format!("p{i}.example.com")})).collect::<Vec<_>>()}]})
            .to_string()
    };
    assert_eq!(post_config(&app, A1, &proxies(100)).await.0, 200);
    let (s, body) = post_config(&app, A1, &proxies(101)).await;
    assert_eq!(s, 400);
    assert_eq!(error_pointers(&body), ["/outbound-voice/0/proxy"], "{body}");
    let (s, body) = post_config(&app, A1, &proxies(0)).await;
    assert_eq!(
        (s, error_pointers(&body)),
        (400, vec!["/outbound-voice/0/proxy".to_owned()])
    );
});

on_every_db!(at_most_fifty_headers_per_proxy, |app, db| {
    let headers = |n: usize| {
        json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "headers":
            (0..n).map(|i| json!({"headerName": format!("X-H{i}"), "key": "k", "value": "v"})).collect::<Vec<_>>()}]}]})
            .to_string()
    };
    assert_eq!(post_config(&app, A1, &headers(50)).await.0, 200);
    let (s, body) = post_config(&app, A1, &headers(51)).await;
    assert_eq!(s, 400);
    assert_eq!(
        error_pointers(&body),
        ["/outbound-voice/0/proxy/0/headers"],
        "{body}"
    );
});

on_every_db!(
    credentials_of_256_bytes_at_most_never_quoted_back,
    |app, db| {
        let creds = |n: usize| {
            json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "username": "u", "password": "ß".repeat(n / 2)}]}]})
            .to_string()
        };
        assert_eq!(post_config(&app, A1, &creds(256)).await.0, 200);
        let (s, body) = post_config(&app, A1, &creds(258)).await;
        assert_eq!(s, 400);
        assert!(!body.to_string().contains("ßßßß"), "{body}");
    }
);

on_every_db!(deep_nesting_is_an_error_not_a_stack_overflow, |app, db| {
    let started = Instant::now();
    for deep in [
        format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
        format!("{}{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)),
        "[".repeat(60_000),
    ] {
        let (s, body) = post_config(&app, A1, &deep).await;
        assert_eq!(s, 400, "{body}");
    }
    eprintln!("deep nesting probed in {:?}", started.elapsed());
    assert_alive(&app).await;
});

// ------------------------------------------------------------------------ regular expressions

fn with_match(pattern: &str) -> String {
    json!({"outbound-voice": [{"proxy": [{"uri": "p.example.com", "match": pattern}]}]}).to_string()
}

on_every_db!(a_match_of_1024_bytes_is_the_longest, |app, db| {
    assert_eq!(
        post_config(&app, A1, &with_match(&"a".repeat(1024)))
            .await
            .0,
        200
    );
    let (s, body) = post_config(&app, A1, &with_match(&"a".repeat(1025))).await;
    assert_eq!(
        (s, error_pointers(&body)),
        (400, vec!["/outbound-voice/0/proxy/0/match".to_owned()])
    );
});

on_every_db!(expensive_expressions_are_answered_quickly, |app, db| {
    // Short enough but expensive to compile, or pathological for backtracking engines: each
    // is answered quickly, 200 or 400, never 5xx.
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
                error_pointers(&body),
                ["/outbound-voice/0/proxy/0/match"],
                "{pattern}: {body}"
            );
        }
    }
    eprintln!("regex complexity:\n  {}", report.join("\n  "));
    assert_alive(&app).await;
});

on_every_db!(many_large_expressions_are_bounded_as_a_set, |app, db| {
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
    eprintln!("60 proxies × [\\p{{L}}\\p{{N}}]{{40}} → {s} in {took:?}");
    assert_alive(&app).await;
});

// ------------------------------------------------------------------------ HTTP framing limits

on_every_db!(more_than_100_headers_are_refused, |app, db| {
    let auth = app.admin_authorization();
    let before = stored(app.state().configs.store()).await;
    // Up to hyper's 100 headers a request is served; beyond, refused.
    for (n, ok) in [(90, true), (101, false), (5000, false)] {
        let mut head = format!("GET {J}/multi_provider HTTP/1.1\r\nAuthorization: {auth}");
        for i in 0..n {
            head.push_str(&format!("\r\nX-Filler-{i}: {i}"));
        }
        let outcome = app.raw(&head, b"").await;
        let s = outcome.expect_status();
        eprintln!("{n} headers → {s}");
        if ok {
            assert!(s == 200 || s == 404, "{n} headers: {outcome:?}");
        } else {
            assert!((400..500).contains(&s), "{n} headers: {outcome:?}");
        }
    }
    assert_eq!(stored(app.state().configs.store()).await, before);
    assert_alive(&app).await;
});

on_every_db!(
    a_huge_header_request_line_query_or_authorization_is_4xx,
    |app, db| {
        let before = stored(app.state().configs.store()).await;
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
            let outcome = app.raw(&head, b"").await;
            let s = outcome.expect_status();
            eprintln!("{what} → {s} in {:?}", started.elapsed());
            assert!((400..500).contains(&s), "{what}: {outcome:?}");
        }
        assert_eq!(stored(app.state().configs.store()).await, before);
        assert_alive(&app).await;
    }
);

on_every_db!(a_300_kib_header_is_served, |app, db| {
    // Below hyper's ~400 KiB head buffer a big header is simply served.
    let outcome = app
        .raw(
            &format!(
                "GET /health/live HTTP/1.1\r\nX-Big: {}",
                "a".repeat(300 * 1024)
            ),
            b"",
        )
        .await;
    assert_eq!(outcome.expect_status(), 200, "{outcome:?}");
});

// ------------------------------------------------------------------------ parameter floods

/// The longest request target hyper takes (`MAX_URI_LEN`); a longer one is answered 414.
const MAX_TARGET: usize = u16::MAX as usize - 1;
/// How long a refusal of a flood may take. Parsing is linear in the input (ARCHITECTURE.md):
/// even at the size limits this is a few milliseconds.
const FLOOD_BOUND: Duration = Duration::from_secs(1);

/// The shapes of a flood: names that all differ, and the same name again and again with and
/// without a value (in the order in which a quadratic parser takes longer and longer).
const FLOODS: [(&str, Piece); 3] = [
    ("a0&a1&…", |i| format!("a{i}")),
    ("a=1&a=1&…", |_| "a=1".to_owned()),
    ("a&a&…", |_| "a".to_owned()),
];

/// The `i`-th name (and value) of a flood.
type Piece = fn(usize) -> String;

/// `piece(0)&piece(1)&…`, exactly `len` bytes long (the last piece padded with `x`).
fn flood(len: usize, piece: Piece) -> String {
    let mut out = String::with_capacity(len);
    for i in 0.. {
        let next = piece(i);
        if out.len() + 1 + next.len() > len {
            break;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&next);
    }
    while out.len() < len {
        out.push('x');
    }
    out
}

/// A request of a flood test: what it is, its head and body, the statuses it may get.
struct Flood {
    what: String,
    head: String,
    body: Vec<u8>,
    expected: std::ops::RangeInclusive<u16>,
}

/// Sends each request in turn and asserts that every answer has its expected status within
/// `FLOOD_BOUND`, and that nothing was written or broken. The measurements are printed, and
/// listed in the failure. The first request that fails stops the sending: against a quadratic
/// parser each of the next ones would take minutes (measured in a debug build: 13 to 390 s for
/// a 256 KiB body).
async fn assert_floods_answered_at_once(app: &TestApp, requests: Vec<Flood>) {
    let before = stored(app.state().configs.store()).await;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for flood in &requests {
        if !failures.is_empty() {
            report.push(format!("{}: not sent", flood.what));
            continue;
        }
        let started = Instant::now();
        let outcome = app
            .raw_within(&flood.head, &flood.body, Duration::from_secs(60))
            .await;
        let took = started.elapsed();
        let status = outcome.status();
        report.push(format!("{} → {status:?} in {took:?}", flood.what));
        if !status.is_some_and(|s| flood.expected.contains(&s)) {
            failures.push(format!(
                "{}: {status:?}, expected {:?}",
                flood.what, flood.expected
            ));
        }
        if took >= FLOOD_BOUND {
            failures.push(format!(
                "{}: {took:?}, not under {FLOOD_BOUND:?}",
                flood.what
            ));
        }
    }
    eprintln!("parameter floods:\n  {}", report.join("\n  "));
    assert!(
        failures.is_empty(),
        "{}\nmeasured:\n  {}",
        failures.join("\n"),
        report.join("\n  ")
    );
    assert_eq!(stored(app.state().configs.store()).await, before);
    assert_alive(app).await;
}

/// A form body of `BODY_LIMIT` bytes of each shape, POSTed to `path`: each a 400.
fn form_floods(app: &TestApp, path: &str) -> Vec<Flood> {
    let auth = app.admin_authorization();
    FLOODS
        .iter()
        .map(|(shape, piece)| {
            let body = flood(BODY_LIMIT, *piece);
            Flood {
                what: format!("POST {path}, 256 KiB body {shape}"),
                head: format!(
                    "POST {path} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nContent-Length: {}",
                    body.len()
                ),
                body: body.into_bytes(),
                expected: 400..=400,
            }
        })
        .collect()
}

/// A GET of `path?{query}` with `authorization`, the status expected.
fn get_flood(
    what: String,
    target: String,
    authorization: &str,
    expected: std::ops::RangeInclusive<u16>,
) -> Flood {
    Flood {
        what,
        head: format!("GET {target} HTTP/1.1\r\nAuthorization: {authorization}"),
        body: Vec::new(),
        expected,
    }
}

/// GETs of `path` with a query of each shape then `tail`, the whole request target
/// `MAX_TARGET` bytes long (each a 400), and one a byte longer than hyper takes (a 414).
fn query_floods(path: &str, tail: &str, authorization: &str) -> Vec<Flood> {
    let query_len = MAX_TARGET - path.len() - 1 - tail.len();
    let mut requests: Vec<Flood> = FLOODS
        .iter()
        .map(|(shape, piece)| {
            get_flood(
                format!("GET {path}?{shape}{tail}, a {MAX_TARGET}-byte target"),
                format!("{path}?{}{tail}", flood(query_len, *piece)),
                authorization,
                400..=400,
            )
        })
        .collect();
    requests.push(get_flood(
        format!("GET {path}?a&a&…{tail}, a byte longer"),
        format!("{path}?{}{tail}", flood(query_len + 1, FLOODS[2].1)),
        authorization,
        414..=414,
    ));
    requests
}

// Floods of parameters at the size limits, in form bodies and query strings: answered (a 4xx)
// at once, whatever the parameters (SQLite only: nothing here depends on the database).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_floods_in_a_collection_post_are_refused_at_once() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let requests = form_floods(&app, J);
    assert_floods_answered_at_once(&app, requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_floods_in_an_extension_post_are_refused_at_once() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let sid = app.configure(None, SMS).await["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let requests = form_floods(&app, &format!("{J}/{sid}"));
    assert_floods_answered_at_once(&app, requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_floods_in_an_admin_query_are_refused_at_once() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(None, SMS).await;
    // Unknown query parameters are ignored (docs/api.md), given twice they are refused; an
    // AccountSid that is none ends each query, so that the distinct names are a 400 too.
    let requests = query_floods(
        &format!("{J}/multi_provider"),
        "&AccountSid=nope",
        &app.admin_authorization(),
    );
    assert_floods_answered_at_once(&app, requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_floods_in_a_lookup_query_are_answered_at_once() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let path = format!("/v1/accounts/{A1}/voice-route");
    let bearer = format!("Bearer {ENGINE_TOKEN}");
    // Unknown lookup parameters are ignored: after a valid `to`, a flood of them is a 200 (or
    // a 4xx, should they ever be refused), never a 5xx, at once.
    let valid_first = format!(
        "to=%2B15551234&{}",
        flood(MAX_TARGET - path.len() - 16, |_| "x".to_owned())
    );
    let mut requests = vec![get_flood(
        format!("GET {path}?to=%2B15551234&x&x&…, a {MAX_TARGET}-byte target"),
        format!("{path}?{valid_first}"),
        &bearer,
        200..=499,
    )];
    // `to` given twice, at the end, makes each shape a 400 once the whole query was read.
    requests.extend(query_floods(
        &path,
        "&to=%2B15551234&to=%2B15551234",
        &bearer,
    ));
    assert_floods_answered_at_once(&app, requests).await;
}

// ------------------------------------------------------------------------ destinations

/// Asserts that each `to` of `cases` gets its status (and a 400 names `to`) within 5 s.
async fn assert_destinations(app: &TestApp, cases: &[(String, u16)]) {
    let mut slowest = Duration::ZERO;
    for (to, want) in cases {
        let (s, body, took) = voice(app, A1, to).await;
        slowest = slowest.max(took);
        assert_eq!(s, *want, "to={:?}: {body}", &to[..to.len().min(80)]);
        if *want == 400 {
            assert_eq!(body["errors"][0]["parameter"], "to", "{body}");
        }
    }
    eprintln!(
        "{} destinations probed; slowest answer {slowest:?}",
        cases.len()
    );
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
}

on_every_db!(
    destination_lengths_on_both_sides_of_their_limits,
    |app, db| {
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        // A number: 1 to 64 characters after an optional `+`.
        let number64 = format!("+{}", "1".repeat(64));
        assert_destinations(
            &app,
            &[
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
            ],
        )
        .await;
    }
);

on_every_db!(malformed_destinations_are_400, |app, db| {
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let cases: Vec<(String, u16)> = [
        "sip:bob@uri1.com\r\nVia: SIP/2.0/UDP evil",
        "sip:bob@uri1.com\u{0}",
        "+1555\u{7f}",
        "sip:bob@[::1",
        "sip:bob@[::1]:99999",
        "sip:bob@",
        "tel:",
        "client:alice",
        "",
        "\u{202e}15551234",
        "sip:bob@ürì.com",
        "+1 555 1234",
    ]
    .into_iter()
    .map(|to| (to.to_owned(), 400))
    .collect();
    assert_destinations(&app, &cases).await;
});

on_every_db!(
    query_bytes_that_are_not_percent_encoded_utf8_are_400,
    |app, db| {
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        // Written raw into the query.
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
            let outcome = app
            .raw(
                &format!(
                    "GET /v1/accounts/{A1}/voice-route?{query} HTTP/1.1\r\nAuthorization: Bearer {ENGINE_TOKEN}"
                ),
                b"",
            )
            .await;
            assert_eq!(outcome.expect_status(), 400, "{query}: {outcome:?}");
        }
    }
);

on_every_db!(voice_post_bodies_at_their_limits, |app, db| {
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    // A 200 KB destination, 5,000 supplied headers, a header value with CR LF.
    let many: serde_json::Map<String, Value> =
        (0..5000).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let mut slowest = Duration::ZERO;
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
        let started = Instant::now();
        let (s, _) = app.voice_post(A1, &body).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(s, want);
    }
    eprintln!("7 POST bodies probed; slowest answer {slowest:?}");
    assert!(slowest < Duration::from_secs(5), "{slowest:?}");
});

// ------------------------------------------------------------------------ slow clients

/// Sends `request` on a new connection: its head at once, its body 3 bytes every 50 ms. The
/// answer and how long the body took.
fn trickle(
    addr: std::net::SocketAddr,
    request: String,
) -> tokio::task::JoinHandle<(String, Duration)> {
    let (head, rest) = request.split_at(request.find("\r\n\r\n").unwrap() + 4);
    let (head, rest) = (head.to_owned(), rest.as_bytes().to_vec());
    tokio::spawn(async move {
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
    })
}

/// `n` connections that never finish their headers (slowloris), kept alive by one more header
/// byte every 500 ms.
fn slowloris(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<Option<usize>>> {
    (0..n)
        .map(|i| {
            tokio::spawn(async move {
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
            })
        })
        .collect()
}

// A client that sends a valid request a few bytes at a time is served when it is done (the
// server has no minimum rate), while others are served at once meanwhile.
on_every_db!(slow_clients_do_not_hold_up_others, |app, db| {
    let body = form(&[
        ("ExtensionName", "multi_provider"),
        ("AccountSid", A1),
        ("ConfigurationData", SMS),
    ]);
    let request = format!(
        "POST {J} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        app.admin_authorization(),
        body.len()
    );
    // About 2 s for the body.
    let slow_body = trickle(app.addr, request);
    let loris = slowloris(app.addr, 200);
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
    let db = fresh_sqlite();
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
