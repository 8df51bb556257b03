//! File-system edges: finding incident files, reading them, replacing
//! one file atomically and durably, locks; and the output tree
//! ([`OutputDir`]: every output replaced atomically, made durable in
//! batches). Does I/O.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod durable;
mod fresh;
mod outputs;

pub use outputs::{Batch, OutputDir, Paths};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list directory {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} changed while herald was rewriting it; nothing was written, run the command again",
        path.display()
    )]
    Changed { path: PathBuf },
    #[error("{} {NOT_REGULAR}", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} {}", path.display(), too_large())]
    TooLarge { path: PathBuf },
}

const NOT_REGULAR: &str =
    "is not a regular file (a directory, FIFO or device); herald reads only regular files";

fn too_large() -> String {
    format!(
        "is larger than {} MiB, more than an incident file can be",
        MAX_INCIDENT_BYTES >> 20
    )
}

impl Error {
    /// What went wrong, for a diagnostic that already names the file:
    /// the message without its leading path where it has one, with its
    /// cause.
    pub fn reason(&self) -> String {
        match self {
            Error::NotRegular { .. } => NOT_REGULAR.to_owned(),
            Error::TooLarge { .. } => too_large(),
            other => match std::error::Error::source(other) {
                Some(cause) => format!("{other}: {cause}"),
                None => other.to_string(),
            },
        }
    }

    /// Whether reading again later may succeed (a full table of open
    /// files, a failing disk), unlike a file that is not a regular file
    /// or is far too large, which stays so until it is changed.
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::List { source, .. }
            | Error::Lock { source, .. } => source,
            Error::Changed { .. } | Error::NotRegular { .. } | Error::TooLarge { .. } => {
                return false;
            }
        };
        matches!(
            source.raw_os_error(),
            Some(
                libc::EMFILE
                    | libc::ENFILE
                    | libc::ENOMEM
                    | libc::EIO
                    | libc::EAGAIN
                    | libc::EBUSY
                    | libc::EINTR
                    | libc::ENOSPC
                    | libc::ETIMEDOUT
            )
        )
    }
}

/// Whether a file name is an incident file rather than editor or sync-tool
/// debris: vim swap files (`.x.md.swp`, `.swx`), backup files (`x.md~`),
/// rsync and browser partial files (`.part`, `.tmp`), hidden files, and
/// anything not ending in `.md`.
pub fn is_incident_file_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        // Not UTF-8: cannot be a valid id anyway, and we must not panic.
        return false;
    };
    !name.starts_with('.')
        && name.ends_with(".md")
        && ![".swp", ".swx", ".tmp", ".part", "~"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
}

/// Whether a path under the incidents directory is one herald reads:
/// every component must not be hidden, and the file name must qualify.
pub fn is_incident_path(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        let name = component.as_os_str();
        if components.peek().is_some() {
            if name.to_str().is_none_or(|n| n.starts_with('.')) {
                return false;
            }
        } else {
            return is_incident_file_name(name);
        }
    }
    false
}

