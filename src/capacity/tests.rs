//! The buckets with an injected clock: exact behaviour.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::routing::{CapacityView, compile};

const SECOND: u64 = 1_000_000;

fn limits(cps: u32, burst: u32) -> Limits {
    Limits { cps, burst }
}

#[test]
fn a_new_bucket_is_full_and_drains_to_its_burst() {
    let mut b = BucketState::new(limits(10, 3), 0, 1);
    for _ in 0..3 {
        assert_eq!(b.take(0, 1), Ok(()));
    }
    // Empty: one token returns in 1/10 s.
    assert_eq!(b.take(0, 1), Err(100));
    assert_eq!(b.peek(0, 1), Err(100));
}

#[test]
fn refill_is_continuous_and_fractional() {
    let mut b = BucketState::new(limits(4, 1), 0, 1);
    assert_eq!(b.take(0, 1), Ok(()));
    // 100 ms at 4/s: 0.4 of a token; the rest (0.6) returns in 150 ms.
    assert_eq!(b.take(100_000, 1), Err(150));
    assert!((b.tokens() - 0.4).abs() < 1e-9);
    // 250 ms in all: one whole token.
    assert_eq!(b.take(250_000, 1), Ok(()));
    assert!(b.tokens().abs() < 1e-9);
}

#[test]
fn refill_stops_at_burst() {
    let mut b = BucketState::new(limits(5, 2), 0, 1);
    assert_eq!(b.take(0, 1), Ok(()));
    assert_eq!(b.take(0, 1), Ok(()));
    // An hour later: still only `burst` tokens.
    let later = 3600 * SECOND;
    assert_eq!(b.state(later, 1).tokens, 2.0);
    assert_eq!(b.take(later, 1), Ok(()));
    assert_eq!(b.take(later, 1), Ok(()));
    assert_eq!(b.take(later, 1), Err(200));
}

#[test]
fn an_edit_keeps_the_tokens_capped_at_the_new_burst() {
    let mut b = BucketState::new(limits(10, 10), 0, 1);
    for _ in 0..4 {
        b.take(0, 1).unwrap();
    }
    // 6 left; a larger burst keeps 6 (no free refill).
    b.set_limits(limits(10, 20), 0, 1);
    assert_eq!(b.tokens(), 6.0);
    // A smaller burst caps them.
    b.set_limits(limits(10, 2), 0, 1);
    assert_eq!(b.tokens(), 2.0);
    // The new cps refills.
    b.take(0, 1).unwrap();
    b.take(0, 1).unwrap();
    b.set_limits(limits(1, 2), 0, 1);
    assert_eq!(b.take(0, 1), Err(1000));
}

#[test]
fn each_instance_enforces_its_share() {
    // 10 cps, burst 3 on 2 instances: 5 cps and 1.5 tokens each.
    assert_eq!(share(limits(10, 3), 2), (5.0, 1.5));
    // Never less than one token of burst.
    assert_eq!(share(limits(10, 3), 4), (2.5, 1.0));
    assert_eq!(share(limits(10, 3), 0), (10.0, 3.0));
    let mut b = BucketState::new(limits(10, 3), 0, 2);
    assert_eq!(b.take(0, 2), Ok(()));
    assert_eq!(b.take(0, 2), Err(100));
    // N grows: the tokens are capped at the smaller share at the next refill.
    let mut b = BucketState::new(limits(10, 10), 0, 1);
    assert_eq!(b.state(0, 5).tokens, 2.0);
}

#[test]
fn retry_after_names_when_the_first_token_returns() {
    let mut b = BucketState::new(limits(3, 1), 0, 1);
    b.take(0, 1).unwrap();
    // 1/3 s, rounded up to the millisecond.
    assert_eq!(b.take(0, 1), Err(334));
    assert_eq!(b.take(333_000, 1), Err(1));
    assert_eq!(b.take(333_334, 1), Ok(()));
}

fn fake_clock() -> (Clock, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(0));
    let read = now.clone();
    (Arc::new(move || read.load(Ordering::SeqCst)), now)
}

