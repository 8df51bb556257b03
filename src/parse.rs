//! One incident file's text → `(Option<Incident>, Vec<Diagnostic>)`.
//!
//! Pure: the caller reads the file and passes the site's time zone and
//! components. Every problem is reported (not just the first) with the
//! byte offset of the offending text, turned into line:col by
//! [`LineIndex`]. Any error yields `None`: a broken file must not replace
//! the last good version of its incident.

use std::ops::Range;
use std::path::Path;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike as _, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag};
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, LineIndex};
use crate::model::{
    Component, ComponentStatus, Incident, IncidentId, Kind, PUBLISHABLE_YEARS, Severity, Status,
    Update, Window,
};

/// What a file is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub timezone: Tz,
    pub components: &'a [Component],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFrontMatter {
    title: Spanned<String>,
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
fn line_ranges(text: &str, from: usize) -> impl Iterator<Item = Range<usize>> + '_ {
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

struct Heading {
    instant: DateTime<Utc>,
    declared: Option<Status>,
    status_offset: usize,
    line_offset: usize,
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
        let (front, (summary_markdown, updates)) = (front?, body?);
        if updates.is_empty() {
            self.error(
                split.body.start,
                "expected at least one update, a heading such as `## 2019-04-04 08:00 investigating`",
            );
            return None;
        }
        let updates = self.order_updates(updates, &front)?;
        Some(Incident {
            id: id?,
            path: self.path.to_owned(),
            title: front.title,
            components: front.components,
            severity: front.severity,
            kind: front.kind,
            draft: front.draft,
            window: front.window,
            summary_html: render_markdown(&summary_markdown),
            summary_markdown,
            updates,
            timeline_cache: Default::default(),
        })
    }

    fn front_matter(&mut self, split: &Split) -> Option<FrontMatter> {
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

        let title = raw.title.get_ref().trim().to_owned();
        if title.is_empty() {
            self.error(at(raw.title.span()), "`title` is empty");
            ok = false;
        }

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
            components,
            severity,
            kind,
            draft: raw.draft.unwrap_or(false),
            window,
        })
    }

    fn component_list(&self) -> String {
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

    /// Splits the body at its level-2 headings. Returns the summary and the
    /// updates in file order.
    fn body(
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
            let Some((component_statuses, body_markdown)) =
                self.section_body(heading.start..section_end)
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
                    body_html: render_markdown(&body_markdown),
                    body_markdown,
                    line,
                },
                parsed.line_offset,
            ));
        }
        ok.then_some((summary, updates))
    }

    /// `## DATE TIME[OFFSET] [STATUS]`
    fn heading(&mut self, range: Range<usize>) -> Option<Heading> {
        let source = &self.text[range.clone()];
        let line_end = source.find('\n').unwrap_or(source.len());
        let line = &source[..line_end];
        if !line.trim_start().starts_with("##") {
            self.error(
                range.start,
                "expected an update heading `## DATE TIME [STATUS]`; a line of `-` under text makes a heading too, use `***` for a rule",
            );
            return None;
        }
        // Tokens with their offsets, skipping the `##` marker and any closing #s.
        let mut tokens: Vec<(usize, &str)> = Vec::new();
        let mut at = 0;
        for word in line.split_whitespace() {
            let offset = line[at..].find(word).map_or(at, |i| at + i);
            at = offset + word.len();
            tokens.push((range.start + offset, word));
        }
        tokens.remove(0);
        while tokens
            .last()
            .is_some_and(|(_, word)| word.chars().all(|c| c == '#'))
        {
            tokens.pop();
        }
        let after_marker = tokens
            .first()
            .map_or(range.start + line.len(), |(offset, _)| *offset);
        let Some(&(date_offset, date_text)) = tokens.first() else {
            self.error(after_marker, "expected a date `YYYY-MM-DD` after `##`");
            return None;
        };
        let Some(&(time_offset, time_text)) = tokens.get(1) else {
            self.error(
                date_offset + date_text.len(),
                "expected a time `HH:MM`, `HH.MM` or `HH:MM:SS` after the date",
            );
            return None;
        };
        let instant = self.date_time((date_text, date_offset), (time_text, time_offset));
        let mut declared = None;
        let mut status_offset = after_marker;
        if let Some(&(offset, word)) = tokens.get(2) {
            status_offset = offset;
            match Status::parse(word) {
                Some(status) => declared = Some(status),
                None => {
                    let hint = if word.starts_with(['+', '-']) || word.eq_ignore_ascii_case("z") {
                        " (write an offset right after the time, with no space: `08:00+02:00`)"
                    } else {
                        ""
                    };
                    self.error(
                        offset,
                        format!(
                            "unknown status `{word}`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed{hint}"
                        ),
                    );
                    return None;
                }
            }
        }
        if let Some(&(offset, word)) = tokens.get(3) {
            self.error(
                offset,
                format!("unexpected `{word}` after the status, expected the end of the heading"),
            );
            return None;
        }
        Some(Heading {
            instant: instant?,
            declared,
            status_offset,
            line_offset: range.start,
        })
    }

    /// Parses a date and a time (with optional offset), each given with
    /// its byte offset in the file; local times are resolved in the site's
    /// zone.
    fn date_time(
        &mut self,
        (date_text, offset): (&str, usize),
        (time_text, time_offset): (&str, usize),
    ) -> Option<DateTime<Utc>> {
        let date = match NaiveDate::parse_from_str(date_text, "%Y-%m-%d") {
            Ok(date) if date_text.len() == 10 => date,
            _ => {
                self.error(
                    offset,
                    format!(
                        "invalid date `{date_text}`, expected `YYYY-MM-DD` such as `2019-04-04`"
                    ),
                );
                return None;
            }
        };
        if time_text.is_empty() {
            self.error(
                offset + date_text.len(),
                "expected a time `HH:MM`, `HH.MM` or `HH:MM:SS` after the date",
            );
            return None;
        }
        let Some((time, zone)) = parse_time(time_text) else {
            self.error(
                time_offset,
                format!(
                    "invalid time `{time_text}`, expected `HH:MM`, `HH.MM` or `HH:MM:SS`, optionally followed by `Z` or an offset such as `+02:00`"
                ),
            );
            return None;
        };
        let naive = NaiveDateTime::new(date, time);
        let instant = self.resolve(naive, zone, time_offset)?;
        if !PUBLISHABLE_YEARS.contains(&instant.year()) {
            self.error(
                offset,
                format!(
                    "`{date_text} {time_text}` is outside the years herald can publish, {} to {}",
                    PUBLISHABLE_YEARS.start(),
                    PUBLISHABLE_YEARS.end()
                ),
            );
            return None;
        }
        Some(instant)
    }

    /// A local date and time as an instant: at `zone`, or in the site's
    /// zone when the text gave none.
    fn resolve(
        &mut self,
        naive: NaiveDateTime,
        zone: Option<FixedOffset>,
        time_offset: usize,
    ) -> Option<DateTime<Utc>> {
        match zone {
            Some(fixed) => match fixed.from_local_datetime(&naive) {
                LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
                _ => {
                    self.error(time_offset, "invalid time");
                    None
                }
            },
            None => match self.context.timezone.from_local_datetime(&naive) {
                LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
                LocalResult::Ambiguous(earlier, later) => {
                    let message = format!(
                        "{naive} happens twice in {} (clocks go back); taking the earlier, {}; write an offset such as `{}` to choose",
                        self.context.timezone,
                        earlier.format("%H:%M %Z"),
                        later.format("%H:%M%:z"),
                    );
                    self.warning(time_offset, message);
                    Some(earlier.with_timezone(&Utc))
                }
                LocalResult::None => {
                    let message = format!(
                        "{} does not exist in {} (clocks go forward); write the time after the change, or an offset",
                        naive.format("%Y-%m-%d %H:%M"),
                        self.context.timezone
                    );
                    self.error(time_offset, message);
                    None
                }
            },
        }
    }

    /// An update's body: an optional `components:` first line, then Markdown.
    fn section_body(
        &mut self,
        range: Range<usize>,
    ) -> Option<(Vec<(String, ComponentStatus)>, String)> {
        let section = &self.text[range.clone()];
        // Skip the heading line itself.
        let content_start = section.find('\n').map_or(section.len(), |i| i + 1);
        let mut statuses = Vec::new();
        let mut markdown_start = content_start;
        let first_line = line_ranges(section, content_start)
            .find(|line| !section[line.clone()].trim().is_empty());
        if let Some(line) = first_line {
            let line_text = &section[line.clone()];
            let trimmed = line_text.trim_start();
            if let Some(list) = trimmed.strip_prefix("components:") {
                let list_offset = range.start
                    + line.start
                    + (line_text.len() - trimmed.len())
                    + "components:".len();
                statuses = self.components_line(list.trim_end_matches('\r'), list_offset)?;
                markdown_start = (line.end + 1).min(section.len());
            }
        }
        Some((statuses, section[markdown_start..].trim().to_owned()))
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

    /// Sorts updates by instant, rejects duplicate instants, checks
    /// `components:` lines against the incident's components and resolves
    /// omitted statuses.
    fn order_updates(
        &mut self,
        mut updates: Vec<(Update, usize)>,
        front: &FrontMatter,
    ) -> Option<Vec<Update>> {
        let mut ok = true;
        for (update, offset) in &updates {
            for (component, _) in &update.component_statuses {
                if !front.components.contains(component) {
                    self.error(
                        *offset,
                        format!(
                            "component `{component}` is not among this incident's components; add it to `components` in the front matter"
                        ),
                    );
                    ok = false;
                }
            }
        }
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
        for (mut update, _) in updates {
            update.status = match update.declared {
                None | Some(Status::Update) => previous,
                Some(status) => status,
            };
            previous = update.status;
            result.push(update);
        }
        ok.then_some(result)
    }
}

