//! Reports, ordering, the proxy list, metrics and bad input, on every backend.

use std::time::Duration;

use multiprovider::routing::{Destination, Source, compile, voice_response_json};
use serde_json::{Value, json};

use super::support::{HealthApi, health, spawn, voice_config, within};
use crate::common::constants::{A1, A2, J};
use crate::common::db::fresh_sqlite;
use crate::common::on_every_db;

const P1: &str = "127.0.0.11";
const P2: &str = "sip:127.0.0.12:5070;transport=udp";
const P3: &str = "sips:127.0.0.13";

fn three() -> String {
    voice_config(&[P1, P2, P3])
}

on_every_db!(
    without_reports_answers_are_those_of_section_5_with_health_up,
    |db| {
        let app = spawn(&db.url, |_| {}).await;
        let revision = app.configure(Some(A1), &three()).await["revision"].as_i64();
        assert!(revision.is_some());
        let served = app.voice_bytes(A1).await;
        // Byte for byte what the routing core answers offline (every proxy up).
        let routing = compile(&three()).unwrap();
        let dest = Destination::parse("sip:bob@example.com").unwrap();
        let offline = voice_response_json(
            Some(A1),
            Source::Account,
            revision,
            &routing.resolve_voice(&dest, &[]),
        );
        assert_eq!(
            String::from_utf8(served).unwrap(),
            String::from_utf8(offline).unwrap(),
            "{}",
            db.kind
        );
        assert_eq!(
            app.order(A1).await,
            [(P1, "up"), (P2, "up"), (P3, "up")].map(|(u, h)| (u.to_owned(), h.to_owned()))
        );
        app.stop().await;
    }
);

