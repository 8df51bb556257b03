//! `maintenance.ics`: parsed back with the `icalendar` crate's parser and
//! checked property by property, plus the RFC 5545 line rules on the raw
//! bytes.
//!
//! The incident texts leave a blank line after each `##` heading.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use herald::config::{self, Config};
use herald::model::IncidentId;
use herald::render::ics::calendar;
use herald::render::{Moved, Moves, Revisions, Site, Templates};
use icalendar::{Calendar, CalendarComponent, Component, Event, EventStatus};

#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/corpus.rs"]
mod support_corpus;
use support_corpus::corpus;

/// 22:00–02:00 local in December (CET) is 21:00–01:00 UTC. The title has a
/// comma, a semicolon, a backslash and a line break, all of which TEXT
/// values must escape.
const DNS_UPGRADE: &str = r#"+++
title = "DNS upgrade, phase 1; servers\\zone\nsecond line"
components = ["dns"]
severity = "minor"
kind = "maintenance"
starts = "2026-12-10 22:00"
ends = "2026-12-11 02:00"
+++

We upgrade the **name servers**.

## 2026-11-20 10:00 scheduled

Changes to records may take an hour.

## 2026-12-01 09:30 update

Plan unchanged; see [the notes](https://example.com/notes).
"#;

/// Announced, then called off before the window opened.
const CANCELLED: &str = r#"+++
title = "Mail move"
components = ["web"]
severity = "minor"
kind = "maintenance"
starts = "2026-06-10 22:00+02:00"
ends = "2026-06-11 01:00+02:00"
+++

## 2026-06-01 10:00 scheduled

We move mail.

## 2026-06-05 10:00 completed

Called off.
"#;

const INCIDENT: &str = r#"+++
title = "Web errors"
components = ["web"]
severity = "major"
+++

## 2026-11-02 08:47 investigating

Errors.
"#;

const DRAFT: &str = r#"+++
title = "Draft maintenance"
components = ["web"]
severity = "minor"
kind = "maintenance"
draft = true
starts = "2026-12-20 22:00"
ends = "2026-12-20 23:00"
+++

## 2026-11-20 10:00 scheduled

Not yet.
"#;

fn config() -> Config {
    let text = site_toml::site("Example Hosting status; night, shift")
        + &site_toml::components(&[("web", "Web hosting"), ("dns", "DNS")]);
    config::parse(Path::new("herald.toml"), &text).expect("test configuration is valid")
}

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("test instant is RFC 3339")
}

fn render_with(files: &[(&str, &str)], revisions: &Revisions, now: &str) -> String {
    render_moved(files, revisions, &Moves::new(), now)
}

fn render_moved(files: &[(&str, &str)], revisions: &Revisions, moves: &Moves, now: &str) -> String {
    let config = config();
    let corpus = corpus(&config, files);
    let templates = Templates::builtin();
    let site = Site::new(&config, &templates, revisions, moves, instant(now));
    String::from_utf8(calendar(&site, &corpus)).expect("the calendar is UTF-8")
}

fn render(files: &[(&str, &str)]) -> String {
    render_with(files, &HashMap::new(), "2026-12-01T12:00:00Z")
}

fn parse(text: &str) -> Calendar {
    Calendar::from_str(text).expect("the calendar parses")
}

fn events(calendar: &Calendar) -> Vec<&Event> {
    calendar
        .components
        .iter()
        .filter_map(|component| match component {
            CalendarComponent::Event(event) => Some(event),
            _ => None,
        })
        .collect()
}

fn value<'a>(event: &'a Event, key: &str) -> &'a str {
    event
        .property_value(key)
        .unwrap_or_else(|| panic!("event has no {key}"))
}

#[test]
fn one_event_per_published_maintenance() {
    let text = render(&[
        ("dns-upgrade.md", DNS_UPGRADE),
        ("web-errors.md", INCIDENT),
        ("draft.md", DRAFT),
        ("mail-move.md", CANCELLED),
    ]);
    let calendar = parse(&text);
    let uids: Vec<&str> = events(&calendar)
        .iter()
        .map(|event| value(event, "UID"))
        .collect();
    // Soonest window first; no plain incident, no draft.
    assert_eq!(
        uids,
        [
            "mail-move@status.example.com",
            "dns-upgrade@status.example.com"
        ]
    );
    assert_eq!(calendar.components.len(), 2);
    assert!(!text.contains("Web errors"));
    assert!(!text.contains("Draft"));
}

