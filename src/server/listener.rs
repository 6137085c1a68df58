//! Accepting connections (plain or TLS) and stopping gracefully.
//!
//! hyper-util's builder rather than `axum::serve`, for the header read timeout and the
//! shutdown deadline that `axum::serve` does not offer. A TLS handshake runs in the
//! connection's own task, never in the accept loop, and is bounded like a request head.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt as _;
use tower::util::MapRequest;

use super::tls::TlsState;
use crate::http::App;

/// How long a client may take to send a request head: a connection that opens and then
/// trickles (or sends nothing) is closed after this, so it cannot hold a slot for ever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After SIGINT/SIGTERM, how long in-flight requests may take to finish before the
/// remaining connections are closed regardless.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` (HTTPS only when `tls` is given) until `stopped`, then lets
/// in-flight requests finish (for at most `SHUTDOWN_GRACE`).
pub(super) async fn accept_loop(
    listener: TcpListener,
    app: App,
    tls: Option<TlsState>,
    mut stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Answers are small and complete: no reason to wait for Nagle.
                let _ = stream.set_nodelay(true);
                if let Some(tls) = &tls {
                    let watcher = graceful.watcher();
                    let (tls, builder, app) = (tls.clone(), builder.clone(), app.clone());
                    tokio::spawn(serve_tls(stream, peer, tls, builder, app, watcher));
                    continue;
                }
                let service = TowerToHyperService::new(with_peer(app.clone(), peer));
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

/// One HTTPS connection: the handshake with the certificate in use when it was accepted
/// (a reload never touches an open connection), then HTTP as on a plain connection.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: TlsState,
    builder: Builder<TokioExecutor>,
    app: App,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let stream =
        match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => stream,
            // Scanners and plain-HTTP clients: not worth more than a debug line.
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
    let service = TowerToHyperService::new(with_peer(app, peer));
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .into_owned();
    let _ = watcher.watch(connection).await;
}

/// `app` for one connection: each request carries the client's address, for the revisions'
/// `remote_addr` (docs/api.md).
fn with_peer(
    app: App,
    peer: SocketAddr,
) -> MapRequest<App, impl FnMut(Request<Incoming>) -> Request<Incoming> + Clone> {
    app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    })
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered when this is called, not when
/// the future is first polled: from then on either signal means a graceful stop, never the
/// default action (termination before in-flight requests finish).
#[cfg(unix)]
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async fn wait(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            _ = wait(interrupt) => {},
            _ = wait(terminate) => {},
        }
    }
}

#[cfg(not(unix))]
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The SIGHUP stream, registered now (from then on SIGHUP no longer terminates).
#[cfg(unix)]
pub(super) fn hangup_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

#[cfg(not(unix))]
pub(super) fn hangup_signal() -> std::io::Result<()> {
    Ok(())
}

/// Calls `reload` on every SIGHUP.
#[cfg(unix)]
pub(super) async fn on_hangup(mut hangups: tokio::signal::unix::Signal, reload: impl Fn()) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: re-reading the TLS certificate and key");
        reload();
    }
}

#[cfg(not(unix))]
pub(super) async fn on_hangup(_hangups: (), _reload: impl Fn()) {}
