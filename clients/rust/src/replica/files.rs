//! The replica's files: atomic, owner-only writes, so that a crash leaves
//! each file whole (old or new) and a child's plan is readable by its
//! device's user only.

use super::ReplicaError;
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

pub(super) fn io_at(path: &Path) -> impl Fn(io::Error) -> ReplicaError + '_ {
    move |source| ReplicaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn corrupt(path: &Path, detail: String) -> ReplicaError {
    ReplicaError::Corrupt {
        path: path.to_path_buf(),
        detail,
    }
}

pub(super) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, ReplicaError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path)(e)),
    }
}

pub(super) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ReplicaError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ReplicaError::Io {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    write_atomically(path, &bytes)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the
/// new one, never a torn one: write a temp file beside it, fsync, rename,
/// fsync the directory.
pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReplicaError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_at(&tmp)(e));
    }
    fs::rename(&tmp, path).map_err(io_at(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Creates `dir` and its missing parents, owner-only where that means
/// something.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), ReplicaError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_at(dir))
}

/// Makes a rename or removal in `dir` durable. Best effort: not every
/// platform can open a directory.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}
