//! The HTTP layer: admin API (SPEC §3), lookup API (SPEC §6), operations (SPEC §7).
//!
//! `start` connects and migrates the database, fills the cache (retrying in the background
//! if the first load fails: `/health/ready` tells when it is done), and serves until told to
//! stop; `serve` adds the listening socket and SIGINT/SIGTERM handling around it.

pub mod auth;
pub mod error;
pub mod extensions;
pub mod lookup;
pub mod ops;
pub mod repr;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::cache::RoutingCache;
use crate::config::{Settings, redact_url};
use crate::store::{Change, Store, StoreError};

pub use auth::{EngineOrAdmin, SuperAdmin};
pub use error::ApiError;
pub use repr::Format;

/// How long one request may take before it is answered 503 (the SQLite busy timeout is
/// 30 s, so contention alone never reaches this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client may take to send a request head: a connection that opens and then
/// trickles (or sends nothing) is closed after this, so it cannot hold a slot for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After SIGINT/SIGTERM, how long in-flight requests may take to finish before the
/// remaining connections are closed regardless.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub cache: Arc<RoutingCache>,
    pub settings: Arc<Settings>,
}

/// The whole application: every resource's routes plus the cross-cutting layers.
pub fn router(state: AppState) -> Router {
    // Counter handles are kept once taken: the recorder must exist before the first request.
    ops::metrics_handle();
    Router::new()
        .merge(extensions::router())
        .merge(lookup::router())
        .merge(ops::router())
        .fallback(fallback)
        // One `layer` call with the whole stack: axum boxes each layer it is given around
        // every route, and each box costs allocations on every request. Per route, so that
        // `MatchedPath` is known to `finish`.
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        // Path only: query strings and headers can carry tokens. Lookups and
                        // probes log nothing at info, so their span is debug: at the default
                        // level it is never built (about a tenth of a lookup's cost).
                        .make_span_with(|request: &Request| {
                            let (method, path) = (request.method(), request.uri().path());
                            if repr::is_admin_path(path) {
                                tracing::info_span!("request", %method, path = %path)
                            } else {
                                tracing::debug_span!("request", %method, path = %path)
                            }
                        })
                        .on_request(())
                        // Lookups arrive thousands of times a second: one line each only at debug.
                        // Server errors always show; admin writes log their own line at info.
                        .on_response(|response: &Response, latency: Duration, _span: &Span| {
                            let status = response.status().as_u16();
                            let latency_ms = latency.as_secs_f64() * 1000.0;
                            tracing::debug!(status, latency_ms, "answered");
                        })
                        .on_failure(()),
                )
                .layer(axum::middleware::from_fn(finish))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                ))
                .layer(CatchPanicLayer::custom(error::panic_response))
                .layer(DefaultBodyLimit::max(error::MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// Around every route, inside the trace span: errors (including those of the timeout, the
/// panic catcher and axum's rejections) leave in the request's format, every answer is
/// counted, and server errors are logged.
async fn finish(request: Request, next: Next) -> Response {
    let format = Format::of(request.uri().path(), request.headers());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = error::render_errors(format, next.run(request).await).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status();
    ops::count_request(route, &method, status);
    if status.is_server_error() {
        // Named here: at the default level lookups have no request span to say which.
        tracing::warn!(%method, route, status = status.as_u16(), "answered");
    }
    response
}

/// Unknown paths: under the admin prefixes the caller must authenticate first, so that
/// the admin API's shape is not visible to strangers; elsewhere a plain 404.
async fn fallback(state: axum::extract::State<AppState>, request: Request) -> ApiError {
    if repr::is_admin_path(request.uri().path()) {
        let (mut parts, _) = request.into_parts();
        if let Err(e) =
            <SuperAdmin as axum::extract::FromRequestParts<AppState>>::from_request_parts(
                &mut parts, &state,
            )
            .await
        {
            return e;
        }
    }
    ApiError::from_status(StatusCode::NOT_FOUND)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot connect to the database {url}: {source}")]
    Connect { url: String, source: StoreError },
    #[error("database migration failed: {0}")]
    Migrate(StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Stored rows this instance cannot read (encrypted without the right
    /// MULTIPROVIDER_SECRET_KEY, or damaged): serving without them would answer wrongly.
    #[error("the stored configurations cannot be read: {0}")]
    Unreadable(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A server started by `start`: stop it with `shutdown`.
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// Background cache work: the retried first load, the PostgreSQL change follower.
    background: Vec<JoinHandle<()>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting connections, lets in-flight requests finish, and returns.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = match (&mut self.task).await {
            Ok(result) => result.map_err(ServeError::Io),
            Err(join) => Err(ServeError::Io(std::io::Error::other(join))),
        };
        for task in &self.background {
            task.abort();
        }
        self.state.store.close().await;
        served
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // A server dropped without `shutdown` (a failing test) must not linger.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.background {
            task.abort();
        }
    }
}

/// Connects, migrates, loads the cache and serves on `listener` until `shutdown`.
pub async fn start(settings: Settings, listener: TcpListener) -> Result<RunningServer, ServeError> {
    let store = Store::connect(&settings.database_url, settings.secret_key.clone())
        .await
        .map_err(|source| ServeError::Connect {
            url: redact_url(&settings.database_url),
            source,
        })?;
    store.migrate().await.map_err(ServeError::Migrate)?;
    ops::metrics_handle();
    let state = AppState {
        store,
        cache: Arc::new(RoutingCache::new()),
        settings: Arc::new(settings),
    };

    // Other instances' writes (PostgreSQL): subscribe before the first load so that no
    // change falls between the snapshot and the subscription.
    let mut background = Vec::new();
    if let Some(changes) = state.store.listen() {
        background.push(tokio::spawn(follow_changes(state.clone(), changes)));
    }
    // One attempt before serving, so that a healthy start is ready at once; then retries
    // in the background while the server already answers (not ready) probes. Unreadable
    // rows are not a passing outage: refuse to start rather than serve without them.
    match load_cache(&state).await {
        Ok(()) => {}
        Err(StoreError::Corrupt(detail)) => {
            for task in &background {
                task.abort();
            }
            state.store.close().await;
            return Err(ServeError::Unreadable(detail));
        }
        Err(_) => {
            let state = state.clone();
            background.push(tokio::spawn(async move {
                let mut delay = Duration::from_millis(200);
                loop {
                    tokio::time::sleep(delay).await;
                    if load_cache(&state).await.is_ok() {
                        break;
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }));
        }
    }

    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(accept_loop(listener, app, stopped));
    tracing::info!(%addr, backend = state.store.backend_name(), "listening");
    Ok(RunningServer {
        addr,
        state,
        stop: Some(stop),
        task,
        background,
    })
}

/// Compiling a full snapshot takes seconds at 100,000 accounts: off the async workers.
async fn load_snapshot(state: &AppState, snapshot: crate::store::Snapshot, mark: u64) {
    let cache = state.cache.clone();
    let started = std::time::Instant::now();
    let accounts = snapshot.accounts.len();
    if let Err(e) = tokio::task::spawn_blocking(move || {
        cache.load(snapshot, mark);
        release_free_memory();
    })
    .await
    {
        tracing::error!(error = %e, "loading the routing cache failed");
        return;
    }
    tracing::debug!(
        accounts,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot compiled"
    );
}

/// Serves `app` on `listener` until `stopped`, then lets in-flight requests finish (for at
/// most `SHUTDOWN_GRACE`). hyper-util's builder rather than `axum::serve`, for the header
/// read timeout and the shutdown deadline that `axum::serve` does not offer.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Answers are small and complete: no reason to wait for Nagle.
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "closing connections still open after the shutdown grace period"
        );
    }
    Ok(())
}

/// A full load reads every stored configuration at once (hundreds of megabytes at 100,000
/// accounts) and keeps only the compiled form; glibc keeps the freed pages unless asked.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free heap memory to the kernel; it has no
        // preconditions and touches no memory still in use.
        unsafe {
            malloc_trim(0);
        }
    }
}

