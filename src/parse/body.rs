//! The body: the summary before the first level-2 heading, and one update
//! per heading (its optional `components:` line, then Markdown), ordered by
//! instant with omitted statuses resolved. Pure.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag};

use super::FileParser;
use super::front::{FrontMatter, Split, line_ranges};
use super::markdown::{markdown_options, render_markdown};
use crate::model::{ComponentStatus, Joins, Kind, Status, Update};

/// What an update's body holds besides its heading.
struct SectionBody {
    component_statuses: Vec<(String, ComponentStatus)>,
    notify: bool,
    markdown: String,
}

impl FileParser<'_> {
    /// Splits the body at its level-2 headings. Returns the summary and the
    /// updates in file order.
    pub(super) fn body(
        &mut self,
        split: &Split,
        kind: Option<Kind>,
    ) -> Option<(String, Vec<(Update, usize)>)> {
        let body_text = &self.text[split.body.clone()];
        let headings: Vec<Range<usize>> = Parser::new_ext(body_text, markdown_options())
            .into_offset_iter()
            .filter_map(|(event, range)| match event {
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H2,
                    ..
                }) => Some(split.body.start + range.start..split.body.start + range.end),
                _ => None,
            })
            .collect();
        let summary_end = headings.first().map_or(split.body.end, |h| h.start);
        let summary = self.text[split.body.start..summary_end].trim().to_owned();

        let mut ok = true;
        let mut updates = Vec::new();
        for (i, heading) in headings.iter().enumerate() {
            let section_end = headings
                .get(i + 1)
                .map_or(split.body.end, |next| next.start);
            let Some(parsed) = self.heading(heading.clone()) else {
                ok = false;
                continue;
            };
            if let (Some(Kind::Incident), Some(status)) = (kind, parsed.declared)
                && status.is_maintenance_only()
            {
                self.error(
                    parsed.status_offset,
                    format!(
                        "status `{}` is only for kind = \"maintenance\"",
                        status.as_str()
                    ),
                );
                ok = false;
            }
            let Some(SectionBody {
                component_statuses,
                notify,
                markdown: body_markdown,
            }) = self.section_body(heading.start..section_end)
            else {
                ok = false;
                continue;
            };
            let line = self.index.position(parsed.line_offset).0;
            updates.push((
                Update {
                    instant: parsed.instant,
                    declared: parsed.declared,
                    status: parsed.declared.unwrap_or(Status::Update),
                    component_statuses,
                    notify,
                    body_html: render_markdown(&body_markdown),
                    body_markdown,
                    line,
                },
                parsed.line_offset,
            ));
        }
        ok.then_some((summary, updates))
    }

    /// An update's body: optional `components:` and `notify:` lines at its
    /// top (each at most once, in either order), then Markdown.
    fn section_body(&mut self, range: Range<usize>) -> Option<SectionBody> {
        let section = &self.text[range.clone()];
        // Skip the heading line itself.
        let content_start = section.find('\n').map_or(section.len(), |i| i + 1);
        let mut parsed = SectionBody {
            component_statuses: Vec::new(),
            notify: true,
            markdown: String::new(),
        };
        let (mut seen_components, mut seen_notify, mut ok) = (false, false, true);
        let mut markdown_start = content_start;
        let lines = line_ranges(section, content_start)
            .filter(|line| !section[line.clone()].trim().is_empty());
        for line in lines {
            let line_text = &section[line.clone()];
            let trimmed = line_text.trim_start();
            let at = range.start + line.start + (line_text.len() - trimmed.len());
            if let Some(list) = trimmed.strip_prefix("components:") {
                if seen_components {
                    self.error(
                        at,
                        "a second `components:` line; give every component in one",
                    );
                    ok = false;
                } else {
                    let statuses =
                        self.components_line(list.trim_end_matches('\r'), at + "components:".len());
                    ok &= statuses.is_some();
                    parsed.component_statuses = statuses.unwrap_or_default();
                }
                seen_components = true;
            } else if let Some(value) = trimmed.strip_prefix("notify:") {
                let value_at = at + "notify:".len() + (value.len() - value.trim_start().len());
                match value.trim() {
                    _ if seen_notify => {
                        self.error(at, "a second `notify:` line");
                        ok = false;
                    }
                    "no" => parsed.notify = false,
                    "yes" => {}
                    other => {
                        self.error(
                            value_at,
                            format!("expected `notify: no` or `notify: yes`, found `{other}`"),
                        );
                        ok = false;
                    }
                }
                seen_notify = true;
            } else {
                break;
            }
            markdown_start = (line.end + 1).min(section.len());
        }
        parsed.markdown = section[markdown_start..].trim().to_owned();
        ok.then_some(parsed)
    }

    fn components_line(
        &mut self,
        list: &str,
        offset: usize,
    ) -> Option<Vec<(String, ComponentStatus)>> {
        let mut statuses: Vec<(String, ComponentStatus)> = Vec::new();
        let mut ok = true;
        let mut at = 0;
        for item in list.split(',') {
            let item_offset = offset + at + (item.len() - item.trim_start().len());
            at += item.len() + 1;
            let item = item.trim();
            let Some((id, status)) = item.split_once('=') else {
                self.error(
                    item_offset,
                    format!("expected `component=status`, found `{item}`"),
                );
                ok = false;
                continue;
            };
            let (id, status) = (id.trim(), status.trim());
            let status_offset = item_offset + item.find('=').unwrap_or(0) + 1;
            if !self.context.components.iter().any(|c| c.id == id) {
                let message = format!(
                    "unknown component `{id}`, expected one of {}",
                    self.component_list()
                );
                self.error(item_offset, message);
                ok = false;
            } else if statuses.iter().any(|(seen, _)| seen == id) {
                self.error(item_offset, format!("component `{id}` is given twice"));
                ok = false;
            }
            match ComponentStatus::parse(status) {
                Some(parsed) => statuses.push((id.to_owned(), parsed)),
                None => {
                    self.error(
                        status_offset,
                        format!(
                            "unknown component status `{status}`, expected one of operational, degraded, partial-outage, major-outage, maintenance"
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(statuses)
    }

    /// Sorts updates by instant, rejects duplicate instants, resolves
    /// omitted statuses, and returns the components that join the incident
    /// after its front matter's, with the instant each first appears in a
    /// `components:` line.
    pub(super) fn order_updates(
        &mut self,
        mut updates: Vec<(Update, usize)>,
        front: &FrontMatter,
    ) -> Option<(Vec<Update>, Joins)> {
        let mut ok = true;
        updates.sort_by_key(|(update, offset)| (update.instant, *offset));
        for pair in updates.windows(2) {
            let ((earlier, _), (later, later_offset)) = (&pair[0], &pair[1]);
            if earlier.instant == later.instant {
                let (first_line, second_offset) = if earlier.line < later.line {
                    (earlier.line, *later_offset)
                } else {
                    (later.line, pair[0].1)
                };
                self.error(
                    second_offset,
                    format!(
                        "two updates at the same instant {} (the other is on line {first_line}); updates need distinct times",
                        earlier.instant.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                );
                ok = false;
            }
        }
        let mut previous = match front.kind {
            Kind::Incident => Status::Investigating,
            Kind::Maintenance => Status::Scheduled,
        };
        let mut result = Vec::with_capacity(updates.len());
        let mut joins = Joins::new();
        for (mut update, _) in updates {
            update.status = match update.declared {
                None | Some(Status::Update) => previous,
                Some(status) => status,
            };
            previous = update.status;
            for (component, _) in &update.component_statuses {
                if !front.components.contains(component)
                    && !joins.iter().any(|(joined, _)| joined == component)
                {
                    joins.push((component.clone(), update.instant));
                }
            }
            result.push(update);
        }
        ok.then_some((result, joins))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ComponentStatus;
    use crate::parse::fixtures::{HEAD, check_diagnostics, parse, utc};

    #[test]
    fn components_line_and_implied_statuses() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00 investigating\nDown.\n\n## 2019-04-04 09:00\ncomponents: mail=major-outage , web-hosting=operational\nMail is worse.\n\n## 2019-04-04 10:00 resolved\nAll fine.\n"
        );
        let incident = parse(&text).0.unwrap();
        assert_eq!(
            incident.updates[1].component_statuses,
            vec![
                ("mail".into(), ComponentStatus::MajorOutage),
                ("web-hosting".into(), ComponentStatus::Operational)
            ]
        );
        assert_eq!(incident.updates[1].body_markdown, "Mail is worse.");
        let at = |t: &str, c: &str| incident.component_status_at(c, utc(t));
        assert_eq!(
            at("2019-04-04T05:59:00Z", "mail"),
            ComponentStatus::Operational
        );
        assert_eq!(
            at("2019-04-04T06:30:00Z", "mail"),
            ComponentStatus::PartialOutage
        );
        assert_eq!(
            at("2019-04-04T06:30:00Z", "web-hosting"),
            ComponentStatus::PartialOutage
        );
        assert_eq!(
            at("2019-04-04T07:30:00Z", "mail"),
            ComponentStatus::MajorOutage
        );
        assert_eq!(
            at("2019-04-04T07:30:00Z", "web-hosting"),
            ComponentStatus::Operational
        );
        assert_eq!(
            at("2019-04-04T08:00:00Z", "mail"),
            ComponentStatus::Operational
        );
        assert_eq!(
            at("2019-04-04T08:00:00Z", "dns"),
            ComponentStatus::Operational
        );
    }

    #[test]
    fn components_line_errors() {
        check_diagnostics(
            &format!(
                "{HEAD}\n## 2019-04-04 08:00\ncomponents: mail=down, dnss=operational, cloud\nx\n"
            ),
            r"
incidents/x.md:8:18: error: unknown component status `down`, expected one of operational, degraded, partial-outage, major-outage, maintenance
incidents/x.md:8:24: error: unknown component `dnss`, expected one of `web-hosting`, `mail`, `cloud`, `customer-portal`, `dns`
incidents/x.md:8:42: error: expected `component=status`, found `cloud`",
        );
        check_diagnostics(
            &format!(
                "{HEAD}\n## 2019-04-04 08:00\nnotify: maybe\ncomponents: mail=degraded\ncomponents: dns=degraded\nnotify: no\nx\n"
            ),
            r"
incidents/x.md:8:9: error: expected `notify: no` or `notify: yes`, found `maybe`
incidents/x.md:10:1: error: a second `components:` line; give every component in one
incidents/x.md:11:1: error: a second `notify:` line",
        );
    }

    #[test]
    fn a_component_named_later_joins_at_that_update() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00 investigating\nDown.\n\n## 2019-04-04 11:20\ncomponents: dns=major-outage\nDNS too.\n\n## 2019-04-04 12:00\nStill.\n\n## 2019-04-04 13:00 resolved\nFine.\n\n## 2019-04-04 14:00 investigating\nAgain.\n"
        );
        let incident = parse(&text).0.unwrap();
        assert_eq!(incident.components, ["web-hosting", "mail", "dns"]);
        assert_eq!(incident.front_components(), ["web-hosting", "mail"]);
        assert_eq!(
            incident.joins,
            [("dns".to_owned(), utc("2019-04-04T09:20:00Z"))]
        );
        let affected =
            |t: &str| -> Vec<&str> { incident.affected_at(utc(t)).map(String::as_str).collect() };
        assert_eq!(affected("2019-04-04T06:00:00Z"), ["web-hosting", "mail"]);
        assert_eq!(
            affected("2019-04-04T09:20:00Z"),
            ["web-hosting", "mail", "dns"]
        );
        let at = |t: &str| incident.component_status_at("dns", utc(t));
        assert_eq!(at("2019-04-04T06:00:00Z"), ComponentStatus::Operational);
        assert_eq!(at("2019-04-04T09:19:59Z"), ComponentStatus::Operational);
        assert_eq!(at("2019-04-04T09:20:00Z"), ComponentStatus::MajorOutage);
        assert_eq!(at("2019-04-04T10:30:00Z"), ComponentStatus::MajorOutage);
        assert_eq!(at("2019-04-04T11:30:00Z"), ComponentStatus::Operational);
        // Re-opened: every component that has joined takes the implied status.
        assert_eq!(at("2019-04-04T12:30:00Z"), ComponentStatus::PartialOutage);
        assert_eq!(
            incident.timeline()["dns"][0].from,
            utc("2019-04-04T09:20:00Z")
        );
        // Changes: the first update, the join, the resolution, the re-opening.
        let changes: Vec<bool> = incident
            .updates
            .iter()
            .map(|update| incident.is_change(update))
            .collect();
        assert_eq!(changes, [true, true, false, true, true]);
    }

    #[test]
    fn notify_no_makes_a_quiet_update_in_either_order() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00\nnotify: no\ncomponents: mail=degraded\n\nQuiet.\n\n## 2019-04-04 09:00\n  components: mail=operational\n notify: yes\nLoud.\n\n## 2019-04-04 10:00\nText first.\nnotify: no\n"
        );
        let incident = parse(&text).0.unwrap();
        let notify: Vec<bool> = incident.updates.iter().map(|u| u.notify).collect();
        assert_eq!(notify, [false, true, true]);
        assert_eq!(incident.updates[0].body_markdown, "Quiet.");
        assert_eq!(incident.updates[1].body_markdown, "Loud.");
        // Below the text, the line is text.
        assert_eq!(incident.updates[2].body_markdown, "Text first.\nnotify: no");
        assert_eq!(
            incident.updates[0].component_statuses,
            vec![("mail".into(), ComponentStatus::Degraded)]
        );
    }

    #[test]
    fn heading_inside_code_block_is_body() {
        let text = format!("{HEAD}\n## 2019-04-04 08:00\n```\n## not a heading\n```\n");
        let incident = parse(&text).0.unwrap();
        assert_eq!(incident.updates.len(), 1);
        assert!(incident.updates[0].body_html.contains("## not a heading"));
    }
}
