//! HTML pages: the index, the incident pages, the monthly archive and the
//! stylesheet, from the page templates of [`super::templates`] (built in,
//! overridable from `paths.templates`). Pure: the templates come from the
//! caller, and the date-dependent parts of the index take `site.now`.
//!
//! Every page string comes from `templates/i18n/{sv,en}.toml` or from
//! [`super::i18n`], so a page is entirely in its language: the site's, or
//! a further one, whose pages are under its code (`en/`) and show the
//! site's text of an update nobody translated, marked with its `lang`.
//! Every page links to itself in the site's other languages. The history
//! bars' arithmetic is in `history`; the subscription endpoints' pages are
//! in [`super::notice`].
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

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use minijinja::Value;
use minijinja::value::Serde;
use serde::Serialize;

use crate::corpus::Corpus;
use crate::model::{ComponentStatus, Incident, Kind, MaintenancePhase, Segment, Update};

use super::history::{self, DayView, day_views, holds_at, settled_before};
use super::templates::RenderError;
use super::{Site, i18n, incident_month, incident_path, month_path, update_anchor};

pub use super::history::HISTORY_DAYS;

/// How far back "recent history" on the index reaches.
pub const RECENT_DAYS: i64 = 14;
/// At most this many recent incidents on the index; the rest are in the
/// monthly archive. Keeps the index small on a busy site.
const RECENT_LIMIT: usize = 10;
/// Updates of an open incident shown on the index; its page has them all.
const OPEN_UPDATES: usize = 2;

// ---------------------------------------------------------------------------
// What the templates see. Field names are the templates' interface, and so
// part of what operators' overrides rely on.

/// Fields every page has.
#[derive(Serialize)]
struct Common {
    /// `lang` attribute: `sv` or `en`.
    lang: &'static str,
    /// Prefix that makes a link relative to the output root work from this
    /// page (for the stylesheet and the subscription endpoints, which every
    /// language shares): `""` at the root, `"../"` one level down.
    root: String,
    /// The same for the root of this page's language, where its index,
    /// feeds and incident pages are: `root` in the site's language,
    /// `root` and `en/` for English as a further language.
    home: String,
    /// This page in each of the site's languages, this one included;
    /// a single entry on a site in one language.
    languages: Vec<AlternateView>,
    site_title: String,
    /// The page strings of the page's language.
    t: Value,
}

/// The same page in one of the site's languages.
#[derive(Serialize)]
struct AlternateView {
    /// `sv` or `en`: for `hreflang` and `lang`.
    code: &'static str,
    /// The language's name in itself (`English`).
    name: &'static str,
    /// Relative link from this page.
    href: String,
    /// Absolute address, for `<link rel="alternate" hreflang>`.
    url: String,
    /// Whether this is the page itself.
    current: bool,
}

#[derive(Serialize)]
struct TimeView {
    /// RFC 3339, for `<time datetime>`.
    iso: String,
    /// Local time in the site's zone, zone named.
    text: String,
}

#[derive(Serialize)]
struct ComponentStatusView<'a> {
    name: &'a str,
    status: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct UpdateView<'a> {
    anchor: String,
    /// Link to the update on its incident page.
    href: String,
    status: &'static str,
    status_label: &'static str,
    time: TimeView,
    body_html: Cow<'a, str>,
    /// The language of the text when it is not the page's (an update
    /// without a translation), for its `lang` attribute.
    body_lang: Option<&'static str>,
    /// The update's Markdown as written, for `index.txt`.
    body: &'a str,
    /// The update's `components:` line, if any.
    components: Vec<ComponentStatusView<'a>>,
}

#[derive(Serialize)]
struct WindowView {
    starts: TimeView,
    ends: TimeView,
}

/// One line of an incident list (recent history, monthly archive).
#[derive(Serialize)]
struct SummaryView<'a> {
    href: String,
    title: &'a str,
    kind: &'static str,
    /// The latest update's status.
    status: &'static str,
    status_label: &'static str,
    began: TimeView,
    components: Vec<&'a str>,
}

