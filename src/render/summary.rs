//! `status.json` / `api/v2/summary.json` in the shape of Atlassian
//! Statuspage's public `summary.json`, so that status aggregators and
//! monitoring integrations that read Statuspage pages read herald's. Pure.
//!
//! The document describes the site as of `site.now`: updates dated after
//! `now` are not shown yet, and an incident with no update at or before
//! `now` is left out. Everything else comes from the data, never from the
//! clock: `page.updated_at` is the newest update, edit or component status
//! change at or before `now`, so an unchanged corpus at the same `now`
//! gives byte-identical output.
//!
//! Mapping from herald to Statuspage:
//!
//! - component statuses: `operational`, `degraded_performance`,
//!   `partial_outage`, `major_outage`, `under_maintenance`; a component's
//!   status is the worst any published incident holds it at `now`;
//! - a configured `group` becomes a component with `group: true` listing its
//!   members' ids, and the members carry its id in `group_id` (Statuspage's
//!   own model); a group shows its worst member's status;
//! - incident statuses keep their names (`investigating`, `identified`,
//!   `monitoring`, `resolved`); maintenance statuses become `scheduled`,
//!   `in_progress`, `verifying` (herald's `monitoring`) and `completed`
//!   (herald's `completed` or `resolved`), and a maintenance still marked
//!   `scheduled` once its window has opened shows `in_progress`, as
//!   Statuspage's automatic transition would;
//! - `impact` is the severity (`minor`, `major`, `critical`), or
//!   `maintenance` for a maintenance;
//! - `incidents` lists unresolved incidents, latest update first;
//!   `scheduled_maintenances` lists upcoming and ongoing maintenance,
//!   soonest first; updates are listed newest first;
//! - `status.indicator` is the worse of the worst component status and the
//!   impact of any unresolved incident (`none` < `maintenance` < `minor` <
//!   `major` < `critical`);
//! - ids are herald's: component ids, incident ids, `{incident}-{instant}`
//!   for updates (instant in UTC, `YYYYMMDDTHHMMSSZ`), `group-{name}` for
//!   groups;
//! - times are RFC 3339 with milliseconds and the offset of `site.timezone`.
//!
//! The extra top-level `schema_version` field versions this document
//! (readers of Statuspage's shape ignore unknown fields). Bump it when a
//! field changes meaning or disappears.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::corpus::Corpus;
use crate::model::{
    Component, ComponentStatus, Incident, Kind, MaintenancePhase, Segment, Severity, Status,
    Timeline, Update,
};

use super::{Site, incident_url};

/// The version of this document's schema, written as `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct RawSummary {
    page: RawPage,
    components: Vec<RawComponent>,
    incidents: Vec<RawIncident>,
    scheduled_maintenances: Vec<RawIncident>,
    status: RawStatus,
    schema_version: u32,
}

#[derive(Serialize)]
struct RawPage {
    id: String,
    name: String,
    url: String,
    time_zone: String,
    updated_at: String,
}

#[derive(Serialize, Clone)]
struct RawComponent {
    id: String,
    name: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    position: usize,
    description: Option<String>,
    showcase: bool,
    start_date: Option<String>,
    group_id: Option<String>,
    page_id: String,
    group: bool,
    only_show_if_degraded: bool,
    /// Member ids; groups only.
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<Vec<String>>,
}

#[derive(Serialize)]
struct RawIncident {
    id: String,
    name: String,
    status: &'static str,
    created_at: String,
    updated_at: String,
    monitoring_at: Option<String>,
    resolved_at: Option<String>,
    impact: &'static str,
    shortlink: String,
    started_at: String,
    page_id: String,
    incident_updates: Vec<RawUpdate>,
    components: Vec<RawComponent>,
    /// Maintenance only.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_for: Option<String>,
    /// Maintenance only.
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_until: Option<String>,
}

#[derive(Serialize)]
struct RawUpdate {
    id: String,
    status: &'static str,
    body: String,
    incident_id: String,
    created_at: String,
    updated_at: String,
    display_at: String,
    /// `null` when the update changed no component, as Statuspage writes it.
    affected_components: Option<Vec<RawAffected>>,
    deliver_notifications: bool,
    custom_tweet: Option<String>,
    tweet_id: Option<String>,
}

#[derive(Serialize)]
struct RawAffected {
    code: String,
    name: String,
    old_status: &'static str,
    new_status: &'static str,
}

