//! Search over the audit trail with tantivy: a rebuildable view of the log (the log is
//! the record; the index can be dropped and rebuilt from it), partitioned by day.
//!
//! `schema` (fields), `text` (what of a payload is searchable), `personal` (the personal
//! data taken out of it before indexing), `partitions` (the index on disk), `indexer`
//! (keeping it up with the log), `query` (running a search), `rewrite` (a query's words
//! matching the keyed hashes of values), `service` (the gateway's indexing thread and the
//! search handle it shares).

pub mod indexer;
pub mod partitions;
pub mod personal;
pub mod query;
pub mod rewrite;
pub mod schema;
pub mod service;
pub mod text;

#[cfg(test)]
mod tests;
