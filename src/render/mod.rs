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
pub mod templates;
mod text;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use crate::config::Config;
use crate::corpus::Corpus;
use crate::model::{Incident, IncidentId, Update};

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

/// Everything a renderer needs besides the corpus.
pub struct Site<'a> {
    pub config: &'a Config,
    pub templates: &'a Templates,
    pub revisions: &'a Revisions,
    pub moves: &'a Moves,
    /// The instant "now" for date-dependent pages (90-day bars, which
    /// maintenance is ongoing). Feeds never use it.
    pub now: DateTime<Utc>,
}

impl Site<'_> {
    pub fn timezone(&self) -> Tz {
        self.config.site.timezone
    }

    pub fn base_url(&self) -> &str {
        &self.config.site.base_url
    }

    /// The instant shown as an entry's last change.
    pub fn edited(&self, incident: &Incident, update: &Update) -> DateTime<Utc> {
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
    instant.format("u-%Y%m%dT%H%M%SZ").to_string()
}

pub fn incident_path(id: &IncidentId) -> String {
    format!("incidents/{id}.html")
}

/// One incident's Atom feed, beside its page.
pub fn incident_feed_path(id: &IncidentId) -> String {
    format!("incidents/{id}.atom")
}

pub fn incident_url(base_url: &str, id: &IncidentId) -> String {
    format!("{base_url}{}", incident_path(id))
}

/// The link and the stable id of an update's feed entries.
pub fn update_url(base_url: &str, id: &IncidentId, instant: DateTime<Utc>) -> String {
    format!("{}#{}", incident_url(base_url, id), update_anchor(instant))
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
/// full build of a large site never holds every page in memory.
pub const PAGE_CHUNK: usize = 256;

/// The pages of `incidents`, each followed by its Atom feed. With
/// [`Plan::Full`], [`render`] leaves these out so that the caller can
/// render and write them [`PAGE_CHUNK`] at a time.
pub fn incident_pages(
    site: &Site,
    incidents: &[&Incident],
) -> Result<Vec<Output>, templates::RenderError> {
    let mut outputs = Vec::with_capacity(incidents.len() * 2);
    for incident in incidents {
        outputs.push(Output {
            path: incident_path(&incident.id),
            bytes: html::incident(site, incident)?,
        });
        outputs.push(incident_feed(site, incident));
    }
    Ok(outputs)
}

/// `incidents/ID.atom`: every update of one incident, newest first.
fn incident_feed(site: &Site, incident: &Incident) -> Output {
    let mut entries: Vec<Entry> = incident
        .updates
        .iter()
        .map(|update| Entry { incident, update })
        .collect();
    entries.reverse();
    entries.truncate(FEED_LIMIT);
    let meta = feed::FeedMeta::incident(site, incident);
    Output {
        path: incident_feed_path(&incident.id),
        bytes: feed::atom(site, &meta, &entries),
    }
}

/// Renders what `plan` asks for (for [`Plan::Full`], all but the incident
/// pages: see [`incident_pages`]).
pub fn render(
    site: &Site,
    corpus: &Corpus,
    plan: &Plan,
) -> Result<Rendered, templates::RenderError> {
    let mut rendered = Rendered::default();
    let timezone = site.timezone();

    // Which incident pages, months and component feeds to render.
    let (pages, months, components): (Vec<&Incident>, BTreeSet<(i32, u32)>, BTreeSet<&str>) =
        match plan {
            // Incident pages come from `incident_pages`, in chunks.
            Plan::Full => (
                Vec::new(),
                corpus
                    .published()
                    .map(|i| incident_month(i, timezone))
                    .collect(),
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
                        None => {
                            rendered.removed.push(incident_path(id));
                            rendered.removed.push(incident_feed_path(id));
                        }
                    }
                }
                // Components may have been removed from the configuration.
                components.retain(|id| site.config.component(id).is_some());
                (pages, months, components)
            }
        };

    rendered.outputs.extend(incident_pages(site, &pages)?);
    for (year, month) in months {
        rendered.outputs.push(Output {
            path: month_path(year, month),
            bytes: html::month(site, corpus, year, month)?,
        });
    }
    if !matches!(plan, Plan::Clock) {
        for id in components {
            let Some(component) = site.config.component(id) else {
                continue;
            };
            let entries = component_entries(corpus, id, FEED_LIMIT);
            let meta = feed::FeedMeta::component(site, component);
            rendered.outputs.push(Output {
                path: format!("components/{id}.rss"),
                bytes: feed::rss(site, &meta, &entries),
            });
            rendered.outputs.push(Output {
                path: format!("components/{id}.atom"),
                bytes: feed::atom(site, &meta, &entries),
            });
            rendered.outputs.push(Output {
                path: format!("components/{id}.ics"),
                bytes: ics::component_calendar(site, corpus, component),
            });
        }
        // The site feeds after the component feeds: a reader who sees an
        // entry in the site feed finds it in its component's feed too.
        let entries = latest_entries(corpus, |_| true, FEED_LIMIT);
        let meta = feed::FeedMeta::site(site);
        rendered.outputs.push(Output {
            path: "feed.rss".into(),
            bytes: feed::rss(site, &meta, &entries),
        });
        rendered.outputs.push(Output {
            path: "feed.atom".into(),
            bytes: feed::atom(site, &meta, &entries),
        });
        rendered.outputs.push(Output {
            path: "maintenance.ics".into(),
            bytes: ics::calendar(site, corpus),
        });
    }
    if matches!(plan, Plan::Full) {
        rendered.outputs.push(Output {
            path: "style.css".into(),
            bytes: html::stylesheet(site),
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
