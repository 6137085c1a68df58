//! Proxy health shared through PostgreSQL (docs/operations.md): the last transition of each proxy in
//! `proxy_health`, written with a NOTIFY on the configuration channel (payload
//! `health <state> <since µs> <proxy>`, apart from the configuration payloads). A write never
//! replaces a newer row, and notifies only when it changed the row. With SQLite the state is
//! per process: nothing is written or read.

use super::{Backend, Change, NOTIFY_CHANNEL, Store, StoreError};
use crate::routing::Health;

/// One proxy's last state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthRow {
    /// `host:port`, lowercase.
    pub proxy: String,
    pub health: Health,
    /// Unix microseconds.
    pub since: i64,
}

/// Prefix of the health payloads on the notification channel.
const PAYLOAD_PREFIX: &str = "health ";

/// `health <state> <since µs> <proxy>`.
pub(super) fn payload(row: &HealthRow) -> String {
    format!(
        "{PAYLOAD_PREFIX}{} {} {}",
        row.health.as_str(),
        row.since,
        row.proxy
    )
}

/// Parses a health payload; `None` when `payload` is not one (`Some(None)`: one, malformed).
pub(super) fn parse_payload(payload: &str) -> Option<Option<Change>> {
    let rest = payload.strip_prefix(PAYLOAD_PREFIX)?;
    let mut parts = rest.splitn(3, ' ');
    let parsed = (|| {
        let health = Health::parse(parts.next()?)?;
        let since = parts.next()?.parse().ok()?;
        let proxy = parts.next().filter(|p| !p.is_empty())?.to_owned();
        Some(Change::Health(HealthRow {
            proxy,
            health,
            since,
        }))
    })();
    Some(parsed)
}

impl Store {
    /// True when proxy health is shared through this database (PostgreSQL).
    pub fn shares_health(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// Every proxy's last shared state change (empty with SQLite).
    pub async fn proxy_health(&self) -> Result<Vec<HealthRow>, StoreError> {
        let Backend::Postgres(pg) = &self.0 else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT proxy, health, (EXTRACT(EPOCH FROM since) * 1000000)::BIGINT FROM proxy_health",
        )
        .fetch_all(&pg.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(proxy, health, since)| {
                Some(HealthRow {
                    proxy,
                    health: Health::parse(&health)?,
                    since,
                })
            })
            .collect())
    }

    /// Records this instance's transitions and tells the other instances (nothing with
    /// SQLite). One statement per row, each its own transaction.
    pub async fn record_health(&self, rows: &[HealthRow]) -> Result<(), StoreError> {
        let Backend::Postgres(pg) = &self.0 else {
            return Ok(());
        };
        for row in rows {
            sqlx::query(
                "WITH written AS ( \
                   INSERT INTO proxy_health (proxy, health, since) \
                   VALUES ($1, $2, TIMESTAMPTZ 'epoch' + $3::BIGINT * INTERVAL '1 microsecond') \
                   ON CONFLICT (proxy) DO UPDATE SET health = excluded.health, since = excluded.since \
                   WHERE proxy_health.since < excluded.since \
                   RETURNING proxy) \
                 SELECT pg_notify($4, $5) FROM written",
            )
            .bind(&row.proxy)
            .bind(row.health.as_str())
            .bind(row.since)
            .bind(NOTIFY_CHANNEL)
            .bind(payload(row))
            .execute(&pg.db.pool)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let row = HealthRow {
            proxy: "[2001:db8::1]:5060".into(),
            health: Health::Down,
            since: 1_700_000_000_123_456,
        };
        assert_eq!(
            payload(&row),
            "health down 1700000000123456 [2001:db8::1]:5060"
        );
        assert_eq!(
            parse_payload(&payload(&row)),
            Some(Some(Change::Health(row)))
        );
        assert_eq!(parse_payload("global:3"), None);
        assert_eq!(parse_payload("health sideways 1 a:1"), Some(None));
        assert_eq!(parse_payload("health up x a:1"), Some(None));
        assert_eq!(parse_payload("health up 1 "), Some(None));
    }
}
