//! The index's 90-day bars: what a cell says and links to, the narrow
//! screen's 30 days, and the index's size when the bars are at their
//! busiest.

use super::*;

/// The history-bar cells of a component, oldest first: `quiet` for an
/// operational day (an empty cell), else `class | title -> link` (a bad
/// day links to the incident that made it worst, and its title is its
/// tooltip and accessible name).
pub(crate) fn cells(html: &str, id: &str) -> Vec<String> {
    let bar = between(
        between(html, &format!("id=\"c-{id}\""), "</li>"),
        "<div class=\"bar\">",
        "</div>",
    );
    let mut cells = Vec::new();
    let mut rest = bar;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<span></span>") {
            cells.push("quiet".to_owned());
            rest = after;
        } else if rest.starts_with("<a class=\"") {
            let end = rest
                .find("</a>")
                .unwrap_or_else(|| panic!("an unclosed cell: {bar}"));
            let cell = &rest[..end];
            let class = between(cell, "class=\"", "\"");
            let href = between(cell, "href=\"", "\"");
            let title = between(cell, "title=\"", "\"");
            assert!(
                cell.ends_with("\">"),
                "a bad day's cell holds no text: {cell}"
            );
            cells.push(format!("{class} | {title} -> {href}"));
            rest = &rest[end + "</a>".len()..];
        } else {
            panic!("not a cell: {rest}");
        }
    }
    cells
}

/// The cell of `id` `days` before today.
pub(crate) fn cell(html: &str, id: &str, days: usize) -> String {
    let cells = cells(html, id);
    assert_eq!(cells.len(), 90, "{cells:?}");
    cells[89 - days].clone()
}

pub(crate) fn cell_count(html: &str, id: &str) -> usize {
    cells(html, id).len()
}

/// 10,000 small incidents over three years, one every 2h38m, each resolved
/// within the hour: the index must stay under 100 KB.
#[test]
fn index_stays_small_on_a_long_history() {
    let config = small_config();
    let start = utc("2024-01-01T00:00:00Z");
    let step = TimeDelta::minutes(158);
    let files: Vec<(PathBuf, String)> = (0..10_000)
        .map(|n| {
            let began = (start + step * n).with_timezone(&Stockholm);
            let resolved = began + TimeDelta::minutes(40);
            let component = if n % 3 == 0 { "mail" } else { "web" };
            let text = format!(
                "+++\ntitle = \"Incident number {n}\"\ncomponents = [\"{component}\"]\nseverity = \"minor\"\n+++\n\n\
                 ## {} investigating\nLooking into it.\n\n## {} resolved\nFixed.\n",
                began.format("%Y-%m-%d %H:%M:%S%:z"),
                resolved.format("%Y-%m-%d %H:%M:%S%:z"),
            );
            (PathBuf::from(format!("gen/i{n:05}.md")), text)
        })
        .collect();
    let corpus = parse_all(&config, &files);
    assert_eq!(corpus.len(), 10_000);
    let last = start + step * 9_999;
    let now = last + TimeDelta::hours(2);
    let fixture = Fixture::new(config, corpus);
    let index = fixture.index(now);
    assert!(index.len() < 100_000, "index is {} bytes", index.len());
    // What it shows is still right: the bars are busy, the recent list is
    // capped and points to the archive, which links every month.
    assert_eq!(cell_count(&index, "web"), 90);
    // Six incidents on web yesterday (computed by hand from the step):
    // the cell links to the first, names it and counts the other five.
    assert_eq!(
        cell(&index, "web", 1),
        "d | Jan 1: Degraded performance – Incident number 9989 and 5 more -> incidents/i09989.html"
    );
    assert!(index.contains("more in the archive."));
    assert_eq!(
        between(&index, "<ul class=\"months\">", "</ul>")
            .matches("<li>")
            .count(),
        37
    );
}

/// The largest index a history can make: [`STRESS_COMPONENTS`] components
/// (as many as the sample site), each held on every one of the last 90
/// days by three incidents of its own (so every cell is a link and says
/// "and 2 more"), titles of 150 characters in both languages, incident ids
/// of 41, one incident still open on each component, three years of
/// archive months, the subscribe form: in both languages the index stays
/// under 100 KB.
const STRESS_COMPONENTS: usize = 5;

