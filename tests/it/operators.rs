//! Named operators (docs/security.md): the CLI's verbs, the role matrix over every admin and
//! lookup route, what a viewer sees (no proxy password anywhere), who history says wrote,
//! the lockout, changes reaching running instances within a second, constant time for
//! unknown names, and lookups unharmed by a flood of bad logins.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use multiprovider::operators::{Role, new_operator};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A1, A2, ADMIN_SID, FORM, J, RJ, RX, SMS, X};
use crate::common::db::{TestDb, fresh_sqlite};
use crate::common::process::{BIN, outcome};
use crate::common::wire::form;
use crate::common::{on_every_db, on_postgres};

const EDITOR: &str = "ed.itor";
const EDITOR_PW: &str = "editor-passphrase-1";
const VIEWER: &str = "view_er";
const VIEWER_PW: &str = "viewer-passphrase-2";
/// Proxy passwords of the configurations below: none may reach a viewer.
const SECRETS: [&str; 3] = ["Proxy-Secret-One", "Proxy-Secret-Two", "Proxy-Secret-New"];

fn voice(second_password: &str) -> String {
    format!(
        r#"{{"outbound-voice": [{{"proxy": [
    {{"uri": "a.example.com", "username": "u1", "password": "{}", "match": "\\+1.*"}},
    {{"uri": "b.example.com", "username": "u2", "password": "{second_password}"}},
    {{"uri": "c.example.com"}}]}}],
 "outbound-sms": [{{"destination_network_id": "1000"}}]}}"#,
        SECRETS[0]
    )
}

/// Adds the operators `EDITOR` and `VIEWER` straight into the server's database.
async fn add_both(app: &TestApp) {
    let store = app.state().configs.store();
    for (name, role, pw) in [
        (EDITOR, Role::Editor, EDITOR_PW),
        (VIEWER, Role::Viewer, VIEWER_PW),
    ] {
        assert!(
            store
                .add_operator(&new_operator(name, role, pw))
                .await
                .unwrap()
        );
    }
}

fn as_op(request: RequestBuilder, name: &str, password: &str) -> RequestBuilder {
    request.basic_auth(name, Some(password))
}