#[derive(Serialize)]
struct RawStatus {
    indicator: &'static str,
    description: &'static str,
}

/// Renders the summary document, pretty-printed, ending with a newline.
pub fn summary(site: &Site, corpus: &Corpus) -> Vec<u8> {
    let now = site.now;
    let zone = site.timezone();
    let page_id = page_id(site.base_url());

    // One pass over the published incidents: current component statuses,
    // their last change, the data's time span, and the incidents to list.
    let mut current: BTreeMap<&str, ComponentStatus> = BTreeMap::new();
    let mut changed: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut open: Vec<Listed> = Vec::new();
    let mut maintenances: Vec<Listed> = Vec::new();
    for incident in corpus.published() {
        let visible = visible_updates(incident, now);
        let Some(latest) = visible.last() else {
            continue;
        };
        let first = visible[0].instant;
        oldest = Some(oldest.map_or(first, |oldest| oldest.min(first)));
        for update in visible {
            newest = newest.max(Some(site.edited(incident, update)));
        }
        let segments = incident.timeline();
        for (component, list) in segments {
            let component = component.as_str();
            let status = status_at(list, now);
            let entry = current.entry(component).or_insert(status);
            *entry = (*entry).max(status);
            if let Some(change) = last_change(list, now) {
                let entry = changed.entry(component).or_insert(change);
                *entry = (*entry).max(change);
                newest = newest.max(Some(change));
            }
        }
        let closed = latest.status.is_closing();
        match incident.kind {
            Kind::Incident if !closed => open.push(Listed {
                incident,
                visible,
                segments,
                phase: None,
            }),
            Kind::Incident => {}
            Kind::Maintenance => {
                let phase = phase_at(incident, latest, now);
                if matches!(
                    phase,
                    Some(MaintenancePhase::Upcoming | MaintenancePhase::Ongoing)
                ) {
                    maintenances.push(Listed {
                        incident,
                        visible,
                        segments,
                        phase,
                    });
                }
            }
        }
    }

    let origin = oldest.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let context = Context {
        site,
        zone,
        page_id: &page_id,
    };
    let components = component_list(&context, &current, &changed, origin);
    let by_id: BTreeMap<&str, &RawComponent> = components
        .iter()
        .filter(|c| !c.group)
        .map(|c| (c.id.as_str(), c))
        .collect();

    let mut indicator = Indicator::None;
    for component in &site.config.components {
        let status = current
            .get(component.id.as_str())
            .copied()
            .unwrap_or(ComponentStatus::Operational);
        indicator = indicator.max(Indicator::of_component(status));
    }
    for listed in &open {
        indicator = indicator.max(Indicator::of_severity(listed.incident.severity));
    }

    // Latest update first; ties by id so the order is stable.
    open.sort_by(|a, b| {
        let a_latest = a.visible.last().map(|u| u.instant);
        let b_latest = b.visible.last().map(|u| u.instant);
        b_latest
            .cmp(&a_latest)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });
    // Soonest window first.
    maintenances.sort_by(|a, b| {
        let a_starts = a.incident.window.map(|w| w.starts);
        let b_starts = b.incident.window.map(|w| w.starts);
        a_starts
            .cmp(&b_starts)
            .then_with(|| a.incident.id.cmp(&b.incident.id))
    });

    let document = RawSummary {
        page: RawPage {
            id: page_id.clone(),
            name: site.config.site.title.clone(),
            url: site.base_url().trim_end_matches('/').to_owned(),
            time_zone: zone.name().to_owned(),
            updated_at: context.time(newest.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
        },
        incidents: open
            .iter()
            .map(|listed| context.incident(listed, &by_id))
            .collect(),
        scheduled_maintenances: maintenances
            .iter()
            .map(|listed| context.incident(listed, &by_id))
            .collect(),
        components,
        status: RawStatus {
            indicator: indicator.as_str(),
            description: indicator.description(),
        },
        schema_version: SCHEMA_VERSION,
    };
    // serde_json fails only on maps with non-string keys or on failing
    // `Serialize` impls; the DTOs above have neither.
    let mut bytes =
        serde_json::to_vec_pretty(&document).expect("the summary DTOs always serialize");
    bytes.push(b'\n');
    bytes
}

/// An incident or maintenance to list, with what was computed for it.
struct Listed<'a> {
    incident: &'a Incident,
    /// Updates at or before `now`, oldest first; never empty.
    visible: &'a [Update],
    segments: &'a Timeline,
    /// Maintenance only.
    phase: Option<MaintenancePhase>,
}

