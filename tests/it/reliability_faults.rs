//! Reliability battery, faults: the database going away under a stream of writes (PostgreSQL:
//! connections cut by a TCP proxy, backends terminated by the server), and SIGTERM under load.
//!
//! For the database faults, each account has one writer that writes sequentially, so the
//! writes of an account are totally ordered, and after each 200 the writer reads the account
//! back. Checked: every answer is a 200 or a clean 503 (the error body of docs/api.md, nothing leaked); every
//! 200 was stored (read back as written); every account ends on exactly one write — its last
//! acknowledged one, or a later one answered 503 whose commit was in flight when the
//! connection died (in doubt: reported); nothing half-written ((configuration, enabled) always
//! belong together); lookups keep answering from the cache during the outage; the service
//! recovers by itself (writes succeed, the cache equals the database again).
//!
//! A real PostgreSQL restart (`real_postgres_restart_during_a_write_stream`) restarts a
//! throw-away cluster the test creates for itself, never the server the other tests share.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::app::{AppOptions, TestApp, spawn_app};
use crate::common::constants::{
    A_NONE, ADMIN_SID, ADMIN_TOKEN, ENGINE_TOKEN, FORM, J, SMS_1, VOICE_EXAMPLE,
};
use crate::common::db::{TestDb, fresh_postgres_on, fresh_sqlite};
use crate::common::reliability::{Stored, Tally, cache_agrees, sms_id, stored};
use crate::common::tcp_proxy::TcpProxy;
use crate::common::wire::{basic, form};
use crate::common::{on_every_db, on_postgres};
use crate::revisions::assert_revisions_consistent;

const WRITERS: usize = 6;

fn account(i: usize) -> String {
    format!("AC{:032x}", 0xfa00 + i)
}

fn config(writer: usize, seq: usize) -> String {
    json!({
        "outbound-voice": [{"proxy": [{"uri": format!("w{writer}.example.com"), "password": format!("pw-{writer}-{seq}")}]}],
        "outbound-sms": [{"destination_network_id": 10_000 * (writer + 1) + seq}]
    })
    .to_string()
}

#[derive(Debug, Clone)]
struct Attempt {
    seq: usize,
    configuration: String,
    enabled: bool,
    status: u16,
    took: Duration,
    /// After a 200: what a read of the account answered (`None`: the read failed).
    read_back: Option<(String, bool)>,
}

/// What the stream saw, for the checks and the report.
#[derive(Default)]
struct Stream {
    attempts: BTreeMap<String, Vec<Attempt>>,
    lookups: usize,
    bad_lookups: Vec<String>,
}

/// Whether write `seq` of the stream posts `Enabled=true` (every fourth one switches off).
fn stream_enabled(seq: usize) -> bool {
    seq % 4 != 3
}

/// How far one writer is: the last write acknowledged (200) and the last one sent (-1: none
/// yet). Every write from the last acknowledged one to the last sent one may be what the
/// account holds (a 503 may have committed), nothing before.
struct Progress {
    acknowledged: AtomicI64,
    sent: AtomicI64,
}

impl Progress {
    fn new() -> Self {
        Progress {
            acknowledged: AtomicI64::new(-1),
            sent: AtomicI64::new(-1),
        }
    }
}

/// The lookup oracle, restated from the documented rules rather than taken from the code: an
/// account without a configuration of its own is decided by the global one (`SMS_1`: "1"),
/// one with an enabled configuration by it, one with a disabled configuration by nothing
/// (`none`). `low` is the last write acknowledged before the lookup was sent, `high` the last
/// one sent when its answer came: the account holds one of the writes `low..=high`.
fn lookup_possible(w: usize, source: &str, value: &str, low: i64, high: i64) -> bool {
    let candidates = || (low.max(0)..=high).map(|s| s as usize);
    match source {
        // Before any acknowledged write, the first may not have committed yet.
        "global" => low < 0 && value == "1",
        "account" => value.parse::<usize>().is_ok_and(|v| {
            v / 10_000 == w + 1 && candidates().any(|s| s == v % 10_000 && stream_enabled(s))
        }),
        "none" => high >= 0 && candidates().any(|s| !stream_enabled(s)),
        _ => false,
    }
}