/// All incident files under `root`, at any depth, sorted. Symbolic links
/// to directories are not followed (no loops); links to files are.
pub fn find_incident_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|source| Error::List {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::List {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name();
            let file_type = entry.file_type().map_err(|source| Error::List {
                path: path.clone(),
                source,
            })?;
            if file_type.is_dir() {
                if name.to_str().is_some_and(|n| !n.starts_with('.')) {
                    pending.push(path);
                }
            } else if is_incident_file_name(&name) && fs::metadata(&path).is_ok_and(|m| m.is_file())
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The most bytes herald reads of one incident file; a real one is a few
/// kilobytes.
pub const MAX_INCIDENT_BYTES: u64 = 16 << 20;

/// Reads an incident file; `Ok(None)` if it vanished in the meantime.
/// Only a regular file is read: the file is opened without blocking (a
/// FIFO would otherwise wait for a writer) and checked before reading,
/// and at most [`MAX_INCIDENT_BYTES`] are read (`/dev/zero` never ends).
pub fn read_incident(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let read = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read(source)),
    };
    let metadata = file.metadata().map_err(read)?;
    if !metadata.is_file() {
        return Err(Error::NotRegular {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::with_capacity(metadata.len().min(MAX_INCIDENT_BYTES) as usize);
    io::Read::read_to_end(
        &mut io::Read::take(file, MAX_INCIDENT_BYTES + 1),
        &mut bytes,
    )
    .map_err(read)?;
    if bytes.len() as u64 > MAX_INCIDENT_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(Some(bytes))
}

pub fn read_to_string(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// What a file must hold for [`replace_file_if`] to replace it.
#[derive(Debug, Clone, Copy)]
pub enum Expected<'a> {
    /// Nothing: the file must not exist.
    Absent,
    /// Exactly these bytes (what the caller read and changed).
    Bytes(&'a [u8]),
}

/// Replaces one file atomically and durably.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    replace(path, bytes, None)
}

/// Replaces one file atomically and durably, unless it no longer holds
/// what `expected` says (someone else wrote it since the caller read it):
/// then nothing is written and the error is [`Error::Changed`]. For
/// `herald new` and `post`, which rewrite an incident file that an editor
/// or another command may be writing; they also hold [`lock_dir`].
///
/// A symbolic link is written through (the link stays, its target gets
/// the new bytes) and the file keeps its permissions.
pub fn replace_file_if(path: &Path, expected: Expected<'_>, bytes: &[u8]) -> Result<(), Error> {
    replace(path, bytes, Some(expected))
}

/// Removes one file durably (the directory synced after), unless it no
/// longer holds `expected`: then nothing is removed and the error is
/// [`Error::Changed`]. A file already gone is no error.
pub fn remove_file_if(path: &Path, expected: &[u8]) -> Result<(), Error> {
    match fs::read(path) {
        Ok(now) if now == expected => {}
        Ok(_) => {
            return Err(Error::Changed {
                path: path.to_owned(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::remove_file(path)
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })
}

fn replace(path: &Path, bytes: &[u8], expected: Option<Expected<'_>>) -> Result<(), Error> {
    let target = match fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(error) if error.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target.file_name().and_then(OsStr::to_str).unwrap_or("file");
    let mode = match fs::metadata(&target) {
        Ok(metadata) => Some(metadata.permissions()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let (temp, _, mut file) = create_temp(dir, name).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    let mut changed = false;
    let mut write = || -> io::Result<()> {
        if let Some(mode) = &mode {
            file.set_permissions(mode.clone())?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        if let Some(expected) = expected {
            let now = match fs::read(&target) {
                Ok(now) => Some(now),
                Err(error) if error.kind() == io::ErrorKind::NotFound => None,
                Err(error) => return Err(error),
            };
            changed = match (expected, now) {
                (Expected::Absent, None) => false,
                (Expected::Bytes(expected), Some(now)) => expected != now.as_slice(),
                _ => true,
            };
            if changed {
                return Ok(());
            }
        }
        fs::rename(&temp, &target)?;
        File::open(dir)?.sync_all()
    };
    let written = write();
    if written.is_err() || changed {
        let _ = fs::remove_file(&temp);
    }
    written.map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })?;
    if changed {
        return Err(Error::Changed {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// A new temporary file beside `name` in `dir`, under a name no other
/// writer uses (this process's id and a counter), starting with a dot so
/// that the watcher ignores it.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, u64, File)> {
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = temp_path(dir, name, n);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, n, file)),
            // Left by a process that had our id before: take the next name.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
}

/// The number in the next temp file's or directory's name.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Makes an empty directory beside `name` in `dir`, named like a temp
/// file ([`temp_path`]).
fn create_temp_dir(dir: &Path, name: &str) -> io::Result<PathBuf> {
    loop {
        let temp = temp_path(dir, name, TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        match fs::create_dir(&temp) {
            Ok(()) => return Ok(temp),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
}

/// The `n`th temp file name beside `name` in `dir`.
fn temp_path(dir: &Path, name: &str, n: u64) -> PathBuf {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = PID.get_or_init(std::process::id);
    dir.join(format!(".{name}.{pid}-{n}.herald-tmp"))
}

/// An exclusive advisory lock on a directory, held until dropped. `herald
/// new` and `post` take it on the incidents directory around reading,
/// changing and writing a file, so two of them never interleave.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Waits for the exclusive lock on `dir` (`flock(2)` on the directory).
pub fn lock_dir(dir: &Path) -> Result<DirLock, Error> {
    let lock = |source| Error::Lock {
        path: dir.to_owned(),
        source,
    };
    let file = File::open(dir).map_err(lock)?;
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(DirLock { _file: file });
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(lock(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_if_refuses_a_file_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        fs::write(&path, "edited by someone else").unwrap();
        let error = replace_file_if(&path, Expected::Bytes(b"what we read"), b"ours").unwrap_err();
        assert!(matches!(error, Error::Changed { .. }), "{error:?}");
        assert!(
            error.to_string().ends_with("a.md changed while herald was rewriting it; nothing was written, run the command again"),
            "{error}"
        );
        let error = replace_file_if(&path, Expected::Absent, b"ours").unwrap_err();
        assert!(matches!(error, Error::Changed { .. }), "{error:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "edited by someone else");
        replace_file_if(&path, Expected::Bytes(b"edited by someone else"), b"ours").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "ours");
        let new = dir.path().join("b.md");
        replace_file_if(&new, Expected::Absent, b"new").unwrap();
        assert_eq!(fs::read_to_string(&new).unwrap(), "new");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
    }

    #[test]
    fn remove_if_refuses_a_file_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        fs::write(&path, "edited").unwrap();
        let error = remove_file_if(&path, b"what we read").unwrap_err();
        assert!(matches!(error, Error::Changed { .. }), "{error:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "edited");
        remove_file_if(&path, b"edited").unwrap();
        assert!(!path.exists());
        // Gone already: done.
        remove_file_if(&path, b"edited").unwrap();
    }

    #[test]
    fn only_regular_files_of_a_sane_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.md");
        fs::write(&file, "text").unwrap();
        assert_eq!(read_incident(&file).unwrap().unwrap(), b"text");
        assert!(
            read_incident(&dir.path().join("gone.md"))
                .unwrap()
                .is_none()
        );

        let sub = dir.path().join("x.md");
        fs::create_dir(&sub).unwrap();
        let error = read_incident(&sub).unwrap_err();
        assert!(
            error.to_string().ends_with("x.md is not a regular file (a directory, FIFO or device); herald reads only regular files"),
            "{error}"
        );
        assert!(!error.is_transient());

        // A FIFO with no writer: opening it must not wait for one.
        let fifo = dir.path().join("pipe.md");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            read_incident(&fifo),
            Err(Error::NotRegular { .. })
        ));
        assert!(matches!(
            read_incident(Path::new("/dev/zero")),
            Err(Error::NotRegular { .. })
        ));

        let big = dir.path().join("big.md");
        File::create(&big)
            .unwrap()
            .set_len(MAX_INCIDENT_BYTES + 1)
            .unwrap();
        let error = read_incident(&big).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("big.md is larger than 16 MiB, more than an incident file can be"),
            "{error}"
        );

        let looped = dir.path().join("loop.md");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let error = read_incident(&looped).unwrap_err();
        assert!(matches!(error, Error::Read { .. }), "{error:?}");
        assert!(!error.is_transient(), "a symlink loop stays one");
        let full = Error::Read {
            path: file,
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        assert!(full.is_transient());
    }

    #[test]
    fn temp_names_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _, _a) = create_temp(dir.path(), "x.md").unwrap();
        let (second, _, _b) = create_temp(dir.path(), "x.md").unwrap();
        assert_ne!(first, second);
        let name = first.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(".x.md.") && name.ends_with(".herald-tmp"),
            "{name}"
        );
    }

    #[test]
    fn debris_is_ignored() {
        for name in ["a.md", "2019-04-storage.md", "x.y.md"] {
            assert!(is_incident_file_name(OsStr::new(name)), "{name}");
        }
        for name in [
            ".a.md",
            "a.md~",
            "a.md.swp",
            ".a.md.swx",
            "a.md.tmp",
            "a.md.part",
            "a.txt",
            "a",
            "4913",
        ] {
            assert!(!is_incident_file_name(OsStr::new(name)), "{name}");
        }
        let root = Path::new("inc");
        assert!(is_incident_path(root, Path::new("inc/2019/a.md")));
        assert!(!is_incident_path(root, Path::new("inc/.git/a.md")));
        assert!(!is_incident_path(root, Path::new("other/a.md")));
    }
}
