//! The index's history bars: the local days of the last [`HISTORY_DAYS`],
//! which incidents held a component on each and how badly, which
//! incidents can matter at all, and what each cell says ([`DayView`]:
//! nothing on a quiet day; on a bad one, a link to the incident that made
//! it worst, titled with the day, its status and that incident). Pure:
//! `now` and the time zone are passed in.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use serde::Serialize;

use super::{Site, i18n, incident_path};
use crate::model::{ComponentStatus, Incident, Segment, Update};

/// Days in a component's history bar, today included.
pub const HISTORY_DAYS: usize = 90;

/// Whether `segment` holds its component at `instant`.
pub(super) fn holds_at(segment: &Segment, instant: DateTime<Utc>) -> bool {
    segment.from <= instant && segment.until.is_none_or(|until| instant < until)
}

/// Whether `incident` holds every component at operational from `start`
/// on, decided without computing its segments: nothing about it changes
/// after `start`, and what it ends with is operational. Conservative: when
/// in doubt, `false`, and the caller computes the segments.
pub(super) fn settled_before(incident: &Incident, start: DateTime<Utc>) -> bool {
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
pub(super) struct Day {
    pub(super) date: NaiveDate,
    pub(super) start: DateTime<Utc>,
}

/// The [`HISTORY_DAYS`] local days ending with the one containing `now`,
/// oldest first.
pub(super) fn days(timezone: Tz, now: DateTime<Utc>) -> Vec<Day> {
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

/// One cell of a component's history bar: what held the component on one
/// day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cell {
    /// The worst status of the day.
    pub(super) status: ComponentStatus,
    /// The incidents (indexes into the caller's list) that held the
    /// component that day: the one that made it worst first, then the
    /// others in order.
    pub(super) incidents: Vec<usize>,
    /// The incident that made the day worst (the earliest of equals).
    pub(super) worst_by: Option<usize>,
}

/// The cells of one component, one per day of `days`. `held` pairs the
/// index of an incident with one of its segments for the component. The
/// bar shows what happened up to `now`, not what is scheduled.
pub(super) fn cells(days: &[Day], held: &[(usize, &Segment)], now: DateTime<Utc>) -> Vec<Cell> {
    let mut worst = vec![ComponentStatus::Operational; days.len()];
    let mut named: Vec<Vec<usize>> = vec![Vec::new(); days.len()];
    let mut worst_by: Vec<Option<usize>> = vec![None; days.len()];
    let (Some(first_day), Some(last_at)) = (days.first(), days.len().checked_sub(1)) else {
        return Vec::new();
    };
    for (incident, segment) in held {
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
    worst
        .into_iter()
        .zip(named)
        .zip(worst_by)
        .map(|((status, mut incidents), worst_by)| {
            incidents.sort_unstable();
            // The incident the cell links to (the worst) first.
            if let Some(worst) = worst_by
                && let Some(position) = incidents.iter().position(|at| *at == worst)
            {
                incidents[..=position].rotate_right(1);
            }
            Cell {
                status,
                incidents,
                worst_by,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// What a cell says.

/// The characters of incident titles one day of the bars may name, shared
/// by the components: each day's label keeps `DAY_TITLE_BUDGET / n` of
/// its title (at most [`DAY_TITLE_CHARS`], at least [`DAY_TITLE_MIN`]) on a
/// site of `n` components, so that the bars of a busy site, every cell a
/// link, still fit the index in 100 KB (`tests/pages.rs`,
/// `index_stays_small_when_every_day_is_bad`).
const DAY_TITLE_BUDGET: usize = 160;
const DAY_TITLE_CHARS: usize = 32;
const DAY_TITLE_MIN: usize = 12;

/// How much of an incident title a day's label keeps on a site of
/// `components` components.
fn day_title_chars(components: usize) -> usize {
    (DAY_TITLE_BUDGET / components.max(1)).clamp(DAY_TITLE_MIN, DAY_TITLE_CHARS)
}

/// `text` cut to at most `limit` characters, with `…` when cut.
fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", text[..at].trim_end()),
    }
}

/// One day of a component's history bar. An operational day is an empty
/// cell (the bar's hidden heading says so once); a bad one is a link to
/// the incident that made it worst, titled with what the day was (the
/// tooltip and the link's accessible name).
#[derive(Serialize)]
pub(super) struct DayView {
    /// The bar's one-letter class for the worst status of the day
    /// (`style.css` spells them out); `None` on an operational day, and
    /// then nothing below is set.
    class: Option<&'static str>,
    /// The status of the day, written out.
    label: &'static str,
    /// The local day: `2 sep` / `Sep 2`.
    date: String,
    /// The title of the incident that made the day worst, shortened.
    incident: String,
    /// How many more incidents held the component that day.
    more: usize,
    /// The page of the incident that made the day worst (the earliest of
    /// equals), so that a tap on a cell leads somewhere on a phone, where
    /// there are no tooltips.
    href: Option<String>,
}

/// The history-bar cells of one component. `held` pairs the index (into
/// `incidents`) of an incident with one of its segments for the component.
pub(super) fn day_views(
    site: &Site,
    home: &str,
    days: &[Day],
    held: &[(usize, &Segment)],
    incidents: &[&Incident],
) -> Vec<DayView> {
    let language = site.language();
    let title_chars = day_title_chars(site.config.components.len());
    days.iter()
        .zip(cells(days, held, site.now))
        .map(|(day, cell)| {
            let worst = cell.worst_by.and_then(|at| incidents.get(at));
            match (bar_class(cell.status), worst) {
                (Some(class), Some(worst)) => DayView {
                    class: Some(class),
                    label: i18n::component_status_label(language, cell.status),
                    date: i18n::day_of_bar(language, day.date),
                    incident: shorten(site.title(worst), title_chars),
                    more: cell.incidents.len().saturating_sub(1),
                    href: Some(format!("{home}{}", incident_path(&worst.id))),
                },
                _ => DayView {
                    class: None,
                    label: "",
                    date: String::new(),
                    incident: String::new(),
                    more: 0,
                    href: None,
                },
            }
        })
        .collect()
}

/// A history cell's class: one letter, since a busy page repeats it in
/// hundreds of cells; `None` for an operational day (the bar's default).
fn bar_class(status: ComponentStatus) -> Option<&'static str> {
    match status {
        ComponentStatus::Operational => None,
        ComponentStatus::Maintenance => Some("m"),
        ComponentStatus::Degraded => Some("d"),
        ComponentStatus::PartialOutage => Some("p"),
        ComponentStatus::MajorOutage => Some("x"),
    }
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
                names: Vec::new(),
                group_names: Vec::new(),
            })
            .collect();
        let context = crate::parse::Context {
            timezone: chrono_tz::UTC,
            components: &components,
            languages: &crate::model::Languages::one(crate::model::Language::En),
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
    fn the_bars_share_a_budget_of_title_characters() {
        assert_eq!(day_title_chars(0), 32);
        assert_eq!(day_title_chars(1), 32);
        assert_eq!(day_title_chars(5), 32);
        assert_eq!(day_title_chars(6), 26);
        assert_eq!(day_title_chars(8), 20);
        assert_eq!(day_title_chars(40), 12);
        assert_eq!(
            shorten("Fel i lagringssystemet påverkar webbhotellen", 32),
            "Fel i lagringssystemet påverkar…"
        );
        assert_eq!(shorten("Kort", 32), "Kort");
    }

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

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn a_cell_has_the_worst_status_of_its_day_and_names_its_cause_first() {
        let now = utc("2026-03-10T12:00:00Z");
        let days = days(chrono_tz::UTC, now);
        assert_eq!(days.len(), HISTORY_DAYS);
        assert_eq!(days[HISTORY_DAYS - 1].start, utc("2026-03-10T00:00:00Z"));
        let segment = |from: &str, until: Option<&str>, status| Segment {
            from: utc(from),
            until: until.map(utc),
            status,
        };
        let degraded = segment(
            "2026-03-08T10:00:00Z",
            Some("2026-03-09T01:00:00Z"),
            ComponentStatus::Degraded,
        );
        let outage = segment(
            "2026-03-08T20:00:00Z",
            Some("2026-03-08T21:00:00Z"),
            ComponentStatus::MajorOutage,
        );
        // Still holding: to the end of the bar.
        let open = segment("2026-03-09T23:00:00Z", None, ComponentStatus::Degraded);
        // Scheduled after `now`: not in the bar.
        let planned = segment(
            "2026-03-10T20:00:00Z",
            Some("2026-03-10T22:00:00Z"),
            ComponentStatus::Maintenance,
        );
        let held = [(0, &degraded), (1, &outage), (2, &open), (3, &planned)];
        let cells = cells(&days, &held, now);
        assert_eq!(cells.len(), HISTORY_DAYS);
        let last = |back: usize| &cells[HISTORY_DAYS - 1 - back];
        assert_eq!(
            *last(2),
            Cell {
                status: ComponentStatus::MajorOutage,
                incidents: vec![1, 0],
                worst_by: Some(1),
            }
        );
        assert_eq!(
            *last(1),
            Cell {
                status: ComponentStatus::Degraded,
                incidents: vec![0, 2],
                worst_by: Some(0),
            }
        );
        assert_eq!(
            *last(0),
            Cell {
                status: ComponentStatus::Degraded,
                incidents: vec![2],
                worst_by: Some(2),
            }
        );
        assert!(
            cells[..HISTORY_DAYS - 3].iter().all(|cell| cell.status
                == ComponentStatus::Operational
                && cell.incidents.is_empty())
        );
        assert_eq!(super::cells(&[], &held, now), []);
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
