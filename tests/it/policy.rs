//! The routing policy (docs/routing.md): `priority`, `weight`, `caller`, `schedule`; the
//! lookup inputs `from` and `key`; explained and simulated. The selection's properties are
//! checked on the routing core directly; lookups, simulations and validation through the
//! real server on each database.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Value, json};

use multiprovider::routing::{
    CompiledRouting, Destination, Health, LookupInput, SelectionKey, compile, unit,
};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, A2, TEST_NOW};
use crate::common::wire::{encode, error_pointers};
use crate::common::{on_every_db, on_postgres};

// ---- the routing core

/// The order (route, then fallbacks) of proxy indexes for `to` and `key`.
fn order(routing: &CompiledRouting, to: &str, key: &str) -> Vec<usize> {
    let dest = Destination::parse(to).unwrap();
    let input = LookupInput::new(&dest, &[]).with_key(SelectionKey::Given(key));
    let answer = routing.resolve(input, |_| Health::Up);
    answer
        .route
        .iter()
        .chain(&answer.fallbacks)
        .map(|r| r.proxy.index())
        .collect()
}

/// The route's `uri` for `key`.
fn route_uri(routing: &CompiledRouting, key: &str) -> String {
    let dest = Destination::parse("+15551234").unwrap();
    let input = LookupInput::new(&dest, &[]).with_key(SelectionKey::Given(key));
    let answer = routing.resolve(input, |_| Health::Up);
    answer.route.unwrap().proxy.uri().to_owned()
}

fn weighted(weights: &[u16]) -> CompiledRouting {
    let proxies: Vec<Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"uri": format!("gw{i}.example.com"), "weight": w}))
        .collect();
    compile(&json!({"outbound-voice": [{"proxy": proxies}]}).to_string()).unwrap()
}

/// One proxy of a random configuration: a `match` among a few, a priority among a few, a
/// weight when its priority has weights.
#[derive(Debug, Clone)]
struct Spec {
    pattern: &'static str,
    priority: u16,
    weight: u16,
}

fn configuration(specs: &[Spec], weighted_priorities: &[bool]) -> String {
    let proxies: Vec<Value> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut p = json!({"uri": format!("10.0.0.{i}"), "match": s.pattern,
                               "priority": s.priority});
            if i % 2 == 0 {
                p["username"] = json!(format!("user{i}"));
            }
            if weighted_priorities[s.priority as usize] {
                p["weight"] = json!(s.weight);
            }
            p
        })
        .collect();
    json!({"outbound-voice": [{"proxy": proxies}]}).to_string()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(vec![".*", "\\+1.*", "\\+44.*", "uri1\\.com", "[0-9+]+"]),
        0u16..3,
        0u16..5,
    )
        .prop_map(|(pattern, priority, weight)| Spec {
            pattern,
            priority,
            weight,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The order is a permutation of the matching proxies, sorted by priority, the same for
    /// the same key (also from another compilation), weighted ones before standby ones.
    #[test]
    fn the_order_is_a_permutation_of_the_matching_proxies(
        specs in prop::collection::vec(spec(), 1..9),
        weighted_priorities in prop::collection::vec(any::<bool>(), 3),
        to in prop::sample::select(vec!["+15551234", "+4420", "sip:a@uri1.com", "alice"]),
        key in "[!-~]{1,40}",
    ) {
        let config = configuration(&specs, &weighted_priorities);
        let routing = compile(&config).unwrap();
        let got = order(&routing, to, &key);
        let target = Destination::parse(to).unwrap().target().to_owned();
        let matching: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| regex::Regex::new(&format!("(?i)^(?:{})$", s.pattern)).unwrap().is_match(&target))
            .map(|(i, _)| i)
            .collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        prop_assert_eq!(&sorted, &matching);
        // Priorities never decrease along the order.
        prop_assert!(got.windows(2).all(|w| specs[w[0]].priority <= specs[w[1]].priority));
        // Within a weighted priority, standby proxies come last, in configured order; an
        // unweighted priority keeps configured order.
        for (priority, &has_weights) in weighted_priorities.iter().enumerate() {
            let group: Vec<usize> = got.iter().copied().filter(|&i| specs[i].priority as usize == priority).collect();
            if has_weights {
                let first_standby = group.iter().position(|&i| specs[i].weight == 0).unwrap_or(group.len());
                prop_assert!(group[first_standby..].iter().all(|&i| specs[i].weight == 0));
                prop_assert!(group[first_standby..].windows(2).all(|w| w[0] < w[1]));
            } else {
                prop_assert!(group.windows(2).all(|w| w[0] < w[1]));
            }
        }
        // Same key, same order; also from a fresh compilation of the same document.
        prop_assert_eq!(&order(&routing, to, &key), &got);
        prop_assert_eq!(&order(&compile(&config).unwrap(), to, &key), &got);
    }

    /// Removing a proxy changes the route only for the keys whose route it was.
    #[test]
    fn removing_a_proxy_moves_only_its_keys(
        weights in prop::collection::vec(1u16..100, 2..7),
        removed in any::<prop::sample::Index>(),
        keys in prop::collection::vec("[!-~]{1,24}", 50),
    ) {
        let removed = removed.index(weights.len());
        let before = weighted(&weights);
        // The same proxies (same uri) without the removed one.
        let kept: Vec<Value> = weights
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != removed)
            .map(|(i, w)| json!({"uri": format!("gw{i}.example.com"), "weight": w}))
            .collect();
        let after = compile(&json!({"outbound-voice": [{"proxy": kept}]}).to_string()).unwrap();
        let gone = format!("gw{removed}.example.com");
        for key in &keys {
            let (was, is) = (route_uri(&before, key), route_uri(&after, key));
            if was != gone {
                prop_assert_eq!(&was, &is, "key {}", key);
            }
        }
    }
}

