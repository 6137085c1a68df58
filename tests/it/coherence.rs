//! Several instances on one PostgreSQL stay coherent (LISTEN/NOTIFY), and an instance whose
//! database goes away keeps answering lookups, refuses writes with 503, and recovers by
//! itself. PostgreSQL only: listed as ignored unless built with TEST_DATABASE_URL set.

use std::time::{Duration, Instant};

use crate::common::app::{AppOptions, ENGINE_TOKEN, TestApp, spawn_app};
use crate::common::on_postgres;
use crate::common::tcp_proxy::TcpProxy;
use serde_json::Value;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "AC00000000000000000000000000000001";
const COLLECTION: &str = "/2012-04-24/ExtensionsConfiguration.json";

fn sms_config(id: u32) -> String {
    format!(r#"{{"outbound-sms": [{{"destination_network_id": "{id}"}}]}}"#)
}

async fn write(app: &TestApp, account: Option<&str>, config: &str) -> u16 {
    let mut pairs = vec![
        ("ExtensionName", "multi_provider"),
        ("ConfigurationData", config),
    ];
    if let Some(a) = account {
        pairs.push(("AccountSid", a));
    }
    app.post_form(COLLECTION, &pairs).await.status().as_u16()
}

/// The account's SMS answer: (source, value or "").
async fn sms(app: &TestApp, account: &str) -> (String, String) {
    let r = app
        .client
        .get(app.url(&format!("/v1/accounts/{account}/sms-route")))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let value = v["tlvs"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (v["source"].as_str().unwrap().to_owned(), value)
}

/// Polls until `app` answers `expected` for `account`, for at most `within`.
async fn eventually(
    app: &TestApp,
    account: &str,
    expected: (&str, &str),
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let got = sms(app, account).await;
        if (got.0.as_str(), got.1.as_str()) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "after {within:?} still {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_postgres!(
    a_write_on_one_instance_is_seen_by_another_within_a_second,
    |db| {
        let a = spawn_app(&db.url, AppOptions::default()).await;
        let b = spawn_app(&db.url, AppOptions::default()).await;
        let second = Duration::from_secs(1);

        assert_eq!(write(&a, Some(ACCOUNT), &sms_config(1000)).await, 200);
        let took = eventually(&b, ACCOUNT, ("account", "1000"), second).await;
        eprintln!("create seen by the other instance after {took:?}");

        assert_eq!(write(&b, Some(ACCOUNT), &sms_config(2000)).await, 200);
        eventually(&a, ACCOUNT, ("account", "2000"), second).await;

        assert_eq!(write(&a, None, &sms_config(7)).await, 200);
        eventually(&b, OTHER, ("global", "7"), second).await;

        let r = a
            .delete(&format!("{COLLECTION}/multi_provider?AccountSid={ACCOUNT}"))
            .await;
        assert_eq!(r.status(), 204);
        let took = eventually(&b, ACCOUNT, ("global", "7"), second).await;
        eprintln!("delete seen by the other instance after {took:?}");

        // A burst of writes on both ends converges on the last committed one.
        for i in 0..20 {
            let app = if i % 2 == 0 { &a } else { &b };
            assert_eq!(write(app, Some(OTHER), &sms_config(100 + i)).await, 200);
        }
        eventually(&a, OTHER, ("account", "119"), second).await;
        eventually(&b, OTHER, ("account", "119"), second).await;
        a.stop().await;
        b.stop().await;
    }
);

on_postgres!(
    lookups_survive_a_database_outage_and_writes_recover_without_restart,
    |db| {
        let direct = spawn_app(&db.url, AppOptions::default()).await;
        let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
        let proxied_url = db
            .url
            .replacen(":5432/", &format!(":{}/", proxy.addr.port()), 1);
        assert_ne!(
            proxied_url, db.url,
            "TEST_DATABASE_URL must name port 5432 explicitly"
        );
        let app = spawn_app(&proxied_url, AppOptions::default()).await;

        assert_eq!(write(&app, Some(ACCOUNT), &sms_config(1000)).await, 200);
        assert_eq!(sms(&app, ACCOUNT).await, ("account".into(), "1000".into()));

        proxy.cut();
        // Lookups: answered from memory, as before.
        for _ in 0..20 {
            assert_eq!(sms(&app, ACCOUNT).await, ("account".into(), "1000".into()));
        }
        // Writes: a clean 503, quickly.
        let started = Instant::now();
        assert_eq!(write(&app, Some(ACCOUNT), &sms_config(3000)).await, 503);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "503 took {:?}",
            started.elapsed()
        );
        // Readiness stays up (the cache serves) and says the database is unreachable.
        let r = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["database"], "unreachable");
        // Meanwhile another instance changes the configuration.
        assert_eq!(write(&direct, Some(ACCOUNT), &sms_config(4000)).await, 200);
        assert_eq!(sms(&app, ACCOUNT).await, ("account".into(), "1000".into()));

        proxy.restore();
        // The listener reconnects and reloads: the change made during the outage arrives.
        let took = eventually(&app, ACCOUNT, ("account", "4000"), Duration::from_secs(15)).await;
        eprintln!("cache caught up {took:?} after the database came back");
        // Writes work again, with no restart.
        let started = Instant::now();
        loop {
            match write(&app, Some(ACCOUNT), &sms_config(5000)).await {
                200 => break,
                503 if started.elapsed() < Duration::from_secs(15) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("write after recovery answered {other}"),
            }
        }
        assert_eq!(sms(&app, ACCOUNT).await, ("account".into(), "5000".into()));
        eventually(
            &direct,
            ACCOUNT,
            ("account", "5000"),
            Duration::from_secs(1),
        )
        .await;
        app.stop().await;
        direct.stop().await;
    }
);
