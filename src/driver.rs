//! Loading and building, shared by every command and the daemon: the
//! configuration, the incident files, the templates with the operator's
//! overrides, one full build of the outputs, and the edit times recorded
//! for it. Does I/O (files, the state database); never reads the clock:
//! callers pass `now`.
//!
//! Invalid input (a bad configuration) is printed as diagnostics and
//! reported as [`InvalidInput`], which `main` turns into exit code 1.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use crate::compose::Composer;
use crate::config::{self, Config};
use crate::corpus::{Corpus, Files};
use crate::diag::{Diagnostic, LineIndex};
use crate::fsio::{self, OutputDir};
use crate::parse::Context;
use crate::render::{self, Moves, Output, Revisions, Site, Templates};
use crate::store::Store;

/// The input was rejected; the details were already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Where `--config` was not given: `$HERALD_CONFIG`, `./herald.toml`,
/// `/etc/herald/herald.toml`, in that order.
pub fn config_path(explicit: Option<&Path>, from_env: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = from_env.filter(|p| !p.as_os_str().is_empty()) {
        return path;
    }
    let local = PathBuf::from("herald.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/herald/herald.toml")
}

/// Reads and validates the configuration, printing its diagnostics.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(InvalidInput(format!(
                "configuration file {} not found (give --config PATH or set HERALD_CONFIG)",
                path.display()
            ))
            .into());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read configuration {}", path.display()));
        }
    };
    config::parse(path, &text).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        InvalidInput(format!("{} has errors", path.display())).into()
    })
}

pub fn parse_context(config: &Config) -> Context<'_> {
    Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    }
}

/// Reads one incident file into `files`, reporting bytes that are not
/// UTF-8 at their line and column. A file that cannot be read is recorded
/// as an error of that path (its last good version stays published) and
/// the error returned, so a caller can read the others and try this one
/// again later if [`fsio::Error::is_transient`].
pub fn read_incident(files: &mut Files, path: &Path, context: &Context) -> Result<(), fsio::Error> {
    let bytes = match fsio::read_incident(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            files.remove(path);
            return Ok(());
        }
        Err(error) => {
            files.unreadable(path, error.reason());
            return Err(error);
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => files.update(path, &text, context),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&error.as_bytes()[..valid]).into_owned();
            let (line, column) = LineIndex::new(&prefix).position(valid);
            files.unreadable(
                path,
                format!("not valid UTF-8 (at {line}:{column}); save the file as UTF-8"),
            );
        }
    }
    Ok(())
}

/// Reads every incident file of the configured directory. Files that
/// could not be read are recorded as errors; those worth reading again
/// later are returned beside the files. Two threads share the parsing,
/// each half the files.
pub fn load_files(config: &Config) -> anyhow::Result<(Files, Vec<PathBuf>)> {
    let context = parse_context(config);
    let paths = fsio::find_incident_files(&config.paths.incidents).with_context(|| {
        format!(
            "cannot read the incidents directory {}",
            config.paths.incidents.display()
        )
    })?;
    let (first, second) = paths.split_at(paths.len() / 2);
    let ((mut files, mut retry), (more, retry_more)) = std::thread::scope(|scope| {
        let other = scope.spawn(|| read_incidents(second, &context));
        let mine = read_incidents(first, &context);
        let theirs = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs)
    });
    files.append(more);
    retry.extend(retry_more);
    Ok((files, retry))
}

/// [`read_incident`] of each of `paths`: the files, and the paths worth
/// reading again later.
fn read_incidents(paths: &[PathBuf], context: &Context) -> (Files, Vec<PathBuf>) {
    let mut files = Files::default();
    let mut retry = Vec::new();
    for path in paths {
        if let Err(error) = read_incident(&mut files, path, context)
            && error.is_transient()
        {
            retry.push(path.clone());
        }
    }
    (files, retry)
}

pub fn print_diagnostics(diagnostics: &[Diagnostic], out: &mut dyn std::io::Write) {
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
}

/// Every diagnostic of the tree: per file, then cross-file.
pub fn all_diagnostics(files: &Files) -> (Corpus, Vec<Diagnostic>) {
    let (corpus, cross) = files.corpus();
    let mut diagnostics: Vec<Diagnostic> = files.diagnostics().cloned().collect();
    diagnostics.extend(cross);
    (corpus, diagnostics)
}

