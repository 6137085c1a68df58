//! Resolution cost (docs/routing.md, docs/api.md): the lookup API answers every call from this path.
//!
//! The worst case for proxy selection is a configuration where only the last proxy matches:
//! 100 proxies (the maximum) against 10, resolving only and resolving plus the JSON answer.
//! The `health` group measures what proxy health (docs/operations.md) adds to a lookup.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use multiprovider::routing::{
    self, CompiledRouting, Destination, Health, RegexInterner, Source, compile, compile_with,
    voice_response_json,
};
use serde_json::json;

const VOICE_EXAMPLE: &str = include_str!("../tests/fixtures/voice.json");
const TARGET: &str = "sip:bob@target.example.net";

/// `n` proxies: the first `n - 1` match `uri{i}.example.com` only, the last matches the
/// target; each carries the documentation's header instructions.
fn config(n: usize) -> String {
    let proxies: Vec<_> = (0..n)
        .map(|i| {
            let last = i + 1 == n;
            json!({
                "uri": format!("10.0.{}.{};transport=udp", i / 256, i % 256),
                "username": format!("user{i}"),
                "password": format!("password{i}"),
                "match": if last { r"target\.example\.net".to_owned() } else { format!(r"uri{i}\.example\.com") },
                "headers": [
                    {"headerName": "Request-URI", "key": "newkey1", "value": format!("newvalue{i}")},
                    {"headerName": "Request-URI", "key": "newkey2", "value": "newvalue2"},
                    {"headerName": "To", "key": "newkey3", "value": "newvalue3"},
                    {"headerName": "X-CustomHeader", "key": "newkey4", "value": "newvalue4"}
                ]
            })
        })
        .collect();
    json!({"outbound-voice": [{"proxy": proxies}]}).to_string()
}

fn compiled(n: usize) -> CompiledRouting {
    let c = compile(&config(n)).expect("the benchmark configuration is valid");
    // Check the premise: exactly the last proxy matches.
    let dest = Destination::parse(TARGET).unwrap();
    let answer = c.resolve_voice(&dest, &[]);
    assert_eq!(answer.route.as_ref().map(|r| r.proxy.index()), Some(n - 1));
    assert!(answer.fallbacks.is_empty());
    c
}

fn resolution(c: &mut Criterion) {
    let dest = Destination::parse(TARGET).unwrap();
    for n in [100, 10] {
        let routing = compiled(n);
        let mut group = c.benchmark_group(format!("voice_{n}_proxies_last_matches"));
        group.bench_function("resolve", |b| {
            b.iter(|| {
                let answer = black_box(&routing).resolve_voice(black_box(&dest), &[]);
                black_box(answer.route.is_some())
            })
        });
        group.bench_function("resolve_and_json", |b| {
            b.iter(|| {
                let answer = black_box(&routing).resolve_voice(black_box(&dest), &[]);
                black_box(voice_response_json(
                    Some("AC0123456789abcdef0123456789abcdef"),
                    Source::Account,
                    Some(42),
                    &answer,
                ))
            })
        });
        group.bench_function("parse_resolve_and_json", |b| {
            b.iter(|| {
                let dest = Destination::parse(black_box(TARGET)).unwrap();
                let answer = black_box(&routing)
                    .resolve_voice(&dest, &[("To", "<sip:bob@target.example.net>")]);
                black_box(voice_response_json(
                    Some("AC0123456789abcdef0123456789abcdef"),
                    Source::Account,
                    Some(42),
                    &answer,
                ))
            })
        });
        group.finish();
    }
}

fn validation(c: &mut Criterion) {
    c.bench_function("validate_documentation_example", |b| {
        b.iter(|| routing::validate(black_box(VOICE_EXAMPLE)).unwrap())
    });
    let hundred = config(100);
    c.bench_function("compile_100_proxies_cold_interner", |b| {
        b.iter(|| compile_with(black_box(&hundred), &RegexInterner::default()).unwrap())
    });
}

/// Ten proxies of which the last three match (a route and two fallbacks), read with their
/// health the way the lookup API does (one atomic load per matching proxy, docs/operations.md).
fn health(c: &mut Criterion) {
    use std::sync::atomic::{AtomicU8, Ordering};

    let proxies: Vec<_> = (0..10)
        .map(|i| {
            json!({
                "uri": format!("sip:gw{i}.carrier.example.net:5060;transport=udp"),
                "username": format!("user{i}"),
                "password": format!("password{i}"),
                "match": if i >= 7 { ".*".to_owned() } else { format!(r"uri{i}\.example\.com") },
                "headers": [{"headerName": "Request-URI", "key": "tgrp", "value": format!("tg{i}")}]
            })
        })
        .collect();
    let routing = compile(&json!({"outbound-voice": [{"proxy": proxies}]}).to_string()).unwrap();
    let dest = Destination::parse(TARGET).unwrap();
    let cells: Vec<AtomicU8> = (0..10).map(|_| AtomicU8::new(Health::Up as u8)).collect();
    let read = |i: usize| Health::from_u8(cells[i].load(Ordering::Relaxed));
    let sid = Some("AC0123456789abcdef0123456789abcdef");
    let mut group = c.benchmark_group("voice_10_proxies_3_match");
    group.bench_function("resolve_and_json_without_health", |b| {
        b.iter(|| {
            let answer = black_box(&routing).resolve_voice(black_box(&dest), &[]);
            black_box(voice_response_json(sid, Source::Account, Some(42), &answer))
        })
    });
    group.bench_function("resolve_and_json_health_all_up", |b| {
        b.iter(|| {
            let answer = black_box(&routing).resolve_voice_with_health(black_box(&dest), &[], read);
            black_box(voice_response_json(sid, Source::Account, Some(42), &answer))
        })
    });
    cells[7].store(Health::Down as u8, Ordering::Relaxed);
    let answer = routing.resolve_voice_with_health(&dest, &[], read);
    assert!(
        answer.health_reordered,
        "the premise: the first match is down"
    );
    group.bench_function("resolve_and_json_first_match_down", |b| {
        b.iter(|| {
            let answer = black_box(&routing).resolve_voice_with_health(black_box(&dest), &[], read);
            black_box(voice_response_json(sid, Source::Account, Some(42), &answer))
        })
    });
    group.finish();
}