/// Writes sequentially per account until `stop`, reading back after each 200; lookups run
/// all along and must always answer 200 with what one of the account's possible writes says.
async fn write_stream(app: &TestApp, stop: Arc<AtomicBool>) -> Stream {
    let progress: Vec<Progress> = (0..WRITERS).map(|_| Progress::new()).collect();
    let progress = &progress;
    let writers = (0..WRITERS).map(|w| {
        let stop = stop.clone();
        async move {
            let a = account(w);
            let mut attempts = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let configuration = config(w, seq);
                let enabled = stream_enabled(seq);
                progress[w].sent.store(seq as i64, Ordering::SeqCst);
                let started = Instant::now();
                let r = app
                    .post_form(
                        J,
                        &[
                            ("ExtensionName", "multi_provider"),
                            ("AccountSid", &a),
                            ("ConfigurationData", &configuration),
                            ("Enabled", if enabled { "true" } else { "false" }),
                        ],
                    )
                    .await;
                let status = r.status().as_u16();
                let took = started.elapsed();
                if status == 200 {
                    progress[w].acknowledged.store(seq as i64, Ordering::SeqCst);
                }
                let body = r.text().await.unwrap_or_default();
                if status == 503 {
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    assert_eq!(v["status"], 503, "{body}");
                    assert!(
                        !body.contains("postgres") && !body.contains(&format!("pw-{w}")),
                        "{body}"
                    );
                }
                let read_back = if status == 200 {
                    let r = app.get(&format!("{J}/multi_provider?AccountSid={a}")).await;
                    if r.status() == 200 {
                        let v: Value = r.json().await.unwrap();
                        Some((
                            v["configuration"].as_str().unwrap().to_owned(),
                            v["enabled"].as_bool().unwrap(),
                        ))
                    } else {
                        None
                    }
                } else {
                    None
                };
                if status != 200 {
                    // A client backs off a little before trying again.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                attempts.push(Attempt {
                    seq,
                    configuration,
                    enabled,
                    status,
                    took,
                    read_back,
                });
                seq += 1;
            }
            (a, attempts)
        }
    });
    let lookups = AtomicUsize::new(0);
    let reader = async {
        let mut bad = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let w = i % WRITERS;
            let low = progress[w].acknowledged.load(Ordering::SeqCst);
            let (status, source, value) = app.sms_summary(&account(w)).await;
            let high = progress[w].sent.load(Ordering::SeqCst);
            lookups.fetch_add(1, Ordering::Relaxed);
            // Whatever the database does, the cache answers one of the writes the account may
            // hold: never a wiped entry, never an older write than the last acknowledged one.
            let ok = status == 200
                && match source.as_str() {
                    "account" => value.parse::<usize>().is_ok_and(|v| v / 10_000 == w + 1),
                    "global" => value == "1",
                    "none" => true,
                    _ => false,
                }
                && lookup_possible(w, &source, &value, low, high);
            if !ok {
                bad.push(format!(
                    "{}: {status} {source} {value} (writes {low}..={high} possible)",
                    account(w)
                ));
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bad
    };
    let (done, bad_lookups) = tokio::join!(futures_util::future::join_all(writers), reader);
    Stream {
        attempts: done.into_iter().collect(),
        lookups: lookups.load(Ordering::Relaxed),
        bad_lookups,
    }
}

