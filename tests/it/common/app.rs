//! The real server on 127.0.0.1:0 with known credentials, spoken to over HTTP.

use std::net::SocketAddr;

use multiprovider::config::Settings;
use multiprovider::http::{AppState, RunningServer, start};
use multiprovider::secret::SecretKey;
use reqwest::{Client, RequestBuilder, Response};

pub const ADMIN_SID: &str = "ACae6e420f425248d6a26948c17a9e2acf";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ENGINE_TOKEN: &str = "test-engine-token-9876543210";
pub const FORM: &str = "application/x-www-form-urlencoded";

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

pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub client: Client,
    pub admin_sid: String,
    pub admin_token: String,
    pub engine_token: Option<String>,
    pub db_url: String,
    pub options: AppOptions,
    server: Option<RunningServer>,
}

/// Starts the server on `db_url` (migrating it) with `ADMIN_SID`/`ADMIN_TOKEN`.
pub async fn spawn_app(db_url: &str, options: AppOptions) -> TestApp {
    let mut settings = Settings::new(db_url);
    settings.admin_sid = ADMIN_SID.to_owned();
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.admin_token_generated = false;
    settings.engine_token = options.engine_token.clone();
    settings.secret_key = options
        .secret_key
        .as_deref()
        .map(|k| SecretKey::parse(k).expect("test secret key"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let server = start(settings, listener).await.expect("server starts");
    let addr = server.local_addr();
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: Client::builder().build().expect("reqwest client"),
        admin_sid: ADMIN_SID.to_owned(),
        admin_token: ADMIN_TOKEN.to_owned(),
        engine_token: options.engine_token.clone(),
        db_url: db_url.to_owned(),
        options,
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn state(&self) -> &AppState {
        self.server.as_ref().expect("server running").state()
    }

    /// Stops the server (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops this server and starts a new one on the same database (a new port).
    pub async fn restart(self) -> TestApp {
        let (db_url, options) = (self.db_url.clone(), self.options.clone());
        self.stop().await;
        spawn_app(&db_url, options).await
    }

    /// `request` with the super-admin's basic auth.
    pub fn admin(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(&self.admin_sid, Some(&self.admin_token))
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
}

/// `application/x-www-form-urlencoded` encoding of `pairs` (everything but unreserved
/// characters percent-encoded, as `curl --data-urlencode` does).
pub fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    /// Sends `head` (request line and headers, without the blank line; `Connection: close`
    /// is added) and `body` on a fresh connection, reading the answer while still writing:
    /// the server may answer (401, 413...) before it read a large body, and then closes.
    pub async fn raw(&self, head: &str, body: Vec<u8>) -> RawResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let request = format!("{head}\r\nHost: {}\r\nConnection: close\r\n\r\n", self.addr);
        let write = tokio::spawn(async move {
            // Errors are expected once the server answered and closed.
            if writer.write_all(request.as_bytes()).await.is_ok() {
                let _ = writer.write_all(&body).await;
            }
            writer
        });
        let mut received = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
                Err(_) => panic!(
                    "no complete answer within 20 s: {}",
                    String::from_utf8_lossy(&received)
                ),
            }
        }
        write.abort();
        let text = String::from_utf8_lossy(&received).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        RawResponse {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    /// The `Authorization` header value of the super-admin.
    pub fn admin_authorization(&self) -> String {
        basic(&self.admin_sid, &self.admin_token)
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
