//! The admin API of SPEC §3 over real HTTP, each test on SQLite and on PostgreSQL.

use crate::common::app::{
    ADMIN_SID, ADMIN_TOKEN, AppOptions, ENGINE_TOKEN, FORM, TestApp, basic, encode, form, spawn_app,
};
use crate::common::db::TestDb;
use crate::common::{on_every_db, on_postgres};
use multiprovider::routing::Source;
use multiprovider::sid::AccountSid;
use reqwest::StatusCode;
use serde_json::{Value, json};

const J: &str = "/2012-04-24/ExtensionsConfiguration.json";
const RJ: &str = "/restcomm/2012-04-24/ExtensionsConfiguration.json";
const X: &str = "/2012-04-24/ExtensionsConfiguration";
const RX: &str = "/restcomm/2012-04-24/ExtensionsConfiguration";

const A1: &str = "AC0123456789abcdef0123456789abcdef";
const A2: &str = "AC11111111111111111111111111111111";
const A3: &str = "AC22222222222222222222222222222222";
const SMS: &str = r#"{"outbound-sms": [{"destination_network_id": "1000"}]}"#;
const SMS2: &str = r#"{"outbound-sms": [{"destination_network_id": "2000"}]}"#;

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

async fn text_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("body"))
}

/// Creates the global configuration and returns the extension Sid.
async fn create_global(app: &TestApp, config: &str) -> String {
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", config),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["sid"].as_str().unwrap().to_owned()
}

async fn create_account(app: &TestApp, account: &str, config: &str) -> Value {
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", account),
                ("ConfigurationData", config),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_error(body: &Value, status: u16) {
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["errors"].is_array(), "{body}");
}

fn parameter_errors(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["parameter"].as_str().map(str::to_owned))
        .collect()
}

fn source(app: &TestApp, account: &str) -> Source {
    app.state()
        .cache
        .resolve(&AccountSid::parse(account).unwrap())
        .source
}

// ---------------------------------------------------------------- create, read, representation

on_every_db!(create_global_then_account_and_read_back, |app, db| {
    let response = app
        .post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("Enabled", "true"),
                ("ConfigurationData", SMS),
            ],
        )
        .await;
    let (status, content_type, raw) = text_of(response).await;
    assert_eq!(status, 200, "create answers 200, not 201: {raw}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let global: Value = serde_json::from_str(&raw).unwrap();
    let sid = global["sid"].as_str().unwrap().to_owned();
    assert_eq!(sid.len(), 34);
    assert!(
        sid.starts_with("EX")
            && sid[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(global["extension"], "multi_provider");
    assert_eq!(global["configuration"], SMS);
    assert_eq!(global["configuration type"], "JSON");
    assert_eq!(global["account_sid"], Value::Null);
    assert_eq!(global["enabled"], true);
    assert_eq!(global["api_version"], "2012-04-24");
    assert_eq!(
        global["uri"],
        format!("/2012-04-24/ExtensionsConfiguration.json/{sid}")
    );
    for key in ["date_created", "date_updated"] {
        let date = global[key].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc2822(date)
            .unwrap_or_else(|e| panic!("{key} {date}: {e}"));
        assert!(date.ends_with(" +0000"), "{date}");
        assert_eq!(parsed.offset().local_minus_utc(), 0);
    }
    // Key order of SPEC §3: Restcomm's keys first.
    let keys = [
        "\"sid\"",
        "\"extension\"",
        "\"configuration\"",
        "\"configuration type\"",
        "\"date_created\"",
        "\"date_updated\"",
        "\"account_sid\"",
        "\"enabled\"",
        "\"api_version\"",
        "\"uri\"",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} in {raw}")))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order: {raw}"
    );

    // The account, given in upper case, is answered in lower case, under the same extension.
    let account = create_account(&app, &A1.to_uppercase(), SMS2).await;
    assert_eq!(account["sid"], sid.as_str());
    assert_eq!(account["account_sid"], A1);
    assert_eq!(account["configuration"], SMS2);
    assert_eq!(account["enabled"], true);
    assert_eq!(
        account["uri"],
        format!("/2012-04-24/ExtensionsConfiguration.json/{sid}?AccountSid={A1}")
    );

    // Read back: by Sid and by name; the global one without AccountSid.
    let (status, body) = json_of(app.get(&format!("{J}/{sid}")).await).await;
    assert_eq!((status, body.clone()), (StatusCode::OK, global.clone()));
    let (status, body) = json_of(app.get(&format!("{J}/multi_provider")).await).await;
    assert_eq!(
        (status, &body["configuration"]),
        (StatusCode::OK, &json!(SMS))
    );
    let (status, body) = json_of(app.get(&format!("{J}/{sid}?AccountSid={A1}")).await).await;
    assert_eq!((status, body.clone()), (StatusCode::OK, account.clone()));
    let (status, body) = json_of(
        app.get(&format!(
            "{J}/multi_provider?AccountSid={}",
            A1.to_uppercase()
        ))
        .await,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, account));
    // The Sid in the path is matched whatever its case.
    let (status, _) = json_of(app.get(&format!("{J}/{}", sid.to_uppercase())).await).await;
    assert_eq!(status, 200);

    // Every write reached the routing cache in its own request.
    assert_eq!(source(&app, A1), Source::Account);
    assert_eq!(source(&app, A2), Source::Global);
});

