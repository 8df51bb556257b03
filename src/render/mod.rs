//! `Corpus` → in-memory outputs: feeds, pages, the JSON summary and the
//! maintenance calendar. Pure: `now` and the templates come from the caller.
//!
//! [`render`] takes a [`Plan`] so that the daemon re-renders only what a
//! change touches: the changed incidents' pages, the months they fall in,
//! the feeds of their components, and the site-wide indexes.

pub mod api;
mod badge;
pub mod feed;
mod history;
pub mod html;
pub mod i18n;
pub mod ics;
pub mod notice;
mod shown;
pub mod templates;
mod text;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::Config;
use crate::corpus::Corpus;
use crate::model::{Incident, IncidentId, Language, Update};

pub use shown::ShownTexts;
pub use templates::Templates;

/// Feeds carry at most this many entries.
pub const FEED_LIMIT: usize = 100;

/// One file of the output tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Relative to the output directory, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// When an update's text was last edited after it was first published,
/// keyed by its identity. Kept by the state store; an update missing here
/// was never edited, and its feed entry's `updated` is its own instant.
pub type Revisions = HashMap<(IncidentId, DateTime<Utc>), DateTime<Utc>>;

/// How often a maintenance's window moved (a new `starts` or `ends` after
/// herald first saw it), and when it last did. Kept by the state store; a
/// maintenance missing here never moved.
pub type Moves = HashMap<IncidentId, Moved>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub count: u32,
    pub last: DateTime<Utc>,
}

/// Everything a renderer needs besides the corpus, in one of the site's
/// languages.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    pub revisions: &'a Revisions,
    pub moves: &'a Moves,
    /// The instant "now" for date-dependent pages (90-day bars, which
    /// maintenance is ongoing). Feeds never use it.
    pub now: DateTime<Utc>,
    /// The language of the outputs rendered: the site's own, or a further
    /// one, whose outputs go under its code ([`Site::prefix`]).
    language: Language,
}

/// An update's text in one language, and that language: a page in
/// English shows the Swedish text of an update nobody translated.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    pub markdown: &'a str,
    pub language: Language,
}

impl Text<'_> {
    /// The text as HTML, raw HTML in it escaped.
    pub fn html(&self) -> String {
        crate::parse::render_markdown(self.markdown)
    }
}

impl<'a> Site<'a> {
    /// The site in its own language.
    pub fn new(
        config: &'a Config,
        templates: &'a Templates,
        revisions: &'a Revisions,
        moves: &'a Moves,
        now: DateTime<Utc>,
    ) -> Site<'a> {
        Site {
            config,
            templates,
            revisions,
            moves,
            now,
            language: config.site.language(),
        }
    }

    /// The same site in `language`.
    pub fn in_language(&self, language: Language) -> Site<'a> {
        Site { language, ..*self }
    }

    /// This site with other edit times and window moves: a full build
    /// renders each chunk of incident pages as soon as their updates are
    /// recorded, with the edit times known so far.
    pub fn with_records<'b>(&self, revisions: &'b Revisions, moves: &'b Moves) -> Site<'b>
    where
        'a: 'b,
    {
        Site {
            config: self.config,
            templates: self.templates,
            revisions,
            moves,
            now: self.now,
            language: self.language,
        }
    }

    /// The language of what is rendered.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Where this language's outputs go: `""` for the site's language,
    /// `"en/"` for English as a further one.
    pub fn prefix(&self) -> &'static str {
        self.config.site.languages.prefix(self.language)
    }

    pub fn timezone(&self) -> Tz {
        self.config.site.timezone
    }

    /// The base URL of this language's outputs: `https://status.example/`
    /// or `https://status.example/en/`.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.config.site.base_url, self.prefix())
    }

    /// The site's title in this language.
    pub fn site_title(&self) -> &'a str {
        self.config.site.title_in(self.language)
    }

    /// The name of component `id` in this language (the id itself for a
    /// component no longer configured).
    pub fn component_name<'s>(&self, id: &'s str) -> &'s str
    where
        'a: 's,
    {
        self.config.component_name(id, self.language)
    }

    /// The incident's title in this language, or the site's.
    pub fn title<'i>(&self, incident: &'i Incident) -> &'i str {
        incident.title_in(self.language)
    }

    /// The incident's summary in this language, or the site's.
    pub fn summary<'i>(&self, incident: &'i Incident) -> Text<'i> {
        let site = self.config.site.language();
        match incident.summary_in(self.language, site) {
            Some(markdown) => Text {
                markdown,
                language: self.language,
            },
            None => Text {
                markdown: &incident.summary_markdown,
                language: site,
            },
        }
    }

    /// The update's text in this language, or the site's.
    pub fn text<'u>(&self, update: &'u Update) -> Text<'u> {
        let site = self.config.site.language();
        match update.text_in(self.language, site) {
            Some(markdown) => Text {
                markdown,
                language: self.language,
            },
            None => Text {
                markdown: &update.body_markdown,
                language: site,
            },
        }
    }

    /// The instant shown as an entry's last change.
    pub fn edited(&self, incident: &Incident, update: &Update) -> DateTime<Utc> {
        // Nothing edited (the usual case): no key to build and hash.
        if self.revisions.is_empty() {
            return update.instant;
        }
        self.revisions
            .get(&(incident.id.clone(), update.instant))
            .copied()
            .unwrap_or(update.instant)
            .max(update.instant)
    }
}

