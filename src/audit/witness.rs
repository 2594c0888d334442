//! Witnesses: each signed checkpoint also goes where whoever holds the box cannot
//! rewrite it, so a log cut or rewritten below a witnessed checkpoint is caught even when
//! the local anchors were rewritten too. The witness file (`audit.witness_file`) is one:
//! outside the data directory, appended to and fsync'd, one JSON line per checkpoint
//! (its range, Merkle root, link, time, signature, and hash). The syslog/SIEM stream,
//! once it exists, is another implementor of [`Witness`]. Verification holds the log
//! against a witness file or a single checkpoint hash an auditor wrote down.

use super::columns::Columns;
use super::log::Checkpoint;
use super::merkle::{self, Hash};
use super::verify::{Finding, Problem, checkpoint_columns};
use crate::store::StoreError;
use crate::store::instance_key::{hex, unhex};
use rusqlite::Connection;
use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a witness could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("audit.witness_file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "audit.witness_file {0} is inside the data directory; a witness must be where whoever \
         can rewrite the data directory cannot (another mount or owner)"
    )]
    InsideDataDir(String),
    #[error(
        "`{0}` is neither a witness file nor a checkpoint hash (64 hex digits, as `airlock \
         audit verify` prints it)"
    )]
    NotExternal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Somewhere each signed checkpoint is handed beyond the local files.
pub trait Witness: Send {
    /// What to call it in the service log.
    fn name(&self) -> String;
    /// The last record of the newest checkpoint it holds (0: none), read afresh.
    fn witnessed(&mut self) -> Result<u64, WitnessError>;
    /// Takes checkpoints (oldest first) that follow the ones it holds.
    fn witness(&mut self, checkpoints: &[Checkpoint]) -> Result<(), WitnessError>;
}

/// One line of a witness file: a checkpoint and its hash.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WitnessLine {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// The checkpoint's hash (what the next one names as previous).
    #[serde(with = "merkle::hex_hash")]
    pub hash: Hash,
}

/// The witness file: lines are only ever appended, each write fsync'd.
pub struct WitnessFile {
    path: PathBuf,
    /// The instance's public key: only lines it signed say how far the file goes.
    public_key: Vec<u8>,
}

/// How much of a witness file's end is read to find its last line.
const TAIL_BYTES: u64 = 64 * 1024;

impl WitnessFile {
    /// The witness file at `path` (created if missing, in a directory that must exist),
    /// refused inside `data_dir`, for checkpoints signed with `public_key`.
    pub fn open(path: &Path, data_dir: &Path, public_key: &[u8]) -> Result<Self, WitnessError> {
        let resolved = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let parent = path.parent().unwrap_or(Path::new("/"));
        if resolved(parent).starts_with(resolved(data_dir)) {
            return Err(WitnessError::InsideDataDir(path.display().to_string()));
        }
        let created = !path.exists();
        append_to(path)?;
        if created {
            // The new file's name must survive a crash as much as its lines.
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|source| io_error(parent, source))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            public_key: public_key.to_vec(),
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> WitnessError {
    WitnessError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The file opened for appending (created 0640 if missing).
fn append_to(path: &Path) -> Result<std::fs::File, WitnessError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| io_error(path, source))
}

impl Witness for WitnessFile {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Read from the file's last checkpoint signed by this instance (another process, a
    /// CLI command, may have appended since; a line appended by anyone else does not
    /// make it skip checkpoints).
    fn witnessed(&mut self) -> Result<u64, WitnessError> {
        let mut file = std::fs::File::open(&self.path).map_err(|e| io_error(&self.path, e))?;
        let len = file.metadata().map_err(|e| io_error(&self.path, e))?.len();
        let mut tail = Vec::new();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
            .and_then(|_| file.read_to_end(&mut tail))
            .map_err(|e| io_error(&self.path, e))?;
        let last = String::from_utf8_lossy(&tail)
            .lines()
            .rev()
            .find_map(|line| {
                serde_json::from_str::<WitnessLine>(line)
                    .ok()
                    .filter(|w| {
                        w.checkpoint.hash() == w.hash
                            && w.checkpoint.signature_valid(&self.public_key)
                    })
                    .map(|w| w.checkpoint.last_seq)
            });
        Ok(last.unwrap_or(0))
    }

    fn witness(&mut self, checkpoints: &[Checkpoint]) -> Result<(), WitnessError> {
        let mut text = Vec::new();
        for checkpoint in checkpoints {
            let line = WitnessLine {
                checkpoint: checkpoint.clone(),
                hash: checkpoint.hash(),
            };
            serde_json::to_writer(&mut text, &line)
                .map_err(|e| io_error(&self.path, std::io::Error::other(e)))?;
            text.push(b'\n');
        }
        let mut file = append_to(&self.path)?;
        // A line cut by a crash mid-write is closed first, so the next one stands alone.
        let len = file.metadata().map_err(|e| io_error(&self.path, e))?.len();
        if len > 0 && !ends_with_newline(&self.path, len)? {
            text.insert(0, b'\n');
        }
        file.write_all(&text)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error(&self.path, e))
    }
}

fn ends_with_newline(path: &Path, len: u64) -> Result<bool, WitnessError> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| io_error(path, e))?;
    Ok(last[0] == b'\n')
}

/// A checkpoint kept apart from the log, to hold the log against.
pub enum External {
    /// A witness file (or a copy an auditor kept).
    File(PathBuf),
    /// One checkpoint's hash, written down.
    Hash(Hash),
}

