//! Input hints (docs/routing.md): the two ways `curl -d` mangles a ConfigurationData (`+` arrives as
//! a space, `&` splits the form) answer a 400 that says so and suggests `--data-urlencode`,
//! and store nothing. The bodies below are byte for byte what `curl -d` sends.

use serde_json::Value;

use crate::common::constants::{A1, RJ};
use crate::common::on_every_db;
use crate::common::process::BIN;
use crate::common::wire::assert_error;

/// What `curl -d ExtensionName=multi_provider -d AccountSid=… -d "ConfigurationData=…"` sends:
/// the arguments joined by `&`, nothing encoded.
fn curl_d(configuration: &str) -> String {
    format!("ExtensionName=multi_provider&AccountSid={A1}&ConfigurationData={configuration}")
}

on_every_db!(
    a_plus_sent_by_curl_d_is_named_and_nothing_is_stored,
    |app, db| {
        let config = r#"{"outbound-voice": [{"proxy": [{"uri": "a.example.com", "match": "\\+1555[0-9]+"}]}]}"#;
        let r = app.post_raw(RJ, curl_d(config)).await;
        assert_eq!(r.status(), 400, "{}", db.kind);
        let body: Value = r.json().await.unwrap();
        let errors = body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{body}");
        assert_eq!(errors[0]["pointer"], "/outbound-voice/0/proxy/0/match");
        let message = errors[0]["message"].as_str().unwrap();
        for part in [
            "never contains whitespace",
            "`+` sent unencoded by `curl -d`",
            "--data-urlencode",
        ] {
            assert!(message.contains(part), "{part:?} missing: {message}");
        }
        let r = app
            .get(&format!("{RJ}/multi_provider?AccountSid={A1}"))
            .await;
        assert_eq!(r.status(), 404, "nothing was stored");

        // The same configuration sent with --data-urlencode is stored and routes +1555….
        let r = app
            .post_form(
                RJ,
                &[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", A1),
                    ("ConfigurationData", config),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        let (status, answer) = app.voice_route(A1, "+15551234").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["route"]["proxy"]["host"], "a.example.com",
            "{answer}"
        );
        app.stop().await;
    }
);

on_every_db!(an_ampersand_sent_by_curl_d_is_named, |app, db| {
    // `&` inside the JSON: the form ends ConfigurationData there and goes on with
    // a parameter named `y`.
    let config = r#"{"outbound-voice": [{"proxy": [{"uri": "a.example.com;x=1&y=2"}]}]}"#;
    let r = app.post_raw(RJ, curl_d(config)).await;
    assert_eq!(r.status(), 400, "{}", db.kind);
    let body: Value = r.json().await.unwrap();
    let json_error = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["pointer"] == "")
        .unwrap_or_else(|| panic!("no JSON syntax error: {body}"));
    let message = json_error["message"].as_str().unwrap();
    for part in [
        "unknown parameters",
        "an `&` sent unencoded by `curl -d`",
        "--data-urlencode",
    ] {
        assert!(message.contains(part), "{part:?} missing: {message}");
    }
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["parameter"] == "y"),
        "{body}"
    );

    // Invalid JSON alone, or an unknown parameter beside valid JSON: no such guess.
    let r = app.post_raw(RJ, curl_d("{\"outbound-sms\": [")).await;
    let body: Value = r.json().await.unwrap();
    assert!(!body.to_string().contains("curl -d"), "{body}");
    let r = app
        .post_raw(RJ, format!("{}&Enable=false", curl_d("{}")))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_error(&body, 400);
    assert!(!body.to_string().contains("curl -d"), "{body}");
    app.stop().await;
});

#[test]
fn validate_gives_the_same_hint() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voice.json");
    std::fs::write(
        &file,
        r#"{"outbound-voice": [{"proxy": [{"uri": "a.example.com", "match": "\\ 1555[0-9] "}]}]}"#,
    )
    .unwrap();
    let o = std::process::Command::new(BIN)
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        body["errors"][0]["pointer"],
        "/outbound-voice/0/proxy/0/match"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("--data-urlencode"),
        "{body}"
    );
}
