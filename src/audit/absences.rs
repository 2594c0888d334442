//! What may explain a stored payload or a data key that is gone: a later record of the
//! log that says it removed it. A payload may be absent only when (a) an `audit.erase`
//! record lists its record's data key in `detail` (comma-separated key ids), (b) an
//! `audit.erase` record lists its record in `erased_records` (erasure by a value found
//! in it), or (c) an `audit.retention` record of the same tenant names a cutoff
//! (`before_ms=…`) later than the record's time; the explaining record comes after the
//! record it explains, and counts only if it is chained. A data key may be destroyed or
//! deleted only when an `audit.erase` record lists it. Anything else went missing.

use super::columns::Columns;
use super::keys::record_mac;
use super::record::{AuditRecord, kind};
use super::retention::retention_cutoff;
use super::verify::{Finding, Problem};
use crate::store::StoreError;
use ring::hmac;
use rusqlite::{Connection, OptionalExtension};
use std::collections::HashMap;

/// The log's erasure and retention records, as what they explain.
#[derive(Debug, Default)]
pub struct Absences {
    /// Data key id → the last erase record listing it.
    erased_keys: HashMap<String, u64>,
    /// Record → the last erase record listing it in `erased_records`.
    erased_records: HashMap<u64, u64>,
    /// Tenant → its retention records in log order: (seq, the latest cutoff named by
    /// this record or any after it).
    retention: HashMap<String, Vec<(u64, i64)>>,
}

impl Absences {
    /// Reads every chained erasure and retention record of the log.
    pub fn read(audit: &Connection, key: &hmac::Key) -> Result<Self, StoreError> {
        let mut absences = Self::default();
        let mut stmt = audit
            .prepare("SELECT seq, body, mac FROM records WHERE kind IN (?1, ?2) ORDER BY seq")?;
        let rows = stmt.query_map([kind::AUDIT_ERASE, kind::AUDIT_RETENTION], |r| {
            let mut cols = Columns::new(r);
            let seq = cols.integer(0, "seq") as u64;
            let body = cols.text(1, "body");
            let mac = cols.blob(2, "mac");
            Ok((seq, body, mac, cols.wrong.is_empty()))
        })?;
        let mut previous = audit.prepare("SELECT mac FROM records WHERE seq = ?1")?;
        for row in rows {
            let (seq, body, mac, well_typed) = row?;
            let before = match seq {
                0 | 1 => Some(Some(vec![0u8; 32])),
                _ => previous
                    .query_row([(seq - 1) as i64], |r| {
                        Ok(Columns::new(r).optional_blob(0, "mac"))
                    })
                    .optional()?,
            };
            let chained = before
                .flatten()
                .is_some_and(|before| record_mac(key, &before, body.as_bytes()) == mac.as_slice());
            let record = serde_json::from_str::<AuditRecord>(&body).ok();
            if let Some(record) = record.filter(|r| well_typed && chained && r.seq == seq) {
                absences.add(&record);
            }
        }
        for records in absences.retention.values_mut() {
            let mut latest = i64::MIN;
            for (_, cutoff) in records.iter_mut().rev() {
                latest = latest.max(*cutoff);
                *cutoff = latest;
            }
        }
        Ok(absences)
    }

    fn add(&mut self, record: &AuditRecord) {
        let seq = record.seq;
        if record.kind == kind::AUDIT_ERASE {
            let keys = record.detail.as_deref().unwrap_or("");
            for id in keys.split(',').map(str::trim).filter(|id| !id.is_empty()) {
                self.erased_keys.insert(id.to_string(), seq);
            }
            for erased in &record.erased_records {
                self.erased_records.insert(*erased, seq);
            }
        } else if let (Some(tenant), Some(cutoff)) =
            (record.tenant_id.as_ref(), retention_cutoff(record))
        {
            self.retention
                .entry(tenant.clone())
                .or_default()
                .push((seq, cutoff));
        }
    }

    /// Whether a later record explains why `record`'s stored payloads are gone.
    pub fn payload_explained(&self, record: &AuditRecord) -> bool {
        let seq = record.seq;
        let by_key = record
            .payload_key
            .as_ref()
            .and_then(|id| self.erased_keys.get(id))
            .is_some_and(|erased| *erased > seq);
        let by_value = self
            .erased_records
            .get(&seq)
            .is_some_and(|erased| *erased > seq);
        let by_age = record
            .tenant_id
            .as_ref()
            .and_then(|tenant| self.retention.get(tenant))
            .is_some_and(|sweeps| {
                let later = sweeps.partition_point(|(sweep, _)| *sweep <= seq);
                sweeps
                    .get(later)
                    .is_some_and(|(_, cutoff)| *cutoff > record.ts_ms)
            });
        by_key || by_value || by_age
    }

    /// Whether an erase record lists the data key `id`.
    pub fn key_erased(&self, id: &str) -> bool {
        self.erased_keys.contains_key(id)
    }
}

/// Data keys destroyed, deleted or altered without an erase record naming them; `used`
/// maps each key records name to the first such record.
pub fn check_data_keys(
    audit: &Connection,
    absences: &Absences,
    used: &HashMap<String, u64>,
) -> Result<Vec<Finding>, StoreError> {
    let mut findings = Vec::new();
    let mut stored = std::collections::HashSet::new();
    let mut stmt =
        audit.prepare("SELECT id, typeof(sealed), destroyed_at IS NOT NULL FROM data_keys")?;
    let rows = stmt.query_map([], |r| {
        let mut cols = Columns::new(r);
        let id = cols.text(0, "id");
        let sealed_type = cols.text(1, "typeof(sealed)");
        let destroyed = cols.integer(2, "destroyed") != 0;
        Ok((id, sealed_type, destroyed))
    })?;
    for row in rows {
        let (id, sealed_type, destroyed) = row?;
        let first = used.get(&id).copied().unwrap_or(0);
        stored.insert(id.clone());
        if absences.key_erased(&id) {
            continue;
        }
        let what = match sealed_type.as_str() {
            "blob" if !destroyed => continue,
            "blob" | "null" => "destroyed".to_string(),
            other => format!("altered (its sealed key holds {other})"),
        };
        findings.push(Finding::new(
            Problem::DataKeyMissing,
            first,
            format!("data key {id:?} was {what} without an audit.erase record naming it"),
        ));
    }
    let mut gone: Vec<(&String, &u64)> = used
        .iter()
        .filter(|(id, _)| !stored.contains(*id) && !absences.key_erased(id))
        .collect();
    gone.sort_by_key(|(_, seq)| **seq);
    for (id, seq) in gone {
        findings.push(Finding::new(
            Problem::DataKeyMissing,
            *seq,
            format!(
                "data key {id:?}, which seals the payloads of record {seq} on, was deleted without \
                 an audit.erase record naming it"
            ),
        ));
    }
    Ok(findings)
}
