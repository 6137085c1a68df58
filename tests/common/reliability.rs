//! Helpers of the reliability battery (`tests/reliability_*.rs`): raw HTTP exchanges that never
//! panic on a hostile answer, status tallies for the reports, a comparable picture of what the
//! store holds, and servers with settings of their own.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use multiprovider::config::Settings;
use multiprovider::routing::{
    self, CompiledRouting, Destination, Source, VoiceAnswer, sms_response_json, voice_response_json,
};
use multiprovider::server::{RunningServer, start};
use multiprovider::sid::AccountSid;
use multiprovider::store::{ConfigRecord, Store};

use super::app::{ADMIN_SID, ADMIN_TOKEN, TestApp};

/// A runtime for tests that drive async code from synchronous closures (proptest).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What came back on a raw connection.
#[derive(Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete status line and header block (the body as far as it was read).
    Answered {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The server closed the connection without (a complete head of) an answer.
    Closed { received: Vec<u8> },
    /// Nothing complete within the deadline.
    TimedOut { received: Vec<u8> },
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = |b: &[u8]| {
            let text = String::from_utf8_lossy(&b[..b.len().min(600)]).into_owned();
            if b.len() > 600 {
                format!("{text}… ({} bytes)", b.len())
            } else {
                text
            }
        };
        match self {
            Outcome::Answered {
                status,
                headers,
                body,
            } => write!(f, "{status} {headers:?} {:?}", cut(body)),
            Outcome::Closed { received } => write!(f, "closed after {:?}", cut(received)),
            Outcome::TimedOut { received } => write!(f, "timed out after {:?}", cut(received)),
        }
    }
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Answered { headers, .. } => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }

    pub fn body_text(&self) -> String {
        match self {
            Outcome::Answered { body, .. } => String::from_utf8_lossy(body).into_owned(),
            Outcome::Closed { received } | Outcome::TimedOut { received } => {
                String::from_utf8_lossy(received).into_owned()
            }
        }
    }
}

/// Sends `request` (exact bytes: the caller writes the whole request, `Connection: close`
/// included if wanted) on a fresh connection and reads until the server closes or `deadline`
/// passes. Reads while writing, since the server may answer before reading everything.
pub async fn exchange(addr: SocketAddr, request: Vec<u8>, deadline: Duration) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(_) => return Outcome::Closed { received: vec![] },
    };
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        // Keep the write half open: a half-close can make servers give up early.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(writer);
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + deadline;
    let timed_out = loop {
        match tokio::time::timeout_at(until, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break false,
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                if complete_answer(&received) {
                    break false;
                }
            }
            Err(_) => break true,
        }
    };
    write.abort();
    match parse_answer(&received) {
        Some(answered) => answered,
        None if timed_out => Outcome::TimedOut { received },
        None => Outcome::Closed { received },
    }
}

/// True once `received` holds a head and a body of the announced `Content-Length`.
fn complete_answer(received: &[u8]) -> bool {
    let Some(end) = find(received, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
    let length = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim() == "content-length")
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    match length {
        Some(n) => received.len() >= end + 4 + n,
        None => false,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_answer(received: &[u8]) -> Option<Outcome> {
    let end = find(received, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Outcome::Answered {
        status,
        headers,
        body: received[end + 4..].to_vec(),
    })
}

/// How many answers had each status (and how many got none), for reports and messages.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub statuses: BTreeMap<String, usize>,
}

impl Tally {
    pub fn add(&mut self, key: impl fmt::Display) {
        *self.statuses.entry(key.to_string()).or_default() += 1;
    }

    pub fn count(&self, key: &str) -> usize {
        self.statuses.get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.statuses.values().sum()
    }

    /// Number of answers whose status starts with `digit` (`'5'` for 5xx).
    pub fn class(&self, digit: char) -> usize {
        self.statuses
            .iter()
            .filter(|(k, _)| k.len() == 3 && k.starts_with(digit))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += n;
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        write!(f, "{{{}}} (total {})", parts.join(", "), self.total())
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything the store holds, in a form that compares equal exactly when nothing was written
/// (the revision counter included: a rolled-back write leaves it unchanged too).
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    pub revision: i64,
    pub global: Option<ConfigRecord>,
    pub accounts: BTreeMap<String, ConfigRecord>,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configurations can be long: revisions and sizes tell what changed.
        let accounts: Vec<String> = self
            .accounts
            .iter()
            .map(|(sid, r)| {
                format!(
                    "{sid}@{} enabled={} {}B",
                    r.revision,
                    r.enabled,
                    r.configuration.len()
                )
            })
            .collect();
        f.debug_struct("Stored")
            .field("revision", &self.revision)
            .field(
                "global",
                &self.global.as_ref().map(|g| {
                    format!(
                        "@{} enabled={} {:?}",
                        g.revision, g.enabled, g.configuration
                    )
                }),
            )
            .field("accounts", &accounts)
            .finish()
    }
}

pub async fn stored(store: &Store) -> Stored {
    let snapshot = store.load_all().await.expect("load_all");
    Stored {
        revision: snapshot.revision,
        global: snapshot.global,
        accounts: snapshot
            .accounts
            .into_iter()
            .map(|r| (r.account_sid.expect("account record").to_string(), r))
            .collect(),
    }
}

/// A server with settings of the caller's choosing (the admin Sid and token of `app.rs`
/// unless changed), for what `spawn_app` does not cover.
pub struct CustomApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    server: Option<RunningServer>,
}

