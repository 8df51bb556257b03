//! One full build of every output: `herald build`'s, streamed from the
//! incident files, and the daemon's, from the corpus it holds.
//!
//! `herald build` reads the files a chunk at a time, in path order, on
//! two threads; a recorder thread records each chunk's updates in the
//! state database; the calling thread renders the chunk's pages and feeds
//! with the edit times recorded, then forgets the texts of every incident
//! no summary can show ([`ShownTexts`]); a writer thread stages what is
//! rendered. Once every file is read, the month pages and summaries
//! render from what is left. So a build holds the texts of one chunk and
//! of the few incidents the feeds and the API show, never of every update
//! ever written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::{incident_paths, load_templates, parse_context, read_incidents, with_cross};
use crate::config::Config;
use crate::corpus::{Corpus, Files};
use crate::diag::Diagnostic;
use crate::fsio::{self, OutputDir};
use crate::model::{Incident, IncidentId};
use crate::parse::Context;
use crate::render::{self, Moves, Output, Revisions, ShownTexts, Site, Templates};
use crate::store::Store;

/// What one full build did.
#[derive(Debug)]
pub struct Built {
    /// Every diagnostic of the tree, for the caller to print or log.
    pub diagnostics: Vec<Diagnostic>,
    pub incidents: usize,
    /// Outputs rendered, and how many of them changed on disk.
    pub outputs: usize,
    pub changed: usize,
    /// How many incidents' update texts the build held at its end: those
    /// a summary may show ([`ShownTexts`]), not every incident's.
    pub texts_held: usize,
}

/// One build of every output from what is on disk, as of `now` (the
/// caller reads the clock once): the pages and the recorded first-seen and
/// edit times agree on the instant.
pub fn build(config: &Config, now: DateTime<Utc>) -> anyhow::Result<Built> {
    let context = parse_context(config);
    let paths = incident_paths(config)?;
    let templates = load_templates(config)?;
    let mut output = OutputDir::for_one_build(config.paths.output.clone());
    let mut files = Files::default();
    let mut summarized = None;
    let (outputs, changed) = write_everything(&mut output, |send| {
        summarized = stream(config, &templates, &context, paths, now, &mut files, send)?;
        Ok(())
    })?;
    // The corpus the summaries were rendered from: all went well, so there
    // is one.
    let (corpus, cross) = summarized.unwrap_or_else(|| files.corpus());
    let diagnostics = with_cross(&files, cross);
    let texts_held = corpus
        .published()
        .filter(|incident| {
            incident
                .updates
                .iter()
                .any(|update| !update.body_markdown.is_empty())
        })
        .count();
    Ok(Built {
        diagnostics,
        incidents: corpus.len(),
        outputs,
        changed,
        texts_held,
    })
}

/// How many incidents' pages a full build renders before handing them to
/// the writer. A chunk's pages are rendered in every language before they
/// are written: fewer incidents a chunk on a translated site, whose pages
/// also hold more text.
fn page_chunk(config: &Config) -> usize {
    let languages = config.site.languages.all().len();
    (render::PAGE_CHUNK / (languages * languages)).max(1)
}

/// One chunk of files, read and recorded: its files as read, and those
/// of its incidents that are published (not drafts, nor ids an earlier
/// path holds), with the edit times recorded for their updates.
struct Recorded {
    files: Files,
    published: Vec<Arc<Incident>>,
    revisions: Revisions,
}