/// What one full build did.
#[derive(Debug)]
pub struct Built {
    /// Every diagnostic of the tree, for the caller to print or log.
    pub diagnostics: Vec<Diagnostic>,
    pub incidents: usize,
    /// Outputs rendered, and how many of them changed on disk.
    pub outputs: usize,
    pub changed: usize,
}

/// One build of every output from what is on disk, as of `now` (the
/// caller reads the clock once): the pages and the recorded first-seen and
/// edit times agree on the instant.
pub fn build(config: &Config, now: DateTime<Utc>) -> anyhow::Result<Built> {
    limit_heaps();
    let (files, _) = load_files(config)?;
    let (corpus, diagnostics) = all_diagnostics(&files);
    let templates = load_templates(config)?;
    let mut output = OutputDir::new(config.paths.output.clone());
    // The updates are recorded in the state database on a thread of their
    // own, chunk by chunk, each chunk's pages rendered once it is: the
    // edit times of a page's updates are those its chunk recorded.
    let (outputs, changed) = std::thread::scope(|scope| {
        let (to_renderer, observed) = std::sync::mpsc::channel();
        scope.spawn(|| observe_revisions(config, &corpus, now, to_renderer));
        let (revisions, moves) = (Revisions::new(), Moves::new());
        let site = Site::new(config, &templates, &revisions, &moves, now);
        publish(&site, &corpus, &mut output, Some(observed))
    })?;
    Ok(Built {
        diagnostics,
        incidents: corpus.len(),
        outputs,
        changed,
    })
}

/// Keeps glibc to two heaps (arenas) for the build's threads, one a core
/// of the machines herald is measured on, instead of one a thread: the
/// parsers, the renderers, the writer and the recorder each left their
/// own heap's free memory unusable to the others, and a build of 10,000
/// translated incidents peaked at 92–104 MB instead of 86–88.
fn limit_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one of glibc's tunables; it takes and returns
    // plain integers.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Renders and writes every output: incident pages [`render::PAGE_CHUNK`]
/// at a time, month pages a few at a time, then the summaries
/// and the stylesheet; then removes outputs that no longer belong. A
/// writer thread stages what is rendered (each output a temp file) while
/// the next chunk renders, at most two chunks behind; all are
/// made durable and renamed in the order rendered ([`OutputDir::batch`]).
/// Returns how many outputs there are and how many changed on disk.
pub fn publish_everything(
    site: &Site,
    corpus: &Corpus,
    output: &mut OutputDir,
) -> anyhow::Result<(usize, usize)> {
    publish(site, corpus, output, None)
}

/// [`publish_everything`], with the edit times and window moves of
/// `site`, or, given `observed`, those [`observe_revisions`] sends as it
/// records them.
fn publish(
    site: &Site,
    corpus: &Corpus,
    output: &mut OutputDir,
    observed: Option<Receiver<Observed>>,
) -> anyhow::Result<(usize, usize)> {
    let root = output.root().display().to_string();
    let write_context = || format!("cannot write outputs to {root}");
    let mut current = fsio::Paths::default();
    std::thread::scope(|scope| {
        let (to_writer, rendered) = std::sync::mpsc::sync_channel::<Vec<Output>>(CHUNKS_AHEAD);
        let writer = scope.spawn(move || {
            let mut batch = output.batch();
            for chunk in rendered {
                batch.stage(&chunk)?;
            }
            Ok::<_, fsio::Error>(batch)
        });
        let mut send = |chunk: Vec<Output>| {
            chunk.iter().for_each(|output| {
                current.insert(&output.path);
            });
            // Refused only when the writer stopped on an error, which
            // its join below returns.
            to_writer.send(chunk).is_ok()
        };
        let rendering = render_everything(site, corpus, observed, &mut send);
        // The writer's loop ends with the channel.
        drop(to_writer);
        let batch = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // Dropped on either error, the batch removes its temp files.
        rendering?;
        let batch = batch.with_context(write_context)?;
        let stale = batch
            .stale(&current)
            .with_context(|| format!("cannot list outputs in {root}"))?;
        let changed = batch.commit(&stale).with_context(write_context)?;
        Ok((current.len(), changed))
    })
}

/// How many rendered chunks may wait for [`publish_everything`]'s writer:
/// rendering runs that far ahead of writing and no further, so a full
/// build never holds more than a few chunks of outputs.
const CHUNKS_AHEAD: usize = 2;

