//! The front matter: the `+++` fences that split a file, and the TOML
//! between them (title, components, severity, kind, the maintenance
//! window). Pure.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use super::FileParser;
use crate::model::{Kind, Language, Severity, Window};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontMatter {
    /// A string in the site's language, or a table by language code.
    title: Spanned<toml::Value>,
    components: Spanned<Vec<Spanned<String>>>,
    severity: Option<Spanned<String>>,
    kind: Option<Spanned<String>>,
    draft: Option<bool>,
    starts: Option<Spanned<toml::Value>>,
    ends: Option<Spanned<toml::Value>>,
}

/// The file split at its `+++` lines. Offsets are into the whole text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The TOML between the fences.
    pub front: Range<usize>,
    /// Everything after the closing fence's line.
    pub body: Range<usize>,
}

/// Finds the front matter. Returns the offset and message of the problem
/// when the fences are missing.
pub fn split(text: &str) -> Result<Split, (usize, &'static str)> {
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut lines = line_ranges(text, start);
    let first = lines.next().ok_or((
        start,
        "expected `+++` to open the front matter, found an empty file",
    ))?;
    if text[first.clone()].trim_end() != "+++" {
        return Err((
            start,
            "expected `+++` on the first line to open the front matter",
        ));
    }
    for line in lines {
        if text[line.clone()].trim_end() == "+++" {
            let body_start = (line.end + 1).min(text.len());
            return Ok(Split {
                front: first.end + 1..line.start,
                body: body_start..text.len(),
            });
        }
    }
    Err((
        start,
        "front matter opened with `+++` is never closed, expected a second `+++` line",
    ))
}

/// Ranges of each line's content (without the `\n`), starting at `from`.
pub(super) fn line_ranges(text: &str, from: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        let range = at..end;
        at = end + 1;
        Some(range)
    })
}

pub(super) struct FrontMatter {
    pub(super) title: String,
    /// The title in further languages.
    pub(super) titles: Vec<(Language, String)>,
    /// Where `title` is written, for diagnostics.
    pub(super) title_offset: usize,
    pub(super) components: Vec<String>,
    pub(super) severity: Severity,
    pub(super) kind: Kind,
    pub(super) draft: bool,
    pub(super) window: Option<Window>,
}

