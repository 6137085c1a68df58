//! The write paths, written once for both backends (docs/api.md: writes and revisions).
//!
//! Every write runs `write_scope` inside a transaction: lock the configuration, read its head
//! (newest revision) and current row, ask `plan::plan` what to do with them (the decision is
//! pure and unit-tested there), and if anything changes store the row, the head and the
//! revision together. What differs between the backends is in `Dialect`: how a write
//! transaction begins and locks, how a date is bound, and how other processes are told.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use sqlx::{Database, Transaction};

use super::plan::{self, NewRevision, Plan, Stored, StoredRow, Wanted};
use super::rows::{AccountRow, ExtensionId};
use super::{
    Action, Condition, ConfigRecord, EXTENSION_NAME, NOTIFY_CHANNEL, Origin, StoreError, Write,
    Written, now_micros, scope_key,
};
use crate::secret;
use crate::sid::AccountSid;

/// More changed configurations than this in one transaction are announced as one resync.
const ANNOUNCE_ONE_BY_ONE: usize = 64;

/// Account lines an import writes with one statement per table: 5 parameters a row at most,
/// well within SQLite's 32,766 and PostgreSQL's 65,535.
const IMPORT_BATCH: usize = 1000;

/// One line of `multiprovider import`: the configuration's whole new state.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportLine {
    pub account_sid: Option<AccountSid>,
    pub enabled: bool,
    pub configuration: String,
}

impl std::fmt::Debug for ImportLine {
    // The configuration holds proxy passwords: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportLine")
            .field("account_sid", &self.account_sid)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// What a write asks of one configuration, before anything is read.
enum Target<'a> {
    /// Create or update; `None` keeps what is stored. `action`: see `Wanted::Set`.
    Set {
        enabled: Option<bool>,
        configuration: Option<&'a str>,
        action: Option<Action>,
    },
    /// Take revision n's state.
    Restore(i64),
    Delete,
}

/// One changed line of an import batch: the account's Sid, the line, its new revision, and
/// its configuration and changes as stored (sealed).
struct BatchChange<'l> {
    sid: &'l str,
    line: &'l super::ImportLine,
    revision: i64,
    sealed: String,
    changes: Option<String>,
}

/// One write transaction and what every configuration written in it shares: who writes,
/// the change sequence it carries (SQLite), how it locks, and the scopes written so far
/// (announced at commit).
struct WriteTx<'o, DB: Database> {
    tx: Transaction<'static, DB>,
    seq: Option<i64>,
    lock: Lock,
    origin: &'o Origin,
    written: Vec<(Option<AccountSid>, i64)>,
}

/// A configuration as it stands inside the write transaction.
struct Current {
    /// The newest revision, a delete's included; `None` if it never existed.
    head: Option<i64>,
    /// The stored configuration (plaintext), `None` if it does not exist now.
    row: Option<CurrentRow>,
    /// The extension's identity, known when the extension row was read.
    extension: Option<ExtensionId>,
}

struct CurrentRow {
    configuration: String,
    enabled: bool,
    date_created: i64,
    date_updated: i64,
    revision: i64,
}

/// What `write_scope` did.
enum Outcome {
    Written {
        revision: i64,
        /// `None` after a delete.
        record: Option<ConfigRecord>,
    },
    /// Nothing changed: the current record.
    Unchanged(ConfigRecord),
    /// A delete of a configuration that does not exist.
    Absent,
}

/// How a write transaction locks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Writers of one configuration exclude each other; writers of different ones run
    /// concurrently.
    PerConfiguration,
    /// This transaction excludes every other writer (a bulk import).
    Everything,
}

