//! Settings from the environment and `serve` flags (SPEC §2). PLACEHOLDER: being written by
//! the HTTP/admin work; keep these four items.

use std::process::ExitCode;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {}

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {}

impl ServeArgs {
    pub fn from_env() -> ServeArgs {
        ServeArgs {}
    }
}

pub fn run_serve(_args: ServeArgs) -> ExitCode {
    eprintln!("multiprovider: serve is not available yet");
    ExitCode::from(2)
}

pub fn run_migrate(_args: MigrateArgs) -> ExitCode {
    eprintln!("multiprovider: migrate is not available yet");
    ExitCode::from(2)
}
