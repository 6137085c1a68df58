//! Several instances on one PostgreSQL agree on proxy health within a second (SPEC §11).
//! PostgreSQL only: runs with TEST_DATABASE_URL (required with MULTIPROVIDER_REQUIRE_POSTGRES=1).

use std::time::Duration;

use crate::db::fresh_postgres;
use crate::support::{ACCOUNT, health, spawn, voice_config, within};
use crate::tcp_proxy::TcpProxy;

const P1: &str = "127.0.0.21";
const P2: &str = "127.0.0.22";

#[tokio::test]
async fn a_proxy_marked_down_on_one_instance_is_answered_last_by_the_others_within_a_second() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let a = spawn(&db.url, health(2, Duration::from_secs(30))).await;
    let b = spawn(&db.url, health(2, Duration::from_secs(30))).await;
    a.configure(ACCOUNT, &voice_config(&[P1, P2])).await;
    within(Duration::from_secs(1), "configuration on b", || async {
        b.state().cache.health().len() == 2
    })
    .await;
    // Each instance counts the reports it receives: one failure on each is not two.
    a.report(P1, "failure", 1).await;
    b.report(P1, "failure", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.uris(ACCOUNT).await, [P1, P2]);
    a.report(P1, "failure", 1).await;
    assert_eq!(a.uris(ACCOUNT).await, [P2, P1]);
    let took = within(Duration::from_secs(1), "down on b", || async {
        b.uris(ACCOUNT).await == [P2, P1]
    })
    .await;
    eprintln!("down reached the other instance in {took:?}");
    assert_eq!(b.proxy("127.0.0.21:5060").await.unwrap()["health"], "down");
    // A starting instance takes the current states from the database.
    let c = spawn(&db.url, health(2, Duration::from_secs(30))).await;
    assert_eq!(c.uris(ACCOUNT).await, [P2, P1]);
    // Recovery, reported to another instance, likewise.
    b.report(P1, "success", 1).await;
    for app in [&a, &c] {
        let took = within(Duration::from_secs(1), "up everywhere", || async {
            app.uris(ACCOUNT).await == [P1, P2]
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

#[tokio::test]
async fn transitions_made_while_the_database_is_away_reach_the_others_once_it_is_back() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let proxied_url = db
        .url
        .replacen(":5432/", &format!(":{}/", proxy.addr.port()), 1);
    assert_ne!(
        proxied_url, db.url,
        "TEST_DATABASE_URL must name port 5432 explicitly"
    );
    let direct = spawn(&db.url, health(1, Duration::from_secs(30))).await;
    let cut_off = spawn(&proxied_url, health(1, Duration::from_secs(30))).await;
    direct.configure(ACCOUNT, &voice_config(&[P1, P2])).await;
    within(
        Duration::from_secs(1),
        "configuration on the other",
        || async { cut_off.state().cache.health().len() == 2 },
    )
    .await;

    proxy.cut();
    // Each instance goes on deciding by itself.
    cut_off.report(P1, "failure", 1).await;
    direct.report(P2, "failure", 1).await;
    assert_eq!(cut_off.uris(ACCOUNT).await, [P2, P1]);
    assert_eq!(direct.uris(ACCOUNT).await, [P1, P2]);

    proxy.restore();
    // The cut-off instance writes its transition once it can, and reads the one it missed
    // when its listener reconnects.
    let took = within(
        Duration::from_secs(15),
        "both transitions everywhere",
        || async {
            let both = |order: Vec<(String, String)>| order.iter().all(|(_, h)| h == "down");
            both(cut_off.order(ACCOUNT).await) && both(direct.order(ACCOUNT).await)
        },
    )
    .await;
    eprintln!("agreed {took:?} after the database came back");
    cut_off.stop().await;
    direct.stop().await;
}