async fn send(request: RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The binary with `args`, `DATABASE_URL=url`, and `stdin` as its standard input.
async fn cli(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut input = child.stdin.take().expect("stdin");
    // A command that refuses its arguments exits without reading: a broken pipe then.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    child.wait_with_output().await.expect("the binary ends")
}

/// Polls `request()` until it answers `want`: how long after `since` the first request that
/// got it was sent (panics after 10 s).
async fn effective_after(
    since: Instant,
    want: u16,
    request: impl Fn() -> RequestBuilder,
) -> Duration {
    loop {
        let sent = Instant::now();
        let (status, body) = send(request()).await;
        if status == want {
            return sent.saturating_duration_since(since);
        }
        assert!(since.elapsed() < Duration::from_secs(10), "{status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- the CLI

on_every_db!(cli_verbs_manage_operators_of_a_running_server, |app, db| {
    let url = db.url.as_str();
    // add, password on stdin
    let out = cli(
        url,
        &["operator", "add", "alice", "--role", "editor"],
        "a long passphrase\n",
    )
    .await;
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "", "nothing on stdout without --generate");
    assert!(stderr.contains("alice added as editor"), "{stderr}");
    // add --generate: the password once on stdout
    let out = cli(
        url,
        &["operator", "add", "bob", "--role", "viewer", "--generate"],
        "",
    )
    .await;
    let (code, stdout, stderr) = outcome(&out);
    assert_eq!(code, 0, "{stderr}");
    let bob_pw = stdout.trim().to_owned();
    assert_eq!(bob_pw.len(), 24, "{stdout:?}");
    assert_eq!(stdout.lines().count(), 1);

    // The running server accepts both at once.
    let read = format!("{J}/multi_provider");
    app.configure(None, SMS).await;
    let get = |name: &str, pw: &str| as_op(app.client.get(app.url(&read)), name, pw);
    assert_eq!(send(get("alice", "a long passphrase")).await.0, 200);
    assert_eq!(send(get("bob", &bob_pw)).await.0, 200);

    // list: name, role, created, last login; never a hash
    let since = Instant::now();
    let listed = loop {
        let out = cli(url, &["operator", "list"], "").await;
        let (code, stdout, stderr) = outcome(&out);
        assert_eq!(code, 0, "{stderr}");
        if !stdout.contains("never") || since.elapsed() > Duration::from_secs(10) {
            break stdout;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines: Vec<Vec<&str>> = listed.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(lines[0][..2], ["alice", "editor"], "{listed}");
    assert_eq!(lines[1][..2], ["bob", "viewer"], "{listed}");
    assert!(lines[0][2].starts_with("created 20"), "{listed}");
    assert!(lines[0][3].starts_with("last login 20"), "{listed}");
    assert!(!listed.contains("argon2") && !listed.contains("passphrase"));

    // set-role: alice can no longer write, within a second
    let write = || {
        as_op(
            app.client
                .post(app.url(J))
                .header("content-type", FORM)
                .body(form(&[
                    ("ExtensionName", "multi_provider"),
                    ("AccountSid", A1),
                    ("ConfigurationData", SMS),
                ])),
            "alice",
            "a long passphrase",
        )
    };
    assert_eq!(send(write()).await.0, 200);
    let out = cli(url, &["operator", "set-role", "alice", "viewer"], "").await;
    assert_eq!(outcome(&out).0, 0, "{}", outcome(&out).2);
    let took = effective_after(Instant::now(), 403, write).await;
    assert!(took < Duration::from_secs(1), "set-role took {took:?}");

    // passwd: the old password stops working, the new one works
    let out = cli(
        url,
        &["operator", "passwd", "alice"],
        "another passphrase\r\n",
    )
    .await;
    assert_eq!(outcome(&out).0, 0, "{}", outcome(&out).2);
    let took = effective_after(Instant::now(), 401, || get("alice", "a long passphrase")).await;
    assert!(took < Duration::from_secs(1), "passwd took {took:?}");
    assert_eq!(send(get("alice", "another passphrase")).await.0, 200);
    let out = cli(url, &["operator", "passwd", "alice", "--generate"], "").await;
    let (code, stdout, _) = outcome(&out);
    assert_eq!(code, 0);
    let generated = stdout.trim().to_owned();
    effective_after(Instant::now(), 200, || get("alice", &generated)).await;

    // remove
    let out = cli(url, &["operator", "remove", "bob"], "").await;
    assert_eq!(outcome(&out).0, 0);
    let took = effective_after(Instant::now(), 401, || get("bob", &bob_pw)).await;
    assert!(took < Duration::from_secs(1), "remove took {took:?}");

    // Refusals: 2 for what is invalid, 1 for what cannot be done.
    let cases: [(&[&str], &str, i32, &str); 9] = [
        (
            &["operator", "add", "Bad Name", "--role", "viewer"],
            "a long passphrase\n",
            2,
            "a-z 0-9",
        ),
        (
            &["operator", "add", &"x".repeat(65), "--role", "viewer"],
            "a long passphrase\n",
            2,
            "1 to 64",
        ),
        (
            &["operator", "add", "carol", "--role", "viewer"],
            "short\n",
            2,
            "at least 12",
        ),
        (
            &["operator", "add", "carol", "--role", "viewer"],
            "",
            2,
            "--generate",
        ),
        (
            &["operator", "add", "carol", "--role", "admin"],
            "a long passphrase\n",
            2,
            "viewer",
        ),
        (
            &["operator", "add", "alice", "--role", "viewer"],
            "a long passphrase\n",
            1,
            "already exists",
        ),
        (
            &["operator", "set-role", "ghost", "editor"],
            "",
            1,
            "no operator named ghost",
        ),
        (
            &["operator", "passwd", "ghost"],
            "a long passphrase\n",
            1,
            "no operator named ghost",
        ),
        (
            &["operator", "remove", "ghost"],
            "",
            1,
            "no operator named ghost",
        ),
    ];
    for (args, stdin, want, says) in cases {
        let out = cli(url, args, stdin).await;
        let (code, stdout, stderr) = outcome(&out);
        assert_eq!(code, want, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
    }
    let out = cli(url, &["operator", "list"], "").await;
    let (_, stdout, _) = outcome(&out);
    assert_eq!(stdout.lines().count(), 1, "only alice is left: {stdout}");
    app.stop().await;
});

// ---- the role matrix

/// One request of the matrix and what each role gets.
struct Case {
    method: &'static str,
    path: String,
    body: Option<(&'static str, String)>,
    viewer: u16,
    editor: u16,
}

fn case(method: &'static str, path: String, viewer: u16, editor: u16) -> Case {
    Case {
        method,
        path,
        body: None,
        viewer,
        editor,
    }
}

fn with_body(mut c: Case, content_type: &'static str, body: String) -> Case {
    c.body = Some((content_type, body));
    c
}

/// Every route, in an order where each editor's write leaves the next requests meaningful.
fn matrix() -> Vec<Case> {
    let create = form(&[
        ("ExtensionName", "multi_provider"),
        ("AccountSid", A2),
        ("ConfigurationData", SMS),
    ]);
    let update = form(&[("AccountSid", A1), ("Enabled", "true")]);
    let rollback = form(&[("AccountSid", A1), ("Revision", "1")]);
    let simulation = json!({"configuration": voice(SECRETS[1]), "to": "+15551234"}).to_string();
    let ext = "multi_provider";
    vec![
        with_body(case("POST", J.into(), 403, 200), FORM, create.clone()),
        with_body(case("POST", RX.into(), 403, 200), FORM, create),
        with_body(
            case("POST", format!("{J}/{ext}"), 403, 200),
            FORM,
            update.clone(),
        ),
        with_body(case("POST", format!("{X}/{ext}"), 403, 200), FORM, update),
        case("GET", format!("{J}/{ext}"), 200, 200),
        case("GET", format!("{RJ}/{ext}?AccountSid={A1}"), 200, 200),
        case("GET", format!("{X}/{ext}?AccountSid={A1}"), 200, 200),
        case("GET", format!("{J}/{ext}/Accounts.json"), 200, 200),
        case(
            "GET",
            format!("{RX}/{ext}/Accounts?Page=0&PageSize=5"),
            200,
            200,
        ),
        case(
            "GET",
            format!("{J}/{ext}/History.json?AccountSid={A1}"),
            200,
            200,
        ),
        case(
            "GET",
            format!("{X}/{ext}/History?AccountSid={A1}"),
            200,
            200,
        ),
        case(
            "GET",
            format!("{J}/{ext}/History/1.json?AccountSid={A1}"),
            200,
            200,
        ),
        with_body(
            case("POST", format!("{J}/{ext}/Rollback.json"), 403, 200),
            FORM,
            rollback,
        ),
        case("PUT", format!("{J}/{ext}"), 405, 405),
        case("GET", "/2012-04-24/Accounts.json".into(), 404, 404),
        case(
            "GET",
            format!("/v1/accounts/{A1}/voice-route?to=%2B15551234"),
            200,
            200,
        ),
        case(
            "GET",
            format!("/v1/accounts/{A1}/voice-route?to=%2B15551234&explain=true"),
            200,
            200,
        ),
        with_body(
            case("POST", format!("/v1/accounts/{A1}/voice-route"), 200, 200),
            "application/json",
            r#"{"to": "+15551234"}"#.into(),
        ),
        case(
            "GET",
            format!("/v1/accounts/{A1}/sms-route?explain=true"),
            200,
            200,
        ),
        with_body(
            case("POST", "/v1/simulate/voice-route".into(), 200, 200),
            "application/json",
            simulation,
        ),
        with_body(
            case("POST", "/v1/simulate/sms-route".into(), 200, 200),
            "application/json",
            json!({"configuration": SMS}).to_string(),
        ),
        case("GET", "/v1/proxies".into(), 200, 200),
        with_body(
            case("POST", "/v1/outcomes".into(), 403, 202),
            "application/json",
            r#"{"proxy": "a.example.com:5060", "outcome": "success"}"#.into(),
        ),
        case("DELETE", format!("{J}/{ext}?AccountSid={A2}"), 403, 204),
    ]
}

async fn request(app: &TestApp, c: &Case, name: &str, pw: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut r = as_op(app.client.request(method, app.url(&c.path)), name, pw);
    if let Some((content_type, body)) = &c.body {
        r = r.header("content-type", *content_type).body(body.clone());
    }
    send(r).await
}

on_every_db!(every_route_answers_each_role_as_documented, |app, db| {
    let _ = &db;
    add_both(&app).await;
    app.configure(Some(A1), &voice(SECRETS[1])).await;
    let mut table = Vec::new();
    for c in matrix() {
        // The viewer first: its refused writes must change nothing the editor then sees.
        let (viewer, body) = request(&app, &c, VIEWER, VIEWER_PW).await;
        assert_eq!(viewer, c.viewer, "viewer {} {}: {body}", c.method, c.path);
        if viewer == 403 {
            assert!(body.contains("viewer role"), "{body}");
        }
        for secret in SECRETS {
            assert!(
                !body.contains(secret),
                "viewer {} {}: {body}",
                c.method,
                c.path
            );
        }
        let (editor, body) = request(&app, &c, EDITOR, EDITOR_PW).await;
        assert_eq!(editor, c.editor, "editor {} {}: {body}", c.method, c.path);
        table.push(format!(
            "{} {} viewer {viewer} editor {editor}",
            c.method, c.path
        ));
    }
    // A wrong password is refused on every route (once each: no lockout meanwhile).
    for c in matrix().iter().take(4) {
        assert_eq!(request(&app, c, "someone", "not-the-password").await.0, 401);
    }
    eprintln!("role matrix:\n{}", table.join("\n"));
    app.stop().await;
});

// ---- what a viewer sees

on_every_db!(a_viewer_never_sees_a_proxy_password, |app, db| {
    let _ = &db;
    add_both(&app).await;
    app.configure(Some(A1), &voice(SECRETS[1])).await;
    // Revision 2 changes a password: its patch carries the old and new value.
    app.configure(Some(A1), &voice(SECRETS[2])).await;
    let ext = "multi_provider";
    let reads = [
        format!("{J}/{ext}?AccountSid={A1}"),
        format!("{X}/{ext}?AccountSid={A1}"),
        format!("{J}/{ext}/Accounts.json"),
        format!("{X}/{ext}/Accounts"),
        format!("{J}/{ext}/History.json?AccountSid={A1}"),
        format!("{X}/{ext}/History?AccountSid={A1}"),
        format!("{J}/{ext}/History/1.json?AccountSid={A1}"),
        format!("{J}/{ext}/History/2.json?AccountSid={A1}"),
        format!("{X}/{ext}/History/2?AccountSid={A1}"),
        format!("/v1/accounts/{A1}/voice-route?to=%2B15551234&explain=true"),
        format!("/v1/accounts/{A1}/voice-route?to=%2B15551234"),
        format!("/v1/accounts/{A1}/voice-route?to=%2B15551234&view=engine"),
    ];
    for path in &reads {
        let (status, body) = send(as_op(app.client.get(app.url(path)), VIEWER, VIEWER_PW)).await;
        assert_eq!(status, 200, "{path}: {body}");
        for secret in SECRETS {
            assert!(!body.contains(secret), "{path}: {body}");
        }
        assert!(body.contains("********"), "{path}: {body}");
        // The editor sees them.
        let (_, body) = send(as_op(app.client.get(app.url(path)), EDITOR, EDITOR_PW)).await;
        assert!(body.contains(SECRETS[0]), "{path}: {body}");
    }
    // The configuration keeps its shape: a viewer's copy is still the same document.
    let (_, body) = send(as_op(app.client.get(app.url(&reads[0])), VIEWER, VIEWER_PW)).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    let configuration: Value =
        serde_json::from_str(answer["configuration"].as_str().unwrap()).unwrap();
    assert_eq!(
        configuration["outbound-voice"][0]["proxy"][0]["password"],
        "********"
    );
    assert_eq!(
        configuration["outbound-voice"][0]["proxy"][0]["username"],
        "u1"
    );
    assert!(
        configuration["outbound-voice"][0]["proxy"][2]
            .get("password")
            .is_none()
    );
    // History 2's patch: the password change, masked.
    let (_, body) = send(as_op(app.client.get(app.url(&reads[7])), VIEWER, VIEWER_PW)).await;
    let revision: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        revision["changes"],
        json!([{"op": "replace", "path": "/outbound-voice/0/proxy/1/password", "value": "********"}]),
        "{body}"
    );
    // Lookup answers: route and fallbacks.
    let (_, body) = send(as_op(app.client.get(app.url(&reads[9])), VIEWER, VIEWER_PW)).await;
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["route"]["password"], "********", "{body}");
    assert_eq!(answer["fallbacks"][0]["password"], "********", "{body}");
    assert_eq!(answer["fallbacks"][1]["password"], Value::Null, "{body}");
    assert!(answer["explain"].is_object());
    // POST lookup and simulation.
    let posted = [
        (
            format!("/v1/accounts/{A1}/voice-route?explain=true"),
            json!({"to": "+15551234"}),
        ),
        (
            "/v1/simulate/voice-route".to_owned(),
            json!({"configuration": voice(SECRETS[1]), "to": "+15551234"}),
        ),
    ];
    for (path, body) in posted {
        let (status, text) = send(as_op(
            app.client.post(app.url(&path)).json(&body),
            VIEWER,
            VIEWER_PW,
        ))
        .await;
        assert_eq!(status, 200, "{text}");
        for secret in SECRETS {
            assert!(!text.contains(secret), "{path}: {text}");
        }
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["route"]["password"], "********", "{text}");
    }
    app.stop().await;
});

// ---- history names the operator

on_every_db!(history_names_who_changed_what, |app, db| {
    let _ = &db;
    add_both(&app).await;
    app.configure(Some(A1), SMS).await;
    let post = |pairs: &[(&str, &str)], path: &str| {
        as_op(
            app.client
                .post(app.url(path))
                .header("content-type", FORM)
                .body(form(pairs)),
            EDITOR,
            EDITOR_PW,
        )
    };
    let (status, body) = send(post(
        &[
            ("ExtensionName", "multi_provider"),
            ("AccountSid", A1),
            ("Enabled", "false"),
        ],
        J,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(post(
        &[("AccountSid", A1), ("Revision", "1")],
        &format!("{J}/multi_provider/Rollback.json"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(as_op(
        app.client
            .get(app.url(&format!("{J}/multi_provider/History.json?AccountSid={A1}"))),
        VIEWER,
        VIEWER_PW,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    let actors: Vec<(&str, &str)> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actors,
        [
            ("rollback", EDITOR),
            ("update", EDITOR),
            ("create", ADMIN_SID)
        ],
        "{body}"
    );
    app.stop().await;
});

// ---- lockout

on_every_db!(five_failures_lock_a_name_on_every_instance, |app, db| {
    add_both(&app).await;
    app.configure(None, SMS).await;
    let other = spawn_app(&db.url, AppOptions::default()).await;
    let read = format!("{J}/multi_provider");
    let get = |app: &TestApp, name: &str, pw: &str| as_op(app.client.get(app.url(&read)), name, pw);
    // Verified (and remembered) before the failures: locked all the same.
    assert_eq!(send(get(&app, EDITOR, EDITOR_PW)).await.0, 200);
    for i in 0..5 {
        // Spread over both instances: the count is the database's.
        let at = if i % 2 == 0 { &app } else { &other };
        assert_eq!(
            send(get(at, EDITOR, "wrong-password!")).await.0,
            401,
            "attempt {i}"
        );
    }
    for at in [&app, &other] {
        let (status, body) = send(get(at, EDITOR, EDITOR_PW)).await;
        assert_eq!(status, 429, "the right password too: {body}");
        assert!(body.contains("locked out"), "{body}");
        assert!(!body.contains(EDITOR_PW));
    }
    // Other names are not affected; an unknown name locks the same way.
    assert_eq!(send(get(&other, VIEWER, VIEWER_PW)).await.0, 200);
    for _ in 0..5 {
        assert_eq!(send(get(&app, "nobody", "wrong-password!")).await.0, 401);
    }
    assert_eq!(send(get(&other, "nobody", "wrong-password!")).await.0, 429);
    // The super-admin is never locked out.
    for _ in 0..6 {
        assert_eq!(
            send(
                app.client
                    .get(app.url(&read))
                    .basic_auth(ADMIN_SID, Some("wrong"))
            )
            .await
            .0,
            401
        );
    }
    assert_eq!(app.get(&read).await.status(), 200);
    // A new password (operator passwd) ends the lockout.
    let hash = multiprovider::operators::hash_password("brand-new-passphrase");
    assert!(
        app.state()
            .configs
            .store()
            .set_operator_password(EDITOR, &hash)
            .await
            .unwrap()
    );
    assert_eq!(
        send(get(&other, EDITOR, "brand-new-passphrase")).await.0,
        200
    );
    other.stop().await;
    app.stop().await;
});

// ---- changes reach other instances

on_postgres!(
    removal_password_and_role_changes_reach_another_instance_within_a_second,
    |db| {
        let a = spawn_app(&db.url, AppOptions::default()).await;
        let b = spawn_app(&db.url, AppOptions::default()).await;
        add_both(&a).await;
        a.configure(None, SMS).await;
        let read = format!("{J}/multi_provider");
        let write = |pw: &'static str| {
            let b = &b;
            move || {
                as_op(
                    b.client
                        .post(b.url(J))
                        .header("content-type", FORM)
                        .body(form(&[
                            ("ExtensionName", "multi_provider"),
                            ("Enabled", "true"),
                        ])),
                    EDITOR,
                    pw,
                )
            }
        };
        // Verified (and remembered) on b.
        assert_eq!(send(write(EDITOR_PW)()).await.0, 200);
        // A role change made through a.
        let store = a.state().configs.store();
        assert!(store.set_operator_role(EDITOR, "viewer").await.unwrap());
        let took = effective_after(Instant::now(), 403, write(EDITOR_PW)).await;
        assert!(took < Duration::from_secs(1), "role change: {took:?}");
        // A new password.
        let hash = multiprovider::operators::hash_password("second-passphrase");
        assert!(store.set_operator_password(EDITOR, &hash).await.unwrap());
        let took = effective_after(Instant::now(), 401, || {
            as_op(b.client.get(b.url(&read)), EDITOR, EDITOR_PW)
        })
        .await;
        assert!(took < Duration::from_secs(1), "new password: {took:?}");
        // Removal.
        assert_eq!(
            send(as_op(b.client.get(b.url(&read)), VIEWER, VIEWER_PW))
                .await
                .0,
            200
        );
        assert!(store.remove_operator(VIEWER).await.unwrap());
        let took = effective_after(Instant::now(), 401, || {
            as_op(b.client.get(b.url(&read)), VIEWER, VIEWER_PW)
        })
        .await;
        assert!(took < Duration::from_secs(1), "removal: {took:?}");
        b.stop().await;
        a.stop().await;
    }
);

// ---- timing and load

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_take_as_long_as_known_ones() {
    let db: TestDb = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    add_both(&app).await;
    let store = app.state().configs.store().clone();
    let read = app.url(&format!("{J}/multi_provider"));
    let attempt = |name: &'static str| {
        let (client, read, store) = (app.client.clone(), read.clone(), store.clone());
        async move {
            // Never locked: only the time of a refusal is measured.
            store.clear_login_failures(name).await.unwrap();
            let started = Instant::now();
            let (status, _) =
                send(client.get(&read).basic_auth(name, Some("wrong-password!"))).await;
            assert_eq!(status, 401);
            started.elapsed()
        }
    };
    attempt("nobody.here").await;
    let mut ratios = Vec::new();
    for _ in 0..3 {
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..9 {
            known.push(attempt(EDITOR).await);
            unknown.push(attempt("nobody.here").await);
        }
        let (k, u) = (median(known), median(unknown));
        let ratio = k.max(u).as_secs_f64() / k.min(u).as_secs_f64();
        eprintln!("refused login, median: known name {k:?}, unknown name {u:?} (ratio {ratio:.2})");
        // Argon2 dominates both: a skipped verification would be ten times faster.
        assert!(
            u > Duration::from_millis(2),
            "unknown names skip Argon2: {u:?}"
        );
        ratios.push(ratio);
        if ratio < 1.5 {
            break;
        }
    }
    assert!(ratios.iter().any(|r| *r < 1.5), "{ratios:?}");
    app.stop().await;
}

/// Lookups answered by `clients` concurrent clients during `window`.
async fn lookups_during(app: &TestApp, clients: usize, window: Duration) -> usize {
    let until = Instant::now() + window;
    let url = app.url(&format!("/v1/accounts/{A1}/voice-route?to=%2B15551234"));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url) = (app.client.clone(), url.clone());
        let token = app.settings.engine_token.clone().unwrap();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while Instant::now() < until {
                let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

/// Starts 200 concurrent bad logins, each a distinct name (`round` keeps them apart): each
/// costs a real Argon2 verification (no lockout shortcut), far more work than a window's.
fn flood(app: &TestApp, round: usize) -> Vec<tokio::task::JoinHandle<u16>> {
    let read = app.url(&format!("{J}/multi_provider"));
    (0..200)
        .map(|i| {
            let (client, read) = (app.client.clone(), read.clone());
            tokio::spawn(async move {
                let r = client
                    .get(&read)
                    .basic_auth(format!("flood{round}-{i}"), Some("wrong-password!"))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect()
}

// Windows of lookups during a flood and right after it alternate, and each pair gives a
// ratio: the load of a shared machine (or of the other tests of this binary), which changes
// over seconds, weighs on both adjacent windows of a pair alike. The median of the pairs' ratios must be at least 90 %. Argon2 on the async workers,
// even one verification at a time, leaves lookups about 60 % (measured: medians of
// 0.58–0.62 in each of three measurements); a burst of outside load does not recur: up to three
// measurements, the first at 90 % or more passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_leaves_lookups_their_throughput() {
    let db: TestDb = fresh_sqlite();
    let app = spawn_app(&db.url, AppOptions::default()).await;
    app.configure(Some(A1), &voice(SECRETS[1])).await;
    const PAIRS: usize = 15;
    let window = Duration::from_millis(250);
    lookups_during(&app, 4, Duration::from_millis(300)).await;
    // The first bad login makes the dummy hash: not part of a flood's cost.
    let first = app.url(&format!("{J}/multi_provider"));
    let r = app
        .client
        .get(&first)
        .basic_auth("warm.up", Some("wrong-password!"));
    assert_eq!(send(r).await.0, 401);
    let mut medians = Vec::new();
    let mut round = 0;
    for _ in 0..3 {
        let (mut quiet_total, mut flooded_total) = (0, 0);
        let mut ratios = Vec::new();
        for _ in 0..PAIRS {
            let requests = flood(&app, round);
            round += 1;
            // Let the flood arrive (connections, requests read) and queue for Argon2: what
            // is measured is the flood being verified.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let flooded = lookups_during(&app, 4, window).await;
            let unfinished = requests.iter().filter(|t| !t.is_finished()).count();
            assert!(unfinished > 0, "the flood lasted the whole window");
            // The rest is dropped: the server drops their requests with the connections.
            for request in requests {
                if request.is_finished() {
                    assert_eq!(request.await.unwrap(), 401);
                } else {
                    request.abort();
                }
            }
            // Right after: the same moment of the machine, without the flood.
            let quiet = lookups_during(&app, 4, window).await;
            quiet_total += quiet;
            flooded_total += flooded;
            ratios.push(flooded as f64 / quiet.max(1) as f64);
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        eprintln!(
            "lookups in {PAIRS} windows of {window:?}: {quiet_total} without, {flooded_total} \
             during 200 bad logins ({:.1} %); median ratio of the pairs {:.1} %",
            flooded_total as f64 * 100.0 / quiet_total as f64,
            median * 100.0
        );
        medians.push(median);
        if median >= 0.9 {
            break;
        }
    }
    assert!(
        medians.iter().any(|r| *r >= 0.9),
        "lookups lost more than 10 % of their throughput: {medians:?}"
    );
    app.stop().await;
}

// ---- help

#[test]
fn each_verb_has_a_purpose_and_an_example() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .output()
            .expect("run the binary");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["operator", "--help"]);
    for verb in ["add", "list", "set-role", "passwd", "remove"] {
        assert!(top.contains(verb), "{top}");
        let text = help(&["operator", verb, "--help"]);
        assert!(text.contains("Example"), "{verb}:\n{text}");
        assert!(
            text.contains(&format!("multiprovider operator {verb}")),
            "{verb}:\n{text}"
        );
    }
    assert!(
        top.contains("Exit codes") && top.contains("2  usage"),
        "{top}"
    );
    assert!(help(&["--help"]).contains("operator"));
}

on_every_db!(
    a_viewer_s_report_is_refused_before_its_parameters_are_read,
    |app, db| {
        let _ = &db;
        add_both(&app).await;
        // docs/api.md: 401/403 come before 400.
        let (status, body) = send(as_op(
            app.client
                .post(app.url("/v1/outcomes?bogus=1"))
                .body(r#"{"proxy": "gw.example.com", "outcome": "success"}"#),
            VIEWER,
            VIEWER_PW,
        ))
        .await;
        assert_eq!(status, 403, "{body}");
    }
);
