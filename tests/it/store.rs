//! Persistence layer tests, each on SQLite and on PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiprovider::secret::SecretKey;
use multiprovider::sid::AccountSid;
use multiprovider::store::{
    Change, ConfigRecord, ImportLine, Origin, Store, StoreError, StoreOptions, Write,
};

use crate::common::constants::sms;
use crate::common::db::{TestDb, with_pool};
use crate::common::{on_every_db, on_postgres};

fn acct(n: u32) -> AccountSid {
    AccountSid::parse(&format!("AC{n:032x}")).unwrap()
}

fn account_write(account: AccountSid, enabled: Option<bool>, config: Option<&str>) -> Write {
    Write {
        account_sid: Some(account),
        enabled,
        configuration: config.map(str::to_owned),
        ..Write::default()
    }
}

fn global_write(enabled: Option<bool>, config: Option<&str>) -> Write {
    Write {
        account_sid: None,
        enabled,
        configuration: config.map(str::to_owned),
        ..Write::default()
    }
}

/// How many revisions are stored, of every configuration.
async fn revision_rows(db: &TestDb) -> i64 {
    with_pool!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM configuration_revisions"
    )
    .fetch_one(&pool)
    .await
    .unwrap())
}

async fn open(db: &TestDb, key: Option<SecretKey>) -> Store {
    let store = Store::connect(&db.url, key)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", db.kind));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{}: migrate: {e}", db.kind));
    store
}

fn assert_extension_sid(sid: &str) {
    assert_eq!(sid.len(), 34, "{sid}");
    assert!(sid.starts_with("EX"), "{sid}");
    assert!(
        sid[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{sid}"
    );
}

/// The raw stored configuration strings (accounts and extension), read with plain sqlx.
async fn raw_configurations(db: &TestDb) -> Vec<String> {
    const SQL: &str = "SELECT configuration FROM account_configurations \
                       UNION ALL SELECT configuration FROM extensions";
    with_pool!(db, |pool| sqlx::query_scalar(SQL)
        .fetch_all(&pool)
        .await
        .unwrap())
}

on_every_db!(migrate_is_idempotent_and_backend_is_named, |db| {
    let store = open(&db, None).await;
    assert_eq!(store.backend_name(), db.kind);
    store.migrate().await.unwrap();
    let other = open(&db, None).await;
    other.migrate().await.unwrap();
    assert!(store.ping().await);
    let snapshot = store.load_all().await.unwrap();
    assert_eq!(revision_rows(&db).await, 0, "{}", db.kind);
    assert!(snapshot.global.is_none());
    assert!(snapshot.accounts.is_empty());
    store.close().await;
    other.close().await;
});

on_every_db!(
    create_requires_configuration_and_writes_nothing_without_it,
    |db| {
        let store = open(&db, None).await;
        let a = acct(1);
        for enabled in [None, Some(true), Some(false)] {
            let err = store
                .upsert(&account_write(a, enabled, None))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::MissingConfiguration),
                "{}: {err:?}",
                db.kind
            );
            let err = store
                .upsert(&global_write(enabled, None))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::MissingConfiguration),
                "{}: {err:?}",
                db.kind
            );
        }
        assert!(store.get(a).await.unwrap().is_none());
        assert!(
            store.global().await.unwrap().is_none(),
            "{}: extension created",
            db.kind
        );
        let snapshot = store.load_all().await.unwrap();
        assert_eq!(
            revision_rows(&db).await,
            0,
            "{}: a revision was kept",
            db.kind
        );
        assert!(snapshot.accounts.is_empty() && snapshot.global.is_none());
        assert_eq!(store.list_accounts(0, 50).await.unwrap().1, 0);
        store.close().await;
    }
);

