//! The shipped Kamailio integration (`integrations/kamailio/kamailio.cfg`), end to end: real
//! Kamailio 5.6 asks the real server over HTTP and sends real SIP over UDP on 127.0.0.1 to
//! test carriers written here, which record exactly what reaches them.
//!
//! Skipped when `kamailio` is not installed, unless `MULTIPROVIDER_REQUIRE_KAMAILIO=1` (CI),
//! which makes a missing Kamailio a failure. `MULTIPROVIDER_KAMAILIO=/path/to/kamailio` picks
//! the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::json;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

use crate::common::app::{AppOptions, spawn_app};
use crate::common::constants::{A_NONE, A1, A2, ENGINE_TOKEN};
use crate::common::db::fresh_sqlite;
use crate::health::support::{self, HealthApi, voice_config, within};

const SHIPPED_CFG: &str = include_str!("../../integrations/kamailio/kamailio.cfg");
const TRUNK_USER: &str = "trunk-user";
const TRUNK_PASSWORD: &str = "s3cret-Pa55";

// ---------------------------------------------------------------- SIP messages

/// A SIP message as received: start line and headers in order, exactly as written.
#[derive(Debug, Clone)]
struct Sip {
    start: String,
    headers: Vec<(String, String)>,
}

impl Sip {
    fn parse(bytes: &[u8]) -> Option<Sip> {
        let text = std::str::from_utf8(bytes).ok()?;
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(Sip { start, headers })
    }

    fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    /// The Request-URI of a request.
    fn uri(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// The status of a response.
    fn status(&self) -> u16 {
        self.start
            .strip_prefix("SIP/2.0 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Every value of header `name` (any case, compact forms not used by anyone here).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: &str) -> &str {
        match self.all(name).as_slice() {
            [one] => one,
            other => panic!("{name}: expected one header, got {other:?} in {self:#?}"),
        }
    }
}

/// A response to `request`, with its Via, From, To (tagged), Call-ID and CSeq.
fn response(request: &Sip, status: &str, extra: &[String]) -> Vec<u8> {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in request.all("Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {}\r\n", request.one("From")));
    let to = request.one("To");
    if to.contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag=carrier1\r\n"));
    }
    out.push_str(&format!("Call-ID: {}\r\n", request.one("Call-ID")));
    out.push_str(&format!("CSeq: {}\r\n", request.one("CSeq")));
    for line in extra {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// `Digest a="b", c=d` → pairs, quotes removed.
fn digest_params(value: &str) -> Vec<(String, String)> {
    let rest = value
        .strip_prefix("Digest")
        .expect("a Digest header")
        .trim();
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let value: String = if chars.peek() == Some(&'"') {
            chars.next();
            chars.by_ref().take_while(|c| *c != '"').collect()
        } else {
            chars.by_ref().take_while(|c| *c != ',').collect()
        };
        params.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    params
}

// ---------------------------------------------------------------- test carriers

/// How a test carrier answers an INVITE.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Accept,
    Unavailable,
    /// Never answers: Kamailio's timer gives up (408).
    Silent,
    /// Challenge (401 `WWW-Authenticate` or 407 `Proxy-Authenticate`) an INVITE without
    /// valid credentials; accept one with them.
    Challenge {
        proxy: bool,
    },
}

const REALM: &str = "carrier.test";
const NONCE: &str = "5f1d1c0e2b3a4d5e";

/// A UAS on 127.0.0.1 that records every INVITE it receives and answers as scripted.
struct Carrier {
    addr: SocketAddr,
    /// How it answers the next INVITE (`set` changes it).
    behaviour: Arc<Mutex<Behaviour>>,
    invites: Arc<Mutex<Vec<Sip>>>,
    /// For a challenging carrier: the outcome of checking each Authorization received.
    verified: Arc<Mutex<Vec<Result<String, String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Carrier {
    async fn start(behaviour: Behaviour) -> Carrier {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let current = Arc::new(Mutex::new(behaviour));
        let invites = Arc::new(Mutex::new(Vec::new()));
        let verified = Arc::new(Mutex::new(Vec::new()));
        let (now, inv, ver) = (current.clone(), invites.clone(), verified.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let Some(request) = Sip::parse(&buf[..n]) else {
                    continue;
                };
                if request.method() != "INVITE" {
                    continue; // ACKs of our failures
                }
                inv.lock().unwrap().push(request.clone());
                let behaviour = *now.lock().unwrap();
                let answer = match behaviour {
                    Behaviour::Accept => response(&request, "200 OK", &[contact(addr)]),
                    Behaviour::Unavailable => response(&request, "503 Service Unavailable", &[]),
                    Behaviour::Silent => continue,
                    Behaviour::Challenge { proxy } => {
                        let header = if proxy {
                            "Proxy-Authorization"
                        } else {
                            "Authorization"
                        };
                        match request.all(header).first() {
                            None => {
                                let (status, challenge) = if proxy {
                                    ("407 Proxy Authentication Required", "Proxy-Authenticate")
                                } else {
                                    ("401 Unauthorized", "WWW-Authenticate")
                                };
                                response(
                                    &request,
                                    status,
                                    &[format!(
                                        "{challenge}: Digest realm=\"{REALM}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5"
                                    )],
                                )
                            }
                            Some(credentials) => {
                                let outcome = check_digest(&request, credentials);
                                let ok = outcome.is_ok();
                                ver.lock().unwrap().push(outcome);
                                if ok {
                                    response(&request, "200 OK", &[contact(addr)])
                                } else {
                                    response(&request, "403 Forbidden", &[])
                                }
                            }
                        }
                    }
                };
                let _ = socket.send_to(&answer, from).await;
            }
        });
        Carrier {
            addr,
            behaviour: current,
            invites,
            verified,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answers INVITEs as `behaviour` says.
    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn invites(&self) -> Vec<Sip> {
        self.invites.lock().unwrap().clone()
    }

    fn verified(&self) -> Vec<Result<String, String>> {
        self.verified.lock().unwrap().clone()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contact(addr: SocketAddr) -> String {
    format!("Contact: <sip:carrier@{addr}>")
}

/// RFC 2617 digest check of `credentials` against the trunk's password: `Ok(username)` when
/// the response is right for this request.
fn check_digest(request: &Sip, credentials: &str) -> Result<String, String> {
    let params = digest_params(credentials);
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let need = |name: &str| get(name).ok_or_else(|| format!("no {name} in {credentials}"));
    let (username, realm, nonce, uri, answer) = (
        need("username")?,
        need("realm")?,
        need("nonce")?,
        need("uri")?,
        need("response")?,
    );
    if realm != REALM || nonce != NONCE {
        return Err(format!("realm/nonce not ours: {credentials}"));
    }
    if uri != request.uri() {
        return Err(format!(
            "uri {uri} is not the Request-URI {}",
            request.uri()
        ));
    }
    let ha1 = md5_hex(&format!("{username}:{realm}:{TRUNK_PASSWORD}"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let expected = match get("qop") {
        Some(qop) => md5_hex(&format!(
            "{ha1}:{nonce}:{}:{}:{qop}:{ha2}",
            need("nc")?,
            need("cnonce")?
        )),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    };
    if answer == expected {
        Ok(username.to_owned())
    } else {
        Err(format!("wrong digest response in {credentials}"))
    }
}

// ---------------------------------------------------------------- the calling side

/// A UAC on 127.0.0.1 that sends INVITEs to Kamailio.
struct Caller {
    socket: UdpSocket,
    proxy: SocketAddr,
    calls: u32,
    /// The last final answer.
    last: Option<Sip>,
    /// How many times each INVITE is sent (more than once: retransmissions).
    copies: usize,
}

impl Caller {
    async fn new(proxy: SocketAddr) -> Caller {
        Caller {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            proxy,
            calls: 0,
            last: None,
            copies: 1,
        }
    }

    /// Sends an INVITE for `ruri` (with `X-Account-Sid: account` when given) and returns
    /// the final answer's status; a failure is acknowledged, as a UAC must.
    async fn invite(&mut self, ruri: &str, to: &str, account: Option<&str>) -> u16 {
        let call_id = format!("call-{}@test", self.calls + 1);
        self.invite_as(ruri, to, account, "<sip:alice@client.test>", None, &call_id)
            .await
    }

    /// As `invite`, from `from` (a name-addr), with a P-Asserted-Identity when given, and
    /// with Call-ID `call_id` (a retried call reuses one; each INVITE is a new transaction).
    async fn invite_as(
        &mut self,
        ruri: &str,
        to: &str,
        account: Option<&str>,
        from: &str,
        asserted: Option<&str>,
        call_id: &str,
    ) -> u16 {
        self.calls += 1;
        let me = self.socket.local_addr().unwrap();
        let branch = format!("z9hG4bK-test-{}", self.calls);
        let via = format!("SIP/2.0/UDP {me};branch={branch};rport");
        let from = format!("{from};tag=uac{}", self.calls);
        let mut invite = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{me}>\r\n"
        );
        if let Some(asserted) = asserted {
            invite.push_str(&format!("P-Asserted-Identity: {asserted}\r\n"));
        }
        if let Some(account) = account {
            invite.push_str(&format!("X-Account-Sid: {account}\r\n"));
        }
        invite.push_str("Content-Length: 0\r\n\r\n");
        for _ in 0..self.copies {
            self.socket
                .send_to(invite.as_bytes(), self.proxy)
                .await
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = timeout(deadline - Instant::now(), self.socket.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no final answer to the INVITE of {ruri} within 15 s"))
                .unwrap();
            let Some(answer) = Sip::parse(&buf[..n]) else {
                continue;
            };
            if answer.one("Call-ID") != call_id || answer.status() < 200 {
                continue;
            }
            if answer.status() >= 300 {
                let ack = format!(
                    "ACK {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                    answer.one("To")
                );
                self.socket
                    .send_to(ack.as_bytes(), self.proxy)
                    .await
                    .unwrap();
            }
            let status = answer.status();
            self.last = Some(answer);
            return status;
        }
    }

    /// OPTIONS to Kamailio itself until it answers (it has started), for at most 20 s.
    async fn wait_until_up(&self, kamailio: &mut Kamailio) {
        let me = self.socket.local_addr().unwrap();
        let mut buf = vec![0u8; 65536];
        for attempt in 0..80 {
            let options = format!(
                "OPTIONS sip:{} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-up-{attempt}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@test>;tag=p\r\nTo: <sip:{}>\r\nCall-ID: up-{attempt}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                self.proxy, self.proxy
            );
            self.socket
                .send_to(options.as_bytes(), self.proxy)
                .await
                .unwrap();
            if let Ok(Ok((n, _))) =
                timeout(Duration::from_millis(250), self.socket.recv_from(&mut buf)).await
                && Sip::parse(&buf[..n]).is_some_and(|r| r.status() == 200)
            {
                return;
            }
            kamailio.assert_running();
        }
        panic!(
            "Kamailio did not answer OPTIONS within 20 s:\n{}",
            kamailio.log()
        );
    }
}

// ---------------------------------------------------------------- Kamailio

/// Kamailio in the foreground on a free loopback port, stopped on drop.
struct Kamailio {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The installed `kamailio`, if any: `MULTIPROVIDER_KAMAILIO` when set (another build), else
/// the first on `PATH` or in the sbin directories.
fn kamailio_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MULTIPROVIDER_KAMAILIO") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("kamailio"))
        .find(|p| p.is_file())
}

/// The shipped cfg with only its three `#!substdef` values replaced.
fn generated_cfg(listen: SocketAddr, api: &str, token: &str) -> String {
    let mut substituted = 0;
    let cfg: Vec<String> = SHIPPED_CFG
        .lines()
        .map(|line| {
            let replaced = if line.starts_with("#!substdef \"!MP_LISTEN!") {
                format!("#!substdef \"!MP_LISTEN!udp:{listen}!g\"")
            } else if line.starts_with("#!substdef \"!MP_API!") {
                format!("#!substdef \"!MP_API!{api}!g\"")
            } else if line.starts_with("#!substdef \"!MP_ENGINE_TOKEN!") {
                format!("#!substdef \"!MP_ENGINE_TOKEN!{token}!g\"")
            } else {
                return line.to_owned();
            };
            substituted += 1;
            replaced
        })
        .collect();
    assert_eq!(
        substituted, 3,
        "the shipped cfg has its three substdef lines"
    );
    cfg.join("\n") + "\n"
}

impl Kamailio {
    fn start(binary: &Path, api: &str) -> Kamailio {
        // A free UDP port on loopback, released just before Kamailio takes it.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg, generated_cfg(addr, api, ENGINE_TOKEN)).unwrap();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new(binary)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-f"])
            .arg(&cfg)
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so that its workers are stopped with it.
            .process_group(0)
            .spawn()
            .expect("start kamailio");
        Kamailio { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// Panics with its log if Kamailio has exited (a cfg error, a port taken…).
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("kamailio exited ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM to the group (Kamailio stops its workers), then SIGKILL if it lingers.
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the scenario

/// The account's routing: one proxy per test carrier.
fn configuration([a, b, c, c407, d, e, silent]: [u16; 7]) -> serde_json::Value {
    json!({"outbound-voice": [{"proxy": [
        {"uri": format!("127.0.0.1:{a}"), "match": "carrier-a\\.test", "headers": [
            {"headerName": "Request-URI", "key": "trunk", "value": "a"},
            {"headerName": "To", "key": "tenant", "value": "acme"},
            {"headerName": "X.Dot", "key": "k", "value": "1"},
            {"headerName": "Route", "key": "x", "value": "edge.carrier-a.test"}]},
        {"uri": format!("127.0.0.1:{b};transport=udp"), "match": "\\+1[0-9]{7,14}", "headers": [
            {"headerName": "Request-URI", "key": "npdi", "value": "yes"},
            {"headerName": "X-Carrier", "key": "route", "value": "b"}]},
        {"uri": format!("127.0.0.1:{c}"), "match": "auth\\.test",
         "username": TRUNK_USER, "password": TRUNK_PASSWORD},
        {"uri": format!("127.0.0.1:{c407}"), "match": "auth407\\.test",
         "username": TRUNK_USER, "password": TRUNK_PASSWORD},
        {"uri": format!("127.0.0.1:{d}"), "match": "flaky\\.test"},
        {"uri": format!("127.0.0.1:{silent}"), "match": "silent\\.test"},
        {"uri": format!("127.0.0.1:{e}"), "match": "(flaky|silent)\\.test", "headers": [
            {"headerName": "Request-URI", "key": "fallback", "value": "e"},
            {"headerName": "X-Fallback", "key": "via", "value": "e"}]}
    ]}]})
}

/// The Kamailio to test with; `None` (the test is skipped) when there is none, unless
/// `MULTIPROVIDER_REQUIRE_KAMAILIO=1`, which makes that a failure.
fn required_kamailio() -> Option<PathBuf> {
    let binary = kamailio_binary();
    if binary.is_none() {
        assert!(
            std::env::var("MULTIPROVIDER_REQUIRE_KAMAILIO").as_deref() != Ok("1"),
            "MULTIPROVIDER_REQUIRE_KAMAILIO=1 but kamailio is not installed \
             (apt-get install kamailio kamailio-utils-modules kamailio-extra-modules)"
        );
        eprintln!("skipped: kamailio is not installed");
    }
    binary
}

/// `host:port` of a test carrier: how the configurations name it, and how
/// `GET /v1/proxies` does.
fn proxy_key(carrier: &Carrier) -> String {
    format!("127.0.0.1:{}", carrier.port())
}

/// No script error in Kamailio's log, no refused outcome report, and no secret.
fn assert_clean_log(text: &str) {
    if std::env::var_os("KAMAILIO_TEST_LOG").is_some() {
        eprintln!("{text}");
    }
    assert!(!text.contains("ERROR"), "{text}");
    assert!(!text.contains("not accepted"), "{text}");
    assert!(
        !text.contains(TRUNK_PASSWORD) && !text.contains(ENGINE_TOKEN),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_routes_real_calls_through_the_lookup_api() {
    let Some(binary) = required_kamailio() else {
        return;
    };
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let (a, b, c, c407, d, e, f, silent) = (
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Challenge { proxy: false }).await,
        Carrier::start(Behaviour::Challenge { proxy: true }).await,
        Carrier::start(Behaviour::Unavailable).await,
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Silent).await,
    );
    // The configuration's proxies, with `first` as the proxy of carrier-a.test.
    let ports = |first: &Carrier| [first, &b, &c, &c407, &d, &e, &silent].map(Carrier::port);
    app.configure(Some(A1), &configuration(ports(&a)).to_string())
        .await;

    let mut kamailio = Kamailio::start(&binary, &app.base_url);
    let mut caller = Caller::new(kamailio.addr).await;
    caller.wait_until_up(&mut kamailio).await;
    let log = || kamailio.log();

    // 1. A SIP destination: the exact Request-URI and headers that reach carrier A.
    let status = caller
        .invite(
            "sip:bob@carrier-a.test",
            "<sip:bob@carrier-a.test>",
            Some(A1),
        )
        .await;
    assert_eq!(status, 200, "{}", log());
    let invites = a.invites();
    assert_eq!(invites.len(), 1);
    let invite = &invites[0];
    assert_eq!(
        invite.start,
        "INVITE sip:bob@carrier-a.test;trunk=a SIP/2.0"
    );
    assert_eq!(invite.one("To"), "<sip:bob@carrier-a.test>;tenant=acme");
    assert_eq!(invite.one("X.Dot"), "k=1");
    assert_eq!(invite.one("Route"), "<sip:edge.carrier-a.test;lr>");
    assert_eq!(invite.one("From"), "<sip:alice@client.test>;tag=uac1");
    assert!(invite.all("X-Account-Sid").is_empty(), "{invite:#?}");
    assert!(invite.all("Authorization").is_empty());

    // 2. A PSTN destination (a number addressed to the proxy itself): carrier B.
    let ruri = format!("sip:+15551234@{}", kamailio.addr);
    let status = caller.invite(&ruri, &format!("<{ruri}>"), Some(A1)).await;
    assert_eq!(status, 200, "{}", log());
    let invites = b.invites();
    assert_eq!(invites.len(), 1);
    assert_eq!(
        invites[0].start,
        format!(
            "INVITE sip:+15551234@127.0.0.1:{};transport=udp;npdi=yes SIP/2.0",
            b.port()
        )
    );
    assert_eq!(invites[0].one("X-Carrier"), "route=b");
    assert_eq!(invites[0].one("To"), format!("<{ruri}>"));

    // 3. Digest authentication against carriers that challenge: 401, then 407.
    for (carrier, host) in [(&c, "auth.test"), (&c407, "auth407.test")] {
        let ruri = format!("sip:carol@{host}");
        let status = caller.invite(&ruri, &format!("<{ruri}>"), Some(A1)).await;
        assert_eq!(status, 200, "{host}: {}", log());
        let invites = carrier.invites();
        assert_eq!(
            invites.len(),
            2,
            "{host}: challenged, then with credentials"
        );
        assert_eq!(
            carrier.verified(),
            vec![Ok(TRUNK_USER.to_owned())],
            "{host}"
        );
        assert_eq!(invites[1].uri(), ruri);
    }

    // 4. A 503 from the first matching proxy: the next of `fallbacks`, rewritten for it.
    let status = caller
        .invite("sip:dave@flaky.test", "<sip:dave@flaky.test>", Some(A1))
        .await;
    assert_eq!(status, 200, "{}", log());
    assert_eq!(d.invites().len(), 1);
    let invites = e.invites();
    assert_eq!(invites.len(), 1);
    assert_eq!(
        invites[0].start,
        "INVITE sip:dave@flaky.test;fallback=e SIP/2.0"
    );
    assert_eq!(invites[0].one("X-Fallback"), "via=e");
    assert_eq!(invites[0].one("To"), "<sip:dave@flaky.test>");

    //    No answer at all: Kamailio's timer ends the attempt with a 408 (after fr_timer,
    //    5 s), and the call goes to the next of `fallbacks` all the same.
    let status = caller
        .invite("sip:erin@silent.test", "<sip:erin@silent.test>", Some(A1))
        .await;
    assert_eq!(status, 200, "{}", log());
    assert!(!silent.invites().is_empty());
    let invites = e.invites();
    assert_eq!(invites.len(), 2);
    assert_eq!(
        invites[1].start,
        "INVITE sip:erin@silent.test;fallback=e SIP/2.0"
    );

    //    Each attempt's outcome reached POST /v1/outcomes (docs/operations.md): the 503 and the
    //    silence as one failure each of their proxies, the answers as successes.
    let reported = |carrier: &Carrier, failures: u64| {
        let (app, key) = (&app, proxy_key(carrier));
        move || {
            let key = key.clone();
            async move {
                app.proxy(&key).await.is_some_and(|p| {
                    p["consecutive_failures"] == failures
                        && p["health"] == "up"
                        && !p["last_outcome_at"].is_null()
                })
            }
        }
    };
    let reports = Duration::from_secs(5);
    within(reports, "the 503 of D reported", reported(&d, 1)).await;
    within(
        reports,
        "the silence of its proxy reported",
        reported(&silent, 1),
    )
    .await;
    for carrier in [&a, &b, &c, &c407, &e] {
        within(reports, "an answer reported", reported(carrier, 0)).await;
    }

    // 5. Refused: an account without routing (403), a destination no proxy matches (404),
    //    a call without an account (403). Nothing reaches a carrier.
    let before: usize = [&a, &b, &c, &c407, &d, &e, &f, &silent]
        .iter()
        .map(|c| c.invites().len())
        .sum();
    assert_eq!(
        caller
            .invite(
                "sip:bob@carrier-a.test",
                "<sip:bob@carrier-a.test>",
                Some(A_NONE)
            )
            .await,
        403
    );
    assert_eq!(
        caller
            .invite("sip:bob@nowhere.test", "<sip:bob@nowhere.test>", Some(A1))
            .await,
        404
    );
    assert_eq!(
        caller
            .invite("sip:bob@carrier-a.test", "<sip:bob@carrier-a.test>", None)
            .await,
        403
    );
    let after: usize = [&a, &b, &c, &c407, &d, &e, &f, &silent]
        .iter()
        .map(|c| c.invites().len())
        .sum();
    assert_eq!(before, after);

    // 6. A configuration change through the admin API steers the very next call: carrier
    //    A's destinations now leave through carrier F.
    app.configure(Some(A1), &configuration(ports(&f)).to_string())
        .await;
    let status = caller
        .invite(
            "sip:bob@carrier-a.test",
            "<sip:bob@carrier-a.test>",
            Some(A1),
        )
        .await;
    assert_eq!(status, 200, "{}", log());
    assert_eq!(a.invites().len(), 1, "carrier A got no new call");
    let invites = f.invites();
    assert_eq!(invites.len(), 1);
    assert_eq!(
        invites[0].start,
        "INVITE sip:bob@carrier-a.test;trunk=a SIP/2.0"
    );

    // No script error along the way; secrets stay out of Kamailio's log.
    assert_clean_log(&log());
    drop(kamailio);
    app.stop().await;
}

/// Outcome reporting (docs/operations.md) end to end: the failure route reports a 503 as a failure of
/// the proxy that answered it, the reply route a 200 as a success (which resets the count);
/// after `MULTIPROVIDER_HEALTH_FAILURES` consecutive failures the proxy is down, the lookup
/// answers it last, and Kamailio's next call goes straight to the healthy proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_reports_outcomes_and_steers_calls_around_a_failing_proxy() {
    let Some(binary) = required_kamailio() else {
        return;
    };
    let db = fresh_sqlite();
    // Down after 2 failures; no way back within the test (a cool-down of 10 minutes).
    let app = support::spawn(&db.url, support::health(2, Duration::from_secs(600))).await;
    let flaky = Carrier::start(Behaviour::Unavailable).await;
    let good = Carrier::start(Behaviour::Accept).await;
    let (flaky_key, good_key) = (proxy_key(&flaky), proxy_key(&good));
    app.configure(Some(A1), &voice_config(&[&flaky_key, &good_key]))
        .await;
    assert_eq!(
        app.order(A1).await,
        [
            (flaky_key.clone(), "up".into()),
            (good_key.clone(), "up".into())
        ]
    );

    let mut kamailio = Kamailio::start(&binary, &app.base_url);
    let mut caller = Caller::new(kamailio.addr).await;
    caller.wait_until_up(&mut kamailio).await;
    let log = || kamailio.log();
    let call = async |caller: &mut Caller| {
        caller
            .invite("sip:bob@example.com", "<sip:bob@example.com>", Some(A1))
            .await
    };
    // Polls `GET /v1/proxies` until `proxy` has `health` and `failures` consecutive failures
    // and a report was received.
    let server = &app;
    let state = |proxy: &str, health: &'static str, failures: u64| {
        let proxy = proxy.to_owned();
        move || {
            let proxy = proxy.clone();
            async move {
                server.proxy(&proxy).await.is_some_and(|p| {
                    p["health"] == health
                        && p["consecutive_failures"] == failures
                        && !p["last_outcome_at"].is_null()
                })
            }
        }
    };
    let reports = Duration::from_secs(5);

    // 1. The first proxy answers 503 (a failure), the call goes on to the second, which
    //    answers 200 (a success).
    assert_eq!(call(&mut caller).await, 200, "{}", log());
    assert_eq!((flaky.invites().len(), good.invites().len()), (1, 1));
    within(reports, "503 reported", state(&flaky_key, "up", 1)).await;
    within(reports, "200 reported", state(&good_key, "up", 0)).await;

    // 2. The first proxy answers 200: the success resets its count.
    flaky.set(Behaviour::Accept);
    assert_eq!(call(&mut caller).await, 200, "{}", log());
    assert_eq!((flaky.invites().len(), good.invites().len()), (2, 1));
    within(reports, "success reported", state(&flaky_key, "up", 0)).await;

    // 3. Two 503s in a row: down, answered last.
    flaky.set(Behaviour::Unavailable);
    for _ in 0..2 {
        assert_eq!(call(&mut caller).await, 200, "{}", log());
    }
    assert_eq!((flaky.invites().len(), good.invites().len()), (4, 3));
    within(
        reports,
        "down after 2 failures",
        state(&flaky_key, "down", 2),
    )
    .await;
    let (status, down) = app.proxies("?health=down").await;
    assert_eq!(status, 200, "{down}");
    assert_eq!(down["proxies"].as_array().unwrap().len(), 1, "{down}");
    assert_eq!(down["proxies"][0]["proxy"], flaky_key.as_str(), "{down}");
    assert_eq!(
        app.order(A1).await,
        [
            (good_key.clone(), "up".into()),
            (flaky_key.clone(), "down".into())
        ]
    );

    // 4. The next call goes straight to the healthy proxy. Its state (up, no failure) holds
    //    already: what shows the report is a newer `last_outcome_at`.
    let before = app.proxy(&good_key).await.expect("tracked")["last_outcome_at"].clone();
    assert!(!before.is_null(), "{before}");
    assert_eq!(call(&mut caller).await, 200, "{}", log());
    assert_eq!((flaky.invites().len(), good.invites().len()), (4, 4));
    within(reports, "its success reported", || {
        let (good_key, before) = (good_key.clone(), before.clone());
        async move {
            state(&good_key, "up", 0)().await
                && server
                    .proxy(&good_key)
                    .await
                    .is_some_and(|p| p["last_outcome_at"] != before)
        }
    })
    .await;

    assert_clean_log(&log());
    drop(kamailio);
    app.stop().await;
}

/// The routing policy (docs/routing.md) through Kamailio: the Call-ID is the `key` (a
/// retried call reaches the same carrier), the caller (P-Asserted-Identity's user, else
/// From's, none when anonymous) is `from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_routes_calls_by_weight_and_by_caller() {
    let Some(binary) = required_kamailio() else {
        return;
    };
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let (premium, left, right) = (
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Accept).await,
    );
    let config = json!({"outbound-voice": [{"proxy": [
        {"uri": proxy_key(&premium), "caller": "\\+4930.*"},
        {"uri": proxy_key(&left), "priority": 1, "weight": 50},
        {"uri": proxy_key(&right), "priority": 1, "weight": 50},
    ]}]});
    app.configure(Some(A1), &config.to_string()).await;

    let mut kamailio = Kamailio::start(&binary, &app.base_url);
    let mut caller = Caller::new(kamailio.addr).await;
    caller.wait_until_up(&mut kamailio).await;
    let log = || kamailio.log();
    let counts = || [&premium, &left, &right].map(|c| c.invites().len());
    let (ruri, to) = ("sip:+15551234@example.com", "<sip:+15551234@example.com>");

    // 1. By weight: 30 calls from an ordinary caller spread over both weighted carriers.
    for i in 0..30 {
        let call_id = format!("split-{i}@client.test");
        let status = caller
            .invite_as(
                ruri,
                to,
                Some(A1),
                "<sip:+4940555@client.test>",
                None,
                &call_id,
            )
            .await;
        assert_eq!(status, 200, "{}", log());
    }
    let [p, l, r] = counts();
    assert_eq!((p, l + r), (0, 30));
    assert!(
        l > 0 && r > 0,
        "both weighted carriers get calls: {l} and {r}"
    );

    // 2. A retried call (same Call-ID, a new transaction) reaches the same carrier as the
    //    first attempt, every time; the lookup API agrees.
    let call_id = "retried-call-42@client.test";
    let mut reached = Vec::new();
    for _ in 0..8 {
        let before = counts();
        let status = caller
            .invite_as(
                ruri,
                to,
                Some(A1),
                "<sip:+4940555@client.test>",
                None,
                call_id,
            )
            .await;
        assert_eq!(status, 200, "{}", log());
        let after = counts();
        reached.push((0..3).find(|&i| after[i] > before[i]).unwrap());
    }
    assert!(reached.iter().all(|&c| c == reached[0]), "{reached:?}");
    let path =
        format!("/v1/accounts/{A1}/voice-route?to=%2B15551234&key=retried-call-42%40client.test");
    let (_, answer) = app.engine_get(&path).await;
    let index = answer["route"]["proxy_index"].as_u64().unwrap() as usize;
    assert_eq!(index, reached[0]);

    // 3. By caller: P-Asserted-Identity's user decides, even when From is anonymous; then
    //    From's, without P-Asserted-Identity.
    let before = counts();
    let status = caller
        .invite_as(
            ruri,
            to,
            Some(A1),
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            Some("<sip:+4930123456@pbx.client.test>"),
            "premium-1@client.test",
        )
        .await;
    assert_eq!(status, 200, "{}", log());
    let status = caller
        .invite_as(
            ruri,
            to,
            Some(A1),
            "<sip:+4930999@client.test>",
            None,
            "premium-2@client.test",
        )
        .await;
    assert_eq!(status, 200, "{}", log());
    assert_eq!(counts()[0], before[0] + 2);
    // An anonymous caller sends no `from`: the premium rule cannot match.
    let status = caller
        .invite_as(
            ruri,
            to,
            Some(A1),
            "<sip:anonymous@anonymous.invalid>",
            None,
            "anonymous-1@client.test",
        )
        .await;
    assert_eq!(status, 200, "{}", log());
    assert_eq!(counts()[0], before[0] + 2);

    assert_clean_log(&log());
    drop(kamailio);
    app.stop().await;
}

/// The cfg is generated by substituting only the listen address, the API URL and the token.
#[test]
fn the_generated_cfg_differs_from_the_shipped_one_in_three_values_only() {
    let generated = generated_cfg(([127, 0, 0, 1], 5999).into(), "http://127.0.0.1:1", "t");
    let changed: Vec<(&str, &str)> = SHIPPED_CFG
        .lines()
        .zip(generated.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 3, "{changed:#?}");
    assert_eq!(SHIPPED_CFG.lines().count(), generated.lines().count());
    // No workaround: no CR/LF smuggled into a header argument, no guessed keys.
    assert!(!SHIPPED_CFG.contains("\\r\\nContent-Type"));
    assert!(SHIPPED_CFG.contains("header_list[$var(i)].name"));
    assert!(SHIPPED_CFG.starts_with("#!KAMAILIO\n"));
}

/// The guide's check (`kamailio -c -f …`, integrations/kamailio/README.md) passes on the
/// shipped configuration, and fails on a broken one.
#[test]
fn the_guide_s_configuration_check_passes() {
    let Some(kamailio) = required_kamailio() else {
        return;
    };
    let cfg = crate::common::repo::read("integrations/kamailio/kamailio.cfg");
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, text).unwrap();
        let o = Command::new(&kamailio)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let (ok, text) = check(&cfg);
    assert!(ok && text.contains("config file ok"), "{text}");
    let (ok, _) = check(&cfg.replace("request_route {", "request_route {\n\tno_such_function();"));
    assert!(!ok, "a broken configuration passed the check");
    let guide = crate::common::repo::read("integrations/kamailio/README.md");
    for needed in [
        "kamailio -c -f",
        "connection_timeout",
        "workers",
        "https://",
    ] {
        assert!(guide.contains(needed), "the guide lacks {needed}");
    }
}

/// Carrier capacity (docs/routing.md) end to end: a burst of calls above a carrier's cps goes
/// on to the fallback carrier; with only limited carriers the excess calls get a 503 with
/// Retry-After and Reason Q.850 cause 34.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_sends_calls_above_a_carriers_cps_elsewhere_then_answers_503() {
    let Some(binary) = required_kamailio() else {
        return;
    };
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let (limited, spare) = (
        Carrier::start(Behaviour::Accept).await,
        Carrier::start(Behaviour::Accept).await,
    );
    let limits = json!({"cps": 1, "burst": 2});
    app.configure(
        Some(A1),
        &json!({"outbound-voice": [{"proxy": [
            {"uri": proxy_key(&limited), "limits": limits},
            {"uri": proxy_key(&spare)}]}]})
        .to_string(),
    )
    .await;
    let mut kamailio = Kamailio::start(&binary, &app.base_url);
    let mut caller = Caller::new(kamailio.addr).await;
    caller.wait_until_up(&mut kamailio).await;

    let started = Instant::now();
    for _ in 0..6 {
        let status = caller
            .invite("sip:bob@carrier.test", "<sip:bob@carrier.test>", Some(A1))
            .await;
        assert_eq!(status, 200, "{}", kamailio.log());
    }
    // 2 tokens of burst, plus one a second while the calls went out.
    let refilled = started.elapsed().as_secs() as usize;
    let to_limited = limited.invites().len();
    assert!(
        (2..=2 + refilled).contains(&to_limited),
        "{to_limited} calls reached the limited carrier"
    );
    assert_eq!(spare.invites().len(), 6 - to_limited);

    // Only the limited carrier: the excess calls get 503, Retry-After and the Q.850 cause.
    app.configure(
        Some(A1),
        &json!({"outbound-voice": [{"proxy": [{"uri": proxy_key(&limited), "limits": limits}]}]})
            .to_string(),
    )
    .await;
    let mut refused = 0;
    for _ in 0..4 {
        let status = caller
            .invite("sip:bob@carrier.test", "<sip:bob@carrier.test>", Some(A1))
            .await;
        if status == 503 {
            let answer = caller.last.as_ref().unwrap();
            assert_eq!(answer.one("Retry-After"), "1", "{answer:?}");
            assert_eq!(answer.one("Reason"), "Q.850;cause=34", "{answer:?}");
            refused += 1;
        } else {
            assert_eq!(status, 200, "{}", kamailio.log());
        }
    }
    assert!(refused >= 1, "{}", kamailio.log());

    // A retransmitted INVITE (sent three times at once) is one transaction: one lookup, one
    // token.
    app.configure(
        Some(A2),
        &json!({"outbound-voice": [{"proxy": [
            {"uri": proxy_key(&spare), "limits": {"cps": 1, "burst": 5}}]}]})
        .to_string(),
    )
    .await;
    let before = spare.invites().len();
    caller.copies = 3;
    let started = Instant::now();
    let status = caller
        .invite("sip:bob@carrier.test", "<sip:bob@carrier.test>", Some(A2))
        .await;
    assert_eq!(status, 200, "{}", kamailio.log());
    let (_, e) = app
        .engine_get(&format!(
            "/v1/accounts/{A2}/voice-route?to=sip:bob@carrier.test&explain=true"
        ))
        .await;
    let tokens = e["explain"]["candidates"][0]["capacity"]["tokens"]
        .as_f64()
        .unwrap();
    // One token taken: 4 left (plus what refilled); two would leave under 4 within a second.
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        tokens >= 4.0 && (tokens < 5.0 || elapsed >= 1.0),
        "{tokens} after {elapsed:.2} s: {e}"
    );
    assert_eq!(spare.invites().len(), before + 1);
    assert_clean_log(&kamailio.log());
}