#[test]
fn event_properties() {
    let text = render(&[("dns-upgrade.md", DNS_UPGRADE)]);
    let calendar = parse(&text);
    let events = events(&calendar);
    let event = events[0];
    assert_eq!(value(event, "UID"), "dns-upgrade@status.example.com");
    assert_eq!(value(event, "DTSTART"), "20261210T210000Z");
    assert_eq!(value(event, "DTEND"), "20261211T010000Z");
    assert_eq!(
        event.get_start(),
        Some(instant("2026-12-10T21:00:00Z").into())
    );
    assert_eq!(
        event.get_end(),
        Some(instant("2026-12-11T01:00:00Z").into())
    );
    // From the data: the latest update, not the clock.
    assert_eq!(value(event, "DTSTAMP"), "20261201T083000Z");
    assert_eq!(value(event, "LAST-MODIFIED"), "20261201T083000Z");
    assert_eq!(value(event, "CREATED"), "20261120T090000Z");
    assert_eq!(value(event, "SEQUENCE"), "1");
    assert_eq!(event.get_status(), Some(EventStatus::Confirmed));
    assert_eq!(
        value(event, "URL"),
        "https://status.example.com/incidents/dns-upgrade.html"
    );
    assert_eq!(value(event, "TRANSP"), "TRANSPARENT");
    assert_eq!(
        event.get_summary(),
        Some("DNS upgrade, phase 1; servers\\zone\nsecond line")
    );
    assert_eq!(
        event.get_description(),
        Some(
            "We upgrade the name servers.\n\n\
             Scheduled, December 1, 2026 09:30 CET:\n\
             Plan unchanged; see the notes (https://example.com/notes).\n\n\
             https://status.example.com/incidents/dns-upgrade.html"
        )
    );
}

#[test]
fn text_is_escaped_in_the_raw_lines() {
    let text = render(&[("dns-upgrade.md", DNS_UPGRADE)]);
    assert!(
        text.contains("\r\nSUMMARY:DNS upgrade\\, phase 1\\; servers\\\\zone\\nsecond line\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nX-WR-CALNAME:Example Hosting status\\; night\\, shift\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nNAME:Example Hosting status\\; night\\, shift\r\n"),
        "{text}"
    );
}

#[test]
fn calendar_properties() {
    let text = render(&[("dns-upgrade.md", DNS_UPGRADE)]);
    assert!(text.starts_with("BEGIN:VCALENDAR\r\n"));
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    let calendar = parse(&text);
    assert_eq!(
        calendar.property_value("PRODID"),
        Some("-//herald//herald maintenance calendar//EN")
    );
    assert_eq!(calendar.property_value("VERSION"), Some("2.0"));
    assert_eq!(calendar.property_value("CALSCALE"), Some("GREGORIAN"));
    assert_eq!(calendar.property_value("METHOD"), Some("PUBLISH"));
    assert_eq!(
        calendar.property_value("X-WR-CALNAME"),
        Some("Example Hosting status; night, shift")
    );
    assert_eq!(
        calendar.property_value("X-WR-TIMEZONE"),
        Some("Europe/Stockholm")
    );
}

#[test]
fn lines_are_crlf_and_folded_at_75_octets() {
    let long = DNS_UPGRADE.replace(
        "Plan unchanged;",
        &"Ändringar av DNS-poster kan ta upp till en timme att slå igenom. ".repeat(6),
    );
    let text = render(&[("dns-upgrade.md", &long)]);
    let body = text.strip_suffix("\r\n").expect("ends with CRLF");
    let mut folded = 0;
    for line in body.split("\r\n") {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
        if line.starts_with(' ') {
            folded += 1;
        }
    }
    assert!(folded >= 5, "only {folded} continuation lines");
    // Unfolding gives back the text.
    let calendar = parse(&text);
    let description = events(&calendar)[0]
        .get_description()
        .expect("a description")
        .to_owned();
    assert!(
        description
            .contains("Ändringar av DNS-poster kan ta upp till en timme att slå igenom. Ändringar")
    );
}

/// Found by the `render` fuzz target (tests/fuzz/render/): the crate
/// folded the last piece of a long line into 75 octets after the leading
/// space, 76 in all, when it was exactly 75 long. Every length of the
/// summary, in ASCII and in two-octet characters, must fold within 75.
#[test]
fn no_folded_line_exceeds_75_octets_whatever_the_length() {
    for filler in ["x", "å"] {
        for length in 0..200 {
            let text =
                DNS_UPGRADE.replace("We upgrade the **name servers**.", &filler.repeat(length));
            let calendar = render(&[("dns-upgrade.md", &text)]);
            for line in calendar.split("\r\n") {
                assert!(
                    line.len() <= 75,
                    "{length} × {filler}: {} octets: {line:?}",
                    line.len()
                );
            }
            let description = value(events(&parse(&calendar))[0], "DESCRIPTION").to_owned();
            if length > 0 {
                assert!(
                    description.starts_with(&filler.repeat(length)),
                    "{length} × {filler}"
                );
            }
        }
    }
}