on_every_db!(
    a_new_configuration_is_enabled_and_creates_the_extension,
    |db| {
        let store = open(&db, None).await;
        let a = acct(0xabc);
        let created = store
            .upsert(&account_write(a, None, Some(&sms(1000))))
            .await
            .unwrap();
        assert_eq!(created.account_sid, Some(a));
        assert_eq!(created.configuration, sms(1000));
        assert!(created.enabled, "new configuration defaults to enabled");
        assert_extension_sid(&created.extension_sid);
        assert_eq!(created.extension_name, "multi_provider");
        assert_eq!(created.date_created, created.date_updated);
        assert_eq!(
            store.get(a).await.unwrap().as_ref(),
            Some(&created),
            "{}",
            db.kind
        );
        assert_eq!(store.get(&a).await.unwrap().as_ref(), Some(&created));
        assert!(store.get(acct(0xabd)).await.unwrap().is_none());
        // The extension record came with it: `{}`, enabled, same sid.
        let global = store.global().await.unwrap().expect("extension created");
        assert_eq!(global.configuration, "{}");
        assert!(global.enabled);
        assert_eq!(global.account_sid, None);
        assert_eq!(global.extension_sid, created.extension_sid);
        store.close().await;
    }
);

on_every_db!(partial_updates_keep_the_other_field, |db| {
    let store = open(&db, None).await;
    let a = acct(0xabc);
    let created = store
        .upsert(&account_write(a, None, Some(&sms(1000))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let disabled = store
        .upsert(&account_write(a, Some(false), None))
        .await
        .unwrap();
    assert!(!disabled.enabled);
    assert_eq!(disabled.configuration, sms(1000), "configuration kept");
    assert_eq!(disabled.date_created, created.date_created);
    assert!(disabled.date_updated > created.date_updated, "{}", db.kind);
    assert_eq!((created.revision, disabled.revision), (1, 2));
    let reconfigured = store
        .upsert(&account_write(a, None, Some(&sms(7))))
        .await
        .unwrap();
    assert!(!reconfigured.enabled, "enabled kept");
    assert_eq!(reconfigured.configuration, sms(7));
    assert_eq!(reconfigured.revision, 3);
    let both = store
        .upsert(&account_write(a, Some(true), Some(&sms(8))))
        .await
        .unwrap();
    assert!(both.enabled);
    assert_eq!(both.configuration, sms(8));
    assert_eq!(store.get(a).await.unwrap().as_ref(), Some(&both));
    store.close().await;
});

on_every_db!(a_new_account_can_be_created_disabled, |db| {
    let store = open(&db, None).await;
    let b = store
        .upsert(&account_write(acct(2), Some(false), Some("{}")))
        .await
        .unwrap();
    assert!(!b.enabled);
    store.close().await;
});

/// The global configuration written three times (created with `sms(1)`, switched off,
/// given `sms(2)`): the three records.
async fn global_three_times(store: &Store) -> [ConfigRecord; 3] {
    let created = store
        .upsert(&global_write(None, Some(&sms(1))))
        .await
        .unwrap();
    let off = store
        .upsert(&global_write(Some(false), None))
        .await
        .unwrap();
    let changed = store
        .upsert(&global_write(None, Some(&sms(2))))
        .await
        .unwrap();
    [created, off, changed]
}

on_every_db!(global_upserts_keep_what_they_do_not_change, |db| {
    let store = open(&db, None).await;
    let [created, off, changed] = global_three_times(&store).await;
    assert_eq!(created.account_sid, None);
    assert!(created.enabled);
    assert_eq!(created.configuration, sms(1));
    assert_extension_sid(&created.extension_sid);
    assert!(!off.enabled);
    assert_eq!(off.configuration, sms(1));
    assert_eq!(off.date_created, created.date_created);
    assert!(!changed.enabled);
    assert_eq!(changed.configuration, sms(2));
    assert_eq!(
        (created.revision, off.revision, changed.revision),
        (1, 2, 3)
    );
    store.close().await;
});

on_every_db!(
    an_account_write_keeps_the_global_record_and_its_extension_sid,
    |db| {
        let store = open(&db, None).await;
        let [created, _, changed] = global_three_times(&store).await;
        let account = store
            .upsert(&account_write(acct(5), None, Some("{}")))
            .await
            .unwrap();
        assert_eq!(account.extension_sid, created.extension_sid);
        let global = store.global().await.unwrap().unwrap();
        assert_eq!(
            global, changed,
            "{}: account write must not touch the global record",
            db.kind
        );
        store.close().await;
    }
);

on_every_db!(records_are_identical_after_reopening, |db| {
    let store = open(&db, None).await;
    let [_, _, changed] = global_three_times(&store).await;
    let account = store
        .upsert(&account_write(acct(5), None, Some("{}")))
        .await
        .unwrap();
    store.close().await;
    // Restart: identical records (dates included).
    let store = open(&db, None).await;
    assert_eq!(
        store.global().await.unwrap().as_ref(),
        Some(&changed),
        "{}",
        db.kind
    );
    assert_eq!(
        store.get(acct(5)).await.unwrap().as_ref(),
        Some(&account),
        "{}",
        db.kind
    );
    let snapshot = store.load_all().await.unwrap();
    assert_eq!(snapshot.global.as_ref(), Some(&changed));
    assert_eq!(snapshot.accounts, vec![account.clone()]);
    store.close().await;
});

on_every_db!(delete_returns_revision_then_none, |db| {
    let store = open(&db, None).await;
    let a = acct(9);
    assert_eq!(store.delete(a).await.unwrap(), None, "{}", db.kind);
    let created = store
        .upsert(&account_write(a, None, Some("{}")))
        .await
        .unwrap();
    let other = store
        .upsert(&account_write(acct(10), None, Some("{}")))
        .await
        .unwrap();
    let revision = store.delete(&a).await.unwrap().expect("deleted");
    // Numbered per configuration: the delete is the account's second revision.
    assert_eq!((created.revision, other.revision, revision), (1, 1, 2));
    assert!(store.get(a).await.unwrap().is_none());
    assert_eq!(store.delete(a).await.unwrap(), None);
    assert_eq!(store.get(acct(10)).await.unwrap().as_ref(), Some(&other));
    let snapshot = store.load_all().await.unwrap();
    assert_eq!(snapshot.accounts.len(), 1);
    // Re-create after delete: a fresh row with a newer revision.
    let again = store
        .upsert(&account_write(a, None, Some(&sms(3))))
        .await
        .unwrap();
    assert_eq!(
        again.revision,
        revision + 1,
        "numbering continues after a delete"
    );
    assert!(again.date_created >= created.date_created);
    store.close().await;
});

on_every_db!(list_pages_with_total_in_stable_order, |db| {
    let store = open(&db, None).await;
    let (page, total) = store.list_accounts(0, 50).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 0);
    let mut created = Vec::new();
    for n in [7u32, 3, 5, 1, 6, 2, 4] {
        created.push(
            store
                .upsert(&account_write(acct(n), None, Some(&sms(n))))
                .await
                .unwrap(),
        );
    }
    let mut expected = created.clone();
    expected.sort_by(|x, y| {
        (x.date_created, x.account_sid.unwrap()).cmp(&(y.date_created, y.account_sid.unwrap()))
    });
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let (page, total) = store.list_accounts(offset, 3).await.unwrap();
        assert_eq!(total, 7);
        assert_eq!(page.len(), if offset == 6 { 1 } else { 3 });
        seen.extend(page);
    }
    assert_eq!(seen, expected, "{}", db.kind);
    let (page, total) = store.list_accounts(7, 3).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 7);
    let (page, total) = store.list_accounts(0, 0).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 7);
    let (page, _) = store.list_accounts(-5, 100).await.unwrap();
    assert_eq!(page, expected);
    // Updates do not move a configuration in the order.
    store
        .upsert(&account_write(
            expected[0].account_sid.unwrap(),
            Some(false),
            None,
        ))
        .await
        .unwrap();
    let (page, _) = store.list_accounts(0, 1).await.unwrap();
    assert_eq!(page[0].account_sid, expected[0].account_sid);
    store.close().await;
});

