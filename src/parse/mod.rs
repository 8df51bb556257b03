//! One incident file's text → `(Option<Incident>, Vec<Diagnostic>)`.
//!
//! Pure: the caller reads the file and passes the site's time zone and
//! components. Every problem is reported (not just the first) with the
//! byte offset of the offending text, turned into line:col by
//! [`LineIndex`]. Any error yields `None`: a broken file must not replace
//! the last good version of its incident.
//!
//! This module drives one file through its parts: `front` (the `+++`
//! fences and the TOML between them), `body` (the summary and the update
//! sections), `heading` (each update's `## DATE TIME [STATUS]`, and the
//! date-times of headings and of the front matter) and `markdown`
//! (CommonMark to safe HTML).

mod body;
mod front;
mod heading;
mod markdown;

#[cfg(test)]
pub(crate) mod fixtures;

use std::path::Path;

use chrono_tz::Tz;

use crate::diag::{Diagnostic, LineIndex};
use crate::model::{Component, Incident, IncidentId, Languages};

pub use front::{Split, split};
pub use markdown::render_markdown;

/// What a file is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub timezone: Tz,
    pub components: &'a [Component],
    /// The site's language, whose text comes first in an update, and the
    /// further ones a `### LANG` heading may start.
    pub languages: &'a Languages,
}

/// Parses one incident file. `path` names it in diagnostics and becomes
/// [`Incident::path`]; the incident id is its file stem.
pub fn parse_incident(
    path: &Path,
    text: &str,
    context: &Context,
) -> (Option<Incident>, Vec<Diagnostic>) {
    let index = LineIndex::new(text);
    let mut parser = FileParser {
        path,
        text,
        index: &index,
        context,
        diagnostics: Vec::new(),
    };
    let incident = parser.parse();
    let failed = parser.diagnostics.iter().any(Diagnostic::is_error);
    (incident.filter(|_| !failed), parser.diagnostics)
}

struct FileParser<'a> {
    path: &'a Path,
    text: &'a str,
    index: &'a LineIndex<'a>,
    context: &'a Context<'a>,
    diagnostics: Vec<Diagnostic>,
}

