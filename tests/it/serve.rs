//! `multiprovider serve` and `migrate`, run as the built binary: the generated admin token,
//! SIGTERM, invalid settings.

use std::time::Duration;

use multiprovider::config::DEFAULT_ADMIN_SID;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::constants::{FORM, J, SMS};
use crate::common::wire::form;

const GENERATED_TOKEN_LINE: &str =
    "multiprovider: generated admin token (set MULTIPROVIDER_ADMIN_TOKEN to choose one): ";

/// What a run of `multiprovider` with nothing but a `DATABASE_URL` showed.
struct Session {
    token: String,
    /// The log (stdout), whole.
    log: Vec<String>,
    /// stderr after the token line.
    later_stderr: Vec<String>,
    /// The status of a create with the generated token.
    create: u16,
    /// The status of a read with a wrong password (and the token in the query string).
    wrong_password: u16,
    exit: std::process::ExitStatus,
}

async fn within_30_s<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("within 30 s")
}

/// Runs `multiprovider` from a bare environment, creates the global configuration with the
/// token it printed, reads with a wrong password and the token in the query, then SIGTERM.
async fn serve_with_a_generated_token() -> Session {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bin.db").display()),
        )
        .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the binary");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let token_line = within_30_s(stderr.next_line()).await.unwrap().unwrap();
    let token = token_line
        .strip_prefix(GENERATED_TOKEN_LINE)
        .unwrap_or_else(|| panic!("{token_line}"))
        .to_owned();
    let mut log = Vec::new();
    let addr = loop {
        let line = within_30_s(stdout.next_line())
            .await
            .unwrap()
            .expect("listening line");
        let addr = line
            .split("addr=")
            .nth(1)
            .filter(|_| line.contains("listening"))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned());
        log.push(line);
        if let Some(addr) = addr {
            break addr;
        }
    };
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let create = client
        .post(format!("{base}{J}"))
        .basic_auth(DEFAULT_ADMIN_SID, Some(&token))
        .header("content-type", FORM)
        .body(form(&[
            ("ExtensionName", "multi_provider"),
            ("ConfigurationData", SMS),
        ]))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let wrong_password = client
        .get(format!("{base}{J}/multi_provider?token={token}"))
        .basic_auth(DEFAULT_ADMIN_SID, Some("bad"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    let status = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().unwrap().to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = within_30_s(child.wait()).await.unwrap();
    while let Ok(Some(line)) = stdout.next_line().await {
        log.push(line);
    }
    let mut later_stderr = Vec::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        later_stderr.push(line);
    }
    Session {
        token,
        log,
        later_stderr,
        create,
        wrong_password,
        exit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_token_is_printed_once_on_stderr() {
    let session = serve_with_a_generated_token().await;
    assert_eq!(session.token.len(), 32);
    assert!(
        !session
            .later_stderr
            .iter()
            .any(|l| l.contains(&session.token)),
        "{:?}",
        session.later_stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_token_is_the_admin_password() {
    let session = serve_with_a_generated_token().await;
    assert_eq!(session.create, 200);
    assert_eq!(session.wrong_password, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_server_cleanly() {
    let session = serve_with_a_generated_token().await;
    assert!(session.exit.success(), "{:?}", session.exit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_logged_but_never_the_token() {
    let session = serve_with_a_generated_token().await;
    let log = session.log.join("\n");
    assert!(
        !log.contains(&session.token),
        "the token (or a query string carrying it) is in the log:\n{log}"
    );
    assert!(log.contains(&format!("path={J}")), "{log}");
}

#[tokio::test]
async fn invalid_settings_exit_2_naming_the_variable() {
    let cases = [
        (
            "MULTIPROVIDER_LISTEN",
            "not-an-address",
            "MULTIPROVIDER_LISTEN",
        ),
        (
            "MULTIPROVIDER_SECRET_KEY",
            "short",
            "MULTIPROVIDER_SECRET_KEY",
        ),
        // Keys that look like real ones (and could be one mistyped): long enough that an echo
        // of them in the message would be seen.
        (
            "MULTIPROVIDER_SECRET_KEY",
            "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d1",
            "MULTIPROVIDER_SECRET_KEY",
        ),
        (
            "MULTIPROVIDER_SECRET_KEY",
            "c2VjcmV0LWtleS10aGF0LWlzLXRoaXJ0eS1ieXRl",
            "MULTIPROVIDER_SECRET_KEY",
        ),
        ("DATABASE_URL", "mysql://localhost/x", "DATABASE_URL"),
    ];
    let mut keys_checked = 0;
    for (name, value, mentioned) in cases {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
            .arg("serve")
            .env_clear()
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentioned), "{stderr}");
        assert!(
            name != "MULTIPROVIDER_SECRET_KEY" || !stderr.contains(value) || value.len() < 6,
            "{stderr}"
        );
        if name == "MULTIPROVIDER_SECRET_KEY" && value.len() >= 32 {
            // Not even a part of it: the first and last 12 characters.
            for part in [&value[..12], &value[value.len() - 12..]] {
                assert!(!stderr.contains(part), "the key is echoed: {stderr}");
            }
            keys_checked += 1;
        }
    }
    assert_eq!(keys_checked, 2, "the key-echo check ran on real keys");
}

#[tokio::test]
async fn help_never_shows_the_secrets_of_the_environment() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .args(["serve", "--help"])
        .env("MULTIPROVIDER_ADMIN_TOKEN", "very-secret-admin-token")
        .env("MULTIPROVIDER_SECRET_KEY", "very-secret-key-value")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("MULTIPROVIDER_ADMIN_TOKEN") && !help.contains("very-secret"),
        "{help}"
    );
}

#[tokio::test]
async fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", path.display()))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(path.exists());
}