on_every_db!(revisions_count_per_configuration_from_one, |db| {
    let store = open(&db, None).await;
    // The first account write creates the global configuration as its revision 1.
    let mut global = 1;
    for n in 0..5u32 {
        let created = store
            .upsert(&account_write(acct(n), None, Some(&sms(n))))
            .await
            .unwrap();
        assert_eq!(created.revision, 1, "{}", db.kind);
        global += 1;
        let written = store
            .upsert(&global_write(Some(n % 2 == 0), Some(&sms(n))))
            .await
            .unwrap();
        assert_eq!(written.revision, global, "{}", db.kind);
        let disabled = store
            .upsert(&account_write(acct(n), Some(false), None))
            .await
            .unwrap();
        assert_eq!(disabled.revision, 2, "{}", db.kind);
    }
    assert_eq!(store.delete(acct(0)).await.unwrap(), Some(3));
    let again = store
        .upsert(&account_write(acct(0), None, Some("{}")))
        .await
        .unwrap();
    assert_eq!(
        again.revision, 4,
        "{}: numbering outlives a delete",
        db.kind
    );
    assert_eq!(revision_rows(&db).await, global + 5 * 2 + 2);

    let snapshot = store.load_all().await.unwrap();
    assert_eq!(snapshot.accounts.len(), 5);
    assert_eq!(snapshot.global.as_ref().unwrap().revision, global);
    for record in &snapshot.accounts {
        assert_eq!(
            store
                .get(record.account_sid.unwrap())
                .await
                .unwrap()
                .as_ref(),
            Some(record)
        );
    }
    store.close().await;
});