/// The share of `samples` keys each proxy of `weights` routes.
fn measured_split(weights: &[u16], samples: usize) -> Vec<f64> {
    let routing = weighted(weights);
    let mut counts = BTreeMap::new();
    for k in 0..samples {
        *counts
            .entry(route_uri(&routing, &format!("call-{k}@host")))
            .or_insert(0usize) += 1;
    }
    (0..weights.len())
        .map(|i| *counts.get(&format!("gw{i}.example.com")).unwrap_or(&0) as f64 / samples as f64)
        .collect()
}

#[test]
fn over_10000_keys_each_share_is_within_2_points_of_its_weight_share() {
    for weights in [
        vec![70, 30],
        vec![70, 20, 10],
        vec![1, 1, 1, 1, 1],
        vec![5000, 3000, 1500, 500],
        vec![1, 10000],
        vec![3, 0, 7],
    ] {
        let total: u32 = weights.iter().map(|&w| u32::from(w)).sum();
        let split = measured_split(&weights, 10_000);
        eprintln!("weights {weights:?}: measured split {split:.4?}");
        for (w, share) in weights.iter().zip(&split) {
            let expected = f64::from(*w) / f64::from(total);
            assert!(
                (share - expected).abs() <= 0.02,
                "weights {weights:?}: {share} against {expected}"
            );
        }
    }
}

/// The hash is part of the contract (docs/routing.md): the same key must order the same way
/// in every release, so its exact input is pinned here.
#[test]
fn the_hash_is_xxh3_64_of_key_uri_and_username() {
    let h = xxhash_rust::xxh3::xxh3_64(b"call-1@host\0sip:gw1.example.com:5060\0alice");
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    assert_eq!(
        unit(
            SelectionKey::Given("call-1@host"),
            "sip:gw1.example.com:5060",
            Some("alice")
        ),
        u
    );
    let h = xxhash_rust::xxh3::xxh3_64(b"k\0gw\0");
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    assert_eq!(unit(SelectionKey::Given("k"), "gw", None), u);
    // A release that changed it would move every weighted call: a fixed value.
    assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06800538d394c2);
}

#[test]
fn a_configuration_without_policy_answers_as_before_whatever_the_inputs() {
    let config = crate::common::constants::VOICE_EXAMPLE;
    let routing = compile(config).unwrap();
    assert!(!routing.has_policy());
    let dest = Destination::parse("sip:bob@uri1.com").unwrap();
    let plain = routing.resolve_voice(&dest, &[]);
    let caller = multiprovider::routing::Caller::parse("+4930123").unwrap();
    for key in ["a", "b", "c"] {
        let input = LookupInput::new(&dest, &[])
            .with_caller(Some(caller))
            .with_key(SelectionKey::Given(key))
            .with_at(TEST_NOW.parse().unwrap());
        let answer = routing.resolve(input, |_| Health::Up);
        let as_json = |a| {
            multiprovider::routing::voice_response_json(
                None,
                multiprovider::routing::Source::Account,
                None,
                a,
            )
        };
        assert_eq!(as_json(&answer), as_json(&plain));
    }
}