/// How many months' pages a full build renders (in every language) before
/// handing them to the writer: all of them at once held 37 MB at 100,000
/// incidents.
const MONTH_CHUNK: usize = 4;

/// Renders every output of a full build, chunk by chunk, pages first and
/// indexes last, each chunk handed to `send`; stops early when `send`
/// refuses one. Given `observed`, each chunk of incident pages waits for
/// its updates to be recorded, and renders with the edit times recorded so
/// far; the summaries wait for all of them and the window moves.
fn render_everything(
    site: &Site,
    corpus: &Corpus,
    observed: Option<Receiver<Observed>>,
    send: &mut dyn FnMut(Vec<Output>) -> bool,
) -> anyhow::Result<()> {
    let published: Vec<&crate::model::Incident> = corpus.published().map(AsRef::as_ref).collect();
    let mut records = Records::default();
    // A chunk's pages are rendered in every language before they are
    // written: fewer incidents a chunk on a translated site, whose pages
    // also hold more text.
    let languages = site.config.site.languages.all().len();
    let chunk = (render::PAGE_CHUNK / (languages * languages)).max(1);
    for (index, incidents) in published.chunks(chunk).enumerate() {
        let pages = match &observed {
            Some(observed) => {
                records.wait_for(observed, index * chunk + incidents.len());
                render::incident_pages(
                    &site.with_records(&records.revisions, &records.moves),
                    incidents,
                )?
            }
            None => render::incident_pages(site, incidents)?,
        };
        if !send(pages) {
            return Ok(());
        }
    }
    let site = match &observed {
        Some(observed) => {
            records.wait_for(observed, usize::MAX);
            site.with_records(&records.revisions, &records.moves)
        }
        None => *site,
    };
    let months = render::by_month(&site, corpus);
    for chunk in months.chunks(MONTH_CHUNK) {
        if !send(render::month_pages(&site, chunk)?) {
            return Ok(());
        }
    }
    let mut last = render::full_summaries(&site, corpus)?;
    last.push(render::stylesheet(&site));
    send(last);
    Ok(())
}

/// How many incidents' updates are recorded in the state database at a
/// time: the first-seen times of one chunk are in memory at once, not
/// those of every update of a large site; and the pages of a chunk wait
/// for it to be recorded.
const OBSERVE_CHUNK: usize = 1024;

/// What [`observe_revisions`] tells the renderer, in this order.
#[derive(Debug)]
enum Observed {
    /// The updates of the first `n` published incidents are recorded;
    /// the edit times among those of the latest chunk.
    Recorded(usize, Revisions),
    /// All are, and the maintenance windows: how each moved.
    Windows(Moves),
}

/// The edit times and window moves a renderer has received so far.
#[derive(Debug, Default)]
struct Records {
    /// How many published incidents' updates are recorded.
    recorded: usize,
    revisions: Revisions,
    moves: Moves,
    /// The observer has said all it will.
    done: bool,
}

impl Records {
    /// Takes in what is observed until the first `incidents` published
    /// incidents are recorded (`usize::MAX`: until the observer is done).
    fn wait_for(&mut self, observed: &Receiver<Observed>, incidents: usize) {
        while !self.done && self.recorded < incidents {
            match observed.recv() {
                Ok(Observed::Recorded(recorded, revisions)) => {
                    self.recorded = recorded;
                    self.revisions.extend(revisions);
                }
                Ok(Observed::Windows(moves)) => self.moves = moves,
                // A failed state directory costs its records, never the
                // build: what was not recorded has no edit time.
                Err(_) => self.done = true,
            }
        }
    }
}

/// Records the published updates and maintenance windows in the state
/// database, and sends each chunk's edit times as it is recorded, then
/// the window moves ([`Observed`]). A state directory that cannot be used
/// costs only those, never the build: the failure is logged and nothing
/// more is sent.
fn observe_revisions(
    config: &Config,
    corpus: &Corpus,
    now: DateTime<Utc>,
    to_renderer: Sender<Observed>,
) {
    let result = Store::open(&config.paths.state).and_then(|mut store| {
        let published: Vec<&crate::model::Incident> =
            corpus.published().map(AsRef::as_ref).collect();
        let mut recorded = 0;
        for chunk in published.chunks(OBSERVE_CHUNK) {
            let seen = store.observe(chunk.iter().copied(), now)?;
            recorded += chunk.len();
            // A renderer that stopped on an error needs no more.
            let _ = to_renderer.send(Observed::Recorded(
                recorded,
                crate::announce::edit_times(&seen),
            ));
        }
        let windows = store.observe_windows(corpus.published().map(AsRef::as_ref), now)?;
        let _ = to_renderer.send(Observed::Windows(crate::maintenance::moves(&windows)));
        Ok(())
    });
    if let Err(error) = result {
        tracing::warn!("{:#}", anyhow::Error::from(error));
    }
}

