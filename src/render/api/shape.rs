//! The Statuspage shapes (page, component, incident, update, status) and
//! how herald's data maps onto them; `api` says what each document lists.
//! Pure.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::model::{
    Component, ComponentStatus, Incident, Kind, MaintenancePhase, Segment, Severity, Status,
    Timeline, Update,
};

use super::super::{Site, incident_url};

#[derive(Serialize)]
pub(super) struct RawPage {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) time_zone: String,
    pub(super) updated_at: String,
}

#[derive(Serialize, Clone)]
pub(super) struct RawComponent {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) status: &'static str,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) position: usize,
    pub(super) description: Option<String>,
    pub(super) showcase: bool,
    pub(super) start_date: Option<String>,
    pub(super) group_id: Option<String>,
    pub(super) page_id: String,
    pub(super) group: bool,
    pub(super) only_show_if_degraded: bool,
    /// Member ids; groups only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) components: Option<Vec<String>>,
}

#[derive(Serialize)]
pub(super) struct RawIncident {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) status: &'static str,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) monitoring_at: Option<String>,
    pub(super) resolved_at: Option<String>,
    pub(super) impact: &'static str,
    pub(super) shortlink: String,
    pub(super) started_at: String,
    pub(super) page_id: String,
    pub(super) incident_updates: Vec<RawUpdate>,
    pub(super) components: Vec<RawComponent>,
    /// Maintenance only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scheduled_for: Option<String>,
    /// Maintenance only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) scheduled_until: Option<String>,
}

#[derive(Serialize)]
pub(super) struct RawUpdate {
    pub(super) id: String,
    pub(super) status: &'static str,
    pub(super) body: String,
    pub(super) incident_id: String,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) display_at: String,
    /// `null` when the update changed no component, as Statuspage writes it.
    pub(super) affected_components: Option<Vec<RawAffected>>,
    pub(super) deliver_notifications: bool,
    pub(super) custom_tweet: Option<String>,
    pub(super) tweet_id: Option<String>,
}

#[derive(Serialize)]
pub(super) struct RawAffected {
    pub(super) code: String,
    pub(super) name: String,
    pub(super) old_status: &'static str,
    pub(super) new_status: &'static str,
}

#[derive(Serialize)]
pub(super) struct RawStatus {
    pub(super) indicator: &'static str,
    pub(super) description: &'static str,
}

/// An incident or maintenance to list, with what was computed for it.
pub(super) struct Listed<'a> {
    pub(super) incident: &'a Incident,
    /// Updates at or before `now`, oldest first; never empty.
    pub(super) visible: &'a [Update],
    pub(super) segments: &'a Timeline,
    /// Maintenance only.
    pub(super) phase: Option<MaintenancePhase>,
}

pub(super) struct Context<'a> {
    pub(super) site: &'a Site<'a>,
    pub(super) zone: Tz,
    pub(super) page_id: &'a str,
}

