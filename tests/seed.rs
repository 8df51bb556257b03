//! The real incident thread in `shared/seed/` (beside the repository),
//! converted to an incident file in memory and run through the parser
//! and the feeds. The seed text is not ours, so no converted copy is
//! kept in the repository; the test fails if the thread is missing.

#[path = "support/feed_reader.rs"]
mod feed_reader;
#[path = "support/seed_thread.rs"]
mod seed_thread;
#[path = "support/site_toml.rs"]
mod site_toml;

use feed_reader::read;
use seed_thread::{FURNITURE, Telling, read_seed};

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use herald::config::Config;
use herald::corpus::Corpus;
use herald::parse::{Context, parse_incident};
use herald::render::feed::{self, FeedMeta};
use herald::render::{FEED_LIMIT, Revisions, Site, Templates, latest_entries};

const COMPONENTS: [&str; 4] = ["web-hosting", "mail", "cloud", "customer-portal"];

fn convert(thread: &str) -> String {
    seed_thread::convert(thread, Telling::default())
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test instant is RFC 3339")
        .to_utc()
}

fn config() -> Config {
    let components = [
        ("web-hosting", "Webbhotell"),
        ("mail", "E-post"),
        ("cloud", "Molnservrar"),
        ("customer-portal", "Kundportalen"),
    ];
    let text = site_toml::swedish_site() + &site_toml::components(&components);
    herald::config::parse(Path::new("herald.toml"), &text).expect("test config is valid")
}

#[test]
fn conversion_keeps_times_as_written_and_drops_thread_furniture() {
    let incident = convert(&read_seed());
    for heading in [
        "\n## 2019-04-08 19:26 resolved\nKLARRAPPORT\n",
        "\n## 2019-04-04 08:00 investigating\nFelsökning pågår",
        // `Datum 2019-04-04` without the colon, and a dotted time.
        "\n## 2019-04-04 10.20\nÅtgärd fortlöper.\n",
        "\n## 2019-04-05 20:34\n",
    ] {
        assert!(incident.contains(heading), "missing {heading:?}");
    }
    assert_eq!(incident.matches("\n## ").count(), 48);
    for line in FURNITURE {
        assert!(!incident.contains(line), "kept `{line}`");
    }
    assert!(!incident.contains("Datum") && !incident.contains("Tidpunkt"));
}

#[test]
fn seed_thread_flows_through_every_feed() {
    let config = config();
    let text = convert(&read_seed());
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let (incident, diagnostics) =
        parse_incident(Path::new("2019/lagring-2019-04.md"), &text, &context);
    let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(shown, Vec::<String>::new(), "converted incident:\n{text}");
    let incident = incident.expect("the converted thread parses");
    assert_eq!(incident.updates.len(), 48);
    let corpus = Corpus::from_incidents([incident]);

    let (templates, revisions) = (Templates::builtin(), Revisions::new());
    let moves = herald::render::Moves::new();
    let site = Site::new(
        &config,
        &templates,
        &revisions,
        &moves,
        Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap(),
    );
    let mut feeds: Vec<(String, Vec<u8>)> = Vec::new();
    let entries = latest_entries(&corpus, |_| true, FEED_LIMIT);
    let meta = FeedMeta::site(&site);
    feeds.push(("feed.rss".into(), feed::rss(&site, &meta, &entries)));
    feeds.push(("feed.atom".into(), feed::atom(&site, &meta, &entries)));
    for id in COMPONENTS {
        let entries = latest_entries(&corpus, |i| i.affects(id), FEED_LIMIT);
        let meta = FeedMeta::component(&site, config.component(id).unwrap());
        feeds.push((format!("{id}.rss"), feed::rss(&site, &meta, &entries)));
        feeds.push((format!("{id}.atom"), feed::atom(&site, &meta, &entries)));
    }
    assert_eq!(feeds.len(), 10);

    for (name, bytes) in &feeds {
        let parsed = read(bytes);
        assert_eq!(parsed.entries.len(), 48, "{name}");
        let published: Vec<DateTime<Utc>> = parsed
            .entries
            .iter()
            .map(|e| e.published.expect("every entry has a date"))
            .collect();
        assert!(
            published.windows(2).all(|pair| pair[0] > pair[1]),
            "{name}: not strictly newest first: {published:?}"
        );
        // 19:26 and 08:00 Stockholm summer time.
        assert_eq!(published[0], utc("2019-04-08T17:26:00Z"), "{name}");
        assert_eq!(published[47], utc("2019-04-04T06:00:00Z"), "{name}");

        let body = |entry: &feed_rs::model::Entry| -> String {
            let content = entry.content.as_ref().and_then(|c| c.body.clone());
            let summary = entry.summary.as_ref().map(|s| s.content.clone());
            content.or(summary).unwrap_or_default()
        };
        let title = |entry: &feed_rs::model::Entry| -> String {
            entry
                .title
                .as_ref()
                .map(|t| t.content.clone())
                .unwrap_or_default()
        };
        let newest = &parsed.entries[0];
        assert_eq!(title(newest), "Löst: Fel i lagringsplattformen", "{name}");
        assert!(body(newest).contains("KLARRAPPORT"), "{name}");
        let oldest = &parsed.entries[47];
        assert_eq!(
            title(oldest),
            "Felsökning pågår: Fel i lagringsplattformen",
            "{name}"
        );
        assert!(
            body(oldest).contains("Felsökning pågår och sidan uppdateras fortlöpande"),
            "{name}"
        );
        // The `Tidpunkt: 10.20` block, found by its text.
        let dotted: Vec<(&str, Option<DateTime<Utc>>)> = parsed
            .entries
            .iter()
            .filter(|e| body(e).contains("mail som är kopplat till nmail5"))
            .map(|e| (e.id.as_str(), e.published))
            .collect();
        assert_eq!(
            dotted,
            [(
                "https://status.example.se/incidents/lagring-2019-04.html#u-20190404T082000Z",
                Some(utc("2019-04-04T08:20:00Z"))
            )],
            "{name}"
        );
    }
}
