//! SPEC §6 over real HTTP, on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL.

mod common;

use common::app::{AppOptions, ENGINE_TOKEN, TestApp, spawn_app};
use common::db::test_databases;
use serde_json::{Value, json};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "ACffffffffffffffffffffffffffffffff";
const VOICE: &str = include_str!("fixtures/voice.json");
const SMS: &str = r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#;
const COLLECTION: &str = "/2012-04-24/ExtensionsConfiguration.json";

async fn configure(
    app: &TestApp,
    account: Option<&str>,
    config: Option<&str>,
    enabled: Option<&str>,
) {
    let mut pairs = vec![("ExtensionName", "multi_provider")];
    if let Some(a) = account {
        pairs.push(("AccountSid", a));
    }
    if let Some(c) = config {
        pairs.push(("ConfigurationData", c));
    }
    if let Some(e) = enabled {
        pairs.push(("Enabled", e));
    }
    let r = app.post_form(COLLECTION, &pairs).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

async fn engine_get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

async fn voice(app: &TestApp, account: &str, to: &str) -> (u16, Value) {
    let to = common::app::encode(to);
    engine_get(app, &format!("/v1/accounts/{account}/voice-route?to={to}")).await
}

async fn voice_post(app: &TestApp, account: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/v1/accounts/{account}/voice-route")))
        .bearer_auth(ENGINE_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn sms(app: &TestApp, account: &str) -> (u16, Value) {
    engine_get(app, &format!("/v1/accounts/{account}/sms-route")).await
}

#[tokio::test]
async fn seed_voice_example_answers_as_documented() {
    for db in test_databases().await {
        let app = spawn_app(&db.url, AppOptions::default()).await;
        configure(&app, Some(ACCOUNT), Some(VOICE), None).await;

        let (status, v) = voice(&app, ACCOUNT, "sip:bob@uri1.com").await;
        assert_eq!(status, 200, "{}", db.kind);
        assert_eq!(v["account_sid"], ACCOUNT);
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

        // A PSTN number, with `+` written literally in the query string.
        let r = app
            .client
            .get(app.url(&format!("/v1/accounts/{ACCOUNT}/voice-route?to=+15551234")))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["route"]["proxy_index"], 2);
        assert_eq!(
            v["route"]["request_uri"],
            "sip:+15551234@192.168.0.2;newkey5=newvalue5;newkey6=newvalue6"
        );

        // A supplied To header is appended to.
        let (status, v) = voice_post(
            &app,
            ACCOUNT,
            json!({"to": "sip:bob@uri1.com", "headers": {"To": "<sip:bob@uri1.com>;tag=9"}}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            v["route"]["headers"]["To"],
            "<sip:bob@uri1.com>;tag=9;newkey3=newvalue3"
        );

        // Lowercase/uppercase account Sid in the path: same account.
        let (status, v) = voice(
            &app,
            &format!("ac{}", ACCOUNT[2..].to_uppercase()),
            "sip:alice@uri.com",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(v["account_sid"], ACCOUNT);
        assert_eq!(v["route"]["proxy_index"], 0);
        app.stop().await;
    }
}

#[tokio::test]
async fn route_entries_and_sms_encodings() {
    for db in test_databases().await {
        let app = spawn_app(&db.url, AppOptions::default()).await;
        let config = json!({
            "outbound-voice": [{"proxy": [{"uri": "sips:edge.example.com:5061;transport=tls", "headers": [
                {"headerName": "Route", "key": "x", "value": "core.example.com:5070"},
                {"headerName": "X-Tenant", "key": "id", "value": "42"}]}]}],
            "outbound-sms": [{"destination_network_id": 1000}]
        })
        .to_string();
        configure(&app, Some(ACCOUNT), Some(&config), None).await;
        let (_, v) = voice(&app, ACCOUNT, "tel:+442071234567").await;
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

        let (status, v) = sms(&app, ACCOUNT).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"account_sid": ACCOUNT, "source": "account", "revision": v["revision"], "tlvs": [
            {"tag": 1550, "name": "dest_network_id", "value": "1000", "value_hex": "000003E8", "cstring_hex": "3130303000"}]})
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn sources_global_fallback_and_switches() {
    for db in test_databases().await {
        let app = spawn_app(&db.url, AppOptions::default()).await;
        // Nothing configured at all.
        let (status, v) = sms(&app, ACCOUNT).await;
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"account_sid": ACCOUNT, "source": "none", "revision": null, "tlvs": []})
        );
        let (_, v) = voice(&app, ACCOUNT, "+1555").await;
        assert_eq!(
            (
                v["source"].clone(),
                v["route"].clone(),
                v["fallbacks"].clone()
            ),
            (json!("none"), Value::Null, json!([]))
        );

        // An account configuration creates the extension with global `{}`: others get none.
        configure(&app, Some(ACCOUNT), Some(VOICE), None).await;
        assert_eq!(sms(&app, OTHER).await.1["source"], "none");

        // A global configuration serves accounts without their own.
        configure(&app, None, Some(SMS), None).await;
        let (_, v) = sms(&app, OTHER).await;
        assert_eq!(v["source"], "global");
        assert_eq!(v["tlvs"][0]["value"], "1000");
        // ...but not accounts with their own: no per-section fall-back.
        let (_, v) = sms(&app, ACCOUNT).await;
        assert_eq!(
            v,
            json!({"account_sid": ACCOUNT, "source": "account", "revision": v["revision"], "tlvs": []})
        );

        // An account switched off: none, no fall-back to the global configuration.
        configure(&app, Some(ACCOUNT), None, Some("false")).await;
        let (_, v) = voice(&app, ACCOUNT, "sip:bob@uri1.com").await;
        assert_eq!(
            (v["source"].clone(), v["route"].clone()),
            (json!("none"), Value::Null)
        );
        assert_eq!(sms(&app, ACCOUNT).await.1["source"], "none");
        configure(&app, Some(ACCOUNT), None, Some("TRUE")).await;
        assert_eq!(
            voice(&app, ACCOUNT, "sip:bob@uri1.com").await.1["route"]["proxy_index"],
            1
        );

        // The global switch turns everybody off.
        configure(&app, None, None, Some("false")).await;
        assert_eq!(
            voice(&app, ACCOUNT, "sip:bob@uri1.com").await.1["source"],
            "none"
        );
        assert_eq!(sms(&app, OTHER).await.1["source"], "none");
        configure(&app, None, None, Some("true")).await;
        assert_eq!(sms(&app, OTHER).await.1["source"], "global");

        // Global `{}` routes nobody.
        configure(&app, None, Some("{}"), None).await;
        assert_eq!(sms(&app, OTHER).await.1["source"], "none");

        // A delete is seen at once.
        let r = app
            .delete(&format!("{COLLECTION}/multi_provider?AccountSid={ACCOUNT}"))
            .await;
        assert_eq!(r.status(), 204);
        assert_eq!(
            voice(&app, ACCOUNT, "sip:bob@uri1.com").await.1["source"],
            "none"
        );

        // And everything survives a restart (the cache is refilled before ready).
        configure(&app, Some(OTHER), Some(SMS), None).await;
        let app = app.restart().await;
        let ready = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(sms(&app, OTHER).await.1["source"], "account");
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_lookups_are_400_and_auth_is_enforced() {
    let db = common::db::fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    configure(&app, Some(ACCOUNT), Some(VOICE), None).await;
    for to in [
        "",
        "client:alice",
        "sip:bob@",
        "sip:bob@bad_host",
        "a b",
        "x%0D%0Ay",
    ] {
        let (status, v) =
            engine_get(&app, &format!("/v1/accounts/{ACCOUNT}/voice-route?to={to}")).await;
        assert_eq!(status, 400, "{to}");
        assert_eq!(v["status"], 400);
        assert_eq!(v["errors"][0]["parameter"], "to", "{to}");
    }
    let (status, _) = engine_get(&app, &format!("/v1/accounts/{ACCOUNT}/voice-route")).await;
    assert_eq!(status, 400);
    let (status, _) = engine_get(
        &app,
        &format!("/v1/accounts/{ACCOUNT}/voice-route?to=1&to=2"),
    )
    .await;
    assert_eq!(status, 400);
    let long = "1".repeat(5000);
    assert_eq!(voice(&app, ACCOUNT, &long).await.0, 400);
    for bad in [
        "AC123",
        "XX0123456789abcdef0123456789abcdef",
        "AC0123456789abcdef0123456789abcdeg",
    ] {
        assert_eq!(sms(&app, bad).await.0, 400, "{bad}");
        assert_eq!(voice(&app, bad, "+1").await.0, 400, "{bad}");
    }
    let (status, _) = voice_post(
        &app,
        ACCOUNT,
        json!({"to": "sip:a@b.com", "headers": {"To": "x\r\nVia: evil"}}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = voice_post(
        &app,
        ACCOUNT,
        json!({"to": "sip:a@b.com", "headers": {"To": 5}}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = voice_post(&app, ACCOUNT, json!({"destination": "sip:a@b.com"})).await;
    assert_eq!(status, 400);

    // Auth: nothing, a wrong bearer, a wrong password: 401; admin basic works.
    let path = format!("/v1/accounts/{ACCOUNT}/sms-route");
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
        .basic_auth(&app.admin_sid, Some("wrong"))
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
    // Auth comes before validation: a bad Sid without credentials is 401.
    let r = app
        .client
        .get(app.url("/v1/accounts/nonsense/sms-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;

    // Without an engine token configured, a bearer token gets nowhere.
    let app = spawn_app(
        &db.url,
        AppOptions {
            engine_token: None,
            secret_key: None,
        },
    )
    .await;
    let r = app
        .client
        .get(app.url(&path))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let db = common::db::fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    configure(&app, Some(ACCOUNT), Some(SMS), None).await;
    sms(&app, ACCOUNT).await;
    voice(&app, ACCOUNT, "+1555").await;
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
    // Whatever method a client invents is counted as `other`: no series per invention.
    let invented = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    let r = app
        .client
        .request(invented, app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
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
    assert!(
        !text.contains(ACCOUNT),
        "metrics must not carry account Sids"
    );
    app.stop().await;
}
