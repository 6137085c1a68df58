//! Carrier capacity (docs/routing.md, capacity): `limits`, token buckets on the lookup path,
//! `unavailable`, explain, metrics, and bad input; through the real server on each database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::A1;
use crate::common::on_every_db;
use crate::common::wire::error_pointers;

/// Two carriers: proxy 0 with 1 cps (burst 2), proxy 1 with 1 cps (burst 1).
const LIMITED: &str = r#"{"outbound-voice": [{"proxy": [
    {"uri": "gw0.example.com", "limits": {"cps": 1, "burst": 2}},
    {"uri": "gw1.example.com", "username": "trunk", "limits": {"cps": 1}}]}]}"#;

fn path(query: &str) -> String {
    format!("/v1/accounts/{A1}/voice-route?{query}")
}

fn order(answer: &Value) -> Vec<u64> {
    answer["route"]
        .get("proxy_index")
        .into_iter()
        .chain(
            answer["fallbacks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| &f["proxy_index"]),
        )
        .map(|v| v.as_u64().unwrap())
        .collect()
}

on_every_db!(
    the_route_takes_a_token_and_full_proxies_are_left_out,
    |app, db| {
        app.configure(Some(A1), LIMITED).await;
        // Explained lookups read the buckets and take nothing.
        for _ in 0..3 {
            let (status, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
            assert_eq!(status, 200);
            assert_eq!(order(&e), vec![0, 1]);
            let c = &e["explain"]["candidates"];
            assert_eq!(c[0]["capacity"]["cps"], 1.0);
            assert_eq!(c[0]["capacity"]["burst"], 2.0);
            assert_eq!(c[0]["capacity"]["tokens"], 2.0);
            assert_eq!(c[0]["capacity"]["exhausted"], false);
            assert_eq!(c[1]["capacity"]["burst"], 1.0);
            assert!(e.get("unavailable").is_none());
        }
        let started = Instant::now();
        let (_, a) = app.engine_get(&path("to=%2B1555")).await;
        assert_eq!(order(&a), vec![0, 1]);
        assert!(a.get("unavailable").is_none(), "{a}");
        let (_, b) = app.engine_get(&path("to=%2B1555")).await;
        assert_eq!(order(&b), vec![0, 1]);
        // Proxy 0 is empty now: left out of route and fallbacks; proxy 1 takes its token.
        let (_, c) = app.engine_get(&path("to=%2B1555")).await;
        let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
        let (_, d) = app.engine_get(&path("to=%2B1555")).await;
        if started.elapsed() < Duration::from_millis(900) {
            assert_eq!(order(&c), vec![1], "{c}");
            assert_eq!(d["route"], Value::Null, "{d}");
            assert_eq!(d["fallbacks"], json!([]));
            let retry = d["unavailable"]["retry_after_ms"].as_u64().unwrap();
            assert_eq!(d["unavailable"]["reason"], "capacity");
            assert!((1..=1000).contains(&retry), "{d}");
            assert_eq!(
                d.as_object().unwrap().keys().collect::<Vec<_>>(),
                [
                    "account_sid",
                    "source",
                    "revision",
                    "route",
                    "fallbacks",
                    "unavailable"
                ]
            );
            let reason = e["explain"]["reason"].as_str().unwrap();
            assert!(reason.starts_with("capacity:"), "{reason}");
            assert_eq!(
                e["explain"]["candidates"][0]["capacity"]["exhausted"], true,
                "{e}"
            );
            // The POST lookup answers the same way.
            let (_, p) = app.voice_post(A1, &json!({"to": "+1555"})).await;
            assert_eq!(p["unavailable"]["reason"], "capacity", "{p}");
        }
        // The first token returns: proxy 0 or 1 routes again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, again) = app.engine_get(&path("to=%2B1555")).await;
            if again["route"].is_object() {
                assert!(again.get("unavailable").is_none());
                break;
            }
            assert!(Instant::now() < deadline, "no token returned: {again}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let metrics = app
            .metrics_with("multiprovider_lookups_unavailable_total{reason=\"capacity\"}")
            .await;
        assert!(
            metrics.contains("multiprovider_capacity_skips_total"),
            "{metrics}"
        );
        let _ = &db;
    }
);

on_every_db!(
    a_configuration_without_limits_answers_as_before,
    |app, db| {
        let plain = r#"{"outbound-voice": [{"proxy": [{"uri": "gw0.example.com"}]}]}"#;
        app.configure(Some(A1), plain).await;
        for _ in 0..50 {
            let (_, a) = app.engine_get(&path("to=%2B1555")).await;
            assert_eq!(order(&a), vec![0]);
            assert!(a.get("unavailable").is_none());
        }
        let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
        assert_eq!(e["explain"]["candidates"][0]["capacity"], Value::Null);
        let _ = &db;
    }
);

on_every_db!(an_edit_keeps_the_tokens_and_caps_them, |app, db| {
    let slow = |burst: u32| {
        json!({"outbound-voice": [{"proxy": [
            {"uri": "gw0.example.com", "limits": {"cps": 1, "burst": burst}},
            {"uri": "gw9.example.com", "match": "^9"}]}]})
        .to_string()
    };
    app.configure(Some(A1), &slow(5)).await;
    for _ in 0..4 {
        let (_, a) = app.engine_get(&path("to=%2B1555")).await;
        assert_eq!(order(&a), vec![0]);
    }
    // One token (and a fraction) left; a larger burst does not fill the bucket.
    app.configure(Some(A1), &slow(50)).await;
    let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
    let tokens = e["explain"]["candidates"][0]["capacity"]["tokens"]
        .as_f64()
        .unwrap();
    assert!((1.0..5.0).contains(&tokens), "{e}");
    // A smaller burst caps them at 1.
    app.configure(Some(A1), &slow(1)).await;
    let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
    assert_eq!(e["explain"]["candidates"][0]["capacity"]["tokens"], 1.0);
    // Without the limits, no bucket; with them again, a new full one.
    app.configure(
        Some(A1),
        r#"{"outbound-voice": [{"proxy": [{"uri": "gw0.example.com"}]}]}"#,
    )
    .await;
    assert_eq!(app.state().configs.cache().capacity().len(), 0);
    app.configure(Some(A1), &slow(3)).await;
    let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
    assert_eq!(e["explain"]["candidates"][0]["capacity"]["tokens"], 3.0);
    let _ = &db;
});

on_every_db!(
    invalid_limits_are_400_with_pointers_and_nothing_is_written,
    |app, db| {
        let bad = r#"{"outbound-voice": [{"proxy": [
        {"uri": "a.example.com", "limits": {"cps": 0, "burst": 1000001}},
        {"uri": "b.example.com", "limits": {"burst": 2}},
        {"uri": "c.example.com", "limits": {"cps": 100001, "extra": 1}},
        {"uri": "d.example.com", "limits": 5},
        {"uri": "e.example.com", "limits": {"cps": 2.5, "burst": "3"}}]}]}"#;
        let r = app.write(Some(A1), Some(bad), None).await;
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        let mut got = error_pointers(&body);
        got.sort();
        let p = "/outbound-voice/0/proxy";
        let mut expected: Vec<String> = [
            "/0/limits/cps",
            "/0/limits/burst",
            "/1/limits",
            "/2/limits/cps",
            "/2/limits/extra",
            "/3/limits",
            "/4/limits/cps",
            "/4/limits/burst",
        ]
        .iter()
        .map(|s| format!("{p}{s}"))
        .collect();
        expected.sort();
        assert_eq!(got, expected, "{body:#}");
        let (_, a) = app.voice_route(A1, "+1").await;
        assert_eq!(a["source"], "none");
        let _ = &db;
    }
);

