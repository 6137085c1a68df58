//! `multiprovider export` and `import` (docs/operations.md), run as the built binary against real
//! databases: a backup restores every configuration (sealed ones too), `--dry-run` writes
//! nothing, a running server sees an import like any write, and 100,000 lines are validated
//! and written in one transaction within the memory goal — or, with one bad line, not at all.

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, A1, A2, A3, J, SECRET_KEY_HEX, SMS_1, VOICE_EXAMPLE, sms};
use crate::common::db::{TestDb, fresh_postgres, fresh_sqlite, with_pool};
use crate::common::on_every_db;
use crate::common::process::{BIN, outcome, run_cli};
use crate::common::reliability::{Stored, stored};
use crate::common::wire::json_of;
use crate::revisions::assert_revisions_consistent;

/// A fresh, empty database of the same kind as `db`.
async fn fresh_like(db: &TestDb) -> TestDb {
    if db.kind == "sqlite" {
        fresh_sqlite()
    } else {
        fresh_postgres().await
    }
}

/// The environment of a CLI run on `db`, with the secret key when `key` is given.
fn env<'a>(db: &'a TestDb, key: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("DATABASE_URL", db.url.as_str())];
    if let Some(key) = key {
        env.push(("MULTIPROVIDER_SECRET_KEY", key));
    }
    env
}

/// The lines of an export, parsed.
fn parse_export(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// An export's lines without their `revision` (which an import does not carry over).
fn without_revisions(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("revision");
            l
        })
        .collect()
}

