//! Outputs replaced atomically under one directory: written as temp files
//! beside their targets, made durable together (one `syncfs`, or an
//! fsync each for a few), renamed in the order given (pages first,
//! indexes last), and the renames made durable. A reader never sees a
//! half-written file, and a crash leaves each file either old or new. A
//! first build, with no output directory yet, writes a new directory and
//! renames it into place whole ([`OutputDir::batch`]).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::durable::{hash_bytes, output_name, parent_of, rename, sync_file, sync_filesystem};
use super::fresh::Fresh;
use super::{Error, create_temp, temp_path};
use crate::render::Output;

#[cfg(test)]
use super::durable::faults;

/// Writes outputs under one directory, skipping files whose bytes did not
/// change since the last write (or, on the first write, since what is on
/// disk), so that unchanged outputs keep their mtime and a publish step
/// knows whether anything changed.
#[derive(Debug)]
pub struct OutputDir {
    root: PathBuf,
    /// Hash of the bytes last written (or found) at each relative path.
    /// Keyed by the 64-bit hash of the path, not the path: 40,000 outputs'
    /// paths would cost the daemon 4 MB for good. Two paths sharing a hash
    /// (about one chance in 2^64 per pair) make each other's writes happen
    /// again, and could skip one only if their bytes were identical too.
    known: HashMap<u64, u64>,
    /// Whether a first build's outputs go into `known`: not when nothing
    /// writes again ([`OutputDir::for_one_build`]).
    remember: bool,
}

impl OutputDir {
    pub fn new(root: PathBuf) -> Self {
        OutputDir {
            root,
            known: HashMap::new(),
            remember: true,
        }
    }

    /// An output directory written once, by a process that ends after
    /// (`herald build`): a first build into it does not hash what it
    /// writes for later writes to compare with (3 % of a first build's
    /// instructions). A later write compares with what is
    /// on disk, as after [`OutputDir::forget`].
    pub fn for_one_build(root: PathBuf) -> Self {
        OutputDir {
            remember: false,
            ..OutputDir::new(root)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Forgets what was written, so the next write compares every output
    /// with what is on disk (after a failure may have left anything).
    pub fn forget(&mut self) {
        self.known.clear();
    }

    /// Replaces each changed output atomically and deletes `removed`.
    /// Returns how many files changed on disk.
    pub fn write(&mut self, outputs: &[Output], removed: &[String]) -> Result<usize, Error> {
        let mut batch = self.batch();
        batch.stage(outputs)?;
        batch.commit(removed)
    }

    /// A batch of writes made durable together: [`Batch::stage`] writes
    /// temp files as outputs are rendered (so they need not be held),
    /// [`Batch::commit`] makes them durable, renames them in the order
    /// staged and deletes what is to go. A full build is one batch: two
    /// `syncfs` for 20,000 files instead of two per chunk of pages.
    ///
    /// When the output directory does not exist (a first build), the batch
    /// writes each of its outputs under its own name into a new hidden
    /// directory beside it, which [`Batch::commit`] makes durable and
    /// renames into place whole: a reader sees none of the batch's outputs
    /// or all of them, and the filesystem does one rename instead of one a
    /// file. What was known to be written before is forgotten: it is gone.
    pub fn batch(&mut self) -> Batch<'_> {
        let missing = matches!(
            fs::symlink_metadata(&self.root),
            Err(error) if error.kind() == io::ErrorKind::NotFound
        );
        if missing {
            self.known.clear();
        }
        let remember = self.remember;
        Batch {
            dir: self,
            staged: Vec::new(),
            changed: 0,
            dirs: HashMap::new(),
            behind: None,
            fresh: missing.then(|| Fresh {
                staging: None,
                written: remember.then(Vec::new),
            }),
        }
    }
}

/// Outputs written as temp files, not yet renamed into place; see
/// [`OutputDir::batch`]. Dropped without [`Batch::commit`] (an error), it
/// removes its temp files: the old outputs stay and no debris is left.
#[derive(Debug)]
pub struct Batch<'a> {
    dir: &'a mut OutputDir,
    staged: Vec<Staged>,
    /// Files already renamed into place by an earlier flush.
    changed: usize,
    /// Directories known to exist, and whether this batch made them: then
    /// the only outputs in them are those it renamed there, which `known`
    /// holds, and nothing is on disk to compare with. One `mkdir` per
    /// directory, not one per file.
    dirs: HashMap<PathBuf, bool>,
    /// The previous [`BATCH_FILES`] temp files, being made durable and
    /// renamed on a thread of their own while more are staged: staging
    /// never waits for the disk. One at a time, so renames keep their
    /// order.
    behind: Option<std::thread::JoinHandle<Result<Vec<Staged>, Error>>>,
    /// `Some` for a first build: see [`OutputDir::batch`].
    fresh: Option<Fresh>,
}