// ---- time, through a simulation's `at`

/// A simulation of `schedule` (proxy 0, the only one) at `at`: whether it matched.
async fn scheduled(app: &TestApp, schedule: &Value, at: &str) -> bool {
    let configuration = json!({"outbound-voice": [{"proxy": [
        {"uri": "gw.example.com", "schedule": schedule}]}]});
    let (status, body) = simulate(
        app,
        &json!({"configuration": configuration, "to": "+15551234", "at": at}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let candidate = &body["explain"]["candidates"][0];
    let matched = candidate["conditions"]["schedule"].as_bool().unwrap();
    assert_eq!(candidate["matched"], matched);
    assert_eq!(body["route"].is_null(), !matched);
    matched
}

async fn simulate(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .admin(app.client.post(app.url("/v1/simulate/voice-route")))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn window(days: &[&str], start: &str, end: &str) -> Value {
    json!({"days": days, "start": start, "end": end})
}

#[tokio::test]
async fn schedules_read_the_local_wall_clock_time_of_their_zone() {
    let db = crate::common::db::fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let check = async |schedule: &Value, cases: &[(&str, bool)]| {
        for (at, expected) in cases {
            assert_eq!(
                scheduled(&app, schedule, at).await,
                *expected,
                "{schedule} at {at}"
            );
        }
    };
    // Across midnight: the window belongs to its start day (Friday, 2026-12-04).
    let night =
        json!({"timezone": "Europe/Berlin", "windows": [window(&["fri"], "22:00", "06:00")]});
    check(
        &night,
        &[
            ("2026-12-04T20:59:59Z", false), // Fri 21:59:59
            ("2026-12-04T21:00:00Z", true),  // Fri 22:00
            ("2026-12-05T04:59:59Z", true),  // Sat 05:59:59
            ("2026-12-05T05:00:00Z", false), // Sat 06:00
            ("2026-12-05T21:30:00Z", false), // Sat 22:30: Saturday is not a start day
            ("2026-12-04T03:00:00Z", false), // Fri 04:00: Thursday's window would be
        ],
    )
    .await;
    // `24:00` ends at midnight; equal start and end: 24 hours.
    let evening = json!({"windows": [window(&["mon"], "18:00", "24:00")]});
    check(
        &evening,
        &[
            ("2026-12-07T17:59:59Z", false),
            ("2026-12-07T18:00:00Z", true),
            ("2026-12-07T23:59:59Z", true),
            ("2026-12-08T00:00:00Z", false),
        ],
    )
    .await;
    let day = json!({"timezone": "UTC", "windows": [window(&["tue"], "09:00", "09:00")]});
    check(
        &day,
        &[
            ("2026-12-08T08:59:59Z", false),
            ("2026-12-08T09:00:00Z", true),
            ("2026-12-09T08:59:59Z", true),
            ("2026-12-09T09:00:00Z", false),
        ],
    )
    .await;
    // `except`: no window starts on 2026-12-25 (a Friday); one that began the day before
    // runs to its end.
    let office = json!({"timezone": "Europe/Berlin",
        "windows": [window(&["mon", "tue", "wed", "thu", "fri"], "08:00", "18:00"),
                    window(&["thu", "fri"], "22:00", "06:00")],
        "except": ["2026-12-25"]});
    check(
        &office,
        &[
            ("2026-12-24T09:00:00Z", true),  // Thu 10:00
            ("2026-12-25T09:00:00Z", false), // Fri 10:00, excepted
            ("2026-12-24T22:00:00Z", true),  // Thu 23:00
            ("2026-12-25T02:00:00Z", true),  // Fri 03:00: Thursday's window
            ("2026-12-25T22:00:00Z", false), // Fri 23:00: would start on the 25th
            ("2026-12-26T02:00:00Z", false), // Sat 03:00: began on the 25th, so never
            ("2026-12-28T09:00:00Z", true),  // Mon 10:00
        ],
    )
    .await;
    // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:xx never occurs.
    let skipped =
        json!({"timezone": "Europe/Berlin", "windows": [window(&["sun"], "02:00", "03:00")]});
    check(
        &skipped,
        &[
            ("2026-03-29T00:59:59Z", false), // 01:59:59 CET
            ("2026-03-29T01:00:00Z", false), // 03:00 CEST
            ("2026-03-29T01:30:00Z", false), // 03:30 CEST
            ("2026-03-22T01:30:00Z", true),  // a week before: 02:30 CET
        ],
    )
    .await;
    // 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:xx happens twice, both match.
    check(
        &skipped,
        &[
            ("2026-10-24T23:59:59Z", false), // 01:59:59 CEST
            ("2026-10-25T00:30:00Z", true),  // 02:30 CEST
            ("2026-10-25T01:30:00Z", true),  // 02:30 CET
            ("2026-10-25T02:00:00Z", false), // 03:00 CET
        ],
    )
    .await;
    // America/New_York, 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    let new_york =
        json!({"timezone": "America/New_York", "windows": [window(&["sun"], "02:00", "03:00")]});
    check(
        &new_york,
        &[
            ("2026-03-08T06:59:59Z", false), // 01:59:59 EST
            ("2026-03-08T07:00:00Z", false), // 03:00 EDT
            ("2026-03-08T07:30:00Z", false), // 03:30 EDT
        ],
    )
    .await;
    // 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:xx happens twice, both match.
    let repeated =
        json!({"timezone": "America/New_York", "windows": [window(&["sun"], "01:00", "02:00")]});
    check(
        &repeated,
        &[
            ("2026-11-01T04:59:59Z", false), // 00:59:59 EDT
            ("2026-11-01T05:30:00Z", true),  // 01:30 EDT
            ("2026-11-01T06:30:00Z", true),  // 01:30 EST
            ("2026-11-01T07:00:00Z", false), // 02:00 EST
        ],
    )
    .await;
    // `at` with an offset is the same instant.
    assert!(scheduled(&app, &office, "2026-12-24T10:00:00+01:00").await);
    assert!(!scheduled(&app, &office, "2026-12-25T10:00:00+01:00").await);
}

// ---- lookups through the server

/// A caller rule first, a 70/30 split with a standby carrier, an office-hours carrier.
const POLICY: &str = r#"{"outbound-voice": [{"proxy": [
    {"uri": "premium.example.com", "caller": "\\+4930.*", "match": "\\+44.*"},
    {"uri": "a.example.com", "priority": 1, "weight": 70, "username": "acct-a"},
    {"uri": "b.example.com", "priority": 1, "weight": 30},
    {"uri": "standby.example.com", "priority": 1, "weight": 0},
    {"uri": "office.example.com", "priority": 2, "schedule": {"timezone": "Europe/Berlin",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}]}},
    {"uri": "weekend.example.com", "priority": 2, "schedule": {
        "windows": [{"days": ["sat", "sun"], "start": "00:00", "end": "24:00"}]}}]}]}"#;