/// The built-in templates, with the operator's overrides from
/// `paths.templates` when set: each file there replaces the built-in
/// template of the same name. A broken override is reported and the
/// built-in keeps serving.
pub fn load_templates(config: &Config) -> anyhow::Result<Templates> {
    let Some(dir) = &config.paths.templates else {
        return Ok(Templates::builtin());
    };
    let (templates, diagnostics) = Templates::with_overrides(read_overrides(dir)?);
    log_template_diagnostics(&diagnostics);
    Ok(templates)
}

/// The built-in email templates, with the operator's overrides from the
/// `email/` directory of `paths.templates` when there is one. A broken
/// override is reported and the built-in is used; so are all of them when
/// the directory cannot be read: email is never stopped for a template.
pub fn load_email_templates(config: &Config) -> Composer {
    let Some(dir) = config.paths.templates.as_ref().map(|dir| dir.join("email")) else {
        return Composer::new();
    };
    if let Err(error) = std::fs::metadata(&dir)
        && error.kind() == std::io::ErrorKind::NotFound
    {
        return Composer::new();
    }
    match read_overrides(&dir) {
        Ok(overrides) => {
            let (composer, diagnostics) = Composer::with_overrides(config, overrides);
            log_template_diagnostics(&diagnostics);
            composer
        }
        Err(error) => {
            tracing::error!("{error:#}; using the built-in email templates");
            Composer::new()
        }
    }
}

/// The files directly in `dir` (not those of its subdirectories, nor
/// hidden ones), as `(name, path, text)` sorted by name.
fn read_overrides(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf, String)>> {
    let context = || format!("cannot read the templates directory {}", dir.display());
    let entries = std::fs::read_dir(dir).with_context(context)?;
    let mut overrides = Vec::new();
    for entry in entries {
        let path = entry.with_context(context)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let text = fsio::read_to_string(&path)?;
        overrides.push((name, path, text));
    }
    overrides.sort();
    Ok(overrides)
}

fn log_template_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        if diagnostic.is_error() {
            tracing::error!("{diagnostic}; using the built-in template");
        } else {
            tracing::warn!("{diagnostic}");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn a_build_sees_one_instant_in_its_pages_and_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        std::fs::write(
            site.join("herald.toml"),
            "[site]\ntitle = \"T\"\nbase_url = \"https://status.example.com/\"\ntimezone = \"UTC\"\nlanguage = \"en\"\n\n[[components]]\nid = \"mail\"\nname = \"Mail\"\n",
        )
        .unwrap();
        std::fs::create_dir(site.join("incidents")).unwrap();
        std::fs::write(
            site.join("incidents/disk.md"),
            "+++\ntitle = \"Disk failure\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n\n## 2019-04-04 08:00Z investigating\nA.\n\n## 2019-04-06 10:00Z resolved\nB.\n",
        )
        .unwrap();
        let config = config::parse(
            &site.join("herald.toml"),
            &std::fs::read_to_string(site.join("herald.toml")).unwrap(),
        )
        .unwrap();
        // Mid-incident, years before the machine's clock.
        let now = Utc.with_ymd_and_hms(2019, 4, 5, 12, 0, 0).unwrap();
        let built = build(&config, now).unwrap();
        assert_eq!(built.incidents, 1);
        let index = std::fs::read_to_string(site.join("public/index.html")).unwrap();
        let open = index
            .split("<section class=\"open\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no open incidents in:\n{index}"));
        assert!(open.contains("Disk failure"), "{index}");
        let database = rusqlite::Connection::open(site.join("state/herald.db")).unwrap();
        let seen: Vec<String> = database
            .prepare("SELECT first_seen FROM revisions ORDER BY instant")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let now_text = now.to_rfc3339();
        assert_eq!(
            seen,
            [now_text.clone(), now_text],
            "recorded at the build's instant"
        );
    }
}