/// One output written to its temp file. Small (the temp file's name is
/// derived again from the target's and [`temp_path`]'s counter): a batch
/// holds thousands.
#[derive(Debug)]
struct Staged {
    /// Relative to the output directory.
    relative: Box<str>,
    /// The counter in the temp file's name.
    temp: u64,
    /// Hash of the bytes.
    hash: u64,
}

impl Staged {
    fn temp(&self, root: &Path) -> PathBuf {
        let target = root.join(&*self.relative);
        let dir = target.parent().unwrap_or(root);
        temp_path(dir, output_name(&target), self.temp)
    }
}

/// A batch holding this many temp files makes them durable and renames
/// them before staging more, so that a build of 100,000 incidents holds a
/// bounded list of names (pages come first, indexes last: the order of the
/// renames is kept).
const BATCH_FILES: usize = 4096;

impl Batch<'_> {
    /// [`OutputDir::stale`] of the batch's directory.
    pub fn stale(&self, current: &Paths) -> Result<Vec<String>, Error> {
        self.dir.stale(current)
    }

    /// Writes each changed output to a temp file beside its target. On an
    /// error every temp file of the batch is removed and nothing renamed.
    pub fn stage(&mut self, outputs: &[Output]) -> Result<(), Error> {
        for output in outputs {
            if let Err(error) = self.stage_one(output) {
                self.discard();
                return Err(error);
            }
            if self.staged.len() >= BATCH_FILES
                && let Err(error) = self.flush_behind()
            {
                self.discard();
                return Err(error);
            }
        }
        Ok(())
    }

    /// Makes every staged file durable, renames each over its target,
    /// deletes `removed`, and makes the renames and removals durable.
    /// Returns how many files changed on disk in the whole batch.
    pub fn commit(mut self, removed: &[String]) -> Result<usize, Error> {
        if let Some(fresh) = self.fresh.take() {
            // Nothing was there to remove.
            let written = fresh.commit(&self.dir.root)?;
            self.dir.known.extend(written);
            sync_file(parent_of(&self.dir.root))?;
            return Ok(self.changed);
        }
        let changed = self.flush(removed)?;
        Ok(self.changed + changed)
    }

    fn stage_one(&mut self, output: &Output) -> Result<(), Error> {
        if let Some(fresh) = &mut self.fresh {
            fresh.stage(&self.dir.root, &mut self.dirs, output)?;
            self.changed += 1;
            return Ok(());
        }
        let hash = hash_bytes(&output.bytes);
        let target = self.dir.root.join(&output.path);
        let key = hash_bytes(output.path.as_bytes());
        let dir = target.parent().unwrap_or(&self.dir.root);
        let empty = match self.dirs.get(dir) {
            Some(empty) => *empty,
            None => {
                let empty = match fs::metadata(dir) {
                    Ok(metadata) if metadata.is_dir() => false,
                    _ => {
                        fs::create_dir_all(dir).map_err(|source| Error::Write {
                            path: dir.to_owned(),
                            source,
                        })?;
                        true
                    }
                };
                self.dirs.insert(dir.to_owned(), empty);
                empty
            }
        };
        let unchanged = match self.dir.known.get(&key) {
            Some(known) => *known == hash,
            None => !empty && fs::read(&target).is_ok_and(|on_disk| on_disk == output.bytes),
        };
        if unchanged {
            self.dir.known.insert(key, hash);
            return Ok(());
        }
        let (temp, n, mut file) =
            create_temp(dir, output_name(&target)).map_err(|source| Error::Write {
                path: target.clone(),
                source,
            })?;
        // Staged before writing, so a failed write removes it too.
        self.staged.push(Staged {
            relative: output.path.as_str().into(),
            temp: n,
            hash,
        });
        file.write_all(&output.bytes)
            .map_err(|source| Error::Write { path: temp, source })
    }

    /// Removes the temp files not yet renamed, once the flush behind (if
    /// any) is over: it removes its own on a failure.
    fn discard(&mut self) {
        if let Some(behind) = self.behind.take() {
            let _ = join(behind);
        }
        if let Some(fresh) = &mut self.fresh {
            fresh.discard();
        }
        for staged in self.staged.drain(..) {
            let _ = fs::remove_file(staged.temp(&self.dir.root));
        }
    }

    /// Hands what is staged to a thread that makes it durable and renames
    /// it, after the previous such thread is done (its failure returned
    /// here, before anything more is renamed).
    fn flush_behind(&mut self) -> Result<(), Error> {
        self.join_behind()?;
        let root = self.dir.root.clone();
        let staged = std::mem::take(&mut self.staged);
        #[cfg(test)]
        let faults = faults::current();
        self.behind = Some(std::thread::spawn(move || {
            #[cfg(test)]
            faults::set(faults);
            rename_durably(&root, &staged, false)?;
            // The renames are durable once the directories are.
            sync_filesystem(&root)?;
            Ok(staged)
        }));
        Ok(())
    }

    /// Waits for the flush behind, if any, and takes in what it renamed.
    fn join_behind(&mut self) -> Result<(), Error> {
        if let Some(behind) = self.behind.take() {
            let renamed = join(behind)?;
            self.changed += renamed.len();
            self.remember(&renamed);
        }
        Ok(())
    }

    /// Records the bytes of outputs now in place.
    fn remember(&mut self, renamed: &[Staged]) {
        for item in renamed {
            self.dir
                .known
                .insert(hash_bytes(item.relative.as_bytes()), item.hash);
        }
    }

    /// Durable, renamed, removed, durable again: what [`Batch::commit`]
    /// does with what is staged, after the flush behind. Returns how many
    /// files changed in this last part.
    fn flush(&mut self, removed: &[String]) -> Result<usize, Error> {
        if let Err(error) = self.join_behind() {
            self.discard();
            return Err(error);
        }
        let root = self.dir.root.clone();
        // A few files (the daemon's usual rebuild): fsync each, since
        // syncfs would also wait for every other process's dirty data on
        // the same file system. Many files (a full build): one syncfs.
        let few = self.staged.len() <= FEW_FILES;
        let staged = std::mem::take(&mut self.staged);
        rename_durably(&root, &staged, few)?;
        self.remember(&staged);
        let mut dirs: Vec<PathBuf> = Vec::new();
        if few {
            dirs.extend(
                staged
                    .iter()
                    .filter_map(|item| root.join(&*item.relative).parent().map(Path::to_owned)),
            );
        }
        let mut changed = staged.len();
        drop(staged);
        // Only what was there to remove has a directory to make durable: a
        // draft's page that was never written may have none.
        for relative in removed {
            let path = root.join(relative);
            match fs::remove_file(&path) {
                Ok(()) => {
                    changed += 1;
                    if let Some(parent) = path.parent() {
                        dirs.push(parent.to_owned());
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Write { path, source }),
            }
            self.dir.known.remove(&hash_bytes(relative.as_bytes()));
        }
        if few || changed == 0 {
            // The renames and removals are durable once their directories are.
            dirs.sort();
            dirs.dedup();
            for dir in dirs {
                sync_file(&dir)?;
            }
        } else {
            sync_filesystem(&root)?;
        }
        Ok(changed)
    }
}