/// `herald build`'s renderer: the files of `paths` read and recorded in
/// chunks (as the module says), each chunk's pages sent, then the month
/// pages and the summaries; every file read ends up in `files`. Returns
/// the corpus the summaries were rendered from and its cross-file
/// diagnostics; `None` when `send` refused a chunk.
fn stream(
    config: &Config,
    templates: &Templates,
    context: &Context,
    paths: Vec<PathBuf>,
    now: DateTime<Utc>,
    files: &mut Files,
    send: &mut dyn FnMut(Vec<Output>) -> bool,
) -> anyhow::Result<Option<(Corpus, Vec<Diagnostic>)>> {
    let chunk = page_chunk(config);
    // Each reader thread takes its chunks of paths and lets each go once
    // read: 100,000 paths are 7 MB.
    let mut chunks: [Vec<Vec<PathBuf>>; 2] = [Vec::new(), Vec::new()];
    let mut paths = paths.into_iter().peekable();
    for turn in 0.. {
        if paths.peek().is_none() {
            break;
        }
        chunks[turn % 2].push(paths.by_ref().take(chunk).collect());
    }
    let store = std::thread::scope(|scope| {
        let parsed = read_in_order(scope, chunks, context);
        let (to_renderer, recorded) = sync_channel(1);
        let recorder = scope.spawn(move || record(config, now, parsed, to_renderer));
        let rendered = render_chunks(config, templates, now, recorded, files, send);
        // The reader threads stop with the recorder, which stops once the
        // renderer is gone.
        let store = recorder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        rendered.map(|revisions| revisions.map(|revisions| (store, revisions)))
    })?;
    // The writer refused a chunk: it stopped on an error, which it returns.
    let Some((store, revisions)) = store else {
        return Ok(None);
    };
    let (corpus, cross) = files.corpus();
    let moves = store
        .and_then(|mut store| {
            store
                .observe_windows(corpus.published().map(AsRef::as_ref), now)
                .map_err(|error| tracing::warn!("{:#}", anyhow::Error::from(error)))
                .ok()
        })
        .map(|windows| crate::maintenance::moves(&windows))
        .unwrap_or_default();
    let site = Site::new(config, templates, &revisions, &moves, now);
    render_summaries(&site, &corpus, send)?;
    Ok(Some((corpus, cross)))
}

/// Reads each list of chunks of paths on a thread of its own: the
/// chunks, in path order, alternate between the two lists, and come out
/// of the two receivers in turn. A thread ends when its chunks are read
/// or its receiver is dropped.
fn read_in_order<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    chunks: [Vec<Vec<PathBuf>>; 2],
    context: &'env Context<'env>,
) -> [Receiver<Files>; 2] {
    chunks.map(|chunks| {
        let (to_recorder, parsed) = sync_channel::<Files>(1);
        scope.spawn(move || {
            for paths in chunks {
                // A file to read again later is for the daemon: a build
                // reports it and goes on.
                let (files, _) = read_incidents(&paths, context);
                if to_recorder.send(files).is_err() {
                    return;
                }
            }
        });
        parsed
    })
}

/// Takes each chunk of files in path order, records its published
/// incidents' updates in the state database and passes it on with their
/// edit times. A state directory that cannot be used costs only those,
/// never the build: the failure is logged and nothing more is recorded.
/// Returns the store, to record the maintenance windows once all is read.
fn record(
    config: &Config,
    now: DateTime<Utc>,
    parsed: [Receiver<Files>; 2],
    to_renderer: SyncSender<Recorded>,
) -> Option<Store> {
    let warn = |error: crate::store::Error| tracing::warn!("{:#}", anyhow::Error::from(error));
    let mut store = Store::open(&config.paths.state).map_err(warn).ok();
    // Ids already taken by an earlier path (drafts too): the first path
    // in sorted order keeps an id, as in `Files::corpus`.
    let mut taken: HashSet<IncidentId> = HashSet::new();
    for turn in 0.. {
        let Ok(files) = parsed[turn % 2].recv() else {
            break;
        };
        let published: Vec<Arc<Incident>> = files
            .entries()
            .filter_map(|(_, entry)| entry.last_good.as_ref())
            .filter(|incident| taken.insert(incident.id.clone()) && !incident.draft)
            .cloned()
            .collect();
        let revisions = match store
            .as_mut()
            .map(|store| store.observe(published.iter().map(AsRef::as_ref), now))
        {
            Some(Ok(seen)) => crate::announce::edit_times(&seen),
            Some(Err(error)) => {
                warn(error);
                store = None;
                Revisions::new()
            }
            None => Revisions::new(),
        };
        let chunk = Recorded {
            files,
            published,
            revisions,
        };
        if to_renderer.send(chunk).is_err() {
            break;
        }
    }
    store
}

