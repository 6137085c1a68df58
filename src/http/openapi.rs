//! Every route of the server and its OpenAPI 3.1 document (docs/api.md), from one description.
//!
//! Each handler carries a `#[utoipa::path]` annotation (path, methods, parameters, bodies,
//! answers, security), and each resource registers its routes with `utoipa_axum::routes!`,
//! which takes the path and methods from that annotation: the router and the document are
//! built from the same `Paths`, so they cannot disagree. Adding a route is its annotation and
//! one `.routes(routes!(handler))` line in its resource's `router()` (a test checks that no
//! route is registered any other way, and that every documented operation is served).

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{
    CacheLoading, DatabaseUnavailable, EngineTokenForbidden, ErrorBody, ErrorEntry, NoParameters,
    PayloadTooLarge, PreconditionFailed, Unauthorized, UnsupportedMediaType,
};
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
    components(
        schemas(ErrorBody, ErrorEntry),
        responses(
            Unauthorized,
            EngineTokenForbidden,
            PayloadTooLarge,
            UnsupportedMediaType,
            PreconditionFailed,
            DatabaseUnavailable,
            CacheLoading,
            NoParameters
        )
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "admin", description = "Restcomm's ExtensionsConfiguration resource (docs/api.md), \
            under /2012-04-24 and /restcomm/2012-04-24, JSON (`.json`) and XML forms"),
        (name = "lookup", description = "Routing questions of the call and SMS engines \
            (docs/api.md), answered from memory"),
        (name = "health", description = "Proxy health (docs/operations.md): outcome reports and the \
            proxies' states"),
        (name = "operations", description = "Health, metrics and this document: no authentication")
    )
)]
struct ApiDoc;

/// `admin`: the super-admin's HTTP Basic credentials; `operator`: an operator's (docs/security.md);
/// `engine`: the engine token (bearer).
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
            "operator",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An operator's NAME:password (multiprovider operator add): a viewer \
                         reads (every proxy password shown as ********), looks up, explains and \
                         simulates, and is answered 403 on writes; an editor may do everything \
                         the super-admin may. Five failed logins for one name within 15 minutes \
                         lock it out for the rest of them (429)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "engine",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "MULTIPROVIDER_ENGINE_TOKEN: the lookup API, outcome reports and the \
                         proxy list only. The same token is also accepted as HTTP Basic \
                         credentials of the user `engine` (the `admin` scheme's form), for \
                         clients whose pooled connections cannot send a Bearer header",
                    ))
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

/// Wherever the super-admin's basic auth is accepted, an operator's is too (docs/security.md):
/// each secured operation also names the `operator` scheme.
fn operators_too(api: &mut utoipa::openapi::OpenApi) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.delete,
            &mut item.put,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            if let Some(security) = operation.security.as_mut().filter(|s| !s.is_empty()) {
                security.push(SecurityRequirement::new("operator", Vec::<String>::new()));
                let locked = ResponseBuilder::new()
                    .description(
                        "An operator name locked out after five failed logins within 15 minutes",
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Error")))
                            .build(),
                    )
                    .build();
                operation
                    .responses
                    .responses
                    .insert("429".to_owned(), RefOr::T(locked));
            }
        }
    }
}

/// The document, built once.
pub fn document() -> &'static Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut api = routes().into_openapi();
        operators_too(&mut api);
        let mut value = serde_json::to_value(&api).expect("the document serialises");
        exact(&mut value);
        Bytes::from(serde_json::to_vec(&value).expect("the document serialises"))
    })
}

/// A header name (RFC 9110 token), as the lookups check it.
const HEADER_NAME: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// Constraints the server enforces that the derive macros cannot state: an optional form body,
/// the names of a `headers` object (JSON Schema `propertyNames`) and its values (no CR or LF).
fn exact(document: &mut serde_json::Value) {
    // `POST …/{ExtensionId}` takes an empty body (`curl -X POST` alone): the form is optional.
    if let Some(serde_json::Value::Object(paths)) = document.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            if path.ends_with("/{extension_id}")
                && let Some(body) = item.pointer_mut("/post/requestBody")
                && let Some(body) = body.as_object_mut()
            {
                body.insert("required".into(), serde_json::Value::Bool(false));
            }
        }
    }
    for schema in ["VoiceQuery", "VoiceSimulation"] {
        let pointer = format!("/components/schemas/{schema}/properties/headers");
        if let Some(serde_json::Value::Object(headers)) = document.pointer_mut(&pointer) {
            headers.insert(
                "propertyNames".into(),
                serde_json::json!({"type": "string", "pattern": HEADER_NAME}),
            );
            headers.insert(
                "additionalProperties".into(),
                serde_json::json!({"type": "string", "pattern": "^[^\\r\\n]*$"}),
            );
        }
    }
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
    ), (status = 400, response = NoParameters))
)]
async fn openapi_json(uri: Uri) -> Response {
    // No parameters (docs/strictness.md).
    if let Err(e) = super::extract::only_parameters(uri.query(), &[]) {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document().clone(),
    )
        .into_response()
}
