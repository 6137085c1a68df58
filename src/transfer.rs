//! `multiprovider export` and `import` (docs/operations.md): every configuration as JSON Lines, one a
//! line, the global one first — a backup that restores all or nothing.

use std::collections::HashMap;
use std::io::{BufRead, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::cache::RoutingCache;
use crate::config::{DEFAULT_DATABASE_URL, KeyMaterial, check_database_url, parse_history_limit};
use crate::configs::Configs;
use crate::routing::{self, RegexInterner};
use crate::secret::SecretKey;
use crate::sid::AccountSid;
use crate::store::{ImportLine, Origin, Store, StoreOptions};

// The database flags of both commands.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// Database: `sqlite://FILE` or `postgres://…` (migrated first).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// The key the server uses (stored configurations are encrypted with it).
    #[arg(long, env = "MULTIPROVIDER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Keep only the newest N revisions of each configuration, as the server does.
    #[arg(
        long,
        env = "MULTIPROVIDER_HISTORY_LIMIT",
        value_name = "N",
        hide_env_values = true
    )]
    pub history_limit: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// The JSON Lines file (`-`: standard input).
    pub file: String,
    /// Validate and report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One line of the format, as written by `export`.
#[derive(Serialize)]
struct ExportedLine<'a> {
    account_sid: Option<String>,
    enabled: bool,
    configuration: &'a str,
    revision: i64,
}

/// One line as read by `import`: strict, like the admin API (`revision` is ignored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportedLine {
    account_sid: Option<String>,
    enabled: bool,
    configuration: String,
    #[serde(default, rename = "revision")]
    _revision: Option<serde_json::Value>,
}

pub fn run_export(args: ExportArgs) -> ExitCode {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.database).await?;
            let snapshot = store.load_all().await.map_err(|e| e.to_string())?;
            store.close().await;
            let mut out: Box<dyn std::io::Write> = match &args.output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| format!("cannot create {path}: {e}"))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut accounts = snapshot.accounts;
            accounts.sort_by_key(|r| r.account_sid);
            let count = accounts.len() + usize::from(snapshot.global.is_some());
            for record in snapshot.global.iter().chain(&accounts) {
                let line = ExportedLine {
                    account_sid: record.account_sid.map(|a| a.to_string()),
                    enabled: record.enabled,
                    configuration: &record.configuration,
                    revision: record.revision,
                };
                serde_json::to_writer(&mut out, &line).map_err(|e| e.to_string())?;
                out.write_all(b"\n").map_err(|e| e.to_string())?;
            }
            out.flush()
                .map_err(|e| format!("cannot write the export: {e}"))?;
            Ok(count)
        })
    });
    match result {
        Ok(count) => {
            eprintln!("multiprovider: exported {count} configurations");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("multiprovider: export failed: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn run_import(args: ImportArgs) -> ExitCode {
    let reader: Box<dyn BufRead> = if args.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => {
                eprintln!("multiprovider: cannot read {}: {e}", args.file);
                return ExitCode::from(2);
            }
        }
    };
    let lines = match parse_lines(reader) {
        Ok(lines) => lines,
        Err(Invalid::Unreadable(e)) => {
            eprintln!("multiprovider: cannot read {}: {e}", args.file);
            return ExitCode::from(2);
        }
        Err(Invalid::Problems(problems)) => {
            for problem in &problems {
                println!("{problem}");
            }
            eprintln!(
                "multiprovider: {} problems; nothing was imported",
                problems.len()
            );
            return ExitCode::from(1);
        }
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = open(&args.database).await?;
            let configs = Configs::new(store.clone(), Arc::new(RoutingCache::new()));
            let changed = configs
                .import(&lines, &Origin::cli(), args.dry_run)
                .await
                .map_err(|e| e.to_string());
            store.close().await;
            changed
        })
    });
    match result {
        Ok(changed) => {
            let verb = if args.dry_run {
                "would change"
            } else {
                "changed"
            };
            for account in &changed {
                println!(
                    "{verb}: {}",
                    account.map_or_else(|| "global".to_owned(), |a| a.to_string())
                );
            }
            eprintln!(
                "multiprovider: {} lines valid; {} configurations {verb}{}",
                lines.len(),
                changed.len(),
                if args.dry_run {
                    " (dry run: nothing written)"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("multiprovider: import failed, nothing was written: {e}");
            ExitCode::from(1)
        }
    }
}

enum Invalid {
    Unreadable(std::io::Error),
    /// `line N: <pointer or parameter>: message`, every one of them.
    Problems(Vec<String>),
}

/// Reads and validates every line (blank lines are skipped); all problems are reported.
fn parse_lines(reader: impl BufRead) -> Result<Vec<ImportLine>, Invalid> {
    let interner = RegexInterner::default();
    let mut problems = Vec::new();
    let mut lines = Vec::new();
    let mut seen: HashMap<Option<AccountSid>, usize> = HashMap::new();
    for (index, text) in reader.lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(Invalid::Unreadable)?;
        if text.trim().is_empty() {
            continue;
        }
        let line: ImportedLine = match serde_json::from_str(&text) {
            Ok(line) => line,
            Err(e) => {
                problems.push(format!("line {number}: line: {e}"));
                continue;
            }
        };
        let account_sid = match line.account_sid.as_deref().map(AccountSid::parse) {
            None => None,
            Some(Some(account)) => Some(account),
            Some(None) => {
                problems.push(format!(
                    "line {number}: account_sid: must be null (the global configuration) or AC followed by 32 hexadecimal digits"
                ));
                continue;
            }
        };
        if let Some(first) = seen.insert(account_sid, number) {
            problems.push(format!(
                "line {number}: account_sid: this configuration was already given on line {first}"
            ));
        }
        // Compiled to validate, then dropped: only the text is kept.
        if let Err(config_problems) = routing::compile_with(&line.configuration, &interner) {
            for p in config_problems {
                // The pointer into ConfigurationData, as the API gives it; the whole
                // document is named `configuration`.
                let at = if p.pointer.is_empty() {
                    "configuration"
                } else {
                    p.pointer.as_str()
                };
                problems.push(format!("line {number}: {at}: {}", p.message));
            }
            continue;
        }
        lines.push(ImportLine {
            account_sid,
            enabled: line.enabled,
            configuration: line.configuration,
        });
    }
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(Invalid::Problems(problems))
    }
}

