//! Words and date formats per page language (SPEC §3: sv and en ship).
//! Pure. Templates get their other page strings from
//! `templates/i18n/*.toml` (see [`super::html`]); every renderer uses the
//! label and date functions here.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use crate::model::Language;
use crate::model::{ComponentStatus, Status};

pub fn status_label(language: Language, status: Status) -> &'static str {
    match (language, status) {
        (Language::Sv, Status::Investigating) => "Felsökning pågår",
        (Language::Sv, Status::Identified) => "Orsak identifierad",
        (Language::Sv, Status::Monitoring) => "Bevakas",
        (Language::Sv, Status::Update) => "Uppdatering",
        (Language::Sv, Status::Resolved) => "Löst",
        (Language::Sv, Status::Scheduled) => "Planerat",
        (Language::Sv, Status::InProgress) => "Pågår",
        (Language::Sv, Status::Completed) => "Slutfört",
        (Language::En, Status::Investigating) => "Investigating",
        (Language::En, Status::Identified) => "Identified",
        (Language::En, Status::Monitoring) => "Monitoring",
        (Language::En, Status::Update) => "Update",
        (Language::En, Status::Resolved) => "Resolved",
        (Language::En, Status::Scheduled) => "Scheduled",
        (Language::En, Status::InProgress) => "In progress",
        (Language::En, Status::Completed) => "Completed",
    }
}

pub fn component_status_label(language: Language, status: ComponentStatus) -> &'static str {
    match (language, status) {
        (Language::Sv, ComponentStatus::Operational) => "Fungerar",
        (Language::Sv, ComponentStatus::Degraded) => "Försämrad prestanda",
        (Language::Sv, ComponentStatus::PartialOutage) => "Delvis avbrott",
        (Language::Sv, ComponentStatus::MajorOutage) => "Större avbrott",
        (Language::Sv, ComponentStatus::Maintenance) => "Underhåll",
        (Language::En, ComponentStatus::Operational) => "Operational",
        (Language::En, ComponentStatus::Degraded) => "Degraded performance",
        (Language::En, ComponentStatus::PartialOutage) => "Partial outage",
        (Language::En, ComponentStatus::MajorOutage) => "Major outage",
        (Language::En, ComponentStatus::Maintenance) => "Under maintenance",
    }
}

/// How many words of an update's text its headline shows.
const HEADLINE_WORDS: usize = 8;

/// The title of an update's feed entry and email, which tells it apart
/// from the one before: `Löst: Fel i lagringen` when the update's status
/// changed (or it is the first), `Fel i lagringen: Åtgärd fortlöper.
/// Driftstörningen påverkar även …` (the text's first words) when it did
/// not. An update with no text falls back to the status.
pub fn headline(
    language: Language,
    title: &str,
    status: Status,
    status_changed: bool,
    body_markdown: &str,
) -> String {
    let words: Vec<&str> = body_markdown
        .split_whitespace()
        .map(|word| {
            word.trim_start_matches(['#', '>'])
                .trim_matches(|c: char| matches!(c, '*' | '_' | '`'))
        })
        .filter(|word| !word.is_empty() && *word != "-")
        .collect();
    if status_changed || words.is_empty() {
        return format!("{}: {title}", status_label(language, status));
    }
    let more = if words.len() > HEADLINE_WORDS {
        " …"
    } else {
        ""
    };
    let shown = words[..words.len().min(HEADLINE_WORDS)].join(" ");
    format!("{title}: {shown}{more}")
}

const MONTHS_SV: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];
const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub fn month_name(language: Language, month: u32) -> &'static str {
    let index = (month.clamp(1, 12) - 1) as usize;
    match language {
        Language::Sv => MONTHS_SV[index],
        Language::En => MONTHS_EN[index],
    }
}

/// `8 april 2019` / `April 8, 2019`.
pub fn date(language: Language, instant: DateTime<Utc>, timezone: Tz) -> String {
    let local = instant.with_timezone(&timezone);
    let month = month_name(language, local.month());
    match language {
        Language::Sv => format!("{} {month} {}", local.day(), local.year()),
        Language::En => format!("{month} {}, {}", local.day(), local.year()),
    }
}

/// `8 april 2019 19:26 CEST` / `April 8, 2019 19:26 CEST`: the zone is
/// always named, so a reader elsewhere knows what the clock means. Shown
/// to the minute: the seconds `herald post` writes are for the file (an
/// update's identity), not for readers.
pub fn date_time(language: Language, instant: DateTime<Utc>, timezone: Tz) -> String {
    let local = instant.with_timezone(&timezone);
    format!(
        "{} {:02}:{:02} {}",
        date(language, instant, timezone),
        local.hour(),
        local.minute(),
        local.format("%Z")
    )
}

/// `april 2019` / `April 2019`.
pub fn month_title(language: Language, year: i32, month: u32) -> String {
    format!("{} {year}", month_name(language, month))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Stockholm;

    #[test]
    fn dates_as_each_language_writes_them() {
        let instant = Utc.with_ymd_and_hms(2019, 4, 8, 17, 26, 0).unwrap();
        assert_eq!(
            date_time(Language::Sv, instant, Stockholm),
            "8 april 2019 19:26 CEST"
        );
        assert_eq!(
            date_time(Language::En, instant, Stockholm),
            "April 8, 2019 19:26 CEST"
        );
        let winter = Utc.with_ymd_and_hms(2026, 11, 24, 13, 5, 31).unwrap();
        assert_eq!(
            date_time(Language::Sv, winter, Stockholm),
            "24 november 2026 14:05 CET"
        );
        assert_eq!(month_title(Language::En, 2019, 4), "April 2019");
    }

    #[test]
    fn headlines_name_a_new_status_or_else_the_first_words() {
        let title = "Fel i lagringen";
        let investigating = Status::Investigating;
        assert_eq!(
            headline(Language::Sv, title, investigating, true, "Felsökning pågår"),
            "Felsökning pågår: Fel i lagringen"
        );
        assert_eq!(
            headline(
                Language::Sv,
                title,
                investigating,
                false,
                "Åtgärd fortlöper.\n**Driftstörningen** påverkar även Mina Sidor och mer därtill"
            ),
            "Fel i lagringen: Åtgärd fortlöper. Driftstörningen påverkar även Mina Sidor och …"
        );
        assert_eq!(
            headline(Language::En, title, investigating, false, "- Still *on* it"),
            "Fel i lagringen: Still on it"
        );
        assert_eq!(
            headline(Language::En, title, Status::Update, false, "  \n"),
            "Update: Fel i lagringen"
        );
    }
}