async fn load_cache(state: &AppState) -> Result<(), StoreError> {
    let mark = state.cache.mark();
    match state.store.load_all().await {
        Ok(snapshot) => {
            load_snapshot(state, snapshot, mark).await;
            tracing::info!(accounts = state.cache.len(), "routing cache loaded");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the routing cache");
            ops::database_error();
            Err(e)
        }
    }
}

/// Applies the changes other instances commit (PostgreSQL LISTEN/NOTIFY): each notified
/// configuration is re-read (the notification carries no data, so nothing secret travels
/// through it), and everything is reloaded after a (re)connect of the listener.
async fn follow_changes(state: AppState, mut changes: tokio::sync::mpsc::Receiver<Change>) {
    while let Some(change) = changes.recv().await {
        let result = match change {
            Change::Resync => match (state.cache.mark(), state.store.load_all().await) {
                (mark, Ok(snapshot)) => {
                    load_snapshot(&state, snapshot, mark).await;
                    Ok(())
                }
                (_, Err(e)) => Err(e),
            },
            Change::Scope {
                account_sid: None, ..
            } => state
                .store
                .global()
                .await
                .map(|record| record.iter().for_each(|r| state.cache.apply(r))),
            Change::Scope {
                account_sid: Some(account),
                revision,
            } => state.store.get(account).await.map(|record| match record {
                Some(record) => state.cache.apply(&record),
                None => state.cache.remove(account, revision),
            }),
        };
        if let Err(e) = result {
            // The listener reconnects and sends `Resync` once the database is back.
            tracing::warn!(error = %e, "cannot apply a change notified by another instance");
            ops::database_error();
        }
    }
}

/// Binds `settings.listen` and serves until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let addr = settings.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let server = start(settings, listener).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