fn indexes(answer: &Value) -> Vec<u64> {
    std::iter::once(&answer["route"])
        .chain(answer["fallbacks"].as_array().unwrap())
        .filter(|r| !r.is_null())
        .map(|r| r["proxy_index"].as_u64().unwrap())
        .collect()
}

fn voice_path(account: &str, query: &str) -> String {
    format!("/v1/accounts/{account}/voice-route?{query}")
}

on_every_db!(lookups_take_from_and_key, |app, db| {
    app.configure(Some(A1), POLICY).await;
    // TEST_NOW is Tuesday 13:00 in Berlin: office hours.
    let q = |to: &str, from: Option<&str>, key: &str| {
        let mut query = format!("to={}&key={}", encode(to), encode(key));
        if let Some(from) = from {
            query.push_str(&format!("&from={}", encode(from)));
        }
        voice_path(A1, &query)
    };
    // The fast path (engine token) and the router (admin) answer the same bytes.
    for (to, from) in [
        ("+4420123", Some("+4930555")),
        ("+4420123", None),
        ("+15551234", Some("sip:+4930555@pbx.example.com")),
    ] {
        for key in ["call-1@host", "call-2@host", "x"] {
            let path = q(to, from, key);
            let fast = app
                .engine(app.client.get(app.url(&path)))
                .send()
                .await
                .unwrap();
            let routed = app
                .admin(app.client.get(app.url(&path)))
                .send()
                .await
                .unwrap();
            assert_eq!(fast.status(), 200);
            assert_eq!(
                fast.bytes().await.unwrap(),
                routed.bytes().await.unwrap(),
                "{path}"
            );
        }
    }
    // The caller rule: a +4930 caller to +44 takes the premium trunk; any other caller, or
    // none, does not.
    let (_, a) = app
        .engine_get(&q("+4420123", Some("tel:+4930555"), "k1"))
        .await;
    assert_eq!(indexes(&a)[0], 0);
    let (_, a) = app.engine_get(&q("+4420123", Some("+4940555"), "k1")).await;
    assert!(!indexes(&a).contains(&0));
    let (_, a) = app.engine_get(&q("+4420123", None, "k1")).await;
    assert!(!indexes(&a).contains(&0));
    // The split: every order is the weighted pair, the standby, then office hours; the
    // same key always gets the same order, GET or POST.
    let mut firsts = BTreeMap::new();
    for k in 0..200 {
        let key = format!("call-{k}@host");
        let (status, a) = app.engine_get(&q("+15551234", None, &key)).await;
        assert_eq!(status, 200);
        let order = indexes(&a);
        assert!(order == [1, 2, 3, 4] || order == [2, 1, 3, 4], "{order:?}");
        *firsts.entry(order[0]).or_insert(0) += 1;
        let (_, again) = app
            .voice_post(A1, &json!({"to": "+15551234", "key": key}))
            .await;
        assert_eq!(indexes(&again), order);
    }
    eprintln!("first choice over 200 keys: {firsts:?}");
    // `view=engine` follows the same order: each route's next hop is that of the full answer.
    for k in 0..20 {
        let path = q("+15551234", None, &format!("call-{k}@host"));
        let (_, full) = app.engine_get(&path).await;
        let (status, engine) = app.engine_get(&format!("{path}&view=engine")).await;
        assert_eq!(status, 200, "{engine}");
        let hops: Vec<&Value> = engine["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["hop"])
            .collect();
        let full_hops: Vec<&Value> = std::iter::once(&full["route"])
            .chain(full["fallbacks"].as_array().unwrap())
            .map(|r| &r["proxy"]["sip_uri"])
            .collect();
        assert_eq!(hops, full_hops, "{path}");
    }
    assert!(firsts[&1] > firsts[&2], "{firsts:?}");
    // Without a key, lookups are spread at random over both.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..60 {
        let (_, a) = app.engine_get(&voice_path(A1, "to=%2B15551234")).await;
        seen.insert(indexes(&a)[0]);
    }
    assert_eq!(
        seen,
        [1, 2].into(),
        "drawn keys reach both weighted carriers"
    );
    // Explained: the inputs and every candidate's policy.
    let (_, e) = app
        .engine_get(&format!(
            "{}&explain=true",
            q(
                "+4420123",
                Some("sip:+4930555@pbx.example.com"),
                "call-9@host"
            )
        ))
        .await;
    let x = &e["explain"];
    assert_eq!(
        (&x["caller"], &x["key"], &x["at"]),
        (&json!("+4930555"), &json!("call-9@host"), &json!(TEST_NOW))
    );
    let c = &x["candidates"];
    assert_eq!(
        c[0]["conditions"],
        json!({"match": true, "caller": true, "schedule": null})
    );
    assert_eq!(
        (&c[0]["weight"], &c[0]["score"], &c[0]["share"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(c[0]["chosen"], "route");
    assert_eq!(
        (&c[1]["priority"], &c[1]["weight"], &c[1]["share"]),
        (&json!(1), &json!(70), &json!(0.7))
    );
    assert!(c[1]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (&c[3]["weight"], &c[3]["score"], &c[3]["share"]),
        (&json!(0), &Value::Null, &json!(0))
    );
    assert_eq!(
        c[4]["conditions"],
        json!({"match": true, "caller": null, "schedule": true})
    );
    assert_eq!(
        c[5]["conditions"],
        json!({"match": true, "caller": null, "schedule": false})
    );
    assert_eq!(
        (&c[5]["matched"], &c[5]["chosen"]),
        (&json!(false), &Value::Null)
    );
    assert!(x["reason"].as_str().unwrap().contains("proxy 0"), "{x}");
    let (_, e) = app
        .engine_get(&format!(
            "{}&explain=true",
            q("+15551234", None, "call-9@host")
        ))
        .await;
    let reason = e["explain"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("weighted choice with the key call-9@host"),
        "{reason}"
    );
    let _ = &db;
});

on_every_db!(malformed_from_and_key_are_400_naming_them, |app, db| {
    app.configure(Some(A1), POLICY).await;
    for (query, parameters) in [
        ("to=%2B1&from=", vec!["from"]),
        ("to=%2B1&from=client:alice", vec!["from"]),
        ("to=%2B1&from=sip:pbx.example.com", vec!["from"]),
        ("to=%2B1&from=%2B1%0A", vec!["from"]),
        ("to=%2B1&key=", vec!["key"]),
        ("to=%2B1&key=a%20b", vec!["key"]),
        ("to=%2B1&key=caf%C3%A9", vec!["key"]),
        ("to=&from=a%20b&key=a%20b", vec!["to", "from", "key"]),
    ] {
        let (status, body) = app.engine_get(&voice_path(A1, query)).await;
        assert_eq!(status, 400, "{query}: {body}");
        let named: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["parameter"].as_str().unwrap())
            .collect();
        assert_eq!(named, parameters, "{query}: {body}");
    }
    let long_key = "k".repeat(257);
    let (status, body) = app
        .voice_post(A1, &json!({"to": "+1", "key": long_key, "from": 5}))
        .await;
    assert_eq!(status, 400);
    let named: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["from", "key"], "{body}");
    let (status, _) = app
        .voice_post(
            A1,
            &json!({"to": "+1", "key": "k".repeat(256), "from": "sip:alice@example.com"}),
        )
        .await;
    assert_eq!(status, 200);
    let _ = &db;
});

on_every_db!(
    invalid_policy_members_are_400_with_pointers_and_nothing_is_written,
    |app, db| {
        let bad = r#"{"outbound-voice": [{"proxy": [
        {"uri": "a.example.com", "priority": 1001, "weight": 10},
        {"uri": "b.example.com", "priority": 1001},
        {"uri": "c.example.com", "priority": 2, "weight": 5},
        {"uri": "d.example.com", "priority": 2},
        {"uri": "e.example.com", "priority": -1, "weight": 10001, "caller": "(unclosed"},
        {"uri": "f.example.com", "priority": 7, "weight": "7", "caller": "\\+49 30.*", "limits": {"cps": 0}},
        {"uri": "g.example.com", "schedule": {"timezone": "Europe/Berln",
            "windows": [{"days": [], "start": "8:00", "end": "24:30"},
                        {"days": ["mon", "mon", "Sun"], "start": "24:00", "end": "07:00", "x": 1}],
            "except": ["2026-02-29", 20261225]}},
        {"uri": "h.example.com", "schedule": {"windows": []}},
        {"uri": "i.example.com", "schedule": {"timezone": "UTC"}}]}]}"#;
        let r = app.write(Some(A1), Some(bad), None).await;
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        let p = "/outbound-voice/0/proxy";
        let mut expected: Vec<String> = [
            "/0/priority",
            "/1/priority",
            "/3",
            "/4/priority",
            "/4/weight",
            "/4/caller",
            "/5/weight",
            "/5/caller",
            "/5/limits/cps",
            "/6/schedule/timezone",
            "/6/schedule/windows/0/days",
            "/6/schedule/windows/0/start",
            "/6/schedule/windows/0/end",
            "/6/schedule/windows/1/x",
            "/6/schedule/windows/1/days/1",
            "/6/schedule/windows/1/days/2",
            "/6/schedule/windows/1/start",
            "/6/schedule/except/0",
            "/6/schedule/except/1",
            "/7/schedule/windows",
            "/8/schedule",
        ]
        .iter()
        .map(|s| format!("{p}{s}"))
        .collect();
        let mut got = error_pointers(&body);
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{body:#}");
        let weight = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["pointer"] == format!("{p}/3"))
            .unwrap();
        assert!(
            weight["message"].as_str().unwrap().contains("`weight`"),
            "{weight}"
        );
        // Nothing written.
        let (_, a) = app.voice_route(A1, "+1").await;
        assert_eq!(a["source"], "none");
        // Weights in one priority and not in another is fine, as is a lone standby.
        let fine = r#"{"outbound-voice": [{"proxy": [
        {"uri": "a.example.com", "weight": 0},
        {"uri": "b.example.com", "priority": 3}]}]}"#;
        app.configure(Some(A1), fine).await;
        let _ = &db;
    }
);

