//! `maintenance.ics`: scheduled maintenance as an RFC 5545 calendar that
//! customers subscribe to. Pure.
//!
//! One `VEVENT` per published maintenance, past ones included, soonest
//! window first. The `icalendar` crate builds, escapes and folds the lines
//! (CRLF, at most 75 octets: `refold` mends its folding). It would fill in
//! a missing `DTSTAMP` with the clock and a missing `UID` with a random
//! UUID, so both are always set here from the data:
//!
//! - `UID` is `{incident id}@{host of base_url}`, stable across rebuilds;
//! - `DTSTAMP` and `LAST-MODIFIED` are the latest update or edit of the
//!   maintenance, `CREATED` its first update;
//! - `SEQUENCE` counts the updates after the first, the edited updates and
//!   the moves of the window (a new `starts` or `ends`, as the state
//!   database recorded them: [`super::Moves`]), so it grows whenever the
//!   operator posts, edits or moves the window, and calendar clients take
//!   the new version; `DTSTAMP` is then the latest of those changes;
//! - `STATUS` is `CANCELLED` when the maintenance was `cancelled`, or
//!   closed (`completed` or `resolved`) before its window opened, else
//!   `CONFIRMED`;
//! - `TRANSP:TRANSPARENT`: a maintenance window does not make the
//!   subscriber busy.
//!
//! Nothing depends on `site.now`, so the calendar changes only when the
//! data does. Besides the site's calendar, each component has one with the
//! maintenance affecting it (`components/ID.ics`); an event has the same
//! UID in both.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};
use pulldown_cmark::{Event as MarkdownEvent, Options, Parser, Tag, TagEnd};

use crate::corpus::Corpus;
use crate::model::Incident;

use super::{Site, i18n, incident_url};

/// Identifies the program that wrote the calendar (RFC 5545 §3.7.3).
const PRODID: &str = "-//herald//herald maintenance calendar//EN";

/// How often subscribers' clients should refetch (RFC 7986 §5.7).
const REFRESH: &str = "PT1H";

/// Renders the calendar of every published maintenance.
pub fn calendar(site: &Site, corpus: &Corpus) -> Vec<u8> {
    let title = clean_text(site.site_title());
    calendar_of(site, corpus, &title, |_| true)
}

/// Renders the calendar of the published maintenance affecting
/// `component`.
pub fn component_calendar(
    site: &Site,
    corpus: &Corpus,
    component: &crate::model::Component,
) -> Vec<u8> {
    let title = clean_text(&format!(
        "{}: {}",
        site.site_title(),
        site.component_name(&component.id)
    ));
    calendar_of(site, corpus, &title, |incident| {
        incident.affects(&component.id)
    })
}

fn calendar_of(
    site: &Site,
    corpus: &Corpus,
    title: &str,
    filter: impl Fn(&Incident) -> bool,
) -> Vec<u8> {
    // The parser sets a window exactly on maintenance.
    let mut maintenances: Vec<&Incident> = corpus
        .published()
        .map(AsRef::as_ref)
        .filter(|incident| incident.window.is_some() && filter(incident))
        .collect();
    maintenances.sort_by(|a, b| {
        let a_starts = a.window.map(|w| w.starts);
        let b_starts = b.window.map(|w| w.starts);
        a_starts.cmp(&b_starts).then_with(|| a.id.cmp(&b.id))
    });

    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("CALSCALE", "GREGORIAN"))
        .append_property(Property::new("METHOD", "PUBLISH"))
        // `Calendar::name` would write NAME unescaped: the crate does not
        // know NAME (RFC 7986) is TEXT, so escape it here. X-WR-CALNAME is
        // an `X-` property, which the crate escapes as TEXT itself.
        .append_property(Property::new("NAME", escape_text(title)))
        .append_property(Property::new("X-WR-CALNAME", title))
        .append_property(Property::new("X-WR-TIMEZONE", site.timezone().name()))
        .append_property(
            Property::new("REFRESH-INTERVAL", REFRESH)
                .add_parameter("VALUE", "DURATION")
                .done(),
        )
        .append_property(Property::new("X-PUBLISHED-TTL", REFRESH));
    let host = host(&site.base_url());
    for incident in maintenances {
        if let Some(event) = event(site, incident, &host) {
            calendar.push(event);
        }
    }
    refold(&calendar.to_string()).into_bytes()
}

