//! Refusals are visible but cannot flood the log (docs/strictness.md): every 4xx at `info`
//! with the route, status, the parameter at fault and the remote address, at most
//! `PER_WINDOW` lines per route and status a second, and a summary counting the rest.

use futures_util::StreamExt as _;

use crate::common::app::{AppOptions, spawn_app};
use crate::common::constants::{A1, ENGINE_TOKEN, SMS};
use crate::common::logs::with_captured_logs;
use crate::common::on_every_db;
use multiprovider::http::refusals::{PER_WINDOW, WINDOW};

const FLOOD: usize = 10_000;

on_every_db!(blocking a_flood_of_bad_lookups_logs_a_bounded_number_of_lines_and_a_summary, |db| {
    let mut elapsed = std::time::Duration::ZERO;
    let log = with_captured_logs("info", async {
        let app = spawn_app(&db.url, AppOptions::default()).await;
        app.configure(Some(A1), SMS).await;
        let started = std::time::Instant::now();
        // Half with an unknown parameter (400), half with a wrong token (401).
        let statuses: Vec<u16> = futures_util::stream::iter(0..FLOOD)
            .map(|i| {
                let (path, token) = if i % 2 == 0 {
                    (format!("/v1/accounts/{A1}/sms-route?explian=true"), ENGINE_TOKEN)
                } else {
                    (format!("/v1/accounts/{A1}/sms-route"), "not-the-token")
                };
                let request = app.client.get(app.url(&path)).bearer_auth(token);
                async move { request.send().await.unwrap().status().as_u16() }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        elapsed = started.elapsed();
        assert_eq!(statuses.iter().filter(|s| **s == 400).count(), FLOOD / 2);
        assert_eq!(statuses.iter().filter(|s| **s == 401).count(), FLOOD / 2);
        // Once the last window is over, its summary is written (by then, or with the next
        // refusal of the same kind, which this one is).
        tokio::time::sleep(WINDOW + WINDOW / 2).await;
        let r = app
            .client
            .get(app.url(&format!("/v1/accounts/{A1}/sms-route?explian=true")))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        app.stop().await;
    });
    let refused: Vec<&str> = log.lines().filter(|l| l.contains(" refused ")).collect();
    let summaries: Vec<&str> = log.lines().filter(|l| l.contains("not logged")).collect();
    // Two kinds of refusal, PER_WINDOW lines each per window, over the flood's windows
    // (plus the one of the last request and a window begun at each boundary).
    let windows = elapsed.as_secs() as usize + 3;
    let bound = 2 * PER_WINDOW as usize * windows;
    assert!(
        refused.len() <= bound,
        "{} refusal lines for {FLOOD} refusals in {elapsed:?} (bound {bound})",
        refused.len()
    );
    assert!(!summaries.is_empty(), "no summary:\n{}", log);
    let suppressed: usize = summaries
        .iter()
        .map(|l| {
            let at = l.find("suppressed=").expect("a count") + "suppressed=".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    // Every refusal is either a line or counted in a summary.
    assert_eq!(refused.len() + suppressed, FLOOD + 1, "{summaries:?}");
    // A line says what, where and who.
    let unknown = refused
        .iter()
        .find(|l| l.contains("status=400"))
        .expect("a 400 line");
    for part in [
        "/v1/accounts/{account_sid}/sms-route",
        "explian",
        "remote=\"127.0.0.1\"",
    ] {
        assert!(unknown.contains(part), "{part} missing: {unknown}");
    }
    let unauthorized = refused
        .iter()
        .find(|l| l.contains("status=401"))
        .expect("a 401 line");
    assert!(unauthorized.contains("engine token"), "{unauthorized}");
    assert!(!log.contains(ENGINE_TOKEN), "the token was logged");
    assert!(!log.contains("not-the-token"), "a wrong token was logged");
});
