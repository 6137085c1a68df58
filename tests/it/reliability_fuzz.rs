//! Reliability battery, hostile input over HTTP (the routing core's own fuzzing is in
//! `routing_props.rs`): arbitrary form bodies, query strings, paths, `Authorization` headers
//! and lookup queries against a real server, on each backend.
//!
//! Invariants, checked on every case:
//! - never a 5xx, never a dropped connection: every request gets a complete answer;
//! - an error answer has the error body of docs/api.md in the route's format;
//! - the status is the one the rules of docs/api.md predict (an oracle re-states them);
//! - nothing is stored unless the request was valid: after any non-2xx answer the store
//!   (every row and the revision counter) is exactly as before;
//! - after every case the in-memory cache answers exactly what the store holds.
//!
//! `FUZZ_CASES=n` sets the number of cases per property and backend (default 256).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use multiprovider::routing;
use multiprovider::sid::AccountSid;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{
    A_NONE, A1, A2, A3, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, J, SMS, VOICE_EXAMPLE, X,
};
use crate::common::db::TestDb;
use crate::common::on_every_db;
use crate::common::raw::{Outcome, exchange};
use crate::common::reliability::{Stored, Tally, cache_agrees, runtime, stored};
use crate::common::wire::{basic, encode, form};
const POST_PARAMETERS: [&str; 4] = [
    "ExtensionName",
    "Enabled",
    "ConfigurationData",
    "AccountSid",
];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    })
}

/// A server on `db` with a global configuration (SMS), A1 (the documentation's voice example)
/// and A2 (SMS); runs `property` on it and prints the status tally.
fn fuzz(
    db: TestDb,
    name: &str,
    property: impl Fn(&tokio::runtime::Runtime, &TestApp, &str, &Mutex<Tally>) -> TestRunner,
) {
    let rt = runtime();
    let app = rt.block_on(spawn_app(&db.url, AppOptions::default()));
    let ext = rt.block_on(seed(&app));
    let tally = Mutex::new(Tally::default());
    let started = Instant::now();
    let _ = property(&rt, &app, &ext, &tally);
    eprintln!(
        "{name} on {}: {} cases in {:?}, statuses {}",
        db.kind,
        cases(),
        started.elapsed(),
        tally.lock().unwrap()
    );
    rt.block_on(app.stop());
}

