//! The body: the summary before the first level-2 heading, and one update
//! per heading (its optional `components:` line, then Markdown in the
//! site's language, then a `### LANG` section per further language),
//! ordered by instant with omitted statuses resolved. Pure.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag};

use super::FileParser;
use super::front::{FrontMatter, Split, line_ranges};
use super::markdown::markdown_options;
use crate::model::{ComponentStatus, Joins, Kind, Language, Status, Translation, Update};

/// A file's body, parsed.
pub(super) struct Body {
    /// The text before the first update, in the site's language.
    pub(super) summary: String,
    pub(super) summary_translations: Vec<Translation>,
    /// In file order, each with the offset of its heading.
    pub(super) updates: Vec<(Update, usize)>,
}

/// What follows an update's heading.
struct Section {
    component_statuses: Vec<(String, ComponentStatus)>,
    notify: bool,
    markdown: String,
    translations: Vec<Translation>,
}

impl FileParser<'_> {
    /// Splits the body at its level-2 headings. Returns the summary and the
    /// updates in file order.
    pub(super) fn body(&mut self, split: &Split, kind: Option<Kind>) -> Option<Body> {
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
        let summary = self.translations(split.body.start..summary_end);

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
            let Some(Section {
                component_statuses,
                notify,
                markdown: body_markdown,
                translations,
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
                    component_statuses: component_statuses.into(),
                    notify,
                    body_markdown: body_markdown.into(),
                    translations: translations.into(),
                    line,
                },
                parsed.line_offset,
            ));
        }
        let (summary, summary_translations) = summary?;
        ok.then_some(Body {
            summary,
            summary_translations,
            updates,
        })
    }

    /// An update's body: optional `components:` and `notify:` lines at its
    /// top (each at most once, in either order), then Markdown, then its
    /// translations.
    fn section_body(&mut self, range: Range<usize>) -> Option<Section> {
        let section = &self.text[range.clone()];
        // Skip the heading line itself.
        let content_start = section.find('\n').map_or(section.len(), |i| i + 1);
        let mut parsed = Section {
            component_statuses: Vec::new(),
            notify: true,
            markdown: String::new(),
            translations: Vec::new(),
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
        let (markdown, translations) =
            self.translations(range.start + markdown_start..range.end)?;
        parsed.markdown = markdown;
        parsed.translations = translations;
        ok.then_some(parsed)
    }

    /// Splits an update's text at its `### LANG` headings (a level-3
    /// heading whose whole text is the code of one of the site's further
    /// languages): the site's text before the first, then each
    /// translation.
    fn translations(&mut self, range: Range<usize>) -> Option<(String, Vec<Translation>)> {
        let text = &self.text[range.clone()];
        let languages = self.context.languages;
        let mut splits: Vec<(Language, Range<usize>)> = Vec::new();
        let mut ok = true;
        let headings = Parser::new_ext(text, markdown_options())
            .into_offset_iter()
            .filter_map(|(event, at)| match event {
                Event::Start(Tag::Heading {
                    level: HeadingLevel::H3,
                    ..
                }) => Some(at),
                _ => None,
            });
        for heading in headings {
            let source = text[heading.clone()].trim_end();
            // Only ATX headings: `### en`, optionally closed by `#`s.
            let Some(code) = source.strip_prefix("###") else {
                continue;
            };
            let code = code.trim().trim_end_matches('#').trim();
            let Some(language) = Language::parse(code) else {
                continue;
            };
            let offset = range.start + heading.start;
            if language == languages.site() {
                self.error(
                    offset,
                    format!(
                        "`### {code}` names the site's language; its text is the one before the first `### LANG` heading"
                    ),
                );
                ok = false;
            } else if !languages.others().contains(&language) {
                self.warning(
                    offset,
                    format!(
                        "`### {code}` is not one of the site's further languages (`languages` in [site]), so it stays a heading of the text"
                    ),
                );
            } else if splits.iter().any(|(seen, _)| *seen == language) {
                self.error(
                    offset,
                    format!("`### {code}` is given twice in this update"),
                );
                ok = false;
            } else {
                splits.push((language, heading));
            }
        }
        let own_end = splits
            .first()
            .map_or(text.len(), |(_, heading)| heading.start);
        let mut translations = Vec::with_capacity(splits.len());
        for (i, (language, heading)) in splits.iter().enumerate() {
            let end = splits.get(i + 1).map_or(text.len(), |(_, next)| next.start);
            let markdown = text[heading.end..end].trim().to_owned();
            if markdown.is_empty() {
                self.error(
                    range.start + heading.start,
                    format!(
                        "`### {}` has no text, expected the update in that language below it",
                        language.code()
                    ),
                );
                ok = false;
                continue;
            }
            translations.push(Translation {
                language: *language,
                body_markdown: markdown,
            });
        }
        ok.then(|| (text[..own_end].trim().to_owned(), translations))
    }

    /// Warns, at each update without it, when an incident's updates are
    /// only partly translated into a language, and at the title when
    /// updates are translated and the title is not.
    pub(super) fn partial_translations(
        &mut self,
        updates: &[(Update, usize)],
        front: &FrontMatter,
    ) {
        let site = self.context.languages.site();
        for language in self.context.languages.others() {
            let translated = updates
                .iter()
                .filter(|(update, _)| update.text_in(*language, site).is_some())
                .count();
            if translated == 0 {
                continue;
            }
            let (code, total) = (language.code(), updates.len());
            if !front.titles.iter().any(|(titled, _)| titled == language) {
                self.warning(
                    front.title_offset,
                    format!(
                        "the title has no `{code}` version (`title.{code} = \"…\"`), while {translated} of the {total} updates have `### {code}` text; its pages in `{code}` show the title in `{}`",
                        site.code()
                    ),
                );
            }
            if translated == total {
                continue;
            }
            let mut missing: Vec<&(Update, usize)> = updates
                .iter()
                .filter(|(update, _)| update.text_in(*language, site).is_none())
                .collect();
            missing.sort_by_key(|(_, offset)| *offset);
            for (_, offset) in missing {
                self.warning(
                    *offset,
                    format!(
                        "this update has no `### {code}` text, while {translated} of this incident's {total} updates have; readers in `{code}` get its `{}` text",
                        site.code()
                    ),
                );
            }
        }
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
    use crate::model::{ComponentStatus, Language};
    use crate::parse::fixtures::{HEAD, check_diagnostics, parse, utc};
    use crate::parse::render_markdown;

    #[test]
    fn components_line_and_implied_statuses() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00 investigating\nDown.\n\n## 2019-04-04 09:00\ncomponents: mail=major-outage , web-hosting=operational\nMail is worse.\n\n## 2019-04-04 10:00 resolved\nAll fine.\n"
        );
        let incident = parse(&text).0.unwrap();
        assert_eq!(
            *incident.updates[1].component_statuses,
            [
                ("mail".into(), ComponentStatus::MajorOutage),
                ("web-hosting".into(), ComponentStatus::Operational)
            ]
        );
        assert_eq!(&*incident.updates[1].body_markdown, "Mail is worse.");
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
            incident.timeline().get("dns").unwrap()[0].from,
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
        assert_eq!(&*incident.updates[0].body_markdown, "Quiet.");
        assert_eq!(&*incident.updates[1].body_markdown, "Loud.");
        // Below the text, the line is text.
        assert_eq!(
            &*incident.updates[2].body_markdown,
            "Text first.\nnotify: no"
        );
        assert_eq!(
            &*incident.updates[0].component_statuses,
            [("mail".into(), ComponentStatus::Degraded)]
        );
    }

    #[test]
    fn a_language_heading_starts_the_translation() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00 identified\ncomponents: mail=degraded\nFelet *hittat*.\n\n### Detaljer\nMer.\n\n### en\nFound *it*.\n\n### Details\nMore.\n\n## 2019-04-04 09:00\nBara svenska.\n```\n### en\n```\n"
        );
        let (incident, diagnostics) = parse(&text);
        let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "incidents/x.md:2:9: warning: the title has no `en` version (`title.en = \"…\"`), while 1 of the 2 updates have `### en` text; its pages in `en` show the title in `sv`",
                "incidents/x.md:20:1: warning: this update has no `### en` text, while 1 of this incident's 2 updates have; readers in `en` get its `sv` text"
            ]
        );
        let incident = incident.unwrap();
        let first = &incident.updates[0];
        assert_eq!(
            &*first.body_markdown,
            "Felet *hittat*.\n\n### Detaljer\nMer."
        );
        assert_eq!(first.translations.len(), 1);
        assert_eq!(
            first.translations[0].body_markdown,
            "Found *it*.\n\n### Details\nMore."
        );
        assert_eq!(
            render_markdown(&first.translations[0].body_markdown),
            "<p>Found <em>it</em>.</p>\n<h3>Details</h3>\n<p>More.</p>\n"
        );
        assert_eq!(
            *first.component_statuses,
            [("mail".into(), ComponentStatus::Degraded)]
        );
        // A heading in a code block is text.
        assert!(incident.updates[1].translations.is_empty());
        assert!(incident.updates[1].body_markdown.ends_with("### en\n```"));
    }

    #[test]
    fn a_title_per_language() {
        let head = "+++\ntitle.sv = \"Lagring\"\ntitle.en = \"Storage\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n";
        let (incident, diagnostics) = parse(&format!(
            "{head}\n## 2019-04-04 08:00\nNere.\n### en\nDown.\n"
        ));
        assert_eq!(diagnostics, vec![]);
        let incident = incident.unwrap();
        assert_eq!(incident.title, "Lagring");
        assert_eq!(incident.title_in(Language::En), "Storage");
        assert_eq!(incident.title_in(Language::Sv), "Lagring");
        let inline = "+++\ntitle = { sv = \"Lagring\", en = \"Storage\" }\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:00\nx\n";
        assert_eq!(parse(inline).0.unwrap().title_in(Language::En), "Storage");
    }

    #[test]
    fn language_heading_and_title_errors() {
        check_diagnostics(
            &format!(
                "{HEAD}\n## 2019-04-04 08:00\nx\n### sv\ny\n### en\nz\n### en\nw\n## 2019-04-04 09:00\nx\n### en\n\n"
            ),
            r"
incidents/x.md:9:1: error: `### sv` names the site's language; its text is the one before the first `### LANG` heading
incidents/x.md:13:1: error: `### en` is given twice in this update
incidents/x.md:17:1: error: `### en` has no text, expected the update in that language below it",
        );
        check_diagnostics(
            "+++\ntitle.en = \"Storage\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:00\nx\n",
            "incidents/x.md:2:1: error: `title` has no `sv` entry, expected the title in the site's language, such as title.sv = \"…\"",
        );
        check_diagnostics(
            "+++\ntitle = { sv = \"Lagring\", de = \"Speicher\", en = 3 }\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:00\nx\n",
            r"
incidents/x.md:2:9: error: unknown language `de` in `title`, expected `sv` or `en`
incidents/x.md:2:9: error: `title.en` must be a string",
        );
        check_diagnostics(
            "+++\ntitle = 3\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:00\nx\n",
            "incidents/x.md:2:9: error: `title` must be a string, or a table of strings by language such as title.en = \"…\"",
        );
    }

    #[test]
    fn a_language_the_site_lacks_stays_text_with_a_warning() {
        let components = crate::parse::fixtures::components();
        let languages = crate::model::Languages::one(Language::Sv);
        let context = crate::parse::Context {
            timezone: chrono_tz::Europe::Stockholm,
            components: &components,
            languages: &languages,
        };
        let text = "+++\ntitle.sv = \"Lagring\"\ntitle.en = \"Storage\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:00\nNere.\n### en\nDown.\n";
        let (incident, diagnostics) =
            crate::parse::parse_incident(std::path::Path::new("incidents/x.md"), text, &context);
        let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "incidents/x.md:2:1: warning: `title.en` is not in one of the site's languages (`languages` in [site]) and is not shown",
                "incidents/x.md:9:1: warning: `### en` is not one of the site's further languages (`languages` in [site]), so it stays a heading of the text",
            ]
        );
        let incident = incident.unwrap();
        assert_eq!(&*incident.updates[0].body_markdown, "Nere.\n### en\nDown.");
        assert!(incident.updates[0].translations.is_empty());
    }

    #[test]
    fn heading_inside_code_block_is_body() {
        let text = format!("{HEAD}\n## 2019-04-04 08:00\n```\n## not a heading\n```\n");
        let incident = parse(&text).0.unwrap();
        assert_eq!(incident.updates.len(), 1);
        assert!(render_markdown(&incident.updates[0].body_markdown).contains("## not a heading"));
    }
}