impl External {
    /// `FILE` when such a file exists, else a checkpoint hash (64 hex digits).
    pub fn parse(arg: &str) -> Result<Self, WitnessError> {
        let path = Path::new(arg);
        if path.is_file() {
            return Ok(Self::File(path.to_path_buf()));
        }
        unhex(arg.trim())
            .and_then(|bytes| Hash::try_from(bytes.as_slice()).ok())
            .map(Self::Hash)
            .ok_or_else(|| WitnessError::NotExternal(arg.to_string()))
    }
}

/// The log's checkpoints by last record, with their hashes.
struct LogCheckpoints {
    by_last: HashMap<u64, Hash>,
    /// The newest checkpoint's last record (0: none).
    newest: u64,
}

impl LogCheckpoints {
    fn read(audit: &Connection) -> Result<Self, StoreError> {
        let mut stmt = audit.prepare(
            "SELECT first_seq, last_seq, ts_ms, root, previous, signature FROM checkpoints",
        )?;
        let rows = stmt.query_map([], |r| {
            let mut cols = Columns::new(r);
            Ok(checkpoint_columns(&mut cols))
        })?;
        let mut by_last = HashMap::new();
        for checkpoint in rows {
            let checkpoint = checkpoint?;
            by_last.insert(checkpoint.last_seq, checkpoint.hash());
        }
        let newest = by_last.keys().copied().max().unwrap_or(0);
        Ok(Self { by_last, newest })
    }
}

/// Holds the log against `external`; what it found, and the newest checkpoint the
/// external source holds (its last record).
pub fn check(
    audit: &Connection,
    public_key: &[u8],
    external: &External,
) -> Result<(Vec<Finding>, u64), WitnessError> {
    match external {
        External::Hash(hash) => Ok(check_hash(&LogCheckpoints::read(audit)?, hash)),
        External::File(path) => {
            // The file is measured before the log is read: a line is appended only after
            // its checkpoint is committed, so every line within that length is in the log
            // read after it, even while a gateway goes on checkpointing.
            let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
            let len = file.metadata().map_err(|e| io_error(path, e))?.len();
            let log = LogCheckpoints::read(audit)?;
            check_file(&log, public_key, path, file.take(len))
        }
    }
}

fn check_hash(log: &LogCheckpoints, hash: &Hash) -> (Vec<Finding>, u64) {
    match log.by_last.iter().find(|(_, h)| *h == hash) {
        Some((last, _)) => (Vec::new(), *last),
        None => (
            vec![Finding::new(
                Problem::Diverged,
                log.newest + 1,
                format!(
                    "no checkpoint of the log has hash {}: the log was cut below that \
                     checkpoint or rewritten since it was written down",
                    hex(hash)
                ),
            )],
            0,
        ),
    }
}

fn check_file(
    log: &LogCheckpoints,
    public_key: &[u8],
    path: &Path,
    file: impl Read,
) -> Result<(Vec<Finding>, u64), WitnessError> {
    let name = path.display().to_string();
    let mut findings = Vec::new();
    // The newest witnessed checkpoint past the log's end: one finding says the cut.
    let mut beyond: Option<(usize, WitnessLine)> = None;
    let mut witnessed = 0;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| io_error(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = match read_line(&line, log, public_key) {
            Ok(entry) => entry,
            Err(why) => {
                findings.push(Finding::new(
                    Problem::WitnessUnreadable,
                    0,
                    format!("{name} line {number} is not a checkpoint of this instance: {why}"),
                ));
                continue;
            }
        };
        let (first, last) = (entry.checkpoint.first_seq, entry.checkpoint.last_seq);
        witnessed = witnessed.max(last);
        match log.by_last.get(&last) {
            Some(hash) if *hash == entry.hash => {}
            Some(_) => findings.push(Finding::new(
                Problem::Diverged,
                first,
                format!(
                    "checkpoint {first}..{last} differs from the one witnessed in {name} line \
                     {number}: the log was rewritten"
                ),
            )),
            None if last > log.newest => {
                if beyond
                    .as_ref()
                    .is_none_or(|(_, b)| b.checkpoint.last_seq < last)
                {
                    beyond = Some((number, entry));
                }
            }
            None => findings.push(Finding::new(
                Problem::Diverged,
                first,
                format!(
                    "the log holds no checkpoint ending at record {last}, though {name} line \
                     {number} witnessed one: its checkpoints were rewritten"
                ),
            )),
        }
    }
    if let Some((number, entry)) = beyond {
        let last = entry.checkpoint.last_seq;
        findings.push(Finding::new(
            Problem::Truncated,
            log.newest + 1,
            format!(
                "{name} line {number} holds checkpoint {}..{last}, signed by this instance, but \
                 the log's checkpoints end at record {}: the log was cut",
                entry.checkpoint.first_seq, log.newest
            ),
        ));
    }
    Ok((findings, witnessed))
}

/// A witness line that states its own hash truly and is signed with `public_key`. The
/// signature is checked only when the log lacks that very checkpoint (verification
/// checks the log's own signatures).
fn read_line(line: &str, log: &LogCheckpoints, public_key: &[u8]) -> Result<WitnessLine, String> {
    let entry: WitnessLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if entry.checkpoint.hash() != entry.hash {
        return Err("its hash does not match its content".into());
    }
    let in_log = log.by_last.get(&entry.checkpoint.last_seq) == Some(&entry.hash);
    if !in_log && !entry.checkpoint.signature_valid(public_key) {
        return Err("its signature does not verify with the instance key".into());
    }
    Ok(entry)
}
