//! Erasure (GDPR Art. 17) without breaking the chain, two ways. By person: the data keys
//! of one user in a tenant are destroyed (crypto-shredding) and the payloads sealed with
//! them deleted. By value: a name, an email, a card number — whoever's prompt it was in,
//! so a third person named in someone else's prompt can be erased too: the search
//! index's keyed-hash terms say which records may hold it (records the index does not
//! cover are read directly), each is confirmed by opening its payloads, and the payloads
//! of those that hold it are deleted. Either way one `audit.erase` record names what was
//! erased by a keyed hash, never in clear (`user:HASH`, `value:HASH`), and the search
//! index drops those records' text when it reaches that record. The records themselves
//! stay, and `audit verify` still passes: the chain covers each payload's digest, not
//! its text.

use super::keys::open_payload;
use super::log::{AuditLog, open_audit_db, payload_subject, read_data_key};
use super::record::{AuditEvent, AuditRecord, kind};
use super::search::indexer::indexed_up_to;
use super::search::partitions::{Partitions, partition_start};
use super::search::query::all_matching;
use super::search::rewrite::value_query;
use super::search::text::searchable;
use super::values::{SubjectValue, ValueError, ValueKeys};
use crate::config::LoadedConfig;
use crate::store::instance_key::InstanceKey;
use crate::store::{StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// What an erasure by person did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Erasure {
    /// The record of the erasure itself.
    pub seq: u64,
    /// What the record names: `user:` and the keyed hash of the person.
    pub target: String,
    /// Data keys destroyed.
    pub keys: Vec<String>,
    /// Records whose stored payloads were deleted.
    pub records: u64,
}

/// What an erasure by value did (or, in a dry run, would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValueErasure {
    /// The record of the erasure itself; none in a dry run.
    pub seq: Option<u64>,
    /// What the record names: `value:` and the keyed hash of the value.
    pub target: String,
    /// Records whose stored payloads held the value and were deleted (in a dry run: would
    /// be).
    pub records: Vec<u64>,
    /// Records whose payloads were opened to look.
    pub examined: u64,
}

/// Why an erasure did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuditLog {
    /// Erases a person's payloads: destroys the data keys of the user `user` in `tenant`
    /// (crypto-shredding), deletes the payloads sealed with them, and appends a record of
    /// the erasure naming the person by a keyed hash — one transaction.
    pub fn erase_user(
        &mut self,
        tenant: &str,
        user: &str,
        actor: &str,
    ) -> Result<Erasure, StoreError> {
        let subject = payload_subject(Some(tenant), Some(user));
        let target = ValueKeys::derive(&self.seal_key).erasure_target("user", &subject);
        let erasure = self.locked(|log| {
            let keys: Vec<String> = log
                .conn
                .prepare(
                    "UPDATE data_keys SET sealed = NULL, destroyed_at = ?1
                     WHERE subject = ?2 AND destroyed_at IS NULL RETURNING id",
                )?
                .query_map(params![now_unix(), subject], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut records = 0u64;
            for key in &keys {
                records += log.conn.execute(
                    "UPDATE records SET request_payload = NULL, response_payload = NULL
                     WHERE json_extract(body, '$.payload_key') = ?1
                       AND (request_payload IS NOT NULL OR response_payload IS NOT NULL)",
                    [key],
                )? as u64;
            }
            log.data_keys.remove(&subject);
            let record = erase_record(Some(tenant), actor, &target);
            let seq = log.append_erase_record(AuditRecord {
                detail: Some(keys.join(",")),
                ..record
            })?;
            Ok(Erasure {
                seq,
                target: target.clone(),
                keys,
                records,
            })
        })?;
        self.after_erasure()?;
        Ok(erasure)
    }

    /// Deletes the stored payloads of the records in `found` that hold `value` — and of
    /// any record appended after `looked_up_to` (in `tenant` when given) that holds it —
    /// and appends a record of the erasure naming the value by its keyed hash and listing
    /// those records: one transaction. What it found and deleted.
    fn erase_found(
        &mut self,
        value: &SubjectValue,
        tenant: Option<&str>,
        found: &[u64],
        looked_up_to: u64,
        actor: &str,
    ) -> Result<ValueErasure, StoreError> {
        let target = ValueKeys::derive(&self.seal_key).erasure_target("value", value.compact());
        let seal_key = self.seal_key;
        let erasure = self.locked(|log| {
            let mut examined = 0;
            let mut holding = found.to_vec();
            let later = with_payloads_after(&log.conn, tenant, looked_up_to)?;
            let mut keys = HashMap::new();
            for seq in later {
                examined += 1;
                if holds(&log.conn, &seal_key, seq, tenant, value, &mut keys)? {
                    holding.push(seq);
                }
            }
            let mut erased = Vec::with_capacity(holding.len());
            let mut delete = log.conn.prepare_cached(
                "UPDATE records SET request_payload = NULL, response_payload = NULL
                 WHERE seq = ?1 AND (request_payload IS NOT NULL OR response_payload IS NOT NULL)",
            )?;
            for seq in holding {
                if delete.execute([seq as i64])? > 0 {
                    erased.push(seq);
                }
            }
            drop(delete);
            let seq = log.append_erase_record(AuditRecord {
                erased_records: erased.clone(),
                ..erase_record(tenant, actor, &target)
            })?;
            Ok(ValueErasure {
                seq: Some(seq),
                target: target.clone(),
                records: erased,
                examined,
            })
        })?;
        self.after_erasure()?;
        Ok(erasure)
    }

    fn append_erase_record(&mut self, record: AuditRecord) -> Result<u64, StoreError> {
        let seqs = self.append_locked(vec![AuditEvent {
            record,
            ..AuditEvent::default()
        }])?;
        Ok(seqs.first().copied().unwrap_or(0))
    }

    /// Anchors the head past the erasure record, and moves old page images (sealed keys,
    /// deleted payloads) out of the write-ahead log.
    fn after_erasure(&mut self) -> Result<(), StoreError> {
        self.anchor_head()?;
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!("audit WAL checkpoint after erasure failed: {e}");
        }
        Ok(())
    }
}

