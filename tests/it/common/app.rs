//! The real server on 127.0.0.1:0 with known credentials, spoken to over HTTP.
//!
//! The one place that assembles a server from the library (`start`, `RunningServer`,
//! `ServeError`, `TlsError`, `router`): when those move, only this file follows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use multiprovider::config::KeyMaterial;
use multiprovider::config::Settings;
use multiprovider::http::AppState;
use multiprovider::server::{RunningServer, start};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

pub use multiprovider::server::{ServeError, TlsError};

use super::constants::{ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, J};
use super::raw::{Outcome, exchange};
use super::wire::{basic, encode, form};

/// How a test server is set up; `Default`: an engine token, no secret key.
#[derive(Clone, Debug)]
pub struct AppOptions {
    pub engine_token: Option<String>,
    pub secret_key: Option<String>,
}

impl Default for AppOptions {
    fn default() -> AppOptions {
        AppOptions {
            engine_token: Some(ENGINE_TOKEN.to_owned()),
            secret_key: None,
        }
    }
}

impl AppOptions {
    /// No engine token: engines authenticate as the admin.
    pub fn without_engine_token() -> AppOptions {
        AppOptions {
            engine_token: None,
            secret_key: None,
        }
    }

    /// Configurations sealed with `key` (hex or base64).
    pub fn with_secret_key(key: &str) -> AppOptions {
        AppOptions {
            secret_key: Some(key.to_owned()),
            ..AppOptions::default()
        }
    }
}

/// A server (or, from `connect`, a client of one that runs elsewhere).
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (`https://…` when the server was started with `settings.tls`)
    pub base_url: String,
    pub client: Client,
    /// What the server was started with: its credentials, its database.
    pub settings: Settings,
    server: Option<RunningServer>,
}

/// Starts the server on `db_url` (migrating it) with `ADMIN_SID`/`ADMIN_TOKEN`.
pub async fn spawn_app(db_url: &str, options: AppOptions) -> TestApp {
    spawn_custom(db_url, |settings| {
        settings.engine_token = options.engine_token;
        settings.secret_key = options
            .secret_key
            .as_deref()
            .map(|k| KeyMaterial::parse(k).expect("test secret key"));
    })
    .await
}

/// A server with `ADMIN_SID`/`ADMIN_TOKEN`, no engine token, and whatever `change` sets.
pub async fn spawn_custom(db_url: &str, change: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(db_url);
    change(&mut settings);
    spawn_settings(settings).await
}

fn test_settings(db_url: &str) -> Settings {
    let mut settings = Settings::new(db_url);
    settings.admin_sid = ADMIN_SID.to_owned();
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.admin_token_generated = false;
    // Explained answers carry the instant (`at`): a fixed clock makes them comparable.
    settings.clock = multiprovider::config::Clock::from_fn(|| {
        super::constants::TEST_NOW.parse().expect("TEST_NOW")
    });
    settings
}

/// Starts the server on `settings.listen` (`127.0.0.1:0` unless a test changed it).
async fn spawn_settings(settings: Settings) -> TestApp {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .unwrap_or_else(|e| panic!("bind {}: {e}", settings.listen));
    let server = start(settings.clone(), listener)
        .await
        .expect("server starts");
    let addr = server.local_addr();
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    TestApp {
        base_url: format!("{scheme}://{addr}"),
        server: Some(server),
        ..TestApp::connect(addr, settings)
    }
}

