//! Secrets kept in files (the token key, the Matrix access token, the
//! Alertmanager hook's token): read only from a file that neither its
//! group nor other users may read, so that a secret others could have
//! copied is never used. Does I/O (one file).

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} {}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{what} {} can be read by other users (mode {mode:03o}); run `chmod 600 {}`, and since others may have copied it, consider {replace}",
        path.display(),
        path.display()
    )]
    Exposed {
        what: &'static str,
        path: PathBuf,
        mode: u32,
        /// How to replace the secret.
        replace: &'static str,
    },
}

impl Error {
    /// The file does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, Error::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a secret file holds, for messages: what it is (`the token key`)
/// and how to make a new one if it leaked (`` `herald rekey` ``).
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub what: &'static str,
    pub replace: &'static str,
}

/// The bytes of the secret file at `path`, refused when its group or
/// other users may read it (checked on the file opened, so the file read
/// is the file checked).
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>, Error> {
    let failed = |source| Error::Read {
        what: kind.what,
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let metadata = file.metadata().map_err(failed)?;
    if !metadata.is_file() {
        return Err(failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Exposed {
            what: kind.what,
            path: path.to_owned(),
            mode: mode & 0o777,
            replace: kind.replace,
        });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(failed)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: Kind = Kind {
        what: "the test secret",
        replace: "a new one",
    };

    #[test]
    fn a_file_its_group_or_others_can_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        for mode in [0o600, 0o400, 0o700] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read(&path, KIND).unwrap(), b"s3cret\n", "{mode:o}");
        }
        for mode in [0o640, 0o604, 0o660, 0o644, 0o610] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = read(&path, KIND).unwrap_err();
            assert!(!error.is_missing());
            assert_eq!(
                error.to_string(),
                format!(
                    "the test secret {0} can be read by other users (mode {mode:03o}); run `chmod 600 {0}`, and since others may have copied it, consider a new one",
                    path.display()
                )
            );
        }
        let directory = read(dir.path(), KIND).unwrap_err();
        assert!(!directory.is_missing());
        assert_eq!(
            format!("{:#}", anyhow::Error::from(directory)),
            format!(
                "cannot read the test secret {}: not a regular file",
                dir.path().display()
            )
        );
        let missing = read(&dir.path().join("none"), KIND).unwrap_err();
        assert!(missing.is_missing());
        assert_eq!(
            missing.to_string(),
            format!(
                "cannot read the test secret {}",
                dir.path().join("none").display()
            )
        );
    }
}