/// Runs `strategy` through `check`, each case inside `rt`; panics with the minimal failing
/// input.
fn run<S: Strategy>(
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> TestRunner
where
    S::Value: std::fmt::Debug,
{
    let mut runner = runner();
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
    runner
}

/// The global configuration (SMS), A1 (the voice example) and A2 (SMS): the extension Sid.
async fn seed(app: &TestApp) -> String {
    let global = app.configure(None, SMS).await;
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    app.configure(Some(A2), SMS).await;
    global["sid"].as_str().unwrap().to_owned()
}

// ------------------------------------------------------------------------ shared checks

/// The cache answers exactly what the store holds, for every account the fuzzing can touch.
async fn check_cache_matches_store(app: &TestApp) -> Result<Stored, TestCaseError> {
    let now = stored(app.state().configs.store()).await;
    let mut accounts: BTreeSet<String> = [A1, A2, A3, A_NONE].map(String::from).into();
    accounts.extend(now.accounts.keys().cloned());
    for account in accounts {
        cache_agrees(app.state(), &now, &account).map_err(TestCaseError::fail)?;
    }
    Ok(now)
}

/// No 5xx; an error carries the error body of docs/api.md in the route's format.
fn check_answer(path: &str, outcome: &Outcome) -> Result<u16, TestCaseError> {
    let Some(status) = outcome.status() else {
        return Err(TestCaseError::fail(format!(
            "no complete answer: {outcome:?}"
        )));
    };
    prop_assert!(status < 500, "{status} for {path}: {outcome:?}");
    // A HEAD answer has the headers of the GET and no body.
    if status >= 400 && !path.starts_with("HEAD ") {
        let content_type = outcome.header("content-type").unwrap_or_default();
        let body = outcome.body_text();
        if content_type.starts_with("application/json") {
            let v: Value = serde_json::from_str(&body).map_err(|e| {
                TestCaseError::fail(format!("error body is not JSON ({e}): {body}"))
            })?;
            prop_assert_eq!(&v["status"], &json!(status), "{}", body);
            prop_assert!(
                v["message"].is_string() && v["errors"].is_array(),
                "{}",
                body
            );
        } else if content_type.starts_with("application/xml") {
            prop_assert!(
                body.starts_with("<?xml") && body.contains("<RestcommResponse><Message>"),
                "{}",
                body
            );
        } else {
            // Only hyper's own refusals of unparseable requests come without our body.
            prop_assert!(body.is_empty(), "{status} with {content_type:?}: {body}");
        }
    }
    Ok(status)
}

fn request_bytes(method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + target.len() + body.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

async fn send(app: &TestApp, request: Vec<u8>) -> Outcome {
    exchange(app.addr, request, Duration::from_secs(20)).await
}

// ------------------------------------------------------------------------ strategies

fn valid_configs() -> Vec<String> {
    vec![
        SMS.to_owned(),
        r#"{"outbound-sms": [{"destination_network_id": 2147483647}]}"#.to_owned(),
        r#"{"outbound-sms":[{"destination_network_id":"0007"}]}"#.to_owned(),
        "{}".to_owned(),
        " \n\t{ } \r\n".to_owned(),
        VOICE_EXAMPLE.to_owned(),
        json!({"outbound-voice": [{"proxy": [{"uri": "sips:[2001:db8::1]:5061;transport=tls",
            "username": "ü-ser", "password": "p@ss w0rd ✓", "match": "^\\+1.*",
            "headers": [{"headerName": "Request-URI", "key": "tgrp", "value": "t1"}]}]}],
            "outbound-sms": [{"destination_network_id": 7}]})
        .to_string(),
    ]
}

fn invalid_configs() -> Vec<String> {
    let many_proxies: Vec<Value> = (0..101).map(|_| json!({"uri": "a.example.com"})).collect();
    vec![
        String::new(),
        "{".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        r#"{"outbound-sms": []}"#.to_owned(),
        r#"{"outbound-sms": [{"destination_network_id": "2147483648"}]}"#.to_owned(),
        r#"{"outbound-sms": [{"destination_network_id": -1}]}"#.to_owned(),
        r#"{"outbound-sms": [{"destination_network_id": "1"}], "outbound-sms": []}"#.to_owned(),
        r#"{"outbound-voice": [{"proxy": [{"uri": "uri.com", "match": "uri\.com"}]}]}"#.to_owned(),
        r#"{"outbound-voice": [{"proxy": [{"uri": "uri.com", "usename": "x"}]}]}"#.to_owned(),
        r#"{"outbound-voice": [{"proxy": [{"uri": "uri.com", "match": "(?=x)"}]}]}"#.to_owned(),
        json!({"outbound-voice": [{"proxy": [{"uri": "u.com", "headers": [
            {"headerName": "Via", "key": "a", "value": "b"}]}]}]})
        .to_string(),
        json!({"outbound-voice": [{"proxy": [{"uri": "u.com", "headers": [
            {"headerName": "X-A", "key": "a", "value": "b\r\nInjected: 1"}]}]}]})
        .to_string(),
        json!({"outbound-voice": [{"proxy": [{"uri": "u.com;a=b\r\nX: y"}]}]}).to_string(),
        json!({"outbound-voice": [{"proxy": [{"uri": "u.com", "match": "a".repeat(1025)}]}]})
            .to_string(),
        json!({"outbound-voice": [{"proxy": many_proxies}]}).to_string(),
        // One byte over the 65,536 allowed (padding is valid JSON whitespace).
        format!("{SMS}{}", " ".repeat(65_537 - SMS.len())),
        "{\"outbound-sms\": [{\"destination_network_id\": \"1\u{0}\"}]}".to_owned(),
    ]
}

const KEYS: [&str; 13] = [
    "outbound-voice",
    "outbound-sms",
    "proxy",
    "uri",
    "username",
    "password",
    "match",
    "headers",
    "headerName",
    "key",
    "value",
    "destination_network_id",
    "to",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(vec![
            "uri.com",
            "sip:bob@uri1.com",
            "+15551234",
            "Route",
            "1000",
            ".*"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        3 => select(KEYS.to_vec()).prop_map(str::to_owned),
                        1 => any::<String>()
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Valid configurations that differ from one write to the next (so that a write the cache
/// missed shows in its answers).
fn fresh_valid_config() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..=2_147_483_647).prop_map(|n| {
            json!({"outbound-sms": [{"destination_network_id": n}]}).to_string()
        }),
        ("[a-z]{1,10}", "[ -~]{0,20}", 0u32..1000).prop_map(|(host, password, n)| {
            json!({"outbound-voice": [{"proxy": [
                {"uri": format!("{host}.example.com"), "password": password, "match": "uri1?\\.com"},
                {"uri": format!("sip:{host}.example.net:5060"), "username": "u"}]}],
                "outbound-sms": [{"destination_network_id": format!("{n:04}")}]})
            .to_string()
        }),
    ]
}

fn config_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(valid_configs()),
        2 => fresh_valid_config(),
        3 => select(invalid_configs()),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
    ]
}

fn account_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![A1, A2, A3, A_NONE]).prop_map(str::to_owned),
        1 => Just(A3.to_uppercase()),
        1 => Just(format!("ac{}", &A1[2..].to_uppercase())),
        1 => select(vec!["", "AC123", "ACzz23456789abcdef0123456789abcdef", "AC0123456789abcdef0123456789abcdef0"])
            .prop_map(str::to_owned),
        1 => "AC[0-9a-fA-F]{32}",
        1 => any::<String>(),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(POST_PARAMETERS.to_vec()).prop_map(str::to_owned),
        1 => select(vec!["extensionname", "Enable", "accountSid", "", "ConfigurationData ", "Sid", "Page"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn value_for(name: &str) -> BoxedStrategy<String> {
    match name {
        "ConfigurationData" => config_value().boxed(),
        "AccountSid" => account_value().boxed(),
        "Enabled" => prop_oneof![
            4 => select(vec!["true", "false", "TRUE", "False"]).prop_map(str::to_owned),
            1 => select(vec!["", "yes", "1", "true ", "t"]).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
        .boxed(),
        "ExtensionName" => prop_oneof![
            4 => Just("multi_provider".to_owned()),
            1 => select(vec!["Multi_Provider", "multi-provider", "", "multi_provider "])
                .prop_map(str::to_owned),
            1 => any::<String>(),
        ]
        .boxed(),
        _ => any::<String>().boxed(),
    }
}

fn pair() -> impl Strategy<Value = (String, String)> {
    name().prop_flat_map(|n| {
        let v = value_for(&n);
        (Just(n), v)
    })
}

/// Where a form is posted.
#[derive(Debug, Clone)]
enum Target {
    Collection,
    /// `POST …/{ExtensionId}` with this id (`None`: the stored Sid, `Some`: as written).
    Update(Option<String>),
}

#[derive(Debug, Clone)]
struct FormCase {
    target: Target,
    query: Vec<(String, String)>,
    pairs: Vec<(String, String)>,
}

/// Mostly-valid requests with mutations, and free-form ones.
fn form_case() -> impl Strategy<Value = FormCase> {
    let target = prop_oneof![
        3 => Just(Target::Collection),
        2 => Just(Target::Update(None)),
        1 => Just(Target::Update(Some("multi_provider".to_owned()))),
        1 => select(vec!["Multi_Provider", "EXffffffffffffffffffffffffffffffff", "x", "Accounts.json"])
            .prop_map(|s| Target::Update(Some(s.to_owned()))),
        1 => "\\PC{1,12}".prop_map(|s| Target::Update(Some(s))),
    ];
    let query = prop_oneof![
        4 => Just(vec![]),
        2 => account_value().prop_map(|a| vec![("AccountSid".to_owned(), a)]),
        1 => prop::collection::vec(
            (select(vec!["AccountSid", "Enabled", "x", "Page"]).prop_map(str::to_owned), account_value()),
            1..3
        ),
    ];
    let valid_ish = (
        account_value(),
        prop::option::weighted(0.8, config_value()),
        prop::option::of(value_for("Enabled")),
        any::<bool>(),
        prop::collection::vec(pair(), 0..2),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(account, config, enabled, with_account, extra, at)| {
            let mut pairs = vec![("ExtensionName".to_owned(), "multi_provider".to_owned())];
            if with_account {
                pairs.push(("AccountSid".to_owned(), account));
            }
            if let Some(c) = config {
                pairs.push(("ConfigurationData".to_owned(), c));
            }
            if let Some(e) = enabled {
                pairs.push(("Enabled".to_owned(), e));
            }
            for p in extra {
                let i = at.index(pairs.len() + 1);
                pairs.insert(i, p);
            }
            pairs
        });
    let pairs = prop_oneof![
        3 => valid_ish,
        1 => prop::collection::vec(pair(), 0..6),
    ];
    (target, query, pairs).prop_map(|(target, query, pairs)| FormCase {
        target,
        query,
        pairs,
    })
}

// ------------------------------------------------------------------------ the form oracle

fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn has_duplicates(pairs: &[(String, String)]) -> bool {
    let mut seen = BTreeSet::new();
    pairs.iter().any(|(n, _)| !seen.insert(n))
}

/// Whether `ConfigurationData` `c` is valid: by the documentation's rules restated here
/// (docs/routing.md) wherever they settle it — the examples known valid or invalid, the size
/// limit, JSON syntax, the top level, the SMS section — and by the validator only for what is
/// left (a voice section's proxy URIs, expressions and headers).
fn documented_config_valid(c: &str) -> bool {
    if valid_configs().iter().any(|v| v == c) {
        return true;
    }
    if invalid_configs().iter().any(|v| v == c) || c.len() > 65_536 {
        return false;
    }
    let Ok(Value::Object(top)) = serde_json::from_str::<Value>(c) else {
        return false;
    };
    if top
        .keys()
        .any(|k| k != "outbound-sms" && k != "outbound-voice")
    {
        return false;
    }
    if let Some(sms) = top.get("outbound-sms") {
        let valid_id = |id: &Value| match id {
            Value::Number(n) => n.as_u64().is_some_and(|n| n <= 2_147_483_647),
            Value::String(s) => {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && s.trim_start_matches('0').len() <= 10
                    && s.parse::<u64>().is_ok_and(|n| n <= 2_147_483_647)
            }
            _ => false,
        };
        let valid = match sms.as_array().map(Vec::as_slice) {
            Some([Value::Object(entry)]) => {
                entry.len() == 1 && entry.get("destination_network_id").is_some_and(valid_id)
            }
            _ => false,
        };
        if !valid {
            return false;
        }
    }
    match top.get("outbound-voice") {
        None => true,
        Some(_) => routing::validate(c).is_ok(),
    }
}

/// docs/api.md, restated: (status, the account targeted when it is 200).
fn predict(case: &FormCase, ext: &str, before: &Stored) -> (u16, Option<AccountSid>) {
    if let Target::Update(Some(id)) = &case.target
        && id != "multi_provider"
        && !id.eq_ignore_ascii_case(ext)
    {
        return (404, None);
    }
    let pairs = &case.pairs;
    let mut bad = pairs
        .iter()
        .any(|(n, _)| !POST_PARAMETERS.contains(&n.as_str()))
        || has_duplicates(pairs)
        || has_duplicates(&case.query)
        // The query string of a POST takes `AccountSid` only (docs/strictness.md).
        || case.query.iter().any(|(n, _)| n != "AccountSid");
    match (first(pairs, "ExtensionName"), &case.target) {
        (None, Target::Collection) => bad = true,
        (Some(n), _) if n != "multi_provider" => bad = true,
        _ => {}
    }
    if let Some(e) = first(pairs, "Enabled")
        && !e.eq_ignore_ascii_case("true")
        && !e.eq_ignore_ascii_case("false")
    {
        bad = true;
    }
    let account = match (first(pairs, "AccountSid"), first(&case.query, "AccountSid")) {
        (Some(a), Some(b)) => match (AccountSid::parse(a), AccountSid::parse(b)) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => {
                bad = true;
                None
            }
        },
        (a, b) => match a.or(b) {
            None => None,
            Some(raw) => match AccountSid::parse(raw) {
                Some(a) => Some(a),
                None => {
                    bad = true;
                    None
                }
            },
        },
    };
    let config = first(pairs, "ConfigurationData");
    if let Some(c) = config
        && !documented_config_valid(c)
    {
        bad = true;
    }
    if bad {
        return (400, None);
    }
    let exists = match &account {
        Some(a) => before.accounts.contains_key(&a.to_string()),
        None => before.global.is_some(),
    };
    if config.is_none() && !exists {
        return (400, None);
    }
    (200, account)
}

async fn check_form(
    app: &TestApp,
    ext: &str,
    case: FormCase,
    tally: &Mutex<Tally>,
) -> Result<(), TestCaseError> {
    let before = stored(app.state().configs.store()).await;
    let mut path = match &case.target {
        Target::Collection => J.to_owned(),
        Target::Update(None) => format!("{J}/{ext}"),
        Target::Update(Some(id)) => format!("{J}/{}", encode(id)),
    };
    if !case.query.is_empty() {
        path.push('?');
        path.push_str(&form(
            &case
                .query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        ));
    }
    let body = form(
        &case
            .pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    let auth = app.admin_authorization();
    let outcome = send(
        app,
        request_bytes(
            "POST",
            path.as_bytes(),
            &[
                ("Authorization", auth.as_bytes()),
                ("Content-Type", FORM.as_bytes()),
            ],
            body.as_bytes(),
        ),
    )
    .await;
    let status = check_answer(&path, &outcome)?;
    tally.lock().unwrap().add(status);
    let (want, account) = predict(&case, ext, &before);
    prop_assert_eq!(status, want, "{:?}", outcome);
    let after = check_cache_matches_store(app).await?;
    if status != 200 {
        prop_assert_eq!(&after, &before, "a refused request changed the store");
        return Ok(());
    }
    // Exactly the target changed, and holds what was posted.
    let key = account.map(|a| a.to_string());
    let (old, new) = match &key {
        Some(k) => (before.accounts.get(k), after.accounts.get(k)),
        None => (before.global.as_ref(), after.global.as_ref()),
    };
    let new = new.expect("the target exists after a 200");
    let posted = first(&case.pairs, "ConfigurationData");
    let want_config = posted.or(old.map(|o| o.configuration.as_str())).unwrap();
    prop_assert_eq!(new.configuration.as_str(), want_config);
    let want_enabled = match first(&case.pairs, "Enabled") {
        Some(e) => e.eq_ignore_ascii_case("true"),
        None => old.is_none_or(|o| o.enabled),
    };
    prop_assert_eq!(new.enabled, want_enabled);
    let answer: Value = serde_json::from_str(&outcome.body_text()).unwrap();
    prop_assert_eq!(answer["configuration"].as_str(), Some(want_config));
    prop_assert_eq!(&answer["account_sid"], &json!(key));
    let (mut a, mut b) = (before.clone(), after.clone());
    match &key {
        Some(k) => {
            a.accounts.remove(k);
            b.accounts.remove(k);
        }
        None => {
            a.global = None;
            b.global = None;
        }
    }
    (a.revisions, b.revisions) = (0, 0);
    prop_assert_eq!(a, b, "a write changed another configuration");
    Ok(())
}

on_every_db!(blocking arbitrary_forms_are_answered_by_the_rules_and_store_only_valid_writes, |db| {
    fuzz(db, "form bodies", |rt, app, ext, tally| {
        run(form_case(), |case| {
            rt.block_on(check_form(app, ext, case, tally))
        })
    });
});

// ------------------------------------------------------------------------ raw bodies

fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    let soup = prop::collection::vec(
        prop_oneof![
            4 => select(b"=&%+ab09AZ{}[]\":,.".to_vec()),
            1 => any::<u8>(),
        ],
        0..200,
    );
    let words = prop::collection::vec(
        prop_oneof![
            select(vec![
                "ExtensionName=multi_provider",
                "ConfigurationData=",
                "AccountSid=AC11111111111111111111111111111111",
                "Enabled=false",
                "Enabled=true",
                "&",
                "=",
                "%",
                "%2",
                "%zz",
                "%ff",
                "%C3%28",
                "%00",
                "+",
                "%7B%7D",
                "%7B%22outbound-sms%22%3A%5B%7B%22destination_network_id%22%3A9%7D%5D%7D",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..12,
    )
    .prop_map(|words| words.concat());
    prop_oneof![soup, words]
}

on_every_db!(blocking arbitrary_body_bytes_never_5xx_and_store_nothing_invalid, |db| {
    fuzz(db, "raw form bytes", |rt, app, ext, tally| {
        let paths = vec![
            J.to_owned(),
            format!("{J}/{ext}"),
            format!("{X}/multi_provider"),
        ];
        run((select(paths), raw_body()), |(path, body)| {
            rt.block_on(async {
                let before = stored(app.state().configs.store()).await;
                let auth = app.admin_authorization();
                let outcome = send(
                    app,
                    request_bytes(
                        "POST",
                        path.as_bytes(),
                        &[
                            ("Authorization", auth.as_bytes()),
                            ("Content-Type", FORM.as_bytes()),
                        ],
                        &body,
                    ),
                )
                .await;
                let status = check_answer(&path, &outcome)?;
                tally.lock().unwrap().add(status);
                prop_assert!(matches!(status, 200 | 400), "{:?}", outcome);
                let after = check_cache_matches_store(app).await?;
                if status != 200 {
                    prop_assert_eq!(&after, &before);
                } else {
                    // A write that changes nothing adds no revision (docs/api.md).
                    prop_assert!(after.revisions >= before.revisions);
                }
                Ok(())
            })
        })
    });
});

// ------------------------------------------------------------------------ paths and queries

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(vec![
            "2012-04-24", "restcomm", "ExtensionsConfiguration.json", "ExtensionsConfiguration",
            "multi_provider", "Accounts.json", "Accounts", "v1", "accounts", A1, A_NONE,
            "voice-route", "sms-route", "health", "ready", "metrics", "ac0123456789ABCDEF0123456789abcdef",
        ])
        .prop_map(str::to_owned),
        2 => select(vec![
            "", ".", "..", "%2e%2e", "%00", "%ff", "%", "%zz", "a%2Fb", ";x=y", "%20",
            "ExtensionsConfiguration.json;jsessionid=1", "~", "*", "%E2%9C%93",
        ])
        .prop_map(str::to_owned),
        1 => "[A-Za-z0-9._~-]{0,40}",
        1 => any::<String>().prop_map(|s| encode(&s)),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let value = prop_oneof![
        account_value().prop_map(|s| encode(&s)),
        select(vec![
            "0",
            "1",
            "-1",
            "1000",
            "1001",
            "99999999999999999999",
            "9223372036854775807",
            "1e3",
            ""
        ])
        .prop_map(str::to_owned),
        any::<String>().prop_map(|s| encode(&s)),
        "[!-~]{0,20}".prop_map(|s| s.replace('#', "%23")),
    ];
    let pairs = prop::collection::vec(
        (
            select(vec![
                "AccountSid",
                "Page",
                "PageSize",
                "to",
                "accountsid",
                "x",
                "",
            ]),
            value,
        ),
        0..4,
    )
    .prop_map(|pairs| {
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    prop::option::of(pairs)
}

#[derive(Debug, Clone)]
struct PathCase {
    method: &'static str,
    segments: Vec<String>,
    query: Option<String>,
    body: Option<Vec<u8>>,
}

fn path_case() -> impl Strategy<Value = PathCase> {
    let templates = select(vec![
        vec!["2012-04-24", "ExtensionsConfiguration.json"],
        vec!["restcomm", "2012-04-24", "ExtensionsConfiguration"],
        vec![
            "2012-04-24",
            "ExtensionsConfiguration.json",
            "multi_provider",
        ],
        vec![
            "2012-04-24",
            "ExtensionsConfiguration",
            "multi_provider",
            "Accounts",
        ],
        vec!["v1", "accounts"],
        vec!["v1", "accounts", A1],
        vec!["health"],
    ]);
    let segments = prop_oneof![
        prop::collection::vec(segment(), 0..6),
        (templates, prop::collection::vec(segment(), 0..3))
            .prop_map(|(t, tail)| { t.iter().map(|s| s.to_string()).chain(tail).collect() }),
    ];
    (
        select(vec![
            "GET", "GET", "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS",
        ]),
        segments,
        query(),
        prop::option::of(raw_body()),
    )
        .prop_map(|(method, segments, query, body)| PathCase {
            method,
            segments,
            query,
            body,
        })
}

on_every_db!(blocking arbitrary_paths_and_query_strings_never_5xx, |db| {
    fuzz(db, "paths and queries", |rt, app, _ext, tally| {
        run(path_case(), |case| {
            rt.block_on(async {
                let before = stored(app.state().configs.store()).await;
                let mut target = format!("/{}", case.segments.join("/"));
                if let Some(q) = &case.query {
                    target.push('?');
                    target.push_str(q);
                }
                let auth = app.admin_authorization();
                let mut headers = vec![("Authorization", auth.as_bytes())];
                if case.body.is_some() {
                    headers.push(("Content-Type", FORM.as_bytes()));
                }
                let outcome = send(
                    app,
                    request_bytes(
                        case.method,
                        target.as_bytes(),
                        &headers,
                        case.body.as_deref().unwrap_or_default(),
                    ),
                )
                .await;
                let status = check_answer(&format!("{} {target}", case.method), &outcome)?;
                tally.lock().unwrap().add(status);
                let after = check_cache_matches_store(app).await?;
                if !(200..300).contains(&status) || matches!(case.method, "GET" | "HEAD") {
                    prop_assert_eq!(
                        &after,
                        &before,
                        "{} {} changed the store",
                        case.method,
                        target
                    );
                }
                Ok(())
            })
        })
    });
});

// Request targets that are not paths at all, written as raw bytes.
on_every_db!(blocking garbage_request_lines_are_refused_with_a_4xx, |db| {
    fuzz(db, "raw request lines", |rt, app, _ext, tally| {
        let junk = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            prop::collection::vec(select(b"/ ?#%:@*\t\x7fAZaz09\xff".to_vec()), 0..300),
            select(vec![
                "*",
                "http://x/health/live",
                "//",
                "/%",
                "/?",
                "/#x",
                "x"
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
        ];
        run(junk, |line| {
            rt.block_on(async {
                let before = stored(app.state().configs.store()).await;
                let mut request = b"GET ".to_vec();
                request.extend_from_slice(&line);
                request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let outcome = send(app, request).await;
                let status = check_answer(&String::from_utf8_lossy(&line), &outcome)?;
                tally.lock().unwrap().add(status);
                prop_assert_eq!(&stored(app.state().configs.store()).await, &before);
                Ok(())
            })
        })
    });
});

// ------------------------------------------------------------------------ Authorization

/// Who the server must take an `Authorization` value for (docs/api.md), restated.
fn grants(value: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(value).ok()?;
    let text = text.trim_matches([' ', '\t']);
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        (decoded == format!("{ADMIN_SID}:{ADMIN_TOKEN}").as_bytes()).then_some("admin")
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (rest == ENGINE_TOKEN).then_some("engine")
    } else {
        None
    }
}

/// Bytes hyper accepts in a header value (HTAB, SP, VCHAR, obs-text).
fn header_value_ok(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

fn authorization() -> impl Strategy<Value = Vec<u8>> {
    let admin = basic(ADMIN_SID, ADMIN_TOKEN).into_bytes();
    let engine = format!("Bearer {ENGINE_TOKEN}").into_bytes();
    let mutated = (
        select(vec![admin, engine]),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(mut v, edits)| {
            for (at, byte, op) in edits {
                let i = at.index(v.len() + 1);
                match op {
                    _ if byte == b'\r' || byte == b'\n' => {}
                    0 if i < v.len() => v[i] = byte,
                    1 if i < v.len() => {
                        v.remove(i);
                    }
                    _ => v.insert(i, byte),
                }
            }
            v
        });
    // CR and LF would end the header line: that is framing, not a header value.
    let value_byte = any::<u8>().prop_map(|b| if b == b'\r' || b == b'\n' { b'\t' } else { b });
    prop_oneof![
        2 => prop::collection::vec(value_byte, 0..80),
        2 => prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(b)).into_bytes()
        }),
        1 => (".{0,40}", ".{0,40}").prop_map(|(u, p)| basic(&u, &p).into_bytes()),
        1 => "[ -~]{0,60}".prop_map(|t| format!("Bearer {t}").into_bytes()),
        1 => ".{0,60}".prop_map(|t| format!("Bearer {t}").replace(['\r', '\n'], " ").into_bytes()),
        3 => mutated,
        // The credentials themselves, spelled the ways the server must accept.
        1 => select(vec![
            basic(ADMIN_SID, ADMIN_TOKEN).replacen("Basic", "basic", 1).into_bytes(),
            format!("BEARER   {ENGINE_TOKEN}").into_bytes(),
            format!("\tBearer {ENGINE_TOKEN}\t").into_bytes(),
        ]),
    ]
}

/// The status `value` must get on a route (`None`: granted, a 2xx or a 404).
fn expected_for(value: &[u8], admin_route: bool) -> Option<u16> {
    if !header_value_ok(value) {
        return Some(400);
    }
    match (grants(value), admin_route) {
        (Some("admin"), _) | (Some("engine"), false) => None,
        (Some("engine"), true) => Some(403),
        _ => Some(401),
    }
}

/// Sends a write (which must never happen unauthorised) with `value` as `Authorization`, and
/// checks the answer against `expected_for`.
async fn check_authorization(
    app: &TestApp,
    (method, path, admin_route): (&str, String, bool),
    value: Vec<u8>,
    tally: &Mutex<Tally>,
) -> Result<(), TestCaseError> {
    let before = stored(app.state().configs.store()).await;
    let body = format!("ExtensionName=multi_provider&AccountSid={A3}&ConfigurationData=%7B%7D");
    let outcome = send(
        app,
        request_bytes(
            method,
            path.as_bytes(),
            &[("Authorization", &value), ("Content-Type", FORM.as_bytes())],
            body.as_bytes(),
        ),
    )
    .await;
    let status = check_answer(&path, &outcome)?;
    tally.lock().unwrap().add(status);
    match expected_for(&value, admin_route) {
        None => prop_assert!(
            (200..300).contains(&status) || status == 404,
            "{:?}",
            outcome
        ),
        Some(want) => {
            prop_assert_eq!(
                status,
                want,
                "{:?} -> {:?}",
                String::from_utf8_lossy(&value),
                outcome
            );
            prop_assert_eq!(&stored(app.state().configs.store()).await, &before);
        }
    }
    if status == 401 {
        prop_assert_eq!(
            outcome.header("www-authenticate"),
            Some("Basic realm=\"Restcomm realm\"")
        );
    }
    Ok(())
}

on_every_db!(blocking arbitrary_authorization_headers_are_401_unless_they_are_the_credentials, |db| {
    fuzz(db, "Authorization headers", |rt, app, ext, tally| {
        // (method, path, is an admin route)
        let routes = vec![
            ("GET", format!("{J}/{ext}"), true),
            ("POST", J.to_owned(), true),
            ("DELETE", format!("{J}/{ext}?AccountSid={A3}"), true),
            ("GET", format!("{X}/{ext}/Accounts"), true),
            ("GET", format!("/v1/accounts/{A1}/sms-route"), false),
            ("GET", format!("/v1/accounts/{A1}/voice-route?to=%2B1555"), false),
        ];
        run((select(routes), authorization()), |(route, value)| {
            rt.block_on(check_authorization(app, route, value, tally))
        })
    });
});

// ------------------------------------------------------------------------ lookups

fn destination() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => select(vec![
            "sip:bob@uri1.com", "sip:alice@uri.com", "sips:x@[2001:db8::1]:5061;transport=tls",
            "+15551234", "tel:+15551234;phone-context=x", "client:alice", "sip:", "sip:@", "",
            "sip:bob@uri1.com\r\nVia: x", "(555) 123-45#*", "+", "++1", "sip:bob@[::1",
        ])
        .prop_map(str::to_owned),
        // Valid destinations of each kind, so that many answers are routes to check.
        2 => "\\+?[0-9]{1,20}",
        2 => "(sip|sips|SIP):([a-z]{1,8}@)?(uri[0-9]?\\.com|[a-z]{1,10}\\.(com|org)|uri\\.com:50[0-9]{2})(;[a-z]{1,5}(=[a-z0-9]{1,5})?){0,2}",
        1 => "[0-9+*#.()A-Za-z-]{0,70}",
        1 => "(sips?|tel|SIP):[ -~]{0,40}",
        1 => any::<String>(),
        1 => (1usize..3000).prop_map(|n| "9".repeat(n)),
    ]
}

/// One lookup: a GET of `to` (mode 0), a POST of `to` and `headers` (1), a POST of `junk` (2).
#[derive(Debug, Clone)]
struct LookupCase {
    account: &'static str,
    to: String,
    headers: Vec<(String, Value)>,
    mode: u8,
    junk: Value,
}

fn lookup_case() -> impl Strategy<Value = LookupCase> {
    let header = (
        prop_oneof![
            3 => select(vec!["To", "From", "X-CustomHeader", "Route", "to", "x-customheader"])
                .prop_map(str::to_owned),
            1 => any::<String>()
        ],
        prop_oneof![
            Just(json!("<sip:bob@uri1.com>;tag=1")),
            any::<String>().prop_map(Value::String),
            json_value()
        ],
    );
    // Junk bodies: anything, or objects near the documented shape (`to`, `headers`, and
    // sometimes a member too many), so that a third of the cases is not only refusals.
    let near_shape = (
        prop_oneof![
            2 => destination().prop_map(|to| Some(Value::String(to))),
            1 => json_value().prop_map(Some),
            1 => Just(None),
        ],
        prop_oneof![
            2 => Just(None),
            1 => prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..3).prop_map(|h| {
                Some(Value::Object(h.into_iter().map(|(k, v)| (k, Value::String(v))).collect()))
            }),
            1 => json_value().prop_map(Some),
        ],
        prop_oneof![4 => Just(None), 1 => json_value().prop_map(Some)],
    )
        .prop_map(|(to, headers, extra)| {
            let mut members = serde_json::Map::new();
            for (name, value) in [("to", to), ("headers", headers), ("extra", extra)] {
                if let Some(value) = value {
                    members.insert(name.to_owned(), value);
                }
            }
            Value::Object(members)
        });
    (
        select(vec![A1, A_NONE, A2]),
        destination(),
        prop::collection::vec(header, 0..3),
        0..3u8,
        prop_oneof![json_value(), near_shape],
    )
        .prop_map(|(account, to, headers, mode, junk)| LookupCase {
            account,
            to,
            headers,
            mode,
            junk,
        })
}

/// The case as a request: its method, path and body, and its `Content-Type`.
fn lookup_request(case: &LookupCase) -> (&'static str, String, Vec<u8>, Option<&'static str>) {
    let account = case.account;
    match case.mode {
        0 => (
            "GET",
            format!("/v1/accounts/{account}/voice-route?to={}", encode(&case.to)),
            Vec::new(),
            None,
        ),
        1 => {
            let headers: serde_json::Map<String, Value> = case.headers.iter().cloned().collect();
            let body = json!({"to": case.to, "headers": headers});
            (
                "POST",
                format!("/v1/accounts/{account}/voice-route"),
                body.to_string().into_bytes(),
                Some("application/json"),
            )
        }
        _ => (
            "POST",
            format!("/v1/accounts/{account}/voice-route"),
            case.junk.to_string().into_bytes(),
            Some("application/json"),
        ),
    }
}

// The lookup oracle: docs/routing.md and docs/api.md restated here, independently of the
// routing code (no call into `multiprovider::routing`): what a destination is, which proxies of
// the documentation's voice example match it, and what the route rewrites.

/// A destination as docs/routing.md reads it: the match target, and for a PSTN call the number.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Sip { target: String },
    Pstn { number: String },
}

