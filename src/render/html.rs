//! HTML pages from minijinja templates: built in, overridable from
//! `paths.templates`. Pure: override texts are passed in by the caller, and
//! the date-dependent parts of the index take `site.now`.
//!
//! The built-in templates and the per-language page strings live in
//! `templates/` and are compiled into the binary. Every page string comes
//! from `templates/i18n/{sv,en}.toml` or from [`super::i18n`], so a page is
//! entirely in the site's language.
//!
//! Only the index depends on `now` (the 90-day bars, open incidents,
//! maintenance phases, the last 14 days). Incident and month pages do not,
//! because the driver re-renders them only when their incidents change;
//! an incident page's "status over time" table is its components' status
//! changes from [`Incident::timeline`], which depend on the file alone.
//!
//! The pages use no JavaScript. What would need it elsewhere is CSS here:
//! on a narrow screen the stylesheet hides the first 60 of the 90 bar
//! cells, and a day's incidents are reached through its cell's link
//! rather than only through a tooltip.

use std::collections::BTreeSet;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, SecondsFormat, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::Value;
use minijinja::value::Serde;
use serde::Serialize;

use crate::corpus::Corpus;
use crate::model::{ComponentStatus, Incident, Kind, MaintenancePhase, Segment, Update};

use super::templates::RenderError;
use super::{Site, i18n, incident_month, incident_path, month_path, update_anchor};

/// Days in a component's history bar, today included.
pub const HISTORY_DAYS: usize = 90;
/// How far back "recent history" on the index reaches.
pub const RECENT_DAYS: i64 = 14;
/// At most this many recent incidents on the index; the rest are in the
/// monthly archive. Keeps the index small on a busy site.
const RECENT_LIMIT: usize = 10;
/// Updates of an open incident shown on the index; its page has them all.
const OPEN_UPDATES: usize = 2;
/// Incident titles named in one day's tooltip; more are counted.
const DAY_TITLES: usize = 1;
/// A day's label keeps this many characters of an incident title: 450 cells
/// on a busy site must still fit the index in 100 KB.
const DAY_TITLE_CHARS: usize = 40;

/// `text` cut to at most `limit` characters, with `…` when cut.
fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
    }
}

// ---------------------------------------------------------------------------
// What the templates see. Field names are the templates' interface, and so
// part of what operators' overrides rely on.

/// Fields every page has.
#[derive(Serialize)]
struct Common {
    /// `lang` attribute: `sv` or `en`.
    lang: &'static str,
    /// Prefix that makes a link relative to the output root work from this
    /// page: `""` at the root, `"../"` one level down.
    root: &'static str,
    site_title: String,
    /// The page strings of the site's language.
    t: Value,
}

#[derive(Serialize)]
struct TimeView {
    /// RFC 3339, for `<time datetime>`.
    iso: String,
    /// Local time in the site's zone, zone named.
    text: String,
}