impl_db!(
    /// Begins a write transaction for `origin`.
    async fn begin_write_by<'o>(
        &self,
        lock: Lock,
        origin: &'o Origin,
    ) -> Result<WriteTx<'o, DB>, StoreError> {
        let (tx, seq) = self.begin_write(lock).await?;
        Ok(WriteTx {
            tx,
            seq,
            lock,
            origin,
            written: Vec::new(),
        })
    }

    /// Begins a write transaction; `Some(seq)` is the change sequence this transaction's
    /// writes carry (SQLite).
    async fn begin_write(
        &self,
        lock: Lock,
    ) -> Result<(Transaction<'static, DB>, Option<i64>), StoreError> {
        let mut tx = self.pool.begin_with(self.dialect.begin_write).await?;
        let gate = match lock {
            Lock::PerConfiguration => self.dialect.gate_shared,
            Lock::Everything => self.dialect.gate_exclusive,
        };
        if let Some(gate) = gate {
            sqlx::query(gate).execute(&mut *tx).await?;
        }
        let seq = match self.dialect.bump_change_seq {
            Some(sql) => Some(sqlx::query_scalar(sql).fetch_one(&mut *tx).await?),
            None => None,
        };
        Ok((tx, seq))
    }

    /// Tells other processes about committed changes (PostgreSQL: NOTIFY, delivered if and
    /// only if the transaction commits). SQLite's followers read the change sequence.
    async fn announce(&self, w: &mut WriteTx<'_, DB>) -> Result<(), StoreError> {
        let Some(notify) = self.dialect.notify else {
            return Ok(());
        };
        let (tx, changed) = (&mut w.tx, &w.written);
        if changed.len() > ANNOUNCE_ONE_BY_ONE {
            sqlx::query(notify)
                .bind(NOTIFY_CHANNEL)
                .bind("resync")
                .execute(&mut **tx)
                .await?;
            return Ok(());
        }
        for (account, revision) in changed {
            let payload = format!("{}:{revision}", scope_key(account.as_ref()));
            sqlx::query(notify)
                .bind(NOTIFY_CHANNEL)
                .bind(payload)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Creates or updates one configuration (docs/api.md), checking `write.condition`.
    pub async fn upsert(&self, write: &Write, origin: &Origin) -> Result<Written, StoreError> {
        let mut w = self.begin_write_by(Lock::PerConfiguration, origin).await?;
        let target = Target::Set {
            enabled: write.enabled,
            configuration: write.configuration.as_deref(),
            action: None,
        };
        let outcome = self
            .write_scope(&mut w, write.account_sid, target, &write.condition)
            .await?;
        self.finish(w, outcome).await
    }

    /// Restores revision `revision` of a configuration as a new revision.
    pub async fn rollback(
        &self,
        account: Option<AccountSid>,
        revision: i64,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Written, StoreError> {
        let mut w = self.begin_write_by(Lock::PerConfiguration, origin).await?;
        let outcome = self
            .write_scope(&mut w, account, Target::Restore(revision), condition)
            .await?;
        self.finish(w, outcome).await
    }

    /// Deletes an account's configuration; `None` when it does not exist.
    pub async fn delete(
        &self,
        account: AccountSid,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Option<i64>, StoreError> {
        let mut w = self.begin_write_by(Lock::PerConfiguration, origin).await?;
        let outcome = self
            .write_scope(&mut w, Some(account), Target::Delete, condition)
            .await?;
        match outcome {
            Outcome::Written { revision, .. } => {
                self.announce(&mut w).await?;
                w.tx.commit().await?;
                Ok(Some(revision))
            }
            Outcome::Absent | Outcome::Unchanged(_) => {
                w.tx.rollback().await?;
                Ok(None)
            }
        }
    }

    /// Every line in one transaction (`Lock::Everything`: no lock per configuration, which
    /// PostgreSQL could not hold by the hundred thousand). The global configuration's line is
    /// written first (it may create the extension record); the accounts' lines in batches of
    /// `IMPORT_BATCH`, a few statements a batch rather than a few a line. Returns the changed
    /// scopes, in the order of `lines`.
    pub async fn import(
        &self,
        lines: &[super::ImportLine],
        origin: &Origin,
        dry_run: bool,
    ) -> Result<Vec<Option<AccountSid>>, StoreError> {
        let mut w = self.begin_write_by(Lock::Everything, origin).await?;
        let mut changed = HashSet::new();
        for line in lines.iter().filter(|l| l.account_sid.is_none()) {
            let target = Target::Set {
                enabled: Some(line.enabled),
                configuration: Some(&line.configuration),
                action: Some(Action::Import),
            };
            let outcome = self
                .write_scope(&mut w, None, target, &Condition::default())
                .await?;
            if let Outcome::Written { .. } = outcome {
                changed.insert(None);
            }
        }
        if lines.iter().any(|l| l.account_sid.is_some()) {
            self.ensure_extension(&mut w).await?;
        }
        // A batch never holds one account twice: a repeated line goes to the next batch,
        // which reads what the first one wrote, as line-by-line writes would.
        let mut batch: Vec<(AccountSid, &super::ImportLine)> = Vec::new();
        let mut in_batch = HashSet::new();
        for line in lines {
            let Some(account) = line.account_sid else {
                continue;
            };
            if batch.len() == IMPORT_BATCH || !in_batch.insert(account) {
                self.import_batch(&mut w, &batch, &mut changed).await?;
                batch.clear();
                in_batch.clear();
                in_batch.insert(account);
            }
            batch.push((account, line));
        }
        self.import_batch(&mut w, &batch, &mut changed).await?;
        if dry_run {
            w.tx.rollback().await?;
        } else {
            self.announce(&mut w).await?;
            w.tx.commit().await?;
        }
        let mut reported = HashSet::new();
        Ok(lines
            .iter()
            .map(|l| l.account_sid)
            .filter(|a| changed.contains(a) && reported.insert(*a))
            .collect())
    }

    /// Writes a batch of account lines (distinct accounts) inside an import's transaction:
    /// reads their heads and rows in one statement each, plans each line as a single write
    /// would be planned, then stores every changed one — row, head and revision — in one
    /// multi-row statement per table.
    async fn import_batch(
        &self,
        w: &mut WriteTx<'_, DB>,
        batch: &[(AccountSid, &super::ImportLine)],
        changed: &mut HashSet<Option<AccountSid>>,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sids: Vec<String> = batch.iter().map(|(a, _)| a.to_string()).collect();
        let (heads, mut rows) = self.batch_current(&mut w.tx, &sids).await?;
        // What changes, decided as for a single write.
        let mut changes = Vec::new();
        for ((account, line), sid) in batch.iter().zip(&sids) {
            let configuration = match rows.remove(sid) {
                Some(row) => Some((
                    secret::open(self.secret.as_ref(), &row.config.configuration)
                        .map_err(|e| StoreError::Corrupt(format!("configuration of {sid}: {e}")))?,
                    row.config.enabled,
                    row.config.revision,
                )),
                None => None,
            };
            let current = Stored {
                head: heads.get(sid).copied(),
                row: configuration
                    .as_ref()
                    .map(|(configuration, enabled, revision)| StoredRow {
                        configuration,
                        enabled: *enabled,
                        revision: *revision,
                    }),
            };
            let wanted = Wanted::Set {
                enabled: Some(line.enabled),
                configuration: Some(&line.configuration),
                action: Some(Action::Import),
            };
            let Plan::Write(new) = plan::plan(wanted, &current, &Condition::default())? else {
                continue;
            };
            changes.push(BatchChange {
                sid,
                line,
                revision: new.revision,
                sealed: secret::seal(self.secret.as_ref(), &line.configuration),
                changes: new.changes.map(|p| secret::seal(self.secret.as_ref(), &p)),
            });
            w.written.push((Some(*account), new.revision));
            changed.insert(Some(*account));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        self.insert_batch_rows(&mut w.tx, &changes, now).await?;
        self.insert_batch_heads(&mut w.tx, &changes, w.seq).await?;
        self.insert_batch_revisions(&mut w.tx, &changes, now, w.origin)
            .await?;
        self.prune_batch(&mut w.tx, &changes).await
    }

    /// The heads and current rows of a batch's accounts, by Sid.
    async fn batch_current(
        &self,
        tx: &mut Transaction<'static, DB>,
        sids: &[String],
    ) -> Result<(HashMap<String, i64>, HashMap<String, AccountRow>), StoreError> {
        let list = |first: usize| {
            (first..first + sids.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let heads_query = format!(
            "SELECT scope, revision FROM configuration_heads WHERE scope IN ({})",
            list(1)
        );
        let mut query = sqlx::query_as::<_, (String, i64)>(&heads_query);
        for sid in sids {
            query = query.bind(sid.as_str());
        }
        let heads: HashMap<String, i64> = query.fetch_all(&mut **tx).await?.into_iter().collect();
        let rows_query = format!(
            "SELECT {} FROM account_configurations WHERE account_sid IN ({})",
            self.dialect.account_columns,
            list(1)
        );
        let mut query = sqlx::query_as::<_, AccountRow>(&rows_query);
        for sid in sids {
            query = query.bind(sid.as_str());
        }
        let rows: HashMap<String, AccountRow> = query
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|row| (row.account_sid.clone(), row))
            .collect();

        Ok((heads, rows))
    }

    /// The rows of a batch's changes, in one statement.
    async fn insert_batch_rows(
        &self,
        tx: &mut Transaction<'static, DB>,
        changes: &[BatchChange<'_>],
        now: i64,
    ) -> Result<(), StoreError> {
        let ts = self.dialect.timestamp;
        // The rows: `$1` the date, then 4 parameters a row.
        let values: Vec<String> = (0..changes.len())
            .map(|i| {
                let p = 2 + 4 * i;
                format!(
                    "(${p}, ${}, ${}, {t}, {t}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    t = ts(1)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO account_configurations (account_sid, configuration, enabled, \
             date_created, date_updated, revision) VALUES {} \
             ON CONFLICT (account_sid) DO UPDATE SET \
             configuration = excluded.configuration, enabled = excluded.enabled, \
             date_updated = excluded.date_updated, revision = excluded.revision",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(now);
        for c in changes {
            query = query
                .bind(c.sid)
                .bind(c.sealed.as_str())
                .bind(c.line.enabled)
                .bind(c.revision);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// The heads of a batch's changes, in one statement (with the change sequence where it
    /// is kept).
    async fn insert_batch_heads(
        &self,
        tx: &mut Transaction<'static, DB>,
        changes: &[BatchChange<'_>],
        seq: Option<i64>,
    ) -> Result<(), StoreError> {
        // The heads: 2 parameters a row, and the change sequence (`$1`) where it is kept.
        let sql = match seq {
            Some(_) => format!(
                "INSERT INTO configuration_heads (scope, revision, seq) VALUES {} \
                 ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision, \
                 seq = excluded.seq",
                (0..changes.len())
                    .map(|i| format!("(${}, ${}, $1)", 2 + 2 * i, 3 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "INSERT INTO configuration_heads (scope, revision) VALUES {} \
                 ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision",
                (0..changes.len())
                    .map(|i| format!("(${}, ${})", 1 + 2 * i, 2 + 2 * i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut query = sqlx::query(&sql);
        if let Some(seq) = seq {
            query = query.bind(seq);
        }
        for c in changes {
            query = query.bind(c.sid).bind(c.revision);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// The revisions of a batch's changes, in one statement.
    async fn insert_batch_revisions(
        &self,
        tx: &mut Transaction<'static, DB>,
        changes: &[BatchChange<'_>],
        now: i64,
        origin: &Origin,
    ) -> Result<(), StoreError> {
        let ts = self.dialect.timestamp;
        // The revisions: `$1`–`$4` shared (action, date, actor, address), 5 parameters a row.
        let values: Vec<String> = (0..changes.len())
            .map(|i| {
                let p = 5 + 5 * i;
                format!(
                    "(${p}, ${}, $1, {}, $3, $4, ${}, ${}, NULL, ${})",
                    p + 1,
                    ts(2),
                    p + 2,
                    p + 3,
                    p + 4
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO configuration_revisions (scope, revision, action, date_created, actor, \
             remote_addr, enabled, configuration, rollback_of, changes) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(Action::Import.as_str())
            .bind(now)
            .bind(origin.actor.as_str())
            .bind(origin.remote_addr.as_deref());
        for c in changes {
            query = query
                .bind(c.sid)
                .bind(c.revision)
                .bind(c.line.enabled)
                .bind(c.sealed.as_str())
                .bind(c.changes.as_deref());
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// Prunes, for a batch's changes, the revisions beyond the history limit.
    async fn prune_batch(
        &self,
        tx: &mut Transaction<'static, DB>,
        changes: &[BatchChange<'_>],
    ) -> Result<(), StoreError> {
        // Pruning beyond the history limit.
        {
            let pruned: Vec<(&str, i64)> = changes
                .iter()
                .filter_map(|c| Some((c.sid, plan::oldest_kept(c.revision, self.history_limit)?)))
                .collect();
            if !pruned.is_empty() {
                let sql = format!(
                    "DELETE FROM configuration_revisions WHERE {}",
                    (0..pruned.len())
                        .map(|i| format!("(scope = ${} AND revision < ${})", 1 + 2 * i, 2 + 2 * i))
                        .collect::<Vec<_>>()
                        .join(" OR ")
                );
                let mut query = sqlx::query(&sql);
                for (sid, oldest_kept) in pruned {
                    query = query.bind(sid).bind(oldest_kept);
                }
                query.execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// Commits a written configuration (announcing every scope `written`), or rolls back an
    /// unchanged one.
    async fn finish(
        &self,
        mut w: WriteTx<'_, DB>,
        outcome: Outcome,
    ) -> Result<Written, StoreError> {
        match outcome {
            Outcome::Written {
                record: Some(record),
                ..
            } => {
                self.announce(&mut w).await?;
                w.tx.commit().await?;
                // Committed: the extension record exists for good.
                if !record.extension_sid.is_empty() {
                    self.remember_extension(ExtensionId {
                        sid: record.extension_sid.clone(),
                        name: record.extension_name.clone(),
                    });
                }
                Ok(Written {
                    record,
                    changed: true,
                })
            }
            Outcome::Unchanged(record) => {
                w.tx.rollback().await?;
                Ok(Written {
                    record,
                    changed: false,
                })
            }
            Outcome::Written { record: None, .. } | Outcome::Absent => {
                w.tx.rollback().await?;
                Err(StoreError::Corrupt(
                    "a write left no configuration behind".into(),
                ))
            }
        }
    }

    /// Reads a configuration's head and current row inside `tx`.
    async fn current(
        &self,
        tx: &mut Transaction<'static, DB>,
        account: Option<AccountSid>,
    ) -> Result<Current, StoreError> {
        let scope = scope_key(account.as_ref());
        let head: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM configuration_heads WHERE scope = $1")
                .bind(&scope)
                .fetch_optional(&mut **tx)
                .await?;
        let open = |configuration: &str| {
            secret::open(self.secret.as_ref(), configuration)
                .map_err(|e| StoreError::Corrupt(format!("configuration of {scope}: {e}")))
        };
        let (row, extension) = match account {
            None => match self.extension(&mut **tx).await? {
                Some(ext) => {
                    let id = ext.id();
                    let row = CurrentRow {
                        configuration: open(&ext.config.configuration)?,
                        enabled: ext.config.enabled,
                        date_created: ext.config.date_created,
                        date_updated: ext.config.date_updated,
                        revision: ext.config.revision,
                    };
                    (Some(row), Some(id))
                }
                None => (None, None),
            },
            Some(account) => {
                let sql = format!(
                    "SELECT {} FROM account_configurations WHERE account_sid = $1",
                    self.dialect.account_columns
                );
                let row: Option<AccountRow> = sqlx::query_as(&sql)
                    .bind(account.to_string())
                    .fetch_optional(&mut **tx)
                    .await?;
                let row = match row {
                    Some(row) => Some(CurrentRow {
                        configuration: open(&row.config.configuration)?,
                        enabled: row.config.enabled,
                        date_created: row.config.date_created,
                        date_updated: row.config.date_updated,
                        revision: row.config.revision,
                    }),
                    None => None,
                };
                (row, None)
            }
        };
        Ok(Current {
            head,
            row,
            extension,
        })
    }

    /// The extension's identity, creating the extension record (global configuration `{}`,
    /// enabled, as its revision 1) when an account is written before it exists.
    async fn ensure_extension(&self, w: &mut WriteTx<'_, DB>) -> Result<ExtensionId, StoreError> {
        if let Some(id) = self.known_extension() {
            return Ok(id);
        }
        // Not remembered here: this transaction may have created it and may yet roll back
        // (a dry run, a lost connection). `finish` remembers it once committed.
        if let Some(row) = self.extension(&mut *w.tx).await? {
            return Ok(row.id());
        }
        let target = Target::Set {
            enabled: Some(true),
            configuration: Some("{}"),
            action: None,
        };
        let outcome = Box::pin(self.write_scope(w, None, target, &Condition::default())).await?;
        match outcome {
            Outcome::Written {
                record: Some(record),
                ..
            }
            | Outcome::Unchanged(record) => Ok(ExtensionId {
                sid: record.extension_sid,
                name: record.extension_name,
            }),
            Outcome::Written { record: None, .. } | Outcome::Absent => Err(StoreError::Corrupt(
                "the extension record could not be created".into(),
            )),
        }
    }

    /// Seals every value still stored in plaintext (written before a secret key was set):
    /// the current configurations, and the configurations and changes of revisions. Their
    /// content is unchanged, so no revision is added and nothing is announced. Returns how
    /// many values were sealed.
    pub async fn reseal(&self) -> Result<u64, StoreError> {
        let Some(key) = &self.secret else {
            return Ok(0);
        };
        let plain = format!("NOT LIKE '{}%'", secret::ENCRYPTED_PREFIX);
        let (mut tx, _) = self.begin_write(Lock::Everything).await?;
        let mut sealed = 0;
        let global: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT 'global', configuration FROM extensions WHERE configuration {plain}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let accounts: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT account_sid, configuration FROM account_configurations \
             WHERE configuration {plain}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (scope, value) in global.into_iter().chain(accounts) {
            let sql = if scope == "global" {
                "UPDATE extensions SET configuration = $1 WHERE id = 1 AND $2 = 'global'"
            } else {
                "UPDATE account_configurations SET configuration = $1 WHERE account_sid = $2"
            };
            sqlx::query(sql)
                .bind(key.encrypt(&value))
                .bind(scope)
                .execute(&mut *tx)
                .await?;
            sealed += 1;
        }
        for column in ["configuration", "changes"] {
            let rows: Vec<(String, i64, String)> = sqlx::query_as(&format!(
                "SELECT scope, revision, {column} FROM configuration_revisions \
                 WHERE {column} {plain}"
            ))
            .fetch_all(&mut *tx)
            .await?;
            for (scope, revision, value) in rows {
                sqlx::query(&format!(
                    "UPDATE configuration_revisions SET {column} = $1 \
                     WHERE scope = $2 AND revision = $3"
                ))
                .bind(key.encrypt(&value))
                .bind(scope)
                .bind(revision)
                .execute(&mut *tx)
                .await?;
                sealed += 1;
            }
        }
        tx.commit().await?;
        Ok(sealed)
    }

    /// The heart of every write: one configuration, inside `w`. Reads what is stored, lets
    /// `plan::plan` decide, then writes what it decided.
    async fn write_scope(
        &self,
        w: &mut WriteTx<'_, DB>,
        account: Option<AccountSid>,
        target: Target<'_>,
        condition: &Condition,
    ) -> Result<Outcome, StoreError> {
        let scope = scope_key(account.as_ref());
        if let (Lock::PerConfiguration, Some(lock_sql)) = (w.lock, self.dialect.lock_scope) {
            sqlx::query(lock_sql)
                .bind(&scope)
                .execute(&mut *w.tx)
                .await?;
        }
        let current = self.current(&mut w.tx, account).await?;
        let wanted = match target {
            Target::Set {
                enabled,
                configuration,
                action,
            } => Wanted::Set {
                enabled,
                configuration,
                action,
            },
            Target::Restore(revision) => {
                // Read only when there is history to read; `plan` words every case.
                let found = match current.head {
                    Some(_) => self
                        .revision_in(&mut *w.tx, account, revision)
                        .await?
                        .map(|r| (r.configuration, r.enabled)),
                    None => None,
                };
                Wanted::Restore { revision, found }
            }
            Target::Delete => Wanted::Delete,
        };
        let stored = Stored {
            head: current.head,
            row: current.row.as_ref().map(|r| StoredRow {
                configuration: &r.configuration,
                enabled: r.enabled,
                revision: r.revision,
            }),
        };
        let new = match plan::plan(wanted, &stored, condition)? {
            Plan::Absent => return Ok(Outcome::Absent),
            Plan::Unchanged => {
                let row = current.row.expect("unchanged: there is a current row");
                let extension = match account {
                    None => current.extension.clone(),
                    Some(_) => Some(self.ensure_extension(w).await?),
                }
                .unwrap_or_else(ExtensionId::orphan);
                return Ok(Outcome::Unchanged(record(
                    &extension,
                    account,
                    row.configuration,
                    row.enabled,
                    row.date_created,
                    row.date_updated,
                    row.revision,
                )?));
            }
            Plan::Write(new) => new,
        };
        self.apply(w, account, &scope, &current, new).await
    }

    /// Writes a planned revision of one configuration: its row (or the row's removal), its
    /// head, the revision, and the pruning of revisions beyond the history limit.
    async fn apply(
        &self,
        w: &mut WriteTx<'_, DB>,
        account: Option<AccountSid>,
        scope: &str,
        current: &Current,
        new: NewRevision,
    ) -> Result<Outcome, StoreError> {
        let NewRevision {
            revision,
            action,
            configuration,
            enabled,
            rollback_of,
            changes,
        } = new;
        let now = now_micros();
        let sealed = configuration
            .as_deref()
            .map(|c| secret::seal(self.secret.as_ref(), c));
        let ts = self.dialect.timestamp;

        // The configuration itself.
        let extension = match (account, &sealed) {
            (None, Some(sealed)) => {
                let (sid, name): (String, String) = sqlx::query_as(&format!(
                    "INSERT INTO extensions (id, sid, name, configuration, enabled, \
                     date_created, date_updated, revision) \
                     VALUES (1, $1, $2, $3, $4, {t5}, {t5}, $6) \
                     ON CONFLICT (id) DO UPDATE SET configuration = excluded.configuration, \
                     enabled = excluded.enabled, date_updated = excluded.date_updated, \
                     revision = excluded.revision RETURNING sid, name",
                    t5 = ts(5)
                ))
                .bind(crate::sid::new_extension_sid())
                .bind(EXTENSION_NAME)
                .bind(sealed.as_str())
                .bind(enabled)
                .bind(now)
                .bind(revision)
                .fetch_one(&mut *w.tx)
                .await?;
                Some(ExtensionId { sid, name })
            }
            (Some(account), Some(sealed)) => {
                let extension = self.ensure_extension(w).await?;
                sqlx::query(&format!(
                    "INSERT INTO account_configurations (account_sid, configuration, enabled, \
                     date_created, date_updated, revision) \
                     VALUES ($1, $2, $3, {t4}, {t4}, $5) \
                     ON CONFLICT (account_sid) DO UPDATE SET \
                     configuration = excluded.configuration, enabled = excluded.enabled, \
                     date_updated = excluded.date_updated, revision = excluded.revision",
                    t4 = ts(4)
                ))
                .bind(account.to_string())
                .bind(sealed.as_str())
                .bind(enabled)
                .bind(now)
                .bind(revision)
                .execute(&mut *w.tx)
                .await?;
                Some(extension)
            }
            (Some(account), None) => {
                sqlx::query("DELETE FROM account_configurations WHERE account_sid = $1")
                    .bind(account.to_string())
                    .execute(&mut *w.tx)
                    .await?;
                None
            }
            (None, None) => {
                return Err(StoreError::Corrupt(
                    "the global configuration cannot be deleted".into(),
                ));
            }
        };

        // Its head and its revision.
        match w.seq {
            Some(seq) => {
                sqlx::query(
                    "INSERT INTO configuration_heads (scope, revision, seq) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision, \
                     seq = excluded.seq",
                )
                .bind(scope)
                .bind(revision)
                .bind(seq)
                .execute(&mut *w.tx)
                .await?
            }
            None => {
                sqlx::query(
                    "INSERT INTO configuration_heads (scope, revision) VALUES ($1, $2) \
                     ON CONFLICT (scope) DO UPDATE SET revision = excluded.revision",
                )
                .bind(scope)
                .bind(revision)
                .execute(&mut *w.tx)
                .await?
            }
        };
        let sealed_changes = changes
            .as_deref()
            .map(|c| secret::seal(self.secret.as_ref(), c));
        sqlx::query(&format!(
            "INSERT INTO configuration_revisions (scope, revision, action, date_created, actor, \
             remote_addr, enabled, configuration, rollback_of, changes) \
             VALUES ($1, $2, $3, {t4}, $5, $6, $7, $8, $9, $10)",
            t4 = ts(4)
        ))
        .bind(scope)
        .bind(revision)
        .bind(action.as_str())
        .bind(now)
        .bind(w.origin.actor.as_str())
        .bind(w.origin.remote_addr.as_deref())
        .bind(enabled)
        .bind(sealed.as_deref())
        .bind(rollback_of)
        .bind(sealed_changes)
        .execute(&mut *w.tx)
        .await?;
        if let Some(oldest_kept) = plan::oldest_kept(revision, self.history_limit) {
            sqlx::query("DELETE FROM configuration_revisions WHERE scope = $1 AND revision < $2")
                .bind(scope)
                .bind(oldest_kept)
                .execute(&mut *w.tx)
                .await?;
        }

        w.written.push((account, revision));
        let record = match (extension, configuration) {
            (Some(extension), Some(configuration)) => {
                let created = current.row.as_ref().map_or(now, |r| r.date_created);
                Some(record(
                    &extension,
                    account,
                    configuration,
                    enabled,
                    created,
                    now,
                    revision,
                )?)
            }
            _ => None,
        };
        Ok(Outcome::Written { revision, record })
    }
);

/// The record of a configuration, from what the write knows (dates in unix microseconds).
fn record(
    extension: &ExtensionId,
    account_sid: Option<AccountSid>,
    configuration: String,
    enabled: bool,
    created: i64,
    updated: i64,
    revision: i64,
) -> Result<ConfigRecord, StoreError> {
    let date = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| StoreError::Corrupt(format!("date out of range: {micros}")))
    };
    Ok(ConfigRecord {
        extension_sid: extension.sid.clone(),
        extension_name: extension.name.clone(),
        account_sid,
        configuration,
        enabled,
        date_created: date(created)?,
        date_updated: date(updated)?,
        revision,
    })
}
