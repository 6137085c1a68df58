//! Health and metrics (docs/operations.md): no authentication, so that orchestrators and Prometheus can
//! reach them; they reveal no configuration.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use std::cell::RefCell;
use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::NoParameters;
use super::extract::only_parameters;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(render_metrics))
}

/// Lookup latencies in seconds. A lookup takes a few microseconds in the server, so the
/// buckets are fine below 100 µs (BENCHMARKS.md reads its p99 from them) and coarse above,
/// where only trouble lands; every bound of earlier releases is kept, so that dashboards
/// built on them go on working.
const LATENCY_BUCKETS: [f64; 26] = [
    0.000_001, 0.000_002, 0.000_003, 0.000_004, 0.000_005, 0.000_006, 0.000_008, 0.000_01,
    0.000_015, 0.000_02, 0.000_025, 0.000_03, 0.000_04, 0.000_05, 0.000_075, 0.000_1, 0.000_25,
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0,
];

/// The process-wide Prometheus recorder (several servers in one test process share it).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; ours then stays empty.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    });
    // Histogram samples wait in a buffer until they are folded into buckets: without this,
    // a server nobody scrapes would grow that buffer by one sample per lookup, for ever.
    static UPKEEP: std::sync::Once = std::sync::Once::new();
    UPKEEP.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    if let Some(handle) = HANDLE.get() {
                        handle.run_upkeep();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the metrics upkeep thread");
        }
    });
    HANDLE.get().expect("initialised above")
}

/// How often buffered histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(2);

fn describe() {
    metrics::describe_counter!(
        "multiprovider_http_requests_total",
        "HTTP requests by route and status"
    );
    metrics::describe_histogram!(
        "multiprovider_lookup_duration_seconds",
        metrics::Unit::Seconds,
        "time to answer a lookup, from the handler's start"
    );
    metrics::describe_gauge!(
        "multiprovider_cache_accounts",
        "account configurations in the routing cache"
    );
    metrics::describe_gauge!(
        "multiprovider_cache_loaded",
        "1 once the routing cache was filled"
    );
    metrics::describe_counter!(
        "multiprovider_database_errors_total",
        "database operations that failed because the database was unreachable or refused"
    );
    // Exported from the start, so that alerts can use rate() before the first failure.
    metrics::counter!("multiprovider_database_errors_total").increment(0);
}

/// Counts a request by matched route (never the raw path: it holds account Sids), method
/// and status. The counter handles are kept per thread, so that a request costs a lookup
/// by borrowed key instead of building and registering a labelled key each time.
pub fn count_request(route: &str, method: &Method, status: StatusCode) {
    type Counters =
        HashMap<Box<str>, Vec<(&'static str, StatusCode, Counter)>, foldhash::fast::RandomState>;
    thread_local! {
        static COUNTERS: RefCell<Counters> = RefCell::new(Counters::default());
    }
    let method = method_label(method);
    COUNTERS.with_borrow_mut(|counters| {
        if !counters.contains_key(route) {
            counters.insert(route.into(), Vec::new());
        }
        let by_method_status = counters.get_mut(route).expect("inserted above");
        let counter = match by_method_status
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, counter)) => counter,
            None => {
                let counter = metrics::counter!(
                    "multiprovider_http_requests_total",
                    "method" => method,
                    "route" => route.to_owned(),
                    "status" => status.as_u16().to_string()
                );
                by_method_status.push((method, status, counter));
                &by_method_status.last().expect("pushed above").2
            }
        };
        counter.increment(1);
    });
}

/// Any client may send any token as a method: outside the standard ones they are counted
/// together, so that nobody can create series (or grow the lookup above) at will.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", |m| m.as_str())
}

/// Counts one database failure (the log says which).
pub fn database_error() {
    metrics::counter!("multiprovider_database_errors_total").increment(1);
}

/// The query parameters `/health/ready` and `/metrics` take: none (docs/strictness.md); any
/// name is a 400 naming it. `/health/live` is the exception: it always answers 200.
const NO_PARAMETERS: &[&str] = &[];

/// `GET /health/live`: the process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    operation_id = "live",
    responses((status = 200, description = "Always", body = String, content_type = "text/plain")),
)]
async fn live() -> &'static str {
    "live\n"
}

/// The body of `/health/ready`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Readiness)]
struct Readiness {
    #[schema(pattern = "^(ready|loading)$")]
    status: &'static str,
    /// True once the routing cache was filled: lookups are answered.
    cache_loaded: bool,
    cache_accounts: usize,
    #[schema(pattern = "^(reachable|unreachable)$")]
    database: &'static str,
    #[schema(pattern = "^(sqlite|postgres)$")]
    database_backend: &'static str,
    database_check_ms: f64,
}

/// `GET /health/ready`: 200 once the cache is loaded, saying whether the database answers.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready: the routing cache is loaded", body = Readiness),
        (status = 503, description = "Not yet: the routing cache is loading", body = Readiness),
        (status = 400, response = NoParameters),
    ),
)]
async fn ready(State(state): State<AppState>, uri: Uri) -> Response {
    if let Err(e) = only_parameters(uri.query(), NO_PARAMETERS) {
        return e.into_response();
    }
    let loaded = state.configs.cache().is_loaded();
    let started = Instant::now();
    let reachable = tokio::time::timeout(Duration::from_secs(2), state.configs.store().ping())
        .await
        .unwrap_or(false);
    let body = Readiness {
        status: if loaded { "ready" } else { "loading" },
        cache_loaded: loaded,
        cache_accounts: state.configs.cache().len(),
        database: if reachable {
            "reachable"
        } else {
            "unreachable"
        },
        database_backend: state.configs.store().backend_name(),
        // Microsecond resolution: more digits would only be float noise (0.43549499999…).
        database_check_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
    };
    let status = if loaded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4: requests by route and status, lookup latency, cache size, database errors",
        body = String,
        content_type = "text/plain"
    ), (status = 400, response = NoParameters)),
)]
async fn render_metrics(State(state): State<AppState>, uri: Uri) -> Response {
    if let Err(e) = only_parameters(uri.query(), NO_PARAMETERS) {
        return e.into_response();
    }
    let handle = metrics_handle();
    metrics::gauge!("multiprovider_cache_accounts").set(state.configs.cache().len() as f64);
    metrics::gauge!("multiprovider_cache_loaded").set(if state.configs.cache().is_loaded() {
        1.0
    } else {
        0.0
    });
    state.configs.cache().health().export_gauges();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}