/// What to render.
pub enum Plan<'a> {
    /// Everything.
    Full,
    /// What changes between `old` and the corpus passed to [`render`],
    /// whose differing incidents are `ids`.
    Changed {
        old: &'a Corpus,
        ids: &'a BTreeSet<IncidentId>,
    },
    /// Only the date-dependent outputs (midnight, maintenance boundaries).
    Clock,
}

#[derive(Debug, Default)]
pub struct Rendered {
    pub outputs: Vec<Output>,
    /// How many of `outputs`, from the start, are what a change shows in
    /// directly and cheaply (its incident's page and feed, the component
    /// and site feeds); the rest (month pages, calendars, the API
    /// documents, the index: each a pass over the whole corpus, and the
    /// index links to everything) can be written after them, so that a
    /// feed shows an edit without waiting for those.
    pub direct: usize,
    /// Outputs that no longer exist (a deleted or drafted incident's page).
    pub removed: Vec<String>,
}

/// One feed entry: an update of an incident.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub incident: &'a Incident,
    pub update: &'a Update,
}

/// The `#fragment` of an update on its incident page.
pub fn update_anchor(instant: DateTime<Utc>) -> String {
    let mut anchor = String::with_capacity(18);
    push_update_anchor(&mut anchor, instant);
    anchor
}

/// [`update_anchor`] written onto `out`.
fn push_update_anchor(out: &mut String, instant: DateTime<Utc>) {
    // Written digit by digit, as chrono's `u-%Y%m%dT%H%M%SZ` writes it:
    // a format string is parsed again for each of the 100,000 updates of
    // a build, and even `format!` with widths costs a page's rendering a
    // tenth. A year past four digits or a leap second take chrono's way.
    let year = instant.year();
    if !(0..=9999).contains(&year) || instant.nanosecond() >= 1_000_000_000 {
        out.push_str(&instant.format("u-%Y%m%dT%H%M%SZ").to_string());
        return;
    }
    out.push_str("u-");
    i18n::push_padded(out, year.unsigned_abs(), 4);
    i18n::push_padded(out, instant.month(), 2);
    i18n::push_padded(out, instant.day(), 2);
    out.push('T');
    i18n::push_padded(out, instant.hour(), 2);
    i18n::push_padded(out, instant.minute(), 2);
    i18n::push_padded(out, instant.second(), 2);
    out.push('Z');
}

pub fn incident_path(id: &IncidentId) -> String {
    let mut path = String::with_capacity(id.as_str().len() + 15);
    push_incident_path(&mut path, id);
    path
}

/// [`incident_path`] written onto `out`.
fn push_incident_path(out: &mut String, id: &IncidentId) {
    out.push_str("incidents/");
    out.push_str(id.as_str());
    out.push_str(".html");
}

/// One incident's Atom feed, beside its page.
pub fn incident_feed_path(id: &IncidentId) -> String {
    format!("incidents/{id}.atom")
}

pub fn incident_url(base_url: &str, id: &IncidentId) -> String {
    let mut url = String::with_capacity(base_url.len() + id.as_str().len() + 15);
    url.push_str(base_url);
    push_incident_path(&mut url, id);
    url
}

/// The link and the stable id of an update's feed entries.
pub fn update_url(base_url: &str, id: &IncidentId, instant: DateTime<Utc>) -> String {
    update_url_under(base_url, "", id, instant)
}