on_every_db!(account_create_first_makes_an_empty_global, |app, db| {
    let account = create_account(&app, A1, SMS).await;
    let sid = account["sid"].as_str().unwrap();
    let (status, global) = json_of(app.get(&format!("{J}/{sid}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(global["configuration"], "{}");
    assert_eq!(global["enabled"], true);
    assert_eq!(global["account_sid"], Value::Null);
    // An empty global routes nobody.
    assert_eq!(source(&app, A2), Source::None);
    assert_eq!(source(&app, A1), Source::Account);
});

on_every_db!(configuration_is_returned_byte_exact, |app, db| {
    let config = "  {\r\n\t\"outbound-sms\" :[ {\"destination_network_id\":7}\n ] ,\n \"outbound-voice\": [{\"proxy\": [{\"uri\": \"example.com\", \"username\": \"\u{e9}l\u{e8}ve <&>\", \"password\": \"p\\u00e9\"}]}]}\n\n";
    let created = create_account(&app, A1, config).await;
    assert_eq!(created["configuration"], config);
    let (_, body) = json_of(
        app.get(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(body["configuration"].as_str().unwrap(), config);
    // The XML answer carries the same bytes once parsed.
    let (status, content_type, xml) = text_of(
        app.get(&format!("{X}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    assert_eq!(xml_text(&xml, "Configuration"), vec![config.to_owned()]);
});

on_every_db!(
    enabled_absent_true_for_new_unchanged_for_existing,
    |app, db| {
        create_account(&app, A1, SMS).await;
        // Enabled=False (any case) on the existing one, ConfigurationData absent: unchanged data.
        let (status, body) = json_of(
            app.post_form(
                J,
                &[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", A1),
                    ("Enabled", "False"),
                ],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["enabled"].clone(), body["configuration"].clone()),
            (json!(false), json!(SMS))
        );
        assert_eq!(source(&app, A1), Source::None);
        // Only data: Enabled stays false.
        let (status, body) = json_of(
            app.post_form(
                J,
                &[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", A1),
                    ("ConfigurationData", SMS2),
                ],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["enabled"].clone(), body["configuration"].clone()),
            (json!(false), json!(SMS2))
        );
        for value in ["TRUE", "tRuE"] {
            let (status, body) = json_of(
                app.post_form(
                    J,
                    &[
                        ("ExtensionName", "multi_provider"),
                        ("AccountSid", A1),
                        ("Enabled", value),
                    ],
                )
                .await,
            )
            .await;
            assert_eq!((status, &body["enabled"]), (StatusCode::OK, &json!(true)));
        }
        assert_eq!(source(&app, A1), Source::Account);
        // Global switched off: routing off for every account.
        let (status, _) = json_of(
            app.post_form(&format!("{J}/multi_provider"), &[("Enabled", "false")])
                .await,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(source(&app, A1), Source::None);
    }
);

on_every_db!(update_route_follows_the_same_rules, |app, db| {
    let sid = create_global(&app, "{}").await;
    let path = format!("{J}/{sid}");
    // ExtensionName optional; AccountSid given: that account's configuration (created here).
    let (status, body) = json_of(
        app.post_form(&path, &[("AccountSid", A1), ("ConfigurationData", SMS)])
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_sid"], A1);
    // ExtensionName given: must equal the stored name.
    let (status, body) = json_of(
        app.post_form(
            &path,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("Enabled", "false"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((status, &body["enabled"]), (StatusCode::OK, &json!(false)));
    let (status, body) = json_of(
        app.post_form(&path, &[("ExtensionName", "other"), ("AccountSid", A1)])
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(parameter_errors(&body), ["ExtensionName"]);
    // Creating through the update route still needs ConfigurationData.
    let (status, body) = json_of(
        app.post_form(&path, &[("AccountSid", A2), ("Enabled", "true")])
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(parameter_errors(&body), ["ConfigurationData"]);
    // AccountSid in the query string is accepted; if also in the body it must agree.
    let (status, body) = json_of(
        app.post_form(
            &format!("{path}?AccountSid={A2}"),
            &[("ConfigurationData", SMS2)],
        )
        .await,
    )
    .await;
    assert_eq!((status, &body["account_sid"]), (StatusCode::OK, &json!(A2)));
    let (status, body) = json_of(
        app.post_form(&format!("{path}?AccountSid={A2}"), &[("AccountSid", A3)])
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(parameter_errors(&body), ["AccountSid"]);
    // Without AccountSid: the global one, by name too.
    let (status, body) = json_of(
        app.post_form(
            &format!("{J}/multi_provider"),
            &[("ConfigurationData", SMS)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, &body["account_sid"], &body["configuration"]),
        (StatusCode::OK, &Value::Null, &json!(SMS))
    );
});

on_every_db!(update_route_by_name_creates_the_extension, |app, db| {
    let (status, body) = json_of(
        app.post_form(
            &format!("{J}/multi_provider"),
            &[("ConfigurationData", SMS)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_sid"], Value::Null);
    // ... but not by an unknown Sid.
    let (status, body) = json_of(
        app.post_form(
            &format!("{J}/EX00000000000000000000000000000000"),
            &[("ConfigurationData", SMS)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
});

// ---------------------------------------------------------------- 400: parameters

on_every_db!(collection_post_parameter_rules, |app, db| {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("ConfigurationData", SMS)], "ExtensionName"),
        (
            vec![
                ("ExtensionName", "multiprovider"),
                ("ConfigurationData", SMS),
            ],
            "ExtensionName",
        ),
        (
            vec![
                ("ExtensionName", "Multi_Provider"),
                ("ConfigurationData", SMS),
            ],
            "ExtensionName",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("Enabled", "yes"),
                ("ConfigurationData", SMS),
            ],
            "Enabled",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("Enabled", ""),
                ("ConfigurationData", SMS),
            ],
            "Enabled",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("Enabled", "1"),
                ("ConfigurationData", SMS),
            ],
            "Enabled",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("AccountSid", "AC123"),
                ("ConfigurationData", SMS),
            ],
            "AccountSid",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("AccountSid", "XX0123456789abcdef0123456789abcdef"),
                ("ConfigurationData", SMS),
            ],
            "AccountSid",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("AccountSid", "AC0123456789abcdef0123456789abcdeg"),
                ("ConfigurationData", SMS),
            ],
            "AccountSid",
        ),
        (
            vec![("ExtensionName", "multi_provider")],
            "ConfigurationData",
        ),
        (
            vec![("ExtensionName", "multi_provider"), ("AccountSid", A1)],
            "ConfigurationData",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("Enable", "false"),
                ("ConfigurationData", SMS),
            ],
            "Enable",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("Enabled", "true"),
                ("Enabled", "true"),
                ("ConfigurationData", SMS),
            ],
            "Enabled",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", SMS),
                ("ConfigurationData", SMS),
            ],
            "ConfigurationData",
        ),
        (
            vec![
                ("ExtensionName", "multi_provider"),
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", SMS),
            ],
            "ExtensionName",
        ),
    ];
    for (pairs, parameter) in cases {
        let (status, body) = json_of(app.post_form(J, &pairs).await).await;
        assert_eq!(status, 400, "{pairs:?}: {body}");
        assert_error(&body, 400);
        assert_eq!(parameter_errors(&body), [parameter], "{pairs:?}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Nothing was written by any of them.
    let (status, _) = json_of(app.get(&format!("{J}/multi_provider")).await).await;
    assert_eq!(status, 404);
    // Every problem in one answer.
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("Enabled", "maybe"),
                ("AccountSid", "nope"),
                ("ConfigurationData", "{\"x\": 1}"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        parameter_errors(&body),
        ["ExtensionName", "Enabled", "AccountSid"],
        "{body}"
    );
    assert_eq!(
        body["message"],
        "invalid parameters: ExtensionName, Enabled, AccountSid, ConfigurationData"
    );
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["pointer"] == "/x"),
        "{body}"
    );
});

on_every_db!(configuration_data_problems_have_pointers, |app, db| {
    // The documentation's voice example as its curl sends it (the `value7` typo included).
    let documented = r#"{"outbound-voice": [  {"proxy": [ {"uri":"192.168.0.1;uriprop1=uri_prop_value1;uriprop2=uri_prop_value2", "username":"someuser1.com", "password":"somepassword1.com", "match":"uri.com"}, {"uri":"192.168.0.1", "username":"someuser1.com", "password":"somepassword1.com", "match":"uri[12]\\.com", "headers": [
   {"headerName":"Request-URI", "key":"newkey1", "value":"newvalue1"},    {"headerName":"Request-URI", "key":"newkey2", "value":"newvalue2"},    {"headerName":"To",          "key":"newkey3", "value":"newvalue3"},    {"headerName":"X-CustomHeader", "key":"newkey4", "value":"newvalue4"}  ]},  {"uri":"192.168.0.2", "username":"someuser2.com", "password":"somepassword2.com", "headers": [
   {"headerName":"Request-URI", "key":"newkey5", "value":"newvalue5"},    {"headerName":"Request-URI", "key":"newkey6", "value":"newvalue6"},    {"headerName":"To", "key":"newkey", "value7":"newvalue7"},    {"headerName":"X-CustomHeader", "key":"newkey8", "value":"newvalue8"}  ]}  ] } ] }"#;
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("ConfigurationData", documented),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "ConfigurationData is invalid");
    assert_eq!(
        body["errors"],
        json!([
            {"pointer": "/outbound-voice/0/proxy/2/headers/2/value7", "message": "unknown field `value7`"},
            {"pointer": "/outbound-voice/0/proxy/2/headers/2", "message": "missing field `value`"}
        ]),
        "{body}"
    );
    // `\.` in a JSON string: one error at "" that suggests `\\.`.
    let backslash =
        r#"{"outbound-voice": [{"proxy": [{"uri": "192.168.0.1", "match": "uri[12]\.com"}]}]}"#;
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("ConfigurationData", backslash),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["pointer"], "");
    assert!(
        errors[0]["message"].as_str().unwrap().contains(r"\\."),
        "{body}"
    );
    // Unparseable JSON: line and column.
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", "{\n  \"outbound-sms\": [,]\n}"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["pointer"], "");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );
    // Too large (but within the body limit): pointer "".
    let big = format!(
        "{{\"outbound-sms\": [{{\"destination_network_id\": 1}}]{}}}",
        " ".repeat(70_000)
    );
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", &big),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["pointer"], "");
    // The error never echoes a password.
    let secret = r#"{"outbound-voice": [{"proxy": [{"uri": "192.168.0.1", "password": "hunter2-secret", "usename": "x"}]}]}"#;
    let (status, raw) = {
        let response = app
            .post_form(
                J,
                &[
                    ("ExtensionName", "multi_provider"),
                    ("ConfigurationData", secret),
                ],
            )
            .await;
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, 400);
    assert!(
        raw.contains("/outbound-voice/0/proxy/0/usename") && !raw.contains("hunter2"),
        "{raw}"
    );
    // Nothing was stored by any of these.
    let (status, _) = json_of(
        app.get(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
});

on_every_db!(query_parameter_rules, |app, db| {
    let sid = create_global(&app, SMS).await;
    create_account(&app, A1, SMS).await;
    for query in [
        format!("AccountSid={A1}&AccountSid={A1}"),
        "AccountSid=AC12".to_owned(),
        "AccountSid=".to_owned(),
    ] {
        let (status, body) = json_of(app.get(&format!("{J}/{sid}?{query}")).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(parameter_errors(&body), ["AccountSid"]);
        let (status, _) = json_of(app.delete(&format!("{J}/{sid}?{query}")).await).await;
        assert_eq!(status, 400, "{query}");
    }
    // Unknown query parameters change nothing and are ignored.
    let (status, body) =
        json_of(app.get(&format!("{J}/{sid}?AccountSid={A1}&foo=bar")).await).await;
    assert_eq!((status, &body["account_sid"]), (StatusCode::OK, &json!(A1)));
});

// ---------------------------------------------------------------- 401 / 403

on_every_db!(authentication_is_required_everywhere, |app, db| {
    let sid = create_global(&app, SMS).await;
    let paths = [
        ("POST", J.to_owned()),
        ("POST", RX.to_owned()),
        ("GET", format!("{J}/{sid}")),
        ("GET", format!("{X}/{sid}")),
        ("POST", format!("{RJ}/{sid}")),
        ("DELETE", format!("{J}/{sid}?AccountSid={A1}")),
        ("GET", format!("{J}/{sid}/Accounts.json")),
        ("GET", format!("{RX}/{sid}/Accounts")),
        // Unknown resources under the admin prefixes are not revealed either.
        ("GET", "/2012-04-24/Accounts.json".to_owned()),
    ];
    let wrong: Vec<Option<String>> = vec![
        None,
        Some(basic(ADMIN_SID, "wrong")),
        Some(basic("ACffffffffffffffffffffffffffffffff", ADMIN_TOKEN)),
        Some(basic(&ADMIN_SID.replacen("AC", "ac", 1), ADMIN_TOKEN)),
        Some(basic(ADMIN_SID, &format!("{ADMIN_TOKEN}x"))),
        Some(basic(ADMIN_SID, &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(basic(ADMIN_SID, "")),
        Some("Basic !!!notbase64".to_owned()),
        Some(format!("Basic {}", {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode("nocolon")
        })),
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Token {ADMIN_TOKEN}")),
    ];
    for (method, path) in &paths {
        for auth in &wrong {
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
                300 * 1024
            );
            if let Some(auth) = auth {
                head.push_str(&format!("\r\nAuthorization: {auth}"));
            }
            // A big, wrongly typed body: 401 still comes first.
            let response = app.raw(&head, vec![b'x'; 300 * 1024]).await;
            assert_eq!(
                response.status, 401,
                "{method} {path} {auth:?}: {response:?}"
            );
            assert_eq!(
                response.header("www-authenticate"),
                Some("Basic realm=\"Restcomm realm\"")
            );
            let content_type = response.header("content-type").unwrap_or_default();
            if path.contains(".json") {
                assert!(
                    content_type.starts_with("application/json"),
                    "{content_type}"
                );
                assert_error(&serde_json::from_str(&response.body).unwrap(), 401);
            } else if path.contains("ExtensionsConfiguration") {
                assert!(
                    content_type.starts_with("application/xml"),
                    "{content_type}"
                );
                assert!(
                    response.body.contains("<RestcommResponse><Message>"),
                    "{}",
                    response.body
                );
            }
            assert!(!response.body.contains(ADMIN_TOKEN));
        }
        // The engine token is not the admin's: 403.
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
    }
    // The right credentials, scheme in any case.
    let response = app
        .client
        .get(app.url(&format!("{J}/{sid}")))
        .header(
            "authorization",
            basic(ADMIN_SID, ADMIN_TOKEN).replacen("Basic", "basic", 1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
});

on_every_db!(without_engine_token_a_bearer_is_just_wrong, |db| {
    let app = spawn_app(
        &db.url,
        AppOptions {
            engine_token: None,
            secret_key: None,
        },
    )
    .await;
    let response = app
        .client
        .get(app.url(&format!("{J}/multi_provider")))
        .bearer_auth(ENGINE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;
});

// ---------------------------------------------------------------- 413, 415, order

on_every_db!(body_limit_and_content_type, |app, db| {
    let sid = create_global(&app, SMS).await;
    // Over 256 KiB: 413, before 415 and 404.
    let big = form(&[
        ("ExtensionName", "multi_provider"),
        ("ConfigurationData", &"x".repeat(300 * 1024)),
    ]);
    let auth = app.admin_authorization();
    for path in [
        J.to_owned(),
        format!("{J}/{sid}"),
        format!("{J}/EXffffffffffffffffffffffffffffffff"),
        format!("{X}/{sid}"),
    ] {
        for content_type in [FORM, "application/json"] {
            let head = format!(
                "POST {path} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nContent-Length: {}",
                big.len()
            );
            let response = app.raw(&head, big.clone().into_bytes()).await;
            assert_eq!(response.status, 413, "{path} {content_type}");
            if path.contains(".json") {
                assert_error(&serde_json::from_str(&response.body).unwrap(), 413);
            } else {
                assert!(
                    response
                        .header("content-type")
                        .unwrap()
                        .starts_with("application/xml")
                );
                assert!(response.body.contains("<Message>"), "{}", response.body);
            }
        }
    }
    // Chunked (no Content-Length): still 413 once the limit is crossed.
    let mut chunked = Vec::new();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
        chunked.extend_from_slice(&[b'a'; 8192]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {J} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked"
    );
    let response = app.raw(&head, chunked).await;
    assert_eq!(response.status, 413, "{response:?}");
    assert_error(&serde_json::from_str(&response.body).unwrap(), 413);
    // Exactly 256 KiB is accepted as a body (and then refused as a too large ConfigurationData).
    let prefix = "ExtensionName=multi_provider&ConfigurationData=";
    let exact = format!("{prefix}{}", "x".repeat(256 * 1024 - prefix.len()));
    let (status, body) = json_of(app.post_raw(J, exact).await).await;
    assert_eq!(status, 400, "{body}");

    // Not form-encoded: 415, before 404 and 400.
    for content_type in [
        "application/json",
        "multipart/form-data; boundary=x",
        "text/plain",
    ] {
        for path in [
            J.to_owned(),
            format!("{J}/{sid}"),
            format!("{J}/EXffffffffffffffffffffffffffffffff"),
        ] {
            let response = app
                .admin(
                    app.client
                        .post(app.url(&path))
                        .header("content-type", content_type)
                        .body(r#"{"ExtensionName":"multi_provider"}"#),
                )
                .send()
                .await
                .unwrap();
            let (status, body) = json_of(response).await;
            assert_eq!(status, 415, "{content_type} {path}: {body}");
            assert_error(&body, 415);
        }
    }
    // A body without a Content-Type is not taken as a form either.
    let response = app
        .admin(
            app.client
                .post(app.url(J))
                .body("ExtensionName=multi_provider"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    // The form type with parameters is fine; an empty body without a type is an empty form.
    let response = app
        .admin(
            app.client
                .post(app.url(&format!("{J}/{sid}")))
                .header(
                    "content-type",
                    "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
                )
                .body("Enabled=true"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, body) =
        json_of(app.admin(app.client.post(app.url(J))).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(parameter_errors(&body), ["ExtensionName"]);
});

// ---------------------------------------------------------------- 404

on_every_db!(unknown_extension_or_account_is_404, |app, db| {
    // Never created: the global configuration and the list are unknown.
    for path in [
        format!("{J}/multi_provider"),
        format!("{J}/multi_provider/Accounts.json"),
        format!("{J}/multi_provider?AccountSid={A1}"),
    ] {
        let (status, body) = json_of(app.get(&path).await).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&body, 404);
    }
    let sid = create_global(&app, SMS).await;
    let unknown = [
        "EXffffffffffffffffffffffffffffffff",
        "other_extension",
        "multi_provider2",
    ];
    for id in unknown {
        let (status, _) = json_of(app.get(&format!("{J}/{id}")).await).await;
        assert_eq!(status, 404, "{id}");
        let (status, _) = json_of(app.get(&format!("{J}/{id}/Accounts.json")).await).await;
        assert_eq!(status, 404, "{id}");
        // 404 comes before the parameter checks.
        let (status, _) = json_of(
            app.post_form(&format!("{J}/{id}"), &[("Enabled", "maybe")])
                .await,
        )
        .await;
        assert_eq!(status, 404, "{id}");
        let (status, _) = json_of(app.delete(&format!("{J}/{id}")).await).await;
        assert_eq!(status, 404, "{id}");
    }
    let (status, body) = json_of(app.get(&format!("{J}/{sid}?AccountSid={A1}")).await).await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
    // Unknown routes and methods answer in the same error format.
    let (status, body) = json_of(app.get("/2012-04-24/Nothing.json").await).await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
    let (status, body) = json_of(
        app.client
            .get(app.url("/nothing/here"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
    let response = app
        .admin(app.client.put(app.url(&format!("{J}/{sid}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD,POST,DELETE");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 405);
    assert_error(&body, 405);
    // ... but only to the super-admin.
    let (status, _) = json_of(
        app.client
            .put(app.url(&format!("{J}/{sid}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, content_type, body) = text_of(
        app.admin(app.client.patch(app.url(&format!("{X}/{sid}"))))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert!(
        content_type.starts_with("application/xml") && body.contains("<Message>"),
        "{body}"
    );
});

// ---------------------------------------------------------------- DELETE

on_every_db!(delete_an_account_configuration, |app, db| {
    let sid = create_global(&app, SMS).await;
    create_account(&app, A1, SMS2).await;
    assert_eq!(source(&app, A1), Source::Account);
    // Without AccountSid: 400 (the global one is switched off, not deleted).
    let (status, body) = json_of(app.delete(&format!("{J}/{sid}")).await).await;
    assert_eq!(status, 400);
    assert_eq!(parameter_errors(&body), ["AccountSid"]);
    let response = app
        .delete(&format!("{J}/{sid}?AccountSid={}", A1.to_uppercase()))
        .await;
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    // The lookup that follows sees the account fall back to the global configuration.
    assert_eq!(source(&app, A1), Source::Global);
    let (status, _) = json_of(app.get(&format!("{J}/{sid}?AccountSid={A1}")).await).await;
    assert_eq!(status, 404);
    let (status, body) = json_of(
        app.delete(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
    // Both prefixes, XML twin, by name.
    create_account(&app, A2, SMS).await;
    let response = app
        .delete(&format!("{RX}/multi_provider?AccountSid={A2}"))
        .await;
    assert_eq!(response.status(), 204);
    // The global one is still there.
    let (status, _) = json_of(app.get(&format!("{J}/{sid}")).await).await;
    assert_eq!(status, 200);
});

// ---------------------------------------------------------------- list

on_every_db!(account_list_pages, |app, db| {
    let sid = create_global(&app, SMS).await;
    for account in [A1, A2, A3] {
        create_account(&app, account, SMS2).await;
    }
    let base = format!("/2012-04-24/ExtensionsConfiguration.json/{sid}/Accounts.json");
    let (status, page0) = json_of(
        app.get(&format!("{J}/{sid}/Accounts.json?Page=0&PageSize=2"))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{page0}");
    assert_eq!(page0["page"], 0);
    assert_eq!(page0["page_size"], 2);
    assert_eq!(page0["num_pages"], 2);
    assert_eq!(page0["total"], 3);
    assert_eq!(page0["start"], 0);
    assert_eq!(page0["end"], 1);
    assert_eq!(page0["uri"], format!("{base}?Page=0&PageSize=2"));
    assert_eq!(page0["first_page_uri"], format!("{base}?Page=0&PageSize=2"));
    assert_eq!(page0["previous_page_uri"], Value::Null);
    assert_eq!(page0["next_page_uri"], format!("{base}?Page=1&PageSize=2"));
    assert_eq!(page0["last_page_uri"], format!("{base}?Page=1&PageSize=2"));
    let items0 = page0["extension_configurations"].as_array().unwrap();
    assert_eq!(items0.len(), 2);

    // Follow next_page_uri literally, through the other prefix and by name.
    let next = page0["next_page_uri"]
        .as_str()
        .unwrap()
        .replace(&format!("/{sid}/"), "/multi_provider/");
    let (status, page1) = json_of(app.get(&format!("/restcomm{next}")).await).await;
    assert_eq!(status, 200, "{page1}");
    assert_eq!(page1["page"], 1);
    assert_eq!(
        (page1["start"].clone(), page1["end"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(
        page1["previous_page_uri"],
        format!("{base}?Page=0&PageSize=2")
    );
    assert_eq!(page1["next_page_uri"], Value::Null);
    let items1 = page1["extension_configurations"].as_array().unwrap();
    assert_eq!(items1.len(), 1);
    let mut accounts: Vec<&str> = items0
        .iter()
        .chain(items1)
        .map(|i| i["account_sid"].as_str().unwrap())
        .collect();
    accounts.sort();
    assert_eq!(accounts, [A1, A2, A3]);
    assert!(
        items0
            .iter()
            .chain(items1)
            .all(|i| i["sid"] == sid.as_str() && i["configuration"] == SMS2)
    );

    // Defaults: Page 0, PageSize 50.
    let (_, all) = json_of(app.get(&format!("{J}/{sid}/Accounts.json")).await).await;
    assert_eq!(
        (
            all["page"].clone(),
            all["page_size"].clone(),
            all["num_pages"].clone()
        ),
        (json!(0), json!(50), json!(1))
    );
    assert_eq!(all["extension_configurations"].as_array().unwrap().len(), 3);
    assert_eq!(
        (
            all["next_page_uri"].clone(),
            all["previous_page_uri"].clone()
        ),
        (Value::Null, Value::Null)
    );
    // Past the end: an empty page.
    let (status, past) = json_of(
        app.get(&format!("{J}/{sid}/Accounts.json?Page=5&PageSize=2"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(past["extension_configurations"], json!([]));
    assert_eq!(past["next_page_uri"], Value::Null);
    // Bad paging parameters.
    for query in [
        "Page=-1",
        "PageSize=0",
        "PageSize=abc",
        "Page=1.5",
        "PageSize=1001",
        "Page=1&Page=2",
        "Page=99999999999999999999",
    ] {
        let (status, body) =
            json_of(app.get(&format!("{J}/{sid}/Accounts.json?{query}")).await).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(!parameter_errors(&body).is_empty());
    }
    // JSON by Accept on the XML route, XML otherwise.
    let (status, body) = json_of(
        app.get_accept(
            &format!("{X}/{sid}/Accounts?PageSize=2"),
            "application/json",
        )
        .await,
    )
    .await;
    assert_eq!((status, &body["total"]), (StatusCode::OK, &json!(3)));
    let (status, content_type, xml) =
        text_of(app.get(&format!("{X}/{sid}/Accounts?PageSize=2")).await).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/xml"));
    assert!(xml.contains("<RestcommResponse><ExtensionConfigurations page=\"0\" numpages=\"2\" pagesize=\"2\" total=\"3\""), "{xml}");
    assert_eq!(xml_text(&xml, "AccountSid").len(), 2);
});

on_every_db!(empty_account_list, |app, db| {
    let sid = create_global(&app, SMS).await;
    let (status, body) = json_of(app.get(&format!("{J}/{sid}/Accounts.json")).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["total"].clone(),
            body["num_pages"].clone(),
            body["start"].clone(),
            body["end"].clone()
        ),
        (json!(0), json!(0), json!(0), json!(0))
    );
    assert_eq!(
        body["last_page_uri"],
        format!("/2012-04-24/ExtensionsConfiguration.json/{sid}/Accounts.json?Page=0&PageSize=50")
    );
    assert_eq!(body["extension_configurations"], json!([]));
});

// ---------------------------------------------------------------- formats and prefixes

on_every_db!(xml_without_json_and_json_by_accept, |app, db| {
    // Create through the XML twin of the collection, under the Restcomm prefix.
    let (status, content_type, xml) = text_of(
        app.post_form(
            RX,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("ConfigurationData", SMS),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    assert!(
        xml.contains("<RestcommResponse><ExtensionConfiguration><Sid>EX"),
        "{xml}"
    );
    let sid = xml_text(&xml, "Sid").remove(0);
    assert_eq!(xml_text(&xml, "Extension"), ["multi_provider"]);
    assert_eq!(xml_text(&xml, "Configuration"), [SMS]);
    assert_eq!(xml_text(&xml, "ConfigurationType"), ["JSON"]);
    assert_eq!(xml_text(&xml, "AccountSid"), [A1]);
    assert_eq!(xml_text(&xml, "Enabled"), ["true"]);
    assert_eq!(xml_text(&xml, "ApiVersion"), ["2012-04-24"]);
    assert_eq!(
        xml_text(&xml, "Uri"),
        [format!(
            "/2012-04-24/ExtensionsConfiguration.json/{sid}?AccountSid={A1}"
        )]
    );
    assert_eq!(xml_text(&xml, "DateCreated").len(), 1);
    assert_eq!(xml_text(&xml, "DateUpdated").len(), 1);

    // The global one (created empty) has an empty AccountSid.
    let (_, _, xml) = text_of(app.get(&format!("{X}/{sid}")).await).await;
    assert_eq!(xml_text(&xml, "AccountSid"), [""]);
    // Accept: application/json on the XML route gives JSON; the .json route ignores Accept.
    let (status, body) = json_of(
        app.get_accept(&format!("{X}/{sid}?AccountSid={A1}"), "application/json")
            .await,
    )
    .await;
    assert_eq!((status, &body["account_sid"]), (StatusCode::OK, &json!(A1)));
    let (status, body) = json_of(
        app.get_accept(&format!("{RJ}/{sid}?AccountSid={A1}"), "application/xml")
            .await,
    )
    .await;
    assert_eq!((status, &body["account_sid"]), (StatusCode::OK, &json!(A1)));
    // XML errors: <Message> and one <Error parameter|pointer="..."> per problem.
    let (status, content_type, xml) = text_of(
        app.post_form(
            &format!("{X}/{sid}"),
            &[
                ("AccountSid", A1),
                ("Enabled", "nope"),
                ("ConfigurationData", "{\"outbound-sms\": [], \"x\": 1}"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(content_type.starts_with("application/xml"));
    assert!(xml.contains("<RestcommResponse><Message>"), "{xml}");
    assert!(xml.contains("<Error parameter=\"Enabled\">"), "{xml}");
    assert!(xml.contains("<Error pointer=\"/x\">"), "{xml}");
    assert_eq!(
        xml_text(&xml, "Error").len(),
        xml.matches("<Error ").count()
    );
    let (status, _, xml) = text_of(
        app.get(&format!("{RX}/EXffffffffffffffffffffffffffffffff"))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(xml_text(&xml, "Message").len(), 1);
    // DELETE on the XML route.
    assert_eq!(
        app.delete(&format!("{X}/{sid}?AccountSid={A1}"))
            .await
            .status(),
        204
    );
});

/// Texts of every `<name>` element, checking on the way that the document is well-formed.
fn xml_text(xml: &str, name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("malformed XML ({e}): {xml}"))
        {
            Event::Start(e) if e.name().as_ref() == name.as_bytes() => {
                current = Some(String::new())
            }
            Event::Empty(e) if e.name().as_ref() == name.as_bytes() => found.push(String::new()),
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t.decode().unwrap());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(c) = current.as_mut() {
                    let entity = r.decode().unwrap();
                    let resolved = match entity.as_ref() {
                        "amp" => "&".to_owned(),
                        "lt" => "<".to_owned(),
                        "gt" => ">".to_owned(),
                        "quot" => "\"".to_owned(),
                        "apos" => "'".to_owned(),
                        other => {
                            let code = other.strip_prefix('#').expect("character reference");
                            let n = match code.strip_prefix('x') {
                                Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                                None => code.parse().unwrap(),
                            };
                            char::from_u32(n).unwrap().to_string()
                        }
                    };
                    c.push_str(&resolved);
                }
            }
            Event::End(e) if e.name().as_ref() == name.as_bytes() => {
                found.push(current.take().unwrap())
            }
            Event::Eof => break,
            _ => {}
        }
    }
    found
}

// ---------------------------------------------------------------- persistence

on_every_db!(configurations_survive_a_restart, |app, db| {
    let sid = create_global(&app, SMS).await;
    let account = create_account(&app, A1, SMS2).await;
    let (_, global) = json_of(app.get(&format!("{J}/{sid}")).await).await;
    let app = app.restart().await;
    let (status, body) = json_of(app.get(&format!("{J}/{sid}?AccountSid={A1}")).await).await;
    assert_eq!((status, body), (StatusCode::OK, account));
    let (status, body) = json_of(app.get(&format!("{J}/{sid}")).await).await;
    assert_eq!((status, body), (StatusCode::OK, global));
    // The new server's cache was filled from the database before serving.
    assert!(app.state().cache.is_loaded());
    assert_eq!(source(&app, A1), Source::Account);
    assert_eq!(source(&app, A2), Source::Global);
    app.stop().await;
});

on_every_db!(
    with_a_secret_key_configuration_is_still_answered_as_posted,
    |db| {
        let voice = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/voice.json"
        ))
        .unwrap();
        let options = AppOptions {
            secret_key: Some("00".repeat(32)),
            ..AppOptions::default()
        };
        let app = spawn_app(&db.url, options.clone()).await;
        let created = create_account(&app, A1, &voice).await;
        assert_eq!(created["configuration"], voice.as_str());
        let app = app.restart().await;
        let (status, body) = json_of(
            app.get(&format!("{J}/multi_provider?AccountSid={A1}"))
                .await,
        )
        .await;
        assert_eq!(
            (status, &body["configuration"]),
            (StatusCode::OK, &json!(voice))
        );
        assert_eq!(source(&app, A1), Source::Account);
        app.stop().await;
    }
);

// ---------------------------------------------------------------- 503

on_every_db!(database_down_is_503, |app, db| {
    create_global(&app, SMS).await;
    // The pool closed under the server: every database call fails as unreachable.
    app.state().store.close().await;
    let requests = [
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("ConfigurationData", SMS),
            ],
        )
        .await,
        app.get(&format!("{J}/multi_provider")).await,
        app.delete(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
        app.get(&format!("{J}/multi_provider/Accounts.json")).await,
    ];
    for response in requests {
        let (status, body) = json_of(response).await;
        assert_eq!(status, 503, "{body}");
        assert_error(&body, 503);
    }
    // Auth and validation still come first (no database needed for them).
    let (status, _) = json_of(
        app.client
            .get(app.url(&format!("{J}/multi_provider")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("ConfigurationData", "{"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
});

on_postgres!(database_dropped_under_the_server_is_503, |db| {
    let app = spawn_app(&db.url, AppOptions::default()).await;
    create_global(&app, SMS).await;
    drop_database(&db).await;
    let (status, body) = json_of(
        app.post_form(
            J,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("ConfigurationData", SMS),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("postgres://"), "{body}");
    // The cache keeps answering what it had.
    assert_eq!(source(&app, A1), Source::Global);
});
async fn drop_database(db: &TestDb) {
    use sqlx::Connection;
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

// ---------------------------------------------------------------- the documentation's curl

/// Runs `command` with `sh -c` (the real curl, exactly as documented); `None` without curl.
async fn shell(command: &str) -> Option<(i32, String)> {
    let has_curl = tokio::process::Command::new("curl")
        .arg("--version")
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !has_curl {
        return None;
    }
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
        .expect("sh");
    Some((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

on_every_db!(documented_sms_curl_command_verbatim, |app, db| {
    let port = app.addr.port();
    let command = format!(
        r#"curl -X POST http://{ADMIN_SID}:{ADMIN_TOKEN}@127.0.0.1:{port}/restcomm/2012-04-24/ExtensionsConfiguration.json \
-d "ExtensionName=multi_provider" -d "Enabled=true"  \
-d "AccountSid={A1}" \
-d "ConfigurationData={{\"outbound-sms\": [{{\"destination_network_id\": \"1000\"}}]}}""#
    );
    let answer = match shell(&command).await {
        Some((code, stdout)) => {
            assert_eq!(code, 0, "{stdout}");
            stdout
        }
        None => {
            // No curl here: the bytes curl sends for that command.
            let body = format!(
                "ExtensionName=multi_provider&Enabled=true&AccountSid={A1}&ConfigurationData={SMS}"
            );
            app.post_raw("/restcomm/2012-04-24/ExtensionsConfiguration.json", body)
                .await
                .text()
                .await
                .unwrap()
        }
    };
    let body: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["configuration"], SMS, "{body}");
    assert_eq!(body["account_sid"], A1);
    assert_eq!(body["enabled"], true);
    let (_, read) = json_of(
        app.get(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(read, body);
    assert_eq!(source(&app, A1), Source::Account);
});

on_every_db!(voice_example_with_data_urlencode_from_a_file, |app, db| {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/voice.json");
    let voice = std::fs::read_to_string(file).unwrap();
    let port = app.addr.port();
    let command = format!(
        r#"curl -sS -X POST http://{ADMIN_SID}:{ADMIN_TOKEN}@127.0.0.1:{port}/2012-04-24/ExtensionsConfiguration.json -d "ExtensionName=multi_provider" -d "AccountSid={A2}" --data-urlencode "ConfigurationData@{file}""#
    );
    let answer = match shell(&command).await {
        Some((code, stdout)) => {
            assert_eq!(code, 0, "{stdout}");
            stdout
        }
        None => {
            let body = format!(
                "ExtensionName=multi_provider&AccountSid={A2}&ConfigurationData={}",
                encode(&voice)
            );
            app.post_raw(J, body).await.text().await.unwrap()
        }
    };
    let body: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(
        body["configuration"].as_str().unwrap(),
        voice,
        "stored exactly as the file"
    );
    assert_eq!(source(&app, A2), Source::Account);
    // The same document through reqwest's own encoding, on the update route.
    let (status, body) = json_of(
        app.post_form(
            &format!("{J}/multi_provider"),
            &[("AccountSid", A3), ("ConfigurationData", &voice)],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["configuration"].as_str().unwrap()),
        (StatusCode::OK, voice.as_str())
    );
});

// ---------------------------------------------------------------- the binary

/// `multiprovider serve` from the environment: generated token on stderr, graceful stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_with_a_generated_token_and_stops_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bin.db").display()),
        )
        .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run the binary");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let token_line = tokio::time::timeout(std::time::Duration::from_secs(30), stderr.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let token = token_line
        .strip_prefix(
            "multiprovider: generated admin token (set MULTIPROVIDER_ADMIN_TOKEN to choose one): ",
        )
        .unwrap_or_else(|| panic!("{token_line}"))
        .to_owned();
    assert_eq!(token.len(), 32);
    let mut addr = None;
    let mut log = Vec::new();
    while addr.is_none() {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("listening line");
        assert!(!line.contains(&token), "the token is in the log: {line}");
        if line.contains("listening") {
            addr = line
                .split("addr=")
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap().to_owned());
        }
        log.push(line);
    }
    let base = format!("http://{}", addr.unwrap());
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}{J}"))
        .basic_auth("ACae6e420f425248d6a26948c17a9e2acf", Some(&token))
        .header("content-type", FORM)
        .body(form(&[
            ("ExtensionName", "multi_provider"),
            ("ConfigurationData", SMS),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(format!("{base}{J}/multi_provider?token={token}"))
        .basic_auth("ACae6e420f425248d6a26948c17a9e2acf", Some("bad"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let status = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().unwrap().to_string())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    while let Ok(Some(line)) = stdout.next_line().await {
        log.push(line);
    }
    let log = log.join("\n");
    assert!(
        !log.contains(&token),
        "the token (or a query string carrying it) is in the log:\n{log}"
    );
    assert!(
        log.contains("path=/2012-04-24/ExtensionsConfiguration.json"),
        "{log}"
    );
    // The token was printed once.
    let mut rest = Vec::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push(line);
    }
    assert!(!rest.iter().any(|l| l.contains(&token)), "{rest:?}");
}

#[tokio::test]
async fn binary_refuses_invalid_settings_with_exit_2() {
    let cases = [
        (
            "MULTIPROVIDER_LISTEN",
            "not-an-address",
            "MULTIPROVIDER_LISTEN",
        ),
        (
            "MULTIPROVIDER_SECRET_KEY",
            "short",
            "MULTIPROVIDER_SECRET_KEY",
        ),
        ("DATABASE_URL", "mysql://localhost/x", "DATABASE_URL"),
    ];
    for (name, value, mentioned) in cases {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
            .arg("serve")
            .env_clear()
            .env(name, value)
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentioned), "{stderr}");
        assert!(
            name != "MULTIPROVIDER_SECRET_KEY" || !stderr.contains(value) || value.len() < 6,
            "{stderr}"
        );
    }
    // The secret values never appear in --help.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .args(["serve", "--help"])
        .env("MULTIPROVIDER_ADMIN_TOKEN", "very-secret-admin-token")
        .env("MULTIPROVIDER_SECRET_KEY", "very-secret-key-value")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("MULTIPROVIDER_ADMIN_TOKEN") && !help.contains("very-secret"),
        "{help}"
    );
}

#[tokio::test]
async fn binary_migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}", path.display()))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(path.exists());
}

// ---------------------------------------------------------------- graceful shutdown

on_every_db!(shutdown_lets_an_in_flight_request_finish, |app, db| {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = form(&[
        ("ExtensionName", "multi_provider"),
        ("AccountSid", A1),
        ("ConfigurationData", SMS),
    ]);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {J} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.admin_authorization(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Stop while the request is half received.
    let (db_url, addr) = (app.db_url.clone(), app.addr);
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown must wait for the in-flight request"
    );
    // New connections are no longer accepted.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends")
        .unwrap();
    // And it was committed.
    let app = spawn_app(&db_url, AppOptions::default()).await;
    let (status, body) = json_of(
        app.get(&format!("{J}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(
        (status, &body["configuration"]),
        (StatusCode::OK, &json!(SMS))
    );
    app.stop().await;
});

// ---------------------------------------------------------------- concurrency

on_every_db!(concurrent_writes_all_succeed, |app, db| {
    create_global(&app, SMS).await;
    let accounts: Vec<String> = (0..24).map(|i| format!("AC{:032x}", i % 12)).collect();
    let writes = accounts.iter().enumerate().map(|(i, account)| {
        let config = format!(r#"{{"outbound-sms": [{{"destination_network_id": {i}}}]}}"#);
        let app = &app;
        async move {
            let response = app
                .post_form(
                    J,
                    &[
                        ("ExtensionName", "multi_provider"),
                        ("AccountSid", account),
                        ("ConfigurationData", &config),
                    ],
                )
                .await;
            response.status()
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "contention is never an error: {statuses:?}"
    );
    let (_, list) = json_of(app.get(&format!("{J}/multi_provider/Accounts.json")).await).await;
    assert_eq!(list["total"], 12);
    // The cache agrees with the database after the race.
    for item in list["extension_configurations"].as_array().unwrap() {
        assert_eq!(
            source(&app, item["account_sid"].as_str().unwrap()),
            Source::Account
        );
    }
    assert_eq!(app.state().cache.len(), 12);
});