/// 16 tasks × 20 upserts spread over 4 accounts, all at once: each write's configuration and
/// the record it returned.
async fn concurrent_upserts(db: &TestDb, store: &Store) -> Vec<(String, ConfigRecord)> {
    const TASKS: u32 = 16;
    const WRITES: u32 = 20;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..WRITES {
                let account = acct((task + i) % CONCURRENT_ACCOUNTS);
                let config = format!(r#"{{"task": {task}, "i": {i}}}"#);
                let enabled = Some(i % 3 != 0);
                let record = store
                    .upsert(&account_write(account, enabled, Some(&config)))
                    .await
                    .map_err(|e| format!("task {task} write {i}: {e}"))?;
                done.push((config, record));
            }
            Ok::<_, String>(done)
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(
            handle
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{}: {e}", db.kind)),
        );
    }
    assert_eq!(all.len(), (TASKS * WRITES) as usize);
    all
}

const CONCURRENT_ACCOUNTS: u32 = 4;

on_every_db!(concurrent_upserts_never_fail_nor_duplicate, |db| {
    let store = open(&db, None).await;
    let all = concurrent_upserts(&db, &store).await;
    // Per account: every revision from 1 to the number of its writes, each once.
    let mut by_account: HashMap<AccountSid, Vec<i64>> = HashMap::new();
    for (_, record) in &all {
        by_account
            .entry(record.account_sid.unwrap())
            .or_default()
            .push(record.revision);
    }
    for revisions in by_account.values_mut() {
        revisions.sort_unstable();
        let expected: Vec<i64> = (1..=revisions.len() as i64).collect();
        assert_eq!(*revisions, expected, "{}: gaps or duplicates", db.kind);
    }
    let snapshot = store.load_all().await.unwrap();
    assert_eq!(
        snapshot.accounts.len(),
        CONCURRENT_ACCOUNTS as usize,
        "{}",
        db.kind
    );
    let (page, total) = store.list_accounts(0, 100).await.unwrap();
    assert_eq!(total, CONCURRENT_ACCOUNTS as i64);
    assert_eq!(page.len(), CONCURRENT_ACCOUNTS as usize);
    let mut latest: HashMap<AccountSid, &(String, ConfigRecord)> = HashMap::new();
    for item in &all {
        let account = item.1.account_sid.unwrap();
        let entry = latest.entry(account).or_insert(item);
        if item.1.revision > entry.1.revision {
            *entry = item;
        }
    }
    for record in &snapshot.accounts {
        let (config, newest) = latest[&record.account_sid.unwrap()];
        assert_eq!(
            &record.configuration, config,
            "{}: last write wins",
            db.kind
        );
        assert_eq!(record.revision, newest.revision);
        assert_eq!(record.enabled, newest.enabled);
        assert_eq!(record, newest);
    }
    store.close().await;
});