/// [`update_url`] of a language's outputs: `prefix` (`en/`, or empty)
/// after the base URL, without building the language's base URL first.
pub fn update_url_under(
    base_url: &str,
    prefix: &str,
    id: &IncidentId,
    instant: DateTime<Utc>,
) -> String {
    let mut url = String::with_capacity(base_url.len() + prefix.len() + id.as_str().len() + 34);
    url.push_str(base_url);
    url.push_str(prefix);
    push_incident_path(&mut url, id);
    url.push('#');
    push_update_anchor(&mut url, instant);
    url
}

pub fn month_path(year: i32, month: u32) -> String {
    format!("history/{year:04}-{month:02}.html")
}

/// The month (in the site's zone) an incident is archived under: the month
/// it began.
pub fn incident_month(incident: &Incident, timezone: Tz) -> (i32, u32) {
    let local = incident.began().with_timezone(&timezone);
    (local.year(), local.month())
}

/// The newest `limit` updates of published incidents matching `filter`,
/// newest first; ties broken by incident id so the order is stable.
pub fn latest_entries<'a>(
    corpus: &'a Corpus,
    filter: impl Fn(&Incident) -> bool,
    limit: usize,
) -> Vec<Entry<'a>> {
    latest_matching(corpus, |incident, _| filter(incident), limit)
}

/// The newest `limit` updates that concern `component`: those of the
/// incidents affecting it, from the update at which it joined (SPEC §1).
pub fn component_entries<'a>(corpus: &'a Corpus, component: &str, limit: usize) -> Vec<Entry<'a>> {
    latest_matching(
        corpus,
        |incident, update| {
            incident
                .joined_at(component)
                .is_some_and(|joined| joined <= update.instant)
        },
        limit,
    )
}

/// The newest `limit` updates matching `filter`.
///
/// Incidents are visited newest latest update first, so the walk stops at
/// the first incident whose newest update is older than every entry kept:
/// a feed of a 10,000-incident site reads a handful of incidents.
fn latest_matching<'a>(
    corpus: &'a Corpus,
    filter: impl Fn(&Incident, &Update) -> bool,
    limit: usize,
) -> Vec<Entry<'a>> {
    let mut entries: Vec<Entry<'a>> = Vec::new();
    let mut cutoff = None;
    for incident in corpus.by_latest_update() {
        if cutoff.is_some_and(|cutoff| incident.latest_update().instant < cutoff) {
            break;
        }
        for update in &incident.updates {
            if filter(incident, update) {
                entries.push(Entry { incident, update });
            }
        }
        if entries.len() >= limit {
            sort_newest_first(&mut entries);
            entries.truncate(limit);
            cutoff = entries.last().map(|entry| entry.update.instant);
        }
    }
    sort_newest_first(&mut entries);
    entries.truncate(limit);
    entries
}

fn sort_newest_first(entries: &mut [Entry<'_>]) {
    entries.sort_by(|a, b| {
        b.update
            .instant
            .cmp(&a.update.instant)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
}

/// How many incident pages a full build renders before writing them: a
/// full build of a large site never holds every page in memory. A few
/// chunks are in flight at once (rendered, waiting, being written): 256
/// took the translated 10,000-incident build's peak to 88–93 MiB, 128
/// keeps it at 85–86.
pub const PAGE_CHUNK: usize = 128;

/// The site in each of its languages, its own first.
fn editions<'a>(site: &Site<'a>) -> impl Iterator<Item = Site<'a>> {
    let site = *site;
    site.config
        .site
        .languages
        .all()
        .iter()
        .map(move |language| site.in_language(*language))
}

/// The pages of `incidents`, each followed by its Atom feed, in every
/// language of the site (further ones under their code). With
/// [`Plan::Full`], [`render`] leaves these out so that the caller can
/// render and write them [`PAGE_CHUNK`] at a time.
pub fn incident_pages(
    site: &Site,
    incidents: &[&Incident],
) -> Result<Vec<Output>, templates::RenderError> {
    in_every_language(site, |edition| prefixed_pages(edition, incidents))
}

/// The pages of `months` (`history/YYYY-MM.html`, each month's incidents
/// from [`by_month`]) in every language of the site, the site's own first.
pub fn month_pages(
    site: &Site,
    months: &[((i32, u32), Vec<&Incident>)],
) -> Result<Vec<Output>, templates::RenderError> {
    in_every_language(site, |edition| {
        months
            .iter()
            .map(|((year, month), incidents)| {
                Ok(Output {
                    path: format!("{}{}", edition.prefix(), month_path(*year, *month)),
                    bytes: html::month_of(edition, *year, *month, incidents.clone())?,
                })
            })
            .collect()
    })
}

/// The published incidents with updates by the month they began in (in
/// the site's zone, [`incident_month`]): one page each ([`month_pages`]).
pub fn by_month<'c>(site: &Site, corpus: &'c Corpus) -> Vec<((i32, u32), Vec<&'c Incident>)> {
    let timezone = site.timezone();
    let mut months: std::collections::BTreeMap<(i32, u32), Vec<&'c Incident>> =
        std::collections::BTreeMap::new();
    // A month with only incidents that have no update still has its
    // (empty) page.
    for incident in corpus.published() {
        let month = months
            .entry(incident_month(incident, timezone))
            .or_default();
        if !incident.updates.is_empty() {
            month.push(incident);
        }
    }
    months.into_iter().collect()
}

