//! Reliability battery, concurrency: 16 writers × 40 upserts on 8 overlapping accounts and the
//! global configuration, with lookups running all along, on each backend (and, on PostgreSQL,
//! through two instances at once).
//!
//! Afterwards: no 5xx (no error at all: contention waits, it never fails), no duplicate row,
//! every account holds exactly the (configuration, enabled) pair of one acknowledged write
//! and not one that an acknowledged write started after had overwritten (linearizable), every
//! lookup during the storm answered a configuration that was posted, and the cache answers
//! exactly what the store holds, also after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{A_NONE, J, RJ, SMS_1};
use crate::common::db::{TestDb, with_pool};
use crate::common::reliability::{Stored, Tally, cache_agrees, sms_id, stored};
use crate::common::{on_every_db, on_postgres};

const WRITERS: usize = 16;
const WRITES: usize = 40;
const ACCOUNTS: usize = 8;
const READERS: usize = 4;

fn account(i: usize) -> String {
    format!("AC{:032x}", 0xa000 + i)
}

/// One planned write: `None` = the global configuration.
#[derive(Clone, Debug)]
struct Planned {
    writer: usize,
    seq: usize,
    account: Option<String>,
    configuration: String,
    enabled: bool,
}

#[derive(Clone, Debug)]
struct Done {
    planned: Planned,
    status: u16,
    started: Instant,
    ended: Instant,
}

fn plan() -> Vec<Vec<Planned>> {
    (0..WRITERS)
        .map(|w| {
            (0..WRITES)
                .map(|i| {
                    // Every writer visits every account, in a different order: overlap.
                    let slot = (w * 3 + i * 5) % (ACCOUNTS + 1);
                    let account = (slot < ACCOUNTS).then(|| account(slot));
                    let id = 100_000 + w * 1000 + i;
                    let configuration = json!({
                        "outbound-voice": [{"proxy": [{"uri": format!("w{w}.example.com"),
                            "username": format!("u{w}"), "password": format!("pw-{w}-{i}")}]}],
                        "outbound-sms": [{"destination_network_id": id}]
                    })
                    .to_string();
                    Planned {
                        writer: w,
                        seq: i,
                        // The global one stays enabled: it is the fall-back of every lookup.
                        enabled: account.is_none() || (w + i) % 5 != 0,
                        account,
                        configuration,
                    }
                })
                .collect()
        })
        .collect()
}

async fn write(app: &TestApp, ext: &str, p: &Planned) -> u16 {
    let enabled = if p.enabled { "true" } else { "false" };
    let mut pairs = vec![
        ("ConfigurationData", p.configuration.as_str()),
        ("Enabled", enabled),
    ];
    if let Some(a) = &p.account {
        pairs.push(("AccountSid", a));
    }
    // Both write routes of docs/api.md, and both prefixes.
    let path = match p.seq % 3 {
        0 => format!("{J}/{ext}"),
        1 => RJ.to_owned(),
        _ => J.to_owned(),
    };
    if !p.seq.is_multiple_of(3) {
        pairs.push(("ExtensionName", "multi_provider"));
    }
    app.post_form(&path, &pairs).await.status().as_u16()
}

/// What a lookup of `account` may answer at any moment of the storm: a configuration that
/// was posted for it (or the global one), never anything else.
fn allowed(
    plans: &[Vec<Planned>],
    global_seed: &str,
) -> HashMap<String, BTreeSet<(String, String)>> {
    let id = |c: &str| sms_id(c).unwrap();
    let globals: Vec<String> = plans
        .iter()
        .flatten()
        .filter(|p| p.account.is_none())
        .map(|p| id(&p.configuration))
        .chain([id(global_seed)])
        .collect();
    let mut out = HashMap::new();
    for a in 0..ACCOUNTS {
        let a = account(a);
        let mut set: BTreeSet<(String, String)> = globals
            .iter()
            .map(|g| ("global".to_owned(), g.clone()))
            .collect();
        set.insert(("none".to_owned(), String::new()));
        for p in plans.iter().flatten() {
            if p.account.as_deref() == Some(a.as_str()) && p.enabled {
                set.insert(("account".to_owned(), id(&p.configuration)));
            }
        }
        out.insert(a, set);
    }
    out
}

