//! SIP OPTIONS probing (docs/operations.md) against UDP endpoints this test starts on 127.0.0.1: one
//! that answers, one that never answers, one that answers too late. No other address is
//! ever used.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rsip::message::HeadersExt as _;
use tokio::net::UdpSocket;

use super::support::{HealthApi, spawn, voice_config, within};
use crate::common::constants::A1;
use crate::common::db::fresh_sqlite;

#[derive(Clone, Copy)]
enum Behaviour {
    Answer,
    Silent,
    AnswerAfter(Duration),
}

/// A UDP SIP endpoint on 127.0.0.1: its port and how many OPTIONS it received.
async fn endpoint(behaviour: Behaviour) -> (u16, Arc<AtomicUsize>) {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let port = socket.local_addr().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let request = rsip::Request::try_from(&buf[..n]).expect("a SIP request");
            assert_eq!(request.method, rsip::Method::Options);
            assert!(from.ip().is_loopback());
            count.fetch_add(1, Ordering::SeqCst);
            let response = ok(&request).to_string();
            match behaviour {
                Behaviour::Silent => {}
                Behaviour::Answer => {
                    socket.send_to(response.as_bytes(), from).await.unwrap();
                }
                Behaviour::AnswerAfter(delay) => {
                    let socket = socket.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = socket.send_to(response.as_bytes(), from).await;
                    });
                }
            }
        }
    });
    (port, received)
}

/// `200 OK` to `request` (RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied).
fn ok(request: &rsip::Request) -> rsip::Response {
    let mut headers: rsip::Headers = Default::default();
    headers.push(request.via_header().unwrap().clone().into());
    headers.push(request.from_header().unwrap().clone().into());
    headers.push(request.to_header().unwrap().clone().into());
    headers.push(request.call_id_header().unwrap().clone().into());
    headers.push(request.cseq_header().unwrap().clone().into());
    headers.push(rsip::headers::ContentLength::default().into());
    rsip::Response {
        status_code: rsip::StatusCode::OK,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

#[tokio::test]
async fn probes_find_the_silent_and_the_late_proxies_down_and_keep_the_answering_one_up() {
    let (answering, answered) = endpoint(Behaviour::Answer).await;
    let (silent, _) = endpoint(Behaviour::Silent).await;
    let (late, late_received) = endpoint(Behaviour::AnswerAfter(Duration::from_millis(2500))).await;
    let (secure, secure_received) = endpoint(Behaviour::Answer).await;
    let db = fresh_sqlite();
    let app = spawn(&db.url, |s| {
        s.health_failures = 2;
        s.health_cooldown = Duration::from_secs(30);
        s.probe_interval = Some(Duration::from_secs(1));
    })
    .await;
    let uris = [
        format!("sip:127.0.0.1:{silent}"),
        format!("sip:127.0.0.1:{late};transport=udp"),
        format!("127.0.0.1:{answering}"),
        format!("sips:127.0.0.1:{secure}"),
    ];
    let refs: Vec<&str> = uris.iter().map(String::as_str).collect();
    app.configure(Some(A1), &voice_config(&refs)).await;
    // Two timeouts each: a probe every second, but never two outstanding for one proxy, so
    // a silent one times out at about 3 s and 6 s.
    let took = within(
        Duration::from_secs(10),
        "silent and late proxies down",
        || async {
            let order = app.uris(A1).await;
            order[..2] == [uris[2].clone(), uris[3].clone()]
        },
    )
    .await;
    eprintln!("down after {took:?}");
    let answering_view = app.proxy(&format!("127.0.0.1:{answering}")).await.unwrap();
    assert_eq!(answering_view["health"], "up");
    assert_eq!(answering_view["consecutive_failures"], 0);
    assert!(answering_view["last_outcome_at"].is_string());
    assert!(answered.load(Ordering::SeqCst) >= 2);
    for port in [silent, late] {
        let view = app.proxy(&format!("127.0.0.1:{port}")).await.unwrap();
        assert_eq!(view["health"], "down", "{view}");
    }
    // The late endpoint's answers arrive after the timeout: they must not count (a success
    // would bring a down proxy up at once).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(late_received.load(Ordering::SeqCst) >= 2);
    let view = app.proxy(&format!("127.0.0.1:{late}")).await.unwrap();
    assert_eq!(view["health"], "down", "{view}");
    // sips: proxies are never probed.
    assert_eq!(secure_received.load(Ordering::SeqCst), 0);
    // Lookups kept answering all along, from memory.
    assert_eq!(app.uris(A1).await.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn a_down_proxy_that_answers_a_probe_is_up_again() {
    let (port, _) = endpoint(Behaviour::Answer).await;
    let db = fresh_sqlite();
    let app = spawn(&db.url, |s| {
        s.health_failures = 1;
        s.probe_interval = Some(Duration::from_secs(1));
    })
    .await;
    let uri = format!("sip:127.0.0.1:{port}");
    app.configure(Some(A1), &voice_config(&[&uri, "sips:127.0.0.1:9"]))
        .await;
    app.report(&uri, "failure", 1).await;
    assert_eq!(app.order(A1).await[1], (uri.clone(), "down".to_owned()));
    within(Duration::from_secs(3), "up after a probe", || async {
        app.order(A1).await[0] == (uri.clone(), "up".to_owned())
    })
    .await;
    app.stop().await;
}
