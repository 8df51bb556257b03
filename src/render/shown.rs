//! Which incidents' update texts a summary may show (the site and
//! component feeds, the API documents, the index, the calendars), decided
//! one incident at a time as a full build reads them. The build drops the
//! texts of every other incident once its own page and feed are rendered,
//! so that its memory does not grow with every update ever written.
//!
//! Pure. The rule errs on the side of keeping:
//!
//! - maintenance, open incidents and incidents with updates after `now`
//!   are always kept (the API's and the index's open and current lists,
//!   the calendars);
//! - of the others, the [`FEED_LIMIT`] newest by latest update (ties at
//!   the limit all kept) site-wide and per component they affect: a feed
//!   of at most [`FEED_LIMIT`] entries shows updates of no other incident,
//!   since each incident's latest update is one of its entries, and the
//!   API lists [`api::LIST_LIMIT`](super::api::LIST_LIMIT) of them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::FEED_LIMIT;
use crate::model::{Incident, IncidentId, Kind};

/// The incidents whose texts the summaries may still show.
#[derive(Debug)]
pub struct ShownTexts {
    now: DateTime<Utc>,
    /// Site-wide (`None`) and per component: the incidents ranked.
    groups: HashMap<Option<String>, Ranking>,
    /// How many rankings hold each incident.
    held: HashMap<IncidentId, usize>,
}

/// The newest incidents of one feed by latest update.
#[derive(Debug, Default)]
struct Ranking {
    by_latest: BTreeMap<DateTime<Utc>, Vec<IncidentId>>,
    len: usize,
}

impl Ranking {
    /// Adds `id`; returns those ranked out: older than the
    /// [`FEED_LIMIT`] newest (ties with the last of them stay).
    fn add(&mut self, latest: DateTime<Utc>, id: IncidentId) -> Vec<IncidentId> {
        self.by_latest.entry(latest).or_default().push(id);
        self.len += 1;
        let mut out = Vec::new();
        while let Some(oldest) = self.by_latest.first_entry() {
            if self.len - oldest.get().len() < FEED_LIMIT {
                break;
            }
            let ids = oldest.remove();
            self.len -= ids.len();
            out.extend(ids);
        }
        out
    }
}

impl ShownTexts {
    pub fn new(now: DateTime<Utc>) -> ShownTexts {
        ShownTexts {
            now,
            groups: HashMap::new(),
            held: HashMap::new(),
        }
    }

    /// Takes in a published incident, once. Returns the incidents taken
    /// in so far (this one among them) whose texts no summary can show.
    pub fn admit(&mut self, incident: &Incident) -> Vec<IncidentId> {
        let Some(latest) = incident.updates.last() else {
            // No update, no text to keep.
            return vec![incident.id.clone()];
        };
        if incident.kind != Kind::Incident
            || incident.window.is_some()
            || !latest.status.is_closing()
            || latest.instant > self.now
        {
            return Vec::new();
        }
        let groups = std::iter::once(None).chain(incident.components.iter().cloned().map(Some));
        let mut ranked_out = Vec::new();
        for group in groups {
            *self.held.entry(incident.id.clone()).or_default() += 1;
            ranked_out.extend(
                self.groups
                    .entry(group)
                    .or_default()
                    .add(latest.instant, incident.id.clone()),
            );
        }
        let mut dropped = Vec::new();
        for id in ranked_out {
            if let Some(count) = self.held.get_mut(&id) {
                *count -= 1;
                if *count == 0 {
                    self.held.remove(&id);
                    dropped.push(id);
                }
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    /// A resolved (or `status`) incident of `components` whose one update
    /// is `hour` hours into 2026.
    fn incident(id: &str, components: &[&str], hour: i64, status: &str) -> Incident {
        incident_of(id, "incident", components, hour, status)
    }

    fn incident_of(id: &str, kind: &str, components: &[&str], hour: i64, status: &str) -> Incident {
        let instant =
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hour);
        let list = components
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let window = if kind == "maintenance" {
            "starts = \"2026-01-01 00:00Z\"\nends = \"2026-01-01 01:00Z\"\n"
        } else {
            "severity = \"minor\"\n"
        };
        let text = format!(
            "+++\ntitle = \"T\"\nkind = \"{kind}\"\ncomponents = [{list}]\n{window}+++\n\n## {} {status}\nText.\n",
            instant.format("%Y-%m-%d %H:%MZ")
        );
        let (incident, diagnostics) =
            crate::parse::fixtures::parse_at(std::path::Path::new(&format!("{id}.md")), &text);
        incident.unwrap_or_else(|| panic!("{diagnostics:?} in:\n{text}"))
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
    }

    fn names(ids: &[IncidentId]) -> Vec<String> {
        ids.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_newest_of_each_feed_are_kept_and_the_older_dropped() {
        let mut shown = ShownTexts::new(now());
        let mut dropped = Vec::new();
        // 150 resolved incidents of `web`, then one of `mail`, the oldest.
        for hour in 0..150 {
            let id = format!("web-{hour:03}");
            dropped.extend(shown.admit(&incident(&id, &["web-hosting"], 1000 + hour, "resolved")));
        }
        dropped.extend(shown.admit(&incident("mail-old", &["mail"], 0, "resolved")));
        // The 50 oldest of `web` are in neither the site's nor web's 100
        // newest; mail's only incident is the newest of its feed.
        let expected: Vec<String> = (0..50).map(|hour| format!("web-{hour:03}")).collect();
        assert_eq!(names(&dropped), expected);
    }

    #[test]
    fn ties_at_the_limit_are_all_kept() {
        let mut shown = ShownTexts::new(now());
        let mut dropped = Vec::new();
        for n in 0..99 {
            dropped.extend(shown.admit(&incident(
                &format!("new-{n:02}"),
                &["web-hosting"],
                500,
                "resolved",
            )));
        }
        // Three share the 100th place: all stay.
        for n in 0..3 {
            dropped.extend(shown.admit(&incident(
                &format!("tie-{n}"),
                &["web-hosting"],
                100,
                "resolved",
            )));
        }
        assert_eq!(names(&dropped), Vec::<String>::new());
        // One newer pushes all three past the limit at once.
        dropped.extend(shown.admit(&incident("newest", &["web-hosting"], 900, "resolved")));
        assert_eq!(names(&dropped), ["tie-0", "tie-1", "tie-2"]);
    }

    #[test]
    fn open_incidents_maintenance_and_future_updates_are_always_kept() {
        let mut shown = ShownTexts::new(now());
        let mut dropped = Vec::new();
        dropped.extend(shown.admit(&incident("open", &["web-hosting"], 0, "identified")));
        dropped.extend(shown.admit(&incident_of(
            "works",
            "maintenance",
            &["web-hosting"],
            0,
            "completed",
        )));
        let mut future = incident("future", &["web-hosting"], 0, "resolved");
        future.updates[0].instant = now() + chrono::Duration::hours(1);
        dropped.extend(shown.admit(&future));
        for hour in 0..300 {
            dropped.extend(shown.admit(&incident(
                &format!("r{hour}"),
                &["web-hosting"],
                10 + hour,
                "resolved",
            )));
        }
        let dropped = names(&dropped);
        assert!(
            !dropped
                .iter()
                .any(|n| ["open", "works", "future"].contains(&n.as_str())),
            "{dropped:?}"
        );
        assert_eq!(dropped.len(), 200, "{dropped:?}");
    }
}