/// RFC 3261 `token`: header names and URI parameter names.
fn documented_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// RFC 3261 `hostname`: dot-separated labels of letters, digits and inner hyphens, the last
/// one starting with a letter, an optional trailing dot.
fn documented_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    labels.iter().all(|l| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    }) && labels
        .last()
        .is_some_and(|l| l.as_bytes()[0].is_ascii_alphabetic())
}

/// `host[:port]` of a SIP URI: the host (IPv6 with its brackets) when valid.
fn documented_hostport(s: &str) -> Option<&str> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        host[1..end].parse::<std::net::Ipv6Addr>().ok()?;
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let valid = if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            host.parse::<std::net::Ipv4Addr>().is_ok()
        } else {
            documented_hostname(host)
        };
        if !valid {
            return None;
        }
        (host, port)
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && (1..=65535).contains(&port.parse::<u32>().ok()?);
        if !ok {
            return None;
        }
    }
    Some(host)
}

/// A number or client name: 1–64 of `0-9 A-Z a-z * # . - ( )` after an optional `+`.
fn documented_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty()
        && digits.chars().count() <= 64
        && digits
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"*#.-()".contains(&b))
}

/// docs/routing.md, voice routing step 1: `None` where the lookup is a 400.
fn documented_destination(to: &str) -> Option<Dest> {
    if to.is_empty() || to.len() > 2048 || to.chars().any(char::is_control) {
        return None;
    }
    let lower = to.get(..5).unwrap_or(to).to_ascii_lowercase();
    let scheme = if lower.starts_with("sips:") {
        Some(5)
    } else if lower.starts_with("sip:") {
        Some(4)
    } else {
        None
    };
    if let Some(scheme) = scheme {
        if to
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        {
            return None;
        }
        let rest = &to[scheme..];
        let before_headers = rest.split('?').next().unwrap();
        let after_user = match before_headers.find('@') {
            Some(at) => &rest[at + 1..],
            None => rest,
        };
        let hostport = after_user.split([';', '?']).next().unwrap();
        let target = documented_hostport(hostport)?.to_owned();
        return Some(Dest::Sip { target });
    }
    let number = if lower.starts_with("tel:") {
        to[4..].split(';').next().unwrap()
    } else {
        to
    };
    documented_number(number).then(|| Dest::Pstn {
        number: number.to_owned(),
    })
}

