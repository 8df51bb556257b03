//! All parsed files → one immutable [`Corpus`], plus cross-file
//! diagnostics (duplicate ids).
//!
//! Pure. The daemon keeps a [`Files`] table between events: each path's
//! last parse and its last *good* incident. A file that breaks keeps its
//! last good incident in the corpus until it is fixed; a deleted file
//! takes its incident with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::diag::{Diagnostic, LineIndex};
use crate::model::{Incident, IncidentId};
use crate::parse::{Context, parse_incident};

/// The state of one incident file as last read.
#[derive(Debug, Clone)]
pub struct FileEntry {
    /// The last version that parsed without errors, if any ever did.
    pub last_good: Option<Arc<Incident>>,
    /// Whether the current text has errors (then `last_good` is stale).
    pub broken: bool,
    pub diagnostics: Vec<Diagnostic>,
}

/// Every incident file by path (relative to the incidents directory, as
/// it appears in messages).
#[derive(Debug, Clone, Default)]
pub struct Files {
    entries: BTreeMap<PathBuf, FileEntry>,
}

impl Files {
    /// Parses `text` as the new content of `path`, keeping the last good
    /// incident when it has errors.
    pub fn update(&mut self, path: &Path, text: &str, context: &Context) {
        let (incident, diagnostics) = parse_incident(path, text, context);
        let previous = self.entries.remove(path).and_then(|entry| entry.last_good);
        let broken = incident.is_none();
        let last_good = incident.map(Arc::new).or(previous);
        self.entries.insert(
            path.to_owned(),
            FileEntry {
                last_good,
                broken,
                diagnostics,
            },
        );
    }

    /// Records that `path` could not be read as text.
    pub fn unreadable(&mut self, path: &Path, message: String) {
        let index = LineIndex::new("");
        let diagnostic = Diagnostic::error(path, &index, 0, message);
        let entry = self.entries.entry(path.to_owned()).or_insert(FileEntry {
            last_good: None,
            broken: true,
            diagnostics: Vec::new(),
        });
        entry.broken = true;
        entry.diagnostics = vec![diagnostic];
    }

    /// Takes in every file of `other`, which are read from other paths
    /// (one of `other`'s replaces one of the same path here).
    pub fn append(&mut self, mut other: Files) {
        // `BTreeMap::append` builds the whole tree again: right for two
        // halves, a pass over every file for each chunk of a build.
        if other.entries.len() < self.entries.len() {
            self.entries.extend(other.entries);
        } else {
            self.entries.append(&mut other.entries);
        }
    }

    pub fn remove(&mut self, path: &Path) -> bool {
        self.entries.remove(path).is_some()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    pub fn get(&self, path: &Path) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    /// Known files strictly below `dir`. Paths order component by
    /// component, so they form one contiguous range after `dir`: this
    /// costs a lookup, not a scan of every file.
    pub fn paths_under(&self, dir: &Path) -> Vec<PathBuf> {
        self.entries
            .range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dir))
            .cloned()
            .collect()
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.keys().map(PathBuf::as_path)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&Path, &FileEntry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_path(), entry))
    }

    /// Builds the corpus. Ids must be unique across the tree: the first
    /// path in sorted order keeps an id, later ones are reported.
    pub fn corpus(&self) -> (Corpus, Vec<Diagnostic>) {
        // Sorting by id (stably, so path order breaks ties) puts files
        // sharing an id side by side, and lets the map be bulk-built.
        let mut found: Vec<(&Path, &Arc<Incident>)> = self
            .entries
            .iter()
            .filter_map(|(path, entry)| Some((path.as_path(), entry.last_good.as_ref()?)))
            .collect();
        found.sort_by(|a, b| a.1.id.cmp(&b.1.id));
        let mut diagnostics = Vec::new();
        let mut incidents: Vec<(IncidentId, Arc<Incident>)> = Vec::with_capacity(found.len());
        let mut owner: Option<(&Path, &IncidentId)> = None;
        for (path, incident) in found {
            if let Some((owner_path, owner_id)) = owner
                && *owner_id == incident.id
            {
                diagnostics.push(duplicate(path, &incident.id, owner_path));
                continue;
            }
            owner = Some((path, &incident.id));
            incidents.push((incident.id.clone(), Arc::clone(incident)));
        }
        (Corpus::new(incidents.into_iter().collect()), diagnostics)
    }

    /// Forgets the update texts of the incident last read well from
    /// `path` ([`Incident::drop_texts`]), unless it is shared: a corpus
    /// made of these files keeps what it holds.
    pub fn drop_texts(&mut self, path: &Path) {
        if let Some(incident) = self
            .entries
            .get_mut(path)
            .and_then(|entry| entry.last_good.as_mut())
            .and_then(Arc::get_mut)
        {
            incident.drop_texts();
        }
    }

    /// Every diagnostic of every file, in path order.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.entries.values().flat_map(|entry| &entry.diagnostics)
    }
}

