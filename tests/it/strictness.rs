//! Strict parameters (docs/strictness.md): on every route, a query or form parameter the
//! route does not take is a 400 naming it, with a suggestion when a known name is close, and
//! nothing is written.

use serde_json::{Value, json};

use crate::common::app::TestApp;
use crate::common::constants::{A1, ENGINE_TOKEN, FORM, J, RJ, SMS, VOICE_EXAMPLE};
use crate::common::on_every_db;

/// Who calls a route.
#[derive(Clone, Copy, Debug)]
enum Auth {
    Admin,
    Engine,
    None,
}

/// One request of the table: method, path and query, form or JSON body.
struct Case {
    method: &'static str,
    path: String,
    body: Option<(&'static str, String)>,
    auth: Auth,
    /// The parameter the answer must name.
    unknown: &'static str,
    /// A known name the message must suggest, when close.
    suggestion: Option<&'static str>,
}

fn case(method: &'static str, path: impl Into<String>, unknown: &'static str) -> Case {
    Case {
        method,
        path: path.into(),
        body: None,
        auth: Auth::Admin,
        unknown,
        suggestion: None,
    }
}

impl Case {
    fn form(mut self, body: impl Into<String>) -> Case {
        self.body = Some((FORM, body.into()));
        self
    }
    fn json(mut self, body: Value) -> Case {
        self.body = Some(("application/json", body.to_string()));
        self
    }
    fn auth(mut self, auth: Auth) -> Case {
        self.auth = auth;
        self
    }
    fn suggests(mut self, name: &'static str) -> Case {
        self.suggestion = Some(name);
        self
    }
}

async fn send(app: &TestApp, c: &Case) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(&c.path));
    if let Some((content_type, body)) = &c.body {
        request = request
            .header("content-type", *content_type)
            .body(body.clone());
    }
    request = match c.auth {
        Auth::Admin => app.admin(request),
        Auth::Engine => request.bearer_auth(ENGINE_TOKEN),
        Auth::None => request,
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Everything stored, revisions included: equal before and after means nothing was written.
async fn stored(app: &TestApp) -> String {
    let snapshot = app.state().configs.store().load_all().await.unwrap();
    let history = app
        .state()
        .configs
        .store()
        .history(None, 0, 1000)
        .await
        .unwrap();
    format!("{snapshot:?} {}", history.total)
}

fn cases() -> Vec<Case> {
    let one = format!("{J}/multi_provider");
    let voice = format!("/v1/accounts/{A1}/voice-route");
    let sms = format!("/v1/accounts/{A1}/sms-route");
    let report = json!({"proxy": "192.168.0.2", "outcome": "success"});
    let simulation = json!({"configuration": {"outbound-sms": [{"destination_network_id": "1"}]}});
    vec![
        // The issue's case exactly: a capital D in the query of a global POST.
        case("POST", format!("{one}?AccountSID={A1}"), "AccountSID")
            .form("Enabled=false")
            .suggests("AccountSid"),
        case("POST", &one, "Enable")
            .form("Enable=false")
            .suggests("Enabled"),
        case("POST", format!("{J}?accountsid={A1}"), "accountsid")
            .form("ExtensionName=multi_provider&Enabled=false")
            .suggests("AccountSid"),
        case("POST", J, "Extensionname")
            .form("Extensionname=multi_provider&Enabled=false")
            .suggests("ExtensionName"),
        case("POST", format!("{RJ}/multi_provider?Foo=1"), "Foo").form("Enabled=false"),
        case("GET", format!("{one}?AccountSID={A1}"), "AccountSID").suggests("AccountSid"),
        case("GET", format!("{one}?Pretty=true"), "Pretty"),
        case("DELETE", format!("{one}?AccountSid={A1}&Force=1"), "Force"),
        case("DELETE", format!("{one}?AccountSId={A1}"), "AccountSId").suggests("AccountSid"),
        case("GET", format!("{one}/Accounts.json?Pagesize=5"), "Pagesize").suggests("PageSize"),
        case("GET", format!("{one}/History.json?Pages=1"), "Pages").suggests("Page"),
        case("GET", format!("{one}/History/1.json?Revision=1"), "Revision"),
        case("POST", format!("{one}/Rollback.json?Revison=1"), "Revison").form("Revision=1"),
        case("POST", format!("{one}/Rollback.json"), "Revsion")
            .form("Revision=1&Revsion=1")
            .suggests("Revision"),
        case("GET", format!("{voice}?to=%2B1&headers=X-A:1"), "headers")
            .auth(Auth::Engine)
            .suggests("header"),
        case("GET", format!("{voice}?to=%2B1&at=2026-01-01T00:00:00Z"), "at").auth(Auth::Engine),
        case("GET", format!("{voice}?To=%2B1"), "To").suggests("to"),
        case("POST", format!("{voice}?Explain=true"), "Explain")
            .json(json!({"to": "+1"}))
            .suggests("explain"),
        case("POST", format!("{voice}?to=%2B1"), "to").json(json!({"to": "+1"})),
        case("GET", format!("{sms}?explian=true"), "explian")
            .auth(Auth::Engine)
            .suggests("explain"),
        case("GET", format!("{sms}?view=engine"), "view").auth(Auth::Engine),
        case("POST", "/v1/outcomes?dry_run=1", "dry_run")
            .json(report)
            .auth(Auth::Engine),
        case("GET", "/v1/proxies?pageSize=5", "pageSize")
            .auth(Auth::Engine)
            .suggests("PageSize"),
        case("GET", "/v1/proxies?Health=down", "Health").suggests("health"),
        case("GET", "/v1/instances?page=0", "page").suggests("Page"),
        case("POST", "/v1/simulate/voice-route?to=%2B1", "to").json(
            json!({"configuration": serde_json::from_str::<Value>(VOICE_EXAMPLE).unwrap(), "to": "+1"}),
        ),
        case("POST", "/v1/simulate/sms-route?x=1", "x").json(simulation),
        case("GET", "/health/ready?verbose=1", "verbose").auth(Auth::None),
        case("GET", "/metrics?name[]=x", "name[]").auth(Auth::None),
        case("GET", "/openapi.json?format=yaml", "format").auth(Auth::None),
    ]
}

on_every_db!(
    an_unknown_parameter_is_a_400_naming_it_on_every_route,
    |app, db| {
        app.configure(None, SMS).await;
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        for c in cases() {
            let before = stored(&app).await;
            let (status, body) = send(&app, &c).await;
            let what = format!("{} {}: {body}", c.method, c.path);
            assert_eq!(status, 400, "{what}");
            let named = body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}"))
                .iter()
                .find(|e| e["parameter"] == c.unknown)
                .unwrap_or_else(|| panic!("{} not named: {what}", c.unknown))
                .clone();
            let message = named["message"].as_str().unwrap();
            assert!(message.contains("unknown parameter"), "{what}");
            if let Some(known) = c.suggestion {
                let hint = format!(
                    "`{}`: unknown parameter; did you mean `{known}`?",
                    c.unknown
                );
                assert!(message.contains(&hint), "{what}");
            }
            assert_eq!(stored(&app).await, before, "{what}: something was written");
        }
        // The global configuration was never switched off, so the account still routes.
        let (status, v) = app.sms_route(A1).await;
        assert_eq!(status, 200);
        assert_eq!(v["source"], "account", "{v}");
        let global = app.get(&format!("{J}/multi_provider")).await;
        let global: Value = global.json().await.unwrap();
        assert_eq!(global["enabled"], true, "{global}");
        app.stop().await;
    }
);