impl FileParser<'_> {
    /// `title = "…"` in the site's language, or `title.sv = "…"` and
    /// `title.en = "…"`: a table by language code, the site's language
    /// among them. Returns the site's title and the others.
    fn titles(
        &mut self,
        value: &toml::Value,
        offset: usize,
    ) -> Option<(String, Vec<(Language, String)>)> {
        let languages = self.context.languages;
        let site = languages.site();
        let (title, titles) = match value {
            toml::Value::String(title) => (title.trim().to_owned(), Vec::new()),
            toml::Value::Table(table) => {
                let mut ok = true;
                let mut own = None;
                let mut titles = Vec::new();
                for (code, value) in table {
                    let language = Language::parse(code);
                    let text = value.as_str().map(|text| text.trim().to_owned());
                    match (language, text) {
                        (_, None) => {
                            self.error(offset, format!("`title.{code}` must be a string"));
                            ok = false;
                        }
                        (None, _) => {
                            self.error(
                                offset,
                                format!(
                                    "unknown language `{code}` in `title`, expected `sv` or `en`"
                                ),
                            );
                            ok = false;
                        }
                        (Some(_), Some(text)) if text.is_empty() => {
                            self.error(offset, format!("`title.{code}` is empty"));
                            ok = false;
                        }
                        (Some(language), Some(text)) if language == site => own = Some(text),
                        (Some(language), Some(text)) => {
                            if !languages.others().contains(&language) {
                                self.warning(
                                    offset,
                                    format!(
                                        "`title.{code}` is not in one of the site's languages (`languages` in [site]) and is not shown"
                                    ),
                                );
                            }
                            titles.push((language, text));
                        }
                    }
                }
                let Some(own) = own else {
                    if ok {
                        self.error(
                            offset,
                            format!(
                                "`title` has no `{0}` entry, expected the title in the site's language, such as title.{0} = \"…\"",
                                site.code()
                            ),
                        );
                    }
                    return None;
                };
                if !ok {
                    return None;
                }
                (own, titles)
            }
            _ => {
                self.error(
                    offset,
                    "`title` must be a string, or a table of strings by language such as title.en = \"…\"",
                );
                return None;
            }
        };
        if title.is_empty() {
            self.error(offset, "`title` is empty");
            return None;
        }
        Some((title, titles))
    }

    pub(super) fn front_matter(&mut self, split: &Split) -> Option<FrontMatter> {
        let toml_text = &self.text[split.front.clone()];
        let raw: RawFrontMatter = match toml::from_str(toml_text) {
            Ok(raw) => raw,
            Err(error) => {
                let offset = split.front.start + error.span().map_or(0, |span| span.start);
                self.error(offset, error.message().trim_end().to_owned());
                return None;
            }
        };
        let at = |span: Range<usize>| split.front.start + span.start;
        let mut ok = true;

        let title_offset = at(raw.title.span());
        let (title, titles) = match self.titles(raw.title.get_ref(), title_offset) {
            Some(found) => found,
            None => {
                ok = false;
                (String::new(), Vec::new())
            }
        };

        let kind = match &raw.kind {
            None => Kind::Incident,
            Some(kind) => match Kind::parse(kind.get_ref()) {
                Some(kind) => kind,
                None => {
                    self.error(
                        at(kind.span()),
                        format!(
                            "unknown kind `{}`, expected `incident` or `maintenance`",
                            kind.get_ref()
                        ),
                    );
                    ok = false;
                    Kind::Incident
                }
            },
        };

        let severity = match &raw.severity {
            None if kind == Kind::Maintenance => Severity::Minor,
            None => {
                self.error(
                    split.front.start,
                    "missing field `severity`, expected `minor`, `major` or `critical`",
                );
                ok = false;
                Severity::Minor
            }
            Some(severity) => Severity::parse(severity.get_ref()).unwrap_or_else(|| {
                self.error(
                    at(severity.span()),
                    format!(
                        "unknown severity `{}`, expected `minor`, `major` or `critical`",
                        severity.get_ref()
                    ),
                );
                ok = false;
                Severity::Minor
            }),
        };

        let mut components: Vec<String> = Vec::new();
        if raw.components.get_ref().is_empty() {
            self.error(
                at(raw.components.span()),
                "`components` is empty, expected at least one component id",
            );
            ok = false;
        }
        for component in raw.components.get_ref() {
            let id = component.get_ref();
            if !self.context.components.iter().any(|c| &c.id == id) {
                let message = format!(
                    "unknown component `{id}`, expected one of {}",
                    self.component_list()
                );
                self.error(at(component.span()), message);
                ok = false;
            } else if components.contains(id) {
                self.error(
                    at(component.span()),
                    format!("component `{id}` is listed twice"),
                );
                ok = false;
            } else {
                components.push(id.clone());
            }
        }

        let mut instant = |value: &Option<Spanned<toml::Value>>,
                           name: &str|
         -> Option<DateTime<Utc>> {
            let value = value.as_ref()?;
            let offset = at(value.span());
            let text = match value.get_ref() {
                toml::Value::String(text) => text.clone(),
                toml::Value::Datetime(datetime) => datetime.to_string().replace('T', " "),
                _ => {
                    self.error(
                        offset,
                        format!("`{name}` must be a date and time such as \"2026-12-10 22:00\""),
                    );
                    ok = false;
                    return None;
                }
            };
            // Point into the string, past its opening quote.
            let quote = usize::from(matches!(value.get_ref(), toml::Value::String(_)));
            // `DATE TIME`, split at the first run of spaces.
            let start = offset + quote;
            let (date_text, rest) = text.split_once(' ').unwrap_or((&text, ""));
            let time_text = rest.trim_start();
            let time_offset = start + text.len() - time_text.len();
            match self.date_time((date_text, start), (time_text, time_offset)) {
                Some(instant) => Some(instant),
                None => {
                    ok = false;
                    None
                }
            }
        };
        let starts = instant(&raw.starts, "starts");
        let ends = instant(&raw.ends, "ends");
        let window = match (kind, starts, ends) {
            (Kind::Maintenance, Some(starts), Some(ends)) => {
                if ends <= starts {
                    let offset = at(raw.ends.as_ref().map(|e| e.span()).unwrap_or_default());
                    self.error(offset, "`ends` must be later than `starts`");
                    ok = false;
                }
                Some(Window { starts, ends })
            }
            (Kind::Maintenance, _, _) => {
                if raw.starts.is_none() || raw.ends.is_none() {
                    self.error(
                        split.front.start,
                        "a maintenance needs `starts` and `ends`, such as starts = \"2026-12-10 22:00\"",
                    );
                }
                ok = false;
                None
            }
            (Kind::Incident, _, _) => {
                if let Some(value) = raw.starts.as_ref().or(raw.ends.as_ref()) {
                    self.error(
                        at(value.span()),
                        "`starts` and `ends` are only for kind = \"maintenance\"",
                    );
                    ok = false;
                }
                None
            }
        };

        ok.then_some(FrontMatter {
            title,
            titles,
            title_offset,
            components,
            severity,
            kind,
            draft: raw.draft.unwrap_or(false),
            window,
        })
    }

    pub(super) fn component_list(&self) -> String {
        let names: Vec<String> = self
            .context
            .components
            .iter()
            .map(|c| format!("`{}`", c.id))
            .collect();
        if names.is_empty() {
            "none (no components are configured)".to_owned()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ComponentStatus, Status};
    use crate::parse::fixtures::{check_diagnostics, parse, utc};
    use proptest::prelude::*;

    #[test]
    fn maintenance_window() {
        let text = "+++\ntitle = \"DNS\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = 2026-12-11T02:00:00\n+++\n\n## 2026-11-20 10:00\nPlanned.\n";
        let (incident, diagnostics) = parse(text);
        assert_eq!(diagnostics, vec![]);
        let incident = incident.unwrap();
        assert_eq!(incident.updates[0].status, Status::Scheduled);
        let window = incident.window.unwrap();
        assert_eq!(window.starts, utc("2026-12-10T21:00:00Z"));
        assert_eq!(window.ends, utc("2026-12-11T01:00:00Z"));
        let at = |t: &str| incident.component_status_at("dns", utc(t));
        assert_eq!(at("2026-11-21T00:00:00Z"), ComponentStatus::Operational);
        assert_eq!(at("2026-12-10T20:59:59Z"), ComponentStatus::Operational);
        assert_eq!(at("2026-12-10T21:00:00Z"), ComponentStatus::Maintenance);
        assert_eq!(at("2026-12-11T01:00:00Z"), ComponentStatus::Operational);
    }

    #[test]
    fn a_cancelled_maintenance_never_opens_and_an_incident_cannot_be_cancelled() {
        let text = "+++\ntitle = \"DNS\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = \"2026-12-11 02:00\"\n+++\n\n## 2026-11-20 10:00\nPlanned.\n\n## 2026-12-01 09:00 cancelled\nNot needed.\n";
        let incident = parse(text).0.unwrap();
        assert!(incident.is_cancelled());
        assert_eq!(incident.latest_update().status, Status::Cancelled);
        assert_eq!(
            incident.component_status_at("dns", utc("2026-12-10T21:30:00Z")),
            ComponentStatus::Operational
        );
        assert_eq!(
            incident.maintenance_phase(utc("2026-12-05T12:00:00Z")),
            Some(crate::model::MaintenancePhase::Over)
        );
        check_diagnostics(
            "+++\ntitle = \"Web\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\n+++\n\n## 2026-11-20 10:00 cancelled\nNo.\n",
            "incidents/x.md:7:21: error: status `cancelled` is only for kind = \"maintenance\"",
        );
    }

    #[test]
    fn maintenance_completed_early_ends_the_window() {
        let text = "+++\ntitle = \"DNS\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = \"2026-12-11 02:00\"\n+++\n\n## 2026-11-20 10:00\nPlanned.\n\n## 2026-12-10 23:00 completed\nDone early.\n";
        let incident = parse(text).0.unwrap();
        assert_eq!(
            incident.component_status_at("dns", utc("2026-12-10T21:30:00Z")),
            ComponentStatus::Maintenance
        );
        assert_eq!(
            incident.component_status_at("dns", utc("2026-12-10T22:30:00Z")),
            ComponentStatus::Operational
        );
    }

    #[test]
    fn front_matter_errors() {
        check_diagnostics(
            "",
            "incidents/x.md:1:1: error: expected `+++` to open the front matter, found an empty file",
        );
        check_diagnostics(
            "title = 1\n",
            "incidents/x.md:1:1: error: expected `+++` on the first line to open the front matter",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\n",
            "incidents/x.md:1:1: error: front matter opened with `+++` is never closed, expected a second `+++` line",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"mail\"]\nseverity = \"major\"\ncolour = \"red\"\n+++\n## 2019-04-04 08:00\n",
            "incidents/x.md:5:1: error: unknown field `colour`, expected one of `title`, `components`, `severity`, `kind`, `draft`, `starts`, `ends`",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"mail\", \"mial\", \"mail\"]\nseverity = \"huge\"\n+++\n## 2019-04-04 08:00\n",
            r"
incidents/x.md:4:12: error: unknown severity `huge`, expected `minor`, `major` or `critical`
incidents/x.md:3:23: error: unknown component `mial`, expected one of `web-hosting`, `mail`, `cloud`, `customer-portal`, `dns`
incidents/x.md:3:31: error: component `mail` is listed twice",
        );
        check_diagnostics(
            "+++\ntitle = \" \"\ncomponents = []\n+++\n## 2019-04-04 08:00\n",
            r"
incidents/x.md:2:9: error: `title` is empty
incidents/x.md:2:1: error: missing field `severity`, expected `minor`, `major` or `critical`
incidents/x.md:3:14: error: `components` is empty, expected at least one component id",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\n+++\n## 2019-04-04 08:00\n",
            "incidents/x.md:2:1: error: a maintenance needs `starts` and `ends`, such as starts = \"2026-12-10 22:00\"",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = \"2026-12-10 21:00\"\n+++\n## 2019-04-04 08:00\n",
            "incidents/x.md:6:8: error: `ends` must be later than `starts`",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\nstarts = \"2026-12-10 22:00\"\nkind = \"outage\"\n+++\n## 2019-04-04 08:00\n",
            r#"
incidents/x.md:6:8: error: unknown kind `outage`, expected `incident` or `maintenance`
incidents/x.md:5:10: error: `starts` and `ends` are only for kind = "maintenance""#,
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = 5\nends = \"2026-12-10 2200\"\n+++\n## 2019-04-04 08:00\n",
            r#"
incidents/x.md:5:10: error: `starts` must be a date and time such as "2026-12-10 22:00"
incidents/x.md:6:20: error: invalid time `2200`, expected `HH:MM`, `HH.MM` or `HH:MM:SS`, optionally followed by `Z` or an offset such as `+02:00`"#,
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\n+++\nOnly a summary.\n",
            "incidents/x.md:6:1: error: expected at least one update, a heading such as `## 2019-04-04 08:00 investigating`",
        );
    }

    proptest! {
        /// Splitting at the fences and joining the parts gives the file back.
        #[test]
        fn split_rejoins(front in "[a-z =\"\n]{0,40}", body in "(\\PC|\n){0,80}") {
            let text = format!("+++\n{front}\n+++\n{body}");
            let split = split(&text).unwrap();
            let rejoined = format!("{}{}{}", &text[..split.front.start], &text[split.front.clone()], &text[split.front.end..]);
            prop_assert_eq!(&rejoined, &text);
            prop_assert_eq!(&text[split.body.clone()], body.as_str());
        }


    }
}
