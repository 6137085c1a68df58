//! docs/api.md over real HTTP, on SQLite and on PostgreSQL.

use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, A1, ENGINE_TOKEN, J, SMS, VOICE_EXAMPLE};
use crate::common::db::fresh_sqlite;
use crate::common::on_every_db;

/// Sets `account`'s configuration (`None`: the global one) and/or its `Enabled`.
async fn configure(
    app: &TestApp,
    account: Option<&str>,
    config: Option<&str>,
    enabled: Option<&str>,
) {
    let r = app.write(account, config, enabled).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// The source an SMS lookup of `account` answers.
async fn sms_source(app: &TestApp, account: &str) -> Value {
    app.sms_route(account).await.1["source"].clone()
}

/// The voice answer for `account` calling `sip:bob@uri1.com`.
async fn bob(app: &TestApp, account: &str) -> Value {
    app.voice_route(account, "sip:bob@uri1.com").await.1
}

// ---------------------------------------------------------------- answers

on_every_db!(
    the_documented_voice_example_answers_as_documented,
    |app, db| {
        configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
        let (status, v) = app.voice_route(A1, "sip:bob@uri1.com").await;
        assert_eq!(status, 200, "{}", db.kind);
        assert_eq!(v["account_sid"], A1);
        assert_eq!(v["source"], "account");
        let route = &v["route"];
        assert_eq!(route["proxy_index"], 1);
        assert_eq!(
            route["proxy"],
            json!({"uri": "192.168.0.1", "host": "192.168.0.1", "port": null, "params": [], "sip_uri": "sip:192.168.0.1;lr"})
        );
        assert_eq!(route["username"], "someuser1");
        assert_eq!(route["password"], "somepassword1");
        assert_eq!(
            route["request_uri"],
            "sip:bob@uri1.com;newkey1=newvalue1;newkey2=newvalue2"
        );
        assert_eq!(
            route["headers"],
            json!({"To": "newkey3=newvalue3", "X-CustomHeader": "newkey4=newvalue4"})
        );
        assert_eq!(
            route["header_params"][0],
            json!({"header": "Request-URI", "key": "newkey1", "value": "newvalue1"})
        );
        assert_eq!(route["routes"], json!([]));
        assert_eq!(v["fallbacks"].as_array().unwrap().len(), 1);
        assert_eq!(v["fallbacks"][0]["proxy_index"], 2);
    }
);

on_every_db!(a_number_with_a_literal_plus_in_the_query, |app, db| {
    configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    let (_, v) = app
        .engine_get(&format!("/v1/accounts/{A1}/voice-route?to=+15551234"))
        .await;
    assert_eq!(v["route"]["proxy_index"], 2);
    assert_eq!(
        v["route"]["request_uri"],
        "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
    );
});

on_every_db!(a_supplied_to_header_is_appended_to, |app, db| {
    configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    let (status, v) = app
        .voice_post(
            A1,
            &json!({"to": "sip:bob@uri1.com", "headers": {"To": "<sip:bob@uri1.com>;tag=9"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["route"]["headers"]["To"],
        "<sip:bob@uri1.com>;tag=9;newkey3=newvalue3"
    );
});

on_every_db!(the_account_sid_in_the_path_in_any_case, |app, db| {
    configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    let mixed = format!("ac{}", A1[2..].to_uppercase());
    let (status, v) = app.voice_route(&mixed, "sip:alice@uri.com").await;
    assert_eq!(status, 200);
    assert_eq!(v["account_sid"], A1);
    assert_eq!(v["route"]["proxy_index"], 0);
});

on_every_db!(route_headers_become_route_entries, |app, db| {
    let config = json!({
        "outbound-voice": [{"proxy": [{"uri": "sips:edge.example.com:5061;transport=tls", "headers": [
            {"headerName": "Route", "key": "x", "value": "core.example.com:5070"},
            {"headerName": "X-Tenant", "key": "id", "value": "42"}]}]}],
        "outbound-sms": [{"destination_network_id": 1000}]
    })
    .to_string();
    configure(&app, Some(A1), Some(&config), None).await;
    let (_, v) = app.voice_route(A1, "tel:+442071234567").await;
    assert_eq!(
        v["route"]["routes"],
        json!(["<sip:core.example.com:5070;lr>"])
    );
    assert_eq!(
        v["route"]["request_uri"],
        "sips:+442071234567@edge.example.com:5061;transport=tls"
    );
    assert_eq!(
        v["route"]["proxy"]["sip_uri"],
        "sips:edge.example.com:5061;transport=tls;lr"
    );
    assert_eq!(v["route"]["proxy"]["port"], 5061);
    assert_eq!(v["route"]["headers"], json!({"X-Tenant": "id=42"}));
});

on_every_db!(
    the_sms_answer_carries_the_tlv_in_every_encoding,
    |app, db| {
        let config = json!({"outbound-sms": [{"destination_network_id": 1000}]}).to_string();
        configure(&app, Some(A1), Some(&config), None).await;
        let (status, v) = app.sms_route(A1).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"account_sid": A1, "source": "account", "revision": v["revision"], "tlvs": [
        {"tag": 1550, "name": "dest_network_id", "value": "1000", "value_hex": "000003E8", "cstring_hex": "3130303000"}]})
        );
    }
);

// ---------------------------------------------------------------- sources and switches

on_every_db!(with_nothing_configured_the_source_is_none, |app, db| {
    let (status, v) = app.sms_route(A1).await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"account_sid": A1, "source": "none", "revision": null, "tlvs": []})
    );
    let (_, v) = app.voice_route(A1, "+1555").await;
    assert_eq!(
        (
            v["source"].clone(),
            v["route"].clone(),
            v["fallbacks"].clone()
        ),
        (json!("none"), Value::Null, json!([]))
    );
});