struct FrontMatter {
    title: String,
    components: Vec<String>,
    severity: Severity,
    kind: Kind,
    draft: bool,
    window: Option<Window>,
}

/// `HH:MM`, `HH.MM` or `HH:MM:SS`, then nothing, `Z` or `±HH:MM`.
fn parse_time(text: &str) -> Option<(NaiveTime, Option<FixedOffset>)> {
    let zone_at = text.find(['Z', 'z', '+', '-']).unwrap_or(text.len());
    let (clock, zone) = text.split_at(zone_at);
    let fields: Vec<&str> = clock.split([':', '.']).collect();
    let two_digits = |s: &str| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u32>().ok())?
    };
    let separator_ok = match fields.len() {
        2 => true,
        // Seconds only with colons: `10.20.30` is more likely a typo.
        3 => !clock.contains('.'),
        _ => false,
    };
    if !separator_ok {
        return None;
    }
    let hour = two_digits(fields[0])?;
    let minute = two_digits(fields[1])?;
    let second = match fields.get(2) {
        Some(s) => two_digits(s)?,
        None => 0,
    };
    let time = NaiveTime::from_hms_opt(hour, minute, second)?;
    let zone = match zone {
        "" => None,
        "Z" | "z" => Some(FixedOffset::east_opt(0)?),
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone[1..].split_once(':')?;
            let seconds = two_digits(hours)? * 3600 + two_digits(minutes)? * 60;
            Some(FixedOffset::east_opt(sign * i32::try_from(seconds).ok()?)?)
        }
    };
    Some((time, zone))
}