const SECRET_CONFIG: &str = r#"{"outbound-voice": [{"proxy": [{"uri": "a.com", "username": "u", "password": "hunter2-secret"}]}]}"#;

/// acct(2) written without a key (`sms(5)`); then, with `key`, acct(1) and the global
/// configuration given `SECRET_CONFIG` and acct(1) switched off. The four records.
async fn written_with_a_key(db: &TestDb, key: &SecretKey) -> [ConfigRecord; 4] {
    let plain_store = open(db, None).await;
    let legacy = plain_store
        .upsert(&account_write(acct(2), None, Some(&sms(5))))
        .await
        .unwrap();
    plain_store.close().await;
    let store = open(db, Some(key.clone())).await;
    let written = store
        .upsert(&account_write(acct(1), None, Some(SECRET_CONFIG)))
        .await
        .unwrap();
    let global = store
        .upsert(&global_write(None, Some(SECRET_CONFIG)))
        .await
        .unwrap();
    let toggled = store
        .upsert(&account_write(acct(1), Some(false), None))
        .await
        .unwrap();
    store.close().await;
    [legacy, written, global, toggled]
}

on_every_db!(with_the_key_everything_reads_back_as_written, |db| {
    let key = SecretKey::generate();
    let [legacy, written, global, toggled] = written_with_a_key(&db, &key).await;
    assert_eq!(written.configuration, SECRET_CONFIG);
    assert_eq!(global.configuration, SECRET_CONFIG);
    // Updating only Enabled keeps the encrypted configuration readable.
    assert_eq!(toggled.configuration, SECRET_CONFIG);
    let store = open(&db, Some(key)).await;
    assert_eq!(
        store.get(acct(1)).await.unwrap().unwrap().configuration,
        SECRET_CONFIG
    );
    assert_eq!(
        store.global().await.unwrap().unwrap().configuration,
        SECRET_CONFIG
    );
    // A row written before a key was configured stays readable afterwards.
    assert_eq!(store.get(acct(2)).await.unwrap().as_ref(), Some(&legacy));
    let snapshot = store.load_all().await.unwrap();
    assert!(
        snapshot
            .accounts
            .iter()
            .any(|r| r.configuration == SECRET_CONFIG)
    );
    store.close().await;
});

on_every_db!(with_a_key_nothing_is_plaintext_at_rest, |db| {
    written_with_a_key(&db, &SecretKey::generate()).await;
    let raw = raw_configurations(&db).await;
    assert_eq!(raw.len(), 3);
    for stored in &raw {
        assert!(
            !stored.contains("hunter2"),
            "{}: plaintext at rest: {stored}",
            db.kind
        );
    }
    assert_eq!(
        raw.iter().filter(|s| s.starts_with("enc:v1:")).count(),
        2,
        "{}",
        db.kind
    );
});

on_every_db!(
    without_the_key_sealed_rows_are_corrupt_and_plain_ones_readable,
    |db| {
        let [legacy, ..] = written_with_a_key(&db, &SecretKey::generate()).await;
        // Without the key, or with another one: Corrupt, and the message holds no plaintext.
        for wrong in [None, Some(SecretKey::generate())] {
            let store = open(&db, wrong).await;
            match store.get(acct(1)).await {
                Err(StoreError::Corrupt(msg)) => assert!(!msg.contains("hunter2")),
                other => panic!("{}: expected Corrupt, got {other:?}", db.kind),
            }
            assert!(matches!(
                store.load_all().await,
                Err(StoreError::Corrupt(_))
            ));
            assert_eq!(store.get(acct(2)).await.unwrap().as_ref(), Some(&legacy));
            store.close().await;
        }
    }
);

