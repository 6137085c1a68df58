//! What the server logs during a test, captured without a global subscriber (which would
//! also record, and slow down, every other test of this binary).

use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `test` on a runtime whose threads (and the calling one) log at `filter` (an
/// `EnvFilter`: `"trace"`, `"info"`…) into a buffer, without ANSI colours, and returns what
/// was logged. The capture is scoped to these threads.
pub fn with_captured_logs(filter: &str, test: impl std::future::Future<Output = ()>) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            // Blocking-pool threads of this runtime: theirs for as long as they live.
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        })
        .build()
        .expect("tokio runtime");
    runtime.block_on(test);
    drop(runtime);
    String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned()
}