fn markdown_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// CommonMark to HTML, with raw HTML turned into text so that it shows
/// escaped, and link targets that would run script replaced.
pub fn render_markdown(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, markdown_options()).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let scheme: String = url
        .trim_start()
        .chars()
        .take_while(|c| *c != ':')
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let has_scheme = url.contains(':') && !url.trim_start().starts_with(['/', '#', '?', '.']);
    if has_scheme && !matches!(scheme.as_str(), "http" | "https" | "mailto" | "tel") {
        CowStr::Borrowed("#")
    } else {
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Stockholm;
    use proptest::prelude::*;

    fn components() -> Vec<Component> {
        ["web-hosting", "mail", "cloud", "customer-portal", "dns"]
            .into_iter()
            .map(|id| Component {
                id: id.into(),
                name: id.to_uppercase(),
                group: None,
            })
            .collect()
    }

    fn parse(text: &str) -> (Option<Incident>, Vec<Diagnostic>) {
        let components = components();
        let context = Context {
            timezone: Stockholm,
            components: &components,
        };
        parse_incident(Path::new("incidents/x.md"), text, &context)
    }

    /// Asserts the exact diagnostics of `text` (one per line).
    fn check_diagnostics(text: &str, expect: &str) {
        let (incident, diagnostics) = parse(text);
        let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(shown.join("\n"), expect.trim());
        let has_error = diagnostics.iter().any(Diagnostic::is_error);
        assert_eq!(
            incident.is_none(),
            has_error,
            "an incident is returned exactly when there is no error"
        );
    }

    const HEAD: &str = "+++\ntitle = \"Storage\"\ncomponents = [\"web-hosting\", \"mail\"]\nseverity = \"major\"\n+++\n";

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

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
        assert_eq!(incident.summary_html, "<p>Summary <em>here</em>.</p>\n");
        assert_eq!(incident.updates[0].line, 14);
        assert_eq!(incident.id.as_str(), "x");
    }

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
    fn raw_html_is_escaped_and_script_links_dropped() {
        let text = format!(
            "{HEAD}\n## 2019-04-04 08:00\n<script>alert(1)</script> and <b>bold</b>\n\n[x](javascript:alert(1)) [y](https://example.com/a)\n"
        );
        let incident = parse(&text).0.unwrap();
        let html = &incident.updates[0].body_html;
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");
        assert!(html.contains(r##"<a href="#">x</a>"##), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/a">y</a>"#),
            "{html}"
        );
    }

    #[test]
    fn dst_gap_is_an_error_and_overlap_a_warning() {
        check_diagnostics(
            &format!("{HEAD}\n## 2019-03-31 02:30\nGap.\n"),
            "incidents/x.md:7:15: error: 2019-03-31 02:30 does not exist in Europe/Stockholm (clocks go forward); write the time after the change, or an offset",
        );
        let text = format!("{HEAD}\n## 2019-10-27 02:30\nOverlap.\n");
        check_diagnostics(
            &text,
            "incidents/x.md:7:15: warning: 2019-10-27 02:30:00 happens twice in Europe/Stockholm (clocks go back); taking the earlier, 02:30 CEST; write an offset such as `02:30+01:00` to choose",
        );
        assert_eq!(
            parse(&text).0.unwrap().updates[0].instant,
            utc("2019-10-27T00:30:00Z")
        );
    }

    #[test]
    fn heading_errors() {
        check_diagnostics(
            &format!(
                "{HEAD}\n## 2019-4-04 08:00\na\n## 2019-04-04 8:00\nb\n## 2019-04-04 08:00 fixed\nc\n## 2019-04-04 09:00 resolved extra\nd\n## 2019-04-04\ne\n## 2019-04-04 10:00 scheduled\nf\n## 2019-04-04 11:00 +02:00\ng\n"
            ),
            &r"
incidents/x.md:7:4: error: invalid date `2019-4-04`, expected `YYYY-MM-DD` such as `2019-04-04`
incidents/x.md:9:15: error: invalid time `8:00`, expected `HH:MM`, `HH.MM` or `HH:MM:SS`, optionally followed by `Z` or an offset such as `+02:00`
incidents/x.md:11:21: error: unknown status `fixed`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed
incidents/x.md:13:30: error: unexpected `extra` after the status, expected the end of the heading
incidents/x.md:15:14: error: expected a time `HH:MM`, `HH.MM` or `HH:MM:SS` after the date
incidents/x.md:17:21: error: status `scheduled` is only for kind = &quot;maintenance&quot;
incidents/x.md:19:21: error: unknown status `+02:00`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed (write an offset right after the time, with no space: `08:00+02:00`)
"
            .replace("&quot;", "\""),
        );
    }

    #[test]
    fn instants_outside_the_publishable_years_are_errors() {
        check_diagnostics(
            &format!(
                "{HEAD}\n## 0000-01-01 00:30 investigating\na\n## -019-04-08 19:26\nb\n## 9999-12-31 23:59-14:00\nc\n## 1969-12-31 22:59Z\nd\n"
            ),
            r"
incidents/x.md:7:4: error: `0000-01-01 00:30` is outside the years herald can publish, 1970 to 9998
incidents/x.md:9:4: error: `-019-04-08 19:26` is outside the years herald can publish, 1970 to 9998
incidents/x.md:11:4: error: `9999-12-31 23:59-14:00` is outside the years herald can publish, 1970 to 9998
incidents/x.md:13:4: error: `1969-12-31 22:59Z` is outside the years herald can publish, 1970 to 9998
",
        );
        let (incident, diagnostics) = parse(&format!(
            "{HEAD}\n## 1970-01-01 00:00Z\na\n## 9998-12-31 23:59+14:00\nb\n"
        ));
        assert!(incident.is_some(), "{diagnostics:?}");
        let maintenance = "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"1900-12-10 22:00\"\nends = \"2026-12-11 02:00\"\n+++\n## 2019-04-04 08:00\n";
        check_diagnostics(
            maintenance,
            "incidents/x.md:5:11: error: `1900-12-10 22:00` is outside the years herald can publish, 1970 to 9998\n",
        );
    }

    #[test]
    fn columns_count_the_spaces_actually_written() {
        check_diagnostics(
            &format!("{HEAD}\n##   2019-04-04    8:00\na\n"),
            "incidents/x.md:7:20: error: invalid time `8:00`, expected `HH:MM`, `HH.MM` or `HH:MM:SS`, optionally followed by `Z` or an offset such as `+02:00`",
        );
        check_diagnostics(
            "+++\ntitle = \"x\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10  2200\"\nends = \"2026-12-11 02:00\"\n+++\n## 2019-04-04 08:00\n",
            "incidents/x.md:5:23: error: invalid time `2200`, expected `HH:MM`, `HH.MM` or `HH:MM:SS`, optionally followed by `Z` or an offset such as `+02:00`",
        );
    }

    #[test]
    fn setext_heading_gets_a_hint() {
        check_diagnostics(
            &format!("{HEAD}\n## 2019-04-04 08:00\nSome text\n---\n"),
            "incidents/x.md:8:1: error: expected an update heading `## DATE TIME [STATUS]`; a line of `-` under text makes a heading too, use `***` for a rule",
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
            &format!("{HEAD}\n## 2019-04-04 08:00\ncomponents: dns=degraded\nx\n"),
            "incidents/x.md:7:1: error: component `dns` is not among this incident's components; add it to `components` in the front matter",
        );
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
    fn heading_inside_code_block_is_body() {
        let text = format!("{HEAD}\n## 2019-04-04 08:00\n```\n## not a heading\n```\n");
        let incident = parse(&text).0.unwrap();
        assert_eq!(incident.updates.len(), 1);
        assert!(incident.updates[0].body_html.contains("## not a heading"));
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
            incident.updates[0].component_statuses,
            vec![("mail".into(), ComponentStatus::Degraded)]
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
