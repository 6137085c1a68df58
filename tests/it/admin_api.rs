//! The admin API of docs/api.md over real HTTP, each test on SQLite and on PostgreSQL.

use multiprovider::routing::Source;
use multiprovider::sid::AccountSid;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{
    A_NONE, A1, A2, A3, ADMIN_SID, ADMIN_TOKEN, BODY_LIMIT, ENGINE_TOKEN, FORM, J, RJ, RX,
    SECRET_KEY_HEX, SMS, SMS2, UNKNOWN_EXTENSION, VOICE_EXAMPLE, VOICE_EXAMPLE_PATH, X,
};
use crate::common::wire::{
    assert_error, basic, encode, error_parameters, form, json_of, text_of, xml_text,
};
use crate::common::{on_every_db, on_postgres};

const EXT: (&str, &str) = ("ExtensionName", "multi_provider");
const DATA: (&str, &str) = ("ConfigurationData", SMS);

/// Creates the global configuration and returns the extension Sid.
async fn create_global(app: &TestApp, config: &str) -> String {
    app.configure(None, config).await["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// POST of form `pairs` to `path`: the status and the JSON answer.
async fn post(app: &TestApp, path: &str, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    json_of(app.post_form(path, pairs).await).await
}

/// GET of `path` as the admin: the status and the JSON answer.
async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    json_of(app.get(path).await).await
}

fn source(app: &TestApp, account: &str) -> Source {
    app.state()
        .configs
        .cache()
        .resolve(&AccountSid::parse(account).unwrap())
        .source
}

// ---------------------------------------------------------------- create, read, representation

/// The collection POST of the global configuration (SMS, `Enabled=true`): status,
/// `Content-Type`, and the answer as sent.
async fn create_global_raw(app: &TestApp) -> (StatusCode, String, String) {
    let pairs = [EXT, ("Enabled", "true"), DATA];
    text_of(app.post_form(J, &pairs).await).await
}

on_every_db!(
    create_answers_200_with_the_representation_of_the_spec,
    |app, db| {
        let (status, content_type, raw) = create_global_raw(&app).await;
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
        assert_eq!(global["uri"], format!("{J}/{sid}"));
    }
);

on_every_db!(dates_are_rfc_2822_in_utc, |app, db| {
    let (_, _, raw) = create_global_raw(&app).await;
    let global: Value = serde_json::from_str(&raw).unwrap();
    for key in ["date_created", "date_updated"] {
        let date = global[key].as_str().unwrap();
        let parsed = chrono::DateTime::parse_from_rfc2822(date)
            .unwrap_or_else(|e| panic!("{key} {date}: {e}"));
        assert!(date.ends_with(" +0000"), "{date}");
        assert_eq!(parsed.offset().local_minus_utc(), 0);
    }
});

on_every_db!(keys_come_in_the_order_of_the_spec, |app, db| {
    // Restcomm's keys first.
    let (_, _, raw) = create_global_raw(&app).await;
    let keys = [
        "sid",
        "extension",
        "configuration",
        "configuration type",
        "date_created",
        "date_updated",
        "account_sid",
        "enabled",
        "api_version",
        "uri",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\""))
                .unwrap_or_else(|| panic!("{k} in {raw}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order: {raw}"
    );
});

/// Creates the global configuration (SMS) and A1's (SMS2, its Sid posted in upper case):
/// both answers.
async fn global_and_a1(app: &TestApp) -> (Value, Value) {
    let global = app.configure(None, SMS).await;
    let account = app.configure(Some(&A1.to_uppercase()), SMS2).await;
    (global, account)
}

on_every_db!(
    an_account_goes_under_the_same_extension_in_lower_case,
    |app, db| {
        let (global, account) = global_and_a1(&app).await;
        let sid = global["sid"].as_str().unwrap();
        assert_eq!(account["sid"], sid);
        assert_eq!(account["account_sid"], A1);
        assert_eq!(account["configuration"], SMS2);
        assert_eq!(account["enabled"], true);
        assert_eq!(account["uri"], format!("{J}/{sid}?AccountSid={A1}"));
    }
);

on_every_db!(read_back_by_sid_and_by_name, |app, db| {
    let (global, account) = global_and_a1(&app).await;
    let sid = global["sid"].as_str().unwrap();
    // The global one: without AccountSid.
    assert_eq!(
        get(&app, &format!("{J}/{sid}")).await,
        (StatusCode::OK, global.clone())
    );
    let (status, body) = get(&app, &format!("{J}/multi_provider")).await;
    assert_eq!(
        (status, &body["configuration"]),
        (StatusCode::OK, &json!(SMS))
    );
    assert_eq!(
        get(&app, &format!("{J}/{sid}?AccountSid={A1}")).await,
        (StatusCode::OK, account.clone())
    );
    let by_name = format!("{J}/multi_provider?AccountSid={}", A1.to_uppercase());
    assert_eq!(get(&app, &by_name).await, (StatusCode::OK, account));
    // The Sid in the path is matched whatever its case.
    let (status, _) = get(&app, &format!("{J}/{}", sid.to_uppercase())).await;
    assert_eq!(status, 200);
});

on_every_db!(
    every_write_reaches_the_routing_cache_in_its_request,
    |app, db| {
        global_and_a1(&app).await;
        assert_eq!(source(&app, A1), Source::Account);
        assert_eq!(source(&app, A2), Source::Global);
    }
);

on_every_db!(account_create_first_makes_an_empty_global, |app, db| {
    let account = app.configure(Some(A1), SMS).await;
    let sid = account["sid"].as_str().unwrap();
    let (status, global) = get(&app, &format!("{J}/{sid}")).await;
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
    let created = app.configure(Some(A1), config).await;
    assert_eq!(created["configuration"], config);
    let (_, body) = get(&app, &format!("{J}/multi_provider?AccountSid={A1}")).await;
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

// ---------------------------------------------------------------- Enabled

/// POST of `Enabled=value` (and nothing else) for A1: the status and the answer.
async fn set_enabled(app: &TestApp, value: &str) -> (StatusCode, Value) {
    json_of(app.write(Some(A1), None, Some(value)).await).await
}

on_every_db!(enabled_false_alone_keeps_the_configuration, |app, db| {
    app.configure(Some(A1), SMS).await;
    // Enabled=False (any case) on the existing one, ConfigurationData absent: unchanged data.
    let (status, body) = set_enabled(&app, "False").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["enabled"].clone(), body["configuration"].clone()),
        (json!(false), json!(SMS))
    );
    assert_eq!(source(&app, A1), Source::None);
});

on_every_db!(configuration_alone_keeps_enabled, |app, db| {
    app.configure(Some(A1), SMS).await;
    set_enabled(&app, "False").await;
    // Only data: Enabled stays false.
    let (status, body) = json_of(app.write(Some(A1), Some(SMS2), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["enabled"].clone(), body["configuration"].clone()),
        (json!(false), json!(SMS2))
    );
});

on_every_db!(
    enabled_true_in_any_case_switches_an_account_on,
    |app, db| {
        app.configure(Some(A1), SMS).await;
        set_enabled(&app, "False").await;
        for value in ["TRUE", "tRuE"] {
            let (status, body) = set_enabled(&app, value).await;
            assert_eq!((status, &body["enabled"]), (StatusCode::OK, &json!(true)));
        }
        assert_eq!(source(&app, A1), Source::Account);
    }
);

on_every_db!(
    the_global_switch_turns_routing_off_for_every_account,
    |app, db| {
        app.configure(Some(A1), SMS).await;
        assert_eq!(source(&app, A1), Source::Account);
        let (status, _) = post(
            &app,
            &format!("{J}/multi_provider"),
            &[("Enabled", "false")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(source(&app, A1), Source::None);
    }
);

// ---------------------------------------------------------------- POST …/{ExtensionId}

on_every_db!(
    update_route_creates_an_account_without_extension_name,
    |app, db| {
        let sid = create_global(&app, "{}").await;
        let (status, body) = post(
            &app,
            &format!("{J}/{sid}"),
            &[("AccountSid", A1), ("ConfigurationData", SMS)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["account_sid"], A1);
    }
);

on_every_db!(
    update_route_extension_name_must_be_the_stored_one,
    |app, db| {
        let sid = create_global(&app, "{}").await;
        let path = format!("{J}/{sid}");
        app.configure(Some(A1), SMS).await;
        let (status, body) = post(
            &app,
            &path,
            &[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", A1),
                ("Enabled", "false"),
            ],
        )
        .await;
        assert_eq!((status, &body["enabled"]), (StatusCode::OK, &json!(false)));
        let (status, body) = post(
            &app,
            &path,
            &[("ExtensionName", "other"), ("AccountSid", A1)],
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(error_parameters(&body), ["ExtensionName"]);
    }
);

on_every_db!(
    update_route_needs_configuration_data_to_create,
    |app, db| {
        let sid = create_global(&app, "{}").await;
        let (status, body) = post(
            &app,
            &format!("{J}/{sid}"),
            &[("AccountSid", A2), ("Enabled", "true")],
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(error_parameters(&body), ["ConfigurationData"]);
    }
);

on_every_db!(
    update_route_account_sid_in_query_and_body_must_agree,
    |app, db| {
        let sid = create_global(&app, "{}").await;
        // AccountSid in the query string is accepted; if also in the body it must agree.
        let with_query = format!("{J}/{sid}?AccountSid={A2}");
        let (status, body) = post(&app, &with_query, &[("ConfigurationData", SMS2)]).await;
        assert_eq!((status, &body["account_sid"]), (StatusCode::OK, &json!(A2)));
        let (status, body) = post(&app, &with_query, &[("AccountSid", A3)]).await;
        assert_eq!(status, 400);
        assert_eq!(error_parameters(&body), ["AccountSid"]);
    }
);

on_every_db!(
    update_route_without_account_sid_is_the_global_one,
    |app, db| {
        create_global(&app, "{}").await;
        let (status, body) = post(
            &app,
            &format!("{J}/multi_provider"),
            &[("ConfigurationData", SMS)],
        )
        .await;
        assert_eq!(
            (status, &body["account_sid"], &body["configuration"]),
            (StatusCode::OK, &Value::Null, &json!(SMS))
        );
    }
);

on_every_db!(update_route_by_name_creates_the_extension, |app, db| {
    let (status, body) = post(
        &app,
        &format!("{J}/multi_provider"),
        &[("ConfigurationData", SMS)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account_sid"], Value::Null);
    // ... but not by an unknown Sid.
    let (status, body) = post(
        &app,
        &format!("{J}/{UNKNOWN_EXTENSION}"),
        &[("ConfigurationData", SMS)],
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
});

// ---------------------------------------------------------------- 400: parameters

/// The collection POST of `pairs` is a 400 naming exactly `parameter`, in the error format, and
/// nothing was written.
async fn assert_refused(app: &TestApp, pairs: &[(&str, &str)], parameter: &str) {
    let (status, body) = post(app, J, pairs).await;
    assert_eq!(status, 400, "{pairs:?}: {body}");
    assert_error(&body, 400);
    assert_eq!(error_parameters(&body), [parameter], "{pairs:?}: {body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let (status, _) = get(app, &format!("{J}/multi_provider")).await;
    assert_eq!(status, 404, "{pairs:?} wrote something");
}

on_every_db!(extension_name_is_required_and_exact, |app, db| {
    assert_refused(&app, &[DATA], "ExtensionName").await;
    for name in ["multiprovider", "Multi_Provider"] {
        assert_refused(&app, &[("ExtensionName", name), DATA], "ExtensionName").await;
    }
});

on_every_db!(enabled_is_true_or_false, |app, db| {
    for value in ["yes", "", "1"] {
        assert_refused(&app, &[EXT, ("Enabled", value), DATA], "Enabled").await;
    }
});

on_every_db!(account_sid_is_an_account_sid, |app, db| {
    for value in [
        "AC123",
        "XX0123456789abcdef0123456789abcdef",
        "AC0123456789abcdef0123456789abcdeg",
    ] {
        assert_refused(&app, &[EXT, ("AccountSid", value), DATA], "AccountSid").await;
    }
});

on_every_db!(configuration_data_is_required_to_create, |app, db| {
    assert_refused(&app, &[EXT], "ConfigurationData").await;
    assert_refused(&app, &[EXT, ("AccountSid", A1)], "ConfigurationData").await;
});

on_every_db!(unknown_or_repeated_parameters_are_refused, |app, db| {
    assert_refused(&app, &[EXT, ("Enable", "false"), DATA], "Enable").await;
    let enabled = ("Enabled", "true");
    assert_refused(&app, &[EXT, enabled, enabled, DATA], "Enabled").await;
    assert_refused(&app, &[EXT, DATA, DATA], "ConfigurationData").await;
    assert_refused(&app, &[EXT, EXT, DATA], "ExtensionName").await;
});

on_every_db!(every_problem_is_reported_in_one_answer, |app, db| {
    let (status, body) = post(
        &app,
        J,
        &[
            ("Enabled", "maybe"),
            ("AccountSid", "nope"),
            ("ConfigurationData", "{\"x\": 1}"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error_parameters(&body),
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

// ---------------------------------------------------------------- 400: ConfigurationData

/// `config` for `account` (`None`: the global configuration) is refused with a 400 (the
/// answer), and nothing was stored.
async fn refused_configuration(app: &TestApp, account: Option<&str>, config: &str) -> Value {
    let (status, body) = json_of(app.write(account, Some(config), None).await).await;
    assert_eq!(status, 400, "{body}");
    assert_nothing_stored(app, account).await;
    body
}

async fn assert_nothing_stored(app: &TestApp, account: Option<&str>) {
    let path = match account {
        Some(account) => format!("{J}/multi_provider?AccountSid={account}"),
        None => format!("{J}/multi_provider"),
    };
    let (status, _) = get(app, &path).await;
    assert_eq!(status, 404, "a refused configuration was stored");
}

on_every_db!(the_documented_value7_typo_has_two_pointers, |app, db| {
    // The documentation's voice example as its curl sends it (the `value7` typo included).
    let documented = r#"{"outbound-voice": [  {"proxy": [ {"uri":"192.168.0.1;uriprop1=uri_prop_value1;uriprop2=uri_prop_value2", "username":"someuser1.com", "password":"somepassword1.com", "match":"uri.com"}, {"uri":"192.168.0.1", "username":"someuser1.com", "password":"somepassword1.com", "match":"uri[12]\\.com", "headers": [
   {"headerName":"Request-URI", "key":"newkey1", "value":"newvalue1"},    {"headerName":"Request-URI", "key":"newkey2", "value":"newvalue2"},    {"headerName":"To",          "key":"newkey3", "value":"newvalue3"},    {"headerName":"X-CustomHeader", "key":"newkey4", "value":"newvalue4"}  ]},  {"uri":"192.168.0.2", "username":"someuser2.com", "password":"somepassword2.com", "headers": [
   {"headerName":"Request-URI", "key":"newkey5", "value":"newvalue5"},    {"headerName":"Request-URI", "key":"newkey6", "value":"newvalue6"},    {"headerName":"To", "key":"newkey", "value7":"newvalue7"},    {"headerName":"X-CustomHeader", "key":"newkey8", "value":"newvalue8"}  ]}  ] } ] }"#;
    let body = refused_configuration(&app, Some(A1), documented).await;
    assert_eq!(body["message"], "ConfigurationData is invalid");
    assert_eq!(
        body["errors"],
        json!([
            {"pointer": "/outbound-voice/0/proxy/2/headers/2/value7", "message": "unknown field `value7`"},
            {"pointer": "/outbound-voice/0/proxy/2/headers/2", "message": "missing field `value`"}
        ]),
        "{body}"
    );
});

on_every_db!(
    a_backslash_dot_is_one_error_suggesting_two_backslashes,
    |app, db| {
        // `\.` in a JSON string: one error at "" that suggests `\\.`.
        let backslash =
            r#"{"outbound-voice": [{"proxy": [{"uri": "192.168.0.1", "match": "uri[12]\.com"}]}]}"#;
        let body = refused_configuration(&app, Some(A1), backslash).await;
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(errors[0]["pointer"], "");
        assert!(
            errors[0]["message"].as_str().unwrap().contains(r"\\."),
            "{body}"
        );
    }
);

on_every_db!(unparseable_json_names_the_line, |app, db| {
    let body = refused_configuration(&app, None, "{\n  \"outbound-sms\": [,]\n}").await;
    assert_eq!(body["errors"][0]["pointer"], "");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{body}"
    );
});

on_every_db!(too_large_a_configuration_points_at_the_root, |app, db| {
    // Too large (but within the body limit): pointer "".
    let big = format!(
        "{{\"outbound-sms\": [{{\"destination_network_id\": 1}}]{}}}",
        " ".repeat(70_000)
    );
    let body = refused_configuration(&app, None, &big).await;
    assert_eq!(body["errors"][0]["pointer"], "");
});

on_every_db!(an_error_never_echoes_a_password, |app, db| {
    let secret = r#"{"outbound-voice": [{"proxy": [{"uri": "192.168.0.1", "password": "hunter2-secret", "usename": "x"}]}]}"#;
    let response = app.write(None, Some(secret), None).await;
    let (status, raw) = (response.status(), response.text().await.unwrap());
    assert_eq!(status, 400);
    assert!(
        raw.contains("/outbound-voice/0/proxy/0/usename") && !raw.contains("hunter2"),
        "{raw}"
    );
    assert_nothing_stored(&app, None).await;
});

// ---------------------------------------------------------------- 400: query string

on_every_db!(query_parameter_rules, |app, db| {
    let sid = create_global(&app, SMS).await;
    app.configure(Some(A1), SMS).await;
    for query in [
        format!("AccountSid={A1}&AccountSid={A1}"),
        "AccountSid=AC12".to_owned(),
        "AccountSid=".to_owned(),
    ] {
        let (status, body) = get(&app, &format!("{J}/{sid}?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(error_parameters(&body), ["AccountSid"]);
        let (status, _) = json_of(app.delete(&format!("{J}/{sid}?{query}")).await).await;
        assert_eq!(status, 400, "{query}");
    }
    // An unknown query parameter is a 400 naming it (docs/strictness.md).
    let (status, body) = get(&app, &format!("{J}/{sid}?AccountSid={A1}&foo=bar")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_parameters(&body), ["foo"]);
});

// ---------------------------------------------------------------- 401 / 403

/// Every kind of admin route (JSON and XML, both prefixes, every method), and an unknown
/// resource under the admin prefix.
fn admin_routes(sid: &str) -> [(&'static str, String); 9] {
    [
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
    ]
}

/// `Authorization` values that are not the admin's (`None`: no header).
fn wrong_authorizations() -> Vec<Option<String>> {
    use base64::Engine as _;
    vec![
        None,
        Some(basic(ADMIN_SID, "wrong")),
        Some(basic(A_NONE, ADMIN_TOKEN)),
        Some(basic(&ADMIN_SID.replacen("AC", "ac", 1), ADMIN_TOKEN)),
        Some(basic(ADMIN_SID, &format!("{ADMIN_TOKEN}x"))),
        Some(basic(ADMIN_SID, &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1])),
        Some(basic(ADMIN_SID, "")),
        Some("Basic !!!notbase64".to_owned()),
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("nocolon")
        )),
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Token {ADMIN_TOKEN}")),
    ]
}

on_every_db!(
    wrong_credentials_are_401_before_the_body_is_read,
    |app, db| {
        let sid = create_global(&app, SMS).await;
        let wrong = wrong_authorizations();
        // A big, wrongly typed body: 401 still comes first.
        let big = vec![b'x'; 300 * 1024];
        for (method, path) in admin_routes(&sid) {
            for auth in &wrong {
                let mut head = format!(
                    "{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
                    big.len()
                );
                if let Some(auth) = auth {
                    head.push_str(&format!("\r\nAuthorization: {auth}"));
                }
                let response = app.raw(&head, &big).await;
                assert_eq!(
                    response.expect_status(),
                    401,
                    "{method} {path} {auth:?}: {response:?}"
                );
                assert_eq!(
                    response.header("www-authenticate"),
                    Some("Basic realm=\"Restcomm realm\"")
                );
                let content_type = response.header("content-type").unwrap_or_default();
                let body = response.body_text();
                if path.contains(".json") {
                    assert!(
                        content_type.starts_with("application/json"),
                        "{content_type}"
                    );
                    assert_error(&serde_json::from_str(&body).unwrap(), 401);
                } else if path.contains("ExtensionsConfiguration") {
                    assert!(
                        content_type.starts_with("application/xml"),
                        "{content_type}"
                    );
                    assert!(body.contains("<RestcommResponse><Message>"), "{body}");
                }
                assert!(!body.contains(ADMIN_TOKEN));
            }
        }
    }
);

on_every_db!(the_engine_token_on_an_admin_route_is_403, |app, db| {
    let sid = create_global(&app, SMS).await;
    for (method, path) in admin_routes(&sid) {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(ENGINE_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{method} {path}");
    }
});

on_every_db!(the_basic_scheme_is_case_insensitive, |app, db| {
    let sid = create_global(&app, SMS).await;
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
    let app = spawn_app(&db.url, AppOptions::without_engine_token()).await;
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

on_every_db!(bodies_over_256_kib_are_413_before_415_and_404, |app, db| {
    let sid = create_global(&app, SMS).await;
    let big = form(&[
        ("ExtensionName", "multi_provider"),
        ("ConfigurationData", &"x".repeat(300 * 1024)),
    ]);
    let auth = app.admin_authorization();
    for path in [
        J.to_owned(),
        format!("{J}/{sid}"),
        format!("{J}/{UNKNOWN_EXTENSION}"),
        format!("{X}/{sid}"),
    ] {
        for content_type in [FORM, "application/json"] {
            let head = format!(
                "POST {path} HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nContent-Length: {}",
                big.len()
            );
            let response = app.raw(&head, big.as_bytes()).await;
            assert_eq!(response.expect_status(), 413, "{path} {content_type}");
            let body = response.body_text();
            if path.contains(".json") {
                assert_error(&serde_json::from_str(&body).unwrap(), 413);
            } else {
                assert!(
                    response
                        .header("content-type")
                        .unwrap()
                        .starts_with("application/xml")
                );
                assert!(body.contains("<Message>"), "{body}");
            }
        }
    }
});

on_every_db!(a_chunked_body_over_the_limit_is_413, |app, db| {
    // No Content-Length: still 413 once the limit is crossed.
    let mut chunked = Vec::new();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
        chunked.extend_from_slice(&[b'a'; 8192]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {J} HTTP/1.1\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked",
        app.admin_authorization()
    );
    let response = app.raw(&head, &chunked).await;
    assert_eq!(response.expect_status(), 413, "{response:?}");
    assert_error(&serde_json::from_str(&response.body_text()).unwrap(), 413);
});

on_every_db!(a_body_of_exactly_256_kib_is_read, |app, db| {
    // Accepted as a body, and then refused as a too large ConfigurationData.
    let prefix = "ExtensionName=multi_provider&ConfigurationData=";
    let exact = format!("{prefix}{}", "x".repeat(BODY_LIMIT - prefix.len()));
    let (status, body) = json_of(app.post_raw(J, exact).await).await;
    assert_eq!(status, 400, "{body}");
});

on_every_db!(
    bodies_not_form_encoded_are_415_before_404_and_400,
    |app, db| {
        let sid = create_global(&app, SMS).await;
        for content_type in [
            "application/json",
            "multipart/form-data; boundary=x",
            "text/plain",
        ] {
            for path in [
                J.to_owned(),
                format!("{J}/{sid}"),
                format!("{J}/{UNKNOWN_EXTENSION}"),
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
    }
);

on_every_db!(a_body_without_content_type_is_not_a_form, |app, db| {
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
});

on_every_db!(
    the_form_type_with_parameters_and_an_empty_untyped_body_are_forms,
    |app, db| {
        let sid = create_global(&app, SMS).await;
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
        assert_eq!(error_parameters(&body), ["ExtensionName"]);
    }
);

// ---------------------------------------------------------------- 404, 405

on_every_db!(before_the_first_write_everything_is_404, |app, db| {
    // Never created: the global configuration and the list are unknown.
    for path in [
        format!("{J}/multi_provider"),
        format!("{J}/multi_provider/Accounts.json"),
        format!("{J}/multi_provider?AccountSid={A1}"),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&body, 404);
    }
});

on_every_db!(
    unknown_extensions_are_404_before_the_parameters_are_read,
    |app, db| {
        create_global(&app, SMS).await;
        for id in [UNKNOWN_EXTENSION, "other_extension", "multi_provider2"] {
            let (status, _) = get(&app, &format!("{J}/{id}")).await;
            assert_eq!(status, 404, "{id}");
            let (status, _) = get(&app, &format!("{J}/{id}/Accounts.json")).await;
            assert_eq!(status, 404, "{id}");
            let (status, _) = post(&app, &format!("{J}/{id}"), &[("Enabled", "maybe")]).await;
            assert_eq!(status, 404, "{id}");
            let (status, _) = json_of(app.delete(&format!("{J}/{id}")).await).await;
            assert_eq!(status, 404, "{id}");
        }
    }
);

on_every_db!(an_account_without_a_configuration_is_404, |app, db| {
    let sid = create_global(&app, SMS).await;
    let (status, body) = get(&app, &format!("{J}/{sid}?AccountSid={A1}")).await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
});

on_every_db!(unknown_routes_are_404_in_the_error_format, |app, db| {
    let (status, body) = get(&app, "/2012-04-24/Nothing.json").await;
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
});

on_every_db!(other_methods_are_405_for_the_admin_only, |app, db| {
    let sid = create_global(&app, SMS).await;
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

on_every_db!(delete_needs_an_account_sid, |app, db| {
    let sid = create_global(&app, SMS).await;
    app.configure(Some(A1), SMS2).await;
    // Without AccountSid: 400 (the global one is switched off, not deleted).
    let (status, body) = json_of(app.delete(&format!("{J}/{sid}")).await).await;
    assert_eq!(status, 400);
    assert_eq!(error_parameters(&body), ["AccountSid"]);
    let (status, _) = get(&app, &format!("{J}/{sid}")).await;
    assert_eq!(status, 200);
});

on_every_db!(
    delete_is_204_and_the_account_falls_back_to_the_global,
    |app, db| {
        let sid = create_global(&app, SMS).await;
        app.configure(Some(A1), SMS2).await;
        assert_eq!(source(&app, A1), Source::Account);
        let response = app
            .delete(&format!("{J}/{sid}?AccountSid={}", A1.to_uppercase()))
            .await;
        assert_eq!(response.status(), 204);
        assert!(response.text().await.unwrap().is_empty());
        // The lookup that follows sees the account fall back to the global configuration.
        assert_eq!(source(&app, A1), Source::Global);
        let (status, _) = get(&app, &format!("{J}/{sid}?AccountSid={A1}")).await;
        assert_eq!(status, 404);
        let (status, body) = json_of(
            app.delete(&format!("{J}/multi_provider?AccountSid={A1}"))
                .await,
        )
        .await;
        assert_eq!(status, 404);
        assert_error(&body, 404);
    }
);

on_every_db!(delete_through_the_xml_route_by_name, |app, db| {
    let sid = create_global(&app, SMS).await;
    app.configure(Some(A2), SMS).await;
    // Both prefixes, XML twin, by name.
    let response = app
        .delete(&format!("{RX}/multi_provider?AccountSid={A2}"))
        .await;
    assert_eq!(response.status(), 204);
    // The global one is still there.
    let (status, _) = get(&app, &format!("{J}/{sid}")).await;
    assert_eq!(status, 200);
});

// ---------------------------------------------------------------- list

/// The global configuration and A1, A2, A3 (SMS2): the extension Sid.
async fn three_accounts(app: &TestApp) -> String {
    let sid = create_global(app, SMS).await;
    for account in [A1, A2, A3] {
        app.configure(Some(account), SMS2).await;
    }
    sid
}

/// The list's URI as the answers spell it.
fn list_uri(sid: &str, query: &str) -> String {
    format!("{J}/{sid}/Accounts.json?{query}")
}

on_every_db!(the_first_page_links_to_the_others, |app, db| {
    let sid = three_accounts(&app).await;
    let (status, page0) = get(&app, &format!("{J}/{sid}/Accounts.json?Page=0&PageSize=2")).await;
    assert_eq!(status, 200, "{page0}");
    assert_eq!(page0["page"], 0);
    assert_eq!(page0["page_size"], 2);
    assert_eq!(page0["num_pages"], 2);
    assert_eq!(page0["total"], 3);
    assert_eq!(page0["start"], 0);
    assert_eq!(page0["end"], 1);
    assert_eq!(page0["uri"], list_uri(&sid, "Page=0&PageSize=2"));
    assert_eq!(page0["first_page_uri"], list_uri(&sid, "Page=0&PageSize=2"));
    assert_eq!(page0["previous_page_uri"], Value::Null);
    assert_eq!(page0["next_page_uri"], list_uri(&sid, "Page=1&PageSize=2"));
    assert_eq!(page0["last_page_uri"], list_uri(&sid, "Page=1&PageSize=2"));
    assert_eq!(
        page0["extension_configurations"].as_array().unwrap().len(),
        2
    );
});

on_every_db!(
    next_page_uri_is_followed_through_the_other_prefix_and_by_name,
    |app, db| {
        let sid = three_accounts(&app).await;
        let (_, page0) = get(&app, &format!("{J}/{sid}/Accounts.json?Page=0&PageSize=2")).await;
        // Follow next_page_uri literally, through the other prefix and by name.
        let next = page0["next_page_uri"]
            .as_str()
            .unwrap()
            .replace(&format!("/{sid}/"), "/multi_provider/");
        let (status, page1) = get(&app, &format!("/restcomm{next}")).await;
        assert_eq!(status, 200, "{page1}");
        assert_eq!(page1["page"], 1);
        assert_eq!(
            (page1["start"].clone(), page1["end"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(
            page1["previous_page_uri"],
            list_uri(&sid, "Page=0&PageSize=2")
        );
        assert_eq!(page1["next_page_uri"], Value::Null);
        let items0 = page0["extension_configurations"].as_array().unwrap();
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
    }
);

on_every_db!(the_list_defaults_to_page_0_of_50, |app, db| {
    let sid = three_accounts(&app).await;
    let (_, all) = get(&app, &format!("{J}/{sid}/Accounts.json")).await;
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
});

on_every_db!(a_page_past_the_end_is_empty, |app, db| {
    let sid = three_accounts(&app).await;
    let (status, past) = get(&app, &format!("{J}/{sid}/Accounts.json?Page=5&PageSize=2")).await;
    assert_eq!(status, 200);
    assert_eq!(past["extension_configurations"], json!([]));
    assert_eq!(past["next_page_uri"], Value::Null);
});

on_every_db!(bad_paging_parameters_are_400, |app, db| {
    let sid = three_accounts(&app).await;
    for query in [
        "Page=-1",
        "PageSize=0",
        "PageSize=abc",
        "Page=1.5",
        "PageSize=1001",
        "Page=1&Page=2",
        "Page=99999999999999999999",
    ] {
        let (status, body) = get(&app, &format!("{J}/{sid}/Accounts.json?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(!error_parameters(&body).is_empty());
    }
});

on_every_db!(the_xml_list_answers_json_by_accept, |app, db| {
    let sid = three_accounts(&app).await;
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
    let (status, body) = get(&app, &format!("{J}/{sid}/Accounts.json")).await;
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
    assert_eq!(body["last_page_uri"], list_uri(&sid, "Page=0&PageSize=50"));
    assert_eq!(body["extension_configurations"], json!([]));
});

// ---------------------------------------------------------------- formats and prefixes

/// A1's configuration (SMS) created through the XML collection under the Restcomm prefix:
/// the extension Sid.
async fn created_through_xml(app: &TestApp) -> String {
    let (status, _, xml) = text_of(
        app.post_form(RX, &[EXT, ("AccountSid", A1), ("ConfigurationData", SMS)])
            .await,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    xml_text(&xml, "Sid").remove(0)
}

on_every_db!(xml_create_under_the_restcomm_prefix, |app, db| {
    let (status, content_type, xml) = text_of(
        app.post_form(RX, &[EXT, ("AccountSid", A1), ("ConfigurationData", SMS)])
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
        [format!("{J}/{sid}?AccountSid={A1}")]
    );
    assert_eq!(xml_text(&xml, "DateCreated").len(), 1);
    assert_eq!(xml_text(&xml, "DateUpdated").len(), 1);
});

on_every_db!(xml_of_the_global_one_has_an_empty_account_sid, |app, db| {
    // The global one was created empty by the account's write.
    let sid = created_through_xml(&app).await;
    let (_, _, xml) = text_of(app.get(&format!("{X}/{sid}")).await).await;
    assert_eq!(xml_text(&xml, "AccountSid"), [""]);
});

on_every_db!(
    accept_json_on_the_xml_route_and_the_json_route_ignores_accept,
    |app, db| {
        let sid = created_through_xml(&app).await;
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
    }
);

on_every_db!(xml_errors_have_one_element_per_problem, |app, db| {
    let sid = created_through_xml(&app).await;
    // <Message> and one <Error parameter|pointer="..."> per problem.
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
    let (status, _, xml) = text_of(app.get(&format!("{RX}/{UNKNOWN_EXTENSION}")).await).await;
    assert_eq!(status, 404);
    assert_eq!(xml_text(&xml, "Message").len(), 1);
});

on_every_db!(xml_delete, |app, db| {
    let sid = created_through_xml(&app).await;
    assert_eq!(
        app.delete(&format!("{X}/{sid}?AccountSid={A1}"))
            .await
            .status(),
        204
    );
});

// ---------------------------------------------------------------- persistence

on_every_db!(configurations_survive_a_restart, |app, db| {
    let sid = create_global(&app, SMS).await;
    let account = app.configure(Some(A1), SMS2).await;
    let (_, global) = get(&app, &format!("{J}/{sid}")).await;
    let app = app.restart().await;
    assert_eq!(
        get(&app, &format!("{J}/{sid}?AccountSid={A1}")).await,
        (StatusCode::OK, account)
    );
    assert_eq!(
        get(&app, &format!("{J}/{sid}")).await,
        (StatusCode::OK, global)
    );
    // The new server's cache was filled from the database before serving.
    assert!(app.state().configs.cache().is_loaded());
    assert_eq!(source(&app, A1), Source::Account);
    assert_eq!(source(&app, A2), Source::Global);
    app.stop().await;
});

on_every_db!(
    with_a_secret_key_configuration_is_still_answered_as_posted,
    |db| {
        let app = spawn_app(&db.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
        let created = app.configure(Some(A1), VOICE_EXAMPLE).await;
        assert_eq!(created["configuration"], VOICE_EXAMPLE);
        let app = app.restart().await;
        let (status, body) = get(&app, &format!("{J}/multi_provider?AccountSid={A1}")).await;
        assert_eq!(
            (status, &body["configuration"]),
            (StatusCode::OK, &json!(VOICE_EXAMPLE))
        );
        assert_eq!(source(&app, A1), Source::Account);
        app.stop().await;
    }
);

// ---------------------------------------------------------------- 503

on_every_db!(with_the_database_closed_every_call_is_503, |app, db| {
    create_global(&app, SMS).await;
    // The pool closed under the server: every database call fails as unreachable.
    app.state().configs.store().close().await;
    let requests = [
        app.write(Some(A1), Some(SMS), None).await,
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
});

on_every_db!(
    with_the_database_closed_auth_and_validation_come_first,
    |app, db| {
        create_global(&app, SMS).await;
        app.state().configs.store().close().await;
        // No database needed for them.
        let (status, _) = json_of(
            app.client
                .get(app.url(&format!("{J}/multi_provider")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = json_of(app.write(None, Some("{"), None).await).await;
        assert_eq!(status, 400);
    }
);

on_postgres!(database_dropped_under_the_server_is_503, |db| {
    let app = spawn_app(&db.url, AppOptions::default()).await;
    create_global(&app, SMS).await;
    db.drop_now().await;
    let (status, body) = json_of(app.write(Some(A1), Some(SMS), None).await).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("postgres://"), "{body}");
    // The cache keeps answering what it had.
    assert_eq!(source(&app, A1), Source::Global);
});

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
            app.post_raw(RJ, body).await.text().await.unwrap()
        }
    };
    let body: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["configuration"], SMS, "{body}");
    assert_eq!(body["account_sid"], A1);
    assert_eq!(body["enabled"], true);
    let (_, read) = get(&app, &format!("{J}/multi_provider?AccountSid={A1}")).await;
    assert_eq!(read, body);
    assert_eq!(source(&app, A1), Source::Account);
});

on_every_db!(voice_example_with_data_urlencode_from_a_file, |app, db| {
    let port = app.addr.port();
    let command = format!(
        r#"curl -sS -X POST http://{ADMIN_SID}:{ADMIN_TOKEN}@127.0.0.1:{port}/2012-04-24/ExtensionsConfiguration.json -d "ExtensionName=multi_provider" -d "AccountSid={A2}" --data-urlencode "ConfigurationData@{VOICE_EXAMPLE_PATH}""#
    );
    let answer = match shell(&command).await {
        Some((code, stdout)) => {
            assert_eq!(code, 0, "{stdout}");
            stdout
        }
        None => {
            let body = format!(
                "ExtensionName=multi_provider&AccountSid={A2}&ConfigurationData={}",
                encode(VOICE_EXAMPLE)
            );
            app.post_raw(J, body).await.text().await.unwrap()
        }
    };
    let body: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(
        body["configuration"].as_str().unwrap(),
        VOICE_EXAMPLE,
        "stored exactly as the file"
    );
    assert_eq!(source(&app, A2), Source::Account);
    // The same document through reqwest's own encoding, on the update route.
    let (status, body) = post(
        &app,
        &format!("{J}/multi_provider"),
        &[("AccountSid", A3), ("ConfigurationData", VOICE_EXAMPLE)],
    )
    .await;
    assert_eq!(
        (status, body["configuration"].as_str().unwrap()),
        (StatusCode::OK, VOICE_EXAMPLE)
    );
});

// ---------------------------------------------------------------- graceful shutdown

on_every_db!(shutdown_lets_an_in_flight_request_finish, |app, db| {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = form(&[EXT, ("AccountSid", A1), ("ConfigurationData", SMS)]);
    let (first, rest) = body.split_at(body.len() / 2);
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // `Expect: 100-continue`: the server answers `100 Continue` when the handler starts
    // reading the body, so the test knows the request is in flight without guessing a delay.
    let head = format!(
        "POST {J} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
        app.admin_authorization(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_exact(&mut byte),
        )
        .await
        .expect("100 Continue within 10 s")
        .unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(first.as_bytes()).await.unwrap();
    // Stop while the request is half received.
    let addr = app.addr;
    let stopping = tokio::spawn(app.stop());
    // New connections are no longer accepted: poll until the listener is closed.
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still accepting 10 s after the stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Shutting down, and not finished: the request is still in flight.
    assert!(
        !stopping.is_finished(),
        "shutdown must wait for the in-flight request"
    );
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopping)
        .await
        .expect("shutdown ends")
        .unwrap();
    // And it was committed.
    let app = spawn_app(&db.url, AppOptions::default()).await;
    let (status, body) = get(&app, &format!("{J}/multi_provider?AccountSid={A1}")).await;
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
        async move { app.write(Some(account), Some(&config), None).await.status() }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(
        statuses.iter().all(|s| *s == 200),
        "contention is never an error: {statuses:?}"
    );
    let (_, list) = get(&app, &format!("{J}/multi_provider/Accounts.json")).await;
    assert_eq!(list["total"], 12);
    // The cache agrees with the database after the race.
    for item in list["extension_configurations"].as_array().unwrap() {
        assert_eq!(
            source(&app, item["account_sid"].as_str().unwrap()),
            Source::Account
        );
    }
    assert_eq!(app.state().configs.cache().len(), 12);
});
