//! Every refusal is visible (docs/strictness.md): each 4xx is logged at `info` and each 5xx at
//! `warn`, with the route, the status, the parameters or pointers at fault and the remote
//! address — never a value, so never a secret. A misconfigured engine sending thousands of bad
//! requests a second must not flood the log: per (route, status) at most `PER_WINDOW` lines a
//! `WINDOW`; the rest are counted and one summary line per window says how many were
//! suppressed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};

use super::error::{ApiError, ErrorEntry};

/// Lines per (route, status) and window; the rest are counted.
pub const PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(1);
/// Names at fault listed in one line, each cut at `MAX_NAME` bytes.
const MAX_FAULTS: usize = 5;
const MAX_NAME: usize = 64;

type Key = (String, u16);

struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
    /// A task will write this window's summary (one per window at most).
    flush_pending: bool,
}

/// The refusals of one server, by route and status.
#[derive(Default)]
pub struct RefusalLog {
    windows: Mutex<HashMap<Key, Window>>,
}

/// What a refusal said, for its line.
pub struct Refusal<'a> {
    pub route: &'a str,
    pub method: &'a Method,
    pub status: StatusCode,
    pub error: Option<&'a ApiError>,
    pub remote: Option<SocketAddr>,
}

impl RefusalLog {
    /// Logs `refusal`, or counts it when its (route, status) already had `PER_WINDOW` lines
    /// in this window. A summary of the previous window's suppressed refusals comes first
    /// when it was not written yet.
    pub fn record(self: &Arc<Self>, refusal: &Refusal<'_>) {
        let key = (refusal.route.to_owned(), refusal.status.as_u16());
        let now = Instant::now();
        let mut spawn_flush = false;
        let (log, summary) = {
            let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            let window = windows.entry(key.clone()).or_insert(Window {
                started: now,
                logged: 0,
                suppressed: 0,
                flush_pending: false,
            });
            let mut summary = 0;
            if now.duration_since(window.started) >= WINDOW {
                summary = std::mem::take(&mut window.suppressed);
                *window = Window {
                    started: now,
                    logged: 0,
                    suppressed: 0,
                    flush_pending: false,
                };
            }
            let log = window.logged < PER_WINDOW;
            if log {
                window.logged += 1;
            } else {
                window.suppressed += 1;
                if !window.flush_pending {
                    window.flush_pending = true;
                    spawn_flush = true;
                }
            }
            (log, summary)
        };
        if summary > 0 {
            summarise(&key, summary);
        }
        if log {
            write_line(refusal);
        }
        if spawn_flush && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // The summary of a flood that stops: written when its window ends.
            let log: Weak<RefusalLog> = Arc::downgrade(self);
            runtime.spawn(async move {
                tokio::time::sleep(WINDOW).await;
                if let Some(log) = log.upgrade() {
                    log.flush(&key);
                }
            });
        }
    }

    /// Writes the summary of `key`'s window if refusals were suppressed in it.
    fn flush(&self, key: &Key) {
        let suppressed = {
            let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            match windows.get_mut(key) {
                Some(window) => {
                    window.flush_pending = false;
                    std::mem::take(&mut window.suppressed)
                }
                None => 0,
            }
        };
        if suppressed > 0 {
            summarise(key, suppressed);
        }
    }
}

fn summarise((route, status): &Key, suppressed: u64) {
    if *status >= 500 {
        tracing::warn!(route, status, suppressed, "similar answers not logged");
    } else {
        tracing::info!(route, status, suppressed, "similar refusals not logged");
    }
}

/// The names at fault: parameters and pointers, a few, each cut short. Names only: values
/// (which may be passwords or tokens) are never logged.
fn faults(error: Option<&ApiError>) -> String {
    let Some(error) = error else {
        return String::new();
    };
    let mut out = String::new();
    for (i, entry) in error.errors.iter().take(MAX_FAULTS).enumerate() {
        let name = match entry {
            ErrorEntry::Parameter { parameter, .. } => parameter,
            ErrorEntry::Pointer { pointer, .. } => pointer,
        };
        if i > 0 {
            out.push_str(", ");
        }
        let mut end = name.len().min(MAX_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        out.extend(name[..end].chars().flat_map(char::escape_debug));
    }
    if error.errors.len() > MAX_FAULTS {
        out.push_str(&format!(" and {} more", error.errors.len() - MAX_FAULTS));
    }
    out
}

fn write_line(r: &Refusal<'_>) {
    let status = r.status.as_u16();
    let method = r.method.as_str();
    let route = r.route;
    let fault = faults(r.error);
    let remote = r.remote.map(|a| a.ip().to_string()).unwrap_or_default();
    // The error's own message names what is needed ("authentication required: …", "`to` is
    // invalid"); it never repeats a credential.
    let reason = r.error.map_or("", |e| e.message.as_str());
    let reason: String = reason
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if r.status.is_server_error() {
        tracing::warn!(method, route, status, fault, remote, reason, "answered");
    } else {
        tracing::info!(method, route, status, fault, remote, reason, "refused");
    }
}