/// Waits for a flush behind; its panic goes on here.
fn join(behind: std::thread::JoinHandle<Result<Vec<Staged>, Error>>) -> Result<Vec<Staged>, Error> {
    behind
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Makes `staged` durable (an fsync each if `few`, else one syncfs) and
/// renames each over its target, in order. On a failure, every temp file
/// not renamed is removed: no half-written file stays behind for a
/// publish step to ship.
fn rename_durably(root: &Path, staged: &[Staged], few: bool) -> Result<(), Error> {
    let durable = if few {
        staged
            .iter()
            .try_for_each(|item| sync_file(&item.temp(root)))
    } else {
        sync_filesystem(root)
    };
    if let Err(error) = durable {
        for item in staged {
            let _ = fs::remove_file(item.temp(root));
        }
        return Err(error);
    }
    for (renamed, item) in staged.iter().enumerate() {
        let target = root.join(&*item.relative);
        if let Err(source) = rename(&item.temp(root), &target) {
            for later in &staged[renamed..] {
                let _ = fs::remove_file(later.temp(root));
            }
            return Err(Error::Write {
                path: target,
                source,
            });
        }
    }
    Ok(())
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.discard();
    }
}

/// A set of output paths known by their 64-bit hash, as [`OutputDir`]
/// knows them: the 200,000 paths of a 100,000-incident build held as
/// strings cost 14 MB. A path sharing its hash with a current one (about
/// one chance in 2^64 per pair) would be kept, never wrongly removed.
#[derive(Debug, Default)]
pub struct Paths(std::collections::HashSet<u64>);

