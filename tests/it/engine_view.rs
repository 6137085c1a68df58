//! `view=engine` (the compact voice answer) and the engine token as HTTP Basic credentials of
//! the user `engine` (docs/strictness.md, docs/api.md), on GET (fast path and router) and POST.

use serde_json::{Value, json};

use crate::common::app::TestApp;
use crate::common::constants::{A_NONE, A1, ENGINE_TOKEN, J, VOICE_EXAMPLE};
use crate::common::on_every_db;
use crate::common::wire::basic;

/// `GET path` with `authorization` exactly: status, body bytes.
async fn get_with(app: &TestApp, path: &str, authorization: &str) -> (u16, Vec<u8>) {
    let r = app
        .client
        .get(app.url(path))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

fn bearer() -> String {
    format!("Bearer {ENGINE_TOKEN}")
}

on_every_db!(
    engine_view_is_compact_and_says_what_the_full_answer_says,
    |app, db| {
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        let voice = format!("/v1/accounts/{A1}/voice-route");
        for to in [
            "sip%3Abob%40uri1.com",
            "sip%3Aalice%40uri.com",
            "%2B15551234",
        ] {
            let (status, full) = get_with(&app, &format!("{voice}?to={to}"), &bearer()).await;
            assert_eq!(status, 200);
            let (status, compact) =
                get_with(&app, &format!("{voice}?to={to}&view=engine"), &bearer()).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&compact));
            assert!(
                compact.len() * 2 <= full.len(),
                "{to}: {} bytes against {}",
                compact.len(),
                full.len()
            );
            let full: Value = serde_json::from_slice(&full).unwrap();
            let compact: Value = serde_json::from_slice(&compact).unwrap();
            let routes: Vec<&Value> = full["route"]
                .as_object()
                .map(|_| &full["route"])
                .into_iter()
                .chain(full["fallbacks"].as_array().unwrap())
                .collect();
            let compact_routes = compact["routes"].as_array().unwrap();
            assert_eq!(routes.len(), compact_routes.len(), "{compact}");
            for (r, c) in routes.iter().zip(compact_routes) {
                assert_eq!(c["hop"], r["proxy"]["sip_uri"], "{c}");
                assert_eq!(c["ruri"], r["request_uri"], "{c}");
                assert_eq!(c["user"], r["username"], "{c}");
                assert_eq!(c["pass"], r["password"], "{c}");
                assert_eq!(c["headers"], r["header_list"], "{c}");
                assert_eq!(c["route"], r["routes"], "{c}");
            }
            assert_eq!(compact["revision"], full["revision"], "{compact}");
            let members: Vec<&String> = compact.as_object().unwrap().keys().collect();
            assert_eq!(members, ["routes", "revision"], "{compact}");
        }
        // The same through the router (the super-admin's credentials) and through POST.
        let (status, fast) = get_with(
            &app,
            &format!("{voice}?to=sip%3Abob%40uri1.com&view=engine"),
            &bearer(),
        )
        .await;
        assert_eq!(status, 200);
        let (status, routed) = get_with(
            &app,
            &format!("{voice}?view=engine&to=sip%3Abob%40uri1.com"),
            &app.admin_authorization(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(fast, routed);
        let r = app
            .engine(app.client.post(app.url(&format!("{voice}?view=engine"))))
            .body(json!({"to": "sip:bob@uri1.com"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().to_vec(), fast);
        // Nothing decided: no routes, no revision.
        let (status, none) = get_with(
            &app,
            &format!("/v1/accounts/{A_NONE}/voice-route?to=%2B1&view=engine"),
            &bearer(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(none).unwrap(), r#"{"routes":[]}"#);
        // Only `engine` is a view, and it does not explain.
        for query in ["to=%2B1&view=full", "to=%2B1&view=engine&explain=true"] {
            let (status, v) = app.engine_get(&format!("{voice}?{query}")).await;
            assert_eq!(status, 400, "{query}: {v}");
            assert_eq!(v["errors"][0]["parameter"], "view", "{v}");
        }
        app.stop().await;
    }
);

on_every_db!(
    the_engine_token_works_as_basic_credentials_of_the_user_engine,
    |app, db| {
        app.configure(Some(A1), VOICE_EXAMPLE).await;
        let voice = format!("/v1/accounts/{A1}/voice-route?to=sip%3Abob%40uri1.com");
        let sms = format!("/v1/accounts/{A1}/sms-route");
        let engine_basic = basic("engine", ENGINE_TOKEN);
        for path in [voice.as_str(), sms.as_str(), "/v1/proxies"] {
            let (status, with_bearer) = get_with(&app, path, &bearer()).await;
            assert_eq!(status, 200, "{path}");
            let (status, with_basic) = get_with(&app, path, &engine_basic).await;
            assert_eq!(status, 200, "{path}");
            if path != "/v1/proxies" {
                assert_eq!(with_basic, with_bearer, "{path}");
            }
        }
        // The explained answer takes the router: Basic works there too.
        let (status, _) = get_with(&app, &format!("{voice}&explain=true"), &engine_basic).await;
        assert_eq!(status, 200);
        let r = app
            .client
            .post(app.url("/v1/outcomes"))
            .header("authorization", &engine_basic)
            .body(json!({"proxy": "192.168.0.2", "outcome": "success"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        // Exactly what the bearer token grants: not the admin API, nor simulation.
        for (method, path) in [
            ("GET", format!("{J}/multi_provider")),
            ("POST", "/v1/simulate/sms-route".to_owned()),
        ] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = app
                .client
                .request(method, app.url(&path))
                .header("authorization", &engine_basic)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
        // Another user name, or the wrong token, is refused, saying which credentials work
        // and not which part was wrong.
        let mut messages = Vec::new();
        for authorization in [
            basic("Engine", ENGINE_TOKEN),
            basic("engine", "wrong"),
            basic("someone", ENGINE_TOKEN),
            "Bearer wrong".to_owned(),
            String::new(),
        ] {
            let (status, body) = get_with(&app, &voice, &authorization).await;
            assert_eq!(status, 401, "{authorization}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            messages.push(v["message"].as_str().unwrap().to_owned());
        }
        assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
        assert!(messages[0].contains("engine token"), "{}", messages[0]);
        assert!(messages[0].contains("super-admin"), "{}", messages[0]);
        // The admin API names only its own credentials.
        let r = app
            .client
            .get(app.url(&format!("{J}/multi_provider")))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        let message = v["message"].as_str().unwrap();
        assert!(message.contains("super-admin"), "{message}");
        assert!(!message.contains("engine"), "{message}");
        app.stop().await;
    }
);
