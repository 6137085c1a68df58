//! Several instances on one PostgreSQL agree on proxy health within a second (docs/operations.md).
//! PostgreSQL only: listed as ignored unless built with TEST_DATABASE_URL set.

use std::time::Duration;

use super::support::{HealthApi, health, spawn, voice_config, within};
use crate::common::constants::{A1, A2, A3, SMS_1};
use crate::common::on_postgres;
use crate::common::tcp_proxy::TcpProxy;

const P1: &str = "127.0.0.21";
const P2: &str = "127.0.0.22";

on_postgres!(
    a_proxy_marked_down_on_one_instance_is_answered_last_by_the_others_within_a_second,
    |db| {
        let a = spawn(&db.url, health(2, Duration::from_secs(30))).await;
        let b = spawn(&db.url, health(2, Duration::from_secs(30))).await;
        a.configure(Some(A1), &voice_config(&[P1, P2])).await;
        within(Duration::from_secs(1), "configuration on b", || async {
            b.state().configs.cache().health().len() == 2
        })
        .await;
        // Each instance counts the reports it receives: one failure on each is not two.
        a.report(P1, "failure", 1).await;
        b.report(P1, "failure", 1).await;
        for app in [&a, &b] {
            let p1 = app.proxy("127.0.0.21:5060").await.unwrap();
            assert_eq!(
                (&p1["health"], &p1["consecutive_failures"]),
                (&"up".into(), &1.into()),
                "{p1}"
            );
        }
        // Whatever each instance told the other about P1 was sent before a write that each
        // makes now, on the same channel: once each has seen the other's write, it has seen
        // everything the other said about P1 — and P1 is still up everywhere.
        a.configure(Some(A2), SMS_1).await;
        b.configure(Some(A3), SMS_1).await;
        for (app, account) in [(&b, A2), (&a, A3)] {
            within(Duration::from_secs(5), "the other's write", || async {
                app.sms_summary(account).await.1 == "account"
            })
            .await;
        }
        assert_eq!(b.uris(A1).await, [P1, P2]);
        assert_eq!(a.uris(A1).await, [P1, P2]);
        a.report(P1, "failure", 1).await;
        assert_eq!(a.uris(A1).await, [P2, P1]);
        let took = within(Duration::from_secs(1), "down on b", || async {
            b.uris(A1).await == [P2, P1]
        })
        .await;
        eprintln!("down reached the other instance in {took:?}");
        assert_eq!(b.proxy("127.0.0.21:5060").await.unwrap()["health"], "down");
        // A starting instance takes the current states from the database.
        let c = spawn(&db.url, health(2, Duration::from_secs(30))).await;
        assert_eq!(c.uris(A1).await, [P2, P1]);
        // Recovery, reported to another instance, likewise.
        b.report(P1, "success", 1).await;
        for app in [&a, &c] {
            let took = within(Duration::from_secs(1), "up everywhere", || async {
                app.uris(A1).await == [P1, P2]
            })
            .await;
            eprintln!("up reached another instance in {took:?}");
        }
        let (a_since, b_since) = (
            a.proxy("127.0.0.21:5060").await.unwrap()["since"].clone(),
            b.proxy("127.0.0.21:5060").await.unwrap()["since"].clone(),
        );
        assert_eq!(a_since, b_since, "the same change, dated alike");
        for app in [a, b, c] {
            app.stop().await;
        }
    }
);

on_postgres!(
    transitions_made_while_the_database_is_away_reach_the_others_once_it_is_back,
    |db| {
        let (proxy, proxied_url) = TcpProxy::in_front_of(&db).await;
        assert_ne!(
            proxied_url, db.url,
            "the other instance goes through the proxy"
        );
        let direct = spawn(&db.url, health(1, Duration::from_secs(30))).await;
        let cut_off = spawn(&proxied_url, health(1, Duration::from_secs(30))).await;
        direct.configure(Some(A1), &voice_config(&[P1, P2])).await;
        within(
            Duration::from_secs(1),
            "configuration on the other",
            || async { cut_off.state().configs.cache().health().len() == 2 },
        )
        .await;

        proxy.cut();
        // Each instance goes on deciding by itself.
        cut_off.report(P1, "failure", 1).await;
        direct.report(P2, "failure", 1).await;
        assert_eq!(cut_off.uris(A1).await, [P2, P1]);
        assert_eq!(direct.uris(A1).await, [P1, P2]);

        proxy.restore();
        // The cut-off instance writes its transition once it can, and reads the one it missed
        // when its listener reconnects.
        let took = within(
            Duration::from_secs(15),
            "both transitions everywhere",
            || async {
                let both = |order: Vec<(String, String)>| order.iter().all(|(_, h)| h == "down");
                both(cut_off.order(A1).await) && both(direct.order(A1).await)
            },
        )
        .await;
        eprintln!("agreed {took:?} after the database came back");
        cut_off.stop().await;
        direct.stop().await;
    }
);
