//! The one way to change a configuration (docs/ARCHITECTURE.md): `Configs` owns the store
//! and the routing cache together and keeps them equal. Every writer calls it: the admin
//! handlers, the rollback, the full load, the change follower that applies other
//! instances' writes, and the command line's import and seed. Nothing under `http/` writes
//! through the store or the cache directly (`tests/it/architecture.rs`).

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cache::RoutingCache;
use crate::routing::CompiledRouting;
use crate::sid::AccountSid;
use crate::store::{Condition, ImportLine, Origin, Store, StoreError, Write, Written};

/// The store and the routing cache, changed together.
#[derive(Clone)]
pub struct Configs {
    store: Store,
    cache: Arc<RoutingCache>,
}

impl Configs {
    pub fn new(store: Store, cache: Arc<RoutingCache>) -> Configs {
        Configs { store, cache }
    }

    /// The store, for reads (history, listings, loads, operators).
    #[inline]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The routing cache, for reads (lookups, compiling a configuration before a write).
    #[inline]
    pub fn cache(&self) -> &Arc<RoutingCache> {
        &self.cache
    }

    /// Creates or updates one configuration as a new revision by `origin`, then applies it
    /// to the cache in the same call: a lookup after the answer sees the new configuration.
    /// `compiled` is the routing compiled from `write.configuration` before writing (used
    /// when the stored configuration is exactly that one, else the record is compiled anew).
    pub async fn write(
        &self,
        write: &Write,
        compiled: Option<Arc<CompiledRouting>>,
        origin: &Origin,
    ) -> Result<Written, StoreError> {
        let written = self.store.write(write, origin).await?;
        let record = &written.record;
        if written.changed {
            match compiled {
                Some(compiled) if write.configuration.as_ref() == Some(&record.configuration) => {
                    self.cache.apply_compiled(record, compiled)
                }
                _ => self.cache.apply(record),
            }
            // An account's first write also created the extension record, the global
            // configuration (`{}`): this instance knows it at once, not a poll later.
            if record.account_sid.is_some() && !self.cache.holds(None, 1) {
                match self.store.global().await {
                    Ok(Some(global)) => self.cache.apply(&global),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the global configuration back")
                    }
                }
            }
        }
        Ok(written)
    }

    /// Removes one account's configuration and its cache entry: `Some(revision)` of the
    /// delete, or `None` if there was none.
    pub async fn delete(
        &self,
        account: AccountSid,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Option<i64>, StoreError> {
        let revision = self.store.remove(account, condition, origin).await?;
        if let Some(revision) = revision {
            // Same call as the commit: a lookup after the answer no longer sees it.
            self.cache.remove(account, revision);
        }
        Ok(revision)
    }

    /// Gives a configuration revision `revision`'s data as a new revision (action
    /// `rollback`) and applies it to the cache.
    pub async fn rollback(
        &self,
        account: Option<AccountSid>,
        revision: i64,
        condition: &Condition,
        origin: &Origin,
    ) -> Result<Written, StoreError> {
        let written = self
            .store
            .rollback(account, revision, condition, origin)
            .await?;
        if written.changed {
            self.cache.apply(&written.record);
        }
        Ok(written)
    }

    /// Writes every line in one transaction (action `import`; nothing kept with `dry_run`).
    /// The command line's process serves no lookups: the servers apply the imported
    /// configurations when they hear of them (`apply_notified`).
    pub async fn import(
        &self,
        lines: &[ImportLine],
        origin: &Origin,
        dry_run: bool,
    ) -> Result<Vec<Option<AccountSid>>, StoreError> {
        self.store.import(lines, origin, dry_run).await
    }

    /// Whether the cache already holds `revision` (or newer) of that configuration: a
    /// notification of it needs no read.
    pub fn holds(&self, account: Option<AccountSid>, revision: i64) -> bool {
        self.cache.holds(account, revision)
    }

    /// Applies a change another instance committed (notified with its revision): the
    /// configuration is re-read, since the notification carries no data, and applied to
    /// the cache, or its entry removed if it is gone.
    pub async fn apply_notified(
        &self,
        account: Option<AccountSid>,
        revision: i64,
    ) -> Result<(), StoreError> {
        match account {
            None => self
                .store
                .global()
                .await
                .map(|record| record.iter().for_each(|r| self.cache.apply(r))),
            Some(account) => self.store.get(account).await.map(|record| match record {
                Some(record) => self.cache.apply(&record),
                None => self.cache.remove(account, revision),
            }),
        }
    }

    /// Reads one snapshot and compiles it while it streams in, off the async workers (seconds
    /// of CPU at 100,000 accounts); the cache drops what the snapshot lacks only once the whole
    /// snapshot has been read. The snapshot's read transaction stays open while the compiler
    /// catches up (the channel is bounded, to bound memory): about 20 s at 1,000,000 accounts on
    /// two cores, during which PostgreSQL's vacuum horizon waits and a schema migration would.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mark = self.cache.mark();
        let started = std::time::Instant::now();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (sink, batches) = mpsc::channel(2 * threads);
        let cache = self.cache.clone();
        let compiling = tokio::task::spawn_blocking(move || cache.apply_batches(batches));
        let read = self.store.load_into(sink).await;
        let present = compiling
            .await
            .map_err(|e| StoreError::Corrupt(format!("compiling the snapshot failed: {e}")))?;
        read?;
        // A pass over every account (150 ms at 1,000,000): not on an async worker either.
        let cache = self.cache.clone();
        let accounts = tokio::task::spawn_blocking(move || {
            cache.finish_load(&present, mark);
            release_free_memory();
            present.len()
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("finishing the load failed: {e}")))?;
        tracing::debug!(
            accounts,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot compiled"
        );
        Ok(())
    }
}

/// A full load reads every stored configuration (gigabytes of text at 1,000,000 accounts,
/// a batch at a time) and keeps only the compiled form; glibc keeps the freed pages unless
/// asked.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free heap memory to the kernel; it has no
        // preconditions and touches no memory still in use.
        unsafe {
            malloc_trim(0);
        }
    }
}