/// The error of a file whose id an earlier path (in sorted order) holds.
fn duplicate(path: &Path, id: &IncidentId, owner: &Path) -> Diagnostic {
    let index = LineIndex::new("");
    Diagnostic::error(
        path,
        &index,
        0,
        format!(
            "duplicate incident id `{id}`, already used by {}",
            owner.display()
        ),
    )
}

/// A validated snapshot of every incident, drafts included (they are
/// checked, never published).
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    incidents: BTreeMap<IncidentId, Arc<Incident>>,
    /// Published incidents, newest latest update first (ties by id): feeds
    /// want the newest updates and stop after the first few incidents.
    by_latest: Vec<Arc<Incident>>,
}

impl Corpus {
    pub fn from_incidents(list: impl IntoIterator<Item = Incident>) -> Corpus {
        Corpus::new(
            list.into_iter()
                .map(|i| (i.id.clone(), Arc::new(i)))
                .collect(),
        )
    }

    fn new(incidents: BTreeMap<IncidentId, Arc<Incident>>) -> Corpus {
        let mut by_latest: Vec<Arc<Incident>> = incidents
            .values()
            .filter(|incident| !incident.draft)
            .cloned()
            .collect();
        by_latest.sort_unstable_by(|a, b| latest_first(a, b));
        Corpus {
            incidents,
            by_latest,
        }
    }

    /// Puts `incident` (or nothing) where the incident `id` was, and
    /// returns the one it replaced: a lookup and a move of the feed
    /// order's pointers, not a pass over the incidents.
    pub fn replace(
        &mut self,
        id: &IncidentId,
        incident: Option<Arc<Incident>>,
    ) -> Option<Arc<Incident>> {
        let old = match &incident {
            Some(new) => self.incidents.insert(id.clone(), Arc::clone(new)),
            None => self.incidents.remove(id),
        };
        // Ids are unique, so the order is strict: a search finds the
        // very incident.
        if let Some(old) = old.as_ref().filter(|old| !old.draft)
            && let Ok(at) = self
                .by_latest
                .binary_search_by(|probe| latest_first(probe, old))
        {
            self.by_latest.remove(at);
        }
        if let Some(new) = incident.filter(|new| !new.draft) {
            let at = self
                .by_latest
                .binary_search_by(|probe| latest_first(probe, &new))
                .unwrap_or_else(|at| at);
            self.by_latest.insert(at, new);
        }
        old
    }

    /// Published incidents, the one with the newest update first.
    pub fn by_latest_update(&self) -> &[Arc<Incident>] {
        &self.by_latest
    }

    pub fn get(&self, id: &IncidentId) -> Option<&Arc<Incident>> {
        self.incidents.get(id)
    }

    /// Non-draft incidents, by id.
    pub fn published(&self) -> impl Iterator<Item = &Arc<Incident>> {
        self.incidents.values().filter(|incident| !incident.draft)
    }

    pub fn published_get(&self, id: &IncidentId) -> Option<&Arc<Incident>> {
        self.incidents.get(id).filter(|incident| !incident.draft)
    }

    pub fn len(&self) -> usize {
        self.incidents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty()
    }

