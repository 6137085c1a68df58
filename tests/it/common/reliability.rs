//! Helpers of the reliability battery (`reliability_*`): status tallies for the reports, a
//! comparable picture of what the store holds, and what the cache must answer given that.

use std::collections::BTreeMap;
use std::fmt;

use multiprovider::routing::{
    self, CompiledRouting, Destination, Source, VoiceAnswer, sms_response_json, voice_response_json,
};
use multiprovider::sid::AccountSid;
use multiprovider::store::{ConfigRecord, Store};

/// A runtime for tests that drive async code from synchronous closures (proptest).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// How many answers had each status (and how many got none), for reports and messages.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub statuses: BTreeMap<String, usize>,
}

impl Tally {
    pub fn add(&mut self, key: impl fmt::Display) {
        *self.statuses.entry(key.to_string()).or_default() += 1;
    }

    pub fn count(&self, key: &str) -> usize {
        self.statuses.get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.statuses.values().sum()
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, n) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += n;
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        write!(f, "{{{}}} (total {})", parts.join(", "), self.total())
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything the store holds, in a form that compares equal exactly when nothing was written
/// (the number of revisions kept included: a rolled-back write leaves it unchanged too).
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    pub revisions: i64,
    pub global: Option<ConfigRecord>,
    pub accounts: BTreeMap<String, ConfigRecord>,
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configurations can be long: revisions and sizes tell what changed.
        let accounts: Vec<String> = self
            .accounts
            .iter()
            .map(|(sid, r)| {
                format!(
                    "{sid}@{} enabled={} {}B",
                    r.revision,
                    r.enabled,
                    r.configuration.len()
                )
            })
            .collect();
        f.debug_struct("Stored")
            .field("revisions", &self.revisions)
            .field(
                "global",
                &self.global.as_ref().map(|g| {
                    format!(
                        "@{} enabled={} {:?}",
                        g.revision, g.enabled, g.configuration
                    )
                }),
            )
            .field("accounts", &accounts)
            .finish()
    }
}

pub async fn stored(store: &Store) -> Stored {
    let snapshot = store.load_all().await.expect("load_all");
    let mut revisions = 0;
    let scopes = snapshot
        .global
        .iter()
        .chain(&snapshot.accounts)
        .map(|r| r.account_sid);
    for scope in scopes {
        revisions += store.history(scope, 0, 1).await.expect("history").total;
    }
    Stored {
        revisions,
        global: snapshot.global,
        accounts: snapshot
            .accounts
            .into_iter()
            .map(|r| (r.account_sid.expect("account record").to_string(), r))
            .collect(),
    }
}

/// The `destination_network_id` of an SMS configuration, in canonical decimal.
pub fn sms_id(configuration: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(configuration).ok()?;
    let id = &v["outbound-sms"][0]["destination_network_id"];
    match id {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.trim_start_matches('0').to_owned())
            .map(|s| if s.is_empty() { "0".to_owned() } else { s }),
        _ => None,
    }
}

/// What the cache must answer for `account` given what the store holds (README.md).
fn expected_resolution(stored: &Stored, account: &str) -> (Source, Option<CompiledRouting>) {
    let compile = |c: &str| routing::compile(c).expect("stored configurations are valid");
    if stored.global.as_ref().is_some_and(|g| !g.enabled) {
        return (Source::None, None);
    }
    if let Some(r) = stored.accounts.get(account) {
        return if r.enabled {
            (Source::Account, Some(compile(&r.configuration)))
        } else {
            (Source::None, None)
        };
    }
    match &stored.global {
        Some(g) => {
            let c = compile(&g.configuration);
            if c.is_empty() {
                (Source::None, None)
            } else {
                (Source::Global, Some(c))
            }
        }
        None => (Source::None, None),
    }
}

fn answers(account: &str, source: Source, routing: Option<&CompiledRouting>) -> [Vec<u8>; 3] {
    let sms = sms_response_json(
        Some(account),
        source,
        None,
        routing.map(|r| r.sms_tlvs()).unwrap_or_default(),
    );
    let voice = |to: &str| {
        let dest = Destination::parse(to).unwrap();
        match routing {
            Some(r) => {
                voice_response_json(Some(account), source, None, &r.resolve_voice(&dest, &[]))
            }
            None => voice_response_json(Some(account), source, None, &VoiceAnswer::none()),
        }
    };
    [sms, voice("sip:bob@uri1.com"), voice("+15551234")]
}

/// The cache of `state` answers exactly what `stored` holds for `account` (SMS, a SIP call
/// and a PSTN call); `Err` describes the difference.
pub fn cache_agrees(
    state: &multiprovider::http::AppState,
    stored: &Stored,
    account: &str,
) -> Result<(), String> {
    let sid = AccountSid::parse(account).expect("account sid");
    let got = state.configs.cache().resolve(&sid);
    let (source, compiled) = expected_resolution(stored, account);
    let got = answers(account, got.source, got.routing.as_deref());
    let want = answers(account, source, compiled.as_ref());
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "cache and store disagree for {account}: cache {}, store {}",
            String::from_utf8_lossy(&got.concat()),
            String::from_utf8_lossy(&want.concat())
        ))
    }
}