/// Checks the stream against what the database holds; returns (tally, in-doubt commits).
fn check_stream(stream: &Stream, now: &Stored) -> (Tally, usize) {
    assert!(
        stream.bad_lookups.is_empty(),
        "lookups failed during the outage: {:?}",
        stream.bad_lookups
    );
    let mut tally = Tally::default();
    let mut in_doubt = 0;
    for (a, attempts) in &stream.attempts {
        for at in attempts {
            tally.add(at.status);
            assert!(
                at.status == 200 || at.status == 503,
                "{a} #{}: {}",
                at.seq,
                at.status
            );
            // Every 200 was stored: the read that followed it saw exactly that write.
            if let Some(read) = &at.read_back {
                assert_eq!(
                    read,
                    &(at.configuration.clone(), at.enabled),
                    "{a} #{} was acknowledged but reads back otherwise",
                    at.seq
                );
            }
        }
        let Some(last_ok) = attempts.iter().rposition(|at| at.status == 200) else {
            continue;
        };
        let record = now
            .accounts
            .get(a)
            .unwrap_or_else(|| panic!("{a}: acknowledged writes but no row"));
        let holder = attempts
            .iter()
            .position(|at| at.configuration == record.configuration && at.enabled == record.enabled)
            .unwrap_or_else(|| {
                panic!(
                    "{a} holds a (configuration, enabled) that no single write posted: {} {}",
                    record.enabled, record.configuration
                )
            });
        assert!(
            holder >= last_ok,
            "{a}: acknowledged write #{last_ok} was lost (the row holds #{holder})"
        );
        if holder > last_ok {
            // Answered 503 although it committed: the connection died during COMMIT.
            assert_eq!(attempts[holder].status, 503);
            in_doubt += 1;
        }
    }
    (tally, in_doubt)
}