    /// Ids whose published version differs between `self` and `newer`
    /// (added, removed, edited, drafted or undrafted).
    pub fn changed_ids(&self, newer: &Corpus) -> BTreeSet<IncidentId> {
        let mut changed = BTreeSet::new();
        for (id, incident) in &self.incidents {
            match newer.incidents.get(id) {
                Some(other) if Arc::ptr_eq(incident, other) || incident == other => {}
                _ => {
                    changed.insert(id.clone());
                }
            }
        }
        for id in newer.incidents.keys() {
            if !self.incidents.contains_key(id) {
                changed.insert(id.clone());
            }
        }
        changed
    }

    /// The instants at which date-dependent outputs change on their own:
    /// maintenance windows opening and closing, after `now`.
    pub fn boundaries_after(&self, now: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.published()
            .filter_map(|incident| incident.window)
            .flat_map(|window| [window.starts, window.ends])
            .filter(move |instant| *instant > now)
    }
}

/// The feed order: the newest latest update first, ties by id.
fn latest_first(a: &Incident, b: &Incident) -> std::cmp::Ordering {
    b.latest_update()
        .instant
        .cmp(&a.latest_update().instant)
        .then_with(|| a.id.cmp(&b.id))
}

/// The daemon's files and corpus, kept in step file by file: after some
/// files were read again, [`Live::refresh`] replaces their incidents in
/// the corpus in place, in time proportional to the files read, not to
/// the corpus. The result is the corpus [`Files::corpus`] would build
/// from the same files (tests hold them to it).
#[derive(Debug, Default)]
pub struct Live {
    files: Files,
    corpus: Corpus,
    /// By id, the paths whose good incident has an id an earlier path
    /// holds (duplicates, reported): rare, usually empty.
    shadowed: BTreeMap<IncidentId, BTreeSet<PathBuf>>,
}

/// What [`Live::refresh`] changed.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// The incidents that differ (added, removed, edited, drafted or
    /// undrafted), as [`Corpus::changed_ids`] tells them.
    pub ids: BTreeSet<IncidentId>,
    /// Their versions before, those that existed.
    pub before: Corpus,
    /// Duplicate ids among the files refreshed.
    pub diagnostics: Vec<Diagnostic>,
}

impl Live {
    /// The corpus of `files`, and the cross-file diagnostics.
    pub fn new(files: Files) -> (Live, Vec<Diagnostic>) {
        let (corpus, diagnostics) = files.corpus();
        let mut shadowed: BTreeMap<IncidentId, BTreeSet<PathBuf>> = BTreeMap::new();
        for (path, entry) in files.entries() {
            if let Some(incident) = &entry.last_good
                && corpus
                    .get(&incident.id)
                    .is_some_and(|owner| !Arc::ptr_eq(owner, incident))
            {
                shadowed
                    .entry(incident.id.clone())
                    .or_default()
                    .insert(path.to_owned());
            }
        }
        let live = Live {
            files,
            corpus,
            shadowed,
        };
        (live, diagnostics)
    }

    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The files, to read some again; then [`Live::refresh`] them.
    pub fn files_mut(&mut self) -> &mut Files {
        &mut self.files
    }

    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Brings the corpus up to date with `paths`, files read again,
    /// removed, broken or mended since the last refresh.
    pub fn refresh<'a>(&mut self, paths: impl IntoIterator<Item = &'a Path>) -> Refreshed {
        // A file's id is its name's stem: a file can hold no other.
        let mut by_id: BTreeMap<IncidentId, Vec<&Path>> = BTreeMap::new();
        for path in paths {
            let stem = path.file_stem().map(|stem| stem.to_string_lossy());
            if let Some(id) = stem.and_then(|stem| IncidentId::new(&stem)) {
                by_id.entry(id).or_default().push(path);
            }
        }
        let mut refreshed = Refreshed::default();
        let mut before = Vec::new();
        for (id, paths) in by_id {
            // Every path whose good incident has this id, in path order.
            let mut holders = self.shadowed.remove(&id).unwrap_or_default();
            if let Some(owner) = self.corpus.get(&id) {
                holders.insert(owner.path.clone());
            }
            holders.extend(paths.into_iter().map(Path::to_owned));
            holders.retain(|path| {
                self.files
                    .get(path)
                    .is_some_and(|entry| entry.last_good.is_some())
            });
            let mut holders = holders.into_iter();
            let owner = holders.next();
            let incident = owner
                .as_ref()
                .and_then(|path| self.files.get(path)?.last_good.clone());
            let rest: BTreeSet<PathBuf> = holders.collect();
            if let Some(owner) = &owner {
                for path in &rest {
                    refreshed.diagnostics.push(duplicate(path, &id, owner));
                }
            }
            if !rest.is_empty() {
                self.shadowed.insert(id.clone(), rest);
            }
            let old = self.corpus.replace(&id, incident.clone());
            let same = match (&old, &incident) {
                (Some(old), Some(new)) => Arc::ptr_eq(old, new) || old == new,
                (None, None) => true,
                _ => false,
            };
            if !same {
                refreshed.ids.insert(id.clone());
                before.extend(old.map(|old| (id, old)));
            }
        }
        refreshed.before = Corpus::new(before.into_iter().collect());
        refreshed
    }

    /// Builds the corpus again from every file (after lost events), and
    /// says what changed.
    pub fn rebuild(&mut self) -> Refreshed {
        let (live, diagnostics) = Live::new(std::mem::take(&mut self.files));
        let old = std::mem::replace(self, live);
        let ids = old.corpus.changed_ids(&self.corpus);
        let before = ids
            .iter()
            .filter_map(|id| Some((id.clone(), Arc::clone(old.corpus.get(id)?))))
            .collect();
        Refreshed {
            ids,
            before: Corpus::new(before),
            diagnostics,
        }
    }
}

