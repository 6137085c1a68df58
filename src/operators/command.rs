//! `multiprovider operator …`: add, list, change and remove operators in the database a
//! server uses, while it runs (docs/security.md). Exit codes: 0 done, 1 refused or failed
//! (unknown operator, name taken, database unavailable), 2 usage or invalid input.

use std::io::BufRead as _;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat};

use super::{Role, check_name, check_password, generate_password, hash_password, new_operator};
use crate::config::{DEFAULT_DATABASE_URL, check_database_url};
use crate::store::{Store, StoreOptions};

#[derive(Debug, clap::Args)]
#[command(after_help = OPERATOR_HELP)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub verb: Verb,
}

const OPERATOR_HELP: &str = "\
Operators sign in to the admin API with HTTP Basic NAME:password; history records their name.
A viewer reads (proxy passwords shown as ********), looks up, explains and simulates; an editor
may do everything the super-admin may through the API. Changes take effect on running servers
within a second.

Exit codes:
  0  done
  1  refused or failed: unknown operator, name taken, database unavailable (message on stderr)
  2  usage error or invalid input: a bad name, role or password (message on stderr)";

/// The database flag of every verb.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseUrl {
    /// Database: `sqlite://FILE` or `postgres://…` (migrated first), the one the server uses.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    Editor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Verb {
    /// Add an operator; the password is read from stdin (one line), or made with --generate.
    #[command(after_help = "\
Examples:
  printf '%s\\n' 'a long passphrase' | multiprovider operator add alice --role editor
  multiprovider operator add support --role viewer --generate   # prints the password once")]
    Add {
        /// 1 to 64 of a-z 0-9 . _ -
        name: String,
        /// viewer (reads, passwords masked) or editor (everything through the API).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Make a random password and print it once on stdout instead of reading stdin.
        #[arg(long)]
        generate: bool,
        #[command(flatten)]
        database: DatabaseUrl,
    },
    /// List the operators, one a line: name, role, created, last login (never a hash).
    #[command(after_help = "\
Example:
  multiprovider operator list
  alice	editor	created 2026-12-08T09:00:00Z	last login 2026-12-08T09:12:31Z")]
    List {
        #[command(flatten)]
        database: DatabaseUrl,
    },
    /// Change an operator's role.
    #[command(after_help = "\
Example:
  multiprovider operator set-role alice viewer")]
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: RoleArg,
        #[command(flatten)]
        database: DatabaseUrl,
    },
    /// Set a new password (stdin, one line, or --generate); ends a lockout of that name.
    #[command(after_help = "\
Examples:
  printf '%s\\n' 'another long passphrase' | multiprovider operator passwd alice
  multiprovider operator passwd alice --generate")]
    Passwd {
        name: String,
        /// Make a random password and print it once on stdout instead of reading stdin.
        #[arg(long)]
        generate: bool,
        #[command(flatten)]
        database: DatabaseUrl,
    },
    /// Remove an operator (history keeps the name on what it changed).
    #[command(after_help = "\
Example:
  multiprovider operator remove alice")]
    Remove {
        name: String,
        #[command(flatten)]
        database: DatabaseUrl,
    },
}

/// How a verb failed: `Usage` exits 2, `Failed` 1.
enum Failure {
    Usage(String),
    Failed(String),
}

pub fn run(args: OperatorArgs) -> ExitCode {
    match run_verb(args.verb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("multiprovider: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("multiprovider: {message}");
            ExitCode::from(1)
        }
    }
}

fn run_verb(verb: Verb) -> Result<(), Failure> {
    match verb {
        Verb::Add {
            name,
            role,
            generate,
            database,
        } => {
            valid_name(&name)?;
            let password = new_password(generate)?;
            let row = new_operator(&name, role.into(), &password);
            let added = block_on(
                &database,
                |store| async move { store.add_operator(&row).await },
            )?;
            if !added {
                return Err(Failure::Failed(format!(
                    "operator {name} already exists (change it with set-role or passwd)"
                )));
            }
            if generate {
                println!("{password}");
            }
            eprintln!(
                "multiprovider: operator {name} added as {}",
                Role::from(role).as_str()
            );
            Ok(())
        }
        Verb::List { database } => {
            let rows = block_on(&database, |store| async move { store.operators().await })?;
            for row in rows {
                let last = row.last_login.map_or_else(|| "never".to_owned(), rfc3339);
                println!(
                    "{}\t{}\tcreated {}\tlast login {last}",
                    row.name,
                    row.role,
                    rfc3339(row.created)
                );
            }
            Ok(())
        }
        Verb::SetRole {
            name,
            role,
            database,
        } => {
            valid_name(&name)?;
            let role = Role::from(role);
            let owned = name.clone();
            let done = block_on(&database, |store| async move {
                store.set_operator_role(&owned, role.as_str()).await
            })?;
            found(done, &name)?;
            eprintln!("multiprovider: operator {name} is now {}", role.as_str());
            Ok(())
        }
        Verb::Passwd {
            name,
            generate,
            database,
        } => {
            valid_name(&name)?;
            let password = new_password(generate)?;
            let hash = hash_password(&password);
            let owned = name.clone();
            let done = block_on(&database, |store| async move {
                store.set_operator_password(&owned, &hash).await
            })?;
            found(done, &name)?;
            if generate {
                println!("{password}");
            }
            eprintln!("multiprovider: operator {name} has a new password");
            Ok(())
        }
        Verb::Remove { name, database } => {
            valid_name(&name)?;
            let owned = name.clone();
            let done = block_on(&database, |store| async move {
                store.remove_operator(&owned).await
            })?;
            found(done, &name)?;
            eprintln!("multiprovider: operator {name} removed");
            Ok(())
        }
    }
}

fn valid_name(name: &str) -> Result<(), Failure> {
    check_name(name).map_err(|e| Failure::Usage(format!("invalid operator name: {e}")))
}

fn found(done: bool, name: &str) -> Result<(), Failure> {
    if done {
        Ok(())
    } else {
        Err(Failure::Failed(format!("no operator named {name}")))
    }
}

/// The password: generated, or the first line of stdin (its line ending removed).
fn new_password(generate: bool) -> Result<String, Failure> {
    if generate {
        return Ok(generate_password());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Usage(format!("cannot read the password from stdin: {e}")))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(Failure::Usage(
            "no password on stdin: give one line, or use --generate".into(),
        ));
    }
    check_password(password).map_err(|e| Failure::Usage(format!("invalid password: {e}")))?;
    Ok(password.to_owned())
}

fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(
        || "?".into(),
        |d| d.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Opens (and migrates) the database and runs `work` on it.
fn block_on<T, F>(database: &DatabaseUrl, work: impl FnOnce(Store) -> F) -> Result<T, Failure>
where
    F: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    check_database_url(&database.database_url).map_err(Failure::Usage)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let store = Store::open(&database.database_url, StoreOptions::default())
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        store
            .migrate()
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let result = work(store.clone())
            .await
            .map_err(|e| Failure::Failed(e.to_string()));
        store.close().await;
        result
    })
}
