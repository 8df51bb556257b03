//! RSS and Atom feeds, read back with a real feed parser (feed-rs).
//!
//! The corpus is parsed from incident texts, so these tests also pin how
//! heading times in the site's zone become entry instants.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use herald::config::Config;
use herald::corpus::Corpus;
use herald::model::IncidentId;
use herald::render::feed::{self, FeedMeta};
use herald::render::{FEED_LIMIT, Revisions, Site, Templates, component_entries, latest_entries};

#[path = "support/feed_reader.rs"]
mod feed_reader;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/corpus.rs"]
mod support_corpus;

use feed_reader::read;
use support_corpus::corpus;

// Blank lines after some headings are allowed and must not matter.
const STORAGE: &str = "+++
title = \"Lagringsfel\"
components = [\"web-hosting\", \"mail\"]
severity = \"critical\"
+++

## 2019-04-08 19:26 resolved

Allt fungerar igen.

## 2019-04-04 08:00 investigating

components: web-hosting=degraded, mail=major-outage
Vi felsöker.

## 2019-04-04 10.20

Fortfarande fel. <script>alert(1)</script>
";

const MAIL_DELAY: &str = "+++
title = \"Fördröjd e-post\"
components = [\"mail\"]
severity = \"minor\"
+++

## 2019-03-12 09:15 investigating

E-post kommer fram sent.
";

const DRAFT: &str = "+++
title = \"Utkast\"
components = [\"mail\", \"web-hosting\"]
severity = \"major\"
draft = true
+++

## 2019-04-05 12:00 investigating

Ska inte synas.
";

fn config(text: &str) -> Config {
    herald::config::parse(Path::new("herald.toml"), text).expect("test config is valid")
}

/// The Swedish sample site with web hosting, mail and DNS.
fn swedish_config() -> Config {
    let components = [
        ("web-hosting", "Webbhotell"),
        ("mail", "E-post"),
        ("dns", "DNS"),
    ];
    config(&(site_toml::swedish_site() + &site_toml::components(&components)))
}

/// Parses `(path, text)` pairs in the given order; every file must be clean.
fn sample(config: &Config) -> Corpus {
    corpus(
        config,
        &[
            ("2019/storage.md", STORAGE),
            ("2019/mail-delay.md", MAIL_DELAY),
            ("drafts/draft.md", DRAFT),
        ],
    )
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test instant is RFC 3339")
        .to_utc()
}

static NO_MOVES: std::sync::LazyLock<herald::render::Moves> =
    std::sync::LazyLock::new(herald::render::Moves::new);

fn site<'a>(config: &'a Config, templates: &'a Templates, revisions: &'a Revisions) -> Site<'a> {
    // Feeds must not depend on `now`: a date far from every test instant.
    Site::new(
        config,
        templates,
        revisions,
        &NO_MOVES,
        Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).unwrap(),
    )
}

/// The site feed of `corpus` in both formats, from the built-in
/// templates with no edits.
fn feeds(config: &Config, corpus: &Corpus) -> (Vec<u8>, Vec<u8>) {
    let (templates, revisions) = (Templates::builtin(), Revisions::new());
    site_feeds(&site(config, &templates, &revisions), corpus)
}

/// [`feeds`] of the Swedish sample.
fn sample_feeds() -> (Vec<u8>, Vec<u8>) {
    let config = swedish_config();
    feeds(&config, &sample(&config))
}

/// The site feed in both formats.
fn site_feeds(site: &Site, corpus: &Corpus) -> (Vec<u8>, Vec<u8>) {
    let entries = latest_entries(corpus, |_| true, FEED_LIMIT);
    let meta = FeedMeta::site(site);
    (
        feed::rss(site, &meta, &entries),
        feed::atom(site, &meta, &entries),
    )
}

/// The feed's own links: `(rel, href)`.
fn links(feed: &feed_rs::model::Feed) -> Vec<(Option<&str>, &str)> {
    feed.links
        .iter()
        .map(|l| (l.rel.as_deref(), l.href.as_str()))
        .collect()
}

fn assert_each_entry_links_to_its_id(feed: &feed_rs::model::Feed) {
    for entry in &feed.entries {
        let hrefs: Vec<&str> = entry.links.iter().map(|l| l.href.as_str()).collect();
        assert_eq!(hrefs, [entry.id.as_str()]);
    }
}