/// The next instant after `now` at which date-dependent outputs change
/// with no file touched: local midnight in `timezone` (the 90-day bars
/// move on), or a maintenance window opening or closing.
pub fn next_date_change(
    corpus: &Corpus,
    timezone: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    use chrono::{Days, TimeZone};
    let today = now.with_timezone(&timezone).date_naive();
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
    // In zones whose DST change happens at midnight, the day starts at
    // 01:00; the earliest existing minute after midnight is the start.
    let midnight = (0..=120)
        .find_map(|minutes| {
            let local = tomorrow.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(minutes);
            timezone.from_local_datetime(&local).earliest()
        })
        .map_or(now + chrono::Duration::hours(24), |start| {
            start.with_timezone(&Utc)
        });
    corpus.boundaries_after(now).fold(midnight, DateTime::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;
    use crate::parse::Context;
    use chrono::TimeZone;
    use chrono_tz::Europe::Stockholm;

    /// Applies `texts`, each `(path, text)` in turn, to `files` as a site
    /// with one component, `dns`, in Stockholm would.
    fn update(files: &mut Files, texts: &[(&str, &str)]) {
        let components = vec![Component {
            id: "dns".into(),
            name: "DNS".into(),
            group: None,
            names: Vec::new(),
            group_names: Vec::new(),
        }];
        let context = Context {
            timezone: Stockholm,
            components: &components,
            languages: &crate::model::Languages::one(crate::model::Language::En),
        };
        for (path, text) in texts {
            files.update(Path::new(path), text, &context);
        }
    }

    fn files(texts: &[(&str, &str)]) -> Files {
        let mut files = Files::default();
        update(&mut files, texts);
        files
    }

    const MAINTENANCE: &str = "+++\ntitle = \"M\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = \"2026-12-11 02:00\"\n+++\n## 2026-11-20 10:00\nPlanned.\n";

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn files_read_in_two_parts_and_appended_are_those_read_at_once() {
        let broken = "+++\ntitle = \"B\"\n+++\nno update\n";
        let texts = [
            ("a.md", MAINTENANCE),
            ("b.md", broken),
            ("c.md", MAINTENANCE),
            ("d.md", broken),
        ];
        let whole = files(&texts);
        let mut parts = files(&texts[..2]);
        parts.append(files(&texts[2..]));
        assert_eq!(format!("{parts:?}"), format!("{whole:?}"));
        assert_eq!(parts.paths().count(), 4);
        assert_eq!(parts.diagnostics().count(), whole.diagnostics().count());
        assert!(whole.diagnostics().count() >= 2, "{whole:?}");
        // An empty part changes nothing.
        parts.append(Files::default());
        assert_eq!(format!("{parts:?}"), format!("{whole:?}"));
        // A file at a time, as a build takes in its chunks: each part
        // smaller than what is held once there are two.
        let mut chunks = files(&texts[..1]);
        for text in &texts[1..] {
            chunks.append(files(std::slice::from_ref(text)));
        }
        assert_eq!(format!("{chunks:?}"), format!("{whole:?}"));
    }

    #[test]
    fn texts_are_dropped_only_from_an_incident_nothing_else_holds() {
        let mut files = files(&[("a.md", MAINTENANCE), ("b.md", MAINTENANCE)]);
        let text = |files: &Files, path: &str| {
            let entry = files.get(Path::new(path)).unwrap();
            entry.last_good.as_ref().unwrap().updates[0]
                .body_markdown
                .to_string()
        };
        assert_eq!(text(&files, "a.md"), "Planned.");
        let incident = |files: &Files, path: &str| {
            Arc::clone(
                files
                    .get(Path::new(path))
                    .unwrap()
                    .last_good
                    .as_ref()
                    .unwrap(),
            )
        };
        let timeline = incident(&files, "a.md").timeline().clone();
        assert!(incident(&files, "a.md").holds_timeline());
        let (held, _) = files.corpus();
        files.drop_texts(Path::new("a.md"));
        assert_eq!(text(&files, "a.md"), "Planned.", "a corpus holds it");
        drop(held);
        files.drop_texts(Path::new("a.md"));
        assert_eq!(text(&files, "a.md"), "");
        assert_eq!(text(&files, "b.md"), "Planned.");
        // Its timeline goes too, and comes back the same when asked for.
        let dropped = incident(&files, "a.md");
        assert!(!dropped.holds_timeline());
        assert_eq!(*dropped.timeline(), timeline);
        // A path never read is no error.
        files.drop_texts(Path::new("c.md"));
    }

    #[test]
    fn next_date_change_is_midnight_or_a_window_edge() {
        let (corpus, _) = files(&[("m.md", MAINTENANCE)]).corpus();
        // Local midnight in Stockholm (CET, UTC+1) is 23:00 UTC.
        assert_eq!(
            next_date_change(&corpus, Stockholm, utc(2026, 11, 24, 12, 0)),
            utc(2026, 11, 24, 23, 0)
        );
        // On the evening of the window, its start comes before midnight.
        assert_eq!(
            next_date_change(&corpus, Stockholm, utc(2026, 12, 10, 20, 0)),
            utc(2026, 12, 10, 21, 0)
        );
        assert_eq!(
            next_date_change(&corpus, Stockholm, utc(2026, 12, 10, 23, 30)),
            utc(2026, 12, 11, 1, 0)
        );
        // Summer time: midnight is 22:00 UTC.
        assert_eq!(
            next_date_change(&corpus, Stockholm, utc(2019, 4, 8, 12, 0)),
            utc(2019, 4, 8, 22, 0)
        );
    }

    #[test]
    fn paths_under_a_directory() {
        let files = files(&[
            ("inc/a.md", MAINTENANCE),
            ("inc/b/c.md", MAINTENANCE),
            ("inc/b/d/e.md", MAINTENANCE),
            ("inc/b-x.md", MAINTENANCE),
            ("inc/bb/f.md", MAINTENANCE),
        ]);
        assert_eq!(
            files.paths_under(Path::new("inc/b")),
            vec![PathBuf::from("inc/b/c.md"), PathBuf::from("inc/b/d/e.md")]
        );
        assert_eq!(files.paths_under(Path::new("inc")).len(), 5);
        assert_eq!(
            files.paths_under(Path::new("inc/a.md")),
            Vec::<PathBuf>::new()
        );
        assert_eq!(files.paths_under(Path::new("other")), Vec::<PathBuf>::new());
    }

    #[test]
    fn broken_file_keeps_last_good_and_deleted_file_drops_it() {
        let mut files = files(&[("m.md", MAINTENANCE)]);
        let edited = MAINTENANCE.replace("Planned.", "Edited.");
        update(&mut files, &[("m.md", &edited)]);
        let (corpus, _) = files.corpus();
        let id = IncidentId::new("m").unwrap();
        assert_eq!(
            &*corpus.get(&id).unwrap().updates[0].body_markdown,
            "Edited."
        );
        update(&mut files, &[("m.md", "+++\nbroken")]);
        let (corpus_after, _) = files.corpus();
        assert_eq!(
            &*corpus_after.get(&id).unwrap().updates[0].body_markdown,
            "Edited."
        );
        assert!(files.diagnostics().any(Diagnostic::is_error));
        assert!(corpus.changed_ids(&corpus_after).is_empty());
        files.remove(Path::new("m.md"));
        let (empty, _) = files.corpus();
        assert!(empty.is_empty());
        assert_eq!(corpus.changed_ids(&empty), BTreeSet::from([id]));
    }

    /// The ids of `corpus`, all and in feed order.
    fn shape(corpus: &Corpus) -> (Vec<(IncidentId, Arc<Incident>)>, Vec<IncidentId>) {
        let all = corpus
            .incidents
            .iter()
            .map(|(id, incident)| (id.clone(), Arc::clone(incident)))
            .collect();
        let order = corpus.by_latest.iter().map(|i| i.id.clone()).collect();
        (all, order)
    }

    #[test]
    fn a_refreshed_corpus_is_the_one_a_full_build_makes() {
        let incident = |day: u32, draft: bool| {
            format!(
                "+++\ntitle = \"I\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\ndraft = {draft}\n+++\n## 2026-11-{day:02} 10:00\nText {day}.\n"
            )
        };
        let (mut live, diagnostics) = Live::new(files(&[
            ("inc/a.md", &incident(1, false)),
            ("inc/b.md", &incident(2, false)),
            ("inc/c.md", &incident(3, false)),
            ("inc/d.md", &incident(4, true)),
        ]));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(live.corpus().len(), 4);
        let steps: Vec<Vec<(&str, Option<String>)>> = vec![
            // An edit that moves `a` to the front of the feed.
            vec![("inc/a.md", Some(incident(9, false)))],
            // A deletion, and a rename to another id.
            vec![("inc/b.md", None)],
            vec![("inc/c.md", None), ("inc/x/e.md", Some(incident(5, false)))],
            // A duplicate id, later in path order: `inc/a.md` keeps it.
            vec![("inc/z/a.md", Some(incident(7, false)))],
            // A broken file keeps its last good version.
            vec![("inc/a.md", Some("+++\nbroken".into()))],
            // The owner gone, the duplicate takes the id over.
            vec![("inc/a.md", None)],
            // Drafted and undrafted.
            vec![("inc/e.md", None), ("inc/x/e.md", Some(incident(5, true)))],
            vec![("inc/d.md", Some(incident(4, false)))],
            // Read again, unchanged.
            vec![("inc/d.md", Some(incident(4, false)))],
        ];
        let mut duplicates = 0;
        for step in steps {
            let before = live.corpus().clone();
            let mut touched = Vec::new();
            for (path, text) in &step {
                match text {
                    Some(text) => update(live.files_mut(), &[(path, text)]),
                    None => {
                        live.files_mut().remove(Path::new(path));
                    }
                }
                touched.push(Path::new(*path));
            }
            let refreshed = live.refresh(touched);
            duplicates += refreshed.diagnostics.len();
            let (full, _) = live.files().corpus();
            assert_eq!(shape(live.corpus()), shape(&full), "after {step:?}");
            assert_eq!(refreshed.ids, before.changed_ids(&full), "after {step:?}");
            for id in &refreshed.ids {
                assert_eq!(
                    refreshed.before.get(id).map(|i| i.updates.clone()),
                    before.get(id).map(|i| i.updates.clone())
                );
            }
        }
        assert_eq!(duplicates, 2, "reported when written and when broken");
        assert_eq!(
            shape(live.corpus()).1,
            ["a", "d"].map(|id| IncidentId::new(id).unwrap())
        );
        let (rebuilt, _) = Live::new(live.files().clone());
        assert_eq!(shape(rebuilt.corpus()), shape(live.corpus()));
        assert!(live.rebuild().ids.is_empty());
    }
}