#[test]
fn completed_before_the_window_is_cancelled() {
    let calendar = parse(&render(&[("mail-move.md", CANCELLED)]));
    let events = events(&calendar);
    assert_eq!(events[0].get_status(), Some(EventStatus::Cancelled));
    assert_eq!(value(events[0], "DTSTART"), "20260610T200000Z");
    assert_eq!(value(events[0], "DTEND"), "20260610T230000Z");

    // Completed after it started: it happened.
    let done = CANCELLED.replace("2026-06-05 10:00 completed", "2026-06-11 00:30 completed");
    let calendar = parse(&render(&[("mail-move.md", &done)]));
    assert_eq!(events_status(&calendar), Some(EventStatus::Confirmed));
}

fn events_status(calendar: &Calendar) -> Option<EventStatus> {
    events(calendar)[0].get_status()
}

#[test]
fn sequence_grows_with_updates_and_edits() {
    let first_only = DNS_UPGRADE
        .split("## 2026-12-01")
        .next()
        .expect("text before the second update");
    let sequence = |text: &str, revisions: &Revisions| {
        let calendar = parse(&render_with(
            &[("dns-upgrade.md", text)],
            revisions,
            "2026-12-01T12:00:00Z",
        ));
        value(events(&calendar)[0], "SEQUENCE").to_owned()
    };
    assert_eq!(sequence(first_only, &HashMap::new()), "0");
    assert_eq!(sequence(DNS_UPGRADE, &HashMap::new()), "1");
    let mut revisions: Revisions = HashMap::new();
    revisions.insert(
        (
            IncidentId::new("dns-upgrade").expect("valid id"),
            instant("2026-11-20T09:00:00Z"),
        ),
        instant("2026-12-02T07:00:00Z"),
    );
    assert_eq!(sequence(DNS_UPGRADE, &revisions), "2");
    let calendar = parse(&render_with(
        &[("dns-upgrade.md", DNS_UPGRADE)],
        &revisions,
        "2026-12-01T12:00:00Z",
    ));
    assert_eq!(value(events(&calendar)[0], "DTSTAMP"), "20261202T070000Z");
}

#[test]
fn output_is_byte_identical_and_independent_of_now() {
    let files = [("dns-upgrade.md", DNS_UPGRADE), ("mail-move.md", CANCELLED)];
    let first = render_with(&files, &HashMap::new(), "2026-12-01T12:00:00Z");
    let second = render_with(&files, &HashMap::new(), "2026-12-01T12:00:00Z");
    let later = render_with(&files, &HashMap::new(), "2027-01-01T00:00:00Z");
    assert_eq!(first, second);
    assert_eq!(first, later);
}

#[test]
fn empty_calendar_is_valid() {
    let text = render(&[]);
    let calendar = parse(&text);
    assert!(calendar.components.is_empty());
    assert_eq!(calendar.property_value("METHOD"), Some("PUBLISH"));
}

#[test]
fn a_moved_window_raises_sequence_and_stamp_and_cancelled_is_cancelled() {
    let files = [("dns-upgrade.md", DNS_UPGRADE)];
    let moves = Moves::from([(
        IncidentId::new("dns-upgrade").expect("valid id"),
        Moved {
            count: 2,
            last: instant("2026-12-03T08:00:00Z"),
        },
    )]);
    let calendar = parse(&render_moved(
        &files,
        &HashMap::new(),
        &moves,
        "2026-12-01T12:00:00Z",
    ));
    let event = events(&calendar)[0];
    // One update after the first, and two moves.
    assert_eq!(value(event, "SEQUENCE"), "3");
    assert_eq!(value(event, "DTSTAMP"), "20261203T080000Z");
    assert_eq!(value(event, "LAST-MODIFIED"), "20261203T080000Z");

    let cancelled = DNS_UPGRADE.to_owned() + "\n## 2026-12-02 09:00 cancelled\n\nNot needed.\n";
    let calendar = parse(&render(&[("dns-upgrade.md", &cancelled)]));
    assert_eq!(events_status(&calendar), Some(EventStatus::Cancelled));
}

#[test]
fn a_component_calendar_holds_the_maintenance_affecting_it() {
    let config = config();
    let corpus = corpus(
        &config,
        &[("dns-upgrade.md", DNS_UPGRADE), ("mail-move.md", CANCELLED)],
    );
    let templates = Templates::builtin();
    let (revisions, moves) = (HashMap::new(), Moves::new());
    let site = Site::new(
        &config,
        &templates,
        &revisions,
        &moves,
        instant("2026-12-01T12:00:00Z"),
    );
    let dns = config.component("dns").expect("dns is configured");
    let text = String::from_utf8(herald::render::ics::component_calendar(&site, &corpus, dns))
        .expect("UTF-8");
    let calendar = parse(&text);
    let uids: Vec<&str> = events(&calendar)
        .iter()
        .map(|event| value(event, "UID"))
        .collect();
    assert_eq!(uids, ["dns-upgrade@status.example.com"]);
    assert_eq!(
        calendar.property_value("X-WR-CALNAME"),
        Some("Example Hosting status; night, shift: DNS")
    );
}