on_every_db!(
    concurrent_clients_never_get_more_than_the_limit,
    |app, db| {
        let (cps, burst) = (40.0, 10.0);
        app.configure(
            Some(A1),
            r#"{"outbound-voice": [{"proxy": [
            {"uri": "gw0.example.com", "limits": {"cps": 40, "burst": 10}}]}]}"#,
        )
        .await;
        let app = Arc::new(app);
        let granted = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let run_for = Duration::from_secs(3);
        let clients: Vec<_> = (0..64)
            .map(|_| {
                let (app, granted, unavailable) =
                    (app.clone(), granted.clone(), unavailable.clone());
                tokio::spawn(async move {
                    while started.elapsed() < run_for {
                        let (status, a) = app.engine_get(&path("to=%2B1555")).await;
                        assert_eq!(status, 200);
                        if a["route"].is_object() {
                            granted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            assert_eq!(a["unavailable"]["reason"], "capacity");
                            unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let granted = granted.load(Ordering::Relaxed) as f64;
        assert!(
            granted <= burst + cps * elapsed,
            "{granted} granted in {elapsed:.2} s"
        );
        // The limit is reached, not merely respected by refusing.
        assert!(granted >= cps * 2.0, "{granted} granted in {elapsed:.2} s");
        assert!(unavailable.load(Ordering::Relaxed) > 0);
        println!(
            "granted {granted} in {elapsed:.2} s: {:.1}/s against {cps} cps",
            granted / elapsed
        );
        let _ = &db;
    }
);

// ---- the instance registry

/// `GET /v1/instances` until it lists `n` instances (within `within`): the list.
async fn wait_for_instances(app: &TestApp, n: usize, within: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, list) = app.engine_get("/v1/instances").await;
        assert_eq!(status, 200, "{list}");
        if list["instances"].as_array().unwrap().len() == n {
            return list;
        }
        assert!(
            started.elapsed() < within,
            "not {n} instances after {within:?}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_every_db!(the_instances_list_this_one, |app, db| {
    let list = wait_for_instances(&app, 1, Duration::from_secs(10)).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["uri"], "/v1/instances?Page=0&PageSize=50");
    let me = &list["instances"][0];
    assert_eq!(
        me.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "started_at", "last_seen", "version"]
    );
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    for t in ["started_at", "last_seen"] {
        me[t].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    }
    // Engine or admin: the admin's credentials answer too; none is a 401.
    let r = app
        .admin(app.client.get(app.url("/v1/instances")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/v1/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let _ = &db;
});

/// Lookups from 16 clients to each of `apps` for `run_for`: (granted, elapsed seconds).
async fn hammer(apps: &[Arc<TestApp>], run_for: Duration) -> (u64, f64) {
    let granted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for app in apps {
        for _ in 0..16 {
            let (app, granted) = (app.clone(), granted.clone());
            clients.push(tokio::spawn(async move {
                while started.elapsed() < run_for {
                    let (_, a) = app.engine_get(&path("to=%2B1555")).await;
                    if a["route"].is_object() {
                        granted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for c in clients {
        c.await.unwrap();
    }
    (
        granted.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

const SHARED: &str = r#"{"outbound-voice": [{"proxy": [
    {"uri": "gw0.example.com", "limits": {"cps": 30, "burst": 3}}]}]}"#;

/// Until every app holds the configuration that the first one answers with.
async fn wait_for_configuration(apps: &[Arc<TestApp>]) {
    let (_, first) = apps[0].engine_get(&path("to=%2B1555&explain=true")).await;
    for app in apps {
        let started = Instant::now();
        loop {
            let (_, e) = app.engine_get(&path("to=%2B1555&explain=true")).await;
            if e["revision"] == first["revision"] {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

crate::common::on_postgres!(instances_share_the_limits, |db| {
    let (cps, burst) = (30.0, 3.0);
    let mut apps: Vec<Arc<TestApp>> = Vec::new();
    for n in 1..=3usize {
        apps.push(Arc::new(spawn_app(&db.url, AppOptions::default()).await));
        for app in &apps {
            wait_for_instances(app, n, Duration::from_secs(10)).await;
        }
        // A new configuration revision: fresh buckets at this N.
        apps[0]
            .configure(
                Some(A1),
                r#"{"outbound-voice": [{"proxy": [{"uri": "x.example.com"}]}]}"#,
            )
            .await;
        apps[0].configure(Some(A1), SHARED).await;
        wait_for_configuration(&apps).await;
        let (_, e) = apps[n - 1]
            .engine_get(&path("to=%2B1555&explain=true"))
            .await;
        let share = &e["explain"]["candidates"][0]["capacity"];
        assert_eq!(share["cps"].as_f64().unwrap(), cps / n as f64, "{e}");
        assert_eq!(
            share["burst"].as_f64().unwrap(),
            (burst / n as f64).max(1.0)
        );
        // Buckets were refilling while we waited: drain them first, then measure.
        let _ = hammer(&apps, Duration::from_millis(300)).await;
        let (granted, elapsed) = hammer(&apps, Duration::from_secs(3)).await;
        println!(
            "{n} instance(s): {granted} granted in {elapsed:.2} s = {:.1}/s against {cps} cps",
            granted as f64 / elapsed
        );
        // Each instance holds at most its burst share (at least one token) at the start.
        let allowed = n as f64 * (burst / n as f64).max(1.0) + cps * elapsed + n as f64;
        assert!(granted as f64 <= allowed, "{granted} > {allowed}");
        assert!(granted as f64 >= cps * elapsed * 0.6, "{granted} granted");
    }
    // An instance stopped: the others take its share within 6 s.
    let last = apps.pop().unwrap();
    Arc::into_inner(last).unwrap().stop().await;
    let started = Instant::now();
    loop {
        let (_, e) = apps[0].engine_get(&path("to=%2B1555&explain=true")).await;
        if e["explain"]["candidates"][0]["capacity"]["cps"] == 15.0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(6), "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_instances(&apps[0], 2, Duration::from_secs(1)).await;
});

crate::common::on_postgres!(an_instance_that_vanishes_gives_its_share_back, |db| {
    let a = Arc::new(spawn_app(&db.url, AppOptions::default()).await);
    let b = spawn_app(&db.url, AppOptions::default()).await;
    wait_for_instances(&a, 2, Duration::from_secs(10)).await;
    a.configure(Some(A1), SHARED).await;
    // Dropped without a clean stop: its row stays, silent.
    drop(b);
    let started = Instant::now();
    wait_for_instances(&a, 1, Duration::from_secs(8)).await;
    let (_, e) = a.engine_get(&path("to=%2B1555&explain=true")).await;
    assert_eq!(
        e["explain"]["candidates"][0]["capacity"]["cps"], 30.0,
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
});

crate::common::on_postgres!(with_the_database_away_the_last_n_stays, |db| {
    use crate::common::tcp_proxy::TcpProxy;
    let (proxy, proxied_url) = TcpProxy::in_front_of(&db).await;
    let a = Arc::new(spawn_app(&proxied_url, AppOptions::default()).await);
    let b = spawn_app(&db.url, AppOptions::default()).await;
    wait_for_instances(&a, 2, Duration::from_secs(10)).await;
    a.configure(Some(A1), SHARED).await;
    proxy.cut();
    // Several heartbeats fail; N stays 2 (b is alive anyway) and lookups do not wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, e) = a.engine_get(&path("to=%2B1555&explain=true")).await;
    assert_eq!(
        e["explain"]["candidates"][0]["capacity"]["cps"], 15.0,
        "{e}"
    );
    let _ = hammer(std::slice::from_ref(&a), Duration::from_millis(300)).await;
    let (granted, elapsed) = hammer(std::slice::from_ref(&a), Duration::from_secs(2)).await;
    let allowed = 1.5 + 15.0 * elapsed + 1.0;
    assert!((granted as f64) <= allowed, "{granted} > {allowed}");
    assert!(
        granted as f64 >= 15.0 * elapsed * 0.6,
        "{granted}: lookups waited"
    );
    wait_for_instances(&a, 2, Duration::from_secs(1)).await;
    proxy.restore();
    drop(b);
});

on_every_db!(the_engine_view_says_unavailable_too, |app, db| {
    app.configure(
        Some(A1),
        r#"{"outbound-voice": [{"proxy": [{"uri": "gw0.example.com", "limits": {"cps": 1}}]}]}"#,
    )
    .await;
    // One token a second: within a few lookups the bucket is empty.
    let mut seen = None;
    for _ in 0..50 {
        let (status, a) = app.engine_get(&path("to=%2B1555&view=engine")).await;
        assert_eq!(status, 200);
        if a.get("unavailable").is_some() {
            seen = Some(a);
            break;
        }
        assert_eq!(a["routes"].as_array().unwrap().len(), 1, "{a}");
    }
    let a = seen.expect("the bucket never ran out");
    assert_eq!(a["routes"], json!([]), "{a}");
    assert_eq!(a["unavailable"]["reason"], "capacity", "{a}");
    let retry = a["unavailable"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry), "{a}");
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["routes", "revision", "unavailable"]
    );
    let _ = &db;
});