/// The documentation's voice example (`tests/fixtures/voice.json`), restated: each proxy's
/// `match`, host, URI parameters, `Request-URI` parameters and other headers.
struct ExampleProxy {
    matches: &'static str,
    host: &'static str,
    params: &'static str,
    request_uri: &'static [(&'static str, &'static str)],
    headers: &'static [(&'static str, &'static str)],
}

const EXAMPLE: [ExampleProxy; 3] = [
    ExampleProxy {
        matches: "uri.com",
        host: "192.168.0.1",
        params: ";uriprop1=uri_prop_value1;uriprop2=uri_prop_value2",
        request_uri: &[],
        headers: &[],
    },
    ExampleProxy {
        matches: r"uri[12]\.com",
        host: "192.168.0.1",
        params: "",
        request_uri: &[("newkey1", "newvalue1"), ("newkey2", "newvalue2")],
        headers: &[
            ("To", "newkey3=newvalue3"),
            ("X-CustomHeader", "newkey4=newvalue4"),
        ],
    },
    ExampleProxy {
        matches: ".*",
        host: "192.168.0.2",
        params: "",
        request_uri: &[("newkey5", "newvalue5"), ("newkey6", "newvalue6")],
        headers: &[
            ("To", "newkey7=newvalue7"),
            ("X-CustomHeader", "newkey8=newvalue8"),
        ],
    },
];

