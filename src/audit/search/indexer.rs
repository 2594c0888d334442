//! Keeps the search index up with the log: reads the records after its watermark,
//! opens their payloads, takes the personal data out of their text, adds them to their
//! day's partition and commits in batches. One process indexes at a time (a lock file);
//! the watermark is written after every partition committed, and a partition found
//! ahead of it after a crash is cut back.

use super::partitions::{Partitions, index_error, partition_of};
use super::personal::{PersonalData, Redacted};
use super::query::matching_seqs;
use super::schema::document;
use super::text::pieces;
use crate::audit::keys::open_payload;
use crate::audit::log::read_data_key;
use crate::audit::record::{AuditRecord, kind};
use crate::audit::retention::retention_cutoff;
use crate::store::StoreError;
use rusqlite::Connection;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Bound;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tantivy::query::{BooleanQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexWriter, Term};

/// Records read from the log at a time.
const READ_BATCH: usize = 2000;
/// Records added before an intermediate commit during a long catch-up (bounds memory
/// and lets a rebuild resume).
const COMMIT_EVERY: u64 = 200_000;
/// Memory for one partition's writer (tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 48_000_000;
const WATERMARK_FILE: &str = "indexed";
const SCHEMA_FILE: &str = "schema";
/// Changed with the schema: an index of another version is rebuilt from the log.
/// (Version 3 holds no personal values in clear; older ones are rebuilt without them.)
const SCHEMA_VERSION: &str = "airlock audit index 3";
const LOCK_FILE: &str = ".indexer.lock";

/// Another process holds the indexer lock.
#[derive(Debug)]
pub struct Busy;

/// The index's write side.
pub struct Indexer {
    parts: Partitions,
    writers: BTreeMap<String, IndexWriter>,
    /// Last sequence number indexed and committed.
    watermark: u64,
    seal_key: [u8; 32],
    /// Held while this indexer lives (one indexer at a time); also shows when the
    /// directory was deleted under it.
    lock: File,
}