/// Polls until the cache of `app` equals the database for every account (the listener
/// reconnects and reloads after an outage).
async fn converge(app: &TestApp, db: &TestDb, within: Duration) -> (Stored, Duration) {
    let direct = multiprovider::store::Store::connect(&db.url, None)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let now = stored(&direct).await;
        let lagging = (0..WRITERS)
            .map(account)
            .chain([A_NONE.into()])
            .find_map(|a| cache_agrees(app.state(), &now, &a).err());
        match lagging {
            None => {
                direct.close().await;
                return (now, started.elapsed());
            }
            Some(e) if started.elapsed() > within => panic!("not converged after {within:?}: {e}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// After the faults: a write goes through within `within`, without a restart.
async fn recovers(app: &TestApp, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = app.write(None, Some(SMS_1), None).await;
        match r.status().as_u16() {
            200 => return started.elapsed(),
            503 if started.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("write after the faults answered {other}"),
        }
    }
}

/// The global configuration (`SMS_1`), the fall-back of the lookups.
async fn seed(app: &TestApp) {
    app.configure(None, SMS_1).await;
}

fn report(what: &str, stream: &Stream, tally: &Tally, in_doubt: usize, extra: &str) {
    let slowest_503 = stream
        .attempts
        .values()
        .flatten()
        .filter(|a| a.status == 503)
        .map(|a| a.took)
        .max()
        .unwrap_or_default();
    let read_backs = stream
        .attempts
        .values()
        .flatten()
        .filter(|a| a.read_back.is_some())
        .count();
    eprintln!(
        "{what}: writes {tally}, {read_backs} acknowledged writes read back as written, \
         {in_doubt} in-doubt commits (503 but stored), slowest 503 {slowest_503:?}, \
         {} lookups all answered from the cache; {extra}",
        stream.lookups
    );
}

on_postgres!(connections_cut_during_a_write_stream, |db| {
    let (proxy, proxied_url) = TcpProxy::in_front_of(&db).await;
    let app = spawn_app(&proxied_url, AppOptions::default()).await;
    seed(&app).await;

    let stop = Arc::new(AtomicBool::new(false));
    let cycles = 3;
    let chaos = {
        let stop = stop.clone();
        let proxy = &proxy;
        async move {
            for _ in 0..cycles {
                tokio::time::sleep(Duration::from_millis(800)).await;
                proxy.cut();
                // Longer than the pool's 3 s acquire timeout: writes do fail.
                tokio::time::sleep(Duration::from_millis(3500)).await;
                proxy.restore();
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            stop.store(true, Ordering::Relaxed);
            Instant::now()
        }
    };
    let started = Instant::now();
    let (stream, _) = tokio::join!(write_stream(&app, stop.clone()), chaos);
    let recovered = recovers(&app, Duration::from_secs(15)).await;
    let (now, converged) = converge(&app, &db, Duration::from_secs(15)).await;
    let (tally, in_doubt) = check_stream(&stream, &now);
    assert!(
        tally.count("503") > 0,
        "the cuts made no write fail: {tally}"
    );
    assert!(tally.count("200") > 0, "{tally}");
    report(
        &format!(
            "postgres, {cycles} connection cuts of 3.5 s over {:?}",
            started.elapsed()
        ),
        &stream,
        &tally,
        in_doubt,
        &format!(
            "first write after the stream took {recovered:?}, cache equal to the database after {converged:?}"
        ),
    );
    app.stop().await;
    // No revision without its configuration, no configuration without its revision.
    assert_revisions_consistent(&db).await;
});

on_postgres!(backends_terminated_during_a_write_stream, |db| {
    let app = spawn_app(&db.url, AppOptions::default()).await;
    seed(&app).await;
    let name = db.postgres_name().to_owned();
    let admin = db.postgres_admin().await;
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let stop = stop.clone();
        let admin = &admin;
        let name = &name;
        async move {
            let mut killed = 0u64;
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                // What a server restart does to every session, here to this database only.
                let n: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(name)
                .fetch_all(admin)
                .await
                .unwrap();
                killed += n.len() as u64;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.store(true, Ordering::Relaxed);
            killed
        }
    };
    let started = Instant::now();
    let (stream, killed) = tokio::join!(write_stream(&app, stop.clone()), chaos);
    let recovered = recovers(&app, Duration::from_secs(15)).await;
    let (now, converged) = converge(&app, &db, Duration::from_secs(15)).await;
    let (tally, in_doubt) = check_stream(&stream, &now);
    assert!(killed > 0);
    report(
        &format!(
            "postgres, 12 rounds of pg_terminate_backend ({killed} sessions) over {:?}",
            started.elapsed()
        ),
        &stream,
        &tally,
        in_doubt,
        &format!(
            "first write after the stream took {recovered:?}, cache equal to the database after {converged:?}"
        ),
    );
    admin.close().await;
    app.stop().await;
    assert_revisions_consistent(&db).await;
});

/// Polls until the SMS lookups of `app` (a client: no in-process state) answer what `now`
/// holds for every writer's account, for at most `within`; how long that took.
async fn lookups_converge(app: &TestApp, now: &Stored, within: Duration) -> Duration {
    let started = Instant::now();
    for w in 0..WRITERS {
        let a = account(w);
        loop {
            let got = app.sms_summary(&a).await;
            let want = match now.accounts.get(&a) {
                Some(r) if r.enabled => ("account".to_owned(), sms_id(&r.configuration).unwrap()),
                Some(_) => ("none".to_owned(), String::new()),
                None => ("global".to_owned(), "1".to_owned()),
            };
            if (got.1.clone(), got.2.clone()) == want {
                break;
            }
            assert!(started.elapsed() < within, "{a}: {got:?} != {want:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    started.elapsed()
}

/// A PostgreSQL cluster of its own for one test (Debian's `pg_createcluster`, on a free
/// loopback port, trust authentication), so that restarting it disturbs nobody; dropped with
/// its data when the test ends, passed or failed. Needs root (or the `postgres` user) and
/// Debian's postgresql-common, as the CI machines have.
struct ThrowAwayCluster {
    version: String,
    name: String,
    port: u16,
}

impl ThrowAwayCluster {
    fn create() -> ThrowAwayCluster {
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()
            .and_then(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            })
            .expect("a PostgreSQL installation from Debian's packages (/etc/postgresql/<version>)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = ThrowAwayCluster {
            name: format!("mp_restart_{}_{port}", std::process::id()),
            version,
            port,
        };
        cluster.run(
            "pg_createcluster",
            &[
                "--port",
                &port.to_string(),
                "--start",
                "--",
                "--auth-host=trust",
                "--auth-local=trust",
            ],
        );
        cluster
    }

    /// `tool <version> <name> args…`, which must succeed.
    fn run(&self, tool: &str, args: &[&str]) {
        let output = std::process::Command::new(tool)
            .args([&self.version, &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("{tool} (Debian's postgresql-common, run as root) cannot run: {e}")
            });
        assert!(
            output.status.success(),
            "{tool} {} {} {args:?}: {}{}",
            self.version,
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn restart_command(&self) -> String {
        format!(
            "pg_ctlcluster --skip-systemctl-redirect {} {} restart",
            self.version, self.name
        )
    }

    async fn ready(&self) {
        let options =
            <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(conn) = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await
            {
                let _ = sqlx::Connection::close(conn).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the throw-away cluster on port {} does not answer",
            self.port
        );
    }
}

impl Drop for ThrowAwayCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}

/// A real restart of the PostgreSQL server under the running binary, on a cluster of its
/// own (the other tests' server is never touched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(postgres_tests),
    ignore = "set TEST_DATABASE_URL to run on PostgreSQL"
)]
async fn real_postgres_restart_during_a_write_stream() {
    let cluster = ThrowAwayCluster::create();
    cluster.ready().await;
    let restart = cluster.restart_command();
    let db = fresh_postgres_on(cluster.url()).await;
    let mut child = Binary::start(&db.url).await;
    let app = child.client();
    seed(&app).await;
    let postmaster_started = || async {
        let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
        let at: String = sqlx::query_scalar("SELECT pg_postmaster_start_time()::text")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        at
    };
    let before = postmaster_started().await;
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let stop = stop.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let started = Instant::now();
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&restart)
                .status()
                .await
                .unwrap();
            assert!(status.success(), "{restart}: {status}");
            let took = started.elapsed();
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.store(true, Ordering::Relaxed);
            took
        }
    };
    let (stream, restart_took) = tokio::join!(write_stream(&app, stop.clone()), chaos);
    let recovered = recovers(&app, Duration::from_secs(30)).await;
    let direct = multiprovider::store::Store::connect(&db.url, None)
        .await
        .unwrap();
    let now = stored(&direct).await;
    let (tally, in_doubt) = check_stream(&stream, &now);
    // The restart did happen, under the binary: the server is a new one, and the binary lost
    // its connection (its change listener's, at least) and said so.
    let after = postmaster_started().await;
    assert_ne!(before, after, "the PostgreSQL server was not restarted");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.database_lost.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the binary never noticed the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tally.count("200") > 0, "{tally}");
    // The running binary's cache, seen through its lookups, converges on the database.
    let converged = lookups_converge(&app, &now, Duration::from_secs(30)).await;
    report(
        "real PostgreSQL restart",
        &stream,
        &tally,
        in_doubt,
        &format!(
            "restart command took {restart_took:?}, first write after the stream took \
             {recovered:?}, lookups equal to the database after {converged:?}"
        ),
    );
    direct.close().await;
    assert!(child.terminate().await.success());
    assert_revisions_consistent(&db).await;
}

