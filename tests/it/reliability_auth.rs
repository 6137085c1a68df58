//! Reliability battery, authentication: every admin and lookup route × {no header, malformed
//! header, wrong Sid, wrong token, engine token, admin} answers the expected 401/403/2xx, and
//! the comparison of credentials takes a time that does not depend on where they are wrong.

use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::app::{AppOptions, TestApp, spawn_app, spawn_custom};
use crate::common::constants::{
    A_NONE, A1, A2, A3, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, J, RJ, RX, SMS, VOICE_EXAMPLE,
    X,
};
use crate::common::db::fresh_sqlite;
use crate::common::on_every_db;
use crate::common::raw::exchange;
use crate::common::reliability::Tally;
use crate::common::wire::{basic, form};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Admin,
    Lookup,
    Ops,
}

struct Route {
    method: &'static str,
    path: String,
    body: Option<(&'static str, String)>,
    kind: Kind,
    /// What the super-admin (and, on lookups, the engine) gets.
    granted: u16,
}

fn route(method: &'static str, path: String, kind: Kind, granted: u16) -> Route {
    Route {
        method,
        path,
        body: None,
        kind,
        granted,
    }
}

fn with_form(mut r: Route, pairs: &[(&str, &str)]) -> Route {
    r.body = Some((FORM, form(pairs)));
    r
}

/// Every route of the service. The one destructive call (DELETE) comes last in its group so
/// that the super-admin's success does not change what the other routes answer.
fn routes(ext: &str) -> Vec<Route> {
    let create = [
        ("ExtensionName", "multi_provider"),
        ("AccountSid", A2),
        ("ConfigurationData", SMS),
    ];
    let update = [("AccountSid", A1), ("Enabled", "true")];
    let mut voice = route(
        "POST",
        format!("/v1/accounts/{A1}/voice-route"),
        Kind::Lookup,
        200,
    );
    voice.body = Some((
        "application/json",
        r#"{"to": "sip:bob@uri1.com", "headers": {"To": "<sip:bob@uri1.com>"}}"#.to_owned(),
    ));
    vec![
        with_form(route("POST", J.into(), Kind::Admin, 200), &create),
        with_form(route("POST", RJ.into(), Kind::Admin, 200), &create),
        with_form(route("POST", X.into(), Kind::Admin, 200), &create),
        with_form(route("POST", RX.into(), Kind::Admin, 200), &create),
        route("GET", format!("{J}/{ext}"), Kind::Admin, 200),
        route("GET", format!("{RJ}/multi_provider"), Kind::Admin, 200),
        route(
            "GET",
            format!("{X}/{ext}?AccountSid={A1}"),
            Kind::Admin,
            200,
        ),
        route("GET", format!("{RX}/multi_provider"), Kind::Admin, 200),
        with_form(
            route("POST", format!("{J}/{ext}"), Kind::Admin, 200),
            &update,
        ),
        with_form(
            route("POST", format!("{RX}/multi_provider"), Kind::Admin, 200),
            &update,
        ),
        route("GET", format!("{J}/{ext}/Accounts.json"), Kind::Admin, 200),
        route(
            "GET",
            format!("{RX}/{ext}/Accounts?Page=0&PageSize=5"),
            Kind::Admin,
            200,
        ),
        // Not a method of the resource, and an unknown resource: still nothing before auth.
        route("PUT", format!("{J}/{ext}"), Kind::Admin, 405),
        route("GET", "/2012-04-24/Accounts.json".into(), Kind::Admin, 404),
        route("GET", "/restcomm/2012-04-24".into(), Kind::Admin, 404),
        route(
            "DELETE",
            format!("{J}/{ext}?AccountSid={A3}"),
            Kind::Admin,
            204,
        ),
        route(
            "GET",
            format!("/v1/accounts/{A1}/voice-route?to=+15551234"),
            Kind::Lookup,
            200,
        ),
        voice,
        route(
            "GET",
            format!("/v1/accounts/{A1}/sms-route"),
            Kind::Lookup,
            200,
        ),
        route("GET", "/health/live".into(), Kind::Ops, 200),
        route("GET", "/health/ready".into(), Kind::Ops, 200),
        route("GET", "/metrics".into(), Kind::Ops, 200),
    ]
}

/// Who the caller claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Malformed,
    WrongSid,
    WrongToken,
    Engine,
    Admin,
}

