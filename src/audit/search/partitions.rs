//! The search index on disk: one tantivy index per UTC day of record time
//! (`audit-index/2026-11-26/`), so retention drops whole days, and a query only opens
//! the days its time range touches.

use super::schema::{Fields, schema};
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tantivy::directory::MmapDirectory;
use tantivy::schema::Schema;
use tantivy::{Index, IndexReader, ReloadPolicy};

const DAY_MS: i64 = 86_400_000;

/// A tantivy failure, as the stores report errors.
pub fn index_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("audit search index: {e}"))
}

/// The partition (UTC day, `YYYY-MM-DD`) a record time falls in.
pub fn partition_of(ts_ms: i64) -> String {
    let day_start = ts_ms.div_euclid(DAY_MS) * DAY_MS;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(day_start.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_string()
}

/// The first millisecond of a partition's day; `None` if the name is not a day.
pub fn partition_start(name: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339(&format!("{name}T00:00:00Z")).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

/// One day's index and a reader on it.
pub struct Partition {
    pub index: Index,
    pub reader: IndexReader,
    /// The directory it was opened in (device, inode): a partition deleted and built
    /// again under the same name is opened anew.
    dir_id: Option<(u64, u64)>,
}

fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The partitions under one directory.
pub struct Partitions {
    dir: PathBuf,
    pub schema: Schema,
    pub fields: Fields,
    open: BTreeMap<String, Partition>,
}

impl Partitions {
    /// The index under `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        Ok(Self {
            dir: dir.to_path_buf(),
            schema,
            fields,
            open: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition names on disk, oldest first.
    pub fn names(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| partition_start(name).is_some())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The partitions whose day overlaps `[since, until]` (ms), oldest first.
    pub fn overlapping(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .names()?
            .into_iter()
            .filter(|name| {
                let start = partition_start(name).unwrap_or(0);
                since.is_none_or(|s| start + DAY_MS > s) && until.is_none_or(|u| start <= u)
            })
            .collect())
    }

    /// A partition, opened (and created) on first use, its reader brought up to date.
    pub fn get(&mut self, name: &str) -> Result<&Partition, StoreError> {
        let path = self.dir.join(name);
        if self
            .open
            .get(name)
            .is_some_and(|open| open.dir_id != dir_id(&path))
        {
            self.open.remove(name);
        }
        if !self.open.contains_key(name) {
            std::fs::create_dir_all(&path)?;
            let directory = MmapDirectory::open(&path).map_err(index_error)?;
            let index =
                Index::open_or_create(directory, self.schema.clone()).map_err(index_error)?;
            let reader = index
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .try_into()
                .map_err(index_error)?;
            let dir_id = dir_id(&path);
            self.open.insert(
                name.to_string(),
                Partition {
                    index,
                    reader,
                    dir_id,
                },
            );
        }
        let partition = self
            .open
            .get(name)
            .ok_or_else(|| index_error("partition vanished"))?;
        partition.reader.reload().map_err(index_error)?;
        Ok(partition)
    }

    /// The first partition that does not open (damaged files), if any.
    pub fn first_damaged(&mut self) -> Result<Option<String>, StoreError> {
        for name in self.names()? {
            if let Err(e) = self.get(&name) {
                tracing::warn!("audit index partition {name} does not open: {e}");
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Deletes the partitions whose whole day ended before `cutoff_ms`; their names.
    pub fn drop_before(&mut self, cutoff_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut dropped = Vec::new();
        for name in self.names()? {
            let end = partition_start(&name).unwrap_or(0) + DAY_MS;
            if end <= cutoff_ms {
                self.open.remove(&name);
                std::fs::remove_dir_all(self.dir.join(&name))?;
                dropped.push(name);
            }
        }
        Ok(dropped)
    }

    /// Bytes the index takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            std::fs::read_dir(path)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_times_fall_in_utc_days() {
        assert_eq!(partition_of(0), "1970-01-01");
        let t = partition_start("2026-11-26").unwrap();
        assert_eq!(partition_of(t), "2026-11-26");
        assert_eq!(partition_of(t + DAY_MS - 1), "2026-11-26");
        assert_eq!(partition_of(t + DAY_MS), "2026-11-27");
        assert!(partition_start("notes").is_none());
    }
}