// ------------------------------------------------------------------------ SIGTERM

/// `multiprovider serve` as a child process, with the test credentials.
struct Binary {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    /// How many times the binary logged that its database connection was lost.
    database_lost: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Binary {
    async fn start(db_url: &str) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_multiprovider"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", db_url)
            .env("MULTIPROVIDER_LISTEN", "127.0.0.1:0")
            .env("MULTIPROVIDER_ADMIN_SID", ADMIN_SID)
            .env("MULTIPROVIDER_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("MULTIPROVIDER_ENGINE_TOKEN", ENGINE_TOKEN)
            .env("RUST_LOG", "info")
            .current_dir(dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run the binary");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
                .await
                .expect("the binary logs its address")
                .unwrap()
                .expect("listening line");
            if let Some(rest) = line.split("addr=").nth(1)
                && line.contains("listening")
            {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining the log so that the child never blocks on a full pipe, counting the
        // lines that say the database connection was lost.
        let database_lost = Arc::new(AtomicUsize::new(0));
        let lost = database_lost.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if line.contains("notification connection lost")
                    || line.contains("notification listener failed")
                {
                    lost.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Binary {
            child,
            addr,
            database_lost,
            _dir: dir,
        }
    }

    /// A client of the binary (requests only: no in-process state).
    fn client(&self) -> TestApp {
        TestApp::connect_with_test_credentials(self.addr)
    }

    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().unwrap().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits within 30 s of SIGTERM")
            .unwrap()
    }
}

/// A request whose body is half sent: the server has it in flight.
struct InFlight {
    kind: &'static str,
    stream: tokio::net::TcpStream,
    rest: String,
}

impl InFlight {
    /// Sends `head` and the first half of `body` on a new connection.
    async fn send(
        addr: std::net::SocketAddr,
        kind: &'static str,
        head: String,
        body: String,
    ) -> InFlight {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        stream
            .write_all(
                format!(
                    "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{first}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        InFlight {
            kind,
            stream,
            rest: rest.to_owned(),
        }
    }

    /// 8 admin writes (`account(i)` gets `config(i, 0)`) and 8 voice lookups.
    async fn writes_and_lookups(addr: std::net::SocketAddr) -> Vec<InFlight> {
        let basic = basic(ADMIN_SID, ADMIN_TOKEN);
        let mut in_flight = Vec::new();
        for i in 0..8 {
            let body = form(&[
                ("ExtensionName", "multi_provider"),
                ("AccountSid", &account(i)),
                ("ConfigurationData", &config(i, 0)),
            ]);
            let head = format!(
                "POST {J} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic}\r\nContent-Type: {FORM}\r\n"
            );
            in_flight.push(InFlight::send(addr, "write", head, body).await);
        }
        for _ in 0..8 {
            let body = json!({"to": "+15551234", "headers": {"To": "<sip:x@y>"}}).to_string();
            let head = format!(
                "POST /v1/accounts/{}/voice-route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ENGINE_TOKEN}\r\nContent-Type: application/json\r\n",
                account(0)
            );
            in_flight.push(InFlight::send(addr, "lookup", head, body).await);
        }
        in_flight
    }

    /// Sends the rest of the body; the answer must be a complete 200 with a JSON body.
    async fn finish(mut self) -> String {
        let kind = self.kind;
        self.stream.write_all(self.rest.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            self.stream.read_to_end(&mut answer),
        )
        .await
        .expect("answered")
        .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{answer:?}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{kind}: {answer}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap();
        assert_eq!(body.len(), length, "{kind}: truncated");
        serde_json::from_str::<Value>(body).unwrap();
        format!("{kind}-200")
    }
}

/// Lookups on keep-alive connections, one task per account of 0..8, until `stop`: the status
/// of each, "no-answer" once the listener is gone.
struct LookupBurst {
    stop: Arc<AtomicBool>,
    signalled: Arc<AtomicBool>,
    /// Lookups answered so far.
    answered: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl LookupBurst {
    fn start(addr: std::net::SocketAddr) -> LookupBurst {
        let stop = Arc::new(AtomicBool::new(false));
        let signalled = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let tasks = (0..8)
            .map(|b| {
                let stop = stop.clone();
                let signalled = signalled.clone();
                let answered = answered.clone();
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let r = client
                            .get(format!(
                                "http://{addr}/v1/accounts/{}/sms-route",
                                account(b)
                            ))
                            .bearer_auth(ENGINE_TOKEN)
                            .send()
                            .await;
                        match r {
                            Ok(r) => {
                                answered.fetch_add(1, Ordering::SeqCst);
                                let status = r.status().as_u16();
                                match r.json::<Value>().await {
                                    Ok(v) if v["account_sid"] == account(b) => tally.add(status),
                                    _ => tally.add(format!("{status}-truncated")),
                                }
                            }
                            // Refused or closed before an answer: the listener is gone.
                            Err(_) if !signalled.load(Ordering::SeqCst) => {
                                tally.add("no-answer-before-the-signal")
                            }
                            Err(_) => {
                                tally.add("no-answer");
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        LookupBurst {
            stop,
            signalled,
            answered,
            tasks,
        }
    }

    /// Polls until every task has had answers (at least `n` lookups answered in all).
    async fn running(&self, n: usize) {
        let started = Instant::now();
        while self.answered.load(Ordering::SeqCst) < n {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the lookups do not get answered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// From now on a lookup without an answer is expected.
    fn signalled(&self) {
        self.signalled.store(true, Ordering::SeqCst);
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut tally = Tally::default();
        for task in self.tasks {
            tally.merge(&task.await.unwrap());
        }
        tally
    }
}

on_every_db!(sigterm_under_load_lets_in_flight_requests_finish, |db| {
    let mut bin = Binary::start(&db.url).await;
    seed_binary(&bin.client()).await;
    // Requests in flight (bodies half sent), and lookups on keep-alive connections.
    let in_flight = InFlight::writes_and_lookups(bin.addr).await;
    let burst = LookupBurst::start(bin.addr);
    burst.running(16).await;
    burst.signalled();
    bin.sigterm();
    let signalled = Instant::now();
    // No new connection is taken once shutting down: poll until a connection is refused (the
    // listener is closed as soon as the signal is handled).
    let refused = loop {
        if tokio::net::TcpStream::connect(bin.addr).await.is_err() {
            break true;
        }
        if signalled.elapsed() > Duration::from_secs(15) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        refused,
        "{}: new connections still accepted 15 s after SIGTERM",
        db.kind
    );
    assert!(
        bin.child.try_wait().unwrap().is_none(),
        "{}: exited with requests in flight",
        db.kind
    );
    // The in-flight requests finish and are answered in full.
    let mut answers = Tally::default();
    for request in in_flight {
        answers.add(request.finish().await);
    }
    let burst_tally = burst.stop().await;
    let exit = tokio::time::timeout(Duration::from_secs(30), bin.child.wait())
        .await
        .expect("exits once the in-flight requests are answered")
        .unwrap();
    let stopped_after = signalled.elapsed();
    assert!(exit.success(), "{}: {exit:?}", db.kind);
    assert!(
        burst_tally
            .statuses
            .keys()
            .all(|k| k == "200" || k == "no-answer"),
        "{}: {burst_tally}",
        db.kind
    );
    // The in-flight writes were committed.
    let store = multiprovider::store::Store::connect(&db.url, None)
        .await
        .unwrap();
    let now = stored(&store).await;
    for i in 0..8 {
        assert_eq!(now.accounts[&account(i)].configuration, config(i, 0));
    }
    store.close().await;
    assert_revisions_consistent(&db).await;
    eprintln!(
        "{}: SIGTERM with 16 requests in flight: {answers}; burst of lookups {burst_tally}; \
         new connections refused after the signal: {refused}; exit {exit} {stopped_after:?} after the signal",
        db.kind
    );
});

/// The global configuration (`SMS_1`) and `account(0)`'s (the voice example).
async fn seed_binary(app: &TestApp) {
    app.configure(None, SMS_1).await;
    app.configure(Some(&account(0)), VOICE_EXAMPLE).await;
}

/// What SIGTERM should do when a client holds a connection open without ever completing a
/// request (a half-open or slowloris connection): exit anyway after a bounded grace period.
/// The header read timeout (10 s) closes it; the shutdown deadline (30 s) bounds the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_silent_connection_open_still_exits() {
    let db = fresh_sqlite();
    let mut bin = Binary::start(&db.url).await;
    let mut silent = tokio::net::TcpStream::connect(bin.addr).await.unwrap();
    silent
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    bin.sigterm();
    // The silent connection is closed by the header read timeout (10 s); the shutdown
    // deadline (30 s) bounds everything else.
    let started = std::time::Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(40), bin.child.wait()).await;
    assert!(exit.is_ok(), "still running 40 s after SIGTERM");
    eprintln!("exited {:?} after SIGTERM", started.elapsed());
    drop(silent);
}