async fn open(args: &DatabaseArgs) -> Result<Store, String> {
    check_database_url(&args.database_url)?;
    let secret = match args.secret_key.as_deref().filter(|k| !k.is_empty()) {
        Some(key) => Some(SecretKey::from_material(
            &KeyMaterial::parse(key)
                .map_err(|e| format!("MULTIPROVIDER_SECRET_KEY is invalid: {e}"))?,
        )),
        None => None,
    };
    let history_limit =
        parse_history_limit(args.history_limit.as_deref().filter(|v| !v.is_empty()))?;
    let store = Store::open(
        &args.database_url,
        StoreOptions {
            secret,
            history_limit,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse_lines(text.as_bytes()) {
            Err(Invalid::Problems(p)) => p,
            Err(Invalid::Unreadable(e)) => panic!("{e}"),
            Ok(_) => Vec::new(),
        }
    }

    #[test]
    fn every_problem_names_its_line_and_pointer() {
        let text = concat!(
            r#"{"account_sid": null, "enabled": true, "configuration": "{}", "revision": 4}"#,
            "\n\n",
            r#"{"account_sid": "AC1", "enabled": true, "configuration": "{}"}"#,
            "\n",
            r#"{"account_sid": null, "enabled": true, "configuration": "{}"}"#,
            "\n",
            r#"{"account_sid": "AC0123456789abcdef0123456789abcdef", "enabled": true, "configuration": "{\"outbound-sms\": [{}]}"}"#,
            "\n",
            r#"{"account_sid": null, "enabled": "yes", "configuration": "{}"}"#,
            "\n",
        );
        let found = problems(text);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("line 3: account_sid: must be null"));
        assert!(
            found[1]
                .starts_with("line 4: account_sid: this configuration was already given on line 1")
        );
        assert_eq!(
            found[2],
            "line 5: /outbound-sms/0: missing field `destination_network_id`"
        );
        assert!(
            found[3].starts_with("line 6: line: invalid type"),
            "{}",
            found[3]
        );
    }

    #[test]
    fn a_valid_file_parses() {
        let text = r#"{"account_sid": "ac0123456789ABCDEF0123456789abcdef", "enabled": false, "configuration": "{}", "revision": 1}"#;
        let lines = parse_lines(text.as_bytes()).ok().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].enabled);
        assert_eq!(
            lines[0].account_sid.unwrap().to_string(),
            "AC0123456789abcdef0123456789abcdef"
        );
    }
}