/// The calendar's lines folded again, at most 75 octets each and never
/// inside a character (RFC 5545 §3.1): the crate (0.17.17) lets the last
/// piece of a folded line reach 76 octets with its leading space. Its
/// folds (CRLF and a space) are undone first; escaped values hold no
/// other line break.
fn refold(text: &str) -> String {
    const LIMIT: usize = 75;
    let unfolded = text.replace("\r\n ", "");
    let mut folded = String::with_capacity(unfolded.len() + unfolded.len() / 24);
    for line in unfolded.split_inclusive("\r\n") {
        let (mut rest, end) = line
            .strip_suffix("\r\n")
            .map_or((line, ""), |content| (content, "\r\n"));
        // The first piece of a line, then pieces after a space.
        let mut room = LIMIT;
        while rest.len() > room {
            let mut at = room;
            while !rest.is_char_boundary(at) {
                at -= 1;
            }
            folded.push_str(&rest[..at]);
            folded.push_str("\r\n ");
            rest = &rest[at..];
            room = LIMIT - 1;
        }
        folded.push_str(rest);
        folded.push_str(end);
    }
    folded
}

fn event(site: &Site, incident: &Incident, host: &str) -> Option<Event> {
    let window = incident.window?;
    let first = incident.updates.first()?;
    let latest = incident.updates.last()?;
    let moved = site.moves.get(&incident.id);
    let stamp: DateTime<Utc> = incident
        .updates
        .iter()
        .map(|update| site.edited(incident, update))
        .chain(moved.map(|moved| moved.last))
        .max()
        .unwrap_or(latest.instant);
    let edited = incident
        .updates
        .iter()
        .filter(|update| site.edited(incident, update) > update.instant)
        .count();
    let sequence = u32::try_from(incident.updates.len() - 1 + edited)
        .unwrap_or(u32::MAX)
        .saturating_add(moved.map_or(0, |moved| moved.count));
    let cancelled = incident.is_cancelled()
        || incident
            .closed_at()
            .is_some_and(|closed| closed < window.starts);
    let url = incident_url(&site.base_url(), &incident.id);

    let mut event = Event::new();
    event
        .uid(&format!("{}@{host}", incident.id))
        .timestamp(stamp)
        .append_property(Property::new("CREATED", utc(first.instant)))
        .append_property(Property::new("LAST-MODIFIED", utc(stamp)))
        .sequence(sequence)
        .starts(window.starts)
        .ends(window.ends)
        .summary(&clean_text(site.title(incident)))
        .description(&description(site, incident, &url))
        .url(&url)
        .status(if cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        })
        .append_property(Property::new("TRANSP", "TRANSPARENT"));
    Some(event.done())
}

/// The summary, then the latest update under its status and time, then
/// the link, all as plain text.
fn description(site: &Site, incident: &Incident, url: &str) -> String {
    let language = site.language();
    let mut parts = Vec::new();
    let summary = plain_text(site.summary(incident).markdown);
    if !summary.is_empty() {
        parts.push(summary);
    }
    if let Some(latest) = incident.updates.last() {
        let heading = format!(
            "{}, {}:",
            i18n::status_label(language, latest.status),
            i18n::date_time(language, latest.instant, site.timezone())
        );
        let body = plain_text(site.text(latest).markdown);
        parts.push(if body.is_empty() {
            heading
        } else {
            format!("{heading}\n{body}")
        });
    }
    parts.push(url.to_owned());
    clean_text(&parts.join("\n\n"))
}