#[tokio::test]
async fn unreachable_database_is_unavailable_without_secrets() {
    // Nothing listens on port 1.
    let started = Instant::now();
    match Store::connect("postgres://someone:s3cret-pw@127.0.0.1:1/db", None).await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(!msg.contains("s3cret-pw"), "{msg}");
            assert!(!msg.contains("someone"), "{msg}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to port 1?"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        Store::connect("postgres://u:pw@[bad", None).await,
        Err(StoreError::Unavailable(msg)) if !msg.contains("pw")
    ));
    assert!(matches!(
        Store::connect("sqlite:///nonexistent-dir-for-mp-test/sub/x.db", None).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        Store::connect("mysql://localhost/x", None).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::connect("sqlite::memory:", None).await.unwrap();
    store.migrate().await.unwrap();
    let a = store
        .upsert(&account_write(acct(1), None, Some("{}")))
        .await
        .unwrap();
    assert_eq!(store.get(acct(1)).await.unwrap(), Some(a));
    assert_eq!(store.load_all().await.unwrap().accounts.len(), 1);
}

/// Inserts accounts `AC…0001` to `AC…{n:x}`, each with `sms(1000)`, straight into the table:
/// far faster than `n` upserts.
async fn insert_accounts(db: &TestDb, n: i64) {
    let config = sms(1000).replace('\'', "''");
    let sql = if db.kind == "sqlite" {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
             INSERT INTO account_configurations \
             (account_sid, configuration, enabled, date_created, date_updated, revision) \
             SELECT printf('AC%032x', i), '{config}', 1, 1700000000000000 + i, \
                    1700000000000000 + i, 1 FROM n"
        )
    } else {
        format!(
            "INSERT INTO account_configurations \
             (account_sid, configuration, enabled, date_created, date_updated, revision) \
             SELECT 'AC' || lpad(to_hex(i), 32, '0'), '{config}', TRUE, \
                    now() + i * INTERVAL '1 microsecond', now(), 1 \
             FROM generate_series(1, {n}) AS i"
        )
    };
    with_pool!(db, |pool| {
        sqlx::query(&sql).execute(&pool).await.unwrap();
    });
}

on_every_db!(load_all_is_fast_for_100k_accounts, |db| {
    const N: i64 = 100_000;
    let store = open(&db, None).await;
    // The extension record, then the accounts straight into the table.
    store.upsert(&global_write(None, Some("{}"))).await.unwrap();
    insert_accounts(&db, N).await;
    let started = Instant::now();
    let snapshot = store.load_all().await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("{}: load_all of {N} accounts took {elapsed:?}", db.kind);
    assert_eq!(snapshot.accounts.len(), N as usize);
    assert!(
        snapshot
            .accounts
            .iter()
            .all(|r| r.configuration == sms(1000))
    );
    // Release builds must be well under 3 s; unoptimised builds on a shared machine get
    // slack, which still catches per-row round trips (those take far longer).
    let bound = Duration::from_secs(if cfg!(debug_assertions) { 15 } else { 3 });
    assert!(elapsed < bound, "{}: load_all took {elapsed:?}", db.kind);
    let (page, total) = store.list_accounts(N - 10, 50).await.unwrap();
    assert_eq!((page.len(), total), (10, N));
    store.close().await;
});

async fn next(changes: &mut tokio::sync::mpsc::Receiver<Change>, within: Duration) -> Change {
    tokio::time::timeout(within, changes.recv())
        .await
        .expect("no change within the deadline")
        .expect("listener ended")
}

/// A store listening on `db` and another one writing to it; the listener has reported its
/// first `Resync`.
async fn listening(db: &TestDb) -> (Store, Store, tokio::sync::mpsc::Receiver<Change>) {
    let listener_store = open(db, None).await;
    let writer = open(db, None).await;
    let mut changes = listener_store.listen().await;
    assert_eq!(
        next(&mut changes, Duration::from_secs(5)).await,
        Change::Resync
    );
    (listener_store, writer, changes)
}

