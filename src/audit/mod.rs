//! The tamper-evident audit trail: records of every decision (LLM requests, admin
//! actions, erasures, retention sweeps), chained by MAC, covered by signed Merkle
//! checkpoints, their payloads sealed with per-person keys; searchable on the box, and
//! verifiable offline.
//!
//! Module map: `record` (the record and its canonical encoding), `keys` (chain MAC key,
//! payload data keys), `merkle` (roots and inclusion proofs), `log` (appending from any
//! process, checkpoints, the head anchor), `erasure` (by person or by a value found in
//! payloads), `retention` (payloads past their tenant's retention), `values` (personal
//! values named by keyed hashes), `anchor` (the head and genesis anchors in the state
//! database), `witness` (checkpoints handed off the box, and the log held against them),
//! `admin_events` (admin actions copied in from the state database), `writer` (the thread
//! that appends in batches and acknowledges durable records), `wal` (folding the WAL into
//! the database off the writer's path), `verify` (checking a log), `absences` (what
//! explains a payload or data key that is gone), `columns` (reading a possibly tampered
//! row), `proof` (one record exported with its inclusion proof and checked without the
//! log), `checks` (the pass/fail report of offline checks), `search` (the tantivy view of
//! the log), `seed` (synthetic records for benchmarks).

pub mod absences;
pub mod admin_events;
pub mod anchor;
pub mod checks;
pub mod columns;
pub mod erasure;
pub mod keys;
pub mod log;
pub mod merkle;
pub mod proof;
pub mod record;
pub mod retention;
pub mod search;
pub mod seed;
pub mod values;
pub mod verify;
pub mod wal;
pub mod witness;
pub mod writer;

#[cfg(test)]
mod tests;