#[derive(Serialize)]
struct OpenView<'a> {
    href: String,
    title: &'a str,
    components: Vec<&'a str>,
    /// Newest first, at most [`OPEN_UPDATES`].
    updates: Vec<UpdateView<'a>>,
    update_count: usize,
    /// Whether the incident has more updates than shown.
    more: bool,
}

#[derive(Serialize)]
struct MaintenanceView<'a> {
    href: String,
    title: &'a str,
    /// `ongoing` or `upcoming`.
    phase: &'static str,
    starts: TimeView,
    ends: TimeView,
    components: Vec<&'a str>,
    latest: UpdateView<'a>,
}

#[derive(Serialize)]
struct ComponentView {
    id: String,
    name: String,
    status: &'static str,
    status_label: &'static str,
    /// Uptime over 30 and 90 days, as text (`99.95 %`).
    uptime_30: String,
    uptime_90: String,
    /// Oldest first, the last one is today.
    days: Vec<DayView>,
}

#[derive(Serialize)]
struct GroupView {
    /// The group as the configuration names it in the site's language.
    #[serde(skip)]
    key: Option<String>,
    /// Its name in the page's language; `None` for components outside any
    /// group.
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
struct TimelineView<'a> {
    name: &'a str,
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
struct IndexPage<'a> {
    #[serde(flatten)]
    common: Common,
    /// The worst current status of all components: picks `t.banner[...]`.
    overall: &'static str,
    groups: Vec<GroupView>,
    /// Latest update first.
    open: Vec<OpenView<'a>>,
    /// Ongoing first, then upcoming by start.
    maintenance: Vec<MaintenanceView<'a>>,
    recent: Vec<SummaryView<'a>>,
    recent_more: usize,
    /// Archive months with incidents, newest first.
    months: Vec<LinkView>,
    /// Components for the subscribe form, when `[http]` is configured.
    subscribe: Vec<SubscribeView>,
    calendar: CalendarView,
    /// Every component status, best first, for the colour key.
    statuses: Vec<StatusKeyView>,
    /// `[site] base_url`, for the plain-text page's links.
    base_url: String,
    /// The site's badge, then each component's.
    badges: Vec<super::badge::BadgeView>,
}

/// The index page in HTML and as plain text (`index.txt`), and the status
/// badges, all from one look at the corpus.
pub struct IndexOutputs {
    pub html: Vec<u8>,
    pub text: Vec<u8>,
    pub badges: Vec<super::Output>,
}

#[derive(Serialize)]
struct IncidentPage<'a> {
    #[serde(flatten)]
    common: Common,
    id: String,
    /// Whether to offer following just this incident by email: with
    /// `[http]`, while it is not closed.
    follow: bool,
    title: &'a str,
    kind: &'static str,
    status: &'static str,
    status_label: &'static str,
    components: Vec<&'a str>,
    /// Per affected component, in the incident's order.
    timeline: Vec<TimelineView<'a>>,
    window: Option<WindowView>,
    began: Option<TimeView>,
    /// When a closed incident closed, and how long it lasted.
    closed: Option<ClosedView>,
    summary_html: String,
    /// The summary's language when it is not the page's.
    summary_lang: Option<&'static str>,
    /// Newest first.
    updates: Vec<UpdateView<'a>>,
    month: Option<LinkView>,
}

#[derive(Serialize)]
struct ClosedView {
    /// `Löst` / `Resolved` (`Slutfört` / `Completed` for maintenance).
    label: &'static str,
    time: TimeView,
    /// `4 dagar 11 timmar` / `4 days 11 hours`.
    lasted: String,
}

#[derive(Serialize)]
struct MonthPage<'a> {
    #[serde(flatten)]
    common: Common,
    year: i32,
    month: u32,
    month_label: String,
    /// Newest first.
    incidents: Vec<SummaryView<'a>>,
}

// ---------------------------------------------------------------------------
// Pages.

pub fn index(site: &Site, corpus: &Corpus) -> Result<Vec<u8>, RenderError> {
    index_outputs(site, corpus).map(|outputs| outputs.html)
}

