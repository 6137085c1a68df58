//! The HTTP layer: admin API (docs/api.md), lookup API (docs/api.md), operations (docs/operations.md),
//! proxy health (docs/operations.md), and the OpenAPI document of all of them (docs/api.md).
//!
//! `router(state)` takes every resource's routes (`openapi::routes`, which merges one router
//! per resource with its description) and puts the cross-cutting layers around them; the
//! process around it is assembled in `server`.

pub mod auth;
pub mod error;
pub mod extensions;
pub mod extract;
pub mod format;
pub mod history;
pub mod instances;
pub mod lookup;
pub mod mask;
pub mod openapi;
pub mod ops;
pub mod outcomes;
mod percent;
pub mod proxies;
pub mod refusals;
pub mod repr;
pub mod simulate;
mod xml;

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::future::Either;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::config::Settings;
use crate::configs::Configs;

pub use auth::{Caller, EngineOrAdmin, Reader, Writer};
pub use error::ApiError;
pub use format::Format;

/// How long one request may take before it is answered 503 (the SQLite busy timeout is
/// 30 s, so contention alone never reaches this).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The configurations: the only way to change one, and reads of the store and cache.
    pub configs: Configs,
    pub settings: Arc<Settings>,
    /// Operators' logins (the super-admin is checked against `settings`).
    pub operators: Arc<crate::operators::Authenticator>,
}

/// What the server serves: the lookups' fast path (`lookup::fast`) in front of `router`.
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

pub fn app(state: AppState) -> App {
    App {
        router: router(state.clone()),
        state,
    }
}

impl<B> tower::Service<Request<B>> for App
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<Ready<Result<Response, Infallible>>, <Router as tower::Service<Request<B>>>::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let fast = lookup::fast(
            &self.state,
            request.method(),
            request.uri(),
            request.headers(),
        );
        match fast {
            Some(response) => Either::Left(std::future::ready(Ok(response))),
            None => Either::Right(tower::Service::call(&mut self.router, request)),
        }
    }
}

/// The whole application but the fast path: every resource's routes plus the cross-cutting
/// layers.
pub fn router(state: AppState) -> Router {
    // Counter handles are kept once taken: the recorder must exist before the first request.
    ops::metrics_handle();
    let refusals = Arc::new(refusals::RefusalLog::default());
    let (routes, _document) = openapi::routes().split_for_parts();
    routes
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
                        .make_span_with(|request: &axum::extract::Request| {
                            let (method, path) = (request.method(), request.uri().path());
                            if format::is_admin_path(path) {
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
                .layer(axum::middleware::from_fn(
                    move |request: axum::extract::Request, next: Next| {
                        finish(refusals.clone(), request, next)
                    },
                ))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    REQUEST_TIMEOUT,
                ))
                .layer(CatchPanicLayer::custom(error::panic_response))
                .layer(DefaultBodyLimit::max(error::MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// Whether lookups are logged: their request span or their "answered" line is enabled
/// (`RUST_LOG=debug`, `multiprovider::http=debug`, `[request]=debug`…). Then the fast path
/// leaves them to the router, which logs them.
fn request_logged() -> bool {
    tracing::enabled!(target: "multiprovider::http", tracing::Level::DEBUG)
        || !tracing::debug_span!(target: "multiprovider::http", "request").is_disabled()
}

/// Around every route, inside the trace span: errors (including those of the timeout, the
/// panic catcher and axum's rejections) leave in the request's format, every answer is
/// counted, and every refusal is logged (`refusals`: rate-limited per route and status).
async fn finish(
    refusals: Arc<refusals::RefusalLog>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let format = Format::of(request.uri().path(), request.headers());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let remote = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0);
    let method = request.method().clone();
    let response = error::render_errors(format, next.run(request).await).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let status = response.status();
    ops::count_request(route, &method, status);
    if status.is_client_error() || status.is_server_error() {
        // Named here: at the default level lookups have no request span to say which.
        let error = error::rendered_error(&response);
        refusals.record(&refusals::Refusal {
            route,
            method: &method,
            status,
            error: error.as_deref(),
            remote,
        });
    }
    response
}

/// Unknown paths: under the admin prefixes the caller must authenticate first, so that
/// the admin API's shape is not visible to strangers; elsewhere a plain 404.
async fn fallback(
    state: axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> ApiError {
    if format::is_admin_path(request.uri().path()) {
        let (mut parts, _) = request.into_parts();
        if let Err(e) = <Reader as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await
        {
            return e;
        }
    }
    ApiError::from_status(StatusCode::NOT_FOUND)
}
