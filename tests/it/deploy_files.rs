//! The Dockerfile, docker-compose.yml and the systemd unit, checked without a container engine
//! or a running systemd (the unit with `systemd-analyze verify`): what they set
//! are real settings, their ports and paths agree with each other and with the defaults and
//! the README, the dependency layer stands in for every target of Cargo.toml, and the health
//! check's command, run by `sh` as Docker runs it, passes against a real server (HTTP and
//! HTTPS) and fails when nothing answers.

use std::collections::BTreeSet;
use std::process::Command;

use multiprovider::config::DEFAULT_LISTEN;

use crate::common::app::spawn_custom;
use crate::common::certs::{CertFiles, TestCa};
use crate::common::db::fresh_sqlite;
use crate::common::process::BIN;
use crate::common::repo::{self, read};

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

fn dockerfile_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    for (keyword, rest) in instructions() {
        if keyword == "ENV" {
            for pair in rest.split_whitespace() {
                let (name, value) = pair.split_once('=').expect("ENV NAME=value");
                env.push((name.to_owned(), value.to_owned()));
            }
        }
    }
    env
}

/// The `environment:` map of the compose file's `multiprovider` service.
fn compose_env() -> Vec<(String, String)> {
    let compose = read("docker-compose.yml");
    let mut env = Vec::new();
    let (mut in_service, mut in_env) = (false, false);
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 2 {
            in_service = trimmed == "multiprovider:";
            in_env = false;
        } else if in_service && indent == 4 {
            in_env = trimmed == "environment:";
        } else if in_env && indent == 6 {
            let (name, value) = trimmed.split_once(':').expect("NAME: value");
            env.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    assert!(
        !env.is_empty(),
        "no environment for the multiprovider service"
    );
    env
}

/// Every `[env: NAME]` that `multiprovider serve --help` lists: the settings that exist.
fn settings() -> BTreeSet<String> {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    help.split("[env: ")
        .skip(1)
        .map(|rest| rest.split(']').next().unwrap().to_owned())
        .collect()
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn every_variable_set_is_a_setting_and_documented() {
    let settings = settings();
    assert!(settings.contains("MULTIPROVIDER_TLS_CERT"), "{settings:?}");
    let readme = read("README.md");
    for (file, env) in [
        ("Dockerfile", dockerfile_env()),
        ("docker-compose.yml", compose_env()),
    ] {
        for (name, _) in env {
            assert!(
                settings.contains(&name),
                "{file} sets {name}, which is no setting"
            );
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not in the README"
            );
        }
    }
    // And every setting is in the README's configuration table.
    for name in &settings {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} missing from the README's table"
        );
    }
    // The compose file passes the optional secret through, and its comment names it.
    let compose = read("docker-compose.yml");
    let secret = "MULTIPROVIDER_SECRET_KEY";
    assert!(
        compose.contains(&format!("{secret}: ${{{secret}:-}}")),
        "{secret}"
    );
}

/// `${NAME:?message}`: compose refuses to start while `NAME` is unset or empty.
fn required(name: &str) -> String {
    format!("${{{name}:?set {name} ")
}

#[test]
fn compose_refuses_to_start_without_the_tokens_and_the_database_password() {
    let compose = read("docker-compose.yml");
    let env: std::collections::HashMap<_, _> = compose_env().into_iter().collect();
    for name in ["MULTIPROVIDER_ADMIN_TOKEN", "MULTIPROVIDER_ENGINE_TOKEN"] {
        assert!(
            env[name].starts_with(&required(name)),
            "{name}: {}",
            env[name]
        );
        assert!(
            compose.contains(&format!("#   {name} ")),
            "{name} not explained"
        );
    }
    // The password, in the database URL and in the database service alike.
    let password = required("POSTGRES_PASSWORD");
    assert!(
        env["DATABASE_URL"].contains(&password),
        "{}",
        env["DATABASE_URL"]
    );
    assert!(
        compose.contains(&format!("POSTGRES_PASSWORD: {password}")),
        "the postgres service"
    );
    // No default password anywhere.
    assert!(!compose.contains(":multiprovider@"), "a default password");
    // Publishing the port beyond the loopback, and TLS then.
    for needed in [
        "Engines on other hosts",
        "TLS is required",
        "MULTIPROVIDER_TLS_CERT",
    ] {
        assert!(compose.contains(needed), "{needed}");
    }
}

/// The systemd unit of `integrations/systemd/`, its `ExecStart` pointing at `binary`.
fn unit_with(binary: &str) -> String {
    read("integrations/systemd/multiprovider.service")
        .replace("/usr/local/bin/multiprovider", binary)
}

