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

/// Every help text, as an operator reads it, compared with its snapshot in
/// `tests/it/snapshots/cli_help/` (`UPDATE_SNAPSHOTS=1` rewrites them after a deliberate
/// change): no source comments, and each command says what it is for and shows an example.
#[test]
fn help_texts_match_their_snapshots() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots/cli_help");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatches = Vec::new();
    for command in [
        "", "serve", "migrate", "validate", "resolve", "export", "import", "seed",
    ] {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let help = stdout(&o);
        // What source comments and developer notes look like.
        for leak in [
            "SPEC",
            "Boxed",
            "enum",
            "clap",
            "sample_account",
            "///",
            "TODO",
            "=]",
        ] {
            assert!(!help.contains(leak), "{args:?} shows {leak:?}:\n{help}");
        }
        assert!(help.contains("Example"), "{args:?} has no example:\n{help}");
        let purpose = help.lines().next().unwrap_or("");
        assert!(
            !purpose.is_empty() && purpose.len() <= 100,
            "{args:?}: the first line is the purpose: {purpose:?}"
        );
        let name = if command.is_empty() {
            "multiprovider"
        } else {
            command
        };
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &help).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(help.as_str()) {
            mismatches.push(format!("{}:\n{help}", path.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "help differs from its snapshot (UPDATE_SNAPSHOTS=1 after a deliberate change):\n{}",
        mismatches.join("\n")
    );
}