on_postgres!(listen_reports_resync_then_every_scope_written, |db| {
    let (listener_store, writer, mut changes) = listening(&db).await;
    let a = acct(0x42);
    let created = writer
        .upsert(&account_write(a, None, Some("{}")))
        .await
        .unwrap();
    // Creating the first account also creates the extension record: both scopes are reported.
    let mut got = vec![
        next(&mut changes, Duration::from_secs(1)).await,
        next(&mut changes, Duration::from_secs(1)).await,
    ];
    got.sort_by_key(|c| format!("{c:?}"));
    // The extension record is created first, in the same transaction, at its own revision.
    let extension_revision = writer.global().await.unwrap().expect("created").revision;
    assert_eq!((extension_revision, created.revision), (1, 1));
    let mut want = vec![
        Change::Scope {
            account_sid: Some(a),
            revision: created.revision,
        },
        Change::Scope {
            account_sid: None,
            revision: extension_revision,
        },
    ];
    want.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(got, want);
    let global = writer
        .upsert(&global_write(Some(false), None))
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes, Duration::from_secs(1)).await,
        Change::Scope {
            account_sid: None,
            revision: global.revision
        }
    );
    let deleted = writer.delete(a).await.unwrap().unwrap();
    assert_eq!(
        next(&mut changes, Duration::from_secs(1)).await,
        Change::Scope {
            account_sid: Some(a),
            revision: deleted
        }
    );
    drop(changes);
    writer.close().await;
    listener_store.close().await;
});

on_postgres!(failed_writes_notify_nothing, |db| {
    let (listener_store, writer, mut changes) = listening(&db).await;
    assert!(
        writer
            .upsert(&account_write(acct(0x43), None, None))
            .await
            .is_err()
    );
    assert_eq!(writer.delete(acct(0x43)).await.unwrap(), None);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), changes.recv())
            .await
            .is_err()
    );
    drop(changes);
    writer.close().await;
    listener_store.close().await;
});

on_postgres!(a_killed_listener_reconnects_and_reports_resync, |db| {
    let (listener_store, writer, mut changes) = listening(&db).await;
    // The extension record first, so that the write after the reconnection is one scope.
    let global = writer
        .upsert(&global_write(None, Some("{}")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes, Duration::from_secs(1)).await,
        Change::Scope {
            account_sid: None,
            revision: global.revision
        }
    );
    // Kill the listener's connection: it reconnects and reports Resync, then works again.
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND query ILIKE 'LISTEN%'",
    )
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert_eq!(
        next(&mut changes, Duration::from_secs(5)).await,
        Change::Resync
    );
    let a = acct(0x42);
    let again = writer
        .upsert(&account_write(a, None, Some("{}")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut changes, Duration::from_secs(1)).await,
        Change::Scope {
            account_sid: Some(a),
            revision: again.revision
        }
    );
    drop(changes);
    writer.close().await;
    listener_store.close().await;
});

on_postgres!(killed_pool_connections_reconnect_transparently, |db| {
    let store = open(&db, None).await;
    store
        .upsert(&account_write(acct(1), None, Some("{}")))
        .await
        .unwrap();
    // Every connection of the store's pool killed: the next calls reconnect transparently.
    let admin = db.postgres_admin().await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db.postgres_name())
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    assert!(store.get(acct(1)).await.unwrap().is_some());
    store
        .upsert(&account_write(acct(2), None, Some("{}")))
        .await
        .unwrap();
    store.close().await;
});