/// The index page, `index.txt` and the badges.
pub fn index_outputs(site: &Site, corpus: &Corpus) -> Result<IndexOutputs, RenderError> {
    let language = site.language();
    let timezone = site.timezone();
    let now = site.now;
    let home = "";
    let page = "index.html";

    let days = history::days(timezone, now);
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

    let uptime: std::collections::HashMap<String, super::api::uptime::Uptime> =
        super::api::uptime::per_component(site, corpus)
            .into_iter()
            .collect();
    let mut badges: Vec<(super::badge::BadgeView, ComponentStatus)> = Vec::new();
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
        let percent = |pick: fn(&super::api::uptime::Uptime) -> f64| {
            uptime
                .get(&component.id)
                .map(|uptime| i18n::percent(language, pick(uptime)))
                .unwrap_or_default()
        };
        badges.push((
            super::badge::view(
                site,
                site.component_name(&component.id),
                &format!("components/{}.svg", component.id),
                i18n::component_status_label(language, current),
            ),
            current,
        ));
        let view = ComponentView {
            id: component.id.clone(),
            name: site.component_name(&component.id).to_owned(),
            status: current.as_str(),
            status_label: i18n::component_status_label(language, current),
            uptime_30: percent(|uptime| uptime.days_30),
            uptime_90: percent(|uptime| uptime.days_90),
            days: day_views(site, home, &days, &held, &relevant),
        };
        let group_at = component.group.as_ref().and_then(|name| {
            groups
                .iter()
                .position(|group| group.key.as_ref() == Some(name))
        });
        // Consecutive ungrouped components share one unnamed group.
        let group_at = group_at.or_else(|| {
            let last = groups.len().checked_sub(1)?;
            (component.group.is_none() && groups[last].key.is_none()).then_some(last)
        });
        match group_at.and_then(|at| groups.get_mut(at)) {
            Some(group) => {
                group.worst = group.worst.max(current);
                group.components.push(view);
            }
            None => groups.push(GroupView {
                key: component.group.clone(),
                name: component.group_in(language).map(str::to_owned),
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
            href: format!("{home}{}", incident_path(&known.incident.id)),
            title: site.title(known.incident),
            components: component_names(site, known.incident),
            updates: known
                .updates
                .iter()
                .rev()
                .take(OPEN_UPDATES)
                .map(|update| update_view(site, home, known.incident, update))
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
                href: format!("{home}{}", incident_path(&known.incident.id)),
                title: site.title(known.incident),
                phase: match phase {
                    MaintenancePhase::Ongoing => "ongoing",
                    _ => "upcoming",
                },
                starts: time_view(site, window.starts),
                ends: time_view(site, window.ends),
                components: component_names(site, known.incident),
                latest: update_view(site, home, known.incident, known.latest),
            })
        })
        .collect();

    // The last 14 days: every incident of the fortnight, the ones still
    // open (shown above too) included, so that the section never says
    // "none" beneath an ongoing incident; maintenance not over yet is
    // shown above only.
    let recent_start = now
        .checked_sub_signed(TimeDelta::days(RECENT_DAYS))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let in_recent = |instant: DateTime<Utc>| recent_start <= instant && instant <= now;
    let mut recent: Vec<&Known> = known
        .iter()
        .filter(|known| {
            !matches!(
                known.incident.maintenance_phase(now),
                Some(MaintenancePhase::Ongoing | MaintenancePhase::Upcoming)
            )
        })
        .filter(|known| {
            // An incident still open counts, however long ago it began.
            known.is_open()
                || in_recent(known.incident.began())
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
        .map(|known| summary_view(site, home, known.incident, known.latest))
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
            href: format!("{home}{}", month_path(year, month)),
            label: i18n::month_title(language, year, month),
        })
        .collect();

    let subscribe = if site.config.http.is_some() {
        site.config
            .components
            .iter()
            .map(|component| SubscribeView {
                id: component.id.clone(),
                name: site.component_name(&component.id).to_owned(),
            })
            .collect()
    } else {
        Vec::new()
    };

    badges.insert(
        0,
        (
            super::badge::view(
                site,
                site.site_title(),
                "badge.svg",
                i18n::component_status_label(language, overall),
            ),
            overall,
        ),
    );
    let badge_outputs = badges
        .iter()
        .enumerate()
        .map(|(at, (view, status))| super::Output {
            path: view.path.clone(),
            bytes: super::badge::badge(
                if at == 0 { "status" } else { &view.name },
                i18n::component_status_label(language, *status),
                *status,
            ),
        })
        .collect();
    let page = IndexPage {
        common: common(site, page),
        overall: overall.as_str(),
        groups,
        open,
        maintenance,
        recent,
        recent_more,
        months,
        subscribe,
        calendar: calendar_view(site, home),
        statuses: ComponentStatus::ALL
            .into_iter()
            .map(|status| StatusKeyView {
                status: status.as_str(),
                label: i18n::component_status_label(language, status),
            })
            .collect(),
        base_url: site.base_url(),
        badges: badges.into_iter().map(|(view, _)| view).collect(),
    };
    let context = Value::from(Serde(&page));
    Ok(IndexOutputs {
        html: site
            .templates
            .render("index.html", context.clone())?
            .into_bytes(),
        text: super::text::plain_text(&site.templates.render("index.txt", context)?).into_bytes(),
        badges: badge_outputs,
    })
}

