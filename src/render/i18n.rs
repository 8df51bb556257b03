//! Words and date formats per page language (SPEC §3: sv and en ship).
//! Pure. Templates get their other page strings from
//! `templates/i18n/*.toml` (see [`super::html`]); every renderer uses the
//! label and date functions here.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use crate::model::Language;
use crate::model::{ComponentStatus, Headline, Status, headline_words};

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
        (Language::Sv, Status::Cancelled) => "Inställt",
        (Language::En, Status::Investigating) => "Investigating",
        (Language::En, Status::Identified) => "Identified",
        (Language::En, Status::Monitoring) => "Monitoring",
        (Language::En, Status::Update) => "Update",
        (Language::En, Status::Resolved) => "Resolved",
        (Language::En, Status::Scheduled) => "Scheduled",
        (Language::En, Status::InProgress) => "In progress",
        (Language::En, Status::Completed) => "Completed",
        (Language::En, Status::Cancelled) => "Cancelled",
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

/// The parts of an update that its headline is made of.
pub struct HeadlineOf<'a> {
    pub title: &'a str,
    pub status: Status,
    pub kind: Headline,
    pub body_markdown: &'a str,
    pub instant: DateTime<Utc>,
}

/// The title of an update's feed entry and email, which tells it apart
/// from the one before ([`Headline`]): `Löst: Fel i lagringen` when the
/// status changed, `Fel i lagringen: Åtgärd fortlöper. Driftstörningen
/// påverkar även …` (the text's first words) when it did not, and
/// `Fel i lagringen, 21:25: Arbetet pågår …` when those words repeat the
/// update before.
pub fn headline(language: Language, of: &HeadlineOf, timezone: Tz) -> String {
    let (words, more) = headline_words(of.body_markdown);
    let more = if more { " …" } else { "" };
    let title = of.title;
    match of.kind {
        _ if words.is_empty() => format!("{}: {title}", status_label(language, of.status)),
        Headline::Status => format!("{}: {title}", status_label(language, of.status)),
        Headline::Words => format!("{title}: {words}{more}"),
        Headline::WordsAndTime => {
            let local = of.instant.with_timezone(&timezone);
            format!("{title}, {}: {words}{more}", local.format("%H:%M"))
        }
    }
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

const MONTHS_SV_SHORT: [&str; 12] = [
    "jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
];
const MONTHS_EN_SHORT: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `8 apr` / `Apr 8`: a day of the index's history bars, which span 90
/// days, so that the day and month alone say which day it was. Short,
/// since a busy bar repeats it in hundreds of cells.
pub fn day_of_bar(language: Language, date: NaiveDate) -> String {
    let index = (date.month().clamp(1, 12) - 1) as usize;
    match language {
        Language::Sv => format!("{} {}", date.day(), MONTHS_SV_SHORT[index]),
        Language::En => format!("{} {}", MONTHS_EN_SHORT[index], date.day()),
    }
}

/// `8 april 2019` / `April 8, 2019`.
pub fn date(language: Language, instant: DateTime<Utc>, timezone: Tz) -> String {
    local_date(language, &instant.with_timezone(&timezone))
}

/// [`local_date`] written onto `out`.
fn push_local_date(out: &mut String, language: Language, local: &DateTime<Tz>) {
    let month = month_name(language, local.month());
    let (day, year) = (local.day(), local.year());
    // `write!` to a String cannot fail.
    let _ = match language {
        Language::Sv => write!(out, "{day} {month} {year}"),
        Language::En => write!(out, "{month} {day}, {year}"),
    };
}

fn local_date(language: Language, local: &DateTime<Tz>) -> String {
    let mut date = String::with_capacity(20);
    push_local_date(&mut date, language, local);
    date
}

/// `8 april 2019 19:26 CEST` / `April 8, 2019 19:26 CEST`: the zone is
/// always named, so a reader elsewhere knows what the clock means. Shown
/// to the minute: the seconds `herald post` writes are for the file (an
/// update's identity), not for readers.
pub fn date_time(language: Language, instant: DateTime<Utc>, timezone: Tz) -> String {
    let local = instant.with_timezone(&timezone);
    // Written piece by piece into one string: a page has a time per
    // update, and `format!` of pieces themselves formatted cost twice.
    let mut text = String::with_capacity(32);
    push_local_date(&mut text, language, &local);
    text.push(' ');
    push_padded(&mut text, local.hour(), 2);
    text.push(':');
    push_padded(&mut text, local.minute(), 2);
    text.push(' ');
    // The offset's name, as chrono writes it for `%Z`.
    let _ = write!(text, "{}", local.offset());
    text
}

/// Writes `value` in decimal onto `out`, zero-padded to `width` digits
/// (more digits when it needs them), as `{value:0width$}` does.
pub fn push_padded(out: &mut String, value: u32, width: usize) {
    // The usual case (months, days, hours, minutes, seconds) at once.
    if width == 2 && value < 100 {
        out.push(char::from(b'0' + (value / 10) as u8));
        out.push(char::from(b'0' + (value % 10) as u8));
        return;
    }
    // A u32 has at most 10 digits.
    let mut digits = [b'0'; 10];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in digits.len() - start..width {
        out.push('0');
    }
    out.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// `4 dagar 11 timmar` / `4 days 11 hours`: how long something lasted,
/// in its two largest units (days and hours, hours and minutes, or
/// minutes).
pub fn duration(language: Language, elapsed: chrono::TimeDelta) -> String {
    let minutes = elapsed.num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    let unit = |count: i64, unit: usize| {
        let (one, many) = match language {
            Language::Sv => [("dag", "dagar"), ("timme", "timmar"), ("minut", "minuter")][unit],
            Language::En => [("day", "days"), ("hour", "hours"), ("minute", "minutes")][unit],
        };
        format!("{count} {}", if count == 1 { one } else { many })
    };
    match (days, hours) {
        (0, 0) => unit(minutes, 2),
        (0, _) if minutes == 0 => unit(hours, 1),
        (0, _) => format!("{} {}", unit(hours, 1), unit(minutes, 2)),
        (_, 0) => unit(days, 0),
        _ => format!("{} {}", unit(days, 0), unit(hours, 1)),
    }
}

/// `99,95 %` / `99.95 %`: two decimals, a space before the sign, as both
/// languages' style guides want it.
pub fn percent(language: Language, value: f64) -> String {
    let text = format!("{value:.2} %");
    match language {
        Language::Sv => text.replace('.', ","),
        Language::En => text,
    }
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
    fn a_headline_shows_the_first_words_and_says_whether_more_follow() {
        let words = |n: usize| {
            (1..=n)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(headline_words(&words(8)), (words(8), false));
        assert_eq!(headline_words(&words(9)), (words(8), true));
        assert_eq!(headline_words(&words(5000)), (words(8), true));
        assert_eq!(
            headline_words("## *Rubrik* - > `kod` _ord_\n\n- ett"),
            ("Rubrik kod ord ett".to_owned(), false)
        );
        assert_eq!(headline_words(" \n "), (String::new(), false));
    }

    #[test]
    fn percentages_as_each_language_writes_them() {
        assert_eq!(percent(Language::En, 99.95), "99.95 %");
        assert_eq!(percent(Language::Sv, 99.9), "99,90 %");
        assert_eq!(percent(Language::En, 100.0), "100.00 %");
    }

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
        let day = NaiveDate::from_ymd_opt(2026, 9, 2).unwrap();
        assert_eq!(day_of_bar(Language::Sv, day), "2 sep");
        assert_eq!(day_of_bar(Language::En, day), "Sep 2");
    }

    #[test]
    fn a_time_names_its_zone_as_chrono_writes_it() {
        let zones = [
            Stockholm,
            chrono_tz::UTC,
            chrono_tz::America::Sao_Paulo,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Europe::Dublin,
        ];
        let mut instant = Utc.with_ymd_and_hms(1969, 6, 1, 0, 0, 0).unwrap();
        while instant.year() < 2030 {
            for zone in zones {
                let text = date_time(Language::En, instant, zone);
                let local = instant.with_timezone(&zone);
                let expected = local.format("%B %-d, %Y %H:%M %Z").to_string();
                assert_eq!(text, expected, "{instant} in {zone}");
            }
            instant += chrono::Duration::hours(24 * 29 + 7);
        }
    }

    proptest::proptest! {
        #[test]
        fn padded_digits_are_what_format_writes(
            value in proptest::prop_oneof![0u32..100, 0u32..100_000, proptest::num::u32::ANY],
            width in 0usize..=14,
        ) {
            let mut text = String::from("x");
            push_padded(&mut text, value, width);
            proptest::prop_assert_eq!(text, format!("x{value:0width$}"));
        }
    }

    #[test]
    fn durations_in_their_two_largest_units() {
        let minutes = chrono::TimeDelta::minutes;
        assert_eq!(duration(Language::Sv, minutes(0)), "0 minuter");
        assert_eq!(duration(Language::Sv, minutes(1)), "1 minut");
        assert_eq!(duration(Language::En, minutes(60)), "1 hour");
        assert_eq!(duration(Language::En, minutes(61)), "1 hour 1 minute");
        assert_eq!(
            duration(Language::Sv, minutes(2 * 60 + 5)),
            "2 timmar 5 minuter"
        );
        assert_eq!(duration(Language::Sv, minutes(1440 + 59)), "1 dag");
        // The seed: 4 April 08:00 to 8 April 19:26.
        assert_eq!(
            duration(Language::Sv, minutes(4 * 1440 + 11 * 60 + 26)),
            "4 dagar 11 timmar"
        );
        assert_eq!(
            duration(Language::En, minutes(4 * 1440 + 11 * 60 + 26)),
            "4 days 11 hours"
        );
        assert_eq!(duration(Language::En, minutes(-5)), "0 minutes");
    }

    #[test]
    fn headlines_name_a_new_status_or_else_the_first_words() {
        let at = Utc.with_ymd_and_hms(2019, 4, 4, 19, 25, 0).unwrap();
        let line = |language, kind, body| {
            let of = HeadlineOf {
                title: "Fel i lagringen",
                status: Status::Investigating,
                kind,
                body_markdown: body,
                instant: at,
            };
            headline(language, &of, Stockholm)
        };
        assert_eq!(
            line(Language::Sv, Headline::Status, "Felsökning pågår"),
            "Felsökning pågår: Fel i lagringen"
        );
        assert_eq!(
            line(
                Language::Sv,
                Headline::Words,
                "Åtgärd fortlöper.\n**Driftstörningen** påverkar även Mina Sidor och mer därtill"
            ),
            "Fel i lagringen: Åtgärd fortlöper. Driftstörningen påverkar även Mina Sidor och …"
        );
        assert_eq!(
            line(Language::En, Headline::Words, "- Still *on* it"),
            "Fel i lagringen: Still on it"
        );
        assert_eq!(
            line(Language::Sv, Headline::WordsAndTime, "Ingen förändring."),
            "Fel i lagringen, 21:25: Ingen förändring."
        );
        // No text: the status.
        assert_eq!(
            line(Language::En, Headline::Words, "  \n"),
            "Investigating: Fel i lagringen"
        );
    }
}
