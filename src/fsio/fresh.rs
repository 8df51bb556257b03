//! A first build's new output directory: every output written under its
//! own name into a hidden directory beside the output directory, which
//! is then made durable and renamed into place whole. Does I/O.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::Error;
use super::create_temp_dir;
use super::durable::{hash_bytes, output_name, parent_of, rename, sync_filesystem};
use crate::render::Output;

/// A first build's new output tree, written under a temp name.
#[derive(Debug)]
pub(super) struct Fresh {
    /// Made at the first output.
    pub(super) staging: Option<PathBuf>,
    /// The hashes of each output's path and bytes, known once in place;
    /// `None` when the directory does not remember them.
    pub(super) written: Option<Vec<(u64, u64)>>,
}

impl Fresh {
    /// The new directory, made the first time it is asked for (with the
    /// parent of `root`, the output directory, if need be).
    fn staging(&mut self, root: &Path) -> Result<&Path, Error> {
        let staging = match self.staging.take() {
            Some(staging) => staging,
            None => {
                let parent = parent_of(root);
                remove_abandoned(parent, output_name(root));
                fs::create_dir_all(parent)
                    .and_then(|()| create_temp_dir(parent, output_name(root)))
                    .map_err(|source| Error::Write {
                        path: root.to_owned(),
                        source,
                    })?
            }
        };
        Ok(self.staging.insert(staging))
    }

    /// Writes `output` under its own name in the new directory: nothing
    /// to compare with and nothing to rename. `dirs`: the directories
    /// made so far.
    pub(super) fn stage(
        &mut self,
        root: &Path,
        dirs: &mut HashMap<PathBuf, bool>,
        output: &Output,
    ) -> Result<(), Error> {
        let target = self.staging(root)?.join(&output.path);
        if let Some(dir) = target.parent()
            && !dirs.contains_key(dir)
        {
            fs::create_dir_all(dir).map_err(|source| Error::Write {
                path: dir.to_owned(),
                source,
            })?;
            dirs.insert(dir.to_owned(), true);
        }
        fs::write(&target, &output.bytes).map_err(|source| Error::Write {
            path: target.clone(),
            source,
        })?;
        if let Some(written) = &mut self.written {
            written.push((
                hash_bytes(output.path.as_bytes()),
                hash_bytes(&output.bytes),
            ));
        }
        Ok(())
    }

    /// Makes the new directory (made now if nothing was staged) durable
    /// and renames it to `root`. Returns the hashes of what it holds, for
    /// the output directory to know (none when it does not remember). On
    /// a failure the new directory is removed. The caller makes the rename
    /// durable (an fsync of the parent).
    pub(super) fn commit(mut self, root: &Path) -> Result<Vec<(u64, u64)>, Error> {
        let moved = self.staging(root).map(Path::to_owned).and_then(|staging| {
            sync_filesystem(&staging)?;
            rename(&staging, root).map_err(|source| Error::Write {
                path: root.to_owned(),
                source,
            })
        });
        if let Err(error) = moved {
            self.discard();
            return Err(error);
        }
        Ok(self.written.take().unwrap_or_default())
    }

    /// Removes the new directory, if made.
    pub(super) fn discard(&mut self) {
        if let Some(staging) = self.staging.take() {
            let _ = fs::remove_dir_all(staging);
        }
    }
}

/// Removes the new directories that first builds of `name` in `dir` left
/// when killed: those named for a process that no longer runs. Each holds
/// a whole output tree, beside the published one. Best effort: what
/// cannot be listed or removed stays.
fn remove_abandoned(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|n| n.strip_suffix(".herald-tmp"))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let running = Path::new("/proc").join(pid.to_string()).exists();
        if !running && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
