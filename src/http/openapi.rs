//! Every route of the server and its OpenAPI 3.1 document (SPEC §8), from one description.
//!
//! Each handler carries a `#[utoipa::path]` annotation (path, methods, parameters, bodies,
//! answers, security), and each resource registers its routes with `utoipa_axum::routes!`,
//! which takes the path and methods from that annotation: the router and the document are
//! built from the same `Paths`, so they cannot disagree. Adding a route is its annotation and
//! one `.routes(routes!(handler))` line in its resource's `router()` (a test checks that no
//! route is registered any other way, and that every documented operation is served).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ErrorBody, ErrorEntry};
use super::{AppState, extensions, history, instances, lookup, ops, outcomes, proxies, simulate};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "multiprovider",
        description = "Per-account outbound voice and SMS routing for Restcomm-style platforms: \
            the Restcomm-compatible admin API (ExtensionsConfiguration), the lookup API of the \
            call and SMS engines, and operations.",
        license(name = "AGPL-3.0-only", identifier = "AGPL-3.0-only")
    ),
    components(schemas(ErrorBody, ErrorEntry)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin", description = "Restcomm's ExtensionsConfiguration resource (SPEC §3), \
            under /2012-04-24 and /restcomm/2012-04-24, JSON (`.json`) and XML forms"),
        (name = "lookup", description = "Routing questions of the call and SMS engines \
            (SPEC §6, §8), answered from memory"),
        (name = "health", description = "Proxy health (SPEC §11): outcome reports and the \
            proxies' states"),
        (name = "operations", description = "Health, metrics and this document: no authentication")
    )
)]
struct ApiDoc;

/// `admin`: the super-admin's HTTP Basic credentials; `engine`: the engine token (bearer).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "MULTIPROVIDER_ADMIN_SID and MULTIPROVIDER_ADMIN_TOKEN; also accepted \
                         by the lookup API",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "engine",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("MULTIPROVIDER_ENGINE_TOKEN: the lookup API only"))
                    .build(),
            ),
        );
    }
}

/// Every route, with its description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(extensions::router())
        .merge(history::router())
        .merge(lookup::router())
        .merge(outcomes::router())
        .merge(instances::router())
        .merge(proxies::router())
        .merge(simulate::router())
        .merge(ops::router())
        .routes(routes!(openapi_json))
}

/// The document, built once.
pub fn document() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let api = routes().into_openapi();
        Bytes::from(serde_json::to_vec(&api).expect("the document serialises"))
    })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    responses((
        status = 200,
        description = "The OpenAPI 3.1 document of every route",
        body = Object,
        content_type = "application/json"
    ))
)]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document().clone(),
    )
        .into_response()
}
