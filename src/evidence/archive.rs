//! The package on disk: a POSIX (ustar) tar of regular files, written whole to a
//! temporary file and renamed into place; read back into memory with strict checks
//! (regular files only, relative paths, no duplicates).

use super::{EvidenceError, Files};
use std::io::Write;
use std::path::Path;

/// Writes `files` as a tar archive at `out` (mode 0600: it holds tenant data).
pub fn write(files: &Files, out: &Path, mtime: u64) -> Result<(), EvidenceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| EvidenceError::Invalid(format!("{}: {e}", out.display()));
    let name = out
        .file_name()
        .ok_or_else(|| EvidenceError::Invalid(format!("{}: not a file name", out.display())))?;
    let mut partial_name = name.to_os_string();
    partial_name.push(".partial");
    let partial = out.with_file_name(partial_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(fail)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    for (path, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(fail)?;
    }
    let mut writer = builder.into_inner().map_err(fail)?;
    writer.flush().map_err(fail)?;
    let file = writer.into_inner().map_err(|e| fail(e.into_error()))?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&partial, out).map_err(fail)
}

/// Reads every file of the tar archive at `path`.
pub fn read(path: &Path) -> Result<Files, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut files = Files::new();
    let entries = archive
        .entries()
        .map_err(|e| format!("{}: not a tar archive: {e}", path.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: damaged archive: {e}", path.display()))?;
        let kind = entry.header().entry_type();
        let name = entry
            .path()
            .map_err(|e| format!("an entry has an unreadable path: {e}"))?
            .to_str()
            .ok_or("an entry's path is not UTF-8")?
            .trim_start_matches("./")
            .to_string();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(format!("{name}: not a regular file ({kind:?})"));
        }
        if name.starts_with('/') || name.split('/').any(|part| part == "..") {
            return Err(format!("{name}: path leaves the package"));
        }
        // The header's size is not trusted for the allocation: a forged one could ask for
        // any amount; the bytes actually present are what is read.
        let hint = entry.size().min(1 << 20) as usize;
        let mut bytes = Vec::with_capacity(hint);
        std::io::Read::read_to_end(&mut entry, &mut bytes)
            .map_err(|e| format!("{name}: cannot read: {e}"))?;
        if files.insert(name.clone(), bytes).is_some() {
            return Err(format!("{name}: appears twice in the archive"));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_through_tar() {
        let dir = crate::store::scratch_dir("evidence-archive");
        let out = dir.join("p.tar");
        let mut files = Files::new();
        files.insert("a.txt".into(), b"alpha\n".to_vec());
        files.insert("sub/b.json".into(), Vec::new());
        write(&files, &out, 1_700_000_000).unwrap();
        assert_eq!(read(&out).unwrap(), files);
        assert!(!dir.join("p.tar.partial").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