/// Sets URI parameter `key=value` in `uri` (docs/routing.md step 3): the first parameter of
/// that name (any case) is replaced, else one is appended; parameters end at a `?`.
fn set_uri_parameter(uri: &str, params_from: usize, key: &str, value: &str) -> String {
    let end = uri[params_from..]
        .find('?')
        .map_or(uri.len(), |i| params_from + i);
    let mut at = params_from;
    for param in uri[params_from..end].split(';').skip(1) {
        at += 1;
        let name = param.split('=').next().unwrap();
        if name.eq_ignore_ascii_case(key) {
            return format!("{}{key}={value}{}", &uri[..at], &uri[at + param.len()..]);
        }
        at += param.len();
    }
    // An empty last parameter (`sip:a;`) takes the new one.
    let separator = if uri[..end].ends_with(';') { "" } else { ";" };
    format!("{}{separator}{key}={value}{}", &uri[..end], &uri[end..])
}

/// Where a SIP URI's parameters begin: after `host[:port]`.
fn params_start(uri: &str) -> usize {
    let scheme = uri.find(':').unwrap() + 1;
    let before_headers = uri[scheme..].split('?').next().unwrap();
    let host_at = scheme + before_headers.find('@').map_or(0, |i| i + 1);
    host_at
        + uri[host_at..]
            .find([';', '?'])
            .unwrap_or(uri.len() - host_at)
}

