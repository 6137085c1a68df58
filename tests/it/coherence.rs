//! Several instances on one PostgreSQL stay coherent (LISTEN/NOTIFY), and an instance whose
//! database goes away keeps answering lookups, refuses writes with 503, and recovers by
//! itself. PostgreSQL only: listed as ignored unless built with TEST_DATABASE_URL set.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, A2, A3, J, sms};
use crate::common::db::TestDb;
use crate::common::on_postgres;
use crate::common::process::{outcome, run_cli};
use crate::common::tcp_proxy::TcpProxy;

/// The status of a write of `config` (`account` `None`: the global one).
async fn write(app: &TestApp, account: Option<&str>, config: &str) -> u16 {
    app.write(account, Some(config), None)
        .await
        .status()
        .as_u16()
}

/// The account's SMS answer, which must be a 200: (source, value or "").
async fn sms_answer(app: &TestApp, account: &str) -> (String, String) {
    let (status, source, value) = app.sms_summary(account).await;
    assert_eq!(status, 200);
    (source, value)
}

fn answer(source: &str, value: &str) -> (String, String) {
    (source.to_owned(), value.to_owned())
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
        let got = sms_answer(app, account).await;
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
        // The contract is "within a second". On a shared two-core machine one propagation
        // may take longer now and then, so each is allowed 5 s, and the median must stay
        // under a second.
        let second = Duration::from_secs(5);
        let mut took_all = Vec::new();

        assert_eq!(write(&a, Some(A1), &sms(1000)).await, 200);
        let took = eventually(&b, A1, ("account", "1000"), second).await;
        took_all.push(took);
        eprintln!("create seen by the other instance after {took:?}");

        assert_eq!(write(&b, Some(A1), &sms(2000)).await, 200);
        took_all.push(eventually(&a, A1, ("account", "2000"), second).await);

        assert_eq!(write(&a, None, &sms(7)).await, 200);
        took_all.push(eventually(&b, A2, ("global", "7"), second).await);

        let r = a
            .delete(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await;
        assert_eq!(r.status(), 204);
        let took = eventually(&b, A1, ("global", "7"), second).await;
        took_all.push(took);
        eprintln!("delete seen by the other instance after {took:?}");

        // A burst of writes on both ends converges on the last committed one.
        for i in 0..20 {
            let app = if i % 2 == 0 { &a } else { &b };
            assert_eq!(write(app, Some(A2), &sms(100 + i)).await, 200);
        }
        took_all.push(eventually(&a, A2, ("account", "119"), second).await);
        took_all.push(eventually(&b, A2, ("account", "119"), second).await);

        // A rollback through one instance (docs/api.md): A1, deleted, back at its revision 2.
        let r = a
            .post_form(
                &format!("{J}/multi_provider/Rollback.json"),
                &[("AccountSid", A1), ("Revision", "2")],
            )
            .await;
        assert_eq!(r.status(), 200);
        let took = eventually(&b, A1, ("account", "2000"), second).await;
        took_all.push(took);
        eprintln!("rollback seen by the other instance after {took:?}");

        // An import by the command line against the same database: both instances see it.
        let file = tempfile::NamedTempFile::new().unwrap();
        let lines = [
            json!({"account_sid": A1, "enabled": true, "configuration": sms(3000)}),
            json!({"account_sid": A3, "enabled": true, "configuration": sms(4000)}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(file.path(), text).unwrap();
        let o = run_cli(
            &["import", file.path().to_str().unwrap()],
            &[("DATABASE_URL", db.url.as_str())],
        )
        .await;
        let (code, _, stderr) = outcome(&o);
        assert_eq!(code, 0, "{stderr}");
        let took = eventually(&b, A3, ("account", "4000"), second).await;
        took_all.push(took);
        took_all.push(eventually(&b, A1, ("account", "3000"), second).await);
        took_all.push(eventually(&a, A1, ("account", "3000"), second).await);
        took_all.push(eventually(&a, A3, ("account", "4000"), second).await);
        eprintln!("import seen by both instances after {took:?}");
        took_all.sort();
        let median = took_all[took_all.len() / 2];
        assert!(
            median < Duration::from_secs(1),
            "median propagation {median:?} over {took_all:?}"
        );
        a.stop().await;
        b.stop().await;
    }
);

/// Two instances on `db`: `direct`, and `app` through a proxy that is then cut, after A1 was
/// given `sms(1000)`.
struct Outage {
    direct: TestApp,
    app: TestApp,
    proxy: TcpProxy,
}

impl Outage {
    async fn start(db: &TestDb) -> Outage {
        let direct = spawn_app(&db.url, AppOptions::default()).await;
        let (proxy, proxied_url) = TcpProxy::in_front_of(db).await;
        let app = spawn_app(&proxied_url, AppOptions::default()).await;
        assert_eq!(write(&app, Some(A1), &sms(1000)).await, 200);
        assert_eq!(sms_answer(&app, A1).await, answer("account", "1000"));
        proxy.cut();
        Outage { direct, app, proxy }
    }
}

on_postgres!(
    during_an_outage_lookups_answer_from_memory_and_writes_are_503,
    |db| {
        let Outage { direct, app, .. } = Outage::start(&db).await;
        for _ in 0..20 {
            assert_eq!(sms_answer(&app, A1).await, answer("account", "1000"));
        }
        // Writes: a clean 503, quickly.
        let started = Instant::now();
        assert_eq!(write(&app, Some(A1), &sms(3000)).await, 503);
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
        // Meanwhile another instance changes the configuration: not seen yet.
        assert_eq!(write(&direct, Some(A1), &sms(4000)).await, 200);
        assert_eq!(sms_answer(&app, A1).await, answer("account", "1000"));
        app.stop().await;
        direct.stop().await;
    }
);

on_postgres!(
    after_an_outage_the_cache_catches_up_and_writes_recover_without_restart,
    |db| {
        let Outage { direct, app, proxy } = Outage::start(&db).await;
        assert_eq!(write(&direct, Some(A1), &sms(4000)).await, 200);
        proxy.restore();
        // The listener reconnects and reloads: the change made during the outage arrives.
        let took = eventually(&app, A1, ("account", "4000"), Duration::from_secs(15)).await;
        eprintln!("cache caught up {took:?} after the database came back");
        // Writes work again, with no restart.
        let started = Instant::now();
        loop {
            match write(&app, Some(A1), &sms(5000)).await {
                200 => break,
                503 if started.elapsed() < Duration::from_secs(15) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                other => panic!("write after recovery answered {other}"),
            }
        }
        assert_eq!(sms_answer(&app, A1).await, answer("account", "5000"));
        // Within a second by the contract; 5 s of margin on a shared machine.
        let took = eventually(&direct, A1, ("account", "5000"), Duration::from_secs(5)).await;
        eprintln!("the write after the outage reached the other instance after {took:?}");
        app.stop().await;
        direct.stop().await;
    }
);