/// Counts rows per key straight from the database: a duplicate would be a bug of the
/// schema or of the upsert, whatever the API shows.
async fn raw_counts(db: &TestDb) -> (i64, Vec<(String, i64)>) {
    let extensions = "SELECT COUNT(*) FROM extensions";
    let duplicates = "SELECT account_sid, COUNT(*) FROM account_configurations \
                      GROUP BY account_sid HAVING COUNT(*) > 1";
    with_pool!(db, |pool| {
        let e: i64 = sqlx::query_scalar(extensions)
            .fetch_one(&pool)
            .await
            .unwrap();
        let d: Vec<(String, i64)> = sqlx::query_as(duplicates).fetch_all(&pool).await.unwrap();
        (e, d)
    })
}

async fn list_all(app: &TestApp) -> (i64, Vec<String>) {
    let mut sids = Vec::new();
    let mut total = 0;
    for page in 0.. {
        let v: Value = app
            .get(&format!(
                "{J}/multi_provider/Accounts.json?Page={page}&PageSize=3"
            ))
            .await
            .json()
            .await
            .unwrap();
        total = v["total"].as_i64().unwrap();
        let items = v["extension_configurations"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        sids.extend(
            items
                .iter()
                .map(|i| i["account_sid"].as_str().unwrap().to_owned()),
        );
    }
    (total, sids)
}

/// The storm itself: writers on `apps` (round-robin per writer), readers on `apps[0]`.
async fn storm(
    apps: &[&TestApp],
    ext: &str,
    plans: &[Vec<Planned>],
    allowed: &HashMap<String, BTreeSet<(String, String)>>,
) -> (Vec<Done>, Tally, usize) {
    let done_writing = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers = async {
        let tasks = (0..READERS).map(|r| {
            let done_writing = done_writing.clone();
            let reads = reads.clone();
            async move {
                let mut bad = Vec::new();
                let mut i = r;
                while !done_writing.load(Ordering::Relaxed) {
                    let app = apps[i % apps.len()];
                    let a = account(i % ACCOUNTS);
                    let got = app.sms_summary(&a).await;
                    reads.fetch_add(1, Ordering::Relaxed);
                    if got.0 != 200 || !allowed[&a].contains(&(got.1.clone(), got.2.clone())) {
                        bad.push(format!("{a}: {got:?}"));
                    }
                    i += READERS;
                }
                bad
            }
        });
        futures_util::future::join_all(tasks).await.concat()
    };
    let writers = async {
        let tasks = plans.iter().enumerate().map(|(w, writes)| async move {
            let app = apps[w % apps.len()];
            let mut done = Vec::with_capacity(writes.len());
            for p in writes {
                let started = Instant::now();
                let status = write(app, ext, p).await;
                done.push(Done {
                    planned: p.clone(),
                    status,
                    started,
                    ended: Instant::now(),
                });
            }
            done
        });
        let done = futures_util::future::join_all(tasks).await.concat();
        done_writing.store(true, Ordering::Relaxed);
        done
    };
    let (bad_reads, done) = tokio::join!(readers, writers);
    assert!(
        bad_reads.is_empty(),
        "lookups answered what was never posted: {bad_reads:?}"
    );
    let mut tally = Tally::default();
    for d in &done {
        tally.add(d.status);
    }
    (done, tally, reads.load(Ordering::Relaxed))
}

/// Every account (and the global configuration) holds the pair of one acknowledged write,
/// and no acknowledged write that started after that one ended was lost.
fn check_linearizable(done: &[Done], now: &Stored) {
    let mut by_target: BTreeMap<Option<String>, Vec<&Done>> = BTreeMap::new();
    for d in done.iter().filter(|d| d.status == 200) {
        by_target
            .entry(d.planned.account.clone())
            .or_default()
            .push(d);
    }
    for (target, acked) in by_target {
        let record = match &target {
            Some(a) => now.accounts.get(a),
            None => now.global.as_ref(),
        }
        .unwrap_or_else(|| panic!("{target:?} was acknowledged but is not stored"));
        let winner = acked
            .iter()
            .find(|d| {
                d.planned.configuration == record.configuration
                    && d.planned.enabled == record.enabled
            })
            .unwrap_or_else(|| {
                panic!(
                    "{target:?} holds a configuration no acknowledged write posted (enabled={}): {}",
                    record.enabled, record.configuration
                )
            });
        let lost: Vec<_> = acked
            .iter()
            .filter(|d| d.started > winner.ended)
            .map(|d| (d.planned.writer, d.planned.seq))
            .collect();
        assert!(
            lost.is_empty(),
            "{target:?}: writes {lost:?} started after the stored one (writer {}, #{}) was acknowledged, yet it won",
            winner.planned.writer,
            winner.planned.seq
        );
    }
}

/// The cache of `app` answers what the store holds for every account, over HTTP too.
async fn check_cache(app: &TestApp, now: &Stored) {
    for a in (0..ACCOUNTS).map(account).chain([A_NONE.into()]) {
        if let Err(e) = cache_agrees(app.state(), now, &a) {
            panic!("{e}");
        }
        // The lookup API serves that cache: the SMS answer matches the stored configuration.
        let (status, source, value) = app.sms_summary(&a).await;
        assert_eq!(status, 200);
        let want = match now.accounts.get(&a) {
            Some(r) if r.enabled => ("account".to_owned(), sms_id(&r.configuration).unwrap()),
            Some(_) => ("none".to_owned(), String::new()),
            None => (
                "global".to_owned(),
                sms_id(&now.global.as_ref().unwrap().configuration).unwrap(),
            ),
        };
        assert_eq!((source, value), want, "{a}");
        // And the admin API reads the same row.
        if let Some(r) = now.accounts.get(&a) {
            let v: Value = app
                .get(&format!("{J}/multi_provider?AccountSid={a}"))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(v["configuration"], json!(r.configuration));
            assert_eq!(v["enabled"], json!(r.enabled));
        }
    }
}

/// The global configuration (`SMS_1`): the extension Sid.
async fn seed(app: &TestApp) -> String {
    app.configure(None, SMS_1).await["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn after_storm(db: &TestDb, apps: &[&TestApp], done: &[Done], tally: &Tally) -> Stored {
    assert_eq!(
        tally.count("200"),
        WRITERS * WRITES,
        "every write is acknowledged: contention waits, it is never an error: {tally}"
    );
    let (extensions, duplicates) = raw_counts(db).await;
    assert_eq!(extensions, 1, "one extension record");
    assert!(duplicates.is_empty(), "duplicate rows: {duplicates:?}");
    let (total, sids) = list_all(apps[0]).await;
    let unique: BTreeSet<&String> = sids.iter().collect();
    assert_eq!(
        unique.len(),
        sids.len(),
        "an account listed twice: {sids:?}"
    );
    assert_eq!((total, sids.len()), (ACCOUNTS as i64, ACCOUNTS));
    let now = stored(apps[0].state().configs.store()).await;
    check_linearizable(done, &now);
    now
}

on_every_db!(
    sixteen_writers_on_overlapping_accounts_lose_nothing,
    |app, db| {
        let ext = seed(&app).await;
        let plans = plan();
        let allowed = allowed(&plans, SMS_1);
        let started = Instant::now();
        let (done, tally, reads) = storm(&[&app], &ext, &plans, &allowed).await;
        let elapsed = started.elapsed();
        let now = after_storm(&db, &[&app], &done, &tally).await;
        check_cache(&app, &now).await;
        let slowest = done.iter().map(|d| d.ended - d.started).max().unwrap();
        eprintln!(
            "{}: {WRITERS}×{WRITES} writes on {ACCOUNTS} accounts + global in {elapsed:?} \
         (slowest write {slowest:?}), statuses {tally}, {reads} lookups during the storm",
            db.kind
        );
        // A fresh instance fills its cache from the database: the same answers.
        let app = app.restart().await;
        check_cache(&app, &now).await;
        app.stop().await;
    }
);

// PostgreSQL: two instances take the writes at once; each converges on what the database
// holds (its own writes at once, the other's through LISTEN/NOTIFY).
on_postgres!(two_instances_on_one_postgres_converge_on_the_store, |db| {
    let a = spawn_app(&db.url, AppOptions::default()).await;
    let ext = seed(&a).await;
    let b = spawn_app(&db.url, AppOptions::default()).await;
    let plans = plan();
    let allowed = allowed(&plans, SMS_1);
    let started = Instant::now();
    let (done, tally, reads) = storm(&[&a, &b], &ext, &plans, &allowed).await;
    let elapsed = started.elapsed();
    let now = after_storm(&db, &[&a, &b], &done, &tally).await;
    let converged = Instant::now();
    for app in [&a, &b] {
        loop {
            let lagging = (0..ACCOUNTS)
                .map(account)
                .find_map(|acc| cache_agrees(app.state(), &now, &acc).err());
            match lagging {
                None => break,
                Some(e) if converged.elapsed() > Duration::from_secs(5) => {
                    panic!("not converged after 5 s: {e}")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        check_cache(app, &now).await;
    }
    eprintln!(
        "postgres, two instances: {WRITERS}×{WRITES} writes in {elapsed:?}, statuses {tally}, \
         {reads} lookups during the storm, both caches equal to the store {:?} after the last write",
        converged.elapsed()
    );
    a.stop().await;
    b.stop().await;
});