#[test]
fn index_stays_small_when_every_day_is_bad() {
    let mut text = String::from(
        "[site]\ntitle = \"Exempelhosting driftstatus för alla våra tjänster\"\n\
         base_url = \"https://status.example.se/\"\ntimezone = \"Europe/Stockholm\"\n\
         languages = [\"sv\", \"en\"]\n\n[http]\nlisten = \"127.0.0.1:8081\"\n",
    );
    for c in 0..STRESS_COMPONENTS {
        let group = if c % 2 == 0 {
            "\ngroup = \"Webbhotell och e-post\""
        } else {
            ""
        };
        text.push_str(&format!(
            "\n[[components]]\nid = \"component-number-{c}\"\nname = \"Komponent nummer {c} med långt namn\"{group}\n"
        ));
    }
    let config = config::parse(Path::new("herald.toml"), &text).expect("config");
    let now = utc("2026-11-30T12:00:00Z");
    let title = |n: usize| {
        format!(
            "Störning {n:05}: {}",
            "långsam åtkomst till tjänsten för många kunder, ".repeat(3)
        )
        .chars()
        .take(150)
        .collect::<String>()
    };
    let mut files = Vec::new();
    let mut n = 0;
    let mut incident = |began: DateTime<Utc>, component: usize, open: bool| {
        n += 1;
        let began = began.with_timezone(&Stockholm);
        let end = began + TimeDelta::minutes(30);
        let resolved = if open {
            String::new()
        } else {
            format!(
                "\n## {} resolved\nÅtgärdat.\n\n### en\nFixed.\n",
                end.format("%Y-%m-%d %H:%M")
            )
        };
        let file = format!(
            "+++\ntitle.sv = \"{}\"\ntitle.en = \"{}\"\ncomponents = [\"component-number-{component}\"]\n\
             severity = \"critical\"\n+++\n\n## {} investigating\nVi undersöker.\n\n### en\nLooking into it.\n{resolved}",
            title(n),
            title(n).replace("Störning", "Incident"),
            began.format("%Y-%m-%d %H:%M"),
        );
        files.push((
            PathBuf::from(format!(
                "2026/stoerning-med-ett-mycket-langt-namn-{n:05}.md"
            )),
            file,
        ));
    };
    // Three years of weekly incidents for the archive.
    for (week, component) in (0..156).zip((0..STRESS_COMPONENTS).cycle()) {
        incident(now - TimeDelta::days(100 + 7 * week), component, false);
    }
    // Every day of the bar, three incidents on each component; the last
    // day's are still open.
    for day in 0..90 {
        for component in 0..STRESS_COMPONENTS {
            for k in 0..3 {
                let began = now - TimeDelta::days(day) - TimeDelta::hours(1 + k);
                incident(began, component, day == 0 && k == 0);
            }
        }
    }
    let corpus = parse_all(&config, &files);
    for language in [Language::Sv, Language::En] {
        let fixture = Fixture {
            language,
            ..Fixture::new(config.clone(), corpus.clone())
        };
        let index = fixture.index(now);
        println!("{language:?}: index.html is {} bytes", index.len());
        assert!(
            index.len() < 100_000,
            "{language:?}: index is {} bytes",
            index.len()
        );
        // Every day of every component is a link to the incident that made
        // it worst (the first of equals), named and counted.
        for c in 0..STRESS_COMPONENTS {
            let cells = cells(&index, &format!("component-number-{c}"));
            assert_eq!(cells.len(), 90);
            assert!(
                cells.iter().all(|cell| cell.starts_with("x | ")),
                "{cells:?}"
            );
        }
        let yesterday = cell(&index, "component-number-0", 1);
        let (word, more) = match language {
            Language::Sv => ("Störning", "och 2 till"),
            Language::En => ("Incident", "and 2 more"),
        };
        assert!(yesterday.contains(&format!("– {word} ")), "{yesterday}");
        assert!(
            yesterday.contains(&format!("… {more} -> incidents/")),
            "{yesterday}"
        );
    }
}

#[test]
fn narrow_screens_show_the_last_30_days() {
    let fixture = Fixture::sample(Language::En);
    let index = fixture.index(utc("2027-01-15T12:00:00Z"));
    // All 90 cells are in the page; the stylesheet hides the first 60 on a
    // narrow screen and swaps the legend.
    assert_eq!(cell_count(&index, "dns"), 90);
    assert!(index.contains(
        "<span class=\"wide\">90 days ago</span><span class=\"narrow\">30 days ago</span>"
    ));
    let css = String::from_utf8(html::stylesheet(&fixture.site(utc("2027-01-15T12:00:00Z"))))
        .expect("utf-8");
    let narrow = between(&css, "@media (max-width: 40rem) {", "\n}");
    assert!(narrow.contains(".bar > :nth-child(-n+60) { display: none; }"));
    assert!(narrow.contains(".wide { display: none; }"));
    assert!(narrow.contains(".narrow { display: inline; }"));
}

#[test]
fn a_bad_day_links_to_the_incident_that_made_it_worst() {
    let config = small_config();
    let incident = |id: &str, severity: &str, from: &str, to: &str| {
        let text = format!(
            "+++\ntitle = \"{id}\"\ncomponents = [\"web\"]\nseverity = \"{severity}\"\n+++\n\n\
             ## 2026-03-02 {from} investigating\nx\n\n## 2026-03-02 {to} resolved\ny\n"
        );
        (PathBuf::from(format!("{id}.md")), text)
    };
    let files = [
        incident("early-minor", "minor", "08:00", "09:00"),
        incident("late-critical", "critical", "10:00", "11:00"),
        incident("later-critical", "critical", "12:00", "13:00"),
    ];
    let corpus = parse_all(&config, &files);
    let index = Fixture::new(config, corpus).index(utc("2026-03-03T12:00:00Z"));
    // The earliest of the two equally bad incidents; all three are named.
    assert_eq!(
        cell(&index, "web", 1),
        "x | Mar 2: Major outage – late-critical and 2 more -> incidents/late-critical.html"
    );
    assert_eq!(cell(&index, "mail", 1), "quiet");
}