/// Renders each recorded chunk's pages and feeds in every language and
/// sends them, then forgets the texts no summary shows and keeps the
/// chunk's files in `files`. Returns every edit time recorded, for the
/// summaries; `Ok(None)`: `send` refused a chunk.
fn render_chunks(
    config: &Config,
    templates: &Templates,
    now: DateTime<Utc>,
    recorded: Receiver<Recorded>,
    files: &mut Files,
    send: &mut dyn FnMut(Vec<Output>) -> bool,
) -> anyhow::Result<Option<Revisions>> {
    let mut revisions = Revisions::new();
    let moves = Moves::new();
    let mut shown = ShownTexts::new(now);
    // Where each incident whose texts are kept was read.
    let mut kept: HashMap<IncidentId, PathBuf> = HashMap::new();
    for chunk in recorded {
        revisions.extend(chunk.revisions);
        let site = Site::new(config, templates, &revisions, &moves, now);
        let incidents: Vec<&Incident> = chunk.published.iter().map(AsRef::as_ref).collect();
        if !send(render::incident_pages(&site, &incidents)?) {
            return Ok(None);
        }
        let mut forget: Vec<PathBuf> = Vec::new();
        for incident in &chunk.published {
            kept.insert(incident.id.clone(), incident.path.clone());
            forget.extend(
                shown
                    .admit(incident)
                    .iter()
                    .filter_map(|id| kept.remove(id)),
            );
        }
        // Drafts and duplicates are never shown.
        let published: HashSet<&Path> = incidents.iter().map(|i| i.path.as_path()).collect();
        forget.extend(
            chunk
                .files
                .entries()
                .filter(|(path, entry)| entry.last_good.is_some() && !published.contains(path))
                .map(|(path, _)| path.to_owned()),
        );
        drop(published);
        drop(incidents);
        // The chunk's own hold on its incidents, so that their texts can go.
        drop(chunk.published);
        files.append(chunk.files);
        for path in forget {
            files.drop_texts(&path);
        }
    }
    Ok(Some(revisions))
}

/// Renders and writes every output of the daemon's corpus: incident
/// pages [`render::PAGE_CHUNK`] at a time, month pages a few at a time,
/// then the summaries and the stylesheet; then removes outputs that no
/// longer belong (`write_everything`). Returns how many outputs there
/// are and how many changed on disk.
pub fn publish_everything(
    site: &Site,
    corpus: &Corpus,
    output: &mut OutputDir,
) -> anyhow::Result<(usize, usize)> {
    write_everything(output, |send| {
        let published: Vec<&Incident> = corpus.published().map(AsRef::as_ref).collect();
        for incidents in published.chunks(page_chunk(site.config)) {
            if !send(render::incident_pages(site, incidents)?) {
                return Ok(());
            }
        }
        render_summaries(site, corpus, send)
    })
}

/// Sends the month pages a few at a time, then the summaries and the
/// stylesheet; stops early when `send` refuses.
fn render_summaries(
    site: &Site,
    corpus: &Corpus,
    send: &mut dyn FnMut(Vec<Output>) -> bool,
) -> anyhow::Result<()> {
    let months = render::by_month(site, corpus);
    for chunk in months.chunks(MONTH_CHUNK) {
        if !send(render::month_pages(site, chunk)?) {
            return Ok(());
        }
    }
    let mut last = render::full_summaries(site, corpus)?;
    last.push(render::stylesheet(site));
    send(last);
    Ok(())
}