on_every_db!(
    an_account_configuration_alone_routes_nobody_else,
    |app, db| {
        // It creates the extension with global `{}`: others get none.
        configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
        assert_eq!(sms_source(&app, A_NONE).await, "none");
    }
);

/// A1 with the voice example, and the global SMS configuration.
async fn account_and_global(app: &TestApp) {
    configure(app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    configure(app, None, Some(SMS), None).await;
}

on_every_db!(
    the_global_configuration_serves_accounts_without_their_own,
    |app, db| {
        account_and_global(&app).await;
        let (_, v) = app.sms_route(A_NONE).await;
        assert_eq!(v["source"], "global");
        assert_eq!(v["tlvs"][0]["value"], "1000");
        // ...but not accounts with their own: no per-section fall-back.
        let (_, v) = app.sms_route(A1).await;
        assert_eq!(
            v,
            json!({"account_sid": A1, "source": "account", "revision": v["revision"], "tlvs": []})
        );
    }
);

on_every_db!(a_disabled_account_gets_none_not_the_global, |app, db| {
    account_and_global(&app).await;
    configure(&app, Some(A1), None, Some("false")).await;
    let v = bob(&app, A1).await;
    assert_eq!(
        (v["source"].clone(), v["route"].clone()),
        (json!("none"), Value::Null)
    );
    assert_eq!(sms_source(&app, A1).await, "none");
    configure(&app, Some(A1), None, Some("TRUE")).await;
    assert_eq!(bob(&app, A1).await["route"]["proxy_index"], 1);
});

on_every_db!(the_global_switch_turns_everybody_off, |app, db| {
    account_and_global(&app).await;
    configure(&app, None, None, Some("false")).await;
    assert_eq!(bob(&app, A1).await["source"], "none");
    assert_eq!(sms_source(&app, A_NONE).await, "none");
    configure(&app, None, None, Some("true")).await;
    assert_eq!(sms_source(&app, A_NONE).await, "global");
});

on_every_db!(an_empty_global_routes_nobody, |app, db| {
    account_and_global(&app).await;
    configure(&app, None, Some("{}"), None).await;
    assert_eq!(sms_source(&app, A_NONE).await, "none");
});

on_every_db!(a_delete_is_seen_at_once, |app, db| {
    configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    let r = app
        .delete(&format!("{J}/multi_provider?AccountSid={A1}"))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(bob(&app, A1).await["source"], "none");
});

on_every_db!(configurations_survive_a_restart, |app, db| {
    // The cache is refilled before the server is ready.
    configure(&app, Some(A_NONE), Some(SMS), None).await;
    let app = app.restart().await;
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(sms_source(&app, A_NONE).await, "account");
    app.stop().await;
});

// ---------------------------------------------------------------- 400 (SQLite only)

/// A server on a fresh SQLite database where A1 has the documentation's voice example.
async fn with_the_voice_example() -> (TestApp, crate::common::db::TestDb) {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
    (app, db)
}

#[tokio::test]
async fn bad_destinations_are_400_naming_to() {
    let (app, _db) = with_the_voice_example().await;
    // Written into the query as they are.
    for to in [
        "",
        "client:alice",
        "sip:bob@",
        "sip:bob@bad_host",
        "a b",
        "x%0D%0Ay",
    ] {
        let (status, v) = app
            .engine_get(&format!("/v1/accounts/{A1}/voice-route?to={to}"))
            .await;
        assert_eq!(status, 400, "{to}");
        assert_eq!(v["status"], 400);
        assert_eq!(v["errors"][0]["parameter"], "to", "{to}");
    }
    let long = "1".repeat(5000);
    assert_eq!(app.voice_route(A1, &long).await.0, 400);
}

#[tokio::test]
async fn a_missing_or_repeated_to_is_400() {
    let (app, _db) = with_the_voice_example().await;
    for query in ["", "?to=1&to=2"] {
        let path = format!("/v1/accounts/{A1}/voice-route{query}");
        assert_eq!(app.engine_get(&path).await.0, 400, "{query}");
    }
}

#[tokio::test]
async fn bad_account_sids_are_400() {
    let (app, _db) = with_the_voice_example().await;
    for bad in [
        "AC123",
        "XX0123456789abcdef0123456789abcdef",
        "AC0123456789abcdef0123456789abcdeg",
    ] {
        assert_eq!(app.sms_route(bad).await.0, 400, "{bad}");
        assert_eq!(app.voice_route(bad, "+1").await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn bad_voice_post_bodies_are_400() {
    let (app, _db) = with_the_voice_example().await;
    for body in [
        json!({"to": "sip:a@b.com", "headers": {"To": "x\r\nVia: evil"}}),
        json!({"to": "sip:a@b.com", "headers": {"To": 5}}),
        json!({"destination": "sip:a@b.com"}),
    ] {
        assert_eq!(app.voice_post(A1, &body).await.0, 400, "{body}");
    }
}

// ---------------------------------------------------------------- 401 (SQLite only)

#[tokio::test]
async fn lookups_take_the_engine_token_or_the_admin_credentials() {
    let (app, _db) = with_the_voice_example().await;
    let path = format!("/v1/accounts/{A1}/sms-route");
    // Nothing, a wrong bearer, a wrong password: 401; admin basic works.
    let r = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"Restcomm realm\""
    );
    let r = app
        .client
        .get(app.url(&path))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url(&path))
        .basic_auth(&app.settings.admin_sid, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .admin(app.client.get(app.url(&path)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn authentication_comes_before_validation() {
    let (app, _db) = with_the_voice_example().await;
    // A bad Sid without credentials is 401.
    let r = app
        .client
        .get(app.url("/v1/accounts/nonsense/sms-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn without_an_engine_token_a_bearer_gets_nowhere() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::without_engine_token()).await;
    let r = app
        .client
        .get(app.url(&format!("/v1/accounts/{A1}/sms-route")))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

// ---------------------------------------------------------------- health and metrics

#[tokio::test]
async fn health_live_and_ready() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let r = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["database"], "reachable");
    assert_eq!(v["cache_loaded"], true);
}

#[tokio::test]
async fn metrics_count_requests_by_route_without_account_sids() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    configure(&app, Some(A1), Some(SMS), None).await;
    app.sms_route(A1).await;
    app.voice_route(A1, "+1555").await;
    // Whatever method a client invents is counted as `other`: no series per invention.
    let invented = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    let r = app
        .client
        .request(invented, app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let text = app.metrics_with("multiprovider_cache_accounts 1\n").await;
    assert!(!text.contains("FROBNICATE"), "{text}");
    for needle in [
        "method=\"other\"",
        "multiprovider_http_requests_total{",
        "route=\"/v1/accounts/{account_sid}/sms-route\"",
        "status=\"200\"",
        "multiprovider_lookup_duration_seconds_bucket{",
        "multiprovider_cache_accounts 1",
        "multiprovider_database_errors_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains(A1), "metrics must not carry account Sids");
    app.stop().await;
}

// ---------------------------------------------------------------- the fast path

/// Well-formed GETs with the engine token are answered by the lookups' fast path, everything
/// else by the router; an admin's lookup always takes the router. For every query shape the
/// two must give the same status, type and body, byte for byte, and both must be counted.
#[tokio::test]
async fn the_fast_path_answers_exactly_as_the_router() {
    let (app, _db) = with_the_voice_example().await;
    let queries = [
        "to=%2B15551234",
        "to=+15551234",
        "to=sip%3Abob%40example.com",
        "to=bob&header=To%3Asip%3Abob%40example.com&header=X-Thing%3A%201",
        "to=bob&unknown=1",
        "to=bob&explain=false",
        "to=bob&explain=true",
        "t%6F=bob",
        "to=bob&to=alice",
        "to=",
        "",
        "to=%ZZ",
        "to=bob&header=NoColon",
        "to=bob&header=To%3Aa&header=to%3Ab",
        "explain",
    ];
    let mut paths: Vec<String> = queries
        .iter()
        .map(|q| format!("/v1/accounts/{A1}/voice-route?{q}"))
        .collect();
    paths.push(format!("/v1/accounts/{A1}/sms-route"));
    paths.push(format!("/v1/accounts/{A1}/sms-route?explain=true"));
    paths.push(format!("/v1/accounts/{A1}/sms-route?x=%41"));
    paths.push(format!(
        "/v1/accounts/{}/voice-route?to=bob",
        A1.to_uppercase()
    ));
    paths.push("/v1/accounts/ACnothex/voice-route?to=bob".to_owned());
    paths.push(format!("/v1/accounts/{A1}/voice-route/?to=bob"));
    for path in &paths {
        let fast = app
            .engine(app.client.get(app.url(path)))
            .send()
            .await
            .unwrap();
        let routed = app
            .admin(app.client.get(app.url(path)))
            .send()
            .await
            .unwrap();
        assert_eq!(fast.status(), routed.status(), "{path}");
        assert_eq!(
            fast.headers().get("content-type"),
            routed.headers().get("content-type"),
            "{path}"
        );
        let (fast, routed) = (fast.bytes().await.unwrap(), routed.bytes().await.unwrap());
        assert_eq!(fast, routed, "{path}");
    }
    let text = app
        .metrics_with("route=\"/v1/accounts/{account_sid}/voice-route\",status=\"200\"")
        .await;
    let count = text
        .lines()
        .find(|l| {
            l.starts_with("multiprovider_http_requests_total")
                && l.contains("method=\"GET\"")
                && l.contains("route=\"/v1/accounts/{account_sid}/voice-route\"")
                && l.contains("status=\"200\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a count of voice lookups");
    // Every 200 of the loop above, through either path (plus the setup's, if any).
    assert!(count >= 2 * 9, "{count}");
}

/// Whenever the router would log a lookup (its debug request span or its "answered" line is
/// enabled, by whatever filter), the fast path leaves the lookup to it: an engine's lookup is
/// logged like an admin's.
#[test]
fn lookups_are_logged_whenever_the_router_would_log_them() {
    for filter in [
        "debug",
        "info,[request]=debug",
        "info,multiprovider::http=debug",
    ] {
        let db = fresh_sqlite();
        let logs = crate::common::logs::with_captured_logs(filter, async {
            let app = spawn_app(&db.url, AppOptions::default()).await;
            configure(&app, Some(A1), Some(VOICE_EXAMPLE), None).await;
            let path = format!("/v1/accounts/{A1}/voice-route?to=bob");
            let engine = app.engine(app.client.get(app.url(&path))).send().await;
            assert_eq!(engine.unwrap().status(), 200);
            let admin = app.admin(app.client.get(app.url(&path))).send().await;
            assert_eq!(admin.unwrap().status(), 200);
            app.stop().await;
        });
        let answered = logs
            .lines()
            .filter(|l| l.contains("answered") && l.contains("voice-route"))
            .count();
        assert_eq!(answered, 2, "{filter}: {logs}");
    }
}
