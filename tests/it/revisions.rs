//! Revisions, audit and safe change (docs/api.md) over real HTTP, on every backend.

use std::time::{Duration, Instant};

use reqwest::Response;
use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::app::{AppOptions, TestApp, spawn_app, spawn_custom};
use crate::common::constants::{A1, A2, A3, ADMIN_SID, J, RJ, SMS_1, X, sms};
use crate::common::db::{TestDb, with_pool};
use crate::common::reliability::Tally;
use crate::common::wire::{assert_error, error_parameters, json_of, text_of, xml_text};
use crate::common::{on_every_db, on_postgres};

const HISTORY: &str = "/2012-04-24/ExtensionsConfiguration.json/multi_provider/History.json";

/// The whole history of a configuration (`None`: the global one), newest first.
async fn history(app: &TestApp, account: Option<&str>) -> Value {
    let query = account.map_or(String::new(), |a| format!("AccountSid={a}&"));
    let (status, body) = json_of(app.get(&format!("{HISTORY}?{query}PageSize=1000")).await).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The revision numbers of a configuration's history, newest first.
async fn numbers(app: &TestApp, account: Option<&str>) -> Vec<i64> {
    history(app, account).await["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect()
}

/// `POST …/multi_provider` with form `pairs` and extra request `headers`.
async fn post_with(app: &TestApp, pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Response {
    let mut request = app
        .admin(app.client.post(app.url(&format!("{J}/multi_provider"))))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::common::wire::form(pairs));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("POST")
}

async fn delete_with(app: &TestApp, account: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app.admin(
        app.client
            .delete(app.url(&format!("{J}/multi_provider?AccountSid={account}"))),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("DELETE")
}

async fn rollback(app: &TestApp, account: Option<&str>, revision: &str) -> (u16, Value) {
    let mut pairs = vec![("Revision", revision)];
    if let Some(account) = account {
        pairs.push(("AccountSid", account));
    }
    let (status, body) = json_of(
        app.post_form(&format!("{J}/multi_provider/Rollback.json"), &pairs)
            .await,
    )
    .await;
    (status.as_u16(), body)
}

fn etag(response: &Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_owned()
}

on_every_db!(
    every_write_is_a_revision_numbered_per_configuration,
    |app, db| {
        assert_eq!(app.configure(Some(A1), &sms(1)).await["revision"], 1);
        // The account's first write created the global configuration: its revision 1.
        assert_eq!(numbers(&app, None).await, [1]);
        assert_eq!(app.configure(Some(A1), &sms(2)).await["revision"], 2);
        let (_, body) = json_of(app.write(Some(A1), None, Some("false")).await).await;
        assert_eq!(body["revision"], 3, "Enabled alone is a revision");
        // The same state again: 200 with the current state, no revision.
        let (status, same) = json_of(app.write(Some(A1), Some(&sms(2)), Some("false")).await).await;
        assert_eq!((status.as_u16(), &same["revision"]), (200, &json!(3)));
        assert_eq!(same["date_updated"], body["date_updated"]);
        assert_eq!(delete_with(&app, A1, &[]).await.status(), 204);
        assert_eq!(
            app.configure(Some(A1), &sms(4)).await["revision"],
            5,
            "numbering outlives a delete"
        );
        assert_eq!(numbers(&app, Some(A1)).await, [5, 4, 3, 2, 1]);
        assert_eq!(app.configure(Some(A2), &sms(1)).await["revision"], 1);
        assert_eq!(app.configure(None, &sms(9)).await["revision"], 2);
        assert_eq!(numbers(&app, None).await, [2, 1]);
        let _ = &db;
    }
);

on_every_db!(a_revision_tells_who_what_and_how, |app, db| {
    app.configure(Some(A1), &sms(1)).await;
    app.configure(Some(A1), &sms(2)).await;
    app.write(Some(A1), None, Some("false")).await;
    delete_with(&app, A1, &[]).await;
    let all = history(&app, Some(A1)).await;
    let revisions = all["revisions"].as_array().unwrap();
    let [delete, disable, update, create] = revisions.as_slice() else {
        panic!("{all}")
    };
    for r in revisions {
        assert_eq!(r["actor"], ADMIN_SID);
        assert_eq!(r["remote_addr"], "127.0.0.1");
        assert_eq!(r["account_sid"], A1);
        assert_eq!(r["rollback_of"], Value::Null);
        assert!(
            r["date_created"].as_str().unwrap().ends_with("+0000"),
            "{r}"
        );
    }
    assert_eq!(
        (
            create["action"].as_str(),
            &create["changes"],
            &create["configuration"]
        ),
        (Some("create"), &Value::Null, &json!(sms(1)))
    );
    assert_eq!(update["action"], "update");
    assert_eq!(
        update["changes"],
        json!([{"op": "replace", "path": "/outbound-sms/0/destination_network_id", "value": "2"}])
    );
    assert_eq!(
        (&disable["changes"], &disable["enabled"]),
        (&json!([]), &json!(false))
    );
    assert_eq!(
        (
            delete["action"].as_str(),
            &delete["changes"],
            &delete["configuration"]
        ),
        (Some("delete"), &Value::Null, &Value::Null)
    );
    assert!(
        delete["uri"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/History/4.json?AccountSid={A1}")),
        "{delete}"
    );
    // One revision alone, by its number, in JSON and in XML.
    let one = format!("{J}/multi_provider/History/2.json?AccountSid={A1}");
    let (status, body) = json_of(app.get(&one).await).await;
    assert_eq!((status.as_u16(), &body), (200, update));
    let (status, _, xml) = text_of(
        app.get(&format!("{X}/multi_provider/History/2?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(xml_text(&xml, "Action"), ["update"]);
    assert_eq!(xml_text(&xml, "Revision"), ["2"]);
    let missing = format!("{J}/multi_provider/History/9.json?AccountSid={A1}");
    let (status, body) = json_of(app.get(&missing).await).await;
    assert_eq!(status, 404);
    assert_error(&body, 404);
    let _ = &db;
});

on_every_db!(single_answers_carry_their_revision_as_etag, |app, db| {
    app.configure(Some(A1), &sms(1)).await;
    let response = app.write(Some(A1), Some(&sms(2)), None).await;
    assert_eq!(etag(&response), "\"2\"");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revision"], 2);
    let read = app
        .get(&format!("{J}/multi_provider?AccountSid={A1}"))
        .await;
    assert_eq!(etag(&read), "\"2\"");
    let global = app.get(&format!("{J}/multi_provider")).await;
    assert_eq!(etag(&global), "\"1\"");
    let (_, _, xml) = text_of(
        app.get(&format!("{X}/multi_provider?AccountSid={A1}"))
            .await,
    )
    .await;
    assert_eq!(xml_text(&xml, "Revision"), ["2"]);
    let _ = &db;
});

on_every_db!(if_match_writes_only_at_that_revision, |app, db| {
    let update = |config: String| {
        vec![
            ("AccountSid", A1),
            (
                "ConfigurationData",
                Box::leak(config.into_boxed_str()) as &str,
            ),
        ]
    };
    app.configure(Some(A1), &sms(1)).await;
    app.configure(Some(A1), &sms(2)).await;
    // A stale tag: 412 with the error body, nothing written.
    let r = post_with(&app, &update(sms(3)), &[("If-Match", "\"1\"")]).await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 412);
    assert_error(&body, 412);
    assert!(
        body["message"].as_str().unwrap().contains("revision 2"),
        "{body}"
    );
    assert_eq!(numbers(&app, Some(A1)).await, [2, 1]);
    assert_eq!(app.sms_summary(A1).await.2, "2");
    // The current tag (quoted, or among several): written.
    let r = post_with(&app, &update(sms(3)), &[("If-Match", "\"7\", \"2\"")]).await;
    assert_eq!((r.status().as_u16(), etag(&r)), (200, "\"3\"".to_owned()));
    assert_eq!(app.sms_summary(A1).await.2, "3");
    // `*`: it must exist; `If-None-Match: *`: it must not.
    let other = |config: &'static str| vec![("AccountSid", A2), ("ConfigurationData", config)];
    let r = post_with(
        &app,
        &other(r#"{"outbound-sms": [{"destination_network_id": 5}]}"#),
        &[("If-Match", "*")],
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = post_with(
        &app,
        &other(r#"{"outbound-sms": [{"destination_network_id": 5}]}"#),
        &[("If-None-Match", "*")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post_with(
        &app,
        &other(r#"{"outbound-sms": [{"destination_network_id": 6}]}"#),
        &[("If-None-Match", "*")],
    )
    .await;
    assert_eq!(r.status(), 412);
    let r = post_with(
        &app,
        &other(r#"{"outbound-sms": [{"destination_network_id": 6}]}"#),
        &[("If-Match", "*")],
    )
    .await;
    assert_eq!(r.status(), 200);
    // DELETE: a stale tag is refused, the current one deletes.
    assert_eq!(
        delete_with(&app, A2, &[("If-Match", "\"1\"")])
            .await
            .status(),
        412
    );
    assert_eq!(
        delete_with(&app, A2, &[("If-Match", "\"2\"")])
            .await
            .status(),
        204
    );
    // 404 and 400 come before 412.
    assert_eq!(
        delete_with(&app, A2, &[("If-Match", "\"9\"")])
            .await
            .status(),
        404
    );
    let r = post_with(&app, &update("{".into()), &[("If-Match", "\"1\"")]).await;
    assert_eq!(r.status(), 400);
    let unknown = app
        .admin(
            app.client
                .post(app.url(&format!("{J}/EXffffffffffffffffffffffffffffffff"))),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .header("if-match", "\"1\"")
        .body(format!("AccountSid={A1}&Enabled=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let _ = &db;
});

on_every_db!(rollback_restores_a_revision_as_a_new_one, |app, db| {
    app.configure(Some(A1), &sms(1)).await;
    app.configure(Some(A1), &sms(2)).await;
    let (status, body) = rollback(&app, Some(A1), "1").await;
    assert_eq!(
        (status, &body["revision"], &body["configuration"]),
        (200, &json!(3), &json!(sms(1)))
    );
    assert_eq!(
        app.sms_summary(A1).await.2,
        "1",
        "lookups see the rollback at once"
    );
    let newest = &history(&app, Some(A1)).await["revisions"][0];
    assert_eq!(
        (&newest["action"], &newest["rollback_of"]),
        (&json!("rollback"), &json!(1))
    );
    assert_eq!(newest["changes"][0]["value"], "1");
    // To the state it is in: nothing to do, no revision.
    let (status, body) = rollback(&app, Some(A1), "3").await;
    assert_eq!((status, &body["revision"]), (200, &json!(3)));
    // Errors: a delete revision and an unknown one are 400s naming `Revision`; a
    // configuration that never existed is a 404.
    delete_with(&app, A1, &[]).await;
    let (status, body) = rollback(&app, Some(A1), "4").await;
    assert_eq!(
        (status, error_parameters(&body)),
        (400, vec!["Revision".to_owned()])
    );
    let (status, body) = rollback(&app, Some(A1), "99").await;
    assert_eq!(
        (status, error_parameters(&body)),
        (400, vec!["Revision".to_owned()])
    );
    let (status, body) = rollback(&app, Some(A1), "x").await;
    assert_eq!(
        (status, error_parameters(&body)),
        (400, vec!["Revision".to_owned()])
    );
    let (status, _) = rollback(&app, Some(A2), "1").await;
    assert_eq!(status, 404);
    // A deleted configuration comes back.
    let (status, body) = rollback(&app, Some(A1), "2").await;
    assert_eq!(
        (status, &body["revision"], &body["configuration"]),
        (200, &json!(5), &json!(sms(2)))
    );
    assert_eq!(app.sms_summary(A1).await.2, "2");
    let newest = &history(&app, Some(A1)).await["revisions"][0];
    assert_eq!(
        newest["changes"],
        Value::Null,
        "nothing to compare with after a delete"
    );
    // The XML form, the other prefix, and the global configuration.
    let (status, _, xml) = text_of(
        app.post_form(
            &format!("{X}/multi_provider/Rollback"),
            &[("Revision", "1")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(xml_text(&xml, "Configuration"), ["{}"]);
    let (status, body) = json_of(
        app.post_form(
            &format!("{RJ}/multi_provider/Rollback.json"),
            &[("AccountSid", A1), ("Revision", "1"), ("Enabled", "true")],
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), error_parameters(&body)),
        (400, vec!["Enabled".to_owned()])
    );
    // The engine token cannot roll back.
    let engine = app
        .engine(
            app.client
                .post(app.url(&format!("{J}/multi_provider/Rollback.json"))),
        )
        .form(&[("Revision", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(engine.status(), 403);
    let _ = &db;
});

on_every_db!(history_pages_newest_first_in_both_formats, |app, db| {
    for n in 1..=5 {
        app.configure(Some(A1), &sms(n)).await;
    }
    let page =
        |p: u32| format!("{J}/multi_provider/History.json?AccountSid={A1}&Page={p}&PageSize=2");
    let (_, first) = json_of(app.get(&page(0)).await).await;
    assert_eq!(
        (&first["total"], &first["num_pages"], &first["page_size"]),
        (&json!(5), &json!(3), &json!(2))
    );
    let revisions = |body: &Value| -> Vec<i64> {
        body["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(revisions(&first), [5, 4]);
    assert_eq!(first["previous_page_uri"], Value::Null);
    let next = first["next_page_uri"].as_str().unwrap().to_owned();
    assert!(
        next.contains(&format!("AccountSid={A1}&Page=1&PageSize=2")),
        "{next}"
    );
    let (_, second) = json_of(app.get(&next).await).await;
    assert_eq!(revisions(&second), [3, 2]);
    let (_, last) = json_of(app.get(&page(2)).await).await;
    assert_eq!(
        (revisions(&last), &last["next_page_uri"]),
        (vec![1], &Value::Null)
    );
    let (_, beyond) = json_of(app.get(&page(3)).await).await;
    assert!(revisions(&beyond).is_empty());
    let (status, _, xml) = text_of(
        app.get(&format!(
            "{X}/multi_provider/History?AccountSid={A1}&PageSize=2"
        ))
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        xml.contains("<ConfigurationRevisions page=\"0\" numpages=\"3\""),
        "{xml}"
    );
    assert_eq!(xml_text(&xml, "Revision"), ["5", "4"]);
    let (status, _) = json_of(app.get(&format!("{RJ}/multi_provider/History.json")).await).await;
    assert_eq!(status, 200, "the global configuration's history");
    let (status, body) = json_of(app.get(&format!("{HISTORY}?AccountSid={A2}")).await).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = json_of(app.get(&format!("{HISTORY}?PageSize=0")).await).await;
    assert_eq!(
        (status.as_u16(), error_parameters(&body)),
        (400, vec!["PageSize".to_owned()])
    );
    let _ = &db;
});

on_every_db!(history_limit_keeps_the_newest_revisions, |db| {
    let app = spawn_custom(&db.url, |s| s.history_limit = Some(3)).await;
    for n in 1..=6 {
        app.configure(Some(A1), &sms(n)).await;
    }
    assert_eq!(numbers(&app, Some(A1)).await, [6, 5, 4]);
    assert_eq!(history(&app, Some(A1)).await["total"], 3);
    let pruned = format!("{J}/multi_provider/History/2.json?AccountSid={A1}");
    assert_eq!(app.get(&pruned).await.status(), 404);
    let (status, _) = rollback(&app, Some(A1), "2").await;
    assert_eq!(status, 400);
    let (status, body) = rollback(&app, Some(A1), "4").await;
    assert_eq!((status, &body["revision"]), (200, &json!(7)));
    assert_eq!(numbers(&app, Some(A1)).await, [7, 6, 5]);
    app.stop().await;
});

on_every_db!(
    sixteen_editors_with_if_match_one_success_per_revision,
    |app, db| {
        const EDITORS: usize = 16;
        const ROUNDS: usize = 6;
        app.configure(Some(A1), &sms(0)).await;
        let read = format!("{J}/multi_provider?AccountSid={A1}");
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for editor in 0..EDITORS {
            let (app, read) = (app.clone(), read.clone());
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    let tag = etag(&app.get(&read).await);
                    // Never `sms(0)`, the state they all start from: a write of the
                    // current state changes nothing and makes no revision.
                    let config = sms(editor * 100 + round + 1);
                    let r = post_with(
                        &app,
                        &[("AccountSid", A1), ("ConfigurationData", &config)],
                        &[("If-Match", &tag)],
                    )
                    .await;
                    let status = r.status().as_u16();
                    let revision = if status == 200 {
                        let body: Value = r.json().await.unwrap();
                        body["revision"].as_i64()
                    } else {
                        None
                    };
                    outcomes.push((tag, status, revision));
                }
                outcomes
            }));
        }
        let mut successes = Vec::new();
        let mut refused = 0;
        for task in tasks {
            for (tag, status, revision) in task.await.unwrap() {
                match status {
                    200 => {
                        let revision = revision.unwrap();
                        // The write that succeeds with tag n makes revision n + 1.
                        assert_eq!(tag, format!("\"{}\"", revision - 1));
                        successes.push(revision);
                    }
                    412 => refused += 1,
                    other => panic!("{}: {other}", db.kind),
                }
            }
        }
        successes.sort_unstable();
        let newest = *successes.last().unwrap();
        let expected: Vec<i64> = (2..=newest).collect();
        assert_eq!(
            successes, expected,
            "{}: one success per revision, no gap",
            db.kind
        );
        assert_eq!(successes.len() + refused, EDITORS * ROUNDS);
        let all: Vec<i64> = (1..=newest).rev().collect();
        assert_eq!(numbers(&app, Some(A1)).await, all);
        eprintln!(
            "{}: {} successes, {refused} refused with 412",
            db.kind,
            successes.len()
        );
    }
);

on_every_db!(history_pages_cost_the_same_however_deep, |app, db| {
    const REVISIONS: i64 = 10_000;
    app.configure(Some(A1), &sms(0)).await;
    // Ten thousand revisions, written straight into the tables: the API would take minutes.
    with_pool!(&db, |pool| {
        let mut tx = pool.begin().await.unwrap();
        let date = if db.kind == "sqlite" { "0" } else { "now()" };
        for chunk in (2..=REVISIONS).collect::<Vec<_>>().chunks(500) {
            let values: Vec<String> = chunk
                .iter()
                .map(|n| {
                    format!(
                        "('{A1}', {n}, 'update', {date}, 'test', NULL, TRUE, '{{}}', NULL, '[]')"
                    )
                })
                .collect();
            sqlx::query(&format!(
                "INSERT INTO configuration_revisions (scope, revision, action, date_created, actor, \
                 remote_addr, enabled, configuration, rollback_of, changes) VALUES {}",
                values.join(", ")
            ))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE configuration_heads SET revision = $1 WHERE scope = $2")
            .bind(REVISIONS)
            .bind(A1)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    let time = |page: i64| {
        let app = &app;
        async move {
            let path = format!("{HISTORY}?AccountSid={A1}&Page={page}&PageSize=50");
            let mut best = Duration::MAX;
            for _ in 0..5 {
                let started = Instant::now();
                let (status, body) = json_of(app.get(&path).await).await;
                best = best.min(started.elapsed());
                assert_eq!(status, 200);
                let newest = REVISIONS - page * 50;
                assert_eq!(body["revisions"][0]["revision"], newest);
                assert_eq!(body["total"], REVISIONS);
            }
            best
        }
    };
    let (first, last) = (time(0).await, time(REVISIONS / 50 - 1).await);
    eprintln!("{}: page 0 in {first:?}, page 199 in {last:?}", db.kind);
    assert!(
        last < first * 3 + Duration::from_millis(20),
        "{}: {first:?} vs {last:?}",
        db.kind
    );
});

/// Every configuration's revisions agree with it: the head names the newest revision, the
/// numbers run without gaps, and the current row is that revision's state (or absent after a
/// delete). What a write that died half-way would break.
pub async fn assert_revisions_consistent(db: &TestDb) {
    with_pool!(db, |pool| {
        let broken_heads: Vec<String> = sqlx::query_scalar(
            "SELECT h.scope FROM configuration_heads h \
             WHERE h.revision <> (SELECT MAX(revision) FROM configuration_revisions r WHERE r.scope = h.scope) \
             OR (SELECT COUNT(*) FROM configuration_revisions r WHERE r.scope = h.scope) \
                <> h.revision - (SELECT MIN(revision) FROM configuration_revisions r WHERE r.scope = h.scope) + 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            broken_heads.is_empty(),
            "{}: heads {broken_heads:?}",
            db.kind
        );
        let orphans: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT scope FROM configuration_revisions r \
             WHERE NOT EXISTS (SELECT 1 FROM configuration_heads h WHERE h.scope = r.scope)",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            orphans.is_empty(),
            "{}: revisions without a head {orphans:?}",
            db.kind
        );
        // A current row is exactly its head revision, which is not a delete.
        let mismatched: Vec<String> = sqlx::query_scalar(
            "SELECT c.account_sid FROM account_configurations c \
             JOIN configuration_heads h ON h.scope = c.account_sid \
             LEFT JOIN configuration_revisions r ON r.scope = h.scope AND r.revision = h.revision \
             WHERE r.scope IS NULL OR c.revision <> h.revision OR r.action = 'delete' \
                OR c.enabled <> r.enabled",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            mismatched.is_empty(),
            "{}: rows unlike their revision {mismatched:?}",
            db.kind
        );
        let headless: Vec<String> = sqlx::query_scalar(
            "SELECT c.account_sid FROM account_configurations c \
             WHERE NOT EXISTS (SELECT 1 FROM configuration_heads h WHERE h.scope = c.account_sid)",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            headless.is_empty(),
            "{}: rows without revisions {headless:?}",
            db.kind
        );
        // Every configuration whose newest revision is not a delete has its row.
        let lost: Vec<String> = sqlx::query_scalar(
            "SELECT h.scope FROM configuration_heads h \
             JOIN configuration_revisions r ON r.scope = h.scope AND r.revision = h.revision \
             WHERE h.scope <> 'global' AND r.action <> 'delete' \
             AND NOT EXISTS (SELECT 1 FROM account_configurations c WHERE c.account_sid = h.scope)",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            lost.is_empty(),
            "{}: revisions without their row {lost:?}",
            db.kind
        );
    });
}

on_every_db!(
    revisions_agree_with_the_rows_after_a_mixed_workload,
    |app, db| {
        for n in 0..4 {
            let a1 = app.configure(Some(A1), &sms(n)).await;
            assert_eq!(a1["revision"], n + 1, "A1, write {n}: {a1}");
            let enabled = if n % 2 == 0 { "true" } else { "false" };
            let (status, a2) =
                json_of(app.write(Some(A2), Some(&sms(n)), Some(enabled)).await).await;
            assert_eq!(status, 200, "A2, write {n}: {a2}");
            assert_eq!(
                (&a2["revision"], &a2["enabled"], &a2["configuration"]),
                (&json!(n + 1), &json!(n % 2 == 0), &json!(sms(n))),
                "A2, write {n}"
            );
        }
        let deleted = delete_with(&app, A1, &[]).await;
        assert_eq!(deleted.status(), 204, "{}", deleted.text().await.unwrap());
        let (status, back) = rollback(&app, Some(A2), "1").await;
        assert_eq!(status, 200, "{back}");
        assert_eq!(
            (&back["revision"], &back["enabled"], &back["configuration"]),
            (&json!(5), &json!(true), &json!(sms(0))),
            "A2 rolled back to revision 1, as revision 5"
        );
        // The delete is A1's revision 5, and the rollback A2's.
        for (account, action) in [(A1, "delete"), (A2, "rollback")] {
            let url = format!("{J}/multi_provider/History/5.json?AccountSid={account}");
            let (status, body) = json_of(app.get(&url).await).await;
            assert_eq!(
                (status.as_u16(), &body["action"]),
                (200, &json!(action)),
                "{account}: {body}"
            );
        }
        assert_revisions_consistent(&db).await;
    }
);

on_postgres!(
    writes_whose_backend_dies_mid_transaction_leave_rows_and_revisions_together,
    |db| {
        const WRITERS: usize = 6;
        let accounts = [A1, A2, A3];
        let app = Arc::new(spawn_app(&db.url, AppOptions::default()).await);
        app.configure(None, SMS_1).await;
        let admin = db.postgres_admin().await;
        let stop = Arc::new(AtomicBool::new(false));
        // Two writers per account, without conditions: their writes race for the next
        // revision. Each keeps (status, revision answered, configuration posted, enabled).
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (app, stop) = (app.clone(), stop.clone());
                let account = accounts[w % accounts.len()];
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let config = sms(w * 100_000 + n);
                        let enabled = if n % 3 == 2 { "false" } else { "true" };
                        let r = app.write(Some(account), Some(&config), Some(enabled)).await;
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or_default();
                        outcomes.push((status, body["revision"].as_i64(), config, enabled));
                        n += 1;
                    }
                    (account, outcomes)
                })
            })
            .collect();
        // Kill every session of this database that is inside a transaction, again and again:
        // the writes in flight die between their statements or at their commit.
        let started = Instant::now();
        let mut killed = 0;
        while started.elapsed() < Duration::from_secs(4) {
            let n: Vec<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL \
                 AND backend_type = 'client backend'",
            )
            .bind(db.postgres_name())
            .fetch_all(&admin)
            .await
            .unwrap();
            killed += n.iter().filter(|k| **k).count();
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        stop.store(true, Ordering::Relaxed);
        admin.close().await;
        let mut tally = Tally::default();
        for writer in writers {
            let (account, outcomes) = writer.await.unwrap();
            let mut acknowledged = Vec::new();
            for (status, revision, config, enabled) in outcomes {
                tally.add(status);
                assert!(status == 200 || status == 503, "{account}: {status}");
                if status != 200 {
                    continue;
                }
                // Every acknowledged write is its revision, as posted.
                let revision = revision.expect("a 200 names its revision");
                acknowledged.push(revision);
                let one =
                    format!("{J}/multi_provider/History/{revision}.json?AccountSid={account}");
                let (status, body) = json_of(app.get(&one).await).await;
                assert_eq!(status, 200, "{account}@{revision}: {body}");
                assert_eq!(
                    (&body["configuration"], body["enabled"].to_string()),
                    (&json!(config), enabled.to_owned()),
                    "{account}@{revision}"
                );
            }
            let before = acknowledged.len();
            acknowledged.sort_unstable();
            acknowledged.dedup();
            assert_eq!(
                before,
                acknowledged.len(),
                "{account}: a revision given twice"
            );
        }
        assert!(killed > 0, "no write was caught in a transaction");
        assert!(tally.count("200") > 0, "{tally}");
        // The rows and the revisions agree, and writes go on from the newest revision.
        assert_revisions_consistent(&db).await;
        for account in accounts {
            let started = Instant::now();
            let current = loop {
                let r = app
                    .get(&format!("{J}/multi_provider?AccountSid={account}"))
                    .await;
                match r.status().as_u16() {
                    200 => break r.json::<Value>().await.unwrap(),
                    503 if started.elapsed() < Duration::from_secs(15) => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    other => panic!("{account}: {other}"),
                }
            };
            let head = numbers(&app, Some(account)).await[0];
            assert_eq!(current["revision"], head, "{account}");
            let next = app.configure(Some(account), &sms(999_999)).await;
            assert_eq!(next["revision"], head + 1, "{account}");
        }
        assert_revisions_consistent(&db).await;
        eprintln!("postgres: {killed} sessions killed inside a transaction in 4 s; writes {tally}");
        Arc::try_unwrap(app).ok().unwrap().stop().await;
    }
);
