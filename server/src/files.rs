//! The node's and the hub's files are owner-only: databases (and the
//! `-wal`/`-shm` SQLite makes with the database's mode), backups, keys,
//! secrets and the log hold plan text, password hashes, the audit trail or
//! unsuppressed cells. Each is created `0600` (directories `0700`) where
//! it is made, not by a process umask: that would be process-global state
//! and needs `unsafe`.
//!
//! At start, a data directory or file found wider is *narrowed and warned
//! about*, not refused: the node owns these files and can repair their
//! modes itself, whereas refusing would take a county's node down over
//! something it can fix; the warning (one line a path, with the mode it
//! had) tells the operator the data may already have been readable, which
//! is theirs to look into. There is so no escape hatch to configure.

use std::path::Path;

/// The mode bits nobody but the owner may have.
#[cfg(unix)]
const OTHERS: u32 = 0o077;

/// Writes `data` to `path` owner-only (`0600` from creation, not narrowed
/// after) and syncs it: keys, secrets and manifests.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Creates `dir` (and missing parents) `0700`, or narrows it if it exists
/// wider; answers the mode it had if narrowed.
pub fn private_dir(dir: &Path) -> std::io::Result<Option<u32>> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    narrow(dir, 0o700)
}

/// Creates an empty file at `path` `0600` unless it exists: SQLite then
/// opens it as a new database, and makes its `-wal` and `-shm` with its
/// mode.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets `path`'s mode to `mode` if others may use it; answers the mode it
/// had then. A missing path is left alone.
pub fn narrow(path: &Path, mode: u32) -> std::io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(None);
        };
        let had = meta.permissions().mode() & 0o7777;
        if had & OTHERS == 0 || meta.file_type().is_symlink() {
            return Ok(None);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(Some(had))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(None)
    }
}

/// Makes `data_dir`, the regular files in it and `also` (databases,
/// wherever they are, with their `-wal`, `-shm` and `-journal`; keys
/// kept elsewhere) owner-only, warning about each that was not. Only
/// `data_dir` failing to be made is an error: a file the node cannot
/// narrow (a mounted secret it does not own) is warned about. Call after
/// logging is set up.
pub fn make_private(data_dir: &Path, also: &[&Path]) -> std::io::Result<()> {
    let mut narrowed = Vec::new();
    if let Some(had) = private_dir(data_dir)? {
        narrowed.push((data_dir.to_path_buf(), Ok(had)));
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(data_dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    for path in also {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            files.push(name.into());
        }
    }
    for file in files {
        match narrow(&file, 0o600) {
            Ok(None) => {}
            Ok(Some(had)) => narrowed.push((file, Ok(had))),
            Err(e) => narrowed.push((file, Err(e))),
        }
    }
    for (path, had) in narrowed {
        match had {
            Ok(had) => tracing::warn!(
                path = %path.display(),
                mode = format!("{had:o}"),
                "others could read this file of the node: made owner-only; find out who read it"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "others can read this file of the node, which cannot make it owner-only"
            ),
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn made_owner_only_and_wider_ones_narrowed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = dir.path().join("a/b");
        assert_eq!(private_dir(&data).unwrap_or_else(|e| panic!("{e}")), None);
        assert_eq!((mode(&dir.path().join("a")), mode(&data)), (0o700, 0o700));
        let db = data.join("node.db");
        private_file(&db).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        // An existing file is left as it is by `private_file`, narrowed by `narrow`.
        private_file(&db).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            narrow(&db, 0o600).unwrap_or_else(|e| panic!("{e}")),
            Some(0o644)
        );
        assert_eq!(mode(&db), 0o600);
        assert_eq!(
            narrow(&data.join("absent"), 0o600).unwrap_or_else(|e| panic!("{e}")),
            None
        );
    }
}