const LIMITED: &str = r#"{"outbound-voice": [{"proxy": [
    {"uri": "10.0.0.1", "limits": {"cps": 2, "burst": 2}},
    {"uri": "10.0.0.2"}]}]}"#;

#[test]
fn buckets_live_as_long_as_a_configuration_holds_them() {
    let (clock, now) = fake_clock();
    let registry = CapacityRegistry::new(clock);
    let routing = compile(LIMITED).unwrap();
    let first = registry.register(None, &routing);
    assert_eq!(registry.len(), 1);
    first.take(0).unwrap();
    assert!(first.state(1).is_none(), "no limits, no bucket");
    // The edit (same uri, new burst) keeps the one token left.
    let edited = compile(&LIMITED.replace("\"burst\": 2", "\"burst\": 5")).unwrap();
    let second = registry.register(None, &edited);
    drop(first);
    assert_eq!(second.state(0).unwrap().tokens, 1.0);
    assert_eq!(second.state(0).unwrap().burst, 5.0);
    now.store(SECOND, Ordering::SeqCst);
    assert_eq!(second.state(0).unwrap().tokens, 3.0);
    // Another scope has its own bucket.
    let account = crate::sid::AccountSid::parse("AC00000000000000000000000000000001").unwrap();
    let other = registry.register(Some(account), &routing);
    assert_eq!(other.state(0).unwrap().tokens, 2.0);
    assert_eq!(registry.len(), 2);
    // Removed proxy (or configuration): its bucket goes.
    drop(other);
    registry.sweep();
    assert_eq!(registry.len(), 1);
    // Without limits nothing is held.
    let plain = compile(&LIMITED.replace(", \"limits\": {\"cps\": 2, \"burst\": 2}", "")).unwrap();
    let none = registry.register(None, &plain);
    assert_eq!(format!("{none:?}"), "ProxyBuckets(0)");
    drop(second);
    registry.sweep();
    assert!(registry.is_empty());
}

#[test]
fn lookups_take_from_the_route_only_and_leave_full_proxies_out() {
    use crate::routing::{Destination, LookupInput, Source, voice_response_json};
    let (clock, now) = fake_clock();
    let registry = CapacityRegistry::new(clock);
    let config = r#"{"outbound-voice": [{"proxy": [
        {"uri": "10.0.0.1", "limits": {"cps": 1, "burst": 1}},
        {"uri": "10.0.0.2", "limits": {"cps": 2, "burst": 2}}]}]}"#;
    let routing = compile(config).unwrap();
    let buckets = registry.register(None, &routing);
    let dest = Destination::parse("+15551234").unwrap();
    let ask = || {
        let answer = routing.resolve_with_capacity(
            LookupInput::new(&dest, &[]),
            |_| crate::routing::Health::Up,
            &buckets,
        );
        let body = voice_response_json(None, Source::Global, Some(1), &answer);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    };
    let a = ask();
    assert_eq!(a["route"]["proxy_index"], 0);
    assert_eq!(a["fallbacks"][0]["proxy_index"], 1);
    assert!(a.get("unavailable").is_none());
    // Proxy 0 empty: left out; proxy 1 routes (its fallback took no token before).
    let b = ask();
    assert_eq!(b["route"]["proxy_index"], 1);
    assert_eq!(b["fallbacks"], serde_json::json!([]));
    let c = ask();
    assert_eq!(c["route"]["proxy_index"], 1);
    let d = ask();
    assert_eq!(d["route"], serde_json::Value::Null);
    assert_eq!(d["fallbacks"], serde_json::json!([]));
    // The first token: proxy 1's in 500 ms (proxy 0's in 1000 ms).
    assert_eq!(
        d["unavailable"],
        serde_json::json!({"reason": "capacity", "retry_after_ms": 500})
    );
    now.store(500_000, Ordering::SeqCst);
    assert_eq!(ask()["route"]["proxy_index"], 1);
}