/// Raw `Authorization` header lines (several for one caller: each variant is tried).
fn credentials(who: Who) -> Vec<Vec<Vec<u8>>> {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let line = |v: String| v.into_bytes();
    match who {
        Who::Nobody => vec![vec![]],
        Who::Malformed => vec![
            vec![line("Basic !!!notbase64".into())],
            vec![line(format!("Basic {}", b64(b"nocolon")))],
            vec![line(format!("Basic {}", b64(b"\xff\xfe:\xff")))],
            vec![line("Basic".into())],
            vec![line("Basic ".into())],
            vec![line("Bearer".into())],
            vec![line("Bearer ".into())],
            vec![line(format!("Digest username=\"{ADMIN_SID}\""))],
            vec![line(format!("{ADMIN_SID}:{ADMIN_TOKEN}"))],
            // Base64 with the admin's credentials but a character of junk inside.
            vec![line(format!(
                "Basic {}",
                b64(format!("{ADMIN_SID}:{ADMIN_TOKEN}").as_bytes()).replacen('A', "*", 1)
            ))],
            // Valid credentials given twice, or alongside others: ambiguous, refused.
            vec![
                line(basic(ADMIN_SID, ADMIN_TOKEN)),
                line(basic(ADMIN_SID, ADMIN_TOKEN)),
            ],
            vec![
                line(format!("Bearer {ENGINE_TOKEN}")),
                line(basic(ADMIN_SID, ADMIN_TOKEN)),
            ],
            // Bytes that are not UTF-8 in the header value (obs-text).
            vec![b"Basic \xe9\xe9\xe9".to_vec()],
            vec![[b"Bearer ".as_slice(), ENGINE_TOKEN.as_bytes(), b"\xff"].concat()],
        ],
        Who::WrongSid => vec![
            vec![line(basic(A_NONE, ADMIN_TOKEN))],
            vec![line(basic(&ADMIN_SID.to_lowercase(), ADMIN_TOKEN))],
            vec![line(basic("", ADMIN_TOKEN))],
            vec![line(basic(&format!("{ADMIN_SID} "), ADMIN_TOKEN))],
        ],
        Who::WrongToken => vec![
            vec![line(basic(ADMIN_SID, "wrong"))],
            vec![line(basic(ADMIN_SID, ""))],
            vec![line(basic(ADMIN_SID, &ADMIN_TOKEN[1..]))],
            vec![line(basic(ADMIN_SID, &format!("{ADMIN_TOKEN}x")))],
            vec![line(basic(ADMIN_SID, &ADMIN_TOKEN.to_uppercase()))],
            // The engine token is not the admin's password, nor the admin's token a bearer.
            vec![line(basic(ADMIN_SID, ENGINE_TOKEN))],
            vec![line(format!("Bearer {ADMIN_TOKEN}"))],
            vec![line(format!("Bearer {}x", ENGINE_TOKEN))],
            vec![line(format!("Bearer {}", &ENGINE_TOKEN[1..]))],
        ],
        Who::Engine => vec![
            vec![line(format!("Bearer {ENGINE_TOKEN}"))],
            vec![line(format!("bearer   {ENGINE_TOKEN}  "))],
        ],
        Who::Admin => vec![
            vec![line(basic(ADMIN_SID, ADMIN_TOKEN))],
            vec![line(
                basic(ADMIN_SID, ADMIN_TOKEN).replacen("Basic", "BASIC", 1),
            )],
        ],
    }
}

