//! The built `multiprovider` binary, run as a child process.

use std::process::{Child, Command};

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