/// [`render_language`]'s outputs in every language of the site, the
/// site's own first, without the stylesheet.
pub fn full_summaries(site: &Site, corpus: &Corpus) -> Result<Vec<Output>, templates::RenderError> {
    in_every_language(site, |edition| {
        Ok(render_language(edition, corpus, &Plan::Full)?.outputs)
    })
}

/// `render` of each edition of the site, the site's own first: each
/// further language on a thread of its own beside the site's, since the
/// languages share nothing but the corpus they read and a translated site
/// takes twice the rendering.
fn in_every_language<F>(site: &Site, render: F) -> Result<Vec<Output>, templates::RenderError>
where
    F: Fn(&Site) -> Result<Vec<Output>, templates::RenderError> + Sync,
{
    let editions: Vec<Site> = editions(site).collect();
    let (first, further) = editions.split_first().expect("a site has a language");
    let render = &render;
    let rendered: Vec<Result<Vec<Output>, templates::RenderError>> = std::thread::scope(|scope| {
        let threads: Vec<_> = further
            .iter()
            .map(|edition| scope.spawn(move || render(edition)))
            .collect();
        let mut rendered = vec![render(first)];
        rendered.extend(threads.into_iter().map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        rendered
    });
    let mut outputs = Vec::new();
    for pages in rendered {
        outputs.extend(pages?);
    }
    Ok(outputs)
}

/// [`edition_pages`] with paths under the edition's prefix.
fn prefixed_pages(
    edition: &Site,
    incidents: &[&Incident],
) -> Result<Vec<Output>, templates::RenderError> {
    let prefix = edition.prefix();
    Ok(edition_pages(edition, incidents)?
        .into_iter()
        .map(|output| Output {
            path: format!("{prefix}{}", output.path),
            bytes: output.bytes,
        })
        .collect())
}

/// [`incident_pages`] in `site`'s language, paths relative to its prefix.
fn edition_pages(
    site: &Site,
    incidents: &[&Incident],
) -> Result<Vec<Output>, templates::RenderError> {
    let mut outputs = Vec::with_capacity(incidents.len() * 2);
    for incident in incidents {
        // Each update's text as HTML, once for the page and the feed.
        let bodies: Vec<String> = incident
            .updates
            .iter()
            .map(|update| site.text(update).html())
            .collect();
        outputs.push(Output {
            path: incident_path(&incident.id),
            bytes: html::incident_with_bodies(site, incident, &bodies)?,
        });
        outputs.push(incident_feed(site, incident, &bodies));
    }
    Ok(outputs)
}

/// `incidents/ID.atom`: every update of one incident, newest first.
/// `bodies`: each update's text as HTML, in the order of its updates.
fn incident_feed(site: &Site, incident: &Incident, bodies: &[String]) -> Output {
    let (entries, bodies): (Vec<Entry>, Vec<&str>) = incident
        .updates
        .iter()
        .zip(bodies)
        .rev()
        .take(FEED_LIMIT)
        .map(|(update, body)| (Entry { incident, update }, body.as_str()))
        .unzip();
    let meta = feed::FeedMeta::incident(site, incident);
    Output {
        path: incident_feed_path(&incident.id),
        bytes: feed::atom_with_bodies(site, &meta, &entries, &bodies),
    }
}

/// Which of a plan's outputs to render: the daemon writes a change's
/// direct outputs (pages and feeds) before it renders the summaries, so a
/// feed never waits for what sums up the whole corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The pages and feeds (and, for [`Plan::Full`], the stylesheet).
    Direct,
    /// Month pages, calendars, the API documents, the index; and the
    /// outputs to remove, which go once these are written.
    Summaries,
    /// Both, direct outputs first.
    All,
}