/// Starts a server on `db_url` with the secret key `key` and stops it again: what start-up
/// refuses, it refuses here.
pub async fn start_and_stop(db_url: &str, key: Option<&str>) -> Result<(), ServeError> {
    let mut settings = test_settings(db_url);
    settings.secret_key = key.map(|k| KeyMaterial::parse(k).expect("test secret key"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    start(settings, listener).await?.shutdown().await
}

/// The router alone on a migrated store whose cache was never filled (what `start` never
/// serves): its address and the serving task.
pub async fn spawn_unloaded(db_url: &str) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let store = multiprovider::store::Store::connect(db_url, None)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let mut settings = test_settings(db_url);
    settings.engine_token = Some(ENGINE_TOKEN.into());
    let state = AppState {
        operators: Arc::new(multiprovider::operators::Authenticator::new(store.clone())),
        configs: multiprovider::configs::Configs::new(
            store,
            Arc::new(multiprovider::cache::RoutingCache::new()),
        ),
        settings: Arc::new(settings),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let serving = tokio::spawn(async move {
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service(
            multiprovider::http::app(state),
        );
        axum::serve(listener, app).await.expect("serve")
    });
    (addr, serving)
}

impl TestApp {
    /// A client of the server at `addr` (the binary as a child process) that has `settings`'
    /// credentials; it has no in-process state.
    pub fn connect(addr: SocketAddr, settings: Settings) -> TestApp {
        TestApp {
            addr,
            base_url: format!("http://{addr}"),
            client: Client::builder().build().expect("reqwest client"),
            settings,
            server: None,
        }
    }

    /// A client of a server at `addr` started with `ADMIN_SID`, `ADMIN_TOKEN`, `ENGINE_TOKEN`.
    pub fn connect_with_test_credentials(addr: SocketAddr) -> TestApp {
        let mut settings = test_settings("");
        settings.engine_token = Some(ENGINE_TOKEN.into());
        TestApp::connect(addr, settings)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn state(&self) -> &AppState {
        self.server.as_ref().expect("server running").state()
    }

    /// What SIGHUP does: re-reads the HTTPS certificate and key files.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        self.server.as_ref().expect("server running").reload_tls()
    }

    /// Stops the server (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops this server and starts a new one with the same settings (a new port).
    pub async fn restart(self) -> TestApp {
        let settings = self.settings.clone();
        self.stop().await;
        spawn_settings(settings).await
    }

    // ---- admin API

    /// `request` with the super-admin's basic auth.
    pub fn admin(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(&self.settings.admin_sid, Some(&self.settings.admin_token))
    }

    /// The `Authorization` header value of the super-admin.
    pub fn admin_authorization(&self) -> String {
        basic(&self.settings.admin_sid, &self.settings.admin_token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.admin(self.client.get(self.url(path)))
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_accept(&self, path: &str, accept: &str) -> Response {
        self.admin(self.client.get(self.url(path)).header("accept", accept))
            .send()
            .await
            .expect("GET")
    }

    /// POST of an already encoded form body.
    pub async fn post_raw(&self, path: &str, body: impl Into<String>) -> Response {
        self.admin(
            self.client
                .post(self.url(path))
                .header("content-type", FORM)
                .body(body.into()),
        )
        .send()
        .await
        .expect("POST")
    }

    /// POST of form `pairs`, url-encoded.
    pub async fn post_form(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        self.post_raw(path, form(pairs)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.admin(self.client.delete(self.url(path)))
            .send()
            .await
            .expect("DELETE")
    }

    /// The collection POST of docs/api.md: `ExtensionName=multi_provider`, and `AccountSid`
    /// (`None`: the global configuration), `ConfigurationData` and `Enabled` when given.
    pub async fn write(
        &self,
        account: Option<&str>,
        configuration: Option<&str>,
        enabled: Option<&str>,
    ) -> Response {
        let mut pairs = vec![("ExtensionName", "multi_provider")];
        if let Some(account) = account {
            pairs.push(("AccountSid", account));
        }
        if let Some(configuration) = configuration {
            pairs.push(("ConfigurationData", configuration));
        }
        if let Some(enabled) = enabled {
            pairs.push(("Enabled", enabled));
        }
        self.post_form(J, &pairs).await
    }

    /// `write` of a configuration, which must be answered 200: the answer's JSON.
    pub async fn configure(&self, account: Option<&str>, configuration: &str) -> Value {
        let response = self.write(account, Some(configuration), None).await;
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON answer")
    }

    // ---- lookup API

    /// `request` with the engine's bearer token.
    pub fn engine(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self.settings.engine_token.as_deref().expect("engine token"))
    }

    /// `GET path` with the engine token: status and JSON answer.
    pub async fn engine_get(&self, path: &str) -> (u16, Value) {
        status_and_json(self.engine(self.client.get(self.url(path)))).await
    }

    /// `GET …/voice-route?to=…` (`to` percent-encoded): status and JSON answer.
    pub async fn voice_route(&self, account: &str, to: &str) -> (u16, Value) {
        let to = encode(to);
        self.engine_get(&format!("/v1/accounts/{account}/voice-route?to={to}"))
            .await
    }

    /// `POST …/voice-route` with the JSON `body`: status and JSON answer.
    pub async fn voice_post(&self, account: &str, body: &Value) -> (u16, Value) {
        let path = format!("/v1/accounts/{account}/voice-route");
        status_and_json(self.engine(self.client.post(self.url(&path)).json(body))).await
    }

    /// `GET …/sms-route`: status and JSON answer.
    pub async fn sms_route(&self, account: &str) -> (u16, Value) {
        self.engine_get(&format!("/v1/accounts/{account}/sms-route"))
            .await
    }

    /// `GET …/sms-route`: (status, source, destination network id or "").
    pub async fn sms_summary(&self, account: &str) -> (u16, String, String) {
        let (status, v) = self.sms_route(account).await;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (status, text(&v["source"]), text(&v["tlvs"][0]["value"]))
    }

    // ---- operations

    /// `GET /metrics` (which must be a 200) until its text contains `needle`, at most five
    /// scrapes: the last text. The recorder is the process's: every server of this test binary
    /// counts into it, and a scrape sets the gauges (cache size, proxies by health) from the
    /// scraped server, so another server's scrape can come in between.
    pub async fn metrics_with(&self, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..5 {
            let r = self.client.get(self.url("/metrics")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            text = r.text().await.unwrap();
            if text.contains(needle) {
                break;
            }
        }
        text
    }

    // ---- raw HTTP

    /// Sends `head` (request line and headers, without the blank line; `Host` and
    /// `Connection: close` are added) and `body` on a fresh connection (see `exchange`).
    pub async fn raw(&self, head: &str, body: &[u8]) -> Outcome {
        self.raw_within(head, body, Duration::from_secs(20)).await
    }

    /// `raw`, waiting at most `deadline` for the answer.
    pub async fn raw_within(&self, head: &str, body: &[u8], deadline: Duration) -> Outcome {
        let mut request =
            format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr).into_bytes();
        request.extend_from_slice(body);
        exchange(self.addr, request, deadline).await
    }
}

/// Sends `request`: its status and its body, which must be JSON.
async fn status_and_json(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} answer is not JSON ({e}): {text}"));
    (status, value)
}
