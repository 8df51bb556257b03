//! Statuspage's public API v2, every read document, under `api/v2/`, in
//! the shapes Statuspage documents, so that status aggregators, dashboards
//! and client libraries written for Statuspage read herald's unchanged;
//! and herald's own `status.json`. Pure.
//!
//! | document | lists |
//! |---|---|
//! | `summary.json` | page, components, unresolved incidents, upcoming and active maintenance, status |
//! | `status.json` | page, status |
//! | `components.json` | page, components |
//! | `incidents.json` | page, the 50 incidents with the latest updates, resolved or not |
//! | `incidents/unresolved.json` | page, incidents not resolved |
//! | `scheduled-maintenances.json` | page, the 50 maintenances scheduled latest |
//! | `scheduled-maintenances/upcoming.json` | page, maintenance not started (`scheduled`) |
//! | `scheduled-maintenances/active.json` | page, maintenance under way (`in_progress`, `verifying`) |
//!
//! herald's own `status.json` (at the top of the output) is the summary
//! plus two fields Statuspage's readers ignore: `schema_version` and
//! `uptime` (per component, percent over 30 and 90 days; see [`uptime`]).
//! They live there, not in `api/v2/`, so that the Statuspage documents
//! keep exactly Statuspage's fields: a strict reader (one that refuses
//! unknown fields) reads those, and herald's readers have one document
//! with everything.
//!
//! The documents describe the site as of `site.now`: updates dated after
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
//! - each update's `affected_components` lists the components whose status
//!   it changed or named (`null` when none);
//! - incidents are listed latest update first; upcoming and active
//!   maintenance soonest first, all maintenance latest window first;
//!   updates newest first;
//! - `status.indicator` is the worse of the worst component status and the
//!   impact of any unresolved incident (`none` < `maintenance` < `minor` <
//!   `major` < `critical`);
//! - ids are herald's: component ids, incident ids, `{incident}-{instant}`
//!   for updates (instant in UTC, `YYYYMMDDTHHMMSSZ`), `group-{name}` for
//!   groups;
//! - times are RFC 3339 with milliseconds and the offset of `site.timezone`.

mod shape;
pub mod uptime;

/// Statuspage's words for herald's data, for the webhooks' payloads.
pub(crate) use shape::{component_status, statuspage_status};

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::corpus::Corpus;
use crate::model::{ComponentStatus, Kind, MaintenancePhase};

use super::{Output, Site};
use shape::{
    Context, Listed, RawComponent, RawIncident, RawPage, RawStatus, component_list, last_change,
    phase_at, status_at, visible_updates,
};
pub(crate) use shape::{Indicator, page_id};
use uptime::Uptime;

/// The version of herald's own `status.json`, written as `schema_version`.
/// Bump it when a field changes meaning or disappears.
pub const SCHEMA_VERSION: u32 = 1;

/// `incidents.json` and `scheduled-maintenances.json` list at most this
/// many, as Statuspage's do.
pub const LIST_LIMIT: usize = 50;

/// One document: the page, then what it lists. Fields a document does not
/// have are left out, so every document has exactly Statuspage's fields.
#[derive(Serialize)]
struct Document<'a> {
    page: &'a RawPage,
    #[serde(skip_serializing_if = "Option::is_none")]
    components: Option<&'a [RawComponent]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incidents: Option<Vec<RawIncident>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_maintenances: Option<Vec<RawIncident>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a RawStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    /// Component id → uptime; herald's `status.json` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime: Option<BTreeMap<&'a str, Uptime>>,
}

/// What the documents are made from: the state of the site at `now`.
struct State<'a> {
    context: Context<'a>,
    page: RawPage,
    components: Vec<RawComponent>,
    /// Incidents, latest update first.
    incidents: Vec<Listed<'a>>,
    /// Maintenance, latest window first.
    maintenances: Vec<Listed<'a>>,
    status: RawStatus,
}