pub fn incident(site: &Site, incident: &Incident) -> Result<Vec<u8>, RenderError> {
    let bodies: Vec<String> = incident
        .updates
        .iter()
        .map(|update| site.text(update).html())
        .collect();
    incident_with_bodies(site, incident, &bodies)
}

/// [`incident`], `bodies` holding each update's text as HTML in the order
/// of its updates: rendered once for the page and its feed.
pub fn incident_with_bodies(
    site: &Site,
    incident: &Incident,
    bodies: &[String],
) -> Result<Vec<u8>, RenderError> {
    let language = site.language();
    let home = "../";
    let page = incident_path(&incident.id);
    let summary = site.summary(incident);
    let latest = incident.updates.last();
    let status = latest.map(|update| update.status);
    let page = IncidentPage {
        common: common(site, &page),
        id: incident.id.to_string(),
        follow: site.config.http.is_some() && incident.closed_at().is_none(),
        title: site.title(incident),
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
        closed: incident.closed_at().map(|closed| ClosedView {
            label: i18n::status_label(language, incident.latest_update().status),
            time: time_view(site, closed),
            lasted: i18n::duration(language, closed.signed_duration_since(incident.began())),
        }),
        summary_html: summary.html(),
        summary_lang: (summary.language != language).then(|| summary.language.code()),
        updates: incident
            .updates
            .iter()
            .zip(bodies)
            .rev()
            .map(|(update, body)| {
                update_view_with(site, home, incident, update, Cow::Borrowed(body))
            })
            .collect(),
        month: (!incident.updates.is_empty()).then(|| {
            let (year, month) = incident_month(incident, site.timezone());
            LinkView {
                href: format!("{home}{}", month_path(year, month)),
                label: i18n::month_title(language, year, month),
            }
        }),
    };
    site.templates
        .render("incident.html", Value::from(Serde(&page)))
        .map(String::into_bytes)
}

pub fn month(site: &Site, corpus: &Corpus, year: i32, month: u32) -> Result<Vec<u8>, RenderError> {
    let timezone = site.timezone();
    let incidents: Vec<&Incident> = corpus
        .published()
        .map(AsRef::as_ref)
        .filter(|incident| {
            !incident.updates.is_empty() && incident_month(incident, timezone) == (year, month)
        })
        .collect();
    month_of(site, year, month, incidents)
}