struct Context<'a> {
    site: &'a Site<'a>,
    zone: Tz,
    page_id: &'a str,
}

impl Context<'_> {
    fn time(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.zone)
            .to_rfc3339_opts(SecondsFormat::Millis, false)
    }

    fn component_name<'c>(&'c self, id: &'c str) -> &'c str {
        self.site
            .config
            .component(id)
            .map_or(id, |component| component.name.as_str())
    }

    fn incident(&self, listed: &Listed, by_id: &BTreeMap<&str, &RawComponent>) -> RawIncident {
        let incident = listed.incident;
        let kind = incident.kind;
        let visible = listed.visible;
        let first = &visible[0];
        let latest = &visible[visible.len() - 1];
        let mut status = statuspage_status(kind, latest.status);
        if listed.phase == Some(MaintenancePhase::Ongoing) && status == "scheduled" {
            status = "in_progress";
        }
        let updated = visible
            .iter()
            .map(|update| self.site.edited(incident, update))
            .max()
            .unwrap_or(latest.instant);
        let id = incident.id.as_str();
        RawIncident {
            id: id.to_owned(),
            name: incident.title.clone(),
            status,
            created_at: self.time(first.instant),
            updated_at: self.time(updated),
            monitoring_at: entered(visible, |s| s == Status::Monitoring).map(|t| self.time(t)),
            resolved_at: entered(visible, Status::is_closing).map(|t| self.time(t)),
            impact: match kind {
                Kind::Incident => incident.severity.as_str(),
                Kind::Maintenance => Kind::Maintenance.as_str(),
            },
            shortlink: incident_url(self.site.base_url(), &incident.id),
            started_at: self.time(incident.began()),
            page_id: self.page_id.to_owned(),
            incident_updates: visible
                .iter()
                .rev()
                .map(|update| self.update(listed, update))
                .collect(),
            components: incident
                .components
                .iter()
                .filter_map(|c| by_id.get(c.as_str()).map(|raw| (*raw).clone()))
                .collect(),
            scheduled_for: incident.window.map(|w| self.time(w.starts)),
            scheduled_until: incident.window.map(|w| self.time(w.ends)),
        }
    }

    fn update(&self, listed: &Listed, update: &Update) -> RawUpdate {
        let incident = listed.incident;
        let named: BTreeSet<&str> = update
            .component_statuses
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        let mut affected = Vec::new();
        for component in &incident.components {
            if self.site.config.component(component).is_none() {
                continue;
            }
            let list = listed
                .segments
                .get(component.as_str())
                .map_or(&[][..], Vec::as_slice);
            let old = status_before(list, update.instant);
            let new = status_at(list, update.instant);
            if old != new || named.contains(component.as_str()) {
                affected.push(RawAffected {
                    code: component.clone(),
                    name: self.component_name(component).to_owned(),
                    old_status: component_status(old),
                    new_status: component_status(new),
                });
            }
        }
        RawUpdate {
            id: update_id(incident, update.instant),
            status: statuspage_status(incident.kind, update.status),
            body: update.body_markdown.trim_end().to_owned(),
            incident_id: incident.id.as_str().to_owned(),
            created_at: self.time(update.instant),
            updated_at: self.time(self.site.edited(incident, update)),
            display_at: self.time(update.instant),
            affected_components: (!affected.is_empty()).then_some(affected),
            deliver_notifications: update.notify,
            custom_tweet: None,
            tweet_id: None,
        }
    }
}