/// What `explain=true` (docs/api.md) costs on top of the answer: the answer alone is untouched
/// (its writer is not even called with an option), and the explained one adds the candidates.
fn explain(c: &mut Criterion) {
    let routing = compiled(10);
    let dest = Destination::parse(TARGET).unwrap();
    let sid = Some("AC0123456789abcdef0123456789abcdef");
    let up = |_: usize| Health::Up;
    let mut group = c.benchmark_group("voice_10_proxies_explain");
    group.bench_function("answer", |b| {
        b.iter(|| {
            let answer = black_box(&routing).resolve_voice_with_health(black_box(&dest), &[], up);
            black_box(voice_response_json(sid, Source::Account, Some(1), &answer))
        })
    });
    group.bench_function("answer_with_explain", |b| {
        b.iter(|| black_box(explained(&routing, &dest, sid)))
    });
    group.finish();
}

/// The answer with its `explain`, as the lookup API writes it.
fn explained(routing: &CompiledRouting, dest: &Destination<'_>, sid: Option<&str>) -> Vec<u8> {
    let up = |_: usize| Health::Up;
    let answer = black_box(routing).resolve_voice_with_health(black_box(dest), &[], up);
    let body = voice_response_json(sid, Source::Account, Some(1), &answer);
    let decider = routing::Decider::Account {
        revision: 1,
        enabled: true,
    };
    routing::with_explain(body, |out| {
        routing::write_voice_explain(
            out,
            decider,
            Some(routing),
            &routing::LookupInput::new(dest, &[]),
            &answer,
            &up,
            &routing::FullBuckets,
        )
    })
}

criterion_group!(benches, resolution, validation, health, explain);

/// `RESOLVE_COUNT=<case>:<iterations>` runs one case a fixed number of times instead of the
/// criterion benches, so that `perf stat -e instructions:u` (run twice, with two iteration
/// counts, and differenced) gives a per-lookup figure that a busy machine cannot blur.
/// Cases: `resolve100`, `json100`, `resolve10`, `json10`; `health100` and `health10` are
/// `json100` and `json10` with each proxy's health read from an atomic cell, as the lookup
/// API does (docs/operations.md); `explain10` is `health10` with its `explain` (docs/api.md);
/// `limited10` is `json10` with `limits` on every proxy, a token taken per lookup
/// (docs/routing.md).
fn count_mode(spec: &str) {
    use std::sync::atomic::{AtomicU8, Ordering};

    let (case, iterations) = spec.split_once(':').expect("case:iterations");
    let iterations: u64 = iterations.parse().expect("iterations");
    let (n, json, cells) = match case {
        "resolve100" => (100, false, false),
        "json100" => (100, true, false),
        "health100" => (100, true, true),
        "resolve10" => (10, false, false),
        "json10" => (10, true, false),
        "health10" => (10, true, true),
        "explain10" => {
            let routing = compiled(10);
            let dest = Destination::parse(TARGET).unwrap();
            let bytes: usize = (0..iterations)
                .map(|_| explained(&routing, &dest, None).len())
                .sum();
            black_box(bytes);
            return;
        }
        "limited10" => {
            // Every proxy with `limits` (never exhausted here): the policy path, the bucket
            // of the route taken through the registry's buckets as the lookup API does.
            let mut doc: serde_json::Value = serde_json::from_str(&config(10)).unwrap();
            for p in doc["outbound-voice"][0]["proxy"].as_array_mut().unwrap() {
                p["limits"] = json!({"cps": 100000, "burst": 1000000});
            }
            let routing = compile(&doc.to_string()).unwrap();
            let registry = multiprovider::capacity::CapacityRegistry::default();
            let buckets = registry.register(None, &routing);
            let dest = Destination::parse(TARGET).unwrap();
            let mut bytes = 0;
            for _ in 0..iterations {
                let input = routing::LookupInput::new(black_box(&dest), &[]);
                let answer =
                    black_box(&routing).resolve_with_capacity(input, |_| Health::Up, &buckets);
                assert!(answer.route.is_some());
                bytes += voice_response_json(None, Source::Account, Some(42), &answer).len();
            }
            black_box(bytes);
            return;
        }
        other => panic!("unknown case {other}"),
    };
    let routing = compiled(n);
    let dest = Destination::parse(TARGET).unwrap();
    let states: Vec<AtomicU8> = (0..n).map(|_| AtomicU8::new(Health::Up as u8)).collect();
    let mut bytes = 0;
    for _ in 0..iterations {
        let answer = if cells {
            black_box(&routing).resolve_voice_with_health(black_box(&dest), &[], |i| {
                Health::from_u8(states[i].load(Ordering::Relaxed))
            })
        } else {
            black_box(&routing).resolve_voice(black_box(&dest), &[])
        };
        if json {
            bytes += voice_response_json(None, Source::Account, Some(42), &answer).len();
        } else {
            bytes += usize::from(answer.route.is_some());
        }
    }
    black_box(bytes);
}

fn main() {
    if let Ok(spec) = std::env::var("RESOLVE_COUNT") {
        count_mode(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
