//! Explain and simulate (docs/api.md) over real HTTP on every backend, and offline: every
//! `reason`, candidates that agree with the answer, simulations that validate like the admin
//! API and leave nothing behind.

use proptest::prelude::*;
use serde_json::{Value, json};

use multiprovider::routing::{
    Decider, Destination, Health, Source, compile, voice_response_json, with_explain,
    write_voice_explain,
};

use crate::common::app::TestApp;
use crate::common::constants::{A_NONE, A1, A2, SMS, TEST_NOW, VOICE_EXAMPLE, VOICE_EXAMPLE_PATH};
use crate::common::on_every_db;
use crate::common::process::BIN;
use crate::common::reliability::stored;
use crate::common::wire::{encode, json_of};

/// `GET …/voice-route?to=…&explain=true`: the `explain` member of the answer.
async fn explain(app: &TestApp, account: &str, to: &str) -> Value {
    let path = format!(
        "/v1/accounts/{account}/voice-route?to={}&explain=true",
        encode(to)
    );
    let (status, body) = app.engine_get(&path).await;
    assert_eq!(status, 200, "{body}");
    body["explain"].clone()
}

async fn sms_explain(app: &TestApp, account: &str) -> Value {
    let (status, body) = app
        .engine_get(&format!("/v1/accounts/{account}/sms-route?explain=true"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["explain"].clone()
}

fn reason(explain: &Value) -> &str {
    explain["reason"].as_str().unwrap()
}

/// The account switched on or off.
async fn enable(app: &TestApp, account: Option<&str>, enabled: &str) {
    let r = app.write(account, None, Some(enabled)).await;
    assert_eq!(r.status(), 200);
}

on_every_db!(no_configuration_at_all, |app, db| {
    let e = explain(&app, A1, "+15551234").await;
    assert_eq!(
        (&e["configuration"], &e["revision"], &e["candidates"]),
        (&json!("none"), &Value::Null, &json!([]))
    );
    assert_eq!(
        reason(&e),
        "no configuration applies: the account has none and there is no global one"
    );
    assert_eq!(
        (&e["target"], &e["target_kind"]),
        (&json!("+15551234"), &json!("number"))
    );
    let s = sms_explain(&app, A1).await;
    assert_eq!(
        (&s["configuration"], &s["pointer"]),
        (&json!("none"), &Value::Null)
    );
    let _ = &db;
});

on_every_db!(
    the_account_decides_and_says_which_proxy_and_why,
    |app, db| {
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        app.configure(Some(A1), VOICE_EXAMPLE).await; // unchanged: still revision 1
        let e = explain(&app, A1, "sip:bob@uri1.com").await;
        assert_eq!(
            e,
            json!({
                "target": "uri1.com", "target_kind": "sip",
                "caller": null, "key": null, "at": TEST_NOW,
                "configuration": "account", "revision": 1,
                "candidates": [
                    {"proxy_index": 0, "pointer": "/outbound-voice/0/proxy/0", "match": "uri.com", "matched": false, "chosen": null, "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": false, "caller": null, "schedule": null}, "capacity": null},
                    {"proxy_index": 1, "pointer": "/outbound-voice/0/proxy/1", "match": "uri[12]\\.com", "matched": true, "chosen": "route", "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": true, "caller": null, "schedule": null}, "capacity": null},
                    {"proxy_index": 2, "pointer": "/outbound-voice/0/proxy/2", "match": ".*", "matched": true, "chosen": "fallback", "health": "up",
                     "priority": 0, "weight": null, "score": null, "share": null,
                     "conditions": {"match": true, "caller": null, "schedule": null}, "capacity": null}
                ],
                "reason": "proxy 1 is the first whose match covers the whole target uri1.com"
            })
        );
        assert_eq!(
            explain(&app, A1, "tel:+1555;x=y").await["target_kind"],
            "tel"
        );
        // POST takes `explain` in its query string.
        let path = format!("/v1/accounts/{A1}/voice-route?explain=true");
        let r = app
            .engine(app.client.post(app.url(&path)))
            .json(&json!({"to": "sip:bob@uri1.com"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(r).await;
        assert_eq!(status, 200);
        assert_eq!(body["explain"], e);
        let _ = &db;
    }
);

on_every_db!(without_explain_the_answer_is_unchanged, |app, db| {
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let plain = format!("/v1/accounts/{A1}/voice-route?to=sip%3Abob%40uri1.com");
    let get = |path: String| {
        let app = &app;
        async move {
            let r = app
                .engine(app.client.get(app.url(&path)))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (_, bytes) = get(plain.clone()).await;
    assert_eq!(get(format!("{plain}&explain=false")).await.1, bytes);
    let (_, explained) = get(format!("{plain}&explain=true")).await;
    let mut explained: Value = serde_json::from_str(&explained).unwrap();
    explained.as_object_mut().unwrap().remove("explain");
    assert_eq!(explained, serde_json::from_str::<Value>(&bytes).unwrap());
    let (status, body) = get(format!("{plain}&explain=maybe")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"parameter\":\"explain\""), "{body}");
    let _ = &db;
});

on_every_db!(every_reason_why_there_is_no_route, |app, db| {
    // No proxy matches: the source is still the account's.
    let narrow =
        r#"{"outbound-voice": [{"proxy": [{"uri": "a.example.com", "match": "\\+44.*"}]}]}"#;
    app.configure(Some(A1), narrow).await;
    let (_, answer) = app.voice_route(A1, "+15551234").await;
    assert_eq!(
        (&answer["source"], &answer["route"]),
        (&json!("account"), &Value::Null)
    );
    let e = explain(&app, A1, "+15551234").await;
    assert_eq!(e["candidates"][0]["matched"], false);
    assert_eq!(
        reason(&e),
        "no proxy of the account's configuration has a match that covers the whole target +15551234"
    );
    // No outbound-voice (and, for SMS, no outbound-sms).
    app.configure(Some(A2), SMS).await;
    let e = explain(&app, A2, "+15551234").await;
    assert_eq!(
        reason(&e),
        "the account's configuration has no outbound-voice, so it routes no calls"
    );
    let s = sms_explain(&app, A2).await;
    assert_eq!(s["pointer"], "/outbound-sms/0/destination_network_id");
    assert!(reason(&s).contains("destination_network_id 1000"), "{s}");
    assert!(reason(&sms_explain(&app, A1).await).contains("has no outbound-sms"));
    // The account's configuration switched off.
    enable(&app, Some(A1), "false").await;
    let e = explain(&app, A1, "+15551234").await;
    assert_eq!(
        (&e["configuration"], &e["candidates"]),
        (&json!("account"), &json!([]))
    );
    assert!(
        reason(&e).starts_with("the account's configuration is disabled"),
        "{e}"
    );
    // An account without its own: the global one, empty (created with the first account).
    let e = explain(&app, A_NONE, "+15551234").await;
    assert_eq!(
        (&e["configuration"], &e["revision"]),
        (&json!("global"), &json!(1))
    );
    assert_eq!(
        reason(&e),
        "no configuration applies: the account has none and the global one is empty"
    );
    // The global one with routing decides for it…
    app.configure(None, VOICE_EXAMPLE).await;
    let e = explain(&app, A_NONE, "sip:x@uri2.com").await;
    assert_eq!(
        (&e["configuration"], &e["revision"]),
        (&json!("global"), &json!(2))
    );
    assert!(reason(&e).starts_with("proxy 1 is the first"), "{e}");
    // …and, disabled, decides for nobody: not the accounts without one…
    enable(&app, None, "false").await;
    let e = explain(&app, A_NONE, "sip:x@uri2.com").await;
    assert_eq!(
        reason(&e),
        "no configuration applies: the account has none and the global one is disabled"
    );
    // …nor those with one of their own.
    let e = explain(&app, A2, "+1").await;
    assert_eq!(
        (&e["configuration"], &e["revision"]),
        (&json!("account"), &json!(1))
    );
    assert!(
        reason(&e).contains("global configuration (revision 3) is disabled"),
        "{e}"
    );
    let _ = &db;
});

on_every_db!(the_reason_says_when_health_changed_the_order, |app, db| {
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    // Proxy 1 of the example is 192.168.0.1: five failures take it down (no SIP is sent).
    let report = json!({"proxy": "192.168.0.1", "outcome": "failure", "sip_status": 503});
    for _ in 0..5 {
        let r = app
            .engine(app.client.post(app.url("/v1/outcomes")))
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let e = explain(&app, A1, "sip:bob@uri1.com").await;
    assert_eq!(e["candidates"][1]["health"], "down");
    assert_eq!(e["candidates"][1]["chosen"], "fallback");
    assert_eq!(e["candidates"][2]["chosen"], "route");
    assert_eq!(
        reason(&e),
        "proxy 2 is the first whose match covers the whole target uri1.com and that is not \
         down: proxy 1 also matches first but is down, so health moved it last"
    );
    let _ = &db;
});

// ---- simulation

async fn simulate(app: &TestApp, kind: &str, body: &Value) -> (u16, Value) {
    let url = app.url(&format!("/v1/simulate/{kind}"));
    let r = app
        .admin(app.client.post(url))
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

on_every_db!(
    a_simulation_answers_like_a_lookup_of_the_draft,
    |app, db| {
        let config: Value = serde_json::from_str(VOICE_EXAMPLE).unwrap();
        let to = "sip:bob@uri1.com";
        // As a JSON object, or as a string: the same answer.
        let (status, as_object) = simulate(
            &app,
            "voice-route",
            &json!({"configuration": config, "to": to}),
        )
        .await;
        assert_eq!(status, 200, "{as_object}");
        let (_, as_string) = simulate(
            &app,
            "voice-route",
            &json!({"configuration": VOICE_EXAMPLE, "to": to}),
        )
        .await;
        assert_eq!(as_object, as_string);
        assert_eq!(
            (
                &as_object["account_sid"],
                &as_object["source"],
                &as_object["revision"]
            ),
            (&Value::Null, &json!("draft"), &Value::Null)
        );
        assert_eq!(
            (
                &as_object["explain"]["configuration"],
                &as_object["explain"]["revision"]
            ),
            (&json!("draft"), &Value::Null)
        );
        // Exactly what a lookup answers once it is an account's configuration.
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        let (_, looked_up) = app.voice_route(A1, to).await;
        assert_eq!(as_object["route"], looked_up["route"]);
        assert_eq!(as_object["fallbacks"], looked_up["fallbacks"]);
        let (status, sms) = simulate(&app, "sms-route", &json!({"configuration": SMS})).await;
        assert_eq!(
            (status, &sms["source"], &sms["tlvs"][0]["value"]),
            (200, &json!("draft"), &json!("1000"))
        );
        assert!(reason(&sms["explain"]).starts_with("the draft configuration sets"));
        let _ = &db;
    }
);

on_every_db!(
    an_invalid_draft_gets_the_admin_apis_error_body,
    |app, db| {
        let bad =
            r#"{"outbound-voice": [{"proxy": [{"uri": "a.com", "usename": "x", "match": "("}]}]}"#;
        let admin = app.write(Some(A1), Some(bad), None).await;
        let (status, admin_body) = json_of(admin).await;
        assert_eq!(status, 400);
        let (status, body) = simulate(
            &app,
            "voice-route",
            &json!({"configuration": bad, "to": "+1"}),
        )
        .await;
        assert_eq!((status, &body), (400, &admin_body));
        let (status, body) = simulate(&app, "sms-route", &json!({"configuration": bad})).await;
        assert_eq!((status, &body), (400, &admin_body));
        // A bad destination is a `to` problem; with a bad configuration, both at once.
        let (status, body) = simulate(
            &app,
            "voice-route",
            &json!({"configuration": SMS, "to": "client:alice"}),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["parameter"], "to");
        let (_, body) = simulate(
            &app,
            "voice-route",
            &json!({"configuration": bad, "to": ""}),
        )
        .await;
        assert_eq!(body["message"], "invalid parameters: ConfigurationData, to");
        // Unknown members and a body that is not JSON.
        let (status, body) = simulate(
            &app,
            "sms-route",
            &json!({"configuration": SMS, "to": "+1"}),
        )
        .await;
        assert_eq!(
            (status, &body["errors"][0]["parameter"]),
            (400, &json!("to"))
        );
        let r = app
            .admin(app.client.post(app.url("/v1/simulate/sms-route")))
            .body("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let _ = &db;
    }
);

on_every_db!(a_simulation_writes_and_caches_nothing, |app, db| {
    app.configure(Some(A1), VOICE_EXAMPLE).await;
    let before = stored(app.state().configs.store()).await;
    let cached = app.state().configs.cache().len();
    let (_, lookup_before) = app.voice_route(A1, "sip:bob@uri1.com").await;
    let other = r#"{"outbound-voice": [{"proxy": [{"uri": "sim.example.com"}]}], "outbound-sms": [{"destination_network_id": 7}]}"#;
    for kind in ["voice-route", "sms-route"] {
        let body = if kind == "sms-route" {
            json!({"configuration": other})
        } else {
            json!({"configuration": other, "to": "+1"})
        };
        assert_eq!(simulate(&app, kind, &body).await.0, 200);
    }
    assert_eq!(stored(app.state().configs.store()).await, before);
    assert_eq!(app.state().configs.cache().len(), cached);
    assert_eq!(
        app.voice_route(A1, "sip:bob@uri1.com").await.1,
        lookup_before
    );
    let (_, proxies) = app.engine_get("/v1/proxies").await;
    assert!(
        !proxies.to_string().contains("sim.example.com"),
        "{proxies}"
    );
    let _ = &db;
});

on_every_db!(only_the_super_admin_simulates, |app, db| {
    let r = app
        .engine(app.client.post(app.url("/v1/simulate/sms-route")))
        .body(json!({"configuration": SMS}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .post(app.url("/v1/simulate/voice-route"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _ = &db;
});

// ---- offline

#[test]
fn resolve_explains_offline() {
    let out = std::process::Command::new(BIN)
        .args([
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
            "--explain",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["explain"]["candidates"][1]["chosen"], "route");
    assert_eq!(
        answer["explain"]["reason"],
        "proxy 1 is the first whose match covers the whole target uri1.com"
    );
    let plain = std::process::Command::new(BIN)
        .args([
            "resolve",
            "--config",
            VOICE_EXAMPLE_PATH,
            "--to",
            "sip:bob@uri1.com",
        ])
        .output()
        .unwrap();
    let mut without: Value = answer.clone();
    without.as_object_mut().unwrap().remove("explain");
    assert_eq!(
        serde_json::from_slice::<Value>(&plain.stdout).unwrap(),
        without
    );
}

/// A configuration of `patterns` (each a proxy), as JSON text.
fn configuration(patterns: &[&str]) -> String {
    let proxies: Vec<Value> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"uri": format!("p{i}.example.com"), "match": p}))
        .collect();
    json!({"outbound-voice": [{"proxy": proxies}]}).to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the configuration, destination and health: each candidate is matched exactly
    /// when its expression (checked here with the `regex` crate, apart from the service's
    /// matcher) covers the whole target, the route and fallbacks of the answer are exactly the
    /// candidates chosen as such, and every health is the one given.
    #[test]
    fn explained_candidates_agree_with_the_answer(
        patterns in prop::collection::vec(prop::sample::select(vec![
            ".*", r"\+1.*", r"\+44\d+", r"uri[12]\.com", "URI1.COM", "alice|bob", "x", "^uri.*", r"[0-9]{3,}",
        ]), 1..8),
        to in prop::sample::select(vec![
            "+15551234", "+4420", "sip:a@uri1.com", "sip:a@uri2.com:5080", "tel:+1555", "alice", "123", "sip:b@x",
        ]),
        down in prop::collection::vec(any::<bool>(), 8),
    ) {
        let compiled = compile(&configuration(&patterns)).unwrap();
        let dest = Destination::parse(to).unwrap();
        let health = |i: usize| if down[i] { Health::Down } else { Health::Up };
        let answer = compiled.resolve_voice_with_health(&dest, &[], health);
        let body = voice_response_json(None, Source::Account, Some(1), &answer);
        let decider = Decider::Account { revision: 1, enabled: true };
        let body = with_explain(body, |out| {
            write_voice_explain(out, decider, Some(&compiled), &multiprovider::routing::LookupInput::new(&dest, &[]), &answer, &health, &multiprovider::routing::FullBuckets)
        });
        let v: Value = serde_json::from_slice(&body).unwrap();
        let target = dest.target();
        let candidates = v["explain"]["candidates"].as_array().unwrap();
        prop_assert_eq!(candidates.len(), patterns.len());
        let mut chosen_route = None;
        let mut chosen_fallbacks = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let re = regex::RegexBuilder::new(&format!("^(?:{})$", patterns[i]))
                .case_insensitive(true)
                .build()
                .unwrap();
            prop_assert_eq!(&c["matched"], &json!(re.is_match(target)));
            prop_assert_eq!(&c["health"], &json!(health(i).as_str()));
            match c["chosen"].as_str() {
                Some("route") => chosen_route = Some(i),
                Some("fallback") => chosen_fallbacks.push(i),
                None => prop_assert_eq!(&c["matched"], &json!(false)),
                Some(other) => prop_assert!(false, "chosen {}", other),
            }
        }
        let route = v["route"]["proxy_index"].as_u64().map(|i| i as usize);
        prop_assert_eq!(chosen_route, route);
        let mut fallbacks: Vec<usize> = v["fallbacks"].as_array().unwrap().iter()
            .map(|f| f["proxy_index"].as_u64().unwrap() as usize).collect();
        fallbacks.sort_unstable();
        prop_assert_eq!(chosen_fallbacks, fallbacks);
        prop_assert!(!v["explain"]["reason"].as_str().unwrap().is_empty());
    }
}