/// The configured components in Statuspage's shape: groups before their
/// first member, members right after their group. Positions count from 1,
/// among the top level or within a group.
fn component_list(
    context: &Context,
    current: &BTreeMap<&str, ComponentStatus>,
    changed: &BTreeMap<&str, DateTime<Utc>>,
    origin: DateTime<Utc>,
) -> Vec<RawComponent> {
    enum Top<'a> {
        Single(&'a Component),
        Group(&'a str, Vec<&'a Component>),
    }
    let configured = &context.site.config.components;
    let mut top: Vec<Top> = Vec::new();
    for component in configured {
        match &component.group {
            None => top.push(Top::Single(component)),
            Some(name) => {
                let existing = top.iter_mut().find_map(|entry| match entry {
                    Top::Group(group, members) if *group == name.as_str() => Some(members),
                    _ => None,
                });
                match existing {
                    Some(members) => members.push(component),
                    None => top.push(Top::Group(name, vec![component])),
                }
            }
        }
    }

    let mut taken: BTreeSet<String> = configured.iter().map(|c| c.id.clone()).collect();
    let raw = |component: &Component, position: usize, group_id: Option<String>| {
        let id = component.id.as_str();
        RawComponent {
            id: id.to_owned(),
            name: component.name.clone(),
            status: component_status(
                current
                    .get(id)
                    .copied()
                    .unwrap_or(ComponentStatus::Operational),
            ),
            created_at: context.time(origin),
            updated_at: context.time(changed.get(id).copied().unwrap_or(origin)),
            position,
            description: None,
            showcase: true,
            start_date: None,
            group_id,
            page_id: context.page_id.to_owned(),
            group: false,
            only_show_if_degraded: false,
            components: None,
        }
    };
    let mut list = Vec::new();
    for (index, entry) in top.iter().enumerate() {
        let position = index + 1;
        match entry {
            Top::Single(component) => list.push(raw(component, position, None)),
            Top::Group(name, members) => {
                let id = group_id(name, &mut taken);
                let status = members
                    .iter()
                    .filter_map(|m| current.get(m.id.as_str()).copied())
                    .max()
                    .unwrap_or(ComponentStatus::Operational);
                let updated = members
                    .iter()
                    .filter_map(|m| changed.get(m.id.as_str()).copied())
                    .max()
                    .unwrap_or(origin);
                list.push(RawComponent {
                    id: id.clone(),
                    name: (*name).to_owned(),
                    status: component_status(status),
                    created_at: context.time(origin),
                    updated_at: context.time(updated),
                    position,
                    description: None,
                    showcase: false,
                    start_date: None,
                    group_id: None,
                    page_id: context.page_id.to_owned(),
                    group: true,
                    only_show_if_degraded: false,
                    components: Some(members.iter().map(|m| m.id.clone()).collect()),
                });
                for (member_index, member) in members.iter().enumerate() {
                    list.push(raw(member, member_index + 1, Some(id.clone())));
                }
            }
        }
    }
    list
}

/// `group-{slug of name}`, with `-2`, `-3`… appended if that id is already
/// a component's or another group's.
fn group_id(name: &str, taken: &mut BTreeSet<String>) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let base = if slug.is_empty() {
        "group".to_owned()
    } else {
        format!("group-{slug}")
    };
    let mut id = base.clone();
    let mut counter = 2;
    while taken.contains(&id) {
        id = format!("{base}-{counter}");
        counter += 1;
    }
    taken.insert(id.clone());
    id
}

/// The page id: the host (and port) of `base_url`. Statuspage uses an
/// opaque id; the host is stable and names the site.
fn page_id(base_url: &str) -> String {
    super::ics::host(base_url)
}

/// A stable update id: `{incident}-{instant in UTC, compact}`.
fn update_id(incident: &Incident, instant: DateTime<Utc>) -> String {
    format!("{}-{}", incident.id, instant.format("%Y%m%dT%H%M%SZ"))
}

/// The updates at or before `now` (updates are sorted oldest first).
fn visible_updates(incident: &Incident, now: DateTime<Utc>) -> &[Update] {
    let count = incident
        .updates
        .partition_point(|update| update.instant <= now);
    &incident.updates[..count]
}

/// [`Incident::maintenance_phase`] as of `now`, judged by the visible
/// updates only.
fn phase_at(incident: &Incident, latest: &Update, now: DateTime<Utc>) -> Option<MaintenancePhase> {
    let window = incident.window?;
    if latest.status.is_closing() || now >= window.ends {
        Some(MaintenancePhase::Over)
    } else if now >= window.starts {
        Some(MaintenancePhase::Ongoing)
    } else {
        Some(MaintenancePhase::Upcoming)
    }
}

/// When the incident entered the state `matches` describes, if its latest
/// update is in it: the first update of the final run of such updates.
fn entered(visible: &[Update], matches: impl Fn(Status) -> bool) -> Option<DateTime<Utc>> {
    let mut start = None;
    for update in visible.iter().rev() {
        if !matches(update.status) {
            break;
        }
        start = Some(update.instant);
    }
    start
}

