//! `multiprovider seed`: fills a database with sample accounts for benchmarks and trials,
//! through the same store code as `multiprovider import`: validated, then written in batches
//! of one transaction each, so that 1,000,000 accounts take minutes, not an hour.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::cache::RoutingCache;
use crate::configs::Configs;
use crate::secret::SecretKey;
use crate::sid::AccountSid;
use crate::store::{ImportLine, Origin, Store};

#[derive(Debug, Clone, clap::Args)]
pub struct SeedArgs {
    /// Database: `sqlite://FILE` or `postgres://…` (migrated first).
    #[arg(long, env = "DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// How many sample accounts to write.
    #[arg(long, default_value_t = 1000)]
    pub accounts: usize,
    /// Concurrent writers (each batch is one transaction; validation overlaps the writes).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Accounts per transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Encrypt stored configurations with this key, as `serve` would.
    #[arg(long, env = "MULTIPROVIDER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Print sample configuration I and exit (writes nothing).
    #[arg(long, value_name = "I")]
    pub print_sample: Option<usize>,
}

/// The account Sid of sample account `i`.
pub fn sample_account(i: usize) -> AccountSid {
    AccountSid::parse(&format!("AC{:032x}", i as u128 + 1)).expect("a valid sid")
}

/// Sample accounts use the gateways of this many carriers (account `i` those of carrier
/// `i % SAMPLE_CARRIERS`), ten each: 1,000 distinct proxies from 100 accounts on, as a
/// platform with many carriers has (what proxy health tracks, docs/operations.md).
pub const SAMPLE_CARRIERS: usize = 100;

/// Country codes of the sample proxies: proxy `j` takes `+{CODES[j]}…`, the last one the rest.
pub const SAMPLE_COUNTRY_CODES: [&str; 9] = ["1", "44", "49", "33", "34", "39", "31", "46", "61"];

/// A realistic ten-proxy voice configuration plus SMS for sample account `i`: each account
/// has its own gateways, credentials and headers; the expressions are shared by all, as an
/// operator's dial plans are.
pub fn sample_configuration(i: usize) -> String {
    let mut proxies = Vec::with_capacity(10);
    for (j, cc) in SAMPLE_COUNTRY_CODES
        .iter()
        .map(Some)
        .chain([None])
        .enumerate()
    {
        let pattern = match cc {
            Some(cc) => format!(r"\\+{cc}\\d{{6,14}}"),
            None => ".*".to_owned(),
        };
        proxies.push(format!(
            r#"{{"uri": "sip:gw{j}.carrier{c}.example.net:5060;transport=udp", "username": "acct{i}-gw{j}", "password": "pw-{i:08x}{j:08x}", "match": "{pattern}", "headers": [{{"headerName": "Request-URI", "key": "tgrp", "value": "tg{j}"}}, {{"headerName": "X-Account", "key": "acct", "value": "a{i}"}}]}}"#,
            c = i % SAMPLE_CARRIERS
        ));
    }
    format!(
        r#"{{"outbound-voice": [{{"proxy": [{}]}}], "outbound-sms": [{{"destination_network_id": "{}"}}]}}"#,
        proxies.join(", "),
        i % 5000
    )
}

pub fn run(args: SeedArgs) -> ExitCode {
    if let Some(i) = args.print_sample {
        println!("{}", sample_configuration(i));
        return ExitCode::SUCCESS;
    }
    let secret = match args
        .secret_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .map(SecretKey::parse)
    {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            eprintln!("multiprovider: MULTIPROVIDER_SECRET_KEY is invalid: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("multiprovider: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(seed(&args, secret)) {
        Ok((n, secs)) => {
            println!(
                "seeded {n} accounts in {secs:.2} s ({:.0} accounts/s)",
                n as f64 / secs
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("multiprovider: seeding failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn seed(args: &SeedArgs, secret: Option<SecretKey>) -> Result<(usize, f64), String> {
    let store = Store::connect(&args.database_url, secret)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    // Validation goes through one interner, kept alive by this first configuration, so the
    // shared expressions compile once, as in the server.
    let interner = Arc::new(crate::routing::RegexInterner::default());
    let _keep = crate::routing::compile_with(&sample_configuration(0), &interner)
        .map_err(|p| format!("{p:?}"))?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let batch = args.batch.max(1);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        // The command line's process serves no lookups: an empty cache.
        let configs = Configs::new(store.clone(), Arc::new(RoutingCache::new()));
        let (next, total) = (next.clone(), args.accounts);
        let interner = interner.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    return Ok::<(), String>(());
                }
                let mut lines = Vec::with_capacity(batch);
                for i in first..first.saturating_add(batch).min(total) {
                    let configuration = sample_configuration(i);
                    crate::routing::compile_with(&configuration, &interner)
                        .map_err(|p| format!("{p:?}"))?;
                    lines.push(ImportLine {
                        account_sid: Some(sample_account(i)),
                        enabled: true,
                        configuration,
                    });
                }
                configs
                    .import(&lines, &Origin::cli(), false)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    store.close().await;
    Ok((args.accounts, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_and_distinct() {
        for i in [0, 1, 99_999] {
            crate::routing::validate(&sample_configuration(i)).unwrap();
        }
        assert_ne!(sample_account(0), sample_account(1));
        assert_eq!(
            sample_account(0).to_string(),
            "AC00000000000000000000000000000001"
        );
    }
}