/// An `audit.erase` record of `actor` erasing `target` (in `tenant`, when given).
fn erase_record(tenant: Option<&str>, actor: &str, target: &str) -> AuditRecord {
    AuditRecord {
        kind: kind::AUDIT_ERASE.into(),
        tenant_id: tenant.map(str::to_string),
        decision: Some("allow".into()),
        action: Some("audit.erase".into()),
        actor: Some(actor.to_string()),
        target: Some(target.to_string()),
        ..AuditRecord::default()
    }
}

/// Erasure on an instance, from the command line or the admin API: opens the log and the
/// key material each time (erasure is rare).
#[derive(Debug, Clone)]
pub struct Eraser {
    loaded: LoadedConfig,
}

impl Eraser {
    pub fn new(loaded: &LoadedConfig) -> Self {
        Self {
            loaded: loaded.clone(),
        }
    }

    fn instance(&self) -> Result<InstanceKey, StoreError> {
        InstanceKey::read(&self.loaded.key_file_path())
    }

    /// Erases the payloads of the user `user` in the tenant with id `tenant`.
    pub fn erase_user(&self, tenant: &str, user: &str, actor: &str) -> Result<Erasure, StoreError> {
        AuditLog::open_configured(&self.loaded, &self.instance()?)?.erase_user(tenant, user, actor)
    }

