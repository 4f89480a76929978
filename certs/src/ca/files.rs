//! Disk I/O for the CA pair: private directories, 0600 keys, no silent overwrites.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// Mode of the CA key: only its owner may read it (threats.md: the CA key is the crown jewel).
pub(super) const KEY_MODE: u32 = 0o600;
/// Mode of the CA certificate: public by nature, clients must be able to read it.
pub(super) const CERT_MODE: u32 = 0o644;

/// Reads a whole file, naming it on failure.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Whether anything (even a dangling symlink) sits at `path`; other lookup errors are reported
/// rather than read as "missing", so a permission problem never leads to a fresh CA.
pub(super) fn exists(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(source) => Err(Error::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates `dir` (and missing parents) 0700 if it does not exist; an existing directory keeps
/// the mode its owner chose.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })
}

/// Writes a file that must not exist yet. `create_new` makes the check and the creation one
/// atomic step, and the mode applies from the first byte (no window where the key is 0644).
pub(super) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            ErrorKind::AlreadyExists => Error::Exists {
                path: path.to_owned(),
            },
            _ => Error::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

/// Replaces (or creates) a file through a fresh temporary beside it and a rename, so the new
/// content gets `mode` even when the old file was more permissive, and a crash never leaves a
/// half-written key.
pub(super) fn write_replace(path: &Path, bytes: &[u8], mode: u32, nonce: u32) -> Result<(), Error> {
    let tmp = temp_path(path, nonce);
    write_new(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(|source| {
        // Best effort: the rename failure is the error worth reporting.
        let _ = std::fs::remove_file(&tmp);
        Error::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn temp_path(path: &Path, nonce: u32) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{nonce:08x}"));
    path.with_file_name(name)
}