pub async fn spawn_custom(db_url: &str, change: impl FnOnce(&mut Settings)) -> CustomApp {
    let mut settings = Settings::new(db_url);
    settings.admin_sid = ADMIN_SID.to_owned();
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.admin_token_generated = false;
    change(&mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let server = start(settings, listener).await.expect("server starts");
    let addr = server.local_addr();
    CustomApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::new(),
        server: Some(server),
    }
}

impl CustomApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn state(&self) -> &multiprovider::http::AppState {
        self.server.as_ref().expect("server running").state()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

/// `GET …/sms-route` with the engine token: (status, source, destination network id or "").
pub async fn sms_route(app: &TestApp, account: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url(&format!("/v1/accounts/{account}/sms-route")))
        .bearer_auth(app.engine_token.as_deref().expect("engine token"))
        .send()
        .await
        .expect("sms-route");
    let status = response.status().as_u16();
    let value: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        value["source"].as_str().unwrap_or_default().to_owned(),
        value["tlvs"][0]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The `destination_network_id` of an SMS configuration, in canonical decimal.
pub fn sms_id(configuration: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(configuration).ok()?;
    let id = &v["outbound-sms"][0]["destination_network_id"];
    match id {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim_start_matches('0').to_owned())
            .map(|s| if s.is_empty() { "0".to_owned() } else { s }),
        _ => None,
    }
}

/// What the cache must answer for `account` given what the store holds (SPEC §1).
pub fn expected_resolution(stored: &Stored, account: &str) -> (Source, Option<CompiledRouting>) {
    let compile = |c: &str| routing::compile(c).expect("stored configurations are valid");
    if stored.global.as_ref().is_some_and(|g| !g.enabled) {
        return (Source::None, None);
    }
    if let Some(r) = stored.accounts.get(account) {
        return if r.enabled {
            (Source::Account, Some(compile(&r.configuration)))
        } else {
            (Source::None, None)
        };
    }
    match &stored.global {
        Some(g) => {
            let c = compile(&g.configuration);
            if c.is_empty() {
                (Source::None, None)
            } else {
                (Source::Global, Some(c))
            }
        }
        None => (Source::None, None),
    }
}

pub fn answers(account: &str, source: Source, routing: Option<&CompiledRouting>) -> [Vec<u8>; 3] {
    let sms = sms_response_json(
        Some(account),
        source,
        None,
        routing.map(|r| r.sms_tlvs()).unwrap_or_default(),
    );
    let voice = |to: &str| {
        let dest = Destination::parse(to).unwrap();
        match routing {
            Some(r) => {
                voice_response_json(Some(account), source, None, &r.resolve_voice(&dest, &[]))
            }
            None => voice_response_json(Some(account), source, None, &VoiceAnswer::none()),
        }
    };
    [sms, voice("sip:bob@uri1.com"), voice("+15551234")]
}

/// The cache of `state` answers exactly what `stored` holds for `account` (SMS, a SIP call
/// and a PSTN call); `Err` describes the difference.
pub fn cache_agrees(
    state: &multiprovider::http::AppState,
    stored: &Stored,
    account: &str,
) -> Result<(), String> {
    let sid = AccountSid::parse(account).expect("account sid");
    let got = state.cache.resolve(&sid);
    let (source, compiled) = expected_resolution(stored, account);
    let got = answers(account, got.source, got.routing.as_deref());
    let want = answers(account, source, compiled.as_ref());
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "cache and store disagree for {account}: cache {}, store {}",
            String::from_utf8_lossy(&got.concat()),
            String::from_utf8_lossy(&want.concat())
        ))
    }
}