const NEWEST_FIRST: [&str; 4] = [
    "https://status.example.se/incidents/storage.html#u-20190408T172600Z",
    "https://status.example.se/incidents/storage.html#u-20190404T082000Z",
    "https://status.example.se/incidents/storage.html#u-20190404T060000Z",
    "https://status.example.se/incidents/mail-delay.html#u-20190312T081500Z",
];

#[test]
fn atom_entries_are_the_published_updates_newest_first() {
    let (_, atom) = sample_feeds();
    let parsed = read(&atom);

    assert_eq!(parsed.feed_type, feed_rs::model::FeedType::Atom);
    assert_eq!(parsed.id, "https://status.example.se/feed.atom");
    assert_eq!(
        parsed.title.as_ref().map(|t| t.content.as_str()),
        Some("Exempelhosting driftstatus")
    );
    assert_eq!(parsed.updated, Some(utc("2019-04-08T17:26:00Z")));
    assert_eq!(parsed.language.as_deref(), Some("sv"));
    let authors: Vec<&str> = parsed
        .authors
        .iter()
        .filter_map(|a| a.name.as_deref())
        .collect();
    assert_eq!(authors, ["Exempelhosting driftstatus"]);
    assert_eq!(
        links(&parsed),
        [
            (Some("self"), "https://status.example.se/feed.atom"),
            (Some("alternate"), "https://status.example.se/"),
        ]
    );

    let ids: Vec<&str> = parsed.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, NEWEST_FIRST, "the draft's update must not appear");
    assert_each_entry_links_to_its_id(&parsed);
    let titles: Vec<&str> = parsed
        .entries
        .iter()
        .map(|e| e.title.as_ref().map_or("", |t| t.content.as_str()))
        .collect();
    assert_eq!(
        titles,
        [
            "Löst: Lagringsfel",
            // No status in the heading: the previous one holds, and the
            // title shows the text's first words instead (as plain text).
            "Lagringsfel: Fortfarande fel. <script>alert(1)</script>",
            "Felsökning pågår: Lagringsfel",
            "Felsökning pågår: Fördröjd e-post",
        ]
    );
    let published: Vec<Option<DateTime<Utc>>> =
        parsed.entries.iter().map(|e| e.published).collect();
    let expected = [
        // 19:26 CEST
        "2019-04-08T17:26:00Z",
        // `10.20` CEST
        "2019-04-04T08:20:00Z",
        "2019-04-04T06:00:00Z",
        // 09:15 CET: still winter time in March
        "2019-03-12T08:15:00Z",
    ]
    .map(|text| Some(utc(text)));
    assert_eq!(published, expected);
    let updated: Vec<Option<DateTime<Utc>>> = parsed.entries.iter().map(|e| e.updated).collect();
    assert_eq!(updated, expected, "never edited: updated = published");
    let categories: Vec<Vec<(&str, Option<&str>)>> = parsed
        .entries
        .iter()
        .map(|e| {
            e.categories
                .iter()
                .map(|c| (c.term.as_str(), c.label.as_deref()))
                .collect()
        })
        .collect();
    assert_eq!(
        categories[0],
        [
            ("web-hosting", Some("Webbhotell")),
            ("mail", Some("E-post"))
        ]
    );
    assert_eq!(categories[3], [("mail", Some("E-post"))]);
}