#[derive(Serialize)]
struct ComponentStatusView {
    name: String,
    status: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct UpdateView {
    anchor: String,
    /// Link to the update on its incident page.
    href: String,
    status: &'static str,
    status_label: &'static str,
    time: TimeView,
    body_html: String,
    /// The update's `components:` line, if any.
    components: Vec<ComponentStatusView>,
}

#[derive(Serialize)]
struct WindowView {
    starts: TimeView,
    ends: TimeView,
}

/// One line of an incident list (recent history, monthly archive).
#[derive(Serialize)]
struct SummaryView {
    href: String,
    title: String,
    kind: &'static str,
    /// The latest update's status.
    status: &'static str,
    status_label: &'static str,
    began: TimeView,
    components: Vec<String>,
}

#[derive(Serialize)]
struct OpenView {
    href: String,
    title: String,
    components: Vec<String>,
    /// Newest first, at most [`OPEN_UPDATES`].
    updates: Vec<UpdateView>,
    update_count: usize,
    /// Whether the incident has more updates than shown.
    more: bool,
}

#[derive(Serialize)]
struct MaintenanceView {
    href: String,
    title: String,
    /// `ongoing` or `upcoming`.
    phase: &'static str,
    starts: TimeView,
    ends: TimeView,
    components: Vec<String>,
    latest: UpdateView,
}

#[derive(Serialize)]
struct DayView {
    /// The worst status of the day.
    status: &'static str,
    label: &'static str,
    /// The local date, written out.
    date: String,
    /// Titles of the incidents that held the component that day, at most
    /// [`DAY_TITLES`].
    incidents: Vec<String>,
    /// How many more incidents than named.
    more: usize,
    /// The page of the incident that made the day worst (the earliest of
    /// equals), so that a tap on a cell leads somewhere on a phone, where
    /// there are no tooltips.
    href: Option<String>,
}

#[derive(Serialize)]
struct ComponentView {
    id: String,
    name: String,
    status: &'static str,
    status_label: &'static str,
    /// Oldest first, the last one is today.
    days: Vec<DayView>,
}

#[derive(Serialize)]
struct GroupView {
    /// `None` for components outside any group.
    name: Option<String>,
    #[serde(skip)]
    worst: ComponentStatus,
    /// The worst current status of its components.
    status: &'static str,
    status_label: &'static str,
    components: Vec<ComponentView>,
}

#[derive(Serialize)]
struct LinkView {
    href: String,
    label: String,
}

/// The maintenance calendar: a download link, and the same address for
/// calendar apps to subscribe to.
#[derive(Serialize)]
struct CalendarView {
    /// Relative link to `maintenance.ics`.
    href: String,
    /// Absolute `https://` address, for pasting into a calendar app.
    url: String,
    /// The same address as `webcal://`, which calendar apps open as a
    /// subscription rather than a one-off import.
    webcal: String,
}

/// One status a component can have, for the colour key.
#[derive(Serialize)]
struct StatusKeyView {
    status: &'static str,
    label: &'static str,
}

/// A component's status changes during one incident.
#[derive(Serialize)]
struct TimelineView {
    name: String,
    /// Oldest first; empty when the incident never changed the component.
    changes: Vec<ChangeView>,
}

#[derive(Serialize)]
struct ChangeView {
    time: TimeView,
    status: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct SubscribeView {
    id: String,
    name: String,
}

#[derive(Serialize)]
struct IndexPage {
    #[serde(flatten)]
    common: Common,
    /// The worst current status of all components: picks `t.banner[...]`.
    overall: &'static str,
    groups: Vec<GroupView>,
    /// Latest update first.
    open: Vec<OpenView>,
    /// Ongoing first, then upcoming by start.
    maintenance: Vec<MaintenanceView>,
    recent: Vec<SummaryView>,
    recent_more: usize,
    /// Archive months with incidents, newest first.
    months: Vec<LinkView>,
    /// Components for the subscribe form, when `[http]` is configured.
    subscribe: Vec<SubscribeView>,
    calendar: CalendarView,
    /// Every component status, best first, for the colour key.
    statuses: Vec<StatusKeyView>,
}

#[derive(Serialize)]
struct IncidentPage {
    #[serde(flatten)]
    common: Common,
    title: String,
    kind: &'static str,
    status: &'static str,
    status_label: &'static str,
    components: Vec<String>,
    /// Per affected component, in the incident's order.
    timeline: Vec<TimelineView>,
    window: Option<WindowView>,
    began: Option<TimeView>,
    summary_html: String,
    /// Newest first.
    updates: Vec<UpdateView>,
    month: Option<LinkView>,
}

#[derive(Serialize)]
struct MonthPage {
    #[serde(flatten)]
    common: Common,
    year: i32,
    month: u32,
    month_label: String,
    /// Newest first.
    incidents: Vec<SummaryView>,
}

// ---------------------------------------------------------------------------
// Pages.

pub fn index(site: &Site, corpus: &Corpus) -> Result<Vec<u8>, RenderError> {
    let language = site.config.site.language;
    let timezone = site.timezone();
    let now = site.now;
    let root = "";

    let days = history_days(timezone, now);
    let window_start = days.first().map_or(now, |day| day.start);

    // Only incidents that can hold a component at some instant of the bar
    // window matter for the bars and the current statuses; on a long
    // history that is a small fraction, and computing a timeline is the costly part.
    let mut relevant: Vec<&Incident> = corpus
        .published()
        .map(AsRef::as_ref)
        .filter(|incident| !incident.updates.is_empty() && !settled_before(incident, window_start))
        .collect();
    relevant.sort_by(|a, b| a.began().cmp(&b.began()).then_with(|| a.id.cmp(&b.id)));
    let segments: Vec<_> = relevant
        .iter()
        .map(|incident| incident.timeline())
        .collect();

    let mut groups: Vec<GroupView> = Vec::new();
    let mut overall = ComponentStatus::Operational;
    for component in &site.config.components {
        let held: Vec<(usize, &Segment)> = segments
            .iter()
            .enumerate()
            .flat_map(|(at, map)| {
                map.get(component.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(move |segment| (at, segment))
            })
            .collect();
        let current = held
            .iter()
            .filter(|(_, segment)| holds_at(segment, now))
            .map(|(_, segment)| segment.status)
            .max()
            .unwrap_or(ComponentStatus::Operational);
        overall = overall.max(current);
        let view = ComponentView {
            id: component.id.clone(),
            name: component.name.clone(),
            status: current.as_str(),
            status_label: i18n::component_status_label(language, current),
            days: day_views(site, root, &days, &held, &relevant),
        };
        let group_at = component.group.as_ref().and_then(|name| {
            groups
                .iter()
                .position(|group| group.name.as_ref() == Some(name))
        });
        // Consecutive ungrouped components share one unnamed group.
        let group_at = group_at.or_else(|| {
            let last = groups.len().checked_sub(1)?;
            (component.group.is_none() && groups[last].name.is_none()).then_some(last)
        });
        match group_at.and_then(|at| groups.get_mut(at)) {
            Some(group) => {
                group.worst = group.worst.max(current);
                group.components.push(view);
            }
            None => groups.push(GroupView {
                name: component.group.clone(),
                worst: current,
                status: "",
                status_label: "",
                components: vec![view],
            }),
        }
    }
    for group in &mut groups {
        group.status = group.worst.as_str();
        group.status_label = i18n::component_status_label(language, group.worst);
    }

    // The lists show the incidents as they stood at `now`: an update dated
    // later is not known yet (this is what makes a page rendered for an
    // instant in the past, or with a mistyped future date, consistent with
    // its banner and bars, which only count what held at `now`).
    let known: Vec<Known> = corpus
        .published()
        .filter_map(|incident| Known::at(incident, now))
        .collect();

    let mut open: Vec<&Known> = known.iter().filter(|known| known.is_open()).collect();
    open.sort_by(|a, b| {
        b.latest
            .instant
            .cmp(&a.latest.instant)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
    let open: Vec<OpenView> = open
        .into_iter()
        .map(|known| OpenView {
            href: format!("{root}{}", incident_path(&known.incident.id)),
            title: known.incident.title.clone(),
            components: component_names(site, known.incident),
            updates: known
                .updates
                .iter()
                .rev()
                .take(OPEN_UPDATES)
                .map(|update| update_view(site, root, known.incident, update))
                .collect(),
            update_count: known.updates.len(),
            more: known.updates.len() > OPEN_UPDATES,
        })
        .collect();

    let mut maintenance: Vec<(MaintenancePhase, &Known)> = known
        .iter()
        .filter_map(|known| match known.incident.maintenance_phase(now) {
            Some(phase @ (MaintenancePhase::Ongoing | MaintenancePhase::Upcoming)) => {
                Some((phase, known))
            }
            _ => None,
        })
        .collect();
    maintenance.sort_by(|(phase_a, a), (phase_b, b)| {
        let rank = |phase: &MaintenancePhase| u8::from(*phase != MaintenancePhase::Ongoing);
        rank(phase_a)
            .cmp(&rank(phase_b))
            .then_with(|| window_starts(a.incident).cmp(&window_starts(b.incident)))
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
    let maintenance: Vec<MaintenanceView> = maintenance
        .into_iter()
        .filter_map(|(phase, known)| {
            let window = known.incident.window?;
            Some(MaintenanceView {
                href: format!("{root}{}", incident_path(&known.incident.id)),
                title: known.incident.title.clone(),
                phase: match phase {
                    MaintenancePhase::Ongoing => "ongoing",
                    _ => "upcoming",
                },
                starts: time_view(site, window.starts),
                ends: time_view(site, window.ends),
                components: component_names(site, known.incident),
                latest: update_view(site, root, known.incident, known.latest),
            })
        })
        .collect();

    // The last 14 days: what is not already shown above as open or as
    // ongoing or upcoming maintenance.
    let recent_start = now
        .checked_sub_signed(TimeDelta::days(RECENT_DAYS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let in_recent = |instant: DateTime<Utc>| recent_start <= instant && instant <= now;
    let mut recent: Vec<&Known> = known
        .iter()
        .filter(|known| {
            !known.is_open()
                && !matches!(
                    known.incident.maintenance_phase(now),
                    Some(MaintenancePhase::Ongoing | MaintenancePhase::Upcoming)
                )
        })
        .filter(|known| {
            in_recent(known.incident.began())
                || known.updates.iter().any(|update| in_recent(update.instant))
                || known
                    .incident
                    .window
                    .is_some_and(|window| in_recent(window.starts) || in_recent(window.ends))
        })
        .collect();
    recent.sort_by(|a, b| {
        b.latest
            .instant
            .cmp(&a.latest.instant)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
    let recent_more = recent.len().saturating_sub(RECENT_LIMIT);
    let recent: Vec<SummaryView> = recent
        .into_iter()
        .take(RECENT_LIMIT)
        .map(|known| summary_view(site, root, known.incident, known.latest))
        .collect();

    let months: BTreeSet<(i32, u32)> = corpus
        .published()
        .filter(|incident| !incident.updates.is_empty())
        .map(|incident| incident_month(incident, timezone))
        .collect();
    let months: Vec<LinkView> = months
        .into_iter()
        .rev()
        .map(|(year, month)| LinkView {
            href: format!("{root}{}", month_path(year, month)),
            label: i18n::month_title(language, year, month),
        })
        .collect();

    let subscribe = if site.config.http.is_some() {
        site.config
            .components
            .iter()
            .map(|component| SubscribeView {
                id: component.id.clone(),
                name: component.name.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };

    let page = IndexPage {
        common: common(site, root),
        overall: overall.as_str(),
        groups,
        open,
        maintenance,
        recent,
        recent_more,
        months,
        subscribe,
        calendar: calendar_view(site, root),
        statuses: ComponentStatus::ALL
            .into_iter()
            .map(|status| StatusKeyView {
                status: status.as_str(),
                label: i18n::component_status_label(language, status),
            })
            .collect(),
    };
    site.templates
        .render("index.html", Value::from(Serde(&page)))
        .map(String::into_bytes)
}

pub fn incident(site: &Site, incident: &Incident) -> Result<Vec<u8>, RenderError> {
    let language = site.config.site.language;
    let root = "../";
    let latest = incident.updates.last();
    let status = latest.map(|update| update.status);
    let page = IncidentPage {
        common: common(site, root),
        title: incident.title.clone(),
        kind: incident.kind.as_str(),
        status: status.map_or("", |status| status.as_str()),
        status_label: status.map_or("", |status| i18n::status_label(language, status)),
        components: component_names(site, incident),
        timeline: timeline_views(site, incident),
        window: incident.window.map(|window| WindowView {
            starts: time_view(site, window.starts),
            ends: time_view(site, window.ends),
        }),
        began: (!incident.updates.is_empty()).then(|| time_view(site, incident.began())),
        summary_html: incident.summary_html.clone(),
        updates: incident
            .updates
            .iter()
            .rev()
            .map(|update| update_view(site, root, incident, update))
            .collect(),
        month: (!incident.updates.is_empty()).then(|| {
            let (year, month) = incident_month(incident, site.timezone());
            LinkView {
                href: format!("{root}{}", month_path(year, month)),
                label: i18n::month_title(language, year, month),
            }
        }),
    };
    site.templates
        .render("incident.html", Value::from(Serde(&page)))
        .map(String::into_bytes)
}

pub fn month(site: &Site, corpus: &Corpus, year: i32, month: u32) -> Result<Vec<u8>, RenderError> {
    let language = site.config.site.language;
    let timezone = site.timezone();
    let root = "../";
    let mut incidents: Vec<&Incident> = corpus
        .published()
        .map(AsRef::as_ref)
        .filter(|incident| {
            !incident.updates.is_empty() && incident_month(incident, timezone) == (year, month)
        })
        .collect();
    incidents.sort_by(|a, b| b.began().cmp(&a.began()).then_with(|| a.id.cmp(&b.id)));
    let page = MonthPage {
        common: common(site, root),
        year,
        month,
        month_label: i18n::month_title(language, year, month),
        incidents: incidents
            .into_iter()
            .filter_map(|incident| {
                let latest = incident.updates.last()?;
                Some(summary_view(site, root, incident, latest))
            })
            .collect(),
    };
    site.templates
        .render("month.html", Value::from(Serde(&page)))
        .map(String::into_bytes)
}

/// `style.css`: the built-in stylesheet or the operator's.
pub fn stylesheet(site: &Site) -> Vec<u8> {
    site.templates.stylesheet().as_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// Pieces.

fn common(site: &Site, root: &'static str) -> Common {
    let language = site.config.site.language;
    Common {
        lang: language.code(),
        root,
        site_title: site.config.site.title.clone(),
        t: site.templates.strings(language),
    }
}

fn time_view(site: &Site, instant: DateTime<Utc>) -> TimeView {
    TimeView {
        iso: instant.to_rfc3339_opts(SecondsFormat::Secs, true),
        text: i18n::date_time(site.config.site.language, instant, site.timezone()),
    }
}

fn component_name(site: &Site, id: &str) -> String {
    site.config
        .component(id)
        .map_or_else(|| id.to_owned(), |component| component.name.clone())
}

fn component_names(site: &Site, incident: &Incident) -> Vec<String> {
    incident
        .components
        .iter()
        .map(|id| component_name(site, id))
        .collect()
}

fn update_view(site: &Site, root: &str, incident: &Incident, update: &Update) -> UpdateView {
    let language = site.config.site.language;
    let anchor = update_anchor(update.instant);
    UpdateView {
        href: format!("{root}{}#{anchor}", incident_path(&incident.id)),
        anchor,
        status: update.status.as_str(),
        status_label: i18n::status_label(language, update.status),
        time: time_view(site, update.instant),
        body_html: update.body_html.clone(),
        components: update
            .component_statuses
            .iter()
            .map(|(id, status)| ComponentStatusView {
                name: component_name(site, id),
                status: status.as_str(),
                label: i18n::component_status_label(language, *status),
            })
            .collect(),
    }
}

fn calendar_view(site: &Site, root: &str) -> CalendarView {
    let url = format!("{}maintenance.ics", site.base_url());
    // `base_url` is validated to start with one of these.
    let webcal = match url.split_once("://") {
        Some((_, rest)) => format!("webcal://{rest}"),
        None => url.clone(),
    };
    CalendarView {
        href: format!("{root}maintenance.ics"),
        url,
        webcal,
    }
}

/// Each affected component's status changes during `incident`: when the
/// incident began to hold it at a status, moved it to another, and let it
/// go (back to operational).
fn timeline_views(site: &Site, incident: &Incident) -> Vec<TimelineView> {
    let language = site.config.site.language;
    let segments = incident.timeline();
    incident
        .components
        .iter()
        .map(|id| {
            let changes = segments
                .get(id.as_str())
                .map(|held| status_changes(held))
                .unwrap_or_default();
            TimelineView {
                name: component_name(site, id),
                changes: changes
                    .into_iter()
                    .map(|(instant, status)| ChangeView {
                        time: time_view(site, instant),
                        status: status.as_str(),
                        label: i18n::component_status_label(language, status),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The segments of one component as a list of `(instant, new status)`:
/// a segment's start, and its end where the next one does not start at
/// once. Segments of one incident and component do not overlap.
fn status_changes(segments: &[Segment]) -> Vec<(DateTime<Utc>, ComponentStatus)> {
    let mut ordered: Vec<&Segment> = segments.iter().collect();
    ordered.sort_by_key(|segment| segment.from);
    let mut changes: Vec<(DateTime<Utc>, ComponentStatus)> = Vec::new();
    let mut push = |instant: DateTime<Utc>, status: ComponentStatus| {
        if let Some(last) = changes.last_mut()
            && last.0 == instant
        {
            last.1 = status;
        } else {
            changes.push((instant, status));
        }
        // Two changes that leave the status as it was say nothing.
        let repeated = changes.len() >= 2
            && changes.get(changes.len() - 2).map(|change| change.1) == Some(status);
        if repeated {
            changes.pop();
        }
    };
    for segment in ordered {
        push(segment.from, segment.status);
        if let Some(until) = segment.until {
            push(until, ComponentStatus::Operational);
        }
    }
    changes
}

/// `latest`: the update whose status is shown as the incident's.
fn summary_view(site: &Site, root: &str, incident: &Incident, latest: &Update) -> SummaryView {
    let language = site.config.site.language;
    let status = latest.status;
    SummaryView {
        href: format!("{root}{}", incident_path(&incident.id)),
        title: incident.title.clone(),
        kind: incident.kind.as_str(),
        status: status.as_str(),
        status_label: i18n::status_label(language, status),
        began: time_view(site, incident.began()),
        components: component_names(site, incident),
    }
}

/// An incident with the updates it had at some instant; never empty.
struct Known<'a> {
    incident: &'a Incident,
    updates: &'a [Update],
    latest: &'a Update,
}

impl<'a> Known<'a> {
    /// `None` when the incident had no update yet at `now`.
    fn at(incident: &'a Incident, now: DateTime<Utc>) -> Option<Known<'a>> {
        let count = incident
            .updates
            .partition_point(|update| update.instant <= now);
        let updates = incident.updates.get(..count)?;
        let latest = updates.last()?;
        Some(Known {
            incident,
            updates,
            latest,
        })
    }

    /// Open as of then: an incident whose latest known status does not
    /// close it ([`Incident::is_open`] at that instant).
    fn is_open(&self) -> bool {
        self.incident.kind == Kind::Incident && !self.latest.status.is_closing()
    }
}

fn window_starts(incident: &Incident) -> Option<DateTime<Utc>> {
    incident.window.map(|window| window.starts)
}

fn holds_at(segment: &Segment, instant: DateTime<Utc>) -> bool {
    segment.from <= instant && segment.until.is_none_or(|until| instant < until)
}

/// Whether `incident` holds every component at operational from `start`
/// on, decided without computing its segments: nothing about it changes
/// after `start`, and what it ends with is operational. Conservative: when
/// in doubt, `false`, and the caller computes the segments.
fn settled_before(incident: &Incident, start: DateTime<Utc>) -> bool {
    let Some(latest) = incident.updates.last() else {
        return true;
    };
    let last_change = match incident.window {
        Some(window) => latest.instant.max(window.ends).max(window.starts),
        None => latest.instant,
    };
    if last_change >= start {
        return false;
    }
    let all_operational = |update: &Update| {
        update
            .component_statuses
            .iter()
            .all(|(_, status)| *status == ComponentStatus::Operational)
    };
    match incident.window {
        // A closing update returns every component to operational; only its
        // own `components:` line can leave one held.
        None => latest.status.is_closing() && all_operational(latest),
        // A maintenance ends at `ends` or at its first closing update; after
        // that only `components:` lines change anything.
        Some(window) => {
            let ended = incident
                .updates
                .iter()
                .find(|update| update.status.is_closing())
                .map_or(window.ends, |update| update.instant.min(window.ends));
            incident
                .updates
                .iter()
                .filter(|update| update.instant >= ended)
                .all(all_operational)
        }
    }
}

/// One local day of the history bar: `[start, next day's start)`.
struct Day {
    date: NaiveDate,
    start: DateTime<Utc>,
}

/// The [`HISTORY_DAYS`] local days ending with the one containing `now`,
/// oldest first.
fn history_days(timezone: Tz, now: DateTime<Utc>) -> Vec<Day> {
    let today = now.with_timezone(&timezone).date_naive();
    let back = u64::try_from(HISTORY_DAYS - 1).unwrap_or(0);
    let first = today.checked_sub_days(Days::new(back)).unwrap_or(today);
    first
        .iter_days()
        .take_while(|date| *date <= today)
        .map(|date| Day {
            date,
            start: local_day_start(timezone, date),
        })
        .collect()
}

/// The first instant of `date` in `timezone`. Where midnight does not
/// exist (a DST change at 00:00), the day starts at the first local time
/// that does.
fn local_day_start(timezone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    for minutes in (0..=24 * 60).step_by(15) {
        let Some(local) = midnight.checked_add_signed(TimeDelta::minutes(minutes)) else {
            break;
        };
        if let Some(instant) = timezone.from_local_datetime(&local).earliest() {
            return instant.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&midnight)
}

/// The history-bar cells of one component. `held` pairs the index (into
/// `incidents`) of an incident with one of its segments for the component.
fn day_views(
    site: &Site,
    root: &str,
    days: &[Day],
    held: &[(usize, &Segment)],
    incidents: &[&Incident],
) -> Vec<DayView> {
    let language = site.config.site.language;
    let timezone = site.timezone();
    let now = site.now;
    let mut worst = vec![ComponentStatus::Operational; days.len()];
    let mut named: Vec<Vec<usize>> = vec![Vec::new(); days.len()];
    let mut worst_by: Vec<Option<usize>> = vec![None; days.len()];
    let (Some(first_day), Some(last_at)) = (days.first(), days.len().checked_sub(1)) else {
        return Vec::new();
    };
    for (incident, segment) in held {
        // The bar shows what happened up to now, not what is scheduled.
        if segment.from > now || segment.until.is_some_and(|until| until <= first_day.start) {
            continue;
        }
        let first = days
            .partition_point(|day| day.start <= segment.from)
            .saturating_sub(1);
        let last = match segment.until {
            Some(until) if until <= now => days
                .partition_point(|day| day.start < until)
                .saturating_sub(1),
            _ => last_at,
        };
        for at in first..=last {
            if segment.status > worst[at] {
                worst[at] = segment.status;
                worst_by[at] = Some(*incident);
            }
            if !named[at].contains(incident) {
                named[at].push(*incident);
            }
        }
    }
    days.iter()
        .zip(worst)
        .zip(named)
        .zip(worst_by)
        .map(|(((day, status), mut named), worst_by)| {
            named.sort_unstable();
            // Name the incident the cell links to (the worst) first.
            if let Some(worst) = worst_by
                && let Some(position) = named.iter().position(|at| *at == worst)
            {
                named[..=position].rotate_right(1);
            }
            let more = named.len().saturating_sub(DAY_TITLES);
            DayView {
                status: status.as_str(),
                label: i18n::component_status_label(language, status),
                date: i18n::date(language, local_noon(timezone, day), timezone),
                incidents: named
                    .iter()
                    .take(DAY_TITLES)
                    .filter_map(|at| incidents.get(*at))
                    .map(|incident| shorten(&incident.title, DAY_TITLE_CHARS))
                    .collect(),
                more,
                href: worst_by
                    .and_then(|at| incidents.get(at))
                    .map(|incident| format!("{root}{}", incident_path(&incident.id))),
            }
        })
        .collect()
}

/// An instant inside `day`, for writing its date: midday is on the right
/// date whatever DST does at the day's edges.
fn local_noon(timezone: Tz, day: &Day) -> DateTime<Utc> {
    let noon = day
        .date
        .and_hms_opt(12, 0, 0)
        .unwrap_or(day.date.and_time(NaiveTime::MIN));
    timezone
        .from_local_datetime(&noon)
        .earliest()
        .map_or(day.start, |instant| instant.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Incident {
        let components: Vec<crate::model::Component> = ["mail", "dns"]
            .into_iter()
            .map(|id| crate::model::Component {
                id: id.into(),
                name: id.into(),
                group: None,
            })
            .collect();
        let context = crate::parse::Context {
            timezone: chrono_tz::UTC,
            components: &components,
        };
        let (incident, diagnostics) =
            crate::parse::parse_incident(std::path::Path::new("x.md"), text, &context);
        incident.unwrap_or_else(|| panic!("{diagnostics:?}"))
    }

    /// `settled_before` against the truth from `timeline()`, and against
    /// the expected answer.
    fn check_settled(text: &str, start: &str, expect: bool) {
        let incident = parse(text);
        let start = DateTime::parse_from_rfc3339(start).unwrap().to_utc();
        let held_after = incident
            .timeline()
            .values()
            .flatten()
            .any(|segment| segment.until.is_none_or(|until| until > start));
        // On these cases the cheap check is exact, not just conservative.
        assert_eq!(held_after, !expect, "segments disagree with the case");
        assert_eq!(settled_before(&incident, start), expect);
    }

    const INCIDENT: &str =
        "+++\ntitle = \"x\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n";
    const MAINTENANCE: &str = "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\nkind = \"maintenance\"\nstarts = \"2026-01-10 22:00Z\"\nends = \"2026-01-11 02:00Z\"\n+++\n";

    #[test]
    fn settled_incidents_are_skipped_and_nothing_else() {
        let resolved = format!(
            "{INCIDENT}## 2026-01-01 10:00Z investigating\nx\n## 2026-01-01 11:00Z resolved\ny\n"
        );
        check_settled(&resolved, "2026-02-01T00:00:00Z", true);
        // Resolved after the window opened: its bar cells need it.
        check_settled(&resolved, "2026-01-01T10:30:00Z", false);
        let open = format!("{INCIDENT}## 2026-01-01 10:00Z investigating\nx\n");
        check_settled(&open, "2026-02-01T00:00:00Z", false);
        // A closing update whose components line leaves mail degraded.
        let held = format!(
            "{INCIDENT}## 2026-01-01 10:00Z investigating\nx\n## 2026-01-01 11:00Z resolved\ncomponents: mail=degraded\ny\n"
        );
        check_settled(&held, "2026-02-01T00:00:00Z", false);

        let maintenance = format!("{MAINTENANCE}## 2026-01-01 10:00Z scheduled\nx\n");
        check_settled(&maintenance, "2026-02-01T00:00:00Z", true);
        check_settled(&maintenance, "2026-01-10T23:00:00Z", false);
        // After it completed, a components line holds dns degraded.
        let after = format!(
            "{MAINTENANCE}## 2026-01-01 10:00Z scheduled\nx\n## 2026-01-11 00:00Z completed\ny\n## 2026-01-11 01:00Z\ncomponents: dns=degraded\nz\n"
        );
        check_settled(&after, "2026-02-01T00:00:00Z", false);
    }

    #[test]
    fn day_starts_where_midnight_is_skipped() {
        // America/Santiago moved clocks from 00:00 to 01:00 on 2019-09-08.
        let timezone: Tz = "America/Santiago".parse().unwrap();
        let date = NaiveDate::from_ymd_opt(2019, 9, 8).unwrap();
        assert_eq!(
            local_day_start(timezone, date).to_rfc3339(),
            "2019-09-08T04:00:00+00:00"
        );
    }
}
