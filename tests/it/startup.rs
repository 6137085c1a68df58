//! Start-up failures of the real binary (docs/operations.md): one line on stderr naming the cause and
//! the fix, exit code 1, no generated admin token printed, no secret shown, and no waiting
//! for a pool timeout before saying so.
//!
//! The PostgreSQL cases run on the server of `TEST_DATABASE_URL` (with TLS on, as `.ci/run`
//! sets it up): listed as ignored without it, failing when it cannot be reached.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use crate::common::certs::{CertFiles, TestCa};
use crate::common::on_postgres;
use crate::common::process::{BIN, Process};

const TOKEN_LINE: &str = "generated admin token";
/// Put in every PostgreSQL URL below: it must never be shown.
const PASSWORD: &str = "s3cret-Pa55word";

struct Exited {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
}

/// Runs `multiprovider serve` with only `env` (and `PATH`), expecting it to stop by itself.
fn serve(env: &[(&str, &str)]) -> Exited {
    let dir = tempfile::tempdir().expect("temporary directory");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = started + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not stop within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    Exited {
        code: status.code(),
        stderr,
        elapsed: started.elapsed(),
    }
}

/// Exit 1 and one stderr line, `multiprovider: …`, that holds every part of `expected`, no
/// token and no password.
fn assert_fails(outcome: &Exited, expected: &[&str]) {
    let Exited { code, stderr, .. } = outcome;
    assert_eq!(*code, Some(1), "exit code; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("multiprovider: "), "{line}");
    for part in expected {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
    assert!(!line.contains(TOKEN_LINE), "a token was printed: {line}");
    assert!(!line.contains(PASSWORD), "the password was shown: {line}");
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE?QUERY` on the server of `base` (a URL).
fn postgres_url_for(base: &str, user: &str, database: &str, query: &str) -> String {
    let options = PgConnectOptions::from_str(base).expect("TEST_DATABASE_URL");
    let (host, port) = (options.get_host(), options.get_port());
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("postgres://{user}:{PASSWORD}@{host}:{port}/{database}{query}")
}

#[test]
fn connection_refused_names_host_and_port_at_once() {
    let port = free_port();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/multiprovider");
    // What starting the process costs on this machine now: a start that fails at once on an
    // invalid setting (exit 2), before any connection.
    let baseline = serve(&[
        ("DATABASE_URL", &url),
        ("MULTIPROVIDER_LISTEN", "not-an-address"),
    ]);
    assert_eq!(baseline.code, Some(2), "{}", baseline.stderr);
    let outcome = serve(&[("DATABASE_URL", &url)]);
    assert_fails(
        &outcome,
        &[
            &format!("connection refused by 127.0.0.1:{port}"),
            "DATABASE_URL",
        ],
    );
    // The pool would retry for its 3 s acquire timeout and then lose the cause: the refusal
    // must cost well under those 3 s on top of starting the process.
    assert!(
        outcome.elapsed < baseline.elapsed + Duration::from_millis(2500),
        "took {:?} (a start that fails at once: {:?})",
        outcome.elapsed,
        baseline.elapsed
    );
}

on_postgres!(blocking unknown_database_is_named_with_the_fix, |db| {
    let url = postgres_url_for(&db.url, "postgres", "mp_no_such_database", "");
    let outcome = serve(&[("DATABASE_URL", &url)]);
    assert_fails(
        &outcome,
        &[
            "database \"mp_no_such_database\" does not exist",
            "CREATE DATABASE",
            "DATABASE_URL",
        ],
    );
});

on_postgres!(blocking authentication_failure_names_the_user, |db| {
    let url = postgres_url_for(&db.url, "mp_no_such_role", "postgres", "");
    let outcome = serve(&[("DATABASE_URL", &url)]);
    assert_fails(
        &outcome,
        &[
            "authentication failed for user \"mp_no_such_role\"",
            "user name and password in DATABASE_URL",
        ],
    );
});

/// A server that declines TLS, as a PostgreSQL without `ssl = on` does.
fn server_without_tls() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // SSLRequest: 8 bytes; the answer 'N' means "no TLS here".
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = std::io::Write::write_all(&mut stream, b"N");
            }
        }
    });
    port
}

#[test]
fn tls_required_but_not_offered_says_which_setting() {
    let port = server_without_tls();
    let url = format!("postgres://postgres:{PASSWORD}@127.0.0.1:{port}/x?sslmode=require");
    let outcome = serve(&[("DATABASE_URL", &url)]);
    assert_fails(
        &outcome,
        &[
            &format!("127.0.0.1:{port} does not accept TLS"),
            "sslmode=require",
            "sslmode=prefer",
        ],
    );
}

on_postgres!(blocking tls_verification_failure_names_the_root_and_the_fix, |db| {
    // A CA that signed nothing the server has.
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("wrong-ca.pem");
    std::fs::write(&root, TestCa::new("wrong CA").pem()).unwrap();

    let query = format!("sslmode=verify-full&sslrootcert={}", root.display());
    let url = postgres_url_for(&db.url, "postgres", "postgres", &query);
    let outcome = serve(&[("DATABASE_URL", &url)]);
    assert_fails(
        &outcome,
        &[
            "is not signed by the CA in sslrootcert",
            &root.display().to_string(),
            "sslmode=verify-full",
        ],
    );
    // sslrootcert that does not exist.
    let query = "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem";
    let url = postgres_url_for(&db.url, "postgres", "postgres", query);
    assert_fails(
        &serve(&[("DATABASE_URL", &url)]),
        &["cannot read sslrootcert /nonexistent/ca.pem"],
    );
});

#[test]
fn sqlite_file_that_cannot_be_opened_names_the_path() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing/sub/multiprovider.db");
    let url = format!("sqlite://{}", missing.display());
    assert_fails(
        &serve(&[("DATABASE_URL", &url)]),
        &[
            &missing.display().to_string(),
            &format!(
                "the folder {} does not exist",
                missing.parent().unwrap().display()
            ),
        ],
    );

    let not_a_database = dir.path().join("notes.txt");
    std::fs::write(&not_a_database, "x".repeat(4096)).unwrap();
    let url = format!("sqlite://{}", not_a_database.display());
    assert_fails(
        &serve(&[("DATABASE_URL", &url)]),
        &[&format!(
            "{} is not an SQLite database",
            not_a_database.display()
        )],
    );

    let url = format!("sqlite://{}", dir.path().display());
    assert_fails(
        &serve(&[("DATABASE_URL", &url)]),
        &[&dir.path().display().to_string(), "is a folder"],
    );
}

#[test]
fn address_in_use_prints_no_token() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("mp.db").display());
    let outcome = serve(&[("DATABASE_URL", &url), ("MULTIPROVIDER_LISTEN", &addr)]);
    assert_fails(
        &outcome,
        &[
            &format!("cannot listen on {addr}"),
            "address already in use",
            "MULTIPROVIDER_LISTEN",
        ],
    );
}

#[test]
fn unreadable_or_mismatched_certificate_stops_the_start() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("mp.db").display());
    assert_fails(
        &serve(&[
            ("DATABASE_URL", &url),
            ("MULTIPROVIDER_TLS_CERT", "/nonexistent/cert.pem"),
            ("MULTIPROVIDER_TLS_KEY", "/nonexistent/key.pem"),
        ]),
        &["/nonexistent/cert.pem", "MULTIPROVIDER_TLS_CERT"],
    );

    // A key that is not the certificate's.
    let ca = TestCa::new("test CA");
    let files = CertFiles::new(&ca.leaf());
    files.write(&files.key(), &ca.leaf().key_pem);
    let (cert, key) = (
        files.cert().display().to_string(),
        files.key().display().to_string(),
    );
    assert_fails(
        &serve(&[
            ("DATABASE_URL", &url),
            ("MULTIPROVIDER_TLS_CERT", &cert),
            ("MULTIPROVIDER_TLS_KEY", &key),
        ]),
        &[&cert, &key, "cannot be used together"],
    );

    // Only one of the two: a settings error (exit 2, like any invalid setting).
    let outcome = serve(&[("DATABASE_URL", &url), ("MULTIPROVIDER_TLS_CERT", &cert)]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("MULTIPROVIDER_TLS_KEY"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn the_generated_token_is_printed_once_the_server_listens() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("mp.db").display());
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(BIN)
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("MULTIPROVIDER_LISTEN", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary (serve is the default command)");
    let mut process = Process(child);
    let mut stderr = BufReader::new(process.0.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    assert!(line.contains(TOKEN_LINE), "{line}");
    let token = line.trim_end().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{line}");
    // Printed only once listening: the port answers at once.
    let mut stream = std::net::TcpStream::connect(addr).expect("listening when the token is shown");
    std::io::Write::write_all(
        &mut stream,
        b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    process.signal("TERM");
    assert_eq!(process.0.wait().unwrap().code(), Some(0));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(
        rest, "",
        "the token is printed once, and nothing else on stderr"
    );
}
