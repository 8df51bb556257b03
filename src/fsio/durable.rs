//! The durable file steps the outputs are written with: `syncfs`, an
//! fsync by path, a rename, and what names and hashes an output. Does
//! I/O.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::Error;

/// The file name an output's temp file is named after.
pub(super) fn output_name(target: &Path) -> &str {
    target
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or("output")
}

/// The directory holding `path` (`.` for a bare name).
pub(super) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// fsync one file or directory by path.
pub(super) fn sync_file(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

pub(super) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// One `syncfs(2)` for everything written under `dir`: cheaper than an
/// fsync per file when a build writes thousands.
pub(super) fn sync_filesystem(dir: &Path) -> Result<(), Error> {
    #[cfg(test)]
    if faults::SYNCFS.with(std::cell::Cell::get) {
        return Err(Error::Write {
            path: dir.to_owned(),
            source: io::Error::from_raw_os_error(libc::EIO),
        });
    }
    let handle = File::open(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })?;
    // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
    let status = unsafe { libc::syncfs(handle.as_raw_fd()) };
    if status != 0 {
        return Err(Error::Write {
            path: dir.to_owned(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// `rename(2)`, or a failure a test asked for.
pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(test)]
    if faults::RENAME.with(std::cell::Cell::get) {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    fs::rename(from, to)
}

/// Failures the tests inject where the kernel will not fail on request
/// (`syncfs` reports a failing disk, `rename` a full one), per thread.
#[cfg(test)]
pub(super) mod faults {
    use std::cell::Cell;

    thread_local! {
        pub static SYNCFS: Cell<bool> = const { Cell::new(false) };
        pub static RENAME: Cell<bool> = const { Cell::new(false) };
    }

    /// This thread's faults, for a thread it starts to take on.
    pub fn current() -> (bool, bool) {
        (SYNCFS.with(Cell::get), RENAME.with(Cell::get))
    }

    pub fn set((syncfs, rename): (bool, bool)) {
        SYNCFS.with(|f| f.set(syncfs));
        RENAME.with(|f| f.set(rename));
    }
}