impl Context<'_> {
    pub(super) fn time(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.zone)
            .to_rfc3339_opts(SecondsFormat::Millis, false)
    }

    pub(super) fn incident(
        &self,
        listed: &Listed,
        by_id: &BTreeMap<&str, &RawComponent>,
    ) -> RawIncident {
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
            name: self.site.title(incident).to_owned(),
            status,
            created_at: self.time(first.instant),
            updated_at: self.time(updated),
            monitoring_at: entered(visible, |s| s == Status::Monitoring).map(|t| self.time(t)),
            resolved_at: entered(visible, Status::is_closing).map(|t| self.time(t)),
            impact: match kind {
                Kind::Incident => incident.severity.as_str(),
                Kind::Maintenance => Kind::Maintenance.as_str(),
            },
            shortlink: incident_url(&self.site.base_url(), &incident.id),
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
                    name: self.site.component_name(component).to_owned(),
                    old_status: component_status(old),
                    new_status: component_status(new),
                });
            }
        }
        RawUpdate {
            id: update_id(incident, update.instant),
            status: statuspage_status(incident.kind, update.status),
            body: self.site.text(update).markdown.trim_end().to_owned(),
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
pub(super) fn component_list(
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
            name: context.site.component_name(&component.id).to_owned(),
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
                    name: members[0]
                        .group_in(context.site.language())
                        .unwrap_or(name)
                        .to_owned(),
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
pub(super) fn group_id(name: &str, taken: &mut BTreeSet<String>) -> String {
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
pub(crate) fn page_id(base_url: &str) -> String {
    super::super::ics::host(base_url)
}

/// A stable update id: `{incident}-{instant in UTC, compact}`.
pub(super) fn update_id(incident: &Incident, instant: DateTime<Utc>) -> String {
    format!("{}-{}", incident.id, instant.format("%Y%m%dT%H%M%SZ"))
}

/// The updates at or before `now` (updates are sorted oldest first).
pub(super) fn visible_updates(incident: &Incident, now: DateTime<Utc>) -> &[Update] {
    let count = incident
        .updates
        .partition_point(|update| update.instant <= now);
    &incident.updates[..count]
}

/// [`Incident::maintenance_phase`] as of `now`, judged by the visible
/// updates only.
pub(super) fn phase_at(
    incident: &Incident,
    latest: &Update,
    now: DateTime<Utc>,
) -> Option<MaintenancePhase> {
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
pub(super) fn entered(
    visible: &[Update],
    matches: impl Fn(Status) -> bool,
) -> Option<DateTime<Utc>> {
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
pub(super) fn status_at(segments: &[Segment], instant: DateTime<Utc>) -> ComponentStatus {
    segments
        .iter()
        .filter(|s| s.from <= instant && s.until.is_none_or(|until| instant < until))
        .map(|s| s.status)
        .max()
        .unwrap_or(ComponentStatus::Operational)
}

/// The status the segments hold just before `instant`.
pub(super) fn status_before(segments: &[Segment], instant: DateTime<Utc>) -> ComponentStatus {
    segments
        .iter()
        .filter(|s| s.from < instant && s.until.is_none_or(|until| instant <= until))
        .map(|s| s.status)
        .max()
        .unwrap_or(ComponentStatus::Operational)
}

/// The latest instant at or before `now` where the segments start or end.
pub(super) fn last_change(segments: &[Segment], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    segments
        .iter()
        .flat_map(|s| [Some(s.from), s.until])
        .flatten()
        .filter(|instant| *instant <= now)
        .max()
}

pub(crate) fn component_status(status: ComponentStatus) -> &'static str {
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
pub(crate) fn statuspage_status(kind: Kind, status: Status) -> &'static str {
    match (kind, status) {
        (Kind::Incident, Status::Investigating | Status::Update | Status::Scheduled) => {
            "investigating"
        }
        (Kind::Incident, Status::Identified | Status::InProgress) => "identified",
        (Kind::Incident, Status::Monitoring) => "monitoring",
        (Kind::Incident, Status::Resolved | Status::Completed | Status::Cancelled) => "resolved",
        (Kind::Maintenance, Status::Scheduled | Status::Update) => "scheduled",
        (Kind::Maintenance, Status::InProgress | Status::Investigating | Status::Identified) => {
            "in_progress"
        }
        (Kind::Maintenance, Status::Monitoring) => "verifying",
        // Statuspage has no word for a called-off maintenance.
        (Kind::Maintenance, Status::Completed | Status::Resolved | Status::Cancelled) => {
            "completed"
        }
    }
}

/// `status.indicator`, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Indicator {
    None,
    Maintenance,
    Minor,
    Major,
    Critical,
}

impl Indicator {
    pub(crate) fn of_component(status: ComponentStatus) -> Indicator {
        match status {
            ComponentStatus::Operational => Indicator::None,
            ComponentStatus::Maintenance => Indicator::Maintenance,
            ComponentStatus::Degraded => Indicator::Minor,
            ComponentStatus::PartialOutage => Indicator::Major,
            ComponentStatus::MajorOutage => Indicator::Critical,
        }
    }

    pub(super) fn of_severity(severity: Severity) -> Indicator {
        match severity {
            Severity::Minor => Indicator::Minor,
            Severity::Major => Indicator::Major,
            Severity::Critical => Indicator::Critical,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
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
    pub(crate) fn description(self) -> &'static str {
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
