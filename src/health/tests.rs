//! The registry: configurations share a proxy's breaker, memory follows the configurations.

use super::*;
use crate::routing::compile;

const S: i64 = 1_000_000;

fn routing(uris: &[&str]) -> CompiledRouting {
    let proxies: Vec<String> = uris
        .iter()
        .map(|u| format!(r#"{{"uri": "{u}"}}"#))
        .collect();
    compile(&format!(
        r#"{{"outbound-voice": [{{"proxy": [{}]}}]}}"#,
        proxies.join(",")
    ))
    .unwrap()
}

fn policy() -> Policy {
    Policy {
        failures: 2,
        cooldown_micros: 10 * S,
    }
}

#[test]
fn configurations_share_a_breaker_and_are_forgotten_with_them() {
    let registry = HealthRegistry::new(policy());
    let a = registry.register(&routing(&["sip:10.0.0.1;lr", "10.0.0.2:5070"]), true);
    let b = registry.register(&routing(&["10.0.0.1:5060", "sips:10.0.0.3"]), true);
    assert_eq!(registry.len(), 3);
    // Unknown proxies are ignored and not kept.
    assert!(!registry.observe("10.9.9.9:5060", Observation::Failure, S));
    assert_eq!(registry.len(), 3);
    assert!(registry.observe("10.0.0.1:5060", Observation::Failure, S));
    assert!(registry.observe("10.0.0.1:5060", Observation::Failure, 2 * S));
    // Both configurations see it down, each at its own index.
    assert_eq!(
        (a.get(0), a.get(1), b.get(0), b.get(1)),
        (Health::Down, Health::Up, Health::Down, Health::Up)
    );
    assert_eq!(a.get(7), Health::Up);
    let views = registry.list();
    let shared = views
        .iter()
        .find(|v| v.proxy.as_str() == "10.0.0.1:5060")
        .unwrap();
    assert_eq!(
        (
            shared.health,
            shared.consecutive_failures,
            shared.since,
            shared.last_outcome_at,
            shared.configurations
        ),
        (Health::Down, 2, Some(2 * S), Some(2 * S), 2)
    );
    // sips: proxies are not probed.
    let targets: Vec<String> = registry
        .probe_targets()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(targets, ["10.0.0.1:5060", "10.0.0.2:5070"]);
    // Cool-down.
    registry.tick(11 * S);
    assert_eq!(a.get(0), Health::Down);
    registry.tick(12 * S);
    assert_eq!(a.get(0), Health::Probing);
    drop(a);
    registry.sweep();
    assert_eq!(
        registry.len(),
        2,
        "10.0.0.2 is used by no configuration any more"
    );
    assert!(!registry.observe("10.0.0.2:5070", Observation::Failure, 13 * S));
    drop(b);
    registry.sweep();
    assert!(registry.is_empty());
}

#[test]
fn a_proxy_named_twice_counts_one_configuration() {
    let registry = HealthRegistry::new(policy());
    let a = registry.register(&routing(&["sips:10.0.0.1:5060", "10.0.0.1"]), true);
    let views = registry.list();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].configurations, 1);
    assert_eq!(registry.probe_targets().len(), 1, "named once with sip:");
    registry.observe("10.0.0.1:5060", Observation::Failure, S);
    registry.observe("10.0.0.1:5060", Observation::Failure, S);
    assert_eq!((a.get(0), a.get(1)), (Health::Down, Health::Down));
    drop(a);
    registry.sweep();
    assert!(registry.is_empty());
    // Disabled configurations are tracked, not probed.
    let _d = registry.register(&routing(&["10.0.0.1"]), false);
    assert!(registry.probe_targets().is_empty());
    assert_eq!(
        registry.list()[0].health,
        Health::Up,
        "a forgotten proxy starts again up"
    );
}

#[test]
fn shared_transitions_go_to_the_outbox_once_sharing() {
    let registry = HealthRegistry::new(policy());
    let _a = registry.register(&routing(&["10.0.0.1"]), true);
    for t in 1..=2 {
        registry.observe("10.0.0.1:5060", Observation::Failure, t * S);
    }
    assert!(registry.take_outbox().is_empty(), "not sharing");
    registry.observe("10.0.0.1:5060", Observation::Success, 3 * S);
    registry.enable_sharing();
    for t in 4..=5 {
        registry.observe("10.0.0.1:5060", Observation::Failure, t * S);
    }
    // Cool-down expiries and remote transitions are not shared.
    registry.tick(100 * S);
    registry.apply_remote("10.0.0.1:5060", Health::Up, 101 * S);
    let out = registry.take_outbox();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].health, out[0].since), (Health::Down, 5 * S));
    assert_eq!(registry.list()[0].health, Health::Up);
    // An older remote transition loses.
    registry.apply_remote("10.0.0.1:5060", Health::Down, 50 * S);
    assert_eq!(registry.list()[0].health, Health::Up);
}
