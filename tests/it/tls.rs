//! The HTTPS listener (docs/operations.md): certificates generated here (rcgen), spoken to by real TLS
//! clients (reqwest with rustls, and tokio-rustls where the test must see the handshake), on
//! the real server; SIGHUP on the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::app::{TestApp, TlsError, spawn_custom};
use crate::common::certs::{CertFiles, TestCa};
use crate::common::constants::{A1, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, RJ};
use crate::common::db::{TestDb, fresh_sqlite};
use crate::common::process::{BIN, Process};
use crate::common::wire::form;

/// The server on `db`, serving HTTPS with the certificate of `files`, with an engine token.
async fn spawn_https(db: &TestDb, files: &CertFiles) -> TestApp {
    spawn_custom(&db.url, |settings| {
        settings.engine_token = Some(ENGINE_TOKEN.to_owned());
        settings.tls = Some(files.tls_files());
    })
    .await
}

/// The TLS handshake alone: the certificate the server presents, the protocol version and
/// the ALPN protocol it chose.
async fn handshake(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("IP name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

fn presented(
    stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a certificate")[0]
        .clone()
        .into_owned()
}

/// One HTTP/1.1 request on an open (keep-alive) stream; the status code.
async fn keep_alive_get<S>(stream: &mut S, path: &str) -> u16
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("content-length");
            if body.len() >= length {
                return head[9..12].parse().expect("status");
            }
        }
    }
}