impl FileParser<'_> {
    fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::error(self.path, self.index, offset, message));
    }

    fn warning(&mut self, offset: usize, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(self.path, self.index, offset, message));
    }

    fn parse(&mut self) -> Option<Incident> {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = IncidentId::new(&stem);
        if id.is_none() {
            self.error(
                0,
                format!(
                    "invalid incident id `{stem}` (the file name), expected lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit, at most 100 characters"
                ),
            );
        }
        let split = match split(self.text) {
            Ok(split) => split,
            Err((offset, message)) => {
                self.error(offset, message);
                return None;
            }
        };
        let front = self.front_matter(&split);
        let body = self.body(&split, front.as_ref().map(|f| f.kind));
        let (front, body) = (front?, body?);
        let updates = body.updates;
        if updates.is_empty() {
            self.error(
                split.body.start,
                "expected at least one update, a heading such as `## 2019-04-04 08:00 investigating`",
            );
            return None;
        }
        self.partial_translations(&updates, &front);
        let (updates, joins) = self.order_updates(updates, &front)?;
        let mut components = front.components;
        components.extend(joins.iter().map(|(id, _)| id.clone()));
        Some(Incident {
            id: id?,
            path: self.path.to_owned(),
            title: front.title,
            titles: front.titles,
            components,
            joins,
            severity: front.severity,
            kind: front.kind,
            draft: front.draft,
            window: front.window,
            summary_markdown: body.summary,
            summary_translations: body.summary_translations,
            updates,
            timeline_cache: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{HEAD, check_diagnostics, components, parse};
    use super::*;
    use crate::model::{ComponentStatus, Status};
    use chrono_tz::Europe::Stockholm;
    use proptest::prelude::*;

    #[test]
    fn every_time_syntax_of_the_seed() {
        let text = format!(
            "{HEAD}Summary *here*.\n\n## 2019-04-04 10.20\nA\n\n## 2019-04-08 19:26 RESOLVED\nB\n\n## 2019-04-04 08:00 investigating\nC\n\n## 2019-04-05 18:34Z\nD\n\n## 2019-04-06 00:50+02:00 update\nE\n\n## 2019-04-05 09:16:42 identified\nF\n"
        );
        let (incident, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        let incident = incident.unwrap();
        let instants: Vec<String> = incident
            .updates
            .iter()
            .map(|u| u.instant.to_rfc3339())
            .collect();
        assert_eq!(
            instants,
            [
                "2019-04-04T06:00:00+00:00",
                "2019-04-04T08:20:00+00:00",
                "2019-04-05T07:16:42+00:00",
                "2019-04-05T18:34:00+00:00",
                "2019-04-05T22:50:00+00:00",
                "2019-04-08T17:26:00+00:00",
            ]
        );
        let statuses: Vec<&str> = incident.updates.iter().map(|u| u.status.as_str()).collect();
        // Omitted and `update` keep the previous status.
        assert_eq!(
            statuses,
            [
                "investigating",
                "investigating",
                "identified",
                "identified",
                "identified",
                "resolved"
            ]
        );
        assert_eq!(incident.updates[1].declared, None);
        assert_eq!(incident.updates[4].declared, Some(Status::Update));
        assert_eq!(
            render_markdown(&incident.summary_markdown),
            "<p>Summary <em>here</em>.</p>\n"
        );
        assert_eq!(incident.updates[0].line, 14);
        assert_eq!(incident.id.as_str(), "x");
    }

    #[test]
    fn duplicate_instants_and_bad_id() {
        check_diagnostics(
            &format!("{HEAD}\n## 2019-04-04 08:00\na\n## 2019-04-04 06:00Z\nb\n"),
            "incidents/x.md:9:1: error: two updates at the same instant 2019-04-04 06:00:00 UTC (the other is on line 7); updates need distinct times",
        );
        let components = components();
        let context = Context {
            timezone: Stockholm,
            components: &components,
            languages: &crate::model::Languages::new(
                crate::model::Language::Sv,
                &[crate::model::Language::En],
            )
            .unwrap(),
        };
        let (incident, diagnostics) = parse_incident(
            Path::new("incidents/Bad Name.md"),
            &format!("{HEAD}\n## 2019-04-04 08:00\n"),
            &context,
        );
        assert!(incident.is_none());
        assert_eq!(
            diagnostics[0].to_string(),
            "incidents/Bad Name.md:1:1: error: invalid incident id `Bad Name` (the file name), expected lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit, at most 100 characters"
        );
    }

    #[test]
    fn crlf_and_bom_files_parse() {
        let text = format!(
            "\u{feff}{HEAD}\n## 2019-04-04 08:00 identified\ncomponents: mail=degraded\nText.\n"
        )
        .replace('\n', "\r\n");
        let (incident, diagnostics) = parse(&text);
        assert_eq!(diagnostics, vec![]);
        let incident = incident.unwrap();
        assert_eq!(incident.updates[0].status, Status::Identified);
        assert_eq!(
            *incident.updates[0].component_statuses,
            [("mail".into(), ComponentStatus::Degraded)]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No input makes the parser panic, and every diagnostic points
        /// inside the file.
        #[test]
        fn never_panics_and_positions_are_inside(body in "(\\PC|\n|## |\\+\\+\\+|components: |20[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9][:.][0-5][0-9]| |=|,|\\[|\\]|\")*") {
            for text in [body.clone(), format!("{HEAD}{body}"), format!("+++\n{body}\n+++\n{body}")] {
                let (_, diagnostics) = parse(&text);
                let lines = text.split('\n').count() as u32;
                for diagnostic in diagnostics {
                    prop_assert!(diagnostic.line >= 1 && diagnostic.line <= lines, "{diagnostic} in {text:?}");
                    let line_text = text.split('\n').nth(diagnostic.line as usize - 1).unwrap_or("");
                    prop_assert!(diagnostic.column as usize <= line_text.chars().count() + 1, "{diagnostic}");
                }
            }
        }
    }
}
