//! The command line's help and its default command, as an operator meets them.

use std::process::{Command, Output};

use crate::common::process::BIN;

/// Runs the binary with `args` and nothing in its environment but `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn serve_help_names_each_variable_without_a_value() {
    // Unset, and set (a secret among them): neither an empty `NAME=` nor a value is shown.
    for env in [
        vec![],
        vec![
            ("MULTIPROVIDER_LISTEN", "0.0.0.0:9999"),
            ("MULTIPROVIDER_ADMIN_TOKEN", "admin-secret-token"),
            ("DATABASE_URL", "postgres://u:db-password@h/db"),
        ],
    ] {
        let o = run(&["serve", "--help"], &env);
        assert_eq!(o.status.code(), Some(0));
        let help = stdout(&o);
        for name in [
            "DATABASE_URL",
            "MULTIPROVIDER_LISTEN",
            "MULTIPROVIDER_ADMIN_SID",
            "MULTIPROVIDER_ADMIN_TOKEN",
            "MULTIPROVIDER_ENGINE_TOKEN",
            "MULTIPROVIDER_SECRET_KEY",
            "MULTIPROVIDER_TLS_CERT",
            "MULTIPROVIDER_TLS_KEY",
            "RUST_LOG",
        ] {
            assert!(help.contains(&format!("[env: {name}]")), "{name}:\n{help}");
        }
        // What clap shows between `[env: ` and `]`: the name alone.
        for shown in help.split("[env: ").skip(1) {
            let shown = shown.split(']').next().unwrap_or("");
            assert!(
                !shown.contains('='),
                "[env: {shown}] shows a value:\n{help}"
            );
        }
        for secret in ["0.0.0.0:9999", "admin-secret-token", "db-password"] {
            assert!(!help.contains(secret), "{secret} shown:\n{help}");
        }
    }
}

#[test]
fn secret_key_help_says_the_whole_configuration_is_encrypted() {
    let help = stdout(&run(&["serve", "--help"], &[]));
    let line = help
        .lines()
        .skip_while(|l| !l.contains("--secret-key"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        line.contains("the whole stored configuration")
            && !line.contains("encrypting proxy passwords"),
        "{line}"
    );
}

#[test]
fn validate_and_resolve_help_give_exit_codes_and_examples() {
    for (command, example) in [
        ("validate", "multiprovider validate voice.json"),
        (
            "resolve",
            "multiprovider resolve --config voice.json --to sip:bob@uri1.com",
        ),
    ] {
        let help = stdout(&run(&[command, "--help"], &[]));
        for part in [
            "Exit codes:",
            "  0  ",
            "  1  ",
            "  2  ",
            "Examples:",
            example,
        ] {
            assert!(help.contains(part), "{command}: {part:?} missing:\n{help}");
        }
    }
}

#[test]
fn serve_is_the_default_command_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing/mp.db", dir.path().display());
    // `multiprovider --listen … --database-url …` runs `serve` (which then stops: no folder).
    let o = run(&["--listen", "127.0.0.1:0", "--database-url", &url], &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the SQLite database"),
        "{stderr}"
    );
    // The top-level help shows them.
    let help = stdout(&run(&["--help"], &[]));
    assert!(
        help.contains("--listen") && help.contains("runs `serve`"),
        "{help}"
    );
    // Options before a named command belong to serve only.
    let o = run(&["--listen", "127.0.0.1:0", "validate"], &[]);
    assert_eq!(o.status.code(), Some(2));
}