/// An RFC 5545 UTC DATE-TIME: `20261210T210000Z`.
fn utc(instant: DateTime<Utc>) -> String {
    instant.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The host (and port) of `base_url`: the right-hand side of every UID,
/// and the summary's page id.
pub(super) fn host(base_url: &str) -> String {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host.to_ascii_lowercase()
}

/// TEXT values may not hold control characters other than tab (RFC 5545
/// §3.3.11); line breaks become `\n` escapes in the crate, so keep `\n`
/// and drop the rest (a `\r` of a CRLF file included).
fn clean_text(text: &str) -> String {
    text.chars()
        .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
        .collect()
}

/// RFC 5545 §3.3.11 TEXT escaping, for the one property the crate does not
/// escape (NAME).
fn escape_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            ';' => escaped.push_str("\\;"),
            ',' => escaped.push_str("\\,"),
            '\n' => escaped.push_str("\\n"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// CommonMark → plain text for calendar clients, which show DESCRIPTION
/// as is: paragraphs separated by a blank line, soft breaks joined, list
/// items on their own lines with `-` or their number, link targets in
/// parentheses after the link text.
fn plain_text(markdown: &str) -> String {
    let mut out = String::new();
    let mut lists: Vec<Option<u64>> = Vec::new();
    let mut links: Vec<String> = Vec::new();
    let mut item_start = false;
    for event in Parser::new_ext(markdown, Options::empty()) {
        match event {
            MarkdownEvent::Start(Tag::List(start)) => {
                if lists.is_empty() {
                    block_break(&mut out);
                }
                lists.push(start);
            }
            MarkdownEvent::End(TagEnd::List(_)) => {
                lists.pop();
            }
            MarkdownEvent::Start(Tag::Item) => {
                line_break(&mut out);
                out.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
                match lists.last_mut() {
                    Some(Some(number)) => {
                        out.push_str(&format!("{number}. "));
                        *number += 1;
                    }
                    _ => out.push_str("- "),
                }
                item_start = true;
            }
            MarkdownEvent::Start(
                Tag::Paragraph | Tag::Heading { .. } | Tag::BlockQuote(_) | Tag::CodeBlock(_),
            ) => {
                if item_start {
                    // The first paragraph of a loose list item goes on the
                    // bullet's line.
                } else if lists.is_empty() {
                    block_break(&mut out);
                } else {
                    line_break(&mut out);
                }
            }
            MarkdownEvent::Start(Tag::Link { dest_url, .. }) => links.push(dest_url.into_string()),
            MarkdownEvent::End(TagEnd::Link) => {
                if let Some(url) = links.pop()
                    && !url.is_empty()
                    && !out.ends_with(url.as_str())
                {
                    out.push_str(&format!(" ({url})"));
                }
            }
            MarkdownEvent::Text(text)
            | MarkdownEvent::Code(text)
            | MarkdownEvent::Html(text)
            | MarkdownEvent::InlineHtml(text) => {
                item_start = false;
                out.push_str(&text);
            }
            MarkdownEvent::SoftBreak => out.push(' '),
            MarkdownEvent::HardBreak => out.push('\n'),
            MarkdownEvent::Rule => block_break(&mut out),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// Ends the current block with one blank line.
fn block_break(out: &mut String) {
    if out.is_empty() {
        return;
    }
    let kept = out.trim_end().len();
    out.truncate(kept);
    out.push_str("\n\n");
}

/// Ends the current line.
fn line_break(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_plain_text() {
        let markdown = "Natten mellan den 10 och 11 december\nuppgraderar vi **DNS**.\n\n\
                        - svarar *namnservrarna*\n  som vanligt\n- går det inte\n\n\
                        1. ett\n2. två\n\n\
                        Läs [mer](https://example.se/dns) eller <https://example.se/x>.\n\n\
                        Raw <b>html</b> stays text.";
        assert_eq!(
            plain_text(markdown),
            "Natten mellan den 10 och 11 december uppgraderar vi DNS.\n\n\
             - svarar namnservrarna som vanligt\n- går det inte\n\n\
             1. ett\n2. två\n\n\
             Läs mer (https://example.se/dns) eller https://example.se/x.\n\n\
             Raw <b>html</b> stays text."
        );
    }

    #[test]
    fn loose_and_nested_lists() {
        assert_eq!(plain_text("- a\n\n- b\n  - c\n"), "- a\n- b\n  - c");
    }

    #[test]
    fn text_escaping() {
        assert_eq!(escape_text("a\\b;c,d\ne:f"), "a\\\\b\\;c\\,d\\ne:f");
    }

    #[test]
    fn control_characters_are_dropped() {
        assert_eq!(clean_text("a\r\nb\u{7}c\td"), "a\nbc\td");
    }

    #[test]
    fn host_of_base_url() {
        assert_eq!(host("https://status.example.se/"), "status.example.se");
        assert_eq!(host("http://Example.com:8080/status/"), "example.com:8080");
    }
}