    /// Erases the stored payloads that hold `value` (of the tenant with id `tenant`, or of
    /// every tenant); with `dry_run`, only says which they are.
    pub fn erase_value(
        &self,
        value: &str,
        tenant: Option<&str>,
        actor: &str,
        dry_run: bool,
    ) -> Result<ValueErasure, ErasureError> {
        let value = SubjectValue::parse(value)?;
        let instance = self.instance()?;
        let audit = open_audit_db(&self.loaded.audit_db_path())?;
        let mut looked_up_to = last_seq(&audit)?;
        let candidates = self.candidates(&audit, &instance, &value, tenant)?;
        let mut keys = HashMap::new();
        let mut found = Vec::new();
        let mut examined = 0;
        for &seq in candidates.iter().filter(|seq| **seq <= looked_up_to) {
            examined += 1;
            if holds(&audit, &instance.seal_key, seq, tenant, &value, &mut keys)? {
                found.push(seq);
            }
        }
        // Records appended meanwhile are read here too, until few are left for the
        // erasure to read under the log's write lock (appends wait for it).
        loop {
            let now = last_seq(&audit)?;
            if now - looked_up_to <= LOCKED_TAIL {
                break;
            }
            for seq in with_payloads_after(&audit, tenant, looked_up_to)? {
                if seq > now {
                    break;
                }
                examined += 1;
                if holds(&audit, &instance.seal_key, seq, tenant, &value, &mut keys)? {
                    found.push(seq);
                }
            }
            looked_up_to = now;
        }
        if dry_run {
            return Ok(ValueErasure {
                seq: None,
                target: ValueKeys::derive(&instance.seal_key)
                    .erasure_target("value", value.compact()),
                records: found,
                examined,
            });
        }
        let mut log = AuditLog::open_configured(&self.loaded, &instance)?;
        let mut erasure = log.erase_found(&value, tenant, &found, looked_up_to, actor)?;
        erasure.examined += examined;
        Ok(erasure)
    }

    /// The records that may hold `value`, ascending: those the search index's terms and
    /// words point at, and every record with payloads that the index does not cover (past
    /// its watermark, older than its oldest day, or all of them without an index).
    fn candidates(
        &self,
        audit: &Connection,
        instance: &InstanceKey,
        value: &SubjectValue,
        tenant: Option<&str>,
    ) -> Result<Vec<u64>, StoreError> {
        let dir = self.loaded.audit_index_dir();
        let indexed = indexed_up_to(&dir);
        let mut candidates = Vec::new();
        let mut covered_from = i64::MAX;
        if indexed > 0 {
            let mut parts = Partitions::open(&dir)?;
            if let Some(first) = parts.names()?.first() {
                covered_from = partition_start(first).unwrap_or(i64::MAX);
                let keys = ValueKeys::derive(&instance.seal_key);
                let query = value_query(&parts.fields, &keys, value);
                candidates = all_matching(&mut parts, query, tenant)?;
            }
        }
        let mut uncovered = audit.prepare(
            "SELECT seq FROM records
             WHERE (request_payload IS NOT NULL OR response_payload IS NOT NULL)
               AND (?1 IS NULL OR tenant_id = ?1)
               AND (seq > ?2 OR ts_ms < ?3)",
        )?;
        let rows = uncovered.query_map(params![tenant, indexed as i64, covered_from], |r| {
            r.get::<_, i64>(0).map(|n| n as u64)
        })?;
        for seq in rows {
            candidates.push(seq?);
        }
        candidates.sort_unstable();
        candidates.dedup();
        Ok(candidates)
    }
}

/// Most records an erasure reads while holding the log's write lock: those appended
/// after it last looked outside the lock.
const LOCKED_TAIL: u64 = 1000;

/// The last sequence number in the log (0 when empty).
fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    Ok(
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| {
            r.get::<_, i64>(0).map(|n| n as u64)
        })?,
    )
}

/// Records after `after` that still hold payloads (in `tenant`, when given), ascending.
fn with_payloads_after(
    conn: &Connection,
    tenant: Option<&str>,
    after: u64,
) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq FROM records
         WHERE seq > ?1 AND (?2 IS NULL OR tenant_id = ?2)
           AND (request_payload IS NOT NULL OR response_payload IS NOT NULL)
         ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![after as i64, tenant], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether record `seq` (in `tenant`, when given) still has a payload that holds `value`:
/// in its searchable text (a stream's text joined as the client read it) or in its bytes
/// as stored (a value in a number or a key). `keys` caches data keys by id.
fn holds(
    conn: &Connection,
    seal_key: &[u8; 32],
    seq: u64,
    tenant: Option<&str>,
    value: &SubjectValue,
    keys: &mut HashMap<String, Option<[u8; 32]>>,
) -> Result<bool, StoreError> {
    type Row = (String, Option<String>, Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT body, tenant_id, request_payload, response_payload FROM records WHERE seq = ?1",
        )?
        .query_row([seq as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((body, record_tenant, request, response)) = row else {
        return Ok(false);
    };
    if tenant.is_some_and(|t| record_tenant.as_deref() != Some(t)) {
        return Ok(false);
    }
    let record: AuditRecord = serde_json::from_str(&body)
        .map_err(|e| StoreError::Invalid(format!("record {seq} does not parse: {e}")))?;
    let Some(key_id) = record.payload_key else {
        return Ok(false);
    };
    if !keys.contains_key(&key_id) {
        let key = read_data_key(conn, seal_key, &key_id)?;
        keys.insert(key_id.clone(), key);
    }
    let Some(Some(key)) = keys.get(&key_id) else {
        return Ok(false);
    };
    Ok([request, response].into_iter().flatten().any(|sealed| {
        open_payload(key, &key_id, &sealed).is_some_and(|plain| {
            value.found_in(&searchable(&plain)) || value.found_in(&String::from_utf8_lossy(&plain))
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::search::indexer::Indexer;
    use crate::audit::search::personal::PersonalData;

    fn request(tenant: &str, user: &str, text: &str) -> AuditEvent {
        AuditEvent {
            record: AuditRecord {
                kind: kind::LLM_REQUEST.into(),
                tenant_id: Some(tenant.into()),
                user_id: Some(user.into()),
                ..AuditRecord::default()
            },
            request_payload: Some(
                serde_json::json!({"messages": [{"content": text}]})
                    .to_string()
                    .into_bytes()
                    .into(),
            ),
            response_payload: None,
        }
    }

    fn payloads(loaded: &LoadedConfig) -> Vec<bool> {
        open_audit_db(&loaded.audit_db_path())
            .unwrap()
            .prepare("SELECT request_payload IS NOT NULL FROM records WHERE kind = 'llm.request' ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Erasure is complete whatever the index covers: records past its watermark, and
    /// all of them without an index, are read directly; each is confirmed in its payload.
    #[test]
    fn value_erasure_finds_indexed_and_unindexed_records_alike() {
        let dir = crate::store::scratch_dir("erase-value");
        let loaded = LoadedConfig::from_text(
            &dir.join("airlock.yaml"),
            "upstreams:\n  u:\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  m:\n    upstream: u\n",
        )
        .unwrap();
        let instance = InstanceKey::generate().unwrap();
        instance.write_new(&loaded.key_file_path()).unwrap();
        let mut log = AuditLog::open_configured(&loaded, &instance).unwrap();
        log.append(vec![
            request(
                "ten_a",
                "alice",
                "please call Ann Lee at 4111 1111 1111 1111",
            ),
            request("ten_a", "bob", "Joanne Leeds sends her regards"),
            request("ten_b", "carol", "ANN LEE again, card 4111-1111-1111-1111"),
        ])
        .unwrap();
        let eraser = Eraser::new(&loaded);

        // No index at all: every payload is read.
        let card = eraser
            .erase_value("4111111111111111", Some("ten_a"), "test", true)
            .unwrap();
        assert_eq!((card.records.as_slice(), card.seq), (&[1][..], None));
        assert_eq!(card.examined, 2, "ten_a's two records");

        // An index of the first three records, then a fourth it has not seen.
        let audit = open_audit_db(&loaded.audit_db_path()).unwrap();
        let mut indexer = Indexer::open(&loaded.audit_index_dir(), instance.seal_key)
            .unwrap()
            .unwrap();
        let mut personal = PersonalData::new(&instance.seal_key, None, false);
        indexer
            .catch_up(&audit, &mut personal, &mut |_, _| {})
            .unwrap();
        drop(indexer);
        log.append(vec![request("ten_a", "dave", "Ann Lee's new number")])
            .unwrap();
        let erased = eraser.erase_value("ann lee", None, "test", false).unwrap();
        assert_eq!(erased.records, [1, 3, 4], "not Joanne Leeds");
        assert_eq!(
            erased.examined, 3,
            "the index's two candidates and the unindexed one"
        );
        assert_eq!(payloads(&loaded), [false, true, false, false]);
        let again = eraser.erase_value("Ann Lee", None, "test", false).unwrap();
        assert!(again.records.is_empty(), "nothing left to erase");
        assert!(matches!(
            eraser.erase_value("a.b", None, "test", false),
            Err(ErasureError::Value(ValueError::TooShort))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