on_every_db!(
    known_parameters_still_pass_and_problems_come_together,
    |app, db| {
        app.configure(None, SMS).await;
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        // The same routes with their known names only.
        for path in [
            format!("{J}/multi_provider?AccountSid={A1}"),
            format!("{J}/multi_provider/Accounts.json?Page=0&PageSize=5"),
            format!("{J}/multi_provider/History.json?AccountSid={A1}&Page=0&PageSize=5"),
            "/v1/proxies?Page=0&PageSize=5&health=up".to_owned(),
            format!(
                "/v1/accounts/{A1}/voice-route?to=sip%3Abob%40uri1.com&header=To:x&explain=false"
            ),
            format!("/v1/accounts/{A1}/voice-route?to=sip%3Abob%40uri1.com&view=engine"),
            format!("/v1/accounts/{A1}/sms-route?explain=true"),
        ] {
            let r = app.get(&path).await;
            assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        }
        // An unknown name and a bad value of a known one: both in one answer.
        let (status, v) = app
            .engine_get(&format!(
                "/v1/accounts/{A1}/voice-route?header=nocolon&Explain=1"
            ))
            .await;
        assert_eq!(status, 400, "{v}");
        let named: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["parameter"].as_str())
            .collect();
        for name in ["Explain", "to", "header"] {
            assert!(named.contains(&name), "{name} not named: {v}");
        }
        // A name far from every known one: no suggestion, the route's names instead.
        let (status, v) = app
            .engine_get(&format!("/v1/accounts/{A1}/voice-route?to=%2B1&zzzzzz=1"))
            .await;
        assert_eq!(status, 400);
        let message = v["errors"][0]["message"].as_str().unwrap();
        assert!(!message.contains("did you mean"), "{v}");
        assert!(message.contains("`header`"), "{v}");
        app.stop().await;
    }
);

/// docs/routing.md's "Problem order" decision, with its own example: the root's unknown member,
/// then the proxy's `uri`, then the missing members of its header, whatever order the
/// document writes them in.
#[tokio::test]
async fn problems_come_in_the_order_the_docs_state() {
    let db = crate::common::db::fresh_sqlite();
    let app =
        crate::common::app::spawn_app(&db.url, crate::common::app::AppOptions::default()).await;
    let config =
        r#"{"outbound-voice": [{"proxy": [{"headers": [{"key": "a"}], "uri": "x y"}]}], "zzz": 1}"#;
    let readme = crate::common::repo::read("docs/routing.md");
    assert!(
        readme.contains("reports `/zzz`, then\n  `/outbound-voice/0/proxy/0/uri`"),
        "docs/routing.md's example"
    );
    let r = app.write(Some(A1), Some(config), None).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        [
            "/zzz",
            "/outbound-voice/0/proxy/0/uri",
            "/outbound-voice/0/proxy/0/headers/0",
            "/outbound-voice/0/proxy/0/headers/0"
        ]
    );
    app.stop().await;
}