/// What the example's proxy `i` answers for `to` and the supplied headers: (request_uri,
/// headers), docs/routing.md steps 3 and 5.
fn example_route(
    i: usize,
    to: &str,
    dest: &Dest,
    supplied: &[(String, String)],
) -> (String, serde_json::Map<String, Value>) {
    let proxy = &EXAMPLE[i];
    let mut uri = match dest {
        Dest::Sip { .. } => to.to_owned(),
        Dest::Pstn { number } => format!(
            "sip:{}@{}{}",
            number.replace('#', "%23"),
            proxy.host,
            proxy.params
        ),
    };
    for (key, value) in proxy.request_uri {
        let from = params_start(&uri);
        uri = set_uri_parameter(&uri, from, key, value);
    }
    let headers = proxy
        .headers
        .iter()
        .map(|(name, params)| {
            let value = match supplied.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, given)) => format!("{given};{params}"),
                None => (*params).to_owned(),
            };
            ((*name).to_owned(), Value::String(value))
        })
        .collect();
    (uri, headers)
}

/// The documented shape of a POST voice-route body: `Ok((to, headers))`, or the parameters
/// whose problems the 400 must name (`to`, `headers`, or an unknown member's name).
/// A lookup as the documentation reads it: `to` and the supplied headers, or the parameters
/// whose problems a 400 names.
type Documented = Result<(String, Vec<(String, String)>), Vec<String>>;

