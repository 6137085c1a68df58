//! A server with chosen health settings, and the requests of docs/operations.md these tests make.

use std::time::{Duration, Instant};

use multiprovider::config::Settings;
use serde_json::Value;

use crate::common::app::{TestApp, spawn_custom};
use crate::common::constants::ENGINE_TOKEN;

/// A server on `db_url` with the test credentials (the engine token too), `change` applied
/// to its settings.
pub async fn spawn(db_url: &str, change: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_custom(db_url, |settings| {
        settings.engine_token = Some(ENGINE_TOKEN.to_owned());
        change(settings);
    })
    .await
}

/// Health settings for tests: `failures` to go down, `cooldown` before probing.
pub fn health(failures: u32, cooldown: Duration) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.health_failures = failures;
        s.health_cooldown = cooldown;
    }
}

/// A voice configuration whose proxies all match everything.
pub fn voice_config(uris: &[&str]) -> String {
    let proxies: Vec<String> = uris
        .iter()
        .map(|u| format!(r#"{{"uri": "{u}", "username": "u", "password": "p"}}"#))
        .collect();
    format!(
        r#"{{"outbound-voice": [{{"proxy": [{}]}}]}}"#,
        proxies.join(", ")
    )
}

/// Polls `check` every 20 ms until it holds, for at most `within`; the time it took.
pub async fn within<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The requests of docs/operations.md, and the voice answer seen as an order of proxies, made with
/// the engine token.
pub trait HealthApi {
    /// The raw voice answer for `sip:bob@example.com`, which must be a 200.
    async fn voice_bytes(&self, account: &str) -> Vec<u8>;

    /// The voice answer's routes as `(proxy uri as configured, health)`, route first.
    async fn order(&self, account: &str) -> Vec<(String, String)>;

    /// The configured uris in the answer's order.
    async fn uris(&self, account: &str) -> Vec<String>;

    /// `POST /v1/outcomes` with `body` as it is, and `content_type` if given: the status and
    /// the JSON answer (`null` when it is not JSON).
    async fn report_raw(&self, body: &str, content_type: Option<&str>) -> (u16, Value);

    /// Reports `outcome` for `proxy`, `times` times in one batch; expects 202.
    async fn report(&self, proxy: &str, outcome: &str, times: usize) -> Value;

    /// `GET /v1/proxies{query}`: the status and the JSON answer.
    async fn proxies(&self, query: &str) -> (u16, Value);

    /// The item of `proxy` (host:port) in `GET /v1/proxies`.
    async fn proxy(&self, proxy: &str) -> Option<Value>;
}

impl HealthApi for TestApp {
    async fn voice_bytes(&self, account: &str) -> Vec<u8> {
        let path = format!("/v1/accounts/{account}/voice-route?to=sip:bob@example.com");
        let r = self
            .engine(self.client.get(self.url(&path)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap().to_vec()
    }

    async fn order(&self, account: &str) -> Vec<(String, String)> {
        let v: Value = serde_json::from_slice(&self.voice_bytes(account).await).unwrap();
        std::iter::once(&v["route"])
            .chain(v["fallbacks"].as_array().unwrap())
            .filter(|r| !r.is_null())
            .map(|r| {
                (
                    r["proxy"]["uri"].as_str().unwrap().to_owned(),
                    r["health"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    async fn uris(&self, account: &str) -> Vec<String> {
        self.order(account)
            .await
            .into_iter()
            .map(|(u, _)| u)
            .collect()
    }

    async fn report_raw(&self, body: &str, content_type: Option<&str>) -> (u16, Value) {
        let mut request = self
            .engine(self.client.post(self.url("/v1/outcomes")))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn report(&self, proxy: &str, outcome: &str, times: usize) -> Value {
        let one = serde_json::json!({"proxy": proxy, "outcome": outcome});
        let body = serde_json::to_string(&vec![one; times]).unwrap();
        let (status, v) = self.report_raw(&body, Some("application/json")).await;
        assert_eq!(status, 202, "{v}");
        v
    }

    async fn proxies(&self, query: &str) -> (u16, Value) {
        self.engine_get(&format!("/v1/proxies{query}")).await
    }

    async fn proxy(&self, proxy: &str) -> Option<Value> {
        let (status, v) = self.proxies("?PageSize=1000").await;
        assert_eq!(status, 200);
        v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["proxy"] == proxy)
            .cloned()
    }
}