/// The status the segments hold at `instant`.
fn status_at(segments: &[Segment], instant: DateTime<Utc>) -> ComponentStatus {
    segments
        .iter()
        .filter(|s| s.from <= instant && s.until.is_none_or(|until| instant < until))
        .map(|s| s.status)
        .max()
        .unwrap_or(ComponentStatus::Operational)
}

/// The status the segments hold just before `instant`.
fn status_before(segments: &[Segment], instant: DateTime<Utc>) -> ComponentStatus {
    segments
        .iter()
        .filter(|s| s.from < instant && s.until.is_none_or(|until| instant <= until))
        .map(|s| s.status)
        .max()
        .unwrap_or(ComponentStatus::Operational)
}

/// The latest instant at or before `now` where the segments start or end.
fn last_change(segments: &[Segment], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    segments
        .iter()
        .flat_map(|s| [Some(s.from), s.until])
        .flatten()
        .filter(|instant| *instant <= now)
        .max()
}

fn component_status(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Operational => "operational",
        ComponentStatus::Degraded => "degraded_performance",
        ComponentStatus::PartialOutage => "partial_outage",
        ComponentStatus::MajorOutage => "major_outage",
        ComponentStatus::Maintenance => "under_maintenance",
    }
}

/// Statuspage's word for a herald status. The parser already replaced
/// `update` by the status it continues; the arms for statuses a kind cannot
/// use only keep this total.
fn statuspage_status(kind: Kind, status: Status) -> &'static str {
    match (kind, status) {
        (Kind::Incident, Status::Investigating | Status::Update | Status::Scheduled) => {
            "investigating"
        }
        (Kind::Incident, Status::Identified | Status::InProgress) => "identified",
        (Kind::Incident, Status::Monitoring) => "monitoring",
        (Kind::Incident, Status::Resolved | Status::Completed) => "resolved",
        (Kind::Maintenance, Status::Scheduled | Status::Update) => "scheduled",
        (Kind::Maintenance, Status::InProgress | Status::Investigating | Status::Identified) => {
            "in_progress"
        }
        (Kind::Maintenance, Status::Monitoring) => "verifying",
        (Kind::Maintenance, Status::Completed | Status::Resolved) => "completed",
    }
}

/// `status.indicator`, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Indicator {
    None,
    Maintenance,
    Minor,
    Major,
    Critical,
}

impl Indicator {
    fn of_component(status: ComponentStatus) -> Indicator {
        match status {
            ComponentStatus::Operational => Indicator::None,
            ComponentStatus::Maintenance => Indicator::Maintenance,
            ComponentStatus::Degraded => Indicator::Minor,
            ComponentStatus::PartialOutage => Indicator::Major,
            ComponentStatus::MajorOutage => Indicator::Critical,
        }
    }

    fn of_severity(severity: Severity) -> Indicator {
        match severity {
            Severity::Minor => Indicator::Minor,
            Severity::Major => Indicator::Major,
            Severity::Critical => Indicator::Critical,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Indicator::None => "none",
            Indicator::Maintenance => "maintenance",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
        }
    }

    /// Statuspage's English descriptions; readers match on them, so they
    /// are not translated.
    fn description(self) -> &'static str {
        match self {
            Indicator::None => "All Systems Operational",
            Indicator::Maintenance => "Service Under Maintenance",
            Indicator::Minor => "Minor Service Outage",
            Indicator::Major => "Partial System Outage",
            Indicator::Critical => "Major System Outage",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_id_is_the_host() {
        assert_eq!(page_id("https://status.example.se/"), "status.example.se");
        assert_eq!(
            page_id("https://user@Status.Example.com:8443/herald/"),
            "status.example.com:8443"
        );
    }

    #[test]
    fn group_ids_are_unique() {
        let mut taken: BTreeSet<String> = ["group-hosting".to_owned()].into();
        assert_eq!(group_id("Hosting", &mut taken), "group-hosting-2");
        assert_eq!(group_id("hosting", &mut taken), "group-hosting-3");
        assert_eq!(group_id("Moln & lagring", &mut taken), "group-moln-lagring");
        assert_eq!(group_id("Ölkällare", &mut taken), "group-ölkällare");
        assert_eq!(group_id("---", &mut taken), "group");
    }
}