#[tokio::test]
async fn https_serves_every_route_with_tls_1_2_and_1_3_and_no_plain_http() {
    let ca = TestCa::new("multiprovider test CA");
    let files = CertFiles::new(&ca.leaf());
    let db = fresh_sqlite();
    let app = spawn_https(&db, &files).await;
    let base = &app.base_url;
    let client = ca.reqwest(true);

    // Health and metrics are served over HTTPS too.
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect(path);
        assert_eq!(r.status(), 200, "{path}");
    }
    // The admin API (its basic-auth password now encrypted) and a lookup.
    let config = r#"{"outbound-voice": [{"proxy": [{"uri": "proxy.example.com", "match": "\\+1555[0-9]+"}]}]}"#;
    let r = client
        .post(format!("{base}{RJ}"))
        .basic_auth(ADMIN_SID, Some(ADMIN_TOKEN))
        .header("content-type", FORM)
        .body(form(&[
            ("ExtensionName", "multi_provider"),
            ("AccountSid", A1),
            ("ConfigurationData", config),
        ]))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = client
        .get(format!("{base}/v1/accounts/{A1}/voice-route?to=+15551234"))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .expect("lookup")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["route"]["proxy"]["host"], "proxy.example.com");

    // Both protocol versions, and HTTP/2 by ALPN.
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let stream = handshake(
            app.addr,
            ca.client_config(&[version], &[b"h2", b"http/1.1"]),
        )
        .await
        .unwrap_or_else(|e| panic!("{expected:?}: {e}"));
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    }

    // HTTPS only: a plain-HTTP request gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/health/live", app.addr))
        .timeout(Duration::from_secs(15))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let old = old_ca.leaf();
    let files = CertFiles::new(&old);
    let db = fresh_sqlite();
    let app = spawn_https(&db, &files).await;
    let addr = app.addr;
    let tls13 = [&rustls::version::TLS13];

    // A connection opened before the reload...
    let mut open = handshake(addr, old_ca.client_config(&tls13, &[b"http/1.1"]))
        .await
        .expect("handshake with the old certificate");
    assert_eq!(keep_alive_get(&mut open, "/health/live").await, 200);

    let new = new_ca.leaf();
    files.install(&new);
    app.reload_tls().expect("reload");

    // ... goes on being served on the same connection,
    assert_eq!(keep_alive_get(&mut open, "/health/ready").await, 200);
    assert_eq!(presented(&open), old.der());
    // while new connections get the new certificate (and only it).
    let fresh = handshake(addr, new_ca.client_config(&tls13, &[]))
        .await
        .expect("handshake with the new certificate");
    assert_eq!(presented(&fresh), new.der());
    assert!(
        handshake(addr, old_ca.client_config(&tls13, &[]))
            .await
            .is_err(),
        "the old certificate is still offered"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_reload_keeps_the_certificate_in_use() {
    let ca = TestCa::new("test CA");
    let first = ca.leaf();
    let files = CertFiles::new(&first);
    let db = fresh_sqlite();
    let app = spawn_https(&db, &files).await;
    let addr = app.addr;
    let config = ca.client_config(&[&rustls::version::TLS13], &[]);
    let serves_first = || async {
        let stream = handshake(addr, config.clone()).await.expect("handshake");
        assert_eq!(
            presented(&stream),
            first.der(),
            "the certificate in use changed"
        );
    };

    // A key that is not the certificate's.
    let other = ca.leaf();
    files.write(&files.key(), &other.key_pem);
    match app.reload_tls() {
        Err(TlsError::Mismatch { .. }) => {}
        other => panic!("expected a mismatch, got {other:?}"),
    }
    serves_first().await;

    // Files that cannot be read, or hold no PEM.
    std::fs::remove_file(files.cert()).expect("remove");
    let e = app.reload_tls().expect_err("missing certificate");
    assert!(matches!(e, TlsError::Cert { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&files.cert().display().to_string()),
        "{e}"
    );
    serves_first().await;
    files.write(&files.cert(), &first.cert_pem);
    files.write(&files.key(), "not a key\n");
    let e = app.reload_tls().expect_err("garbage key");
    assert!(matches!(e, TlsError::Key { .. }), "{e:?}");
    assert!(
        !e.to_string().contains("not a key"),
        "the key file is quoted: {e}"
    );
    serves_first().await;

    // Fixed files are taken on the next reload.
    files.install(&other);
    app.reload_tls().expect("reload");
    let stream = handshake(addr, config.clone()).await.expect("handshake");
    assert_eq!(presented(&stream), other.der());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloads_under_load_fail_no_request() {
    let ca = TestCa::new("test CA");
    let leaves = [ca.leaf(), ca.leaf()];
    let files = CertFiles::new(&leaves[0]);
    let db = fresh_sqlite();
    let app = spawn_https(&db, &files).await;
    let base = app.base_url.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    let mut workers = Vec::new();
    for i in 0..8 {
        // Half reuse their connections, half open a new one (a new handshake) per request.
        let client = ca.reqwest(i % 2 == 0);
        let (base, stop, ok, failed) = (base.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let path = if i % 4 < 2 {
                    "/health/live"
                } else {
                    "/health/ready"
                };
                match client.get(format!("{base}{path}")).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        eprintln!("status {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(e) => {
                        eprintln!("request failed: {e:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }

    // At least 3 s, 20 reloads and 100 answered requests, however slow the machine: a
    // deadline of 60 s only stops a run that cannot get there.
    let started = Instant::now();
    let mut reloads = 0;
    while started.elapsed() < Duration::from_secs(3)
        || reloads < 20
        || ok.load(Ordering::Relaxed) < 100
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "60 s for {reloads} reloads and {} requests",
            ok.load(Ordering::Relaxed)
        );
        reloads += 1;
        files.install(&leaves[reloads % 2]);
        app.reload_tls().expect("reload");
        // And a failed reload now and then, which must not disturb anything either.
        if reloads % 5 == 0 {
            files.write(&files.key(), "garbage\n");
            assert!(app.reload_tls().is_err());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{reloads} reloads, {ok} requests answered, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(
        reloads >= 20 && ok >= 100,
        "too little load: {reloads} reloads, {ok} requests"
    );
    app.stop().await;
}

#[test]
fn sighup_reloads_the_certificate_of_the_real_binary() {
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let files = CertFiles::new(&old_ca.leaf());
    let db = fresh_sqlite();
    let child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
        .env("MULTIPROVIDER_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("MULTIPROVIDER_TLS_CERT", files.cert())
        .env("MULTIPROVIDER_TLS_KEY", files.key())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let mut process = Process(child);

    // The log (stdout) says where it listens; keep reading it on a thread.
    let stdout = process.0.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within 30 s"),
            }
        }
    };
    let listening = wait_for("listening");
    assert!(listening.contains("scheme=https"), "{listening}");
    let addr: std::net::SocketAddr = listening
        .split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening}"));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tls13 = [&rustls::version::TLS13];
    rt.block_on(handshake(addr, old_ca.client_config(&tls13, &[])))
        .expect("the first certificate is served");

    files.install(&new_ca.leaf());
    process.signal("HUP");
    wait_for("TLS certificate reloaded");
    rt.block_on(handshake(addr, new_ca.client_config(&tls13, &[])))
        .expect("the new certificate is served after SIGHUP");

    // A broken key: logged, and the certificate in use stays.
    files.write(&files.key(), "garbage\n");
    process.signal("HUP");
    let line = wait_for("TLS certificate not reloaded");
    assert!(line.contains(&files.key().display().to_string()), "{line}");
    rt.block_on(handshake(addr, new_ca.client_config(&tls13, &[])))
        .expect("still served after a failed reload");

    process.signal("TERM");
    let status = process.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean exit");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut process.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "", "nothing on stderr (the token was given)");
}
