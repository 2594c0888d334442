//! Files Airlock writes are the service user's alone. The process runs with a umask of
//! 077, so everything it creates — the data directory, the databases and their `-wal` and
//! `-shm` files, the key file, every file tantivy writes under `audit-index/`, evidence
//! packages, exported records — is 0600, every directory 0700, whatever umask it was started
//! with. At start the gateway also closes what an older version (or a looser umask) left
//! open: its own files in the data directory, and the index directory, down to 0600/0700.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The files Airlock keeps in the data directory (a database's `-wal`, `-shm` and
/// `-journal` files start with its name).
const OWN_FILES: &[&str] = &["airlock.db", "audit.db", "requests.db", "instance.key"];
/// Airlock's own directories in the data directory.
const OWN_DIRS: &[&str] = &["audit-index"];

/// Makes every file and directory this process creates from now on private to its user.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates the data directory (0700) if missing and takes group and other access away
/// from Airlock's files and directories in it. A data directory that others may enter is
/// left as it is (it may be shared, e.g. the configuration's own directory) and said
/// loudly: the files in it are private anyway.
pub fn secure_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data directory is open to other users; its files are private, but chmod 700 it"
        );
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if OWN_DIRS.contains(&name.as_ref()) || OWN_FILES.iter().any(|own| name.starts_with(own)) {
            restrict(&entry.path());
        }
    }
    Ok(())
}

/// `path` (and, for a directory, everything below it) without group or other access;
/// symbolic links are not followed. Failures are logged, not fatal.
fn restrict(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        return;
    }
    if mode & 0o077 != 0
        && let Err(e) =
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot make a file private");
    }
    if meta.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        for entry in entries.flatten() {
            restrict(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn own_files_and_the_index_lose_group_and_other_access_others_are_left() {
        let dir = crate::store::scratch_dir("files").join("data");
        secure_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let open = std::fs::Permissions::from_mode(0o644);
        for file in ["audit.db-wal", "instance.key", "notes.txt"] {
            std::fs::write(dir.join(file), b"x").unwrap();
            std::fs::set_permissions(dir.join(file), open.clone()).unwrap();
        }
        let day = dir.join("audit-index").join("2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::set_permissions(&day, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(day.join("meta.json"), b"{}").unwrap();
        std::fs::set_permissions(day.join("meta.json"), open).unwrap();
        secure_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir.join("audit.db-wal")), 0o600);
        assert_eq!(mode(&dir.join("instance.key")), 0o600);
        assert_eq!(mode(&day), 0o700);
        assert_eq!(mode(&day.join("meta.json")), 0o600);
        assert_eq!(mode(&dir.join("notes.txt")), 0o644, "not ours");
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    }
}
