//! The one place where the process is assembled: settings → store (connected, migrated) →
//! cache (loaded) → change follower → proxy health → listener → graceful shutdown.
//!
//! `start` serves on a listener it is given (tests bind port 0); `serve` binds the configured
//! address and runs until SIGINT/SIGTERM; `run_serve` and `run_migrate` are the process
//! entry points of the CLI.

mod listener;
mod sync;
pub mod tls;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cache::RoutingCache;
use crate::capacity::CapacityRegistry;
use crate::config::{MigrateArgs, ServeArgs, Settings, check_database_url, redact_url};
use crate::configs::Configs;
use crate::health::{self, HealthRegistry, Policy, probe::ProbeSettings};
use crate::http::{self, AppState};
use crate::secret::SecretKey;
use crate::store::{Store, StoreError, StoreOptions};

pub use listener::{HEADER_READ_TIMEOUT, SHUTDOWN_GRACE};
pub use tls::{TlsError, TlsState};

/// Why the server could not start (or stopped). Each displays as one line that names the
/// cause and the fix (docs/operations.md), and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database {url}: {}", detail(source))]
    Connect { url: String, source: StoreError },
    #[error("database migration failed: {}", detail(.0))]
    Migrate(StoreError),
    #[error("cannot listen on {addr}: {}", bind_hint(*addr, source))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// Stored rows this instance cannot read (encrypted without the right
    /// MULTIPROVIDER_SECRET_KEY, or damaged): serving without them would answer wrongly.
    #[error("the stored configurations cannot be read: {0}")]
    Unreadable(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A store error without the generic prefix: the connect functions' messages say it all.
fn detail(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(message) => message.clone(),
        other => other.to_string(),
    }
}

fn bind_hint(addr: SocketAddr, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::AddrInUse => format!(
            "address already in use: another process (perhaps another multiprovider) listens \
             on port {}; stop it, or set MULTIPROVIDER_LISTEN to another address",
            addr.port()
        ),
        K::AddrNotAvailable => format!(
            "{} is not an address of this machine; set MULTIPROVIDER_LISTEN to one of its \
             addresses, or 0.0.0.0:{} for all of them",
            addr.ip(),
            addr.port()
        ),
        K::PermissionDenied => format!(
            "permission denied (ports below 1024 need privileges); set MULTIPROVIDER_LISTEN \
             to a port of 1024 or more, e.g. {}:8080",
            addr.ip()
        ),
        _ => format!("{e}; check MULTIPROVIDER_LISTEN"),
    }
}

/// A server started by `start`: stop it with `shutdown`.
pub struct RunningServer {
    addr: SocketAddr,
    state: AppState,
    /// The HTTPS certificate in use, when serving HTTPS.
    tls: Option<TlsState>,
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

    /// The HTTPS certificate in use (`None`: plain HTTP).
    pub fn tls(&self) -> Option<&TlsState> {
        self.tls.as_ref()
    }

    /// What SIGHUP does: re-reads the certificate and key files for the connections accepted
    /// from now on. On error the certificate in use stays (the error is logged and returned).
    /// Without HTTPS there is nothing to re-read: `Ok`.
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
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
        // The others take this instance's share of the limits at their next heartbeat.
        let id = self
            .state
            .configs
            .cache()
            .capacity()
            .members()
            .id()
            .to_owned();
        // Bounded: with the database away the row goes silent instead (gone after 5 s).
        let forget = self.state.configs.store().forget_instance(&id);
        match tokio::time::timeout(Duration::from_secs(1), forget).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot remove this instance from the registry")
            }
            Err(_) => tracing::warn!("removing this instance from the registry timed out"),
        }
        self.state.configs.store().close().await;
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

/// Reads the certificate (when HTTPS is configured), connects, migrates, loads the cache and
/// serves on `listener` until `shutdown`.
pub async fn start(settings: Settings, listener: TcpListener) -> Result<RunningServer, ServeError> {
    // The files first: a wrong path must not wait for a database connection to be told.
    let tls = settings.tls.as_ref().map(TlsState::load).transpose()?;
    let options = StoreOptions {
        secret: settings.secret_key.as_ref().map(SecretKey::from_material),
        history_limit: settings.history_limit,
    };
    let store = Store::open(&settings.database_url, options)
        .await
        .map_err(|source| ServeError::Connect {
            url: redact_url(&settings.database_url),
            source,
        })?;
    store.migrate().await.map_err(ServeError::Migrate)?;
    // A key set for the first time: what was written before it is sealed now, so that
    // nothing stays in plaintext at rest (docs/operations.md, docs/api.md).
    match store.reseal().await {
        Ok(0) => {}
        Ok(sealed) => tracing::info!(sealed, "stored plaintext sealed with the secret key"),
        Err(e) => tracing::warn!(error = %e, "cannot seal plaintext written before the secret key"),
    }
    // The recorder first: metric handles taken before it exists would count nothing.
    http::ops::metrics_handle();
    let health = Arc::new(HealthRegistry::new(Policy {
        failures: settings.health_failures,
        cooldown_micros: i64::try_from(settings.health_cooldown.as_micros()).unwrap_or(i64::MAX),
    }));
    health::init_metrics(&health);
    crate::capacity::init_metrics();
    let capacity = Arc::new(CapacityRegistry::default());
    let state = AppState {
        operators: Arc::new(crate::operators::Authenticator::new(store.clone())),
        configs: Configs::new(
            store,
            Arc::new(RoutingCache::with_health(health).with_capacity(capacity)),
        ),
        settings: Arc::new(settings),
    };

    // Other processes' writes (other instances on PostgreSQL, the CLI on SQLite): subscribe
    // before the first load so that no change falls between the snapshot and the subscription.
    let mut background = Vec::new();
    let changes = state.configs.store().listen().await;
    background.push(tokio::spawn(sync::follow_changes(state.clone(), changes)));
    // One attempt before serving, so that a healthy start is ready at once; then retries
    // in the background while the server already answers (not ready) probes. Unreadable
    // rows are not a passing outage: refuse to start rather than serve without them.
    match sync::load_cache(&state).await {
        Ok(()) => {}
        Err(StoreError::Corrupt(detail)) => {
            for task in &background {
                task.abort();
            }
            state.configs.store().close().await;
            return Err(ServeError::Unreadable(detail));
        }
        Err(_) => background.push(tokio::spawn(sync::retry_load(state.clone()))),
    }
    background.extend(start_health(&state).await);
    // The instance registry: N for the carrier limits (docs/routing.md, capacity). The first
    // heartbeat before serving, so that a new instance enforces its share at once.
    let capacity = state.configs.cache().capacity().clone();
    let first = capacity.members().beat(state.configs.store(), &capacity);
    let _ = tokio::time::timeout(crate::capacity::instances::HEARTBEAT, first).await;
    background.push(tokio::spawn(crate::capacity::instances::run(
        capacity,
        state.configs.store().clone(),
    )));

    let addr = listener.local_addr()?;
    let app = http::app(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(listener::accept_loop(listener, app, tls.clone(), stopped));
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        %addr,
        scheme = %scheme,
        backend = state.configs.store().backend_name(),
        pid = std::process::id(),
        "listening; stop with SIGTERM (kill PID) or Ctrl-C"
    );
    Ok(RunningServer {
        addr,
        state,
        tls,
        stop: Some(stop),
        task,
        background,
    })
}

