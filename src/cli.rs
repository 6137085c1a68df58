//! The command line: `serve` (default), `migrate`, `validate`, `resolve` (docs/operations.md).

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::routing::{
    self, Caller, Decider, Destination, Health, LookupInput, SelectionKey, Source,
};

const TOP_HELP: &str = "\
Without a command, `multiprovider [OPTIONS]` runs `serve` with those options.

Exit codes:
  0  success
  1  the environment failed at start-up (database unreachable, port taken, unreadable
     certificate…); `validate` and `import`: the input is invalid
  2  an invalid setting or usage error (message on stderr)

Example:
  multiprovider --listen 127.0.0.1:8080 --database-url sqlite://multiprovider.db";

#[derive(Debug, Parser)]
#[command(
    name = "multiprovider",
    version,
    about = "Per-account outbound voice and SMS routing",
    // `serve` is the default command: `multiprovider --listen …` means `multiprovider serve
    // --listen …`, and the flags of a named command are that command's own.
    args_conflicts_with_subcommands = true,
    after_help = TOP_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    // The options of `serve`, for the default command.
    #[command(flatten)]
    pub serve: crate::config::ServeArgs,
}

// Each command's help is its `about` (one line) and an example; developer notes are plain
// comments, which clap does not show.
#[derive(Debug, Subcommand)]
pub enum Command {
    // Boxed: its options are most of the enum's size.
    #[command(
        about = "Run the HTTP server (the default command)",
        after_help = "Example:\n  MULTIPROVIDER_ADMIN_TOKEN=change-me MULTIPROVIDER_ENGINE_TOKEN=change-me-too \\\n    multiprovider serve --listen 127.0.0.1:8080 --database-url sqlite://multiprovider.db"
    )]
    Serve(Box<crate::config::ServeArgs>),
    #[command(
        about = "Apply the database migrations and exit",
        after_help = "Example:\n  multiprovider migrate --database-url postgres://multiprovider@db.example.com/multiprovider"
    )]
    Migrate(crate::config::MigrateArgs),
    #[command(
        about = "Validate a ConfigurationData file (`-` or nothing: standard input)",
        after_help = VALIDATE_HELP
    )]
    Validate {
        /// The file to read; `-` or absent for standard input.
        file: Option<String>,
    },
    #[command(
        about = "Resolve a route offline from a ConfigurationData file",
        after_help = RESOLVE_HELP
    )]
    Resolve(ResolveArgs),
    #[command(
        about = "Write every configuration as JSON Lines (a backup), the global one first",
        after_help = "Example:\n  multiprovider export --database-url sqlite://multiprovider.db -o backup.jsonl"
    )]
    Export(crate::transfer::ExportArgs),
    #[command(
        about = "Restore configurations from JSON Lines, all or nothing (exit 1 lists every problem)",
        after_help = "Example:\n  multiprovider import --dry-run backup.jsonl && multiprovider import backup.jsonl"
    )]
    Import(crate::transfer::ImportArgs),
    #[command(
        about = "Write N sample accounts (development: benchmarks, trials)",
        after_help = "Example:\n  multiprovider seed --database-url sqlite://trial.db --accounts 1000"
    )]
    Seed(crate::seed::SeedArgs),
    /// Manage operators: named people who use the admin API with a role (viewer or editor).
    Operator(crate::operators::command::OperatorArgs),
}

const VALIDATE_HELP: &str = "\
Exit codes:
  0  valid (prints `valid`)
  1  invalid: prints the admin API's error body as JSON on stdout, every problem with its
     JSON pointer (a file that is not UTF-8 is invalid too)
  2  usage error or unreadable file (message on stderr)

Examples:
  multiprovider validate voice.json
  multiprovider validate - < voice.json
  multiprovider validate voice.json | jq -r '.errors[] | \"\\(.pointer): \\(.message)\"'";

const RESOLVE_HELP: &str = "\
Prints the lookup API's answer as JSON (`account_sid` null, `source` `account`), offline:
no server, no database.

Exit codes:
  0  resolved (also when no proxy matches: `route` is then null)
  1  the configuration is invalid: prints the validate error body on stdout
  2  usage error, unreadable file, invalid --to, --header, --from, --key or --at (message
     on stderr)

Examples:
  multiprovider resolve --config voice.json --to sip:bob@uri1.com
  multiprovider resolve --config voice.json --to +15551234 --header 'To: <sip:bob@uri1.com>'
  multiprovider resolve --config policy.json --to +4930123 --from +4940555 --key call-1@host \\
      --at 2026-12-24T17:30:00+01:00 --explain
  multiprovider resolve --config sms.json --sms";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["to", "sms"])))]