impl Indexer {
    /// Opens the index under `dir` for writing; `Ok(Err(Busy))` when another process
    /// (the running gateway, a reindex) is indexing it.
    pub fn open(dir: &Path, seal_key: [u8; 32]) -> Result<Result<Self, Busy>, StoreError> {
        let mut parts = Partitions::open(dir)?;
        let lock = File::create(dir.join(LOCK_FILE))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Err(Busy)),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        // The index is a view of the log: one of another schema, or damaged (a crash
        // mid-write on a machine that lost power), is rebuilt from it.
        let schema = std::fs::read_to_string(dir.join(SCHEMA_FILE)).unwrap_or_default();
        let other_schema = schema.trim() != SCHEMA_VERSION;
        let damaged = !other_schema && parts.first_damaged()?.is_some();
        if other_schema || damaged {
            if damaged || !parts.names()?.is_empty() {
                tracing::warn!("rebuilding the audit search index from the log");
            }
            parts.drop_before(i64::MAX)?;
            let _ = std::fs::remove_file(dir.join(WATERMARK_FILE));
            std::fs::write(dir.join(SCHEMA_FILE), SCHEMA_VERSION)?;
        }
        let watermark = indexed_up_to(dir);
        let mut indexer = Self {
            parts,
            writers: BTreeMap::new(),
            watermark,
            seal_key,
            lock,
        };
        indexer.cut_back_to_watermark()?;
        Ok(Ok(indexer))
    }

    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// Whether the index directory was deleted (or replaced) since this indexer opened
    /// it: its lock file is no longer the one it holds.
    pub fn vanished(&self) -> bool {
        let on_disk = std::fs::metadata(self.parts.dir().join(LOCK_FILE));
        let held = self.lock.metadata();
        match (on_disk, held) {
            (Ok(on_disk), Ok(held)) => (on_disk.dev(), on_disk.ino()) != (held.dev(), held.ino()),
            _ => true,
        }
    }

    pub fn partitions(&self) -> &Partitions {
        &self.parts
    }

    /// Removes what partitions committed past the watermark (a crash between their
    /// commits and the watermark's), so no record is indexed twice.
    fn cut_back_to_watermark(&mut self) -> Result<(), StoreError> {
        let seq = self.parts.fields.seq;
        for name in self.parts.names()? {
            let ahead = self
                .parts
                .get(&name)?
                .index
                .load_metas()
                .map_err(index_error)?
                .payload
                .and_then(|p| p.parse::<u64>().ok())
                .is_some_and(|committed| committed > self.watermark);
            if ahead {
                let past = RangeQuery::new(
                    Bound::Excluded(Term::from_field_u64(seq, self.watermark)),
                    Bound::Unbounded,
                );
                self.writer(&name)?
                    .delete_query(Box::new(past))
                    .map_err(index_error)?;
            }
        }
        self.commit()
    }

    fn writer(&mut self, partition: &str) -> Result<&mut IndexWriter, StoreError> {
        if !self.writers.contains_key(partition) {
            let writer = self
                .parts
                .get(partition)?
                .index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .map_err(index_error)?;
            self.writers.insert(partition.to_string(), writer);
        }
        self.writers
            .get_mut(partition)
            .ok_or_else(|| index_error("writer vanished"))
    }

    /// Indexes every record after the watermark, its text with the personal data
    /// `personal` finds taken out, and commits; how many it indexed. `progress` hears
    /// (done, total) after each read batch.
    pub fn catch_up(
        &mut self,
        audit: &Connection,
        personal: &mut PersonalData,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, StoreError> {
        let last: u64 = audit.query_row("SELECT COALESCE(MAX(seq), 0) FROM records", [], |r| {
            r.get::<_, i64>(0).map(|n| n as u64)
        })?;
        let (start, total) = (self.watermark, last.saturating_sub(self.watermark));
        if start == 0 && total > 0 {
            tracing::info!(
                records = total,
                "building the audit search index from the log"
            );
        }
        let mut position = start;
        let mut since_commit = 0u64;
        let mut keys = HashMap::new();
        while position < last {
            let rows = read_after(audit, position)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let record: AuditRecord = serde_json::from_str(&row.body).map_err(|e| {
                    StoreError::Invalid(format!("record {} does not parse: {e}", row.seq))
                })?;
                if record.kind == kind::AUDIT_ERASE || record.kind == kind::AUDIT_RETENTION {
                    // Everything before it committed first, so the text it removes is
                    // found wherever it was indexed.
                    self.watermark = position;
                    self.commit()?;
                    self.apply_housekeeping(audit, &record)?;
                    keys.clear();
                    since_commit = 0;
                }
                let text = self.payload_text(audit, &record, &row, &mut keys)?;
                let doc = document(&self.parts.fields, &record, &personal.redact(&text));
                self.writer(&partition_of(record.ts_ms))?
                    .add_document(doc)
                    .map_err(index_error)?;
                position = row.seq;
                since_commit += 1;
            }
            progress(position - start, total);
            if since_commit >= COMMIT_EVERY {
                self.watermark = position;
                self.commit()?;
                since_commit = 0;
            }
        }
        self.watermark = position;
        self.commit()?;
        Ok(position - start)
    }

    /// The searchable pieces of a record's payloads (none once its data key is
    /// destroyed).
    fn payload_text(
        &self,
        audit: &Connection,
        record: &AuditRecord,
        row: &Row,
        keys: &mut HashMap<String, Option<[u8; 32]>>,
    ) -> Result<Vec<String>, StoreError> {
        let Some(key_id) = &record.payload_key else {
            return Ok(Vec::new());
        };
        if !keys.contains_key(key_id) {
            let key = read_data_key(audit, &self.seal_key, key_id)?;
            keys.insert(key_id.clone(), key);
        }
        let Some(Some(key)) = keys.get(key_id) else {
            return Ok(Vec::new());
        };
        let mut text = Vec::new();
        for sealed in [&row.request_payload, &row.response_payload]
            .into_iter()
            .flatten()
        {
            if let Some(plain) = open_payload(key, key_id, sealed) {
                text.extend(pieces(&plain));
            }
        }
        Ok(text)
    }

    /// What a record of the log's own housekeeping asks of the index: an erasure drops
    /// the text of the records sealed with the destroyed keys, or of the records whose
    /// payloads it deleted; a retention sweep drops the text of a tenant's records older
    /// than its cutoff.
    fn apply_housekeeping(
        &mut self,
        audit: &Connection,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let f = self.parts.fields;
        let mut clauses: Vec<Box<dyn Query>> = Vec::new();
        let mut before = None;
        if record.kind == kind::AUDIT_ERASE {
            for key_id in record.detail.as_deref().unwrap_or("").split(',') {
                let key_id = key_id.trim();
                if !key_id.is_empty() {
                    clauses.push(Box::new(TermQuery::new(
                        Term::from_field_text(f.payload_key, key_id),
                        IndexRecordOption::Basic,
                    )));
                }
            }
            for seq in &record.erased_records {
                clauses.push(Box::new(TermQuery::new(
                    Term::from_field_u64(f.seq, *seq),
                    IndexRecordOption::Basic,
                )));
            }
        } else if let (Some(tenant), Some(cutoff)) = (&record.tenant_id, retention_cutoff(record)) {
            before = Some(cutoff);
            let in_tenant = TermQuery::new(
                Term::from_field_text(f.tenant, tenant),
                IndexRecordOption::Basic,
            );
            let older = RangeQuery::new(
                Bound::Included(Term::from_field_i64(f.ts_ms, i64::MIN)),
                Bound::Excluded(Term::from_field_i64(f.ts_ms, cutoff)),
            );
            let with_text = TermQuery::new(
                Term::from_field_u64(f.has_text, 1),
                IndexRecordOption::Basic,
            );
            clauses.push(Box::new(BooleanQuery::intersection(vec![
                Box::new(in_tenant),
                Box::new(older),
                Box::new(with_text),
            ])));
        }
        if clauses.is_empty() {
            return Ok(());
        }
        let query = BooleanQuery::union(clauses);
        self.strip_text(audit, &query, before)
    }

    /// Re-adds the records `query` finds without their text (in partitions starting
    /// before `before`, when given), then merges the partitions it touched so the
    /// deleted documents, and their words, leave the index files.
    fn strip_text(
        &mut self,
        audit: &Connection,
        query: &dyn Query,
        before: Option<i64>,
    ) -> Result<(), StoreError> {
        let fields = self.parts.fields;
        let mut touched = Vec::new();
        for name in self.parts.overlapping(None, before)? {
            let searcher = self.parts.get(&name)?.reader.searcher();
            let seqs = matching_seqs(&searcher, query)?;
            if seqs.is_empty() {
                continue;
            }
            touched.push(name.clone());
            let writer = self.writer(&name)?;
            for seq in seqs {
                writer.delete_term(Term::from_field_u64(fields.seq, seq));
                let body: String = audit.query_row(
                    "SELECT body FROM records WHERE seq = ?1",
                    [seq as i64],
                    |r| r.get(0),
                )?;
                let record: AuditRecord = serde_json::from_str(&body)
                    .map_err(|e| StoreError::Invalid(format!("record {seq}: {e}")))?;
                writer
                    .add_document(document(&fields, &record, &Redacted::default()))
                    .map_err(index_error)?;
            }
        }
        if touched.is_empty() {
            return Ok(());
        }
        self.commit()?;
        for name in touched {
            let segments = self
                .parts
                .get(&name)?
                .index
                .searchable_segment_ids()
                .map_err(index_error)?;
            let writer = self.writer(&name)?;
            if !segments.is_empty() {
                writer.merge(&segments).wait().map_err(index_error)?;
            }
            writer.garbage_collect_files().wait().map_err(index_error)?;
        }
        Ok(())
    }

    /// Commits every open partition, then the watermark; keeps only the newest
    /// partition's writer open.
    fn commit(&mut self) -> Result<(), StoreError> {
        let payload = self.watermark.to_string();
        for writer in self.writers.values_mut() {
            let mut prepared = writer.prepare_commit().map_err(index_error)?;
            prepared.set_payload(&payload);
            prepared.commit().map_err(index_error)?;
        }
        let dir = self.parts.dir();
        let tmp = dir.join(format!("{WATERMARK_FILE}.tmp"));
        std::fs::write(&tmp, &payload)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(WATERMARK_FILE))?;
        while self.writers.len() > 1 {
            self.writers.pop_first();
        }
        Ok(())
    }

    /// Deletes the partitions of days that ended more than `days` ago; their names.
    pub fn apply_retention(&mut self, days: u64) -> Result<Vec<String>, StoreError> {
        let cutoff = crate::store::now_unix_ms() - (days as i64).saturating_mul(86_400_000);
        let dropped = self.parts.drop_before(cutoff)?;
        for name in &dropped {
            self.writers.remove(name);
        }
        Ok(dropped)
    }

    /// Empties the index, to rebuild it from the log.
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.writers.clear();
        self.parts.drop_before(i64::MAX)?;
        self.watermark = 0;
        self.commit()
    }
}

/// The last sequence number the index under `dir` holds: 0 when there is none, or when
/// it is of another schema (to be rebuilt) and cannot be queried as this one.
pub fn indexed_up_to(dir: &Path) -> u64 {
    let schema = std::fs::read_to_string(dir.join(SCHEMA_FILE)).unwrap_or_default();
    if schema.trim() != SCHEMA_VERSION {
        return 0;
    }
    std::fs::read_to_string(dir.join(WATERMARK_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// A record as read for indexing.
struct Row {
    seq: u64,
    body: String,
    request_payload: Option<Vec<u8>>,
    response_payload: Option<Vec<u8>>,
}

fn read_after(audit: &Connection, after: u64) -> Result<Vec<Row>, StoreError> {
    let mut stmt = audit.prepare_cached(
        "SELECT seq, body, request_payload, response_payload FROM records
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![after as i64, READ_BATCH as i64], |r| {
        Ok(Row {
            seq: r.get::<_, i64>(0)? as u64,
            body: r.get(1)?,
            request_payload: r.get(2)?,
            response_payload: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