impl Part {
    fn direct(self) -> bool {
        self != Part::Summaries
    }

    fn summaries(self) -> bool {
        self != Part::Direct
    }
}

/// Renders `part` of what `plan` asks for (for [`Plan::Full`], all but the
/// incident pages: see [`incident_pages`]), in every language of the site:
/// the site's own at the root, each further one under its code (`en/`).
pub fn render(
    site: &Site,
    corpus: &Corpus,
    plan: &Plan,
    part: Part,
) -> Result<Rendered, templates::RenderError> {
    let mut rendered = Rendered::default();
    // Every language's direct outputs, then every language's summaries.
    let mut summaries = Vec::new();
    for edition in editions(site) {
        let mut one = render_edition_in(&edition, corpus, plan, part)?;
        summaries.extend(one.outputs.split_off(one.direct));
        rendered.outputs.extend(one.outputs);
        rendered.removed.extend(one.removed);
    }
    // One stylesheet for every language.
    if matches!(plan, Plan::Full) && part.direct() {
        rendered.outputs.push(stylesheet(site));
    }
    rendered.direct = rendered.outputs.len();
    rendered.outputs.extend(summaries);
    Ok(rendered)
}

/// `style.css`, which every language's pages share.
pub fn stylesheet(site: &Site) -> Output {
    Output {
        path: "style.css".into(),
        bytes: html::stylesheet(site),
    }
}

/// [`render`] in `site`'s language alone, without the stylesheet: a full
/// build writes one language's outputs before rendering the next.
pub fn render_language(
    site: &Site,
    corpus: &Corpus,
    plan: &Plan,
) -> Result<Rendered, templates::RenderError> {
    render_edition_in(site, corpus, plan, Part::All)
}

/// [`render_edition`] with the paths under the language's prefix.
fn render_edition_in(
    site: &Site,
    corpus: &Corpus,
    plan: &Plan,
    part: Part,
) -> Result<Rendered, templates::RenderError> {
    let prefix = site.prefix();
    let one = render_edition(site, corpus, plan, part)?;
    Ok(Rendered {
        outputs: one
            .outputs
            .into_iter()
            .map(|output| Output {
                path: format!("{prefix}{}", output.path),
                bytes: output.bytes,
            })
            .collect(),
        direct: one.direct,
        removed: one
            .removed
            .into_iter()
            .map(|path| format!("{prefix}{path}"))
            .collect(),
    })
}