#[test]
fn rss_items_are_the_published_updates_newest_first() {
    let (rss, _) = sample_feeds();
    let parsed = read(&rss);

    assert_eq!(parsed.feed_type, feed_rs::model::FeedType::RSS2);
    assert_eq!(parsed.updated, Some(utc("2019-04-08T17:26:00Z")));
    assert_eq!(parsed.language.as_deref(), Some("sv"));
    assert_eq!(
        links(&parsed),
        [
            (None, "https://status.example.se/"),
            (Some("self"), "https://status.example.se/feed.rss"),
        ]
    );

    let guids: Vec<&str> = parsed.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(guids, NEWEST_FIRST);
    assert_each_entry_links_to_its_id(&parsed);
    let published: Vec<Option<DateTime<Utc>>> =
        parsed.entries.iter().map(|e| e.published).collect();
    assert_eq!(
        published,
        [
            "2019-04-08T17:26:00Z",
            "2019-04-04T08:20:00Z",
            "2019-04-04T06:00:00Z",
            "2019-03-12T08:15:00Z",
        ]
        .map(|text| Some(utc(text)))
    );
    assert_eq!(
        parsed.entries[0].title.as_ref().map(|t| t.content.as_str()),
        Some("Löst: Lagringsfel")
    );
    let categories: Vec<&str> = parsed.entries[0]
        .categories
        .iter()
        .map(|c| c.term.as_str())
        .collect();
    assert_eq!(categories, ["web-hosting", "mail"]);

    // The RSS text itself: RFC 822 dates, a permalink guid (the default
    // when `isPermaLink` is absent) and the atom namespace declared.
    let text = String::from_utf8(rss).unwrap();
    assert!(text.contains(r#"xmlns:atom="http://www.w3.org/2005/Atom""#));
    assert!(text.contains(
        r#"<atom:link href="https://status.example.se/feed.rss" rel="self" type="application/rss+xml">"#
    ));
    assert!(text.contains("<lastBuildDate>Mon, 8 Apr 2019 17:26:00 +0000</lastBuildDate>"));
    assert!(text.contains("<pubDate>Thu, 4 Apr 2019 08:20:00 +0000</pubDate>"));
    assert!(text.contains(
        "<guid>https://status.example.se/incidents/storage.html#u-20190404T082000Z</guid>"
    ));
    assert!(!text.contains("isPermaLink"));
}

#[test]
fn content_names_components_and_keeps_raw_html_as_text() {
    let (rss, atom) = sample_feeds();
    let atom = read(&atom);
    let rss = read(&rss);
    // feed-rs trims the text of an element, hence no final newline.
    let atom_bodies: Vec<&str> = atom
        .entries
        .iter()
        .map(|e| {
            e.content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .unwrap_or("")
        })
        .collect();
    let rss_bodies: Vec<&str> = rss
        .entries
        .iter()
        .map(|e| e.summary.as_ref().map_or("", |s| s.content.as_str()))
        .collect();
    assert_eq!(
        atom_bodies[1],
        "<p>Berörda tjänster: Webbhotell, E-post</p>\n\
         <p>Fortfarande fel. &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    );
    // The update with a `components:` line shows each component's status.
    assert_eq!(
        atom_bodies[2],
        "<p>Berörda tjänster: Webbhotell (Försämrad prestanda), E-post (Större avbrott)</p>\n\
         <p>Vi felsöker.</p>"
    );
    assert_eq!(atom_bodies, rss_bodies, "both formats carry the same HTML");
    for body in atom_bodies {
        assert!(!body.contains("<script"), "{body}");
    }
    assert_eq!(
        atom.entries[1]
            .content
            .as_ref()
            .map(|c| c.content_type.to_string()),
        Some("text/html".to_owned())
    );
}

#[test]
fn an_edited_update_changes_only_its_updated_and_the_feeds() {
    let config = swedish_config();
    let corpus = sample(&config);
    let templates = Templates::builtin();
    let before = Revisions::new();
    let (rss_before, atom_before) = site_feeds(&site(&config, &templates, &before), &corpus);

    let storage = IncidentId::new("storage").unwrap();
    let mut revisions = Revisions::new();
    revisions.insert(
        (storage, utc("2019-04-04T08:20:00Z")),
        utc("2019-04-09T10:00:00Z"),
    );
    let (rss_after, atom_after) = site_feeds(&site(&config, &templates, &revisions), &corpus);

    let (before, after) = (read(&atom_before), read(&atom_after));
    assert_eq!(before.updated, Some(utc("2019-04-08T17:26:00Z")));
    assert_eq!(after.updated, Some(utc("2019-04-09T10:00:00Z")));
    let updated = |feed: &feed_rs::model::Feed| -> Vec<Option<DateTime<Utc>>> {
        feed.entries.iter().map(|e| e.updated).collect()
    };
    assert_eq!(
        updated(&after),
        [
            "2019-04-08T17:26:00Z",
            "2019-04-09T10:00:00Z",
            "2019-04-04T06:00:00Z",
            "2019-03-12T08:15:00Z",
        ]
        .map(|text| Some(utc(text)))
    );
    assert_eq!(updated(&before)[1], Some(utc("2019-04-04T08:20:00Z")));
    // Nothing else moves: same ids, order and published instants.
    let identity = |feed: &feed_rs::model::Feed| -> Vec<(String, Option<DateTime<Utc>>)> {
        feed.entries
            .iter()
            .map(|e| (e.id.clone(), e.published))
            .collect()
    };
    assert_eq!(identity(&before), identity(&after));
    // In the Atom text, exactly the two `updated` elements differ.
    let changed_lines = |a: &[u8], b: &[u8]| -> Vec<(String, String)> {
        let split = |bytes: &[u8]| -> Vec<String> {
            String::from_utf8(bytes.to_vec())
                .unwrap()
                .split('<')
                .map(str::to_owned)
                .collect()
        };
        split(a)
            .into_iter()
            .zip(split(b))
            .filter(|(x, y)| x != y)
            .collect()
    };
    assert_eq!(
        changed_lines(&atom_before, &atom_after),
        [
            (
                "updated>2019-04-08T17:26:00+00:00".to_owned(),
                "updated>2019-04-09T10:00:00+00:00".to_owned()
            ),
            (
                "updated>2019-04-04T08:20:00+00:00".to_owned(),
                "updated>2019-04-09T10:00:00+00:00".to_owned()
            ),
        ]
    );
    // RSS has no per-item `updated`: only the channel's build date moves.
    assert_eq!(
        changed_lines(&rss_before, &rss_after),
        [(
            "lastBuildDate>Mon, 8 Apr 2019 17:26:00 +0000".to_owned(),
            "lastBuildDate>Tue, 9 Apr 2019 10:00:00 +0000".to_owned()
        )]
    );
}

#[test]
fn rendering_is_byte_identical() {
    let config = swedish_config();
    let templates = Templates::builtin();
    let storage = IncidentId::new("storage").unwrap();
    let edits = [
        ("2019-04-04T08:20:00Z", "2019-04-09T10:00:00Z"),
        ("2019-04-04T06:00:00Z", "2019-04-04T07:00:00Z"),
        ("2019-04-08T17:26:00Z", "2019-04-08T18:00:00Z"),
    ];
    let mut forward = Revisions::new();
    for (instant, edited) in edits {
        forward.insert((storage.clone(), utc(instant)), utc(edited));
    }
    let mut backward = Revisions::new();
    for (instant, edited) in edits.into_iter().rev() {
        backward.insert((storage.clone(), utc(instant)), utc(edited));
    }

    let first = sample(&config);
    let (rss_1, atom_1) = site_feeds(&site(&config, &templates, &forward), &first);
    let (rss_2, atom_2) = site_feeds(&site(&config, &templates, &forward), &first);
    assert_eq!(rss_1, rss_2);
    assert_eq!(atom_1, atom_2);

    // A separately parsed corpus, files in another order, another `now`
    // and the revisions inserted in another order: still the same bytes.
    let second = corpus(
        &config,
        &[
            ("drafts/draft.md", DRAFT),
            ("2019/mail-delay.md", MAIL_DELAY),
            ("2019/storage.md", STORAGE),
        ],
    );
    let mut later = site(&config, &templates, &backward);
    later.now = Utc.with_ymd_and_hms(2040, 6, 1, 12, 0, 0).unwrap();
    let (rss_3, atom_3) = site_feeds(&later, &second);
    assert_eq!(rss_1, rss_3);
    assert_eq!(atom_1, atom_3);
}

#[test]
fn component_feeds_hold_only_their_incidents() {
    let config = swedish_config();
    let corpus = sample(&config);
    let (templates, revisions) = (Templates::builtin(), Revisions::new());
    let site = site(&config, &templates, &revisions);
    let ids = |component: &str| -> (Vec<String>, Vec<String>, String, String) {
        let entries = component_entries(&corpus, component, FEED_LIMIT);
        let meta = FeedMeta::component(&site, config.component(component).unwrap());
        let atom = read(&feed::atom(&site, &meta, &entries));
        let rss = read(&feed::rss(&site, &meta, &entries));
        let self_link = |feed: &feed_rs::model::Feed| {
            feed.links
                .iter()
                .find(|l| l.rel.as_deref() == Some("self"))
                .map(|l| l.href.clone())
                .unwrap_or_default()
        };
        (
            atom.entries.iter().map(|e| e.id.clone()).collect(),
            rss.entries.iter().map(|e| e.id.clone()).collect(),
            self_link(&atom),
            self_link(&rss),
        )
    };

    let (atom, rss, atom_self, rss_self) = ids("mail");
    assert_eq!(atom, NEWEST_FIRST);
    assert_eq!(rss, NEWEST_FIRST);
    assert_eq!(atom_self, "https://status.example.se/components/mail.atom");
    assert_eq!(rss_self, "https://status.example.se/components/mail.rss");

    let (atom, rss, _, _) = ids("web-hosting");
    assert_eq!(atom, NEWEST_FIRST[..3]);
    assert_eq!(rss, NEWEST_FIRST[..3]);
}

#[test]
fn empty_feeds_are_valid_and_dated_from_the_data() {
    let config = swedish_config();
    let corpus = sample(&config);
    let (templates, revisions) = (Templates::builtin(), Revisions::new());
    let site = site(&config, &templates, &revisions);
    // No incident affects `dns`.
    let entries = component_entries(&corpus, "dns", FEED_LIMIT);
    assert!(entries.is_empty());
    let meta = FeedMeta::component(&site, config.component("dns").unwrap());

    let atom_bytes = feed::atom(&site, &meta, &entries);
    let atom = read(&atom_bytes);
    assert_eq!(atom.entries.len(), 0);
    assert_eq!(atom.updated, Some(utc("1970-01-01T00:00:00Z")));
    assert_eq!(atom.id, "https://status.example.se/components/dns.atom");
    let text = String::from_utf8(atom_bytes).unwrap();
    assert!(text.contains("<author><name>Exempelhosting driftstatus</name></author>"));

    let rss_bytes = feed::rss(&site, &meta, &entries);
    let rss = read(&rss_bytes);
    assert_eq!(rss.entries.len(), 0);
    assert_eq!(rss.updated, None, "no lastBuildDate without entries");
    assert_eq!(
        rss.title.as_ref().map(|t| t.content.as_str()),
        Some("Exempelhosting driftstatus: DNS")
    );
    let text = String::from_utf8(rss_bytes).unwrap();
    assert!(text.contains("<description>Störningar och planerat underhåll: Exempelhosting driftstatus: DNS</description>"));
}

#[test]
fn characters_xml_cannot_carry_are_dropped() {
    let config = swedish_config();
    // TOML's `\u0001` escape and a raw control character in the body.
    let text = "+++
title = \"Fel\\u0001tecken\"
components = [\"mail\"]
severity = \"minor\"
+++

## 2019-04-04 08:00

Text\u{1}med\u{b}styrtecken.
";
    let corpus = corpus(&config, &[("control.md", text)]);
    let (rss, atom) = feeds(&config, &corpus);
    for bytes in [&rss, &atom] {
        assert!(!bytes.iter().any(|&b| b == 0x01 || b == 0x0b));
        let parsed = read(bytes);
        assert_eq!(
            parsed.entries[0].title.as_ref().map(|t| t.content.as_str()),
            Some("Felsökning pågår: Feltecken")
        );
    }
}

/// One incident with one update, in English: the whole Atom document,
/// checked by hand against RFC 4287 (feed id, updated, author, self link;
/// entry id, title, updated, link, content with escaped HTML).
#[test]
fn atom_snapshot() {
    let config = config(
        &(site_toml::site("Example <Hosting> & Co")
            + &site_toml::components(&[("mail", "Mail & <Webmail>")])),
    );
    let corpus = corpus(
        &config,
        &[(
            "mail-down.md",
            "+++
title = \"Mail is \\\"slow\\\"\"
components = [\"mail\"]
severity = \"major\"
+++

## 2026-11-24 14:05:31 monitoring

components: mail=degraded
Queues drain *slowly* & <b>steadily</b>.
",
        )],
    );
    let (_, atom) = feeds(&config, &corpus);
    assert_eq!(
        String::from_utf8(atom).unwrap(),
        "<?xml version=\"1.0\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"en\">\
         <title>Example &lt;Hosting&gt; &amp; Co</title>\
         <id>https://status.example.com/feed.atom</id>\
         <updated>2026-11-24T13:05:31+00:00</updated>\
         <author><name>Example &lt;Hosting&gt; &amp; Co</name></author>\
         <generator>herald</generator>\
         <link href=\"https://status.example.com/feed.atom\" rel=\"self\" type=\"application/atom+xml\"/>\
         <link href=\"https://status.example.com/\" rel=\"alternate\" type=\"text/html\"/>\
         <entry>\
         <title>Monitoring: Mail is &quot;slow&quot;</title>\
         <id>https://status.example.com/incidents/mail-down.html#u-20261124T130531Z</id>\
         <updated>2026-11-24T13:05:31+00:00</updated>\
         <category term=\"mail\" label=\"Mail &amp; &lt;Webmail&gt;\"/>\
         <link href=\"https://status.example.com/incidents/mail-down.html#u-20261124T130531Z\" rel=\"alternate\" type=\"text/html\"/>\
         <published>2026-11-24T13:05:31+00:00</published>\
         <content type=\"html\">\
         &lt;p&gt;Affected components: Mail &amp;amp; &amp;lt;Webmail&amp;gt; (Degraded performance)&lt;/p&gt;\n\
         &lt;p&gt;Queues drain &lt;em&gt;slowly&lt;/em&gt; &amp;amp; &amp;lt;b&amp;gt;steadily&amp;lt;/b&amp;gt;.&lt;/p&gt;\n\
         </content>\
         </entry>\
         </feed>"
    );
}

/// A `components:` line and text written directly under the heading both
/// reach the entry (an early parser dropped the line after a heading).
#[test]
fn first_line_after_a_heading_is_kept() {
    let config = swedish_config();
    let corpus = corpus(
        &config,
        &[(
            "tight.md",
            "+++
title = \"Tätt\"
components = [\"mail\"]
severity = \"minor\"
+++

## 2019-04-04 08:00 investigating
components: mail=degraded
Första raden.
Andra raden.
",
        )],
    );
    let (_, atom) = feeds(&config, &corpus);
    let parsed = read(&atom);
    assert_eq!(
        parsed.entries[0]
            .content
            .as_ref()
            .and_then(|c| c.body.as_deref()),
        Some(
            "<p>Berörda tjänster: E-post (Försämrad prestanda)</p>\n\
             <p>Första raden.\nAndra raden.</p>"
        )
    );
}

#[test]
fn each_incident_has_an_atom_feed_of_its_own_updates_newest_first() {
    let config = swedish_config();
    let corpus = sample(&config);
    let templates = Templates::builtin();
    let revisions = Revisions::new();
    let site = site(&config, &templates, &revisions);
    let storage = corpus
        .published_get(&IncidentId::new("storage").unwrap())
        .expect("storage is published");
    let outputs = herald::render::incident_pages(&site, &[storage.as_ref()]).unwrap();
    let paths: Vec<&str> = outputs.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, ["incidents/storage.html", "incidents/storage.atom"]);
    let feed = read(&outputs[1].bytes);
    assert_eq!(
        feed.title.as_ref().map(|t| t.content.as_str()),
        Some("Exempelhosting driftstatus: Lagringsfel")
    );
    let links: Vec<(&str, Option<&str>)> = feed
        .links
        .iter()
        .map(|l| (l.href.as_str(), l.rel.as_deref()))
        .collect();
    assert!(
        links.contains(&(
            "https://status.example.se/incidents/storage.atom",
            Some("self")
        )),
        "{links:?}"
    );
    let ids: Vec<&str> = feed.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "https://status.example.se/incidents/storage.html#u-20190408T172600Z",
            "https://status.example.se/incidents/storage.html#u-20190404T082000Z",
            "https://status.example.se/incidents/storage.html#u-20190404T060000Z",
        ]
    );
    // The page links to it.
    let page = String::from_utf8(outputs[0].bytes.clone()).unwrap();
    assert!(
        page.contains(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Lagringsfel (Atom)\" href=\"storage.atom\">"
        ),
        "{page}"
    );
    assert!(page.contains("<a href=\"storage.atom\">Atom</a>"), "{page}");
}