impl Paths {
    /// Adds `relative`; whether it was new.
    pub fn insert(&mut self, relative: &str) -> bool {
        self.0.insert(hash_bytes(relative.as_bytes()))
    }

    pub fn contains(&self, relative: &str) -> bool {
        self.0.contains(&hash_bytes(relative.as_bytes()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl OutputDir {
    /// Files in herald's own output subdirectories that `outputs` does not
    /// contain: pages of incidents deleted while herald was not running,
    /// feeds of components removed from the configuration. Other files in
    /// the output directory are the operator's and are left alone.
    pub fn stale(&self, current: &Paths) -> Result<Vec<String>, Error> {
        let mut stale = Vec::new();
        for (dir, extensions) in [
            ("incidents", &["html", "atom"][..]),
            ("history", &["html"]),
            ("components", &["rss", "atom", "ics", "svg"]),
        ] {
            let path = self.root.join(dir);
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::List { path, source }),
            };
            for entry in entries {
                let entry = entry.map_err(|source| Error::List {
                    path: path.clone(),
                    source,
                })?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let ours = extensions.iter().any(|e| name.ends_with(&format!(".{e}")))
                    && !name.starts_with('.');
                let relative = format!("{dir}/{name}");
                if ours && !current.contains(&relative) {
                    stale.push(relative);
                }
            }
        }
        stale.sort();
        Ok(stale)
    }
}

/// Up to this many changed files are made durable one by one.
const FEW_FILES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_output_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // `sub` is a file, so `sub/page.html` cannot be written; the
        // first output's temp file must go too.
        fs::write(dir.path().join("sub"), "").unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        let outputs = [
            Output {
                path: "first.html".into(),
                bytes: b"1".to_vec(),
            },
            Output {
                path: "sub/page.html".into(),
                bytes: b"2".to_vec(),
            },
        ];
        assert!(output.write(&outputs, &[]).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sub"], "only the blocking file is left");
    }

    /// Every file under `dir` (recursively), with its bytes.
    fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap().display().to_string();
                    files.push((relative, fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }

    /// `n` pages under `pages/`, each holding `text` and its number.
    fn pages(n: usize, text: &str) -> Vec<Output> {
        (0..n)
            .map(|i| Output {
                path: format!("pages/{i}.html"),
                bytes: format!("{text} {i}").into_bytes(),
            })
            .collect()
    }

    /// What a failed batch must leave: the old outputs, byte for byte, and
    /// no temp file.
    fn assert_old_outputs_stay(
        fault: &'static std::thread::LocalKey<std::cell::Cell<bool>>,
        n: usize,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        assert_eq!(output.write(&pages(n, "old"), &[]).unwrap(), n);
        let before = tree(dir.path());
        // A new directory too, whose temp file must also go.
        let mut new = pages(n, "new");
        new.push(Output {
            path: "fresh/index.html".into(),
            bytes: b"fresh".to_vec(),
        });
        fault.with(|f| f.set(true));
        let result = OutputDir::new(dir.path().to_owned()).write(&new, &[]);
        fault.with(|f| f.set(false));
        let error = result.unwrap_err();
        assert!(error.is_transient(), "{error}");
        let after: Vec<_> = tree(dir.path())
            .into_iter()
            .filter(|(path, _)| !path.starts_with("fresh"))
            .collect();
        assert_eq!(after, before, "the old outputs stay, and no temp file");
        assert_eq!(fs::read_dir(dir.path().join("fresh")).unwrap().count(), 0);
    }

    #[test]
    fn a_failing_syncfs_leaves_the_old_outputs_and_no_temp_file() {
        // More than FEW_FILES: the batch is made durable with syncfs.
        assert_old_outputs_stay(&faults::SYNCFS, FEW_FILES + 10);
    }

    #[test]
    fn a_failing_rename_leaves_the_old_outputs_and_no_temp_file() {
        // Both ways of making a batch durable: fsync per file, and syncfs.
        assert_old_outputs_stay(&faults::RENAME, 3);
        assert_old_outputs_stay(&faults::RENAME, FEW_FILES + 10);
    }

    /// A batch too large to hold flushes its first part behind the
    /// staging: a failure there is the batch's, and leaves the same.
    #[test]
    fn a_failure_behind_the_staging_leaves_the_old_outputs_and_no_temp_file() {
        assert_old_outputs_stay(&faults::SYNCFS, BATCH_FILES + 10);
        assert_old_outputs_stay(&faults::RENAME, BATCH_FILES + 10);
    }

    #[test]
    fn a_batch_staged_in_parts_is_renamed_at_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        output.write(&pages(2, "old"), &[]).unwrap();
        let mut batch = output.batch();
        batch.stage(&pages(FEW_FILES, "new")).unwrap();
        batch
            .stage(&[Output {
                path: "index.html".into(),
                bytes: b"index".to_vec(),
            }])
            .unwrap();
        // Staged, not yet in place: readers still see the old pages.
        assert_eq!(fs::read(dir.path().join("pages/1.html")).unwrap(), b"old 1");
        assert!(!dir.path().join("index.html").exists());
        assert_eq!(
            batch.commit(&["pages/0.html".to_owned()]).unwrap(),
            FEW_FILES + 2
        );
        assert_eq!(fs::read(dir.path().join("pages/1.html")).unwrap(), b"new 1");
        assert_eq!(fs::read(dir.path().join("index.html")).unwrap(), b"index");
        assert!(!dir.path().join("pages/0.html").exists());
        assert_eq!(tree(dir.path()).len(), FEW_FILES, "no temp file is left");
        // Unchanged outputs are not written again.
        assert_eq!(output.write(&pages(FEW_FILES, "new")[1..], &[]).unwrap(), 0);
    }

    /// A batch larger than [`BATCH_FILES`] renames what it holds and goes
    /// on; outputs it already put in place are known, not written again.
    #[test]
    fn a_large_batch_is_renamed_in_parts_and_knows_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        let many = pages(BATCH_FILES + 3, "new");
        let mut batch = output.batch();
        batch.stage(&many).unwrap();
        // The first BATCH_FILES are being put in place behind the staging,
        // the rest staged.
        batch.join_behind().unwrap();
        assert!(dir.path().join("pages/0.html").exists());
        assert!(
            !dir.path()
                .join(format!("pages/{}.html", BATCH_FILES))
                .exists()
        );
        batch.stage(&many[..5]).unwrap();
        assert_eq!(batch.commit(&[]).unwrap(), BATCH_FILES + 3);
        assert_eq!(
            tree(dir.path()).len(),
            BATCH_FILES + 3,
            "no temp file is left"
        );
        assert_eq!(output.write(&many, &[]).unwrap(), 0);
    }