fn documented_body(body: &Value) -> Documented {
    let Value::Object(members) = body else {
        return Err(Vec::new());
    };
    let mut problems: Vec<String> = members
        .keys()
        .filter(|k| *k != "to" && *k != "headers")
        .cloned()
        .collect();
    let to = match members.get("to") {
        Some(Value::String(to)) => to.clone(),
        _ => {
            problems.push("to".into());
            String::new()
        }
    };
    let mut headers = Vec::new();
    match members.get("headers") {
        None => {}
        Some(Value::Object(given)) => {
            for (name, value) in given {
                match value {
                    Value::String(v) => headers.push((name.clone(), v.clone())),
                    _ => problems.push("headers".into()),
                }
            }
        }
        Some(_) => problems.push("headers".into()),
    }
    if problems.is_empty() {
        Ok((to, headers))
    } else {
        Err(problems)
    }
}

/// The parameters an error body names.
fn named_parameters(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["parameter"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The request of a lookup case as the documentation reads it: (to, headers) or the
/// parameters a 400 must name.
fn documented_request(case: &LookupCase) -> Documented {
    let (to, headers) = match case.mode {
        0 => (case.to.clone(), Vec::new()),
        1 => {
            let map: serde_json::Map<String, Value> = case.headers.iter().cloned().collect();
            documented_body(&json!({"to": case.to, "headers": map}))?
        }
        _ => documented_body(&case.junk)?,
    };
    let mut problems = Vec::new();
    if documented_destination(&to).is_none() {
        problems.push("to".to_owned());
    }
    if headers
        .iter()
        .any(|(n, v)| !documented_token(n) || v.contains(['\r', '\n']))
    {
        problems.push("headers".to_owned());
    }
    if problems.is_empty() {
        Ok((to, headers))
    } else {
        Err(problems)
    }
}

async fn check_lookup(
    app: &TestApp,
    case: LookupCase,
    tally: &Mutex<Tally>,
) -> Result<(), TestCaseError> {
    let (method, path, body, content_type) = lookup_request(&case);
    let auth = format!("Bearer {ENGINE_TOKEN}");
    let mut headers = vec![("Authorization", auth.as_bytes())];
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct.as_bytes()));
    }
    let outcome = send(app, request_bytes(method, path.as_bytes(), &headers, &body)).await;
    let status = check_answer(&path, &outcome)?;
    tally.lock().unwrap().add(status);
    prop_assert!(matches!(status, 200 | 400), "{:?}", outcome);
    let got: Value = serde_json::from_str(&outcome.body_text()).unwrap();
    let (to, supplied) = match documented_request(&case) {
        Err(parameters) => {
            prop_assert_eq!(status, 400, "{:?}", outcome);
            // The answer names problems the documentation predicts, and no other of `to` and
            // `headers` (the server checks the destination before the headers).
            let named: Vec<String> = named_parameters(&got)
                .into_iter()
                .filter(|p| p == "to" || p == "headers")
                .collect();
            let predicted = parameters.iter().any(|p| p == "to" || p == "headers");
            prop_assert!(
                !predicted || !named.is_empty(),
                "{:?} not named: {}",
                parameters,
                got
            );
            for parameter in &named {
                prop_assert!(parameters.contains(parameter), "{parameter} named: {got}");
            }
            return Ok(());
        }
        Ok(request) => request,
    };
    prop_assert_eq!(status, 200, "{:?}", outcome);
    let dest = documented_destination(&to).unwrap();
    // Which configuration decides (docs/routing.md): A1 its own voice example; A2 its own
    // SMS-only configuration (no route); A_NONE the global one, SMS only (no route).
    let admin = match case.account {
        a if a == A_NONE => format!("{J}/multi_provider"),
        a => format!("{J}/multi_provider?AccountSid={a}"),
    };
    let revision = app.get(&admin).await.json::<Value>().await.unwrap()["revision"].clone();
    let source = if case.account == A_NONE {
        "global"
    } else {
        "account"
    };
    prop_assert_eq!(&got["account_sid"], &json!(case.account), "{}", got);
    prop_assert_eq!(&got["source"], &json!(source), "{}", got);
    prop_assert_eq!(&got["revision"], &revision, "{}", got);
    if case.account != A1 {
        prop_assert_eq!(&got["route"], &Value::Null, "{}", got);
        prop_assert_eq!(&got["fallbacks"], &json!([]), "{}", got);
        return Ok(());
    }
    let target = match &dest {
        Dest::Sip { target } => target,
        Dest::Pstn { number } => number,
    };
    // Step 2: a match covers the whole target, ignoring case; configured order (all up).
    let matching: Vec<usize> = (0..EXAMPLE.len())
        .filter(|&i| {
            regex::Regex::new(&format!("(?i)^(?:{})$", EXAMPLE[i].matches))
                .unwrap()
                .is_match(target)
        })
        .collect();
    let routes: Vec<&Value> = std::iter::once(&got["route"])
        .chain(got["fallbacks"].as_array().into_iter().flatten())
        .filter(|r| !r.is_null())
        .collect();
    let indexes: Vec<usize> = routes
        .iter()
        .map(|r| r["proxy_index"].as_u64().unwrap_or(999) as usize)
        .collect();
    prop_assert_eq!(&indexes, &matching, "{} for {:?}", got, target);
    for (route, &i) in routes.iter().zip(&matching) {
        let (request_uri, headers) = example_route(i, &to, &dest, &supplied);
        prop_assert_eq!(
            &route["request_uri"],
            &json!(request_uri),
            "proxy {}: {}",
            i,
            got
        );
        prop_assert_eq!(
            &route["headers"],
            &Value::Object(headers),
            "proxy {}: {}",
            i,
            got
        );
        prop_assert_eq!(&route["proxy"]["host"], &json!(EXAMPLE[i].host), "{}", got);
    }
    Ok(())
}

on_every_db!(blocking arbitrary_lookup_queries_are_answered_as_documented, |db| {
    fuzz(db, "lookups", |rt, app, _ext, tally| {
        run(lookup_case(), |case| {
            rt.block_on(check_lookup(app, case, tally))
        })
    });
});
