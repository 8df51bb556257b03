//! Uptime per component over the last 30 and 90 days, from the published
//! incidents' timelines. Pure.
//!
//! Statuspage's weighting: time in a major outage counts as down, time in
//! a partial outage counts 30 % as down, and degraded performance and
//! maintenance count as up. Where incidents overlap, the worst status
//! counts once. Time after `now` is not counted; the window always spans
//! the whole 30 or 90 days, so a site with a short history reads high.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::corpus::Corpus;
use crate::model::{ComponentStatus, Segment};

use super::super::Site;
use super::super::history::settled_before;

/// A component's uptime in percent, rounded down to hundredths so that a
/// minute's outage never shows as 100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uptime {
    #[serde(rename = "30d")]
    pub days_30: f64,
    #[serde(rename = "90d")]
    pub days_90: f64,
}

/// Every configured component's uptime as of `site.now`, by id, in the
/// configuration's order. Incidents settled before the 90 days begin are
/// skipped without computing their timelines.
pub fn per_component(site: &Site, corpus: &Corpus) -> Vec<(String, Uptime)> {
    let start = site.now - Duration::days(90);
    let mut held: HashMap<&str, Vec<&Segment>> = HashMap::new();
    for incident in corpus
        .published()
        .filter(|incident| !settled_before(incident, start))
    {
        for (component, segments) in incident.timeline() {
            held.entry(component.as_str())
                .or_default()
                .extend(segments.iter());
        }
    }
    site.config
        .components
        .iter()
        .map(|component| {
            let segments = held
                .get(component.id.as_str())
                .map_or(&[][..], Vec::as_slice);
            let uptime = Uptime {
                days_30: percent(segments, site.now, 30),
                days_90: percent(segments, site.now, 90),
            };
            (component.id.clone(), uptime)
        })
        .collect()
}

/// How much of a second in `status` counts as down, in thousandths.
fn weight(status: ComponentStatus) -> i64 {
    match status {
        ComponentStatus::MajorOutage => 1000,
        ComponentStatus::PartialOutage => 300,
        ComponentStatus::Operational | ComponentStatus::Degraded | ComponentStatus::Maintenance => {
            0
        }
    }
}

