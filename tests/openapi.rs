//! `GET /openapi.json` (SPEC §8): the document validates as OpenAPI 3.1 (against the OpenAPI
//! Initiative's JSON Schema, vendored in `fixtures/`), it documents every route the server
//! serves and nothing else, and the server's answers conform to it.

mod common;

use std::collections::BTreeSet;

use common::app::{AppOptions, ENGINE_TOKEN, FORM, TestApp, form, spawn_app};
use common::db::fresh_sqlite;
use serde_json::{Value, json};

const OAS_31_SCHEMA: &str = include_str!("fixtures/openapi-3.1-schema.json");
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "ACffffffffffffffffffffffffffffffff";
const VOICE: &str = include_str!("fixtures/voice.json");
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
    let voice = &doc["paths"]["/v1/accounts/{account_sid}/voice-route"]["get"];
    assert_eq!(voice["security"], json!([{"engine": []}, {"admin": []}]));
    let admin =
        &doc["paths"]["/restcomm/2012-04-24/ExtensionsConfiguration/{extension_id}"]["delete"];
    assert_eq!(admin["security"], json!([{"admin": []}]));
    assert!(
        doc["paths"]["/health/ready"]["get"]
            .get("security")
            .is_none()
    );
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

/// (method, path template) of every documented operation.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
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

    // SPEC §3 and §6–§7 as they exist now: admin under both prefixes in both forms, the
    // lookups, health, metrics, and this document.
    let mut expected = BTreeSet::new();
    for prefix in ["/2012-04-24", "/restcomm/2012-04-24"] {
        for (collection, accounts) in [
            ("ExtensionsConfiguration.json", "Accounts.json"),
            ("ExtensionsConfiguration", "Accounts"),
        ] {
            let base = format!("{prefix}/{collection}");
            expected.insert(("POST".to_owned(), base.clone()));
            for method in ["GET", "POST", "DELETE"] {
                expected.insert((method.to_owned(), format!("{base}/{{extension_id}}")));
            }
            expected.insert((
                "GET".to_owned(),
                format!("{base}/{{extension_id}}/{accounts}"),
            ));
        }
    }
    for (method, path) in [
        ("GET", "/v1/accounts/{account_sid}/voice-route"),
        ("POST", "/v1/accounts/{account_sid}/voice-route"),
        ("GET", "/v1/accounts/{account_sid}/sms-route"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ] {
        expected.insert((method.to_owned(), path.to_owned()));
    }
    assert_eq!(ops, expected);

    // Served: each documented operation reaches a route of the router (the request counter
    // is labelled with the route that matched, `unmatched` otherwise).
    for (method, path) in &ops {
        let concrete = path
            .replace("{account_sid}", ACCOUNT)
            .replace("{extension_id}", "multi_provider");
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
    for (method, path) in &ops {
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
    /// `body` conforms to the schema the document gives for `method path` answering `status`
    /// in `content_type`.
    fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &str) {
        let media = content_type.split(';').next().unwrap().trim();
        let responses = &self.doc["paths"][path][method.to_lowercase()]["responses"];
        let response = &responses[status.to_string()];
        assert!(
            response.is_object(),
            "{method} {path}: status {status} is not documented ({body})"
        );
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
    }
}

/// One request of the tour: method, path template, concrete path, credentials, body.
struct Call<'a> {
    method: &'a str,
    template: &'a str,
    path: String,
    auth: Auth,
    body: Option<(&'a str, String)>,
}

#[derive(Clone, Copy)]
enum Auth {
    None,
    Admin,
    Engine,
}

impl Call<'_> {
    async fn send(&self, app: &TestApp, contract: &Contract, accept_json: bool) -> (u16, String) {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = app.client.request(method, app.url(&self.path));
        request = match self.auth {
            Auth::None => request,
            Auth::Admin => app.admin(request),
            Auth::Engine => request.bearer_auth(ENGINE_TOKEN),
        };
        if accept_json {
            request = request.header("accept", "application/json");
        }
        if let Some((ct, body)) = &self.body {
            request = request.header("content-type", *ct).body(body.clone());
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = r.text().await.unwrap();
        contract.check(self.method, self.template, status, &ct, &body);
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
    let voice_config = form(&[
        ("ExtensionName", "multi_provider"),
        ("AccountSid", ACCOUNT),
        ("ConfigurationData", VOICE),
    ]);
    let sms_config = form(&[
        ("ExtensionName", "multi_provider"),
        (
            "ConfigurationData",
            r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#,
        ),
    ]);
    let bad_config = form(&[
        ("ExtensionName", "multi_provider"),
        ("Enabled", "maybe"),
        (
            "ConfigurationData",
            r#"{"outbound-voice": [{"proxy": [{"uri": "a b"}]}]}"#,
        ),
    ]);
    let big = "x".repeat(300 * 1024);

    for prefix in ["/2012-04-24", "/restcomm/2012-04-24"] {
        for (c, accounts) in [
            ("ExtensionsConfiguration.json", "Accounts.json"),
            ("ExtensionsConfiguration", "Accounts"),
        ] {
            let base = format!("{prefix}/{c}");
            let one = format!("{base}/{{extension_id}}");
            let list = format!("{one}/{accounts}");
            let id = format!("{base}/multi_provider");
            let calls = vec![
                (
                    200,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Admin,
                        body: Some((FORM, voice_config.clone())),
                    },
                ),
                (
                    200,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Admin,
                        body: Some((FORM, sms_config.clone())),
                    },
                ),
                (
                    400,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Admin,
                        body: Some((FORM, bad_config.clone())),
                    },
                ),
                (
                    401,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::None,
                        body: Some((FORM, sms_config.clone())),
                    },
                ),
                (
                    403,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Engine,
                        body: Some((FORM, sms_config.clone())),
                    },
                ),
                (
                    413,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Admin,
                        body: Some((FORM, big.clone())),
                    },
                ),
                (
                    415,
                    Call {
                        method: "POST",
                        template: &base,
                        path: base.clone(),
                        auth: Auth::Admin,
                        body: Some(("application/json", "{}".into())),
                    },
                ),
                (
                    200,
                    Call {
                        method: "POST",
                        template: &one,
                        path: id.clone(),
                        auth: Auth::Admin,
                        body: Some((
                            FORM,
                            form(&[("AccountSid", OTHER), ("ConfigurationData", "{}")]),
                        )),
                    },
                ),
                (
                    404,
                    Call {
                        method: "POST",
                        template: &one,
                        path: format!("{base}/EX00000000000000000000000000000000"),
                        auth: Auth::Admin,
                        body: Some((FORM, String::new())),
                    },
                ),
                (
                    200,
                    Call {
                        method: "GET",
                        template: &one,
                        path: format!("{id}?AccountSid={ACCOUNT}"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    200,
                    Call {
                        method: "GET",
                        template: &one,
                        path: id.clone(),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    400,
                    Call {
                        method: "GET",
                        template: &one,
                        path: format!("{id}?AccountSid=AC1"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    404,
                    Call {
                        method: "GET",
                        template: &one,
                        path: format!("{id}?AccountSid=AC00000000000000000000000000000000"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    200,
                    Call {
                        method: "GET",
                        template: &list,
                        path: format!("{id}/{accounts}?Page=0&PageSize=1"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    400,
                    Call {
                        method: "GET",
                        template: &list,
                        path: format!("{id}/{accounts}?PageSize=0"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    400,
                    Call {
                        method: "DELETE",
                        template: &one,
                        path: id.clone(),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    204,
                    Call {
                        method: "DELETE",
                        template: &one,
                        path: format!("{id}?AccountSid={OTHER}"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
                (
                    404,
                    Call {
                        method: "DELETE",
                        template: &one,
                        path: format!("{id}?AccountSid=AC00000000000000000000000000000000"),
                        auth: Auth::Admin,
                        body: None,
                    },
                ),
            ];
            for (want, call) in &calls {
                // XML routes answer XML, and JSON when asked: both are documented.
                let forms: &[bool] = if c.ends_with(".json") {
                    &[false]
                } else {
                    &[false, true]
                };
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
                                    ("AccountSid", OTHER),
                                    ("ConfigurationData", "{}"),
                                ],
                            )
                            .await;
                        assert_eq!(r.status(), 200);
                    }
                }
            }
            // OTHER has no configuration of its own for the lookups below.
            let r = app.delete(&format!("{id}?AccountSid={OTHER}")).await;
            assert_eq!(r.status(), 204);
        }
    }

    let voice = "/v1/accounts/{account_sid}/voice-route";
    let sms = "/v1/accounts/{account_sid}/sms-route";
    let v = |q: &str| format!("/v1/accounts/{ACCOUNT}/voice-route{q}");
    let lookups = vec![
        (
            200,
            Call {
                method: "GET",
                template: voice,
                path: v("?to=sip:bob@uri1.com&header=To:%3Csip:bob@uri1.com%3E"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: voice,
                path: v("?to=+15551234"),
                auth: Auth::Admin,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: voice,
                path: format!("/v1/accounts/{OTHER}/voice-route?to=+1"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            400,
            Call {
                method: "GET",
                template: voice,
                path: v("?to=client:alice"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            400,
            Call {
                method: "GET",
                template: voice,
                path: v("?to=+1&header=To"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            400,
            Call {
                method: "GET",
                template: voice,
                path: "/v1/accounts/AC1/voice-route?to=+1".into(),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            401,
            Call {
                method: "GET",
                template: voice,
                path: v("?to=+1"),
                auth: Auth::None,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "POST",
                template: voice,
                path: v(""),
                auth: Auth::Engine,
                body: Some((
                    "text/plain",
                    json!({"to": "sip:bob@uri2.com", "headers": {"To": "<sip:bob@uri2.com>"}})
                        .to_string(),
                )),
            },
        ),
        (
            400,
            Call {
                method: "POST",
                template: voice,
                path: v(""),
                auth: Auth::Engine,
                body: Some(("application/json", "[1]".into())),
            },
        ),
        (
            400,
            Call {
                method: "POST",
                template: voice,
                path: v(""),
                auth: Auth::Engine,
                body: Some((FORM, "to=+1".into())),
            },
        ),
        (
            401,
            Call {
                method: "POST",
                template: voice,
                path: v(""),
                auth: Auth::None,
                body: Some(("application/json", "{}".into())),
            },
        ),
        (
            413,
            Call {
                method: "POST",
                template: voice,
                path: v(""),
                auth: Auth::Engine,
                body: Some(("application/json", big.clone())),
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: sms,
                path: format!("/v1/accounts/{ACCOUNT}/sms-route"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: sms,
                path: format!("/v1/accounts/{OTHER}/sms-route"),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            400,
            Call {
                method: "GET",
                template: sms,
                path: "/v1/accounts/nonsense/sms-route".into(),
                auth: Auth::Engine,
                body: None,
            },
        ),
        (
            401,
            Call {
                method: "GET",
                template: sms,
                path: format!("/v1/accounts/{ACCOUNT}/sms-route"),
                auth: Auth::None,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: "/health/live",
                path: "/health/live".into(),
                auth: Auth::None,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: "/health/ready",
                path: "/health/ready".into(),
                auth: Auth::None,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: "/metrics",
                path: "/metrics".into(),
                auth: Auth::None,
                body: None,
            },
        ),
        (
            200,
            Call {
                method: "GET",
                template: "/openapi.json",
                path: "/openapi.json".into(),
                auth: Auth::None,
                body: None,
            },
        ),
    ];
    for (want, call) in &lookups {
        let (status, body) = call.send(&app, &contract, false).await;
        assert_eq!(status, *want, "{} {}: {body}", call.method, call.path);
        seen.insert((call.method.to_owned(), call.template.to_owned(), status));
    }
    // The global `sms` answer for OTHER, a `none` answer and a null route were all checked.
    assert!(seen.len() > 60, "{}", seen.len());
    app.stop().await;
}