on_postgres!(
    a_lost_database_is_unavailable_quickly_and_without_secrets,
    |db| {
        let store = open(&db, None).await;
        store
            .upsert(&account_write(acct(1), None, Some("{}")))
            .await
            .unwrap();
        // The database disappears: Unavailable (never a panic or Corrupt), quickly.
        db.drop_now().await;
        let started = Instant::now();
        for result in [
            store
                .upsert(&account_write(acct(3), None, Some("{}")))
                .await
                .map(|_| ()),
            store.get(acct(1)).await.map(|_| ()),
            store.load_all().await.map(|_| ()),
        ] {
            match result {
                Err(StoreError::Unavailable(msg)) => assert!(!msg.contains(&db.url), "{msg}"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(!store.ping().await);
        assert!(started.elapsed() < Duration::from_secs(20));
        store.close().await;
    }
);

fn line(account: Option<AccountSid>, enabled: bool, configuration: String) -> ImportLine {
    ImportLine {
        account_sid: account,
        enabled,
        configuration,
    }
}

/// The revision numbers and actions of a configuration's history, newest first.
async fn actions(store: &Store, account: Option<AccountSid>) -> Vec<(i64, &'static str)> {
    let page = store.history(account, 0, 100).await.unwrap();
    page.revisions
        .iter()
        .map(|r| (r.revision, r.action.as_str()))
        .collect()
}

on_every_db!(import_in_batches_writes_as_line_by_line_would, |db| {
    let store = Store::open(
        &db.url,
        StoreOptions {
            secret: None,
            history_limit: Some(2),
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    // A dry run on an empty database keeps nothing, not even in this process: the next
    // account write still creates the extension record.
    let dry = [line(Some(acct(1)), true, sms(1))];
    let would = store.import(&dry, &Origin::cli(), true).await.unwrap();
    assert_eq!(would, [Some(acct(1))]);
    assert_eq!(revision_rows(&db).await, 0, "{}", db.kind);
    store
        .upsert(&account_write(acct(9), None, Some(&sms(9))))
        .await
        .unwrap();
    let global = store.global().await.unwrap();
    assert!(global.is_some(), "{}: no extension record", db.kind);
    assert_eq!(
        store.get(acct(9)).await.unwrap().unwrap().extension_sid,
        global.unwrap().extension_sid
    );

    // Accounts across two batches, one of them twice, the global line last.
    let mut lines = vec![
        line(Some(acct(1)), true, sms(1)),
        line(Some(acct(2)), false, sms(2)),
    ];
    lines.extend((0..1500).map(|i| line(Some(acct(100 + i)), true, sms(i))));
    lines.push(line(Some(acct(1)), true, sms(11)));
    lines.push(line(None, true, sms(7)));
    let changed = store.import(&lines, &Origin::cli(), false).await.unwrap();
    assert_eq!(changed.len(), 1503, "{}", db.kind);
    assert_eq!(&changed[..2], [Some(acct(1)), Some(acct(2))]);
    assert_eq!(changed[1502], None);
    assert_eq!(
        actions(&store, Some(acct(1))).await,
        [(2, "import"), (1, "import")]
    );
    let a1 = store.get(acct(1)).await.unwrap().unwrap();
    assert_eq!((a1.configuration, a1.revision), (sms(11), 2));
    let newest = &store.history(Some(acct(1)), 0, 1).await.unwrap().revisions[0];
    assert!(
        newest
            .changes
            .as_deref()
            .is_some_and(|c| c.contains("\"11\"")),
        "{}: {newest:?}",
        db.kind
    );
    assert!(!store.get(acct(2)).await.unwrap().unwrap().enabled);
    assert_eq!(
        store.get(acct(1599)).await.unwrap().unwrap().configuration,
        sms(1499)
    );
    assert_eq!(actions(&store, None).await, [(2, "import"), (1, "create")]);
    assert_eq!(actions(&store, Some(acct(9))).await, [(1, "create")]);

    // Again with one change: only that one, and the history limit (2) prunes revision 1.
    lines.remove(0);
    assert_eq!(lines[1501].account_sid, Some(acct(1)));
    lines[1501] = line(Some(acct(1)), true, sms(12));
    let changed = store.import(&lines, &Origin::cli(), false).await.unwrap();
    assert_eq!(changed, [Some(acct(1))], "{}", db.kind);
    assert_eq!(
        actions(&store, Some(acct(1))).await,
        [(3, "import"), (2, "import")]
    );
    let rows = revision_rows(&db).await;
    assert_eq!(rows, 2 + 2 + 1 + 1500 + 1, "{}", db.kind);
    crate::revisions::assert_revisions_consistent(&db).await;
    store.close().await;
});