#[test]
fn the_systemd_unit_is_hardened_and_verified() {
    let unit = read("integrations/systemd/multiprovider.service");
    for line in [
        "ExecStart=/usr/local/bin/multiprovider serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "EnvironmentFile=/etc/multiprovider/multiprovider.env",
        "DynamicUser=yes",
        "StateDirectory=multiprovider",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(line), "{line:?} missing from the unit");
    }
    // The example environment file sets only settings, and the database in the state
    // directory.
    let settings = settings();
    let example = read("integrations/systemd/multiprovider.env.example");
    for line in example.lines().map(str::trim) {
        let line = line.trim_start_matches('#');
        if let Some((name, _)) = line.split_once('=')
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        {
            assert!(settings.contains(name), "{name} is no setting");
        }
    }
    assert!(example.contains("DATABASE_URL=sqlite:///var/lib/multiprovider/"));

    // `systemd-analyze verify`, with the built binary as ExecStart (it checks that it
    // exists). Required in CI (`MULTIPROVIDER_REQUIRE_SYSTEMD=1`).
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        assert!(
            std::env::var("MULTIPROVIDER_REQUIRE_SYSTEMD").as_deref() != Ok("1"),
            "MULTIPROVIDER_REQUIRE_SYSTEMD=1 but systemd-analyze is missing (apt-get install systemd)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let verify = |text: &str| {
        let path = dir.path().join("multiprovider.service");
        std::fs::write(&path, text).unwrap();
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let binary = std::fs::canonicalize(BIN).unwrap();
    let (ok, complaints) = verify(&unit_with(binary.to_str().unwrap()));
    assert!(
        ok && complaints.trim().is_empty(),
        "systemd-analyze verify:\n{complaints}"
    );
    // The check sees mistakes: an unknown key is a complaint, a missing binary a failure.
    let (_, complaints) = verify(
        &unit_with(binary.to_str().unwrap())
            .replace("DynamicUser=yes", "DynamicUser=yes\nDynamicUsr=yes"),
    );
    assert!(complaints.contains("DynamicUsr"), "{complaints}");
    let (ok, _) = verify(&unit_with("/nonexistent/multiprovider"));
    assert!(!ok);
}

#[test]
fn ports_and_paths_agree() {
    let env: std::collections::HashMap<_, _> = dockerfile_env().into_iter().collect();
    let listen = &env["MULTIPROVIDER_LISTEN"];
    assert!(
        listen.starts_with("0.0.0.0:"),
        "a container listens on all interfaces: {listen}"
    );
    assert_eq!(
        port(listen),
        port(DEFAULT_LISTEN),
        "the default port, as the README says"
    );
    let instructions = instructions();
    let value = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(value("EXPOSE"), [port(listen)]);

    // The SQLite file is in the volume, which is the non-root user's home and working dir.
    let volume = value("VOLUME")[0]
        .trim_matches(|c| "[]\"".contains(c))
        .to_owned();
    let database = env["DATABASE_URL"]
        .strip_prefix("sqlite://")
        .expect("SQLite by default");
    assert!(
        database.starts_with(&format!("{volume}/")),
        "{database} outside {volume}"
    );
    assert!(value("WORKDIR").contains(&volume));
    assert!(
        value("RUN")
            .iter()
            .any(|r| r.contains(&format!("--home-dir {volume}")))
    );

    // The binary the runtime copies is the one the builder built, and the entrypoint.
    let builder_dir = &value("WORKDIR")[0];
    let copy = value("COPY")
        .into_iter()
        .find(|c| c.starts_with("--from=builder"))
        .expect("COPY --from=builder");
    let parts: Vec<&str> = copy.split_whitespace().collect();
    assert_eq!(
        parts[1],
        format!("{builder_dir}/target/release/multiprovider")
    );
    assert_eq!(value("ENTRYPOINT"), ["[\"multiprovider\"]"]);
    assert!(parts[2].ends_with("/bin/multiprovider"));
    assert_eq!(value("CMD"), ["[\"serve\"]"]);

    // Compose: the container port is the one it listens on; the database is the service.
    let compose_env: std::collections::HashMap<_, _> = compose_env().into_iter().collect();
    let compose = read("docker-compose.yml");
    let published = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("- \"127.0.0.1:"))
        .expect("a port published on the loopback");
    assert_eq!(
        published.trim_end_matches('"').rsplit(':').next().unwrap(),
        port(&compose_env["MULTIPROVIDER_LISTEN"])
    );
    let url = &compose_env["DATABASE_URL"];
    assert!(
        url.starts_with("postgres://multiprovider:${POSTGRES_PASSWORD:?")
            && url.ends_with("}@postgres:5432/multiprovider"),
        "user, password and database of the postgres service: {url}"
    );
    for line in [
        "POSTGRES_USER: multiprovider",
        "POSTGRES_DB: multiprovider",
        "condition: service_healthy",
    ] {
        assert!(compose.contains(line), "{line}");
    }
}