/// Every document: herald's `status.json` and the eight of `api/v2/`.
pub fn outputs(site: &Site, corpus: &Corpus) -> Vec<Output> {
    let page_id = page_id(&site.base_url());
    let state = State::collect(site, corpus, &page_id);
    let open = || {
        state
            .incidents
            .iter()
            .filter(|listed| !is_closed(listed))
            .collect::<Vec<_>>()
    };
    let in_phase = |phases: &[MaintenancePhase]| {
        let mut list: Vec<&Listed> = state
            .maintenances
            .iter()
            .filter(|listed| listed.phase.is_some_and(|phase| phases.contains(&phase)))
            .collect();
        // Soonest window first.
        list.reverse();
        list
    };
    let current = in_phase(&[MaintenancePhase::Upcoming, MaintenancePhase::Ongoing]);
    let summary = state.document(|doc| {
        doc.components = Some(&state.components);
        doc.incidents = Some(state.convert(&open()));
        doc.scheduled_maintenances = Some(state.convert(&current));
        doc.status = Some(&state.status);
    });
    let uptime = uptime::per_component(site, corpus);
    let herald = state.document(|doc| {
        doc.components = Some(&state.components);
        doc.incidents = Some(state.convert(&open()));
        doc.scheduled_maintenances = Some(state.convert(&current));
        doc.status = Some(&state.status);
        doc.schema_version = Some(SCHEMA_VERSION);
        doc.uptime = Some(
            uptime
                .iter()
                .map(|(id, uptime)| (id.as_str(), *uptime))
                .collect(),
        );
    });
    let documents = [
        ("status.json", herald),
        ("api/v2/summary.json", summary),
        (
            "api/v2/status.json",
            state.document(|doc| doc.status = Some(&state.status)),
        ),
        (
            "api/v2/components.json",
            state.document(|doc| doc.components = Some(&state.components)),
        ),
        (
            "api/v2/incidents.json",
            state.document(|doc| doc.incidents = Some(state.convert(&latest(&state.incidents)))),
        ),
        (
            "api/v2/incidents/unresolved.json",
            state.document(|doc| doc.incidents = Some(state.convert(&open()))),
        ),
        (
            "api/v2/scheduled-maintenances.json",
            state.document(|doc| {
                doc.scheduled_maintenances = Some(state.convert(&latest(&state.maintenances)));
            }),
        ),
        (
            "api/v2/scheduled-maintenances/upcoming.json",
            state.document(|doc| {
                doc.scheduled_maintenances =
                    Some(state.convert(&in_phase(&[MaintenancePhase::Upcoming])));
            }),
        ),
        (
            "api/v2/scheduled-maintenances/active.json",
            state.document(|doc| {
                doc.scheduled_maintenances =
                    Some(state.convert(&in_phase(&[MaintenancePhase::Ongoing])));
            }),
        ),
    ];
    documents
        .into_iter()
        .map(|(path, bytes)| Output {
            path: path.to_owned(),
            bytes,
        })
        .collect()
}

/// `api/v2/summary.json` alone.
pub fn summary(site: &Site, corpus: &Corpus) -> Vec<u8> {
    document(site, corpus, "api/v2/summary.json")
}

/// herald's own `status.json` alone: the summary, `schema_version` and
/// `uptime`.
pub fn herald_status(site: &Site, corpus: &Corpus) -> Vec<u8> {
    document(site, corpus, "status.json")
}

fn document(site: &Site, corpus: &Corpus, path: &str) -> Vec<u8> {
    outputs(site, corpus)
        .into_iter()
        .find(|output| output.path == path)
        .map(|output| output.bytes)
        .unwrap_or_default()
}

/// The first [`LIST_LIMIT`] of `list`.
fn latest<'l, 'a>(list: &'l [Listed<'a>]) -> Vec<&'l Listed<'a>> {
    list.iter().take(LIST_LIMIT).collect()
}

fn is_closed(listed: &Listed) -> bool {
    listed
        .visible
        .last()
        .is_some_and(|latest| latest.status.is_closing())
}

