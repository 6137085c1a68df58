//! The built `multiprovider` binary, run as a child process.

use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_multiprovider");

/// A child process, killed (and waited for) on drop: a failing test leaves nothing running.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// Sends the signal `name` (`HUP`, `TERM`…) to the process, as `kill -NAME` does.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.0.id());
    }
}

/// Runs the binary with `args` and only `env` (and `PATH`) in its environment, without
/// blocking the runtime (a server of the same test may be serving meanwhile): its output.
pub async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the binary runs")
}

/// The exit code, stdout and stderr of a finished command, for assertions and messages.
pub fn outcome(o: &Output) -> (i32, String, String) {
    (
        o.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