fn request(app: &TestApp, route: &Route, authorization: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        route.method, route.path, app.addr
    )
    .into_bytes();
    for value in authorization {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let body = route.body.as_ref().map_or("", |(_, b)| b.as_str());
    if let Some((content_type, _)) = &route.body {
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

/// The status the matrix expects for `who` on `route`.
fn expected(route: &Route, who: Who, engine_configured: bool) -> u16 {
    match (route.kind, who) {
        (Kind::Ops, _) => 200,
        (_, Who::Admin) => route.granted,
        (Kind::Admin, Who::Engine) if engine_configured => 403,
        (Kind::Lookup, Who::Engine) if engine_configured => route.granted,
        _ => 401,
    }
}

/// The global configuration (SMS), A1 and A3 (the voice example): the extension Sid.
async fn setup(app: &TestApp) -> String {
    let global = app.configure(None, SMS).await;
    for account in [A1, A3] {
        app.configure(Some(account), VOICE_EXAMPLE).await;
    }
    global["sid"].as_str().unwrap().to_owned()
}

/// Runs the whole matrix on `app`; returns the tally of (who, status).
async fn matrix(app: &TestApp, engine_configured: bool) -> Tally {
    let ext = setup(app).await;
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let whos = [
        Who::Nobody,
        Who::Malformed,
        Who::WrongSid,
        Who::WrongToken,
        Who::Engine,
        Who::Admin,
    ];
    for route in routes(&ext) {
        for who in whos {
            for (i, authorization) in credentials(who).iter().enumerate() {
                // The admin's success on a DELETE can only happen once.
                if who == Who::Admin && route.method == "DELETE" && i > 0 {
                    continue;
                }
                let outcome = exchange(
                    app.addr,
                    request(app, &route, authorization),
                    Duration::from_secs(20),
                )
                .await;
                let want = expected(&route, who, engine_configured);
                let got = outcome.status();
                let caller = if route.kind == Kind::Ops {
                    "ops (any caller)".to_owned()
                } else {
                    format!("{:?} {who:?}", route.kind)
                };
                tally.add(format!("{caller}->{}", got.unwrap_or(0)));
                let shown = || {
                    format!(
                        "{} {} as {who:?} #{i}: expected {want}, got {outcome:?}",
                        route.method, route.path
                    )
                };
                if got != Some(want) {
                    failures.push(shown());
                    continue;
                }
                if want == 401
                    && outcome.header("www-authenticate") != Some("Basic realm=\"Restcomm realm\"")
                {
                    failures.push(format!("no Basic challenge: {}", shown()));
                }
                let body = outcome.body_text();
                if body.contains(ADMIN_TOKEN) || body.contains(ENGINE_TOKEN) {
                    failures.push(format!("a token is echoed: {}", shown()));
                }
                // Error answers keep the route's format (XML on the XML admin routes).
                if want >= 400 && route.kind == Kind::Admin {
                    let xml = !route.path.contains(".json");
                    let content_type = outcome.header("content-type").unwrap_or_default();
                    let ok = if xml {
                        content_type.starts_with("application/xml")
                            && body.contains("<RestcommResponse>")
                    } else {
                        content_type.starts_with("application/json")
                            && serde_json::from_str::<serde_json::Value>(&body)
                                .is_ok_and(|v| v["status"] == want)
                    };
                    if !ok {
                        failures.push(format!("error body format: {}", shown()));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests answered wrongly:\n{}",
        failures.len(),
        tally.total(),
        failures.join("\n")
    );
    tally
}

on_every_db!(every_route_times_every_caller, |app, db| {
    let started = Instant::now();
    let tally = matrix(&app, true).await;
    eprintln!(
        "auth matrix on {}: {} requests in {:?}: {tally}",
        db.kind,
        tally.total(),
        started.elapsed()
    );
    // Nothing that was refused changed anything: only the admin's writes are stored.
    let list: serde_json::Value = app
        .get(&format!("{J}/multi_provider/Accounts.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["total"], 2,
        "A1 and A2 (A3 deleted by the admin): {list}"
    );
    app.stop().await;
});

on_every_db!(
    without_an_engine_token_the_bearer_is_refused_everywhere,
    |db| {
        let app = spawn_app(&db.url, AppOptions::without_engine_token()).await;
        let tally = matrix(&app, false).await;
        assert_eq!(tally.count("Admin Engine->403"), 0, "{tally}");
        assert_eq!(tally.count("Lookup Engine->200"), 0, "{tally}");
        app.stop().await;
    }
);

/// Median duration of each credential class, over `rounds` interleaved rounds.
async fn time_classes(
    client: &reqwest::Client,
    url: &str,
    classes: &[(&str, String)],
    rounds: usize,
) -> Vec<(String, Duration)> {
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); classes.len()];
    for round in 0..rounds {
        // Rotate the order so that no class is always first after a pause.
        for k in 0..classes.len() {
            let i = (k + round) % classes.len();
            let started = Instant::now();
            let response = client
                .get(url)
                .header("authorization", &classes[i].1)
                .send()
                .await
                .expect("request");
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            samples[i].push(started.elapsed());
            assert_eq!(status, 401, "{}", classes[i].0);
        }
    }
    classes
        .iter()
        .zip(samples)
        .map(|((name, _), mut s)| {
            s.sort();
            (name.to_string(), s[s.len() / 2])
        })
        .collect()
}

/// The length of the admin and engine tokens of the timing tests: with 48 KiB tokens the
/// comparison itself costs far more than the noise of a loopback request.
const LONG: usize = 48 * 1024;

/// `s` with the byte at `at` changed.
fn flip(s: &str, at: usize) -> String {
    let mut b = s.as_bytes().to_vec();
    b[at] = if b[at] == b'z' || b[at] == b'Z' {
        b'0'
    } else {
        b'9'
    };
    String::from_utf8(b).unwrap()
}

/// A server on SQLite whose admin token (`a`…`z` repeated) and engine token (`A`…`Z`) are
/// `LONG` bytes long: the server and the two tokens.
async fn long_tokens() -> (TestApp, crate::common::db::TestDb, String, String) {
    let db = fresh_sqlite();
    let token: String = (0..LONG).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let engine: String = (0..LONG).map(|i| (b'A' + (i % 26) as u8) as char).collect();
    let (t, e) = (token.clone(), engine.clone());
    let app = spawn_custom(&db.url, move |s| {
        s.admin_token = t;
        s.engine_token = Some(e);
    })
    .await;
    (app, db, token, engine)
}

/// Asserts that the refused `classes` of credentials take the same time (a slowest/fastest
/// ratio of their medians under 1.4). A real leak shows in every measurement; a burst of load
/// on a shared machine does not: up to three measurements, the first one under the bound passes.
async fn assert_same_time(app: &TestApp, classes: &[(&str, String)]) {
    let url = app.url(&format!("/v1/accounts/{A1}/sms-route"));
    let client = reqwest::Client::new();
    // Warm-up: connections, allocator, caches.
    time_classes(&client, &url, classes, 5).await;
    let rounds = 60;
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let medians = time_classes(&client, &url, classes, rounds).await;
        let fastest = medians.iter().map(|(_, d)| *d).min().unwrap();
        let slowest = medians.iter().map(|(_, d)| *d).max().unwrap();
        let ratio = slowest.as_secs_f64() / fastest.as_secs_f64();
        eprintln!(
            "median per class over {rounds} rounds: {}; slowest/fastest = {ratio:.3}",
            medians
                .iter()
                .map(|(n, d)| format!("{n}: {d:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        attempts.push((ratio, medians));
        if ratio < 1.4 {
            break;
        }
    }
    assert!(
        attempts.iter().any(|(ratio, _)| *ratio < 1.4),
        "the time of a refused credential depends on where it is wrong: {attempts:?}"
    );
}

// Each credential check takes a time that depends only on the length of the *expected*
// secret: not on where a wrong token differs, not on whether the Sid was already wrong, not on
// the length of the given token. A comparison that stops early (a `&&` after the Sid, an early
// return on a length mismatch) shows up as a class several times faster than the others.
// A byte-wise memcmp that stops at the first difference is a few microseconds here and is not
// measurable over HTTP; `subtle` and the unit test `ct_eq_matches_plain_equality` cover that.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_basic_credentials_take_the_same_time_wherever_they_are_wrong() {
    let (app, _db, token, _) = long_tokens().await;
    let classes = [
        ("token wrong at byte 0", basic(ADMIN_SID, &flip(&token, 0))),
        (
            "token wrong at the last byte",
            basic(ADMIN_SID, &flip(&token, LONG - 1)),
        ),
        ("Sid wrong, token right", basic(A_NONE, &token)),
        (
            "token one byte longer",
            basic(ADMIN_SID, &format!("{token}a")),
        ),
        (
            "token one byte shorter",
            basic(ADMIN_SID, &token[..LONG - 1]),
        ),
    ];
    assert_same_time(&app, &classes).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bearer_tokens_take_the_same_time_wherever_they_are_wrong() {
    let (app, _db, _, engine) = long_tokens().await;
    let classes = [
        (
            "bearer wrong at byte 0",
            format!("Bearer {}", flip(&engine, 0)),
        ),
        (
            "bearer wrong at the last byte",
            format!("Bearer {}", flip(&engine, LONG - 1)),
        ),
        ("bearer one byte longer", format!("Bearer {engine}A")),
        (
            "bearer one byte shorter",
            format!("Bearer {}", &engine[..LONG - 1]),
        ),
    ];
    assert_same_time(&app, &classes).await;
    app.stop().await;
}