on_every_db!(simulations_take_from_key_at_and_samples, |app, db| {
    let body = |extra: Value| {
        let mut b = json!({"configuration": POLICY, "to": "+15551234"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    // `at` on Saturday: the weekend carrier instead of the office one; a key's order is the
    // lookup's.
    app.configure(Some(A1), POLICY).await;
    let (status, s) = simulate(
        &app,
        &body(json!({"key": "call-7@host", "at": "2026-12-12T10:00:00Z"})),
    )
    .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["explain"]["at"], "2026-12-12T10:00:00Z");
    let order = indexes(&s);
    assert_eq!(&order[2..], [3, 5]);
    let (_, lookup) = app
        .engine_get(&voice_path(A1, "to=%2B15551234&key=call-7%40host"))
        .await;
    assert_eq!(indexes(&lookup)[..3], order[..3]);
    // The split over random keys: one entry per matching proxy, in answer order.
    let (status, s) = simulate(&app, &body(json!({"samples": 10000}))).await;
    assert_eq!(status, 200, "{s}");
    let split = s["split"].as_array().unwrap();
    let ids: Vec<u64> = split
        .iter()
        .map(|e| e["proxy_index"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, indexes(&s));
    let share = |i: u64| {
        split.iter().find(|e| e["proxy_index"] == i).unwrap()["share"]
            .as_f64()
            .unwrap()
    };
    let routes: u64 = split.iter().map(|e| e["routes"].as_u64().unwrap()).sum();
    assert_eq!(routes, 10000);
    eprintln!("simulated split: {split:?}");
    assert!(
        (share(1) - 0.7).abs() < 0.03 && (share(2) - 0.3).abs() < 0.03,
        "{split:?}"
    );
    assert_eq!((share(3), share(4)), (0.0, 0.0));
    assert!(s.get("split").is_some());
    let (_, plain) = simulate(&app, &body(json!({}))).await;
    assert!(plain.get("split").is_none());
    // Every bad input at once.
    let (status, e) = simulate(
        &app,
        &json!({"configuration": POLICY, "to": "+1", "from": "", "key": "a b",
                "at": "2026-12-12 10:00", "samples": 100001}),
    )
    .await;
    assert_eq!(status, 400);
    let mut named: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, ["at", "from", "key", "samples"], "{e}");
    for bad in [json!(0), json!(1.5), json!("10"), json!(-1)] {
        let (status, e) = simulate(&app, &body(json!({"samples": bad}))).await;
        assert_eq!(
            (status, &e["errors"][0]["parameter"]),
            (400, &json!("samples"))
        );
    }
    let _ = &db;
});

on_every_db!(lookups_read_schedules_at_the_server_clock, |db| {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let now = Arc::new(AtomicI64::new(0));
    let clock = now.clone();
    let app = crate::common::app::spawn_custom(&db.url, move |s| {
        s.engine_token = Some(crate::common::constants::ENGINE_TOKEN.to_owned());
        s.clock = multiprovider::config::Clock::from_fn(move || {
            jiff::Timestamp::from_second(clock.load(Ordering::SeqCst)).unwrap()
        });
    })
    .await;
    app.configure(Some(A2), POLICY).await;
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_second();
    // Monday 09:00 Berlin: office; Sunday: weekend; Monday 19:00: neither.
    for (instant, last) in [
        ("2026-12-07T08:00:00Z", vec![4]),
        ("2026-12-06T08:00:00Z", vec![5]),
        ("2026-12-07T18:00:00Z", vec![]),
    ] {
        now.store(at(instant), Ordering::SeqCst);
        let (_, a) = app
            .engine_get(&voice_path(A2, "to=%2B15551234&key=k"))
            .await;
        assert_eq!(indexes(&a)[3..], last, "{instant}");
    }
});

on_postgres!(two_instances_give_the_same_order_for_the_same_key, |db| {
    let a = spawn_app(&db.url, AppOptions::default()).await;
    let b = spawn_app(&db.url, AppOptions::default()).await;
    a.configure(Some(A1), POLICY).await;
    let started = Instant::now();
    loop {
        let (_, seen) = b.voice_route(A1, "+15551234").await;
        if seen["source"] == "account" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "b never saw the write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for k in 0..100 {
        let path = voice_path(A1, &format!("to=%2B15551234&key=call-{k}"));
        let (_, x) = a.engine_get(&path).await;
        let (_, y) = b.engine_get(&path).await;
        assert_eq!(indexes(&x), indexes(&y), "{path}");
    }
});