impl<'a> State<'a> {
    fn collect(site: &'a Site<'a>, corpus: &'a Corpus, page_id: &'a str) -> State<'a> {
        let now = site.now;
        let zone = site.timezone();
        // One pass over the published incidents: current component
        // statuses, their last change, the data's time span, and the
        // incidents to list.
        let mut current: BTreeMap<&str, ComponentStatus> = BTreeMap::new();
        let mut changed: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        let mut newest: Option<DateTime<Utc>> = None;
        let mut oldest: Option<DateTime<Utc>> = None;
        let mut incidents: Vec<Listed> = Vec::new();
        let mut maintenances: Vec<Listed> = Vec::new();
        for incident in corpus.published() {
            let visible = visible_updates(incident, now);
            let Some(latest) = visible.last() else {
                continue;
            };
            let first = visible[0].instant;
            oldest = Some(oldest.map_or(first, |oldest| oldest.min(first)));
            // Edits come after the loop: most updates are never edited.
            newest = newest.max(Some(latest.instant));
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
            let listed = Listed {
                incident,
                visible,
                segments,
                phase: None,
            };
            match incident.kind {
                Kind::Incident => incidents.push(listed),
                Kind::Maintenance => maintenances.push(Listed {
                    phase: phase_at(incident, latest, now),
                    ..listed
                }),
            }
        }

        // An edit shown is one of a visible update of a listed incident:
        // the few edited updates, not every update, are looked at.
        for ((id, instant), edited) in site.revisions {
            let shown = *instant <= now
                && corpus.published_get(id).is_some_and(|incident| {
                    incident
                        .updates
                        .binary_search_by_key(instant, |update| update.instant)
                        .is_ok()
                });
            if shown {
                newest = newest.max(Some(*edited.max(instant)));
            }
        }
        let origin = oldest.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let context = Context {
            site,
            zone,
            page_id,
        };
        let components = component_list(&context, &current, &changed, origin);

        let mut indicator = Indicator::None;
        for component in &site.config.components {
            let status = current
                .get(component.id.as_str())
                .copied()
                .unwrap_or(ComponentStatus::Operational);
            indicator = indicator.max(Indicator::of_component(status));
        }
        for listed in incidents.iter().filter(|listed| !is_closed(listed)) {
            indicator = indicator.max(Indicator::of_severity(listed.incident.severity));
        }

        // Latest update first; ties by id so the order is stable.
        incidents.sort_by(|a, b| {
            let a_latest = a.visible.last().map(|u| u.instant);
            let b_latest = b.visible.last().map(|u| u.instant);
            b_latest
                .cmp(&a_latest)
                .then_with(|| a.incident.id.cmp(&b.incident.id))
        });
        // Latest window first; ties by id, reversed, so that reversing
        // the list gives soonest first, ties by id.
        maintenances.sort_by(|a, b| {
            let a_starts = a.incident.window.map(|w| w.starts);
            let b_starts = b.incident.window.map(|w| w.starts);
            b_starts
                .cmp(&a_starts)
                .then_with(|| b.incident.id.cmp(&a.incident.id))
        });

        State {
            page: RawPage {
                id: page_id.to_owned(),
                name: site.site_title().to_owned(),
                url: site.base_url().trim_end_matches('/').to_owned(),
                time_zone: zone.name().to_owned(),
                updated_at: context.time(newest.unwrap_or(DateTime::<Utc>::UNIX_EPOCH)),
            },
            context,
            components,
            incidents,
            maintenances,
            status: RawStatus {
                indicator: indicator.as_str(),
                description: indicator.description(),
            },
        }
    }

    fn convert(&self, listed: &[&Listed]) -> Vec<RawIncident> {
        let by_id: BTreeMap<&str, &RawComponent> = self
            .components
            .iter()
            .filter(|c| !c.group)
            .map(|c| (c.id.as_str(), c))
            .collect();
        listed
            .iter()
            .map(|listed| self.context.incident(listed, &by_id))
            .collect()
    }

    /// The document with the page and what `fill` adds, pretty-printed,
    /// ending with a newline.
    fn document<'s>(&'s self, fill: impl FnOnce(&mut Document<'s>)) -> Vec<u8> {
        let mut document = Document {
            page: &self.page,
            components: None,
            incidents: None,
            scheduled_maintenances: None,
            status: None,
            schema_version: None,
            uptime: None,
        };
        fill(&mut document);
        // serde_json fails only on maps with non-string keys or on failing
        // `Serialize` impls; the DTOs have neither.
        let mut bytes =
            serde_json::to_vec_pretty(&document).expect("the API's DTOs always serialize");
        bytes.push(b'\n');
        bytes
    }
}
