//! The instance registry (docs/routing.md, capacity): on PostgreSQL every serving instance
//! records a heartbeat in `instances` each second (the database's clock, so that the
//! instances' clocks do not matter); one silent for 5 s is not live. SQLite has one serving
//! instance, which the caller lists from memory: nothing is written.

use super::{Backend, Store, StoreError};

/// One instance as the registry holds it; times in Unix microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub started_at: i64,
    pub last_seen: i64,
    pub version: String,
}

/// Seconds of silence after which an instance is not live.
pub const SILENT_SECONDS: i64 = 5;

impl Store {
    /// True when the registry is in the database (PostgreSQL).
    pub fn shares_instances(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// Records this instance's heartbeat (its row created at the first) and returns the live
    /// instances, ordered by `started_at` then `id`; rows silent for an hour are deleted.
    /// `None` with SQLite.
    pub async fn heartbeat(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Option<Vec<InstanceRow>>, StoreError> {
        let Backend::Postgres(pg) = &self.0 else {
            return Ok(None);
        };
        let pool = &pg.db.pool;
        sqlx::query(
            "INSERT INTO instances (id, started_at, last_seen, version) \
             VALUES ($1, now(), now(), $2) \
             ON CONFLICT (id) DO UPDATE SET last_seen = now(), version = excluded.version",
        )
        .bind(id)
        .bind(version)
        .execute(pool)
        .await?;
        sqlx::query("DELETE FROM instances WHERE last_seen < now() - INTERVAL '1 hour'")
            .execute(pool)
            .await?;
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT id, (EXTRACT(EPOCH FROM started_at) * 1000000)::BIGINT, \
                    (EXTRACT(EPOCH FROM last_seen) * 1000000)::BIGINT, version \
             FROM instances WHERE last_seen >= now() - make_interval(secs => $1) \
             ORDER BY started_at, id",
        )
        .bind(SILENT_SECONDS as f64)
        .fetch_all(pool)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(id, started_at, last_seen, version)| InstanceRow {
                    id,
                    started_at,
                    last_seen,
                    version,
                })
                .collect(),
        ))
    }

    /// Removes this instance's row when it stops, so that the others take its share at once.
    pub async fn forget_instance(&self, id: &str) -> Result<(), StoreError> {
        if let Backend::Postgres(pg) = &self.0 {
            sqlx::query("DELETE FROM instances WHERE id = $1")
                .bind(id)
                .execute(&pg.db.pool)
                .await?;
        }
        Ok(())
    }
}