/// [`render`] in one language, paths relative to its prefix.
fn render_edition(
    site: &Site,
    corpus: &Corpus,
    plan: &Plan,
    part: Part,
) -> Result<Rendered, templates::RenderError> {
    let mut rendered = Rendered::default();
    let timezone = site.timezone();

    // Which incident pages, months and component feeds to render.
    let (pages, months, components): (Vec<&Incident>, BTreeSet<(i32, u32)>, BTreeSet<&str>) =
        match plan {
            // Incident pages come from `incident_pages`, in chunks, and
            // month pages from `month_pages`, a few at a time.
            Plan::Full => (
                Vec::new(),
                BTreeSet::new(),
                site.config
                    .components
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect(),
            ),
            Plan::Clock => (Vec::new(), BTreeSet::new(), BTreeSet::new()),
            Plan::Changed { old, ids } => {
                let mut pages = Vec::new();
                let mut months = BTreeSet::new();
                let mut components = BTreeSet::new();
                for id in ids.iter() {
                    if let Some(before) = old.published_get(id) {
                        months.insert(incident_month(before, timezone));
                        components.extend(before.components.iter().map(String::as_str));
                    }
                    match corpus.published_get(id) {
                        Some(after) => {
                            months.insert(incident_month(after, timezone));
                            components.extend(after.components.iter().map(String::as_str));
                            pages.push(after.as_ref());
                        }
                        None if part.summaries() => {
                            rendered.removed.push(incident_path(id));
                            rendered.removed.push(incident_feed_path(id));
                        }
                        None => {}
                    }
                }
                // Components may have been removed from the configuration.
                components.retain(|id| site.config.component(id).is_some());
                (pages, months, components)
            }
        };

    if part.direct() {
        rendered.outputs.extend(edition_pages(site, &pages)?);
    }
    if part.direct() && !matches!(plan, Plan::Clock) {
        for &id in &components {
            let Some(component) = site.config.component(id) else {
                continue;
            };
            let entries = component_entries(corpus, id, FEED_LIMIT);
            let meta = feed::FeedMeta::component(site, component);
            let (rss, atom) = feed::rss_and_atom(site, &meta, &entries);
            rendered.outputs.push(Output {
                path: format!("components/{id}.rss"),
                bytes: rss,
            });
            rendered.outputs.push(Output {
                path: format!("components/{id}.atom"),
                bytes: atom,
            });
        }
        // The site feeds after the component feeds: a reader who sees an
        // entry in the site feed finds it in its component's feed too.
        let entries = latest_entries(corpus, |_| true, FEED_LIMIT);
        let meta = feed::FeedMeta::site(site);
        let (rss, atom) = feed::rss_and_atom(site, &meta, &entries);
        rendered.outputs.push(Output {
            path: "feed.rss".into(),
            bytes: rss,
        });
        rendered.outputs.push(Output {
            path: "feed.atom".into(),
            bytes: atom,
        });
    }
    // What looks through the whole corpus comes after the feeds.
    rendered.direct = rendered.outputs.len();
    if !part.summaries() {
        return Ok(rendered);
    }
    for (year, month) in months {
        rendered.outputs.push(Output {
            path: month_path(year, month),
            bytes: html::month(site, corpus, year, month)?,
        });
    }
    if !matches!(plan, Plan::Clock) {
        for id in &components {
            if let Some(component) = site.config.component(id) {
                rendered.outputs.push(Output {
                    path: format!("components/{id}.ics"),
                    bytes: ics::component_calendar(site, corpus, component),
                });
            }
        }
        rendered.outputs.push(Output {
            path: "maintenance.ics".into(),
            bytes: ics::calendar(site, corpus),
        });
    }
    rendered.outputs.extend(api::outputs(site, corpus));
    // The index last: it links to everything above.
    let index = html::index_outputs(site, corpus)?;
    rendered.outputs.extend(index.badges);
    rendered.outputs.push(Output {
        path: "index.txt".into(),
        bytes: index.text,
    });
    rendered.outputs.push(Output {
        path: "index.html".into(),
        bytes: index.html,
    });
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn an_update_anchor_is_what_chrono_writes() {
        let chrono = |instant: DateTime<Utc>| instant.format("u-%Y%m%dT%H%M%SZ").to_string();
        let mut instants = vec![
            Utc.with_ymd_and_hms(2026, 11, 30, 7, 5, 9).unwrap(),
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-5, 6, 7, 8, 9, 10).unwrap(),
            DateTime::UNIX_EPOCH,
        ];
        // A leap second.
        instants.push(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|day| day.and_hms_milli_opt(23, 59, 59, 1500))
                .unwrap()
                .and_utc(),
        );
        let mut instant = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap();
        while instant.year() < 2021 {
            instants.push(instant);
            instant += chrono::Duration::seconds(86_399 * 3 + 7);
        }
        for instant in instants {
            assert_eq!(update_anchor(instant), chrono(instant), "{instant:?}");
        }
        assert_eq!(
            update_anchor(Utc.with_ymd_and_hms(2026, 11, 30, 7, 5, 9).unwrap()),
            "u-20261130T070509Z"
        );
    }

    #[test]
    fn an_update_url_is_its_page_and_anchor_under_the_language() {
        let id = IncidentId::new("2026-11-30-storage").unwrap();
        let instant = Utc.with_ymd_and_hms(2026, 11, 30, 7, 5, 9).unwrap();
        let base = "https://status.example/";
        assert_eq!(
            update_url(base, &id, instant),
            "https://status.example/incidents/2026-11-30-storage.html#u-20261130T070509Z"
        );
        assert_eq!(
            update_url_under(base, "en/", &id, instant),
            "https://status.example/en/incidents/2026-11-30-storage.html#u-20261130T070509Z"
        );
        assert_eq!(
            incident_url(base, &id),
            "https://status.example/incidents/2026-11-30-storage.html"
        );
    }
}
