//! The real incident thread in `shared/seed/` (beside the repository),
//! split into its dated blocks, and converted to an incident file. The
//! seed text is not ours, so no converted copy is kept in the repository;
//! a test that reads it fails if the thread is missing.

#![allow(dead_code, reason = "each test binary uses a part of it")]

pub const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/seed/incident-thread-2019-04.txt"
);

/// Lines that belong to the forum thread, not to any update.
pub const FURNITURE: [&str; 3] = [
    "DRIFTSTÖRNING – NY TRÅD",
    "GAMMAL TRÅD",
    "Logga in - Webbmailen",
];

pub fn read_seed() -> String {
    std::fs::read_to_string(SEED).unwrap_or_else(|error| {
        panic!(
            "cannot read the seed thread {SEED}: {error}; the `shared` folder \
             with seed/incident-thread-2019-04.txt must sit beside the repository"
        )
    })
}

/// One `Datum`/`Tidpunkt` block of the thread.
pub struct Block {
    pub date: String,
    /// As written: `19:26` or `10.20`.
    pub time: String,
    pub lines: Vec<String>,
}

/// Splits the thread into its dated blocks, dropping the thread
/// furniture. Panics on a line it cannot place, so that a changed seed
/// shows up here rather than as a quietly different incident.
pub fn blocks(thread: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for line in thread.lines() {
        let line = line.trim_end();
        if FURNITURE.contains(&line) {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Datum") {
            let date = rest.trim_start_matches(':').trim();
            assert!(
                date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
                "unexpected date line `{line}`"
            );
            blocks.push(Block {
                date: date.to_owned(),
                time: String::new(),
                lines: Vec::new(),
            });
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            assert!(line.is_empty(), "text before the first date: `{line}`");
            continue;
        };
        if let Some(rest) = line.strip_prefix("Tidpunkt:") {
            assert!(block.time.is_empty(), "second time in one block: `{line}`");
            block.time = rest.trim().to_owned();
            continue;
        }
        assert!(
            !block.time.is_empty() || line.is_empty(),
            "text before the time: `{line}`"
        );
        block.lines.push(line.to_owned());
    }
    blocks
}

/// How the thread becomes an incident file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Telling {
    /// The customer portal ("Mina Sidor") is left out of the front matter
    /// and joins at 11.20 on the first day, where the thread first names
    /// it; otherwise it is in the front matter from the start.
    pub portal_joins: bool,
    /// Each date moved this many days later, and each time written with
    /// the thread's offset (`+02:00`, Swedish summer time) so that the
    /// instants are exact whatever the date; `None`: dates and times as
    /// the thread writes them.
    pub shift_days: Option<i64>,
}

/// The thread as a herald incident file: one `## DATE TIME [STATUS]`
/// update per block, then the block's text.
pub fn convert(thread: &str, telling: Telling) -> String {
    let components = if telling.portal_joins {
        r#""web-hosting", "mail", "cloud""#
    } else {
        r#""web-hosting", "mail", "cloud", "customer-portal""#
    };
    let mut file = format!(
        "+++\ntitle = \"Fel i lagringsplattformen\"\ncomponents = [{components}]\nseverity = \"critical\"\n+++\n"
    );
    for block in blocks(thread) {
        let at = (block.date.as_str(), block.time.as_str());
        let status = match at {
            ("2019-04-04", "08:00") => " investigating",
            ("2019-04-08", "19:26") => " resolved",
            _ => "",
        };
        let joins = match at {
            ("2019-04-04", "11.20") if telling.portal_joins => {
                "components: customer-portal=major-outage\n"
            }
            _ => "",
        };
        let when = match telling.shift_days {
            None => format!("{} {}", block.date, block.time),
            Some(days) => {
                let date = chrono::NaiveDate::parse_from_str(&block.date, "%Y-%m-%d")
                    .expect("the thread's dates are YYYY-MM-DD")
                    + chrono::Duration::days(days);
                format!("{date} {}+02:00", block.time.replace('.', ":"))
            }
        };
        let text: Vec<&str> = block.lines.iter().map(String::as_str).collect();
        file.push_str(&format!(
            "\n## {when}{status}\n{joins}{}\n",
            text.join("\n").trim()
        ));
    }
    file
}