pub struct ResolveArgs {
    /// The ConfigurationData file (`-`: standard input).
    #[arg(long)]
    pub config: String,
    /// The call's destination: a sip:/sips: URI, a tel: URI or a number.
    #[arg(long)]
    pub to: Option<String>,
    /// A header the engine is about to send, as 'Name: value' (repeatable).
    #[arg(
        long = "header",
        value_name = "NAME: VALUE",
        requires = "to",
        conflicts_with = "sms"
    )]
    pub headers: Vec<String>,
    /// The caller (routing policy `caller` rules): a sip:/sips: URI, a tel: URI or a number.
    #[arg(long, requires = "to", conflicts_with = "sms")]
    pub from: Option<String>,
    /// The selection key for weighted proxies (normally the Call-ID); without it, one is
    /// drawn at random.
    #[arg(long, requires = "to", conflicts_with = "sms")]
    pub key: Option<String>,
    /// The instant schedules are read at, RFC 3339 (default: now).
    #[arg(long, requires = "to", conflicts_with = "sms")]
    pub at: Option<String>,
    /// Print the SMS TLVs instead of a voice route.
    #[arg(long, conflicts_with = "to")]
    pub sms: bool,
    /// Also say why (the `explain` of a lookup with `explain=true`).
    #[arg(long)]
    pub explain: bool,
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: help and version are not usage errors.
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        None => crate::server::run_serve(cli.serve),
        Some(Command::Serve(args)) => crate::server::run_serve(*args),
        Some(Command::Migrate(args)) => crate::server::run_migrate(args),
        Some(Command::Validate { file }) => validate(file.as_deref()),
        Some(Command::Resolve(args)) => resolve(&args),
        Some(Command::Export(args)) => crate::transfer::run_export(args),
        Some(Command::Import(args)) => crate::transfer::run_import(args),
        Some(Command::Seed(args)) => crate::seed::run(args),
        Some(Command::Operator(args)) => crate::operators::command::run(args),
    }
}

fn read_input(path: Option<&str>) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    match path {
        None | Some("-") => std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read standard input: {e}"))?,
        Some(path) => std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read {path}: {e}"))?,
    };
    Ok(bytes)
}

/// Reads a ConfigurationData file. An unreadable file is a usage error (exit 2); a file that
/// is not UTF-8 is readable but invalid (exit 1, with the error body, as the API answers 400).
fn read_config(path: Option<&str>) -> Result<String, ExitCode> {
    let bytes = read_input(path).map_err(|e| {
        eprintln!("multiprovider: {e}");
        ExitCode::from(2)
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let problem = routing::Problem {
            pointer: String::new(),
            message: format!(
                "ConfigurationData is not valid UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        };
        println!("{}", problems_body(&[problem]));
        ExitCode::from(1)
    })
}

/// The error body of docs/api.md for an invalid ConfigurationData, as the API answers it.
fn problems_body(problems: &[routing::Problem]) -> serde_json::Value {
    crate::http::ApiError::configuration(problems.to_vec()).json_body()
}

fn validate(file: Option<&str>) -> ExitCode {
    let text = match read_config(file) {
        Ok(text) => text,
        Err(code) => return code,
    };
    match routing::validate(&text) {
        Ok(()) => {
            println!("valid");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{}", problems_body(&problems));
            ExitCode::from(1)
        }
    }
}

fn resolve(args: &ResolveArgs) -> ExitCode {
    let text = match read_config(Some(&args.config)) {
        Ok(text) => text,
        Err(code) => return code,
    };
    let compiled = match routing::compile(&text) {
        Ok(compiled) => compiled,
        Err(problems) => {
            println!("{}", problems_body(&problems));
            return ExitCode::from(1);
        }
    };
    if args.sms {
        // Offline: no stored configuration, so no revision (docs/api.md).
        let answer = routing::sms_response_json(None, Source::Account, None, compiled.sms_tlvs());
        print_json(&match args.explain {
            true => routing::with_explain(answer, |out| {
                routing::write_sms_explain(out, Decider::File, Some(&compiled))
            }),
            false => answer,
        });
        return ExitCode::SUCCESS;
    }
    let to = args.to.as_deref().unwrap_or_default();
    let mut headers = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        match h.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => {
                headers.push((name.trim(), value.trim()))
            }
            _ => {
                eprintln!("multiprovider: --header takes 'Name: value', got {h:?}");
                return ExitCode::from(2);
            }
        }
    }
    let caller = args.from.as_deref().map(Caller::parse).transpose();
    let key = args.key.as_deref().map(routing::check_key).transpose();
    let at = args.at.as_deref().map(routing::parse_at).transpose();
    let (dest, caller) = match (Destination::parse(to), caller, key, at.as_ref()) {
        (Ok(dest), Ok(caller), Ok(_), Ok(_)) => match routing::check_supplied_headers(&headers) {
            Ok(()) => (dest, caller),
            Err(e) => {
                eprintln!("multiprovider: {}: {}", e.parameter, e.message);
                return ExitCode::from(2);
            }
        },
        (dest, caller, key, at) => {
            for e in [dest.err(), caller.err(), key.err()].into_iter().flatten() {
                eprintln!("multiprovider: {}: {}", e.parameter, e.message);
            }
            if let Err(e) = at {
                eprintln!("multiprovider: at: {e}");
            }
            return ExitCode::from(2);
        }
    };
    let at = at.ok().flatten().unwrap_or_else(jiff::Timestamp::now);
    let input = LookupInput::new(&dest, &headers)
        .with_caller(caller)
        .with_at(at)
        .with_key(match args.key.as_deref() {
            Some(key) => SelectionKey::Given(key),
            None => SelectionKey::Drawn(rand::random()),
        });
    // Offline, every proxy is up and every bucket full.
    let body = routing::voice_answer(
        None,
        Source::Account,
        None,
        Some(&compiled),
        input,
        |_| Health::Up,
        &routing::FullBuckets,
        args.explain.then_some(Decider::File),
    );
    print_json(&body);
    ExitCode::SUCCESS
}

fn print_json(bytes: &[u8]) {
    println!("{}", String::from_utf8_lossy(bytes));
}