/// Runs `export` on `db` with `key`: the exported lines.
async fn export(db: &TestDb, key: Option<&str>) -> Vec<Value> {
    let o = run_cli(&["export"], &env(db, key)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{}: export: {stderr}", db.kind);
    parse_export(&stdout)
}

/// The stored values of the current configurations and of the revisions, straight from the
/// tables.
async fn stored_values(db: &TestDb) -> Vec<String> {
    with_pool!(db, |pool| {
        let mut values: Vec<String> = sqlx::query_scalar(
            "SELECT configuration FROM extensions UNION ALL \
             SELECT configuration FROM account_configurations UNION ALL \
             SELECT configuration FROM configuration_revisions WHERE configuration IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let changes: Vec<String> = sqlx::query_scalar(
            "SELECT changes FROM configuration_revisions WHERE changes IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        values.extend(changes);
        values
    })
}

/// How many rows each table holds: (extensions, account_configurations, revisions, heads).
async fn row_counts(db: &TestDb) -> (i64, i64, i64, i64) {
    with_pool!(db, |pool| {
        let count = |table: &'static str| {
            let pool = &pool;
            async move {
                sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(pool)
                    .await
                    .unwrap()
            }
        };
        (
            count("extensions").await,
            count("account_configurations").await,
            count("configuration_revisions").await,
            count("configuration_heads").await,
        )
    })
}

/// Polls `app`'s SMS lookup of `account` until it answers (`source`, `value`) with revision
/// `revision`, for at most `within`: how long that took.
pub async fn until_sms(
    app: &TestApp,
    account: &str,
    expected: (&str, &str, i64),
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let (status, v) = app.sms_route(account).await;
        assert_eq!(status, 200, "{v}");
        let got = (
            v["source"].as_str().unwrap_or_default().to_owned(),
            v["tlvs"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            v["revision"].as_i64().unwrap_or(-1),
        );
        if (got.0.as_str(), got.1.as_str(), got.2) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{account}: after {within:?} still {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long a running server may take to see another process's write: PostgreSQL notifies at
/// once; a SQLite server polls the change sequence every second.
fn visibility_bound(db: &TestDb) -> Duration {
    if db.kind == "sqlite" {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(1)
    }
}

on_every_db!(export_then_import_restores_every_configuration, |db| {
    let key = Some(SECRET_KEY_HEX);
    // The source: four configurations written through the API, sealed at rest.
    let source = spawn_app(&db.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
    source.configure(None, SMS_1).await;
    source.configure(Some(A1), VOICE_EXAMPLE).await;
    source.configure(Some(A2), &sms(2)).await;
    assert_eq!(
        source.write(Some(A2), None, Some("false")).await.status(),
        200
    );
    source.configure(Some(A3), &sms(3)).await;
    source.configure(Some(A3), &sms(33)).await;
    source.stop().await;
    let sealed = stored_values(&db).await;
    assert!(
        sealed.iter().all(|v| v.starts_with("enc:v1:")),
        "{}: stored in plaintext",
        db.kind
    );

    // Export: the global configuration first, then the accounts, as posted, in plaintext.
    let exported = export(&db, key).await;
    assert_eq!(
        exported,
        vec![
            json!({"account_sid": null, "enabled": true, "configuration": SMS_1, "revision": 1}),
            json!({"account_sid": A1, "enabled": true, "configuration": VOICE_EXAMPLE, "revision": 1}),
            json!({"account_sid": A2, "enabled": false, "configuration": sms(2), "revision": 2}),
            json!({"account_sid": A3, "enabled": true, "configuration": sms(33), "revision": 2}),
        ],
        "{}",
        db.kind
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.jsonl");
    let file = file.to_str().unwrap();
    let o = run_cli(&["export", "--output", file], &env(&db, key)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("exported 4 configurations"), "{stderr}");
    assert_eq!(
        parse_export(&std::fs::read_to_string(file).unwrap()),
        exported
    );
    // Without the key the sealed configurations cannot be read: a failure, no plaintext.
    let o = run_cli(&["export"], &env(&db, None)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!((code, stdout.as_str()), (1, ""), "{}: {stderr}", db.kind);
    assert!(!stderr.contains("outbound"), "{stderr}");

    // The target: an empty database with a server running on it.
    let target = fresh_like(&db).await;
    let server = spawn_app(&target.url, AppOptions::with_secret_key(SECRET_KEY_HEX)).await;
    assert_eq!(server.sms_summary(A3).await.1, "none");

    // A dry run names what would change and writes nothing.
    let o = run_cli(&["import", file, "--dry-run"], &env(&target, key)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{}: {stderr}", db.kind);
    assert_eq!(
        stdout,
        format!(
            "would change: global\nwould change: {A1}\nwould change: {A2}\nwould change: {A3}\n"
        )
    );
    assert!(stderr.contains("dry run: nothing written"), "{stderr}");
    assert_eq!(row_counts(&target).await, (0, 0, 0, 0), "{}", db.kind);

    // The import: every configuration as revision 1 with action `import`, seen by the
    // running server like any write.
    let o = run_cli(&["import", file], &env(&target, key)).await;
    let imported = Instant::now();
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(code, 0, "{}: {stderr}", db.kind);
    assert_eq!(
        stdout,
        format!("changed: global\nchanged: {A1}\nchanged: {A2}\nchanged: {A3}\n")
    );
    assert!(
        stderr.contains("4 lines valid; 4 configurations changed"),
        "{stderr}"
    );
    let bound = visibility_bound(&db);
    until_sms(&server, A3, ("account", "33", 1), bound).await;
    let took = imported.elapsed();
    until_sms(&server, A_NONE, ("global", "1", 1), bound).await;
    assert_eq!(server.sms_summary(A2).await.1, "none", "A2 is disabled");
    let (status, voice) = server.voice_route(A1, "sip:bob@uri1.com").await;
    assert_eq!(
        (status, &voice["source"]),
        (200, &json!("account")),
        "{voice}"
    );
    eprintln!(
        "{}: the running server saw the import {took:?} after it exited",
        db.kind
    );

    // What the target holds: the source's configurations, sealed, each an `import` by `cli`.
    assert_eq!(
        without_revisions(&export(&target, key).await),
        without_revisions(&exported)
    );
    assert!(
        stored_values(&target)
            .await
            .iter()
            .all(|v| v.starts_with("enc:v1:")),
        "{}: imported in plaintext",
        db.kind
    );
    let history = format!("{J}/multi_provider/History.json?AccountSid={A3}");
    let (status, body) = json_of(server.get(&history).await).await;
    assert_eq!(status, 200, "{body}");
    let revisions = body["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 1, "{body}");
    assert_eq!(
        (
            &revisions[0]["revision"],
            &revisions[0]["action"],
            &revisions[0]["actor"],
            &revisions[0]["remote_addr"],
            &revisions[0]["configuration"]
        ),
        (
            &json!(1),
            &json!("import"),
            &json!("cli"),
            &Value::Null,
            &json!(sms(33))
        )
    );

    // Importing the same file again changes nothing and adds no revision.
    let counts = row_counts(&target).await;
    assert_eq!(counts, (1, 3, 4, 4), "{}", db.kind);
    let o = run_cli(&["import", file], &env(&target, key)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("0 configurations changed"), "{stderr}");
    assert_eq!(row_counts(&target).await, counts);

    // A dry run of an edited backup names only what differs, and writes nothing.
    let edited = std::fs::read_to_string(file)
        .unwrap()
        .replace(r#"\"33\""#, r#"\"34\""#);
    let edited_file = dir.path().join("edited.jsonl");
    std::fs::write(&edited_file, edited).unwrap();
    let edited_file = edited_file.to_str().unwrap();
    let o = run_cli(&["import", edited_file, "--dry-run"], &env(&target, key)).await;
    let (code, stdout, stderr) = outcome(&o);
    assert_eq!(
        (code, stdout.as_str()),
        (0, format!("would change: {A3}\n").as_str()),
        "{stderr}"
    );
    assert_eq!(row_counts(&target).await, counts);
    tokio::time::sleep(bound).await;
    assert_eq!(server.sms_summary(A3).await.2, "33");
    // Then for real: revision 2, with its JSON Patch.
    let o = run_cli(&["import", edited_file], &env(&target, key)).await;
    assert_eq!(outcome(&o).0, 0, "{}", outcome(&o).2);
    until_sms(&server, A3, ("account", "34", 2), bound).await;
    let (_, body) = json_of(server.get(&history).await).await;
    assert_eq!(
        body["revisions"][0]["changes"],
        json!([{"op": "replace", "path": "/outbound-sms/0/destination_network_id", "value": "34"}])
    );
    server.stop().await;
    assert_revisions_consistent(&target).await;
    assert_revisions_consistent(&db).await;
});

// ------------------------------------------------------------------ 100,000 lines

const LINES: usize = 100_000;
/// The line of the bad file that is wrong (counted from 1).
const BAD_LINE: usize = 73_451;

fn line_account(i: usize) -> String {
    format!("AC{i:032x}")
}

/// `LINES` lines: the global configuration `SMS_1`, then accounts 1, 2… each with a voice
/// and an SMS route of its own. With `bad`, line `BAD_LINE` misses its
/// `destination_network_id`.
fn big_file(bad: bool) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    {
        let mut out = std::io::BufWriter::new(file.as_file_mut());
        let global = json!({"account_sid": null, "enabled": true, "configuration": SMS_1});
        writeln!(out, "{global}").unwrap();
        for i in 1..LINES {
            let configuration = if bad && i + 1 == BAD_LINE {
                r#"{"outbound-sms": [{}]}"#.to_owned()
            } else {
                json!({
                    "outbound-voice": [{"proxy": [{"uri": format!("p{i}.example.com"), "match": "^\\+1"}]}],
                    "outbound-sms": [{"destination_network_id": i.to_string()}]
                })
                .to_string()
            };
            let line = json!({
                "account_sid": line_account(i),
                "enabled": i % 10 != 0,
                "configuration": configuration,
                "revision": 1
            });
            writeln!(out, "{line}").unwrap();
        }
        out.flush().unwrap();
    }
    file
}

/// What a child process did and cost.
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    /// Peak resident set size in bytes: the child's `VmHWM`, read from `/proc/<pid>/status`
    /// every few milliseconds until it exits (a high-water mark: only growth in the last
    /// interval before exit could be missed, and the import's peak comes before its commit).
    /// Not `ru_maxrss` (from `wait4` or `RUSAGE_CHILDREN`): Linux carries the parent's
    /// high-water mark into a spawned child across `exec`, so that figure is at least this
    /// test process's own peak.
    peak_rss: u64,
}

/// `VmHWM` of process `pid`, in bytes; `None` once it is gone (or a zombie: no memory).
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Runs the binary with `args` and `env`, and measures its wall time and peak RSS.
async fn measured(args: &[&str], env: &[(&str, &str)]) -> Measured {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let started = Instant::now();
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let mut peak_rss = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm(pid) {
            peak_rss = peak_rss.max(hwm);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let took = started.elapsed();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    assert!(peak_rss > 0, "{args:?}: no VmHWM was read");
    Measured {
        code: status.code().expect("exited, not killed"),
        stdout: read(out),
        stderr: read(err),
        took,
        peak_rss,
    }
}

const GIB: u64 = 1024 * 1024 * 1024;

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn snapshot(db: &TestDb) -> Stored {
    let store = multiprovider::store::Store::connect(&db.url, None)
        .await
        .unwrap();
    let now = stored(&store).await;
    store.close().await;
    now
}

on_every_db!(a_hundred_thousand_lines_in_one_transaction, |db| {
    let env = env(&db, None);
    // Something there before: the global configuration and account 1.
    let before = {
        let small = tempfile::NamedTempFile::new().unwrap();
        let lines = [
            json!({"account_sid": null, "enabled": true, "configuration": SMS_1}),
            json!({"account_sid": line_account(1), "enabled": true, "configuration": sms(7)}),
        ];
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(small.path(), text).unwrap();
        let o = run_cli(&["import", small.path().to_str().unwrap()], &env).await;
        assert_eq!(outcome(&o).0, 0, "{}", outcome(&o).2);
        snapshot(&db).await
    };
    assert_eq!(before.revisions, 2);

    // One bad line: the whole file is refused, the line and the pointer named, nothing
    // written.
    let bad = big_file(true);
    let refused = measured(&["import", bad.path().to_str().unwrap()], &env).await;
    assert_eq!(refused.code, 1, "{}: {}", db.kind, refused.stderr);
    assert_eq!(
        refused.stdout,
        format!("line {BAD_LINE}: /outbound-sms/0: missing field `destination_network_id`\n")
    );
    assert!(
        refused.stderr.contains("1 problems; nothing was imported"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        snapshot(&db).await,
        before,
        "{}: something was written",
        db.kind
    );
    drop(bad);

    // The good file: written in one transaction, under the memory goal.
    let good = big_file(false);
    let done = measured(&["import", good.path().to_str().unwrap()], &env).await;
    assert_eq!(done.code, 0, "{}: {}", db.kind, done.stderr);
    assert!(
        done.stderr.contains(&format!(
            "{LINES} lines valid; {} configurations changed",
            LINES - 1
        )),
        "{}",
        done.stderr
    );
    assert_eq!(done.stdout.lines().count(), LINES - 1);
    eprintln!(
        "{}: import of {LINES} lines took {:?}, peak RSS {}; the refused file took {:?}, \
         peak RSS {}",
        db.kind,
        done.took,
        mib(done.peak_rss),
        refused.took,
        mib(refused.peak_rss)
    );
    assert!(
        done.peak_rss < GIB && refused.peak_rss < GIB,
        "{}: peak RSS {} / {}",
        db.kind,
        mib(done.peak_rss),
        mib(refused.peak_rss)
    );
    assert!(
        done.took < Duration::from_secs(60),
        "{}: the import took {:?}",
        db.kind,
        done.took
    );

    // Everything is there: each account at its revision, the global one untouched.
    assert_eq!(
        row_counts(&db).await,
        (1, (LINES - 1) as i64, LINES as i64 + 1, LINES as i64),
        "{}",
        db.kind
    );
    let store = multiprovider::store::Store::connect(&db.url, None)
        .await
        .unwrap();
    let all = store.load_all().await.unwrap();
    assert_eq!(all.global.as_ref().unwrap().revision, 1);
    assert_eq!(all.accounts.len(), LINES - 1);
    for record in &all.accounts {
        let sid = record.account_sid.unwrap().to_string();
        let i = usize::from_str_radix(&sid[2..], 16).unwrap();
        let expected_revision = if i == 1 { 2 } else { 1 };
        assert_eq!(
            (record.revision, record.enabled),
            (expected_revision, i % 10 != 0),
            "{sid}"
        );
        assert!(
            record
                .configuration
                .contains(&format!("\"destination_network_id\":\"{i}\"")),
            "{sid}"
        );
    }
    let history = store
        .history(Some(all.accounts[0].account_sid.unwrap()), 0, 10)
        .await
        .unwrap();
    assert!(
        history
            .revisions
            .iter()
            .all(|r| r.actor == "cli" && r.remote_addr.is_none())
    );
    let first = store
        .history(
            Some(multiprovider::sid::AccountSid::parse(&line_account(1)).unwrap()),
            0,
            10,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = first.revisions.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["import", "import"]);
    store.close().await;
    assert_revisions_consistent(&db).await;

    // A running server loads it all, and sees a second import (announced as one reload).
    let app = spawn_app(&db.url, AppOptions::default()).await;
    until_sms(
        &app,
        &line_account(73_451),
        ("account", "73451", 1),
        Duration::ZERO,
    )
    .await;
    let again = measured(&["import", good.path().to_str().unwrap()], &env).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("0 configurations changed"),
        "{}",
        again.stderr
    );
    eprintln!(
        "{}: the same {LINES} lines again (nothing to change) took {:?}, peak RSS {}",
        db.kind,
        again.took,
        mib(again.peak_rss)
    );
    app.stop().await;
});