on_every_db!(
    failures_take_a_proxy_down_for_every_account_and_a_success_brings_it_back,
    |db| {
        let app = spawn(&db.url, health(3, Duration::from_secs(30))).await;
        app.configure(Some(A1), &three()).await;
        // Another account names the same proxy differently (explicit default port, params).
        app.configure(Some(A2), &voice_config(&["sip:127.0.0.11:5060;lr", P3]))
            .await;
        let key = "127.0.0.11:5060";
        // Two failures: still up (the threshold is 3), and a success resets the count.
        app.report(key, "failure", 2).await;
        app.report("sip:127.0.0.11;lr", "success", 1).await;
        app.report(key, "timeout", 2).await;
        assert_eq!(app.uris(A1).await[0], P1, "{}", db.kind);
        let p = app.proxy(key).await.unwrap();
        assert_eq!(
            (p["health"].clone(), p["consecutive_failures"].clone()),
            (json!("up"), json!(2))
        );
        assert!(
            p["since"].is_null() && p["last_outcome_at"].is_string(),
            "{p}"
        );
        // The third consecutive failure: a 503 is a failure whatever `outcome` says.
        let (status, body) = app
            .report_raw(
                &json!({"proxy": "127.0.0.11", "outcome": "success", "sip_status": 503})
                    .to_string(),
                None,
            )
            .await;
        assert_eq!((status, body), (202, json!({"accepted": 1, "ignored": 0})));
        assert_eq!(
            app.order(A1).await,
            [(P2, "up"), (P3, "up"), (P1, "down")].map(|(u, h)| (u.to_owned(), h.to_owned())),
            "{}",
            db.kind
        );
        assert_eq!(app.uris(A2).await, [P3, "sip:127.0.0.11:5060;lr"]);
        let p = app.proxy(key).await.unwrap();
        assert_eq!(p["health"], "down");
        assert_eq!(p["configurations"], 2);
        assert!(p["since"].as_str().unwrap().ends_with('Z'), "{p}");
        let (_, down) = app.proxies("?health=down").await;
        assert_eq!(down["total"], 1);
        assert_eq!(down["proxies"][0]["proxy"], key);
        assert_eq!(down["uri"], "/v1/proxies?health=down&Page=0&PageSize=50");
        let metrics = app
            .metrics_with("multiprovider_proxies{health=\"down\"} 1")
            .await;
        assert!(
            metrics.contains("multiprovider_proxies{health=\"down\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("multiprovider_proxy_transitions_total{to=\"down\"}"),
            "{metrics}"
        );
        // Failures while down change nothing; a success makes it up at once.
        app.report(key, "failure", 10).await;
        assert_eq!(app.proxy(key).await.unwrap()["health"], "down");
        app.report_raw(
            &json!({"proxy": key, "outcome": "timeout", "sip_status": 486}).to_string(),
            Some("text/plain"),
        )
        .await;
        assert_eq!(app.uris(A1).await, [P1, P2, P3]);
        assert_eq!(app.proxy(key).await.unwrap()["consecutive_failures"], 0);
        app.stop().await;
    }
);

on_every_db!(
    when_every_matching_proxy_is_down_the_route_is_the_first_of_them,
    |db| {
        let app = spawn(&db.url, health(1, Duration::from_secs(30))).await;
        app.configure(Some(A1), &three()).await;
        app.report("127.0.0.12:5070", "failure", 1).await;
        app.report("sips:127.0.0.13", "failure", 1).await;
        assert_eq!(app.uris(A1).await, [P1, P2, P3]);
        app.report("127.0.0.11", "failure", 1).await;
        assert_eq!(
            app.order(A1).await,
            [(P1, "down"), (P2, "down"), (P3, "down")].map(|(u, h)| (u.to_owned(), h.to_owned())),
            "{}",
            db.kind
        );
        app.stop().await;
    }
);

on_every_db!(a_down_proxy_probes_after_its_cool_down, |db| {
    let app = spawn(&db.url, health(1, Duration::from_secs(1))).await;
    app.configure(Some(A1), &three()).await;
    app.report(P1, "failure", 1).await;
    assert_eq!(app.uris(A1).await, [P2, P3, P1]);
    within(
        Duration::from_secs(3),
        "probing after the cool-down",
        || async { app.proxy("127.0.0.11:5060").await.unwrap()["health"] == "probing" },
    )
    .await;
    // Probing proxies are answered with the up ones, in configured order.
    assert_eq!(
        app.order(A1).await[0],
        (P1.to_owned(), "probing".to_owned())
    );
    // One failure: down for another cool-down.
    app.report(P1, "failure", 1).await;
    assert_eq!(app.uris(A1).await, [P2, P3, P1]);
    within(Duration::from_secs(3), "probing again", || async {
        app.proxy("127.0.0.11:5060").await.unwrap()["health"] == "probing"
    })
    .await;
    // One success: up.
    app.report(P1, "success", 1).await;
    assert_eq!(app.order(A1).await[0], (P1.to_owned(), "up".to_owned()));
    let metrics = app
        .metrics_with("multiprovider_proxy_transitions_total")
        .await;
    for to in ["up", "down", "probing"] {
        assert!(
            metrics.contains(&format!(
                "multiprovider_proxy_transitions_total{{to=\"{to}\"}}"
            )),
            "{metrics}"
        );
    }
    app.stop().await;
});

on_every_db!(
    a_batch_with_one_bad_entry_is_refused_whole_with_a_pointer_to_it,
    |db| {
        let app = spawn(&db.url, health(1, Duration::from_secs(30))).await;
        app.configure(Some(A1), &three()).await;
        let batch = json!([
            {"proxy": "127.0.0.11", "outcome": "failure"},
            {"proxy": "127.0.0.12:5070", "outcome": "failure"},
            {"proxy": "127.0.0.13", "outcome": "broken"},
        ]);
        let (status, body) = app
            .report_raw(&batch.to_string(), Some("application/json"))
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"],
            json!([{"pointer": "/2/outcome", "message": "must be \"success\", \"failure\" or \"timeout\""}])
        );
        // Nothing of it was counted: one failure is enough to go down here.
        assert_eq!(app.uris(A1).await, [P1, P2, P3], "{}", db.kind);
        assert!(app.proxy("127.0.0.11:5060").await.unwrap()["last_outcome_at"].is_null());
        for (bad, pointer) in [
            ("{\"proxy\": \"127.0.0.11\"", ""),
            ("[1]", "/0"),
            (
                "{\"proxy\": \"127.0.0.11\", \"outcome\": \"failure\", \"sip_status\": 1000}",
                "/sip_status",
            ),
            (
                "{\"proxy\": \"host name\", \"outcome\": \"failure\"}",
                "/proxy",
            ),
            (
                "{\"proxy\": \"127.0.0.11\", \"outcome\": \"failure\", \"statu\": 1}",
                "/statu",
            ),
        ] {
            let (status, body) = app
                .report_raw(bad, Some("application/x-www-form-urlencoded"))
                .await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert_eq!(body["errors"][0]["pointer"], pointer, "{bad}: {body}");
            assert_eq!(body["status"], 400);
        }
        let too_many = json!(vec![
            json!({"proxy": "127.0.0.11", "outcome": "failure"});
            1001
        ]);
        let (status, body) = app.report_raw(&too_many.to_string(), None).await;
        assert_eq!(
            (status, body["errors"][0]["pointer"].clone()),
            (400, json!(""))
        );
        assert_eq!(app.uris(A1).await, [P1, P2, P3]);
        // Authentication: engine token or admin; nothing else.
        let ok = json!({"proxy": "127.0.0.11", "outcome": "success"}).to_string();
        let r = app
            .client
            .post(app.url("/v1/outcomes"))
            .body(ok.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let r = app
            .admin(app.client.post(app.url("/v1/outcomes")))
            .body(ok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let r = app.client.get(app.url("/v1/proxies")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        app.stop().await;
    }
);

on_every_db!(
    reports_for_unknown_proxies_are_ignored_and_cannot_grow_memory,
    |db| {
        let app = spawn(&db.url, |_| {}).await;
        app.configure(Some(A1), &three()).await;
        let tracked = app.state().configs.cache().health().len();
        assert_eq!(tracked, 3);
        // 20,000 reports for 20,000 distinct proxies that no configuration names.
        for batch in 0..20 {
            let reports: Vec<Value> = (0..1000)
            .map(|i| json!({"proxy": format!("gw{}.flood.example.net:{}", batch * 1000 + i, 1000 + i), "outcome": "failure"}))
            .collect();
            let (status, body) = app
                .report_raw(&Value::Array(reports).to_string(), None)
                .await;
            assert_eq!(
                (status, body),
                (202, json!({"accepted": 1000, "ignored": 1000}))
            );
        }
        assert_eq!(
            app.state().configs.cache().health().len(),
            tracked,
            "{}",
            db.kind
        );
        let (_, list) = app.proxies("").await;
        assert_eq!(list["total"], 3);
        app.stop().await;
    }
);

on_every_db!(a_proxy_no_configuration_uses_any_more_is_forgotten, |db| {
    let app = spawn(&db.url, health(1, Duration::from_secs(30))).await;
    app.configure(Some(A1), &three()).await;
    app.configure(Some(A2), &voice_config(&[P1])).await;
    app.report(P2, "failure", 1).await;
    let r = app
        .delete(&format!("{J}/multi_provider?AccountSid={A1}"))
        .await;
    assert_eq!(r.status(), 204);
    within(Duration::from_secs(3), "forgotten", || async {
        app.state().configs.cache().health().len() == 1
    })
    .await;
    let (_, list) = app.proxies("").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["proxies"][0]["proxy"], "127.0.0.11:5060");
    assert_eq!(list["proxies"][0]["configurations"], 1);
    let v = app.report(P2, "failure", 1).await;
    assert_eq!(v["ignored"], 1);
    // Named again, it starts again up.
    app.configure(Some(A1), &three()).await;
    assert_eq!(app.uris(A1).await, [P1, P2, P3], "{}", db.kind);
    app.stop().await;
});

#[tokio::test]
async fn the_proxy_list_pages_and_checks_its_parameters() {
    let db = fresh_sqlite();
    let app = spawn(&db.url, |_| {}).await;
    let uris: Vec<String> = (1..=5).map(|i| format!("127.0.0.{i}")).collect();
    let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
    app.configure(Some(A1), &voice_config(&refs)).await;
    let (status, page) = app.proxies("?Page=1&PageSize=2").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = page["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["proxy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["127.0.0.3:5060", "127.0.0.4:5060"]);
    assert_eq!(
        (
            page["page"].clone(),
            page["num_pages"].clone(),
            page["total"].clone(),
            page["start"].clone(),
            page["end"].clone()
        ),
        (json!(1), json!(3), json!(5), json!(2), json!(3))
    );
    assert_eq!(page["next_page_uri"], "/v1/proxies?Page=2&PageSize=2");
    assert_eq!(
        page["proxies"][0],
        json!({"proxy": "127.0.0.3:5060", "health": "up", "consecutive_failures": 0,
               "since": null, "last_outcome_at": null, "configurations": 1})
    );
    for bad in [
        "?health=sideways",
        "?PageSize=0",
        "?Page=-1",
        "?PageSize=1001",
        "?Page=1&Page=2",
    ] {
        let (status, body) = app.proxies(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, empty) = app.proxies("?health=probing").await;
    assert_eq!(
        (empty["total"].clone(), empty["proxies"].clone()),
        (json!(0), json!([]))
    );
    app.stop().await;
}
