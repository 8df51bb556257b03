//! An update's heading, `## DATE TIME[OFFSET] [STATUS]`, and the date-times
//! of headings and of the front matter, local times resolved in the site's
//! zone. Pure.

use std::ops::Range;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike as _, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};

use super::FileParser;
use crate::model::{PUBLISHABLE_YEARS, Status};

pub(super) struct Heading {
    pub(super) instant: DateTime<Utc>,
    pub(super) declared: Option<Status>,
    pub(super) status_offset: usize,
    pub(super) line_offset: usize,
}

impl FileParser<'_> {
    /// `## DATE TIME[OFFSET] [STATUS]`
    pub(super) fn heading(&mut self, range: Range<usize>) -> Option<Heading> {
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
                            "unknown status `{word}`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed, cancelled{hint}"
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
    pub(super) fn date_time(
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

#[cfg(test)]
mod tests {
    use crate::parse::fixtures::{HEAD, check_diagnostics, parse, utc};

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
incidents/x.md:11:21: error: unknown status `fixed`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed, cancelled
incidents/x.md:13:30: error: unexpected `extra` after the status, expected the end of the heading
incidents/x.md:15:14: error: expected a time `HH:MM`, `HH.MM` or `HH:MM:SS` after the date
incidents/x.md:17:21: error: status `scheduled` is only for kind = &quot;maintenance&quot;
incidents/x.md:19:21: error: unknown status `+02:00`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed, cancelled (write an offset right after the time, with no space: `08:00+02:00`)
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
}
