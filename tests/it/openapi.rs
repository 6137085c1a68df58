//! `GET /openapi.json` (docs/api.md): the document validates as OpenAPI 3.1 (against the OpenAPI
//! Initiative's JSON Schema, vendored in `fixtures/`), it documents every route the server
//! serves and nothing else, and the server's answers conform to it.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, A1, A2, FORM, SMS, UNKNOWN_EXTENSION, VOICE_EXAMPLE};
use crate::common::db::fresh_sqlite;
use crate::common::wire::{error_pointers, form};

const OAS_31_SCHEMA: &str = include_str!("../fixtures/openapi-3.1-schema.json");
const METHODS: [&str; 5] = ["get", "post", "delete", "put", "patch"];

async fn document(app: &TestApp) -> Value {
    // No credentials.
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

const SIM_VOICE: &str = "/v1/simulate/voice-route";
/// Every routing policy member (docs/routing.md).
const POLICY_EXAMPLE: &str = r#"{"outbound-voice": [{"proxy": [
    {"uri": "premium.example.com", "caller": "\\+4930.*"},
    {"uri": "a.example.com", "priority": 1, "weight": 70},
    {"uri": "b.example.com", "priority": 1, "weight": 30},
    {"uri": "c.example.com", "priority": 1, "weight": 0},
    {"uri": "night.example.com", "priority": 2, "schedule": {"timezone": "Europe/Berlin",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "08:00"}],
        "except": ["2026-12-25"]}}]}]}"#;