/// Proxy health (docs/operations.md): cool-downs, sharing with other instances on PostgreSQL (the
/// states they stored first), and probing when configured.
async fn start_health(state: &AppState) -> Vec<JoinHandle<()>> {
    let registry = state.configs.cache().health().clone();
    let mut tasks = vec![tokio::spawn(health::run_ticker(registry.clone()))];
    if state.configs.store().shares_health() {
        // After the first cache load, so that the stored states find their proxies (a
        // failed load is followed by a resync, which loads them too).
        if let Err(e) = health::share::load(&registry, state.configs.store()).await {
            tracing::warn!(error = %e, "cannot read the shared proxy health; starting from up");
        }
        tasks.push(tokio::spawn(health::share::publish(
            registry.clone(),
            state.configs.store().clone(),
        )));
    }
    if let Some(interval) = state.settings.probe_interval {
        let settings = ProbeSettings {
            interval,
            timeout: health::probe::PROBE_TIMEOUT,
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = health::probe::run(registry, settings).await {
                tracing::error!(error = %e, "probing is off: no UDP socket");
            }
        }));
    }
    tasks
}

/// Binds `settings.listen` and serves until SIGINT or SIGTERM. The generated admin token is
/// printed once the server listens, so that a start that fails prints none.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let addr = settings.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let generated = settings
        .admin_token_generated
        .then(|| settings.admin_token.clone());
    // SIGHUP re-reads the certificate. Registered before the server is reported as started,
    // so that a SIGHUP sent from then on never meets the default action (termination).
    // Without HTTPS it keeps its default meaning.
    let hangups = match settings.tls.is_some() {
        true => Some(listener::hangup_signal()?),
        false => None,
    };
    // Registered before the server says it listens or prints the token: whoever reads either
    // may stop it at once.
    let stop = listener::shutdown_signal();
    let server = start(settings, listener).await?;
    if let (Some(hangups), Some(tls)) = (hangups, server.tls().cloned()) {
        tokio::spawn(listener::on_hangup(hangups, move || {
            let _ = tls.reload();
        }));
    }
    if let Some(token) = generated {
        // Deliberately not a log line: it must not end up in log aggregation.
        eprintln!(
            "multiprovider: generated admin token (set MULTIPROVIDER_ADMIN_TOKEN to choose one): {token}"
        );
    }
    stop.await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await
}

fn init_logging(filter: &str) {
    // Logs go to stdout; stderr is kept for the generated token and fatal errors.
    let mut env_filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping` on every
    // start) are not news: shown from `warn` unless the filter names sqlx itself.
    if !filter.contains("sqlx")
        && let Ok(quiet) = "sqlx::postgres::notice=warn".parse()
    {
        env_filter = env_filter.add_directive(quiet);
    }
    let filter = env_filter;
    // Colour codes only on a terminal: piped logs (containers, collectors) stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("multiprovider: cannot start the async runtime: {e}");
            ExitCode::from(1)
        })
}

/// `multiprovider serve`: exit 2 for invalid settings, 1 when the server cannot start or
/// fails, 0 after a graceful shutdown.
pub fn run_serve(args: ServeArgs) -> ExitCode {
    let settings = match Settings::from_args(args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("multiprovider: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings.log);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multiprovider: {e}");
            ExitCode::from(1)
        }
    }
}

/// `multiprovider migrate`.
pub fn run_migrate(args: MigrateArgs) -> ExitCode {
    if let Err(e) = check_database_url(&args.database_url) {
        eprintln!("multiprovider: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&args.log) {
        eprintln!("multiprovider: RUST_LOG is invalid: {e}");
        return ExitCode::from(2);
    }
    init_logging(&args.log);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let store = Store::connect(&args.database_url, None).await?;
        store.migrate().await
    });
    match result {
        Ok(()) => {
            eprintln!(
                "multiprovider: migrations applied to {}",
                redact_url(&args.database_url)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("multiprovider: migration failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// Back-off bounds of the retried first load.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