/// The uptime in percent over the `days` days before `now`.
///
/// One sweep over the instants where a segment starts or ends: between
/// two neighbours, the worst status held is counted, found from how many
/// segments of each weight are open there (sorting, not a look at every
/// segment for every interval: a site with thousands of incidents in 90
/// days takes milliseconds).
pub fn percent(segments: &[&Segment], now: DateTime<Utc>, days: i64) -> f64 {
    let start = now - Duration::days(days);
    let clip = |instant: DateTime<Utc>| instant.clamp(start, now);
    // Each segment opens at its clipped start and closes at its clipped
    // end; one that is empty within the window holds no interval.
    let mut edges: Vec<(DateTime<Utc>, i64, i32)> = Vec::with_capacity(segments.len() * 2);
    for segment in segments {
        let (from, until) = (clip(segment.from), clip(segment.until.unwrap_or(now)));
        let weight = weight(segment.status);
        if from < until && weight > 0 {
            edges.push((from, weight, 1));
            edges.push((until, weight, -1));
        }
    }
    edges.sort_unstable();
    // Open segments by weight: a major outage (1000), a partial one (300).
    let mut open: [i64; 2] = [0, 0];
    let mut down: i64 = 0;
    let mut previous = start;
    for (instant, weight, step) in edges {
        let worst = if open[0] > 0 {
            1000
        } else if open[1] > 0 {
            300
        } else {
            0
        };
        down += worst * (instant - previous).num_seconds();
        previous = instant;
        open[usize::from(weight != 1000)] += i64::from(step);
    }
    let total = (now - start).num_seconds() * 1000;
    if total <= 0 {
        return 100.0;
    }
    // Hundredths of a percent, rounded down.
    let up = (total - down).max(0) as i128 * 10_000 / total as i128;
    up as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike as _;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn segment(from: &str, until: Option<&str>, status: ComponentStatus) -> Segment {
        Segment {
            from: at(from),
            until: until.map(at),
            status,
        }
    }

    #[test]
    fn no_outage_is_full_uptime() {
        let now = at("2026-03-31T00:00:00Z");
        assert_eq!(percent(&[], now, 30), 100.0);
        let degraded = segment(
            "2026-03-30T00:00:00Z",
            Some("2026-03-30T12:00:00Z"),
            ComponentStatus::Degraded,
        );
        assert_eq!(percent(&[&degraded], now, 30), 100.0);
    }

    #[test]
    fn a_major_outage_counts_whole_and_a_partial_one_at_30_percent() {
        let now = at("2026-03-31T00:00:00Z");
        // 3 days of 30: 10 % down.
        let major = segment(
            "2026-03-20T00:00:00Z",
            Some("2026-03-23T00:00:00Z"),
            ComponentStatus::MajorOutage,
        );
        assert_eq!(percent(&[&major], now, 30), 90.0);
        assert_eq!(percent(&[&major], now, 90), 96.66);
        let partial = segment(
            "2026-03-20T00:00:00Z",
            Some("2026-03-23T00:00:00Z"),
            ComponentStatus::PartialOutage,
        );
        assert_eq!(percent(&[&partial], now, 30), 97.0);
    }

    #[test]
    fn overlaps_count_the_worst_once_and_the_window_clips() {
        let now = at("2026-03-31T00:00:00Z");
        let major = segment(
            "2026-03-20T00:00:00Z",
            Some("2026-03-23T00:00:00Z"),
            ComponentStatus::MajorOutage,
        );
        let partial = segment(
            "2026-03-19T00:00:00Z",
            Some("2026-03-22T00:00:00Z"),
            ComponentStatus::PartialOutage,
        );
        // 1 day at 30 %, 3 days whole: 3.3 days of 30.
        assert_eq!(percent(&[&major, &partial], now, 30), 89.0);
        // Still open, begun before the window: the whole window is down;
        // a minute's outage never reads 100.
        let open = segment("2025-01-01T00:00:00Z", None, ComponentStatus::MajorOutage);
        assert_eq!(percent(&[&open], now, 30), 0.0);
        let minute = segment(
            "2026-03-30T00:00:00Z",
            Some("2026-03-30T00:01:00Z"),
            ComponentStatus::MajorOutage,
        );
        assert_eq!(percent(&[&minute], now, 90), 99.99);
        // After now: not counted.
        let future = segment(
            "2026-04-01T00:00:00Z",
            Some("2026-04-02T00:00:00Z"),
            ComponentStatus::MajorOutage,
        );
        assert_eq!(percent(&[&future], now, 30), 100.0);
    }

    /// The definition: every interval between two instants where a
    /// segment starts or ends, at the worst status of the segments that
    /// cover it whole.
    fn by_definition(segments: &[&Segment], now: DateTime<Utc>, days: i64) -> f64 {
        let start = now - Duration::days(days);
        let clip = |instant: DateTime<Utc>| instant.clamp(start, now);
        let mut bounds: Vec<DateTime<Utc>> = vec![start, now];
        for segment in segments {
            bounds.push(clip(segment.from));
            bounds.push(clip(segment.until.unwrap_or(now)));
        }
        bounds.sort();
        bounds.dedup();
        let mut down: i64 = 0;
        for pair in bounds.windows(2) {
            let (from, until) = (pair[0], pair[1]);
            let worst = segments
                .iter()
                .filter(|s| s.from <= from && s.until.is_none_or(|end| end >= until))
                .map(|s| weight(s.status))
                .max()
                .unwrap_or(0);
            down += worst * (until - from).num_seconds();
        }
        let total = (now - start).num_seconds() * 1000;
        let up = (total - down).max(0) as i128 * 10_000 / total as i128;
        up as f64 / 100.0
    }

    #[test]
    fn the_sweep_agrees_with_the_definition() {
        // A now with a fraction of a second, as the clock gives it.
        let now = at("2026-03-31T12:34:56.789Z");
        let statuses = [
            ComponentStatus::MajorOutage,
            ComponentStatus::PartialOutage,
            ComponentStatus::Degraded,
            ComponentStatus::Maintenance,
        ];
        // A small linear congruential generator: the same cases each run.
        let mut state: u64 = 2026;
        let mut next = |below: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        for case in 0..300 {
            let list: Vec<Segment> = (0..next(12))
                .map(|_| {
                    // From 100 days before now to 5 days after, in minutes.
                    let from =
                        now - Duration::minutes(144_000) + Duration::minutes(next(151_200) as i64);
                    let until =
                        (next(5) > 0).then(|| from + Duration::minutes(next(20_000) as i64));
                    Segment {
                        from: from.with_nanosecond(0).unwrap(),
                        until: until.map(|until| until.with_nanosecond(0).unwrap()),
                        status: statuses[next(4) as usize],
                    }
                })
                .collect();
            let segments: Vec<&Segment> = list.iter().collect();
            for days in [30, 90] {
                assert_eq!(
                    percent(&segments, now, days),
                    by_definition(&segments, now, days),
                    "case {case}, {days} days: {list:?}"
                );
            }
        }
    }
}
