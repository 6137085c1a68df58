//! A server with chosen health settings, and the requests these tests make.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use multiprovider::config::Settings;
use multiprovider::http::AppState;
use multiprovider::server::{RunningServer, start};
use reqwest::Client;
use serde_json::Value;

use crate::app::{ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, form};

pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const OTHER: &str = "AC00000000000000000000000000000001";

pub struct Server {
    pub addr: SocketAddr,
    pub client: Client,
    server: Option<RunningServer>,
}

/// Starts a server on `db_url` with the test credentials, `change` applied to its settings.
pub async fn spawn(db_url: &str, change: impl FnOnce(&mut Settings)) -> Server {
    let mut settings = Settings::new(db_url);
    settings.admin_sid = ADMIN_SID.to_owned();
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.admin_token_generated = false;
    settings.engine_token = Some(ENGINE_TOKEN.to_owned());
    change(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = start(settings, listener).await.expect("server starts");
    Server {
        addr: server.local_addr(),
        client: Client::new(),
        server: Some(server),
    }
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

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn state(&self) -> &AppState {
        self.server.as_ref().expect("running").state()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stores `config` as `account`'s configuration.
    pub async fn configure(&self, account: &str, config: &str) {
        let body = form(&[
            ("ExtensionName", "multi_provider"),
            ("AccountSid", account),
            ("ConfigurationData", config),
        ]);
        let r = self
            .client
            .post(self.url("/2012-04-24/ExtensionsConfiguration.json"))
            .basic_auth(ADMIN_SID, Some(ADMIN_TOKEN))
            .header("content-type", FORM)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    pub async fn delete(&self, account: &str) {
        let r = self
            .client
            .delete(self.url(&format!(
                "/2012-04-24/ExtensionsConfiguration.json/multi_provider?AccountSid={account}"
            )))
            .basic_auth(ADMIN_SID, Some(ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// The raw voice answer for `sip:bob@example.com`.
    pub async fn voice_bytes(&self, account: &str) -> Vec<u8> {
        let r = self
            .client
            .get(self.url(&format!(
                "/v1/accounts/{account}/voice-route?to=sip:bob@example.com"
            )))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap().to_vec()
    }

    /// The voice answer's routes as `(proxy host[:port] as configured, health)`, route first.
    pub async fn order(&self, account: &str) -> Vec<(String, String)> {
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

    /// The configured uris in the answer's order.
    pub async fn uris(&self, account: &str) -> Vec<String> {
        self.order(account)
            .await
            .into_iter()
            .map(|(u, _)| u)
            .collect()
    }

    /// `POST /v1/outcomes` with the engine token and `body` as it is (no content type).
    pub async fn report_raw(&self, body: &str, content_type: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url("/v1/outcomes"))
            .bearer_auth(ENGINE_TOKEN)
            .body(body.to_owned());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Reports `outcome` for `proxy`, `times` times in one batch; expects 202.
    pub async fn report(&self, proxy: &str, outcome: &str, times: usize) -> Value {
        let one = serde_json::json!({"proxy": proxy, "outcome": outcome});
        let body = serde_json::to_string(&vec![one; times]).unwrap();
        let (status, v) = self.report_raw(&body, Some("application/json")).await;
        assert_eq!(status, 202, "{v}");
        v
    }

    /// `GET /v1/proxies{query}`.
    pub async fn proxies(&self, query: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(&format!("/v1/proxies{query}")))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The item of `proxy` (host:port) in `GET /v1/proxies`.
    pub async fn proxy(&self, proxy: &str) -> Option<Value> {
        let (status, v) = self.proxies("?PageSize=1000").await;
        assert_eq!(status, 200);
        v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["proxy"] == proxy)
            .cloned()
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
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