/// [`month`], given the published incidents with updates that began in
/// it (in any order): a full build sorts the corpus into its months once.
pub fn month_of(
    site: &Site,
    year: i32,
    month: u32,
    mut incidents: Vec<&Incident>,
) -> Result<Vec<u8>, RenderError> {
    let language = site.language();
    let home = "../";
    let page = month_path(year, month);
    incidents.sort_by(|a, b| b.began().cmp(&a.began()).then_with(|| a.id.cmp(&b.id)));
    let page = MonthPage {
        common: common(site, &page),
        year,
        month,
        month_label: i18n::month_title(language, year, month),
        incidents: incidents
            .into_iter()
            .filter_map(|incident| {
                let latest = incident.updates.last()?;
                Some(summary_view(site, home, incident, latest))
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

/// What every page has; `page` is its path below its language's root.
fn common(site: &Site, page: &str) -> Common {
    let language = site.language();
    let languages = &site.config.site.languages;
    let home = "../".repeat(page.matches('/').count());
    let root = format!("{home}{}", "../".repeat(site.prefix().matches('/').count()));
    Common {
        lang: language.code(),
        languages: languages
            .all()
            .iter()
            .map(|other| {
                let prefix = languages.prefix(*other);
                AlternateView {
                    code: other.code(),
                    name: other.autonym(),
                    href: format!("{root}{prefix}{page}"),
                    url: format!("{}{prefix}{page}", site.config.site.base_url),
                    current: *other == language,
                }
            })
            .collect(),
        root,
        home,
        site_title: site.site_title().to_owned(),
        t: site.templates.strings(language),
    }
}

fn time_view(site: &Site, instant: DateTime<Utc>) -> TimeView {
    TimeView {
        iso: instant.to_rfc3339_opts(SecondsFormat::Secs, true),
        text: i18n::date_time(site.language(), instant, site.timezone()),
    }
}

fn component_names<'a>(site: &Site<'a>, incident: &'a Incident) -> Vec<&'a str> {
    incident
        .components
        .iter()
        .map(|id| site.component_name(id))
        .collect()
}

fn update_view<'a>(
    site: &Site<'a>,
    home: &str,
    incident: &'a Incident,
    update: &'a Update,
) -> UpdateView<'a> {
    let body_html = Cow::Owned(site.text(update).html());
    update_view_with(site, home, incident, update, body_html)
}

/// [`update_view`] of an update whose text is already HTML.
fn update_view_with<'a>(
    site: &Site<'a>,
    home: &str,
    incident: &Incident,
    update: &'a Update,
    body_html: Cow<'a, str>,
) -> UpdateView<'a> {
    let language = site.language();
    let anchor = update_anchor(update.instant);
    let text = site.text(update);
    UpdateView {
        href: format!("{home}{}#{anchor}", incident_path(&incident.id)),
        anchor,
        status: update.status.as_str(),
        status_label: i18n::status_label(language, update.status),
        time: time_view(site, update.instant),
        body_html,
        body_lang: (text.language != language).then(|| text.language.code()),
        body: text.markdown.trim(),
        components: update
            .component_statuses
            .iter()
            .map(|(id, status)| ComponentStatusView {
                name: site.component_name(id),
                status: status.as_str(),
                label: i18n::component_status_label(language, *status),
            })
            .collect(),
    }
}

fn calendar_view(site: &Site, home: &str) -> CalendarView {
    let url = format!("{}maintenance.ics", site.base_url());
    // `base_url` is validated to start with one of these.
    let webcal = match url.split_once("://") {
        Some((_, rest)) => format!("webcal://{rest}"),
        None => url.clone(),
    };
    CalendarView {
        href: format!("{home}maintenance.ics"),
        url,
        webcal,
    }
}

/// Each affected component's status changes during `incident`: when the
/// incident began to hold it at a status, moved it to another, and let it
/// go (back to operational).
fn timeline_views<'a>(site: &Site<'a>, incident: &'a Incident) -> Vec<TimelineView<'a>> {
    let language = site.language();
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
                name: site.component_name(id),
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
fn summary_view<'a>(
    site: &Site<'a>,
    home: &str,
    incident: &'a Incident,
    latest: &Update,
) -> SummaryView<'a> {
    let language = site.language();
    let status = latest.status;
    SummaryView {
        href: format!("{home}{}", incident_path(&incident.id)),
        title: site.title(incident),
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
