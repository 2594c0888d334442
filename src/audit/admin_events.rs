//! Admin actions enter the audit log through the state database: every change (keys,
//! tokens, tenants, routes) writes an `admin_events` row in the same transaction as the
//! change itself, and the log copies those rows in as `admin.action` records — so no
//! change can happen without its audit record, whichever process made it.

use super::record::{AuditEvent, AuditRecord, kind};
use crate::store::StoreError;
use rusqlite::Connection;

/// Most admin events copied in one transaction.
pub const BATCH: usize = 512;

/// The `ingested` source name of the state database's admin events.
pub const SOURCE: &str = "admin_events";

/// Admin events after `after` (their id), oldest first, as audit events.
pub fn after(state: &Connection, after: i64) -> Result<Vec<(i64, AuditEvent)>, StoreError> {
    let mut stmt = state.prepare_cached(
        "SELECT seq, COALESCE(ts_ms, ts * 1000), actor, action, target, detail, tenant_id
         FROM admin_events
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after, BATCH as i64], |r| {
        let record = AuditRecord {
            kind: kind::ADMIN_ACTION.into(),
            ts_ms: r.get(1)?,
            actor: Some(r.get(2)?),
            action: Some(r.get(3)?),
            target: Some(r.get(4)?),
            detail: r.get(5)?,
            tenant_id: r.get(6)?,
            decision: Some("allow".into()),
            ..AuditRecord::default()
        };
        Ok((
            r.get::<_, i64>(0)?,
            AuditEvent {
                record,
                ..AuditEvent::default()
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