/// Runs `render`, handing each chunk it sends to a writer thread that
/// stages it (each output a temp file) while the next renders, at most
/// [`CHUNKS_AHEAD`] behind; then makes all durable and renames them in
/// the order rendered ([`OutputDir::batch`]) and removes outputs no
/// longer rendered. On any error nothing more is renamed and the temp
/// files go. Returns how many outputs there are and how many changed.
fn write_everything(
    output: &mut OutputDir,
    render: impl FnOnce(&mut dyn FnMut(Vec<Output>) -> bool) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, usize)> {
    let root = output.root().display().to_string();
    let write_context = || format!("cannot write outputs to {root}");
    let mut current = fsio::Paths::default();
    std::thread::scope(|scope| {
        let (to_writer, rendered) = sync_channel::<Vec<Output>>(CHUNKS_AHEAD);
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
        let rendering = render(&mut send);
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

/// How many rendered chunks may wait for the writer: rendering runs that
/// far ahead of writing and no further, so a full build never holds more
/// than a few chunks of outputs.
const CHUNKS_AHEAD: usize = 2;

/// How many months' pages a full build renders (in every language) before
/// handing them to the writer: all of them at once held 37 MB at 100,000
/// incidents.
const MONTH_CHUNK: usize = 4;

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    use crate::driver::load_config;

    /// A site in two languages with three components and `count`
    /// generated incident files of every shape a summary treats apart:
    /// resolved, open, maintenance, drafts, updates after `now`, latest
    /// updates shared by several incidents, components joining later,
    /// translations, an id two files claim, a file that does not parse.
    /// With `future` false, no update is after `now`, so that the feeds
    /// show exactly the newest 100 resolved incidents.
    fn generated_site(site: &Path, count: u64, future: bool) {
        std::fs::write(
            site.join("herald.toml"),
            "[site]\ntitle = \"T\"\nbase_url = \"https://status.example.com/\"\ntimezone = \"UTC\"\nlanguages = [\"sv\", \"en\"]\n\n[[components]]\nid = \"web\"\nname = \"Web\"\n\n[[components]]\nid = \"mail\"\nname = \"Mail\"\n\n[[components]]\nid = \"dns\"\nname = \"DNS\"\n",
        )
        .unwrap();
        let incidents = site.join("incidents");
        std::fs::create_dir_all(incidents.join("more")).unwrap();
        // A fixed sequence of pseudo-random numbers (64-bit LCG).
        let mut state: u64 = 2026;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        let components = ["web", "mail", "dns"];
        for n in 0..count {
            // The newest have one update each, at instants of their own:
            // a feed of 100 entries then shows 100 incidents, the most a
            // summary shows, and the 100th ties with no other.
            let newest = n + 150 > count;
            let maintenance = !newest && next(12) == 0;
            // The newest all of one component: its feed and the site's
            // reach the 100th together.
            let first = if newest {
                "web"
            } else {
                components[next(3) as usize]
            };
            // Every third incident ends at the same instant as the one
            // before it; a few end after `now` (2030).
            let hour = if newest {
                2 * n
            } else if next(40) == 0 && future {
                40_000 + n
            } else {
                n - n % 3 + next(2)
            };
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::hours(hour as i64 * 3);
            let updates = if newest { 1 } else { 1 + next(4) };
            let mut text = String::from("+++\n");
            text += &format!("title.sv = \"Händelse {n}\"\ntitle.en = \"Incident {n}\"\n");
            text += &format!("components = [\"{first}\"]\n");
            if maintenance {
                text += "kind = \"maintenance\"\n";
                let starts = start - chrono::Duration::hours(2);
                text += &format!(
                    "starts = \"{}\"\nends = \"{}\"\n",
                    starts.format("%Y-%m-%d %H:%MZ"),
                    (starts + chrono::Duration::hours(1)).format("%Y-%m-%d %H:%MZ")
                );
            } else {
                text += "severity = \"major\"\n";
            }
            if !newest && next(30) == 0 {
                text += "draft = true\n";
            }
            text += &format!("+++\n\nSammanfattning {n}.\n\n### en\nSummary {n}.\n");
            for u in 0..updates {
                let instant = start - chrono::Duration::minutes(((updates - 1 - u) * 20) as i64);
                let status = match (maintenance, u + 1 == updates, next(15)) {
                    (true, true, _) => "completed",
                    (true, false, _) => "in-progress",
                    (false, true, 0) if !newest => "identified",
                    (false, true, _) => "resolved",
                    (false, false, _) => "update",
                };
                text += &format!("\n## {} {status}\n", instant.format("%Y-%m-%d %H:%MZ"));
                if u == 1 && next(4) == 0 {
                    let joining = components[next(3) as usize];
                    if joining != first {
                        text += &format!("components: {joining}=degraded\n");
                    }
                }
                text += &format!("Text {n}.{u} *sv*.\n");
                if next(2) == 0 {
                    text += &format!("\n### en\nText {n}.{u} *en*.\n");
                }
            }
            std::fs::write(incidents.join(format!("i{n:04}.md")), &text).unwrap();
            if n % 97 == 5 {
                // The same id again, in a later path: reported, never shown.
                std::fs::write(incidents.join(format!("more/i{n:04}.md")), &text).unwrap();
            }
        }
        std::fs::write(incidents.join("broken.md"), "+++\ntitle = \n").unwrap();
    }

    /// Every file under `root`, by its path relative to it.
    fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut found = std::collections::BTreeMap::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let name = path.strip_prefix(root).unwrap().display().to_string();
                    found.insert(name, std::fs::read(&path).unwrap());
                }
            }
        }
        found
    }

    #[test]
    fn a_streamed_build_writes_what_a_build_of_the_whole_corpus_writes() {
        streamed_and_whole_agree(true);
    }

    #[test]
    fn a_streamed_build_keeps_the_texts_of_exactly_as_many_as_a_feed_shows() {
        streamed_and_whole_agree(false);
    }

    /// Builds a generated site as `herald build` does and as the daemon
    /// does from the whole corpus, and compares every output.
    fn streamed_and_whole_agree(future: bool) {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        generated_site(site, 900, future);
        let config = load_config(&site.join("herald.toml")).unwrap();
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let built = build(&config, now).unwrap();
        // The broken file and the ten duplicates, nothing else.
        let errors: Vec<String> = built
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 11, "{errors:#?}");
        assert_eq!(
            errors.iter().filter(|e| e.contains("duplicate")).count(),
            10,
            "{errors:#?}"
        );

        // The whole corpus held at once, as the daemon holds it.
        let (files, _) = super::super::load_files(&config).unwrap();
        let (corpus, _) = files.corpus();
        let templates = Templates::builtin();
        let (revisions, moves) = (Revisions::new(), Moves::new());
        let whole = Site::new(&config, &templates, &revisions, &moves, now);
        let mut output = OutputDir::new(site.join("whole"));
        publish_everything(&whole, &corpus, &mut output).unwrap();

        // The texts were dropped, but for those a summary may show: at
        // least the hundred newest.
        assert!(
            (100..built.incidents / 2).contains(&built.texts_held),
            "{} of {} incidents held their texts",
            built.texts_held,
            built.incidents
        );

        let (streamed, held) = (tree(&site.join("public")), tree(&site.join("whole")));
        assert!(streamed.len() > 1800, "{} outputs", streamed.len());
        let streamed_names: Vec<&String> = streamed.keys().collect();
        let held_names: Vec<&String> = held.keys().collect();
        assert_eq!(streamed_names, held_names);
        for (name, bytes) in &streamed {
            assert!(
                *bytes == held[name],
                "{name} differs; streamed:\n{}\nfrom the whole corpus:\n{}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&held[name])
            );
        }
    }

    /// A site in English, in UTC, with one component, `mail`, and no
    /// incident yet.
    fn mail_site(site: &Path) {
        std::fs::write(
            site.join("herald.toml"),
            "[site]\ntitle = \"T\"\nbase_url = \"https://status.example.com/\"\ntimezone = \"UTC\"\nlanguage = \"en\"\n\n[[components]]\nid = \"mail\"\nname = \"Mail\"\n",
        )
        .unwrap();
        std::fs::create_dir(site.join("incidents")).unwrap();
    }

    #[test]
    fn the_summaries_of_a_build_date_an_edit_as_its_pages_do() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        mail_site(site);
        let maintenance = |text: &str| {
            format!(
                "+++\ntitle = \"Works\"\ncomponents = [\"mail\"]\nkind = \"maintenance\"\nstarts = \"2019-04-10 22:00Z\"\nends = \"2019-04-10 23:00Z\"\n+++\n\n## 2019-04-01 08:00Z scheduled\n{text}\n"
            )
        };
        std::fs::write(site.join("incidents/works.md"), maintenance("Planned.")).unwrap();
        let config = load_config(&site.join("herald.toml")).unwrap();
        let first = Utc.with_ymd_and_hms(2019, 4, 2, 12, 0, 0).unwrap();
        build(&config, first).unwrap();
        let sequence = |site: &Path| {
            let calendar = std::fs::read_to_string(site.join("public/maintenance.ics")).unwrap();
            calendar
                .lines()
                .find_map(|line| line.strip_prefix("SEQUENCE:").map(str::to_owned))
                .unwrap_or_else(|| panic!("no SEQUENCE in:\n{calendar}"))
        };
        assert_eq!(sequence(site), "0");

        // The text is corrected a day later.
        std::fs::write(
            site.join("incidents/works.md"),
            maintenance("Planned, 22–23."),
        )
        .unwrap();
        let second = first + chrono::Duration::days(1);
        build(&config, second).unwrap();
        assert_eq!(sequence(site), "1", "the calendar counts the edit");
        let feed = std::fs::read(site.join("public/feed.atom")).unwrap();
        let parsed = feed_rs::parser::parse(&feed[..]).unwrap();
        let updated: Vec<_> = parsed.entries.iter().map(|entry| entry.updated).collect();
        assert_eq!(
            updated,
            [Some(second)],
            "the site feed dates the entry at its edit:\n{}",
            String::from_utf8_lossy(&feed)
        );
    }

    #[test]
    fn a_state_database_failing_mid_build_costs_its_records_not_the_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        generated_site(site, 300, false);
        let config = load_config(&site.join("herald.toml")).unwrap();
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let first = build(&config, now).unwrap();
        // The database opens, but recording the first chunk fails.
        rusqlite::Connection::open(site.join("state/herald.db"))
            .unwrap()
            .execute_batch("DROP TABLE revisions")
            .unwrap();
        std::fs::remove_dir_all(site.join("public")).unwrap();
        let again = build(&config, now).unwrap();
        assert_eq!(
            (again.outputs, again.changed),
            (first.outputs, first.outputs),
            "every output written again"
        );
        let page = std::fs::read_to_string(site.join("public/incidents/i0299.html")).unwrap();
        assert!(page.contains("Händelse 299"), "{page}");
        // Nothing made the table again: every chunk's recording failed.
        let tables: i64 = rusqlite::Connection::open(site.join("state/herald.db"))
            .unwrap()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'revisions'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn a_build_sees_one_instant_in_its_pages_and_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        mail_site(site);
        std::fs::write(
            site.join("incidents/disk.md"),
            "+++\ntitle = \"Disk failure\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n\n## 2019-04-04 08:00Z investigating\nA.\n\n## 2019-04-06 10:00Z resolved\nB.\n",
        )
        .unwrap();
        let config = load_config(&site.join("herald.toml")).unwrap();
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
