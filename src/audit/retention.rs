//! Payload retention: each tenant's stored payloads deleted once older than its
//! retention, a chunk at a time between the writer's batches, each sweep recorded in the
//! log (`audit.retention`, naming the cutoff) so verification knows why they are gone and
//! the search index drops their text. The records themselves, and the chain, stay.

use super::log::AuditLog;
use super::record::{AuditEvent, AuditRecord, kind};
use crate::store::StoreError;
use rusqlite::params;

/// Records still holding payloads, by tenant and age: a retention sweep reads only what
/// it expires, not the whole log (rows leave the index as they are swept). Made when
/// retention first runs, so instances without retention do not maintain it on every
/// append (it costs about 9% of append throughput).
const PAYLOAD_AGE_INDEX: &str = "CREATE INDEX IF NOT EXISTS records_payload_age
    ON records(tenant_id, ts_ms)
    WHERE request_payload IS NOT NULL OR response_payload IS NOT NULL;";

impl AuditLog {
    /// Deletes the stored payloads of at most `limit` of `tenant`'s records from before
    /// `before_ms` (the chain covers their digests, so it still verifies) and, when there
    /// were any, records the sweep — one transaction; how many records lost their
    /// payloads.
    pub fn expire_payloads(
        &mut self,
        tenant: &str,
        before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let expired = self.locked(|log| {
            let expired = log.conn.execute(
                "UPDATE records SET request_payload = NULL, response_payload = NULL
                 WHERE seq IN (SELECT seq FROM records
                               WHERE tenant_id = ?1 AND ts_ms < ?2
                                 AND (request_payload IS NOT NULL OR response_payload IS NOT NULL)
                               LIMIT ?3)",
                params![tenant, before_ms, limit as i64],
            )? as u64;
            if expired > 0 {
                let record = AuditRecord {
                    kind: kind::AUDIT_RETENTION.into(),
                    tenant_id: Some(tenant.to_string()),
                    decision: Some("allow".into()),
                    action: Some("audit.retention".into()),
                    actor: Some("airlock".into()),
                    target: Some(format!("{expired} records")),
                    detail: Some(format!("before_ms={before_ms}")),
                    ..AuditRecord::default()
                };
                log.append_locked(vec![AuditEvent {
                    record,
                    ..AuditEvent::default()
                }])?;
            }
            Ok(expired)
        })?;
        if expired > 0 {
            self.anchor_head()?;
        }
        Ok(expired)
    }

    /// Applies payload retention to every tenant at once: `days_of(tenant name)` gives
    /// its retention in days (0 keeps payloads); how many records lost their payloads.
    pub fn apply_retention(&mut self, days_of: impl Fn(&str) -> u64) -> Result<u64, StoreError> {
        let mut sweep = RetentionSweep::start(self, days_of)?;
        while sweep.step(self)?.is_some() {}
        Ok(sweep.expired)
    }
}

/// A retention sweep done a chunk at a time, so the writer can go on acknowledging
/// requests between chunks instead of holding them for a whole hour's worth of records.
pub struct RetentionSweep {
    /// (tenant id, cutoff in ms) still to sweep.
    left: Vec<(String, i64)>,
    /// Records whose payloads it deleted so far.
    pub expired: u64,
}

/// Records a retention chunk expires at most.
const SWEEP_CHUNK: usize = 256;

impl RetentionSweep {
    /// The sweep `days_of(tenant name)` asks for, from now.
    pub fn start(log: &AuditLog, days_of: impl Fn(&str) -> u64) -> Result<Self, StoreError> {
        log.conn.execute_batch(PAYLOAD_AGE_INDEX)?;
        let now = super::log::ts_now_ms();
        let left = log
            .state
            .prepare("SELECT id, name FROM tenants")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|(id, name)| {
                let days = days_of(&name);
                (days > 0).then(|| (id, now - (days as i64).saturating_mul(86_400_000)))
            })
            .collect();
        Ok(Self { left, expired: 0 })
    }

    /// Expires one chunk; how many records it expired, or `None` once the sweep is done.
    pub fn step(&mut self, log: &mut AuditLog) -> Result<Option<u64>, StoreError> {
        let Some((tenant, cutoff)) = self.left.last() else {
            return Ok(None);
        };
        let expired = log.expire_payloads(tenant, *cutoff, SWEEP_CHUNK)?;
        if expired < SWEEP_CHUNK as u64 {
            self.left.pop();
        }
        self.expired += expired;
        Ok(Some(expired))
    }
}

/// The cutoff a retention record names (`before_ms=…` in its detail).
pub fn retention_cutoff(record: &AuditRecord) -> Option<i64> {
    record
        .detail
        .as_deref()?
        .strip_prefix("before_ms=")?
        .parse()
        .ok()
}