    #[test]
    fn a_batch_dropped_before_its_commit_leaves_the_old_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        output.write(&pages(3, "old"), &[]).unwrap();
        let before = tree(dir.path());
        let mut batch = output.batch();
        batch.stage(&pages(3, "new")).unwrap();
        drop(batch);
        assert_eq!(tree(dir.path()), before);
    }

    /// A draft's page was never written, nor its directory: removing it is
    /// no failure, and what was there is removed.
    #[test]
    fn removing_pages_never_written_is_no_failure() {
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().to_owned());
        // No `incidents/` directory yet: nothing to remove, nothing changed.
        let never = [
            "incidents/draft.html".to_owned(),
            "incidents/draft.atom".to_owned(),
        ];
        assert_eq!(output.write(&[], &never).unwrap(), 0);
        let page = [Output {
            path: "feeds/a.atom".into(),
            bytes: b"a".to_vec(),
        }];
        assert_eq!(output.write(&page, &[]).unwrap(), 1);
        let removed = ["incidents/draft.html".to_owned(), "feeds/a.atom".to_owned()];
        assert_eq!(output.write(&[], &removed).unwrap(), 1);
        assert!(!dir.path().join("feeds/a.atom").exists());
        assert!(!dir.path().join("incidents").exists());
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_first_build_appears_whole_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site/public");
        let mut output = OutputDir::new(root.clone());
        let mut batch = output.batch();
        batch.stage(&pages(3, "new")).unwrap();
        batch
            .stage(&[Output {
                path: "index.html".into(),
                bytes: b"index".to_vec(),
            }])
            .unwrap();
        // Written, not yet in place: a reader sees no output directory.
        assert!(!root.exists());
        let site = names(&dir.path().join("site"));
        assert_eq!(site.len(), 1, "{site:?}");
        assert!(
            site[0].starts_with(".public.") && site[0].ends_with(".herald-tmp"),
            "{site:?}"
        );
        assert_eq!(batch.commit(&[]).unwrap(), 4);
        assert_eq!(names(&dir.path().join("site")), ["public"]);
        let mut written = tree(&root);
        written.sort();
        let expected: Vec<(String, Vec<u8>)> = [
            ("index.html", "index"),
            ("pages/0.html", "new 0"),
            ("pages/1.html", "new 1"),
            ("pages/2.html", "new 2"),
        ]
        .iter()
        .map(|(path, text)| ((*path).to_owned(), text.as_bytes().to_vec()))
        .collect();
        assert_eq!(written, expected);
        // What it wrote is known: the same outputs are not written again.
        assert_eq!(output.write(&pages(3, "new"), &[]).unwrap(), 0);
        // An empty first build makes an empty directory.
        let empty = dir.path().join("empty");
        assert_eq!(OutputDir::new(empty.clone()).write(&[], &[]).unwrap(), 0);
        assert!(empty.is_dir() && names(&empty).is_empty());
    }

    #[test]
    fn a_first_build_removes_what_a_killed_one_left() {
        let dir = tempfile::tempdir().unwrap();
        // Left by a process that no longer runs (no pid is that high), by
        // this one, and a file of the operator's named alike.
        let abandoned = dir.path().join(".public.4294967295-3.herald-tmp");
        fs::create_dir_all(abandoned.join("incidents")).unwrap();
        fs::write(abandoned.join("incidents/x.html"), "old").unwrap();
        let ours = dir
            .path()
            .join(format!(".public.{}-999999.herald-tmp", std::process::id()));
        fs::create_dir(&ours).unwrap();
        fs::write(dir.path().join(".public.notes"), "mine").unwrap();
        let mut output = OutputDir::new(dir.path().join("public"));
        output.write(&pages(1, "new"), &[]).unwrap();
        let mut expected = vec![
            ".public.notes".to_owned(),
            format!(".public.{}-999999.herald-tmp", std::process::id()),
            "public".to_owned(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn a_directory_for_one_build_remembers_nothing_and_still_skips_what_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("public");
        let mut remembering = OutputDir::new(root.clone());
        assert_eq!(remembering.write(&pages(3, "new"), &[]).unwrap(), 3);
        assert_eq!(remembering.known.len(), 3);
        fs::remove_dir_all(&root).unwrap();
        let mut once = OutputDir::for_one_build(root.clone());
        assert_eq!(once.write(&pages(3, "new"), &[]).unwrap(), 3);
        assert!(once.known.is_empty(), "{:?}", once.known);
        // Written again, the outputs are compared with the disk: the
        // unchanged ones are not written.
        let mut changed = pages(3, "new");
        changed[1].bytes = b"other".to_vec();
        assert_eq!(once.write(&changed, &[]).unwrap(), 1);
        assert_eq!(once.known.len(), 3);
        assert_eq!(fs::read(root.join("pages/1.html")).unwrap(), b"other");
        assert_eq!(fs::read(root.join("pages/0.html")).unwrap(), b"new 0");
    }

    #[test]
    fn a_first_build_that_fails_leaves_no_directory() {
        for fault in [&faults::SYNCFS, &faults::RENAME] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("public");
            let mut output = OutputDir::new(root.clone());
            let mut batch = output.batch();
            batch.stage(&pages(3, "new")).unwrap();
            fault.with(|f| f.set(true));
            let result = batch.commit(&[]);
            fault.with(|f| f.set(false));
            assert!(result.is_err());
            assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing is left");
            // Nothing is known to be written: the next try writes it all.
            assert_eq!(output.write(&pages(3, "new"), &[]).unwrap(), 3);
        }
        // A write that fails (`sub` is a file) takes the new directory too.
        let dir = tempfile::tempdir().unwrap();
        let mut output = OutputDir::new(dir.path().join("public"));
        let mut batch = output.batch();
        batch.stage(&pages(2, "new")).unwrap();
        let clash = [
            Output {
                path: "sub".into(),
                bytes: b"file".to_vec(),
            },
            Output {
                path: "sub/page.html".into(),
                bytes: b"page".to_vec(),
            },
        ];
        assert!(batch.stage(&clash).is_err());
        drop(batch);
        assert_eq!(names(dir.path()), Vec::<String>::new(), "nothing is left");
    }
}