const SIM_SMS: &str = "/v1/simulate/sms-route";

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");

    let oas: Value = serde_json::from_str(OAS_31_SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&oas).expect("the OAS 3.1 schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1: {errors:#?}");
    // The validator does reject what is not OpenAPI 3.1.
    let mut broken = doc.clone();
    broken["openapi"] = json!("3.0.3");
    assert!(!validator.is_valid(&broken));
    let mut broken = doc.clone();
    broken["paths"]["/health/live"]["get"]["responses"] = json!([]);
    assert!(!validator.is_valid(&broken));

    // Every schema is a valid JSON Schema 2020-12 (OpenAPI 3.1's dialect).
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        jsonschema::draft202012::meta::validate(schema)
            .unwrap_or_else(|e| panic!("schema {name} is not JSON Schema 2020-12: {e}"));
    }
    // Security: basic for the admin API, bearer (or the admin's basic) for lookups.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["admin"],
        json!({"type": "http", "scheme": "basic", "description": schemes["admin"]["description"]})
    );
    assert_eq!(schemes["engine"]["scheme"], "bearer");
    // Operators: basic auth too, named apart, wherever the super-admin's is accepted.
    assert_eq!(schemes["operator"]["scheme"], "basic");
    let voice = &doc["paths"]["/v1/accounts/{account_sid}/voice-route"]["get"];
    assert_eq!(
        voice["security"],
        json!([{"engine": []}, {"admin": []}, {"operator": []}])
    );
    let admin =
        &doc["paths"]["/restcomm/2012-04-24/ExtensionsConfiguration/{extension_id}"]["delete"];
    assert_eq!(admin["security"], json!([{"admin": []}, {"operator": []}]));
    assert_eq!(
        admin["responses"]["429"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    assert!(
        doc["paths"]["/health/ready"]["get"]
            .get("security")
            .is_none()
    );
    // The routing policy (docs/routing.md): the proxy members, the lookup inputs, the
    // simulation's inputs and the explanation's fields are all described.
    let schemas = &doc["components"]["schemas"];
    for member in ["priority", "weight", "caller", "schedule"] {
        assert!(
            schemas["ProxyConfig"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    for member in ["timezone", "windows", "except"] {
        assert!(
            schemas["Schedule"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    let names: Vec<&str> = voice["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"from") && names.contains(&"key"),
        "{names:?}"
    );
    for member in ["from", "key"] {
        assert!(
            schemas["VoiceQuery"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    for member in ["from", "key", "at", "samples"] {
        assert!(
            schemas["VoiceSimulation"]["properties"]
                .get(member)
                .is_some(),
            "{member}"
        );
    }
    for member in ["caller", "key", "at"] {
        assert!(
            schemas["VoiceExplain"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    for member in ["cps", "burst", "tokens", "exhausted"] {
        assert!(
            schemas["Capacity"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    assert!(schemas["Limits"]["properties"].get("cps").is_some());
    assert!(
        schemas["VoiceAnswer"]["properties"]
            .get("unavailable")
            .is_some()
    );
    for member in [
        "priority",
        "weight",
        "score",
        "share",
        "conditions",
        "capacity",
    ] {
        assert!(
            schemas["Candidate"]["properties"].get(member).is_some(),
            "{member}"
        );
    }
    assert!(schemas["VoiceAnswer"]["properties"].get("split").is_some());
    // operationIds are unique.
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for method in METHODS {
            if let Some(id) = item[method]["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
    }
    app.stop().await;
}

/// (method, path template) → operationId of every documented operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                let id = operation["operationId"].as_str().unwrap_or_default();
                out.insert((method.to_uppercase(), path.clone()), id.to_owned());
            }
        }
    }
    out
}

/// The admin collections: (prefix, collection, `Accounts`, `History`, `Rollback`,
/// operationId suffix), JSON and XML under both prefixes.
fn admin_forms() -> Vec<(String, &'static str, &'static str, &'static str, String)> {
    let mut out = Vec::new();
    for (prefix, restcomm) in [("/2012-04-24", ""), ("/restcomm/2012-04-24", "_restcomm")] {
        for (collection, suffix) in [
            ("ExtensionsConfiguration.json", ""),
            ("ExtensionsConfiguration", "_xml"),
        ] {
            let json = suffix.is_empty();
            let named =
                |name: &'static str, json_name: &'static str| if json { json_name } else { name };
            out.push((
                format!("{prefix}/{collection}"),
                named("Accounts", "Accounts.json"),
                named("History", "History.json"),
                named("Rollback", "Rollback.json"),
                format!("{restcomm}{suffix}"),
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let doc = document(&app).await;
    let ops = operations(&doc);

    // docs/api.md, docs/operations.md as they exist now: admin under both prefixes in both forms
    // (with the history and rollback of docs/api.md), the lookups, the outcome reports and the
    // proxy list of docs/operations.md, health, metrics, and this document.
    let mut expected = BTreeMap::new();
    let mut expect = |method: &str, path: String, id: String| {
        expected.insert((method.to_owned(), path), id);
    };
    for (base, accounts, history, rollback, suffix) in admin_forms() {
        let one = format!("{base}/{{extension_id}}");
        for (method, path, id) in [
            ("POST", base.clone(), "store_configuration"),
            ("POST", one.clone(), "update_configuration"),
            ("GET", one.clone(), "read_configuration"),
            ("DELETE", one.clone(), "delete_configuration"),
            ("GET", format!("{one}/{accounts}"), "list_configurations"),
            ("GET", format!("{one}/{history}"), "configuration_history"),
            (
                "GET",
                format!("{one}/History/{{revision}}"),
                "configuration_revision",
            ),
            (
                "POST",
                format!("{one}/{rollback}"),
                "rollback_configuration",
            ),
        ] {
            expect(method, path, format!("{id}{suffix}"));
        }
    }
    for (method, path, id) in [
        (
            "GET",
            "/v1/accounts/{account_sid}/voice-route",
            "voice_route",
        ),
        (
            "POST",
            "/v1/accounts/{account_sid}/voice-route",
            "voice_route_with_headers",
        ),
        ("GET", "/v1/accounts/{account_sid}/sms-route", "sms_route"),
        ("POST", "/v1/outcomes", "report_outcomes"),
        ("GET", "/v1/instances", "instances"),
        ("GET", "/v1/proxies", "proxies"),
        ("POST", "/v1/simulate/voice-route", "simulate_voice_route"),
        ("POST", "/v1/simulate/sms-route", "simulate_sms_route"),
        ("GET", "/health/live", "live"),
        ("GET", "/health/ready", "ready"),
        ("GET", "/metrics", "metrics"),
        ("GET", "/openapi.json", "openapi"),
    ] {
        expect(method, path.to_owned(), id.to_owned());
    }
    assert_eq!(ops, expected);

    // Every admin write takes If-Match and If-None-Match and documents their 412.
    for ((method, path), id) in &ops {
        let writes = ["POST", "DELETE"].contains(&method.as_str()) && !path.starts_with("/v1/");
        if !writes {
            continue;
        }
        let operation = &doc["paths"][path][method.to_lowercase()];
        let headers: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "header")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            BTreeSet::from(["If-Match", "If-None-Match"]),
            "{id}"
        );
        assert!(operation["responses"]["412"].is_object(), "{id}: no 412");
    }

    // Served: each documented operation reaches a route of the router (the request counter
    // is labelled with the route that matched, `unmatched` otherwise).
    for (method, path) in ops.keys() {
        let concrete = path
            .replace("{account_sid}", A1)
            .replace("{extension_id}", "multi_provider")
            .replace("{revision}", "1");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = app
            .admin(app.client.request(method.clone(), app.url(&concrete)))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 405, "{method} {concrete}");
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (method, path) in ops.keys() {
        let needle = format!("method=\"{method}\",route=\"{path}\"");
        assert!(
            metrics.lines().any(|l| l.contains(&needle)
                || (l.contains(&format!("route=\"{path}\""))
                    && l.contains(&format!("method=\"{method}\"")))),
            "{method} {path} was not served by a route of its own"
        );
    }

    // And the router has no route the document lacks: every route is registered through
    // `utoipa_axum::routes!` (which takes path and methods from the annotation), never with a
    // bare `route`/`nest`.
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap();
                for bare in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                    assert!(
                        !code.contains(bare),
                        "{}:{}: a route registered without its description: {line}",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    app.stop().await;
}

/// Validates answers against the document's schemas.
struct Contract {
    doc: Value,
}

impl Contract {
    /// The answer (`status`, `headers`, `body`) to `method path` conforms to the document:
    /// the status is documented, so is the media type, the body validates against its schema
    /// (JSON), every documented header is there, and an `ETag` only where documented.
    fn check(&self, method: &str, path: &str, status: u16, headers: &HeaderMap, body: &str) {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let media = content_type.split(';').next().unwrap().trim();
        let responses = &self.doc["paths"][path][method.to_lowercase()]["responses"];
        let mut response = &responses[status.to_string()];
        // A shared response: `{"$ref": "#/components/responses/…"}`.
        if let Some(reference) = response["$ref"].as_str() {
            response = self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{method} {path} {status}: {reference} is not defined"));
        }
        assert!(
            response.is_object(),
            "{method} {path}: status {status} is not documented ({body})"
        );
        let documented = response["headers"].as_object().cloned().unwrap_or_default();
        for name in documented.keys() {
            assert!(
                header(name).is_some(),
                "{method} {path} {status}: no {name} header, which is documented"
            );
        }
        if header("etag").is_some() {
            assert!(
                documented.keys().any(|n| n.eq_ignore_ascii_case("etag")),
                "{method} {path} {status}: an ETag that is not documented"
            );
        }
        if status == 204 {
            assert!(body.is_empty());
            assert!(response.get("content").is_none(), "{method} {path} 204");
            return;
        }
        let content = &response["content"][media];
        assert!(
            content.is_object(),
            "{method} {path} {status}: {media} is not documented"
        );
        if media != "application/json" {
            return;
        }
        // The schema with the document's components beside it, so that its
        // `#/components/schemas/…` references resolve.
        let root = json!({
            "$ref": "#/answer",
            "answer": content["schema"],
            "components": self.doc["components"],
        });
        let validator = jsonschema::draft202012::new(&root).unwrap();
        let instance: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {body}"));
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not conform: {errors:#?}\n{body}"
        );
        // The ETag is the revision of the configuration answered.
        if let Some(etag) = header("etag") {
            assert_eq!(etag, format!("\"{}\"", instance["revision"]), "{body}");
        }
    }
}

/// One request of the tour: method, path template, concrete path, credentials, extra
/// headers, body.
struct Call<'a> {
    method: &'a str,
    template: &'a str,
    path: String,
    auth: Auth,
    headers: Vec<(&'a str, &'a str)>,
    body: Option<(&'a str, String)>,
}

#[derive(Clone, Copy)]
enum Auth {
    None,
    Admin,
    Engine,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, template: &'a str, path: impl Into<String>, auth: Auth) -> Call<'a> {
        Call {
            method,
            template,
            path: path.into(),
            auth,
            headers: Vec::new(),
            body: None,
        }
    }

    /// An admin `GET`.
    fn get(template: &'a str, path: impl Into<String>) -> Call<'a> {
        Call::new("GET", template, path, Auth::Admin)
    }

    /// An admin `POST` of the form `body`.
    fn post(template: &'a str, path: impl Into<String>, body: impl Into<String>) -> Call<'a> {
        Call::new("POST", template, path, Auth::Admin).body(FORM, body)
    }

    fn body(mut self, content_type: &'a str, body: impl Into<String>) -> Call<'a> {
        self.body = Some((content_type, body.into()));
        self
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Call<'a> {
        self.headers.push((name, value));
        self
    }

    async fn send(&self, app: &TestApp, contract: &Contract, accept_json: bool) -> (u16, String) {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = app.client.request(method, app.url(&self.path));
        request = match self.auth {
            Auth::None => request,
            Auth::Admin => app.admin(request),
            Auth::Engine => app.engine(request),
        };
        if accept_json {
            request = request.header("accept", "application/json");
        }
        for (name, value) in &self.headers {
            request = request.header(*name, *value);
        }
        if let Some((ct, body)) = &self.body {
            request = request.header("content-type", *ct).body(body.clone());
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap();
        contract.check(self.method, self.template, status, &headers, &body);
        (status, body)
    }
}

#[tokio::test]
async fn the_answers_of_the_server_conform_to_the_document() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let contract = Contract {
        doc: document(&app).await,
    };
    let mut seen = BTreeSet::new();
    let creation = |pairs: &[(&str, &str)]| {
        let mut all = vec![("ExtensionName", "multi_provider")];
        all.extend_from_slice(pairs);
        form(&all)
    };
    let voice_config = creation(&[("AccountSid", A1), ("ConfigurationData", VOICE_EXAMPLE)]);
    let sms_config = creation(&[("ConfigurationData", SMS)]);
    let bad_config = creation(&[
        ("Enabled", "maybe"),
        (
            "ConfigurationData",
            r#"{"outbound-voice": [{"proxy": [{"uri": "a b"}]}]}"#,
        ),
    ]);
    let big = "x".repeat(300 * 1024);
    // A1's configuration as SMS (a new revision), and back to its first revision.
    let a1_sms = form(&[("AccountSid", A1), ("ConfigurationData", SMS)]);
    let back_to_1 = form(&[("AccountSid", A1), ("Revision", "1")]);
    // An If-Match no configuration matches.
    let stale = ("If-Match", "\"999\"");

    for (base, accounts, history, rollback, _) in admin_forms() {
        let json_form = base.ends_with(".json");
        let one = format!("{base}/{{extension_id}}");
        let list = format!("{one}/{accounts}");
        let history_t = format!("{one}/{history}");
        let revision_t = format!("{one}/History/{{revision}}");
        let rollback_t = format!("{one}/{rollback}");
        let id = format!("{base}/multi_provider");
        let unknown = format!("{base}/{UNKNOWN_EXTENSION}");
        let revision = |n: u32| {
            let ext = if json_form { ".json" } else { "" };
            format!("{id}/History/{n}{ext}")
        };
        let calls = vec![
            (200, Call::post(&base, &base, voice_config.clone())),
            (200, Call::post(&base, &base, sms_config.clone())),
            (400, Call::post(&base, &base, bad_config.clone())),
            (
                401,
                Call::new("POST", &base, &base, Auth::None).body(FORM, sms_config.clone()),
            ),
            (
                403,
                Call::new("POST", &base, &base, Auth::Engine).body(FORM, sms_config.clone()),
            ),
            (413, Call::post(&base, &base, big.clone())),
            (
                415,
                Call::new("POST", &base, &base, Auth::Admin).body("application/json", "{}"),
            ),
            // A1 exists: a create-only write is refused.
            (
                412,
                Call::post(&base, &base, voice_config.clone()).header("If-None-Match", "*"),
            ),
            (
                200,
                Call::post(
                    &one,
                    &id,
                    form(&[("AccountSid", A2), ("ConfigurationData", "{}")]),
                ),
            ),
            (200, Call::post(&one, &id, a1_sms.clone())),
            (
                412,
                Call::post(&one, &id, a1_sms.clone()).header(stale.0, stale.1),
            ),
            (404, Call::post(&one, &unknown, "")),
            (200, Call::get(&one, format!("{id}?AccountSid={A1}"))),
            (200, Call::get(&one, &id)),
            (400, Call::get(&one, format!("{id}?AccountSid=AC1"))),
            (404, Call::get(&one, format!("{id}?AccountSid={A_NONE}"))),
            (
                200,
                Call::get(&list, format!("{id}/{accounts}?Page=0&PageSize=1")),
            ),
            (400, Call::get(&list, format!("{id}/{accounts}?PageSize=0"))),
            // docs/api.md: the history, one revision, a rollback.
            (
                200,
                Call::get(
                    &history_t,
                    format!("{id}/{history}?AccountSid={A1}&PageSize=2"),
                ),
            ),
            (200, Call::get(&history_t, format!("{id}/{history}"))),
            (
                400,
                Call::get(&history_t, format!("{id}/{history}?PageSize=0")),
            ),
            (
                400,
                Call::get(&history_t, format!("{id}/{history}?AccountSid=AC1")),
            ),
            (404, Call::get(&history_t, format!("{unknown}/{history}"))),
            (
                401,
                Call::new("GET", &history_t, format!("{id}/{history}"), Auth::None),
            ),
            (
                403,
                Call::new("GET", &history_t, format!("{id}/{history}"), Auth::Engine),
            ),
            (
                200,
                Call::get(&revision_t, format!("{}?AccountSid={A1}", revision(1))),
            ),
            (200, Call::get(&revision_t, revision(1))),
            (
                400,
                Call::get(&revision_t, format!("{}?AccountSid=AC1", revision(1))),
            ),
            (
                404,
                Call::get(&revision_t, format!("{}?AccountSid={A1}", revision(999))),
            ),
            (
                200,
                Call::post(&rollback_t, format!("{id}/{rollback}"), back_to_1.clone()),
            ),
            (
                400,
                Call::post(
                    &rollback_t,
                    format!("{id}/{rollback}"),
                    form(&[("AccountSid", A1), ("Revision", "0")]),
                ),
            ),
            (
                404,
                Call::post(
                    &rollback_t,
                    format!("{id}/{rollback}"),
                    form(&[("AccountSid", A_NONE), ("Revision", "1")]),
                ),
            ),
            (
                412,
                Call::post(&rollback_t, format!("{id}/{rollback}"), back_to_1.clone())
                    .header(stale.0, stale.1),
            ),
            (
                401,
                Call::new("POST", &rollback_t, format!("{id}/{rollback}"), Auth::None)
                    .body(FORM, back_to_1.clone()),
            ),
            (
                415,
                Call::new("POST", &rollback_t, format!("{id}/{rollback}"), Auth::Admin)
                    .body("application/json", "{}"),
            ),
            (400, Call::new("DELETE", &one, &id, Auth::Admin)),
            (
                412,
                Call::new("DELETE", &one, format!("{id}?AccountSid={A2}"), Auth::Admin)
                    .header(stale.0, stale.1),
            ),
            (
                204,
                Call::new("DELETE", &one, format!("{id}?AccountSid={A2}"), Auth::Admin),
            ),
            (
                404,
                Call::new(
                    "DELETE",
                    &one,
                    format!("{id}?AccountSid={A_NONE}"),
                    Auth::Admin,
                ),
            ),
        ];
        for (want, call) in &calls {
            // XML routes answer XML, and JSON when asked: both are documented.
            let forms: &[bool] = if json_form { &[false] } else { &[false, true] };
            for &accept_json in forms {
                let (status, body) = call.send(&app, &contract, accept_json).await;
                assert_eq!(status, *want, "{} {}: {body}", call.method, call.path);
                seen.insert((call.method.to_owned(), call.template.to_owned(), status));
                if *want == 204 {
                    // Recreate what was deleted for the second form.
                    let r = app
                        .post_form(
                            &base,
                            &[
                                ("ExtensionName", "multi_provider"),
                                ("AccountSid", A2),
                                ("ConfigurationData", "{}"),
                            ],
                        )
                        .await;
                    assert_eq!(r.status(), 200);
                }
            }
        }
        // A2 has no configuration of its own for the lookups below.
        let r = app.delete(&format!("{id}?AccountSid={A2}")).await;
        assert_eq!(r.status(), 204);
        // Every operation of docs/api.md was answered, and validated, with success.
        for (method, template) in [
            ("GET", &history_t),
            ("GET", &revision_t),
            ("POST", &rollback_t),
        ] {
            assert!(
                seen.contains(&(method.to_owned(), template.clone(), 200)),
                "{method} {template}"
            );
        }
    }

    let voice = "/v1/accounts/{account_sid}/voice-route";
    let sms = "/v1/accounts/{account_sid}/sms-route";
    let v = |q: &str| format!("/v1/accounts/{A1}/voice-route{q}");
    let lookups = vec![
        (
            200,
            Call::new(
                "GET",
                voice,
                v("?to=sip:bob@uri1.com&header=To:%3Csip:bob@uri1.com%3E"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new("GET", voice, v("?to=+15551234"), Auth::Admin),
        ),
        (
            200,
            Call::new(
                "GET",
                voice,
                format!("/v1/accounts/{A2}/voice-route?to=+1"),
                Auth::Engine,
            ),
        ),
        (
            400,
            Call::new("GET", voice, v("?to=client:alice"), Auth::Engine),
        ),
        (
            400,
            Call::new("GET", voice, v("?to=+1&header=To"), Auth::Engine),
        ),
        (
            400,
            Call::new(
                "GET",
                voice,
                "/v1/accounts/AC1/voice-route?to=+1",
                Auth::Engine,
            ),
        ),
        (401, Call::new("GET", voice, v("?to=+1"), Auth::None)),
        (
            200,
            Call::new("POST", voice, v(""), Auth::Engine).body(
                "text/plain",
                json!({"to": "sip:bob@uri2.com", "headers": {"To": "<sip:bob@uri2.com>"}})
                    .to_string(),
            ),
        ),
        (
            400,
            Call::new("POST", voice, v(""), Auth::Engine).body("application/json", "[1]"),
        ),
        (
            400,
            Call::new("POST", voice, v(""), Auth::Engine).body(FORM, "to=+1"),
        ),
        (
            401,
            Call::new("POST", voice, v(""), Auth::None).body("application/json", "{}"),
        ),
        (
            413,
            Call::new("POST", voice, v(""), Auth::Engine).body("application/json", big.clone()),
        ),
        (
            200,
            Call::new(
                "GET",
                sms,
                format!("/v1/accounts/{A1}/sms-route"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new(
                "GET",
                sms,
                format!("/v1/accounts/{A2}/sms-route"),
                Auth::Engine,
            ),
        ),
        (
            400,
            Call::new("GET", sms, "/v1/accounts/nonsense/sms-route", Auth::Engine),
        ),
        (
            401,
            Call::new(
                "GET",
                sms,
                format!("/v1/accounts/{A1}/sms-route"),
                Auth::None,
            ),
        ),
        // docs/api.md: explained answers, and simulations.
        (
            200,
            Call::new(
                "GET",
                voice,
                v("?to=sip:bob@uri1.com&explain=true"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new("GET", voice, v("?to=%2B1&explain=true"), Auth::Engine),
        ),
        (
            400,
            Call::new("GET", voice, v("?to=%2B1&explain=maybe"), Auth::Engine),
        ),
        (
            200,
            Call::new("POST", voice, v("?explain=true"), Auth::Engine).body(
                "application/json",
                json!({"to": "sip:bob@uri2.com"}).to_string(),
            ),
        ),
        (
            200,
            Call::new(
                "GET",
                sms,
                format!("/v1/accounts/{A1}/sms-route?explain=true"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new(
                "GET",
                sms,
                format!("/v1/accounts/{A_NONE}/sms-route?explain=true"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Admin).body(
                "application/json",
                json!({"configuration": VOICE_EXAMPLE, "to": "sip:bob@uri1.com"}).to_string(),
            ),
        ),
        (
            400,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Admin).body(
                "text/plain",
                json!({"configuration": {"outbound-voice": 1}, "to": "+1"}).to_string(),
            ),
        ),
        // Routing policy (docs/routing.md): `from` and `key` on lookups, `from`, `key`, `at`
        // and `samples` in simulations, and the explanation's policy fields.
        (
            200,
            Call::new(
                "GET",
                voice,
                v("?to=sip:bob@uri1.com&from=%2B4930123&key=call-1%40host&explain=true"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new(
                "GET",
                voice,
                v("?to=sip:bob@uri1.com&from=sip:alice@example.com&key=k"),
                Auth::Engine,
            ),
        ),
        (
            400,
            Call::new(
                "GET",
                voice,
                v("?to=%2B1&from=client:x&key=a%20b"),
                Auth::Engine,
            ),
        ),
        (
            200,
            Call::new("POST", voice, v("?explain=true"), Auth::Engine).body(
                "application/json",
                json!({"to": "+15551234", "from": "tel:+4930123", "key": "call-2"}).to_string(),
            ),
        ),
        (
            200,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Admin).body(
                "application/json",
                json!({
                    "configuration": POLICY_EXAMPLE,
                    "to": "+4420123", "from": "+4930123", "key": "call-3",
                    "at": "2026-12-24T18:30:00+01:00", "samples": 200,
                })
                .to_string(),
            ),
        ),
        (
            400,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Admin).body(
                "application/json",
                json!({
                    "configuration": POLICY_EXAMPLE, "to": "+1", "at": "yesterday",
                    "samples": 0,
                })
                .to_string(),
            ),
        ),
        (
            403,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Engine).body("application/json", "{}"),
        ),
        (
            401,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::None).body("application/json", "{}"),
        ),
        (
            413,
            Call::new("POST", SIM_VOICE, SIM_VOICE, Auth::Admin)
                .body("application/json", big.clone()),
        ),
        (
            200,
            Call::new("POST", SIM_SMS, SIM_SMS, Auth::Admin).body(
                "application/json",
                json!({"configuration": {"outbound-sms": [{"destination_network_id": 7}]}})
                    .to_string(),
            ),
        ),
        (
            400,
            Call::new("POST", SIM_SMS, SIM_SMS, Auth::Admin).body("application/json", "[]"),
        ),
        (
            200,
            Call::new("GET", "/health/live", "/health/live", Auth::None),
        ),
        (
            200,
            Call::new("GET", "/health/ready", "/health/ready", Auth::None),
        ),
        (200, Call::new("GET", "/metrics", "/metrics", Auth::None)),
        (
            200,
            Call::new("GET", "/openapi.json", "/openapi.json", Auth::None),
        ),
    ];
    for (want, call) in &lookups {
        let (status, body) = call.send(&app, &contract, false).await;
        assert_eq!(status, *want, "{} {}: {body}", call.method, call.path);
        seen.insert((call.method.to_owned(), call.template.to_owned(), status));
    }

    // docs/operations.md: reports and the proxy list. Five failures of 192.168.0.1 (A1's voice
    // configuration uses it) take it down, the default threshold: the list then has an item
    // with `since` and `last_outcome_at`, and the voice answer a `down` fallback.
    let outcomes = "/v1/outcomes";
    let report = |auth: Auth, content_type: &'static str, body: String| {
        Call::new("POST", outcomes, outcomes, auth).body(content_type, body)
    };
    let failure = json!({"proxy": "sip:192.168.0.1;lr", "outcome": "failure", "sip_status": 503});
    let accepted = tour(
        &app,
        &contract,
        &mut seen,
        202,
        report(
            Auth::Engine,
            "application/json",
            Value::Array(vec![failure; 5]).to_string(),
        ),
    )
    .await;
    assert_eq!(accepted, json!({"accepted": 5, "ignored": 0}));
    // One report, not an array; for a proxy no configuration uses; by the admin.
    let unused = json!({"proxy": "gw.unused.example.net", "outcome": "timeout"});
    let ignored = tour(
        &app,
        &contract,
        &mut seen,
        202,
        report(Auth::Admin, "text/plain", unused.to_string()),
    )
    .await;
    assert_eq!(ignored, json!({"accepted": 1, "ignored": 1}));
    let bad_batch = json!([
        {"proxy": "192.168.0.2", "outcome": "success"},
        {"proxy": "192.168.0.2", "outcome": "broken"},
        7,
        {"proxy": "192.168.0.2", "outcome": "success", "sip_status": 1000},
    ]);
    let refused = tour(
        &app,
        &contract,
        &mut seen,
        400,
        report(Auth::Engine, FORM, bad_batch.to_string()),
    )
    .await;
    assert_eq!(
        error_pointers(&refused),
        ["/1/outcome", "/2", "/3/sip_status"],
        "{refused}"
    );
    let not_json = tour(
        &app,
        &contract,
        &mut seen,
        400,
        report(Auth::Engine, "application/json", "{\"proxy\": ".into()),
    )
    .await;
    assert_eq!(error_pointers(&not_json), [""], "{not_json}");
    for (want, call) in [
        (401, report(Auth::None, "application/json", "[]".into())),
        (413, report(Auth::Engine, "application/json", big.clone())),
    ] {
        tour(&app, &contract, &mut seen, want, call).await;
    }

    let proxies = "/v1/proxies";
    let list = tour(
        &app,
        &contract,
        &mut seen,
        200,
        Call::new("GET", proxies, proxies, Auth::Engine),
    )
    .await;
    let items = list["proxies"].as_array().unwrap();
    let named: Vec<(&Value, &Value)> = items.iter().map(|p| (&p["proxy"], &p["health"])).collect();
    assert_eq!(
        named,
        [
            (&json!("192.168.0.1:5060"), &json!("down")),
            (&json!("192.168.0.2:5060"), &json!("up")),
        ],
        "{list}"
    );
    assert!(
        items[0]["since"].is_string() && items[1]["since"].is_null(),
        "{list}"
    );
    let down = tour(
        &app,
        &contract,
        &mut seen,
        200,
        Call::new(
            "GET",
            proxies,
            "/v1/proxies?health=down&Page=0&PageSize=1",
            Auth::Admin,
        ),
    )
    .await;
    assert_eq!(down["total"], 1, "{down}");
    let empty = tour(
        &app,
        &contract,
        &mut seen,
        200,
        Call::new("GET", proxies, "/v1/proxies?health=probing", Auth::Engine),
    )
    .await;
    assert_eq!(empty["proxies"], json!([]), "{empty}");
    for (want, call) in [
        (
            400,
            Call::new("GET", proxies, "/v1/proxies?health=sideways", Auth::Engine),
        ),
        (
            400,
            Call::new("GET", proxies, "/v1/proxies?PageSize=0", Auth::Engine),
        ),
        (401, Call::new("GET", proxies, proxies, Auth::None)),
    ] {
        tour(&app, &contract, &mut seen, want, call).await;
    }
    // The down proxy's route comes last, marked, and conforms too.
    let answer = tour(
        &app,
        &contract,
        &mut seen,
        200,
        Call::new("GET", voice, v("?to=sip:bob@uri1.com"), Auth::Engine),
    )
    .await;
    assert_eq!(
        (
            &answer["route"]["health"],
            &answer["fallbacks"][0]["health"]
        ),
        (&json!("up"), &json!("down")),
        "{answer}"
    );

    // The instances, and a carrier at its limit: `capacity` in explain, then `unavailable`.
    let instances = "/v1/instances";
    for (want, call) in [
        (200, Call::new("GET", instances, instances, Auth::Engine)),
        (
            200,
            Call::new(
                "GET",
                instances,
                "/v1/instances?Page=0&PageSize=1",
                Auth::Admin,
            ),
        ),
        (
            400,
            Call::new("GET", instances, "/v1/instances?PageSize=0", Auth::Engine),
        ),
        (401, Call::new("GET", instances, instances, Auth::None)),
    ] {
        tour(&app, &contract, &mut seen, want, call).await;
    }
    app.configure(
        Some(A2),
        r#"{"outbound-voice": [{"proxy": [{"uri": "gw.example.com", "limits": {"cps": 1, "burst": 1}}]}]}"#,
    )
    .await;
    let limited = |query: &str| format!("/v1/accounts/{A2}/voice-route?to=%2B1555{query}");
    let explained = tour(
        &app,
        &contract,
        &mut seen,
        200,
        Call::new("GET", voice, limited("&explain=true"), Auth::Engine),
    )
    .await;
    assert!(
        explained["explain"]["candidates"][0]["capacity"].is_object(),
        "{explained}"
    );
    let mut last = Value::Null;
    for _ in 0..3 {
        last = tour(
            &app,
            &contract,
            &mut seen,
            200,
            Call::new("GET", voice, limited(""), Auth::Engine),
        )
        .await;
    }
    assert_eq!(last["unavailable"]["reason"], "capacity", "{last}");

    // The global `sms` answer for A2, a `none` answer and a null route were all checked.
    assert!(seen.len() > 100, "{}", seen.len());
    app.stop().await;
}

/// Sends `call` (JSON wanted), which must be answered `want`, validated against the document:
/// the answer's JSON.
async fn tour(
    app: &TestApp,
    contract: &Contract,
    seen: &mut BTreeSet<(String, String, u16)>,
    want: u16,
    call: Call<'_>,
) -> Value {
    let (status, body) = call.send(app, contract, false).await;
    assert_eq!(status, want, "{} {}: {body}", call.method, call.path);
    seen.insert((call.method.to_owned(), call.template.to_owned(), status));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The answers many routes share are defined once (`components/responses`) and referenced;
/// the admin API's XML forms inline them with their XML twin. Every route that reads a body
/// documents 413, and the constraints the server enforces are stated.
#[tokio::test]
async fn shared_answers_are_defined_once_and_constraints_are_stated() {
    let db = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let doc = document(&app).await;
    let shared = doc["components"]["responses"].as_object().unwrap();
    for name in [
        "Unauthorized",
        "PayloadTooLarge",
        "DatabaseUnavailable",
        "CacheLoading",
    ] {
        assert!(
            shared.contains_key(name),
            "{name} not in components/responses"
        );
    }
    let mut referenced = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            if operation.get("requestBody").is_some() {
                assert!(responses["413"].is_object(), "{method} {path}: no 413");
            }
            let unauthorized = &responses["401"];
            if unauthorized.is_null() {
                continue;
            }
            let xml_form = !path.contains(".json") && path.contains("ExtensionsConfiguration");
            if xml_form {
                assert!(
                    unauthorized["content"]["application/xml"].is_object(),
                    "{path}"
                );
            } else {
                assert_eq!(
                    unauthorized,
                    &json!({"$ref": "#/components/responses/Unauthorized"}),
                    "{method} {path}"
                );
                referenced += 1;
            }
        }
    }
    assert!(referenced >= 15, "{referenced} references");
    // Constraints found by the contract fuzzer (Schemathesis, .ci/schemathesis).
    let voice = &doc["paths"]["/v1/accounts/{account_sid}/voice-route"];
    let to = voice["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "to")
        .unwrap();
    assert_eq!(to["schema"]["minLength"], 1, "{to}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["VoiceQuery"]["properties"]["to"]["minLength"], 1);
    assert!(schemas["VoiceQuery"]["properties"]["headers"]["propertyNames"]["pattern"].is_string());
    assert_eq!(
        schemas["OutcomeReport"]["properties"]["proxy"]["minLength"],
        1
    );
    app.stop().await;
}