#[test]
fn the_dependency_layer_stands_in_for_every_target_and_comes_first() {
    let instructions = instructions();
    let position = |pred: &dyn Fn(&(String, String)) -> bool| {
        instructions.iter().position(pred).expect("instruction")
    };
    let manifests = position(&|(k, v)| k == "COPY" && v == "Cargo.toml Cargo.lock ./");
    let dependencies = position(&|(k, v)| k == "RUN" && v.contains("cargo build"));
    let sources = position(&|(k, v)| k == "COPY" && v.starts_with("src "));
    assert!(
        manifests < dependencies && dependencies < sources,
        "{instructions:?}"
    );
    // Nothing but the manifests before the dependency build.
    assert!(
        instructions[..dependencies]
            .iter()
            .filter(|(k, _)| k == "COPY")
            .count()
            == 1
    );
    let stub = &instructions[dependencies].1;
    // Every target of Cargo.toml has a stand-in, or cargo refuses the manifest.
    let manifest = read("Cargo.toml");
    let mut paths = vec!["src/main.rs".to_owned(), "src/lib.rs".to_owned()];
    let mut in_bench = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        }
        if in_bench && let Some(name) = line.strip_prefix("name = ") {
            paths.push(format!("benches/{}.rs", name.trim_matches('"')));
        }
    }
    for path in &paths {
        assert!(stub.contains(path), "no stand-in for {path}: {stub}");
    }
    assert!(!manifest.contains("[[test]]") && !manifest.contains("[[example]]"));
    // The stand-ins' build is forgotten, so that COPY's old file times cannot pass it off as
    // the real one.
    assert!(stub.contains(".fingerprint/multiprovider-*"), "{stub}");
    // Every copied path exists and is not excluded by .dockerignore.
    let ignored = read(".dockerignore");
    for (keyword, rest) in &instructions {
        if keyword == "COPY" && !rest.starts_with("--from") {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            for source in &parts[..parts.len() - 1] {
                assert!(repo::path(source).exists(), "{source}");
                assert!(
                    !ignored.lines().any(|l| l.trim_end_matches('/') == *source),
                    "{source} is in .dockerignore"
                );
            }
        }
    }
}

/// The HEALTHCHECK's command, run as Docker runs it (`/bin/sh -c`), with `env`.
fn health_check(env: &[(&str, &str)]) -> std::process::Output {
    let (_, rest) = instructions()
        .into_iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .expect("HEALTHCHECK");
    let command = rest
        .split_once(" CMD ")
        .expect("HEALTHCHECK … CMD")
        .1
        .to_owned();
    Command::new("/bin/sh")
        .arg("-c")
        .arg(&command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("sh")
}

#[tokio::test]
async fn the_health_check_follows_the_listen_address_and_tls() {
    // Plain HTTP, on a port the Dockerfile does not know of, on all interfaces.
    let db = fresh_sqlite();
    let app = spawn_custom(&db.url, |settings| {
        settings.listen = "0.0.0.0:0".parse().unwrap();
    })
    .await;
    let port = app.addr.port();
    let all = format!("0.0.0.0:{port}");
    let loopback = format!("127.0.0.1:{port}");
    for listen in [&all, &loopback] {
        let o = tokio::task::spawn_blocking({
            let listen = listen.clone();
            move || health_check(&[("MULTIPROVIDER_LISTEN", &listen)])
        })
        .await
        .unwrap();
        assert!(
            o.status.success(),
            "{listen}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    app.stop().await;
    // Nothing listens there any more: unhealthy.
    let o = tokio::task::spawn_blocking(move || health_check(&[("MULTIPROVIDER_LISTEN", &all)]))
        .await
        .unwrap();
    assert!(!o.status.success());

    // HTTPS.
    let files = CertFiles::new(&TestCa::new("health check CA").leaf());
    let db = fresh_sqlite();
    let app = spawn_custom(&db.url, |settings| {
        settings.listen = "0.0.0.0:0".parse().unwrap();
        settings.tls = Some(files.tls_files());
    })
    .await;
    let listen = format!("0.0.0.0:{}", app.addr.port());
    let cert = files.cert().display().to_string();
    let (with_tls, without) = tokio::task::spawn_blocking(move || {
        (
            health_check(&[
                ("MULTIPROVIDER_LISTEN", &listen),
                ("MULTIPROVIDER_TLS_CERT", &cert),
            ]),
            health_check(&[("MULTIPROVIDER_LISTEN", &listen)]),
        )
    })
    .await
    .unwrap();
    assert!(
        with_tls.status.success(),
        "{}",
        String::from_utf8_lossy(&with_tls.stderr)
    );
    assert!(!without.status.success(), "plain HTTP against HTTPS passed");
    app.stop().await;
}
