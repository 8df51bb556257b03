//! RSS 2.0 and Atom 1.0 feeds, one entry per update. Pure.
//!
//! Entry ids and dates come from the data only, so an unchanged corpus
//! gives byte-identical feeds. An entry's link, Atom id and RSS guid are
//! one string, [`super::update_url`]. A feed is dated by its newest entry's last
//! edit; an empty Atom feed, which must still carry `updated`, says
//! 1970-01-01 rather than reading the clock, and an empty RSS channel
//! leaves `lastBuildDate` out.

use std::collections::BTreeMap;

use atom_syndication::{Content, Generator, Link, Person, Text};
use chrono::{DateTime, Utc};

use crate::model::{Component, Incident, Language};

use super::{Entry, Site, i18n, incident_feed_path, incident_url, update_url_under};

/// Title and addresses of one feed.
pub struct FeedMeta {
    pub title: String,
    /// Absolute URL of the feed document itself (`atom:link rel=self`).
    pub self_url_rss: String,
    pub self_url_atom: String,
    /// The HTML page the feed is about.
    pub page_url: String,
}

impl FeedMeta {
    pub fn site(site: &Site) -> FeedMeta {
        let base = site.base_url();
        FeedMeta {
            title: site.site_title().to_owned(),
            self_url_rss: format!("{base}feed.rss"),
            self_url_atom: format!("{base}feed.atom"),
            page_url: base.to_owned(),
        }
    }

    /// One incident's feed (`incidents/ID.atom`), which exists in Atom
    /// only: `self_url_rss` names no document.
    pub fn incident(site: &Site, incident: &Incident) -> FeedMeta {
        let base = site.base_url();
        FeedMeta {
            title: format!("{}: {}", site.site_title(), site.title(incident)),
            self_url_rss: String::new(),
            self_url_atom: format!("{base}{}", incident_feed_path(&incident.id)),
            page_url: incident_url(&base, &incident.id),
        }
    }

    pub fn component(site: &Site, component: &Component) -> FeedMeta {
        let base = site.base_url();
        FeedMeta {
            title: format!(
                "{}: {}",
                site.site_title(),
                site.component_name(&component.id)
            ),
            self_url_rss: format!("{base}components/{}.rss", component.id),
            self_url_atom: format!("{base}components/{}.atom", component.id),
            page_url: base.to_owned(),
        }
    }
}

/// What the feeds are written by (`<generator>` in both formats).
const GENERATOR: &str = "herald";

const ATOM_NAMESPACE: &str = "http://www.w3.org/2005/Atom";

/// RSS 2.0: one `<item>` per entry, with an `atom:link rel="self"` as the
/// RSS Advisory Board recommends.
pub fn rss(site: &Site, meta: &FeedMeta, entries: &[Entry]) -> Vec<u8> {
    rss_of(site, meta, entries, written(site, entries))
}

/// [`rss()`] and [`atom()`] of one list of entries, each entry's title, link
/// and text made once for both.
pub fn rss_and_atom(site: &Site, meta: &FeedMeta, entries: &[Entry]) -> (Vec<u8>, Vec<u8>) {
    let written = written(site, entries);
    let rss = rss_of(site, meta, entries, written.clone());
    (rss, atom_of(site, meta, entries, written))
}

/// One entry as both formats carry it: its title, its link (Atom id, RSS
/// guid) and its body (the components line, then the text as HTML), all
/// clean for XML.
#[derive(Clone)]
struct Written {
    title: String,
    link: String,
    body: String,
}

impl Written {
    /// `entry`, its text already HTML.
    fn of(site: &Site, entry: &Entry, html: &str) -> Written {
        Written {
            title: entry_title(site, entry),
            link: entry_link(site, entry),
            body: xml_text_owned(entry_body(site, entry, html)),
        }
    }
}

/// Each of `entries` [`Written`], its text made HTML here.
fn written(site: &Site, entries: &[Entry]) -> Vec<Written> {
    entries
        .iter()
        .map(|entry| Written::of(site, entry, &site.text(entry.update).html()))
        .collect()
}

/// [`rss()`] of entries already [`Written`], `written[i]` that of `entries[i]`.
fn rss_of(site: &Site, meta: &FeedMeta, entries: &[Entry], written: Vec<Written>) -> Vec<u8> {
    let language = site.language();
    let items: Vec<rss::Item> = entries
        .iter()
        .zip(written)
        .map(|(entry, written)| rss::Item {
            title: Some(written.title),
            link: Some(written.link.clone()),
            description: Some(written.body),
            categories: entry
                .incident
                .affected_at(entry.update.instant)
                .map(|id| rss::Category {
                    name: id.clone(),
                    domain: None,
                })
                .collect(),
            guid: Some(rss::Guid {
                value: written.link,
                permalink: true,
            }),
            pub_date: Some(rfc2822(entry.update.instant)),
            ..rss::Item::default()
        })
        .collect();

    let self_link = rss::extension::Extension {
        name: "atom:link".to_owned(),
        value: None,
        attrs: [
            ("href", meta.self_url_rss.as_str()),
            ("rel", "self"),
            ("type", "application/rss+xml"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect(),
        children: BTreeMap::new(),
    };
    let mut extensions = rss::extension::ExtensionMap::new();
    extensions
        .entry("atom".to_owned())
        .or_default()
        .insert("link".to_owned(), vec![self_link]);

    let channel = rss::Channel {
        title: xml_text(&meta.title),
        link: meta.page_url.clone(),
        description: xml_text(&channel_description(language, &meta.title)),
        language: Some(language.code().to_owned()),
        // An empty channel has no build date from the data; leaving it
        // out is valid, while the clock would break reproducibility.
        last_build_date: feed_updated(site, entries).map(rfc2822),
        generator: Some(GENERATOR.to_owned()),
        items,
        extensions,
        namespaces: BTreeMap::from([("atom".to_owned(), ATOM_NAMESPACE.to_owned())]),
        ..rss::Channel::default()
    };
    // Writing into a Vec cannot fail: quick-xml only reports the writer's
    // I/O errors.
    channel.write_to(Vec::new()).unwrap_or_default()
}

/// Atom 1.0 (RFC 4287). The feed carries the author, so entries need none.
pub fn atom(site: &Site, meta: &FeedMeta, entries: &[Entry]) -> Vec<u8> {
    atom_of(site, meta, entries, written(site, entries))
}

/// [`atom`] of entries whose texts are already HTML, `bodies[i]` that of
/// `entries[i]`: an incident's page and feed render each text once.
pub fn atom_with_bodies(
    site: &Site,
    meta: &FeedMeta,
    entries: &[Entry],
    bodies: &[&str],
) -> Vec<u8> {
    let written = entries
        .iter()
        .zip(bodies)
        .map(|(entry, body)| Written::of(site, entry, body))
        .collect();
    atom_of(site, meta, entries, written)
}

/// [`atom`] of entries already [`Written`], `written[i]` that of
/// `entries[i]`.
fn atom_of(site: &Site, meta: &FeedMeta, entries: &[Entry], written: Vec<Written>) -> Vec<u8> {
    let language = site.language();
    // `Entry::default()` parses its placeholder date from text: made once
    // and cloned, not parsed again for each of a build's 100,000 entries.
    let blank = atom_syndication::Entry::default();
    let atom_entries: Vec<atom_syndication::Entry> = entries
        .iter()
        .zip(written)
        .map(|(entry, written)| {
            let link = written.link;
            atom_syndication::Entry {
                title: Text::plain(written.title),
                id: link.clone(),
                updated: site.edited(entry.incident, entry.update).fixed_offset(),
                published: Some(entry.update.instant.fixed_offset()),
                categories: entry
                    .incident
                    .affected_at(entry.update.instant)
                    .map(|id| atom_syndication::Category {
                        term: id.clone(),
                        scheme: None,
                        label: Some(xml_text(site.component_name(id))),
                    })
                    .collect(),
                links: vec![Link {
                    href: link,
                    rel: "alternate".to_owned(),
                    mime_type: Some("text/html".to_owned()),
                    ..Link::default()
                }],
                content: Some(Content {
                    value: Some(written.body),
                    content_type: Some("html".to_owned()),
                    ..Content::default()
                }),
                ..blank.clone()
            }
        })
        .collect();

    let feed = atom_syndication::Feed {
        title: Text::plain(xml_text(&meta.title)),
        // The self URL is unique per feed and never changes while the
        // site keeps its address.
        id: meta.self_url_atom.clone(),
        // RFC 4287 requires `updated`; an empty feed takes the epoch
        // rather than the clock, so it stays byte-identical.
        updated: feed_updated(site, entries)
            .unwrap_or(DateTime::UNIX_EPOCH)
            .fixed_offset(),
        authors: vec![Person {
            name: xml_text(site.site_title()),
            ..Person::default()
        }],
        generator: Some(Generator {
            value: GENERATOR.to_owned(),
            ..Generator::default()
        }),
        links: vec![
            Link {
                href: meta.self_url_atom.clone(),
                rel: "self".to_owned(),
                mime_type: Some("application/atom+xml".to_owned()),
                ..Link::default()
            },
            Link {
                href: meta.page_url.clone(),
                rel: "alternate".to_owned(),
                mime_type: Some("text/html".to_owned()),
                ..Link::default()
            },
        ],
        entries: atom_entries,
        lang: Some(language.code().to_owned()),
        ..atom_syndication::Feed::default()
    };
    // As above: a Vec never fails to take bytes.
    feed.write_to(Vec::with_capacity(1024 + 1536 * entries.len()))
        .unwrap_or_default()
}

/// An RSS date (RFC 2822). chrono's own `to_rfc2822` panics on a year
/// it cannot write; parsing keeps incidents in
/// [`crate::model::PUBLISHABLE_YEARS`], and an edit time read back from
/// the state database must not crash a build either.
fn rfc2822(instant: DateTime<Utc>) -> String {
    instant.format("%a, %-d %b %Y %H:%M:%S %z").to_string()
}

/// The newest `updated` of the entries, `None` for no entries.
fn feed_updated(site: &Site, entries: &[Entry]) -> Option<DateTime<Utc>> {
    entries
        .iter()
        .map(|entry| site.edited(entry.incident, entry.update))
        .max()
}

/// `Löst: Fel i lagringssystemet` when the status changed, otherwise the
/// title and the text's first words, so that consecutive entries differ
/// ([`i18n::headline`]).
fn entry_title(site: &Site, entry: &Entry) -> String {
    xml_text_owned(entry_headline(site, entry))
}

/// [`entry_title`] before [`xml_text`].
fn entry_headline(site: &Site, entry: &Entry) -> String {
    let of = i18n::HeadlineOf {
        title: site.title(entry.incident),
        status: entry.update.status,
        kind: entry.incident.headline(entry.update),
        body_markdown: site.text(entry.update).markdown,
        instant: entry.update.instant,
    };
    i18n::headline(site.language(), &of, site.timezone())
}

/// The entry's link, Atom id and RSS guid: one string, derived from the
/// base URL, the incident id and the instant only.
fn entry_link(site: &Site, entry: &Entry) -> String {
    update_url_under(
        &site.config.site.base_url,
        site.prefix(),
        &entry.incident.id,
        entry.update.instant,
    )
}

/// The entry body: a line naming the affected components (with the
/// statuses the update sets, if it sets any), then the update's text,
/// already HTML.
fn entry_body(site: &Site, entry: &Entry, html: &str) -> String {
    let language = site.language();
    let components: Vec<String> = entry
        .incident
        .affected_at(entry.update.instant)
        .map(|id| {
            let name = escape_html(site.component_name(id));
            let status = entry
                .update
                .component_statuses
                .iter()
                .find(|(component, _)| component == id)
                .map(|(_, status)| *status);
            match status {
                Some(status) => format!(
                    "{name} ({})",
                    escape_html(i18n::component_status_label(language, status))
                ),
                None => name,
            }
        })
        .collect();
    let heading = match language {
        Language::Sv => "Berörda tjänster",
        Language::En => "Affected components",
    };
    format!("<p>{heading}: {}</p>\n{html}", components.join(", "))
}

fn channel_description(language: Language, title: &str) -> String {
    match language {
        Language::Sv => format!("Störningar och planerat underhåll: {title}"),
        Language::En => format!("Incidents and planned maintenance: {title}"),
    }
}

/// The configured name of a component; its id if the configuration no
/// longer has it.
fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Drops the characters XML 1.0 cannot carry at all, escaped or not
/// (C0 controls other than tab and newlines, U+FFFE, U+FFFF): one stray
/// control character in an incident file must not make every feed
/// unparseable.
fn xml_text(text: &str) -> String {
    if carried_whole(text) {
        return text.to_owned();
    }
    text.chars()
        .filter(|&character| {
            matches!(character, '\t' | '\n' | '\r')
                || (character >= ' ' && !matches!(character, '\u{FFFE}' | '\u{FFFF}'))
        })
        .collect()
}

/// [`xml_text`] of a text already owned: the usual text, which XML
/// carries whole, is not copied.
fn xml_text_owned(text: String) -> String {
    if carried_whole(&text) {
        text
    } else {
        xml_text(&text)
    }
}

/// Whether XML 1.0 carries every character of `text`: no C0 control but
/// tab and newlines, no U+FFFE or U+FFFF (both begin with the byte EF).
fn carried_whole(text: &str) -> bool {
    let bytes = text.as_bytes();
    // No early exit: without one the compiler checks many bytes at once,
    // and the usual text has no such byte anyway.
    let forbidden = bytes.iter().fold(false, |found, &byte| {
        found | (byte < 0x20 && !matches!(byte, b'\t' | b'\n' | b'\r'))
    });
    !forbidden && (!bytes.contains(&0xef) || !text.contains(['\u{FFFE}', '\u{FFFF}']))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;
    #[test]
    fn xml_text_drops_only_what_xml_cannot_carry() {
        let cases = [
            ("plain åäö 😀 &<>", "plain åäö 😀 &<>"),
            ("tab\tline\nreturn\r", "tab\tline\nreturn\r"),
            ("a\u{1}b\u{1f}c", "abc"),
            ("x\u{FFFE}y\u{FFFF}z\u{FFFD}\u{EFFF}", "xyz\u{FFFD}\u{EFFF}"),
        ];
        for (text, kept) in cases {
            assert_eq!(xml_text(text), kept, "{text:?}");
            assert_eq!(xml_text_owned(text.to_owned()), kept, "{text:?}");
            assert_eq!(carried_whole(text), text == kept, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn carried_whole_checks_every_character(text in "[\\x00-\\x{7f}\\x{fff0}-\\x{ffff}åäö😀]{0,80}") {
            let by_characters = text.chars().all(|character| {
                matches!(character, '\t' | '\n' | '\r')
                    || (character >= ' ' && !matches!(character, '\u{FFFE}' | '\u{FFFF}'))
            });
            proptest::prop_assert_eq!(carried_whole(&text), by_characters);
        }
    }

    #[test]
    fn rss_dates_match_chrono_and_never_panic() {
        let instant = Utc.with_ymd_and_hms(2019, 4, 4, 6, 5, 9).unwrap();
        assert_eq!(rfc2822(instant), instant.to_rfc2822());
        assert_eq!(rfc2822(instant), "Thu, 4 Apr 2019 06:05:09 +0000");
        // Out of RFC 2822's range: written as is, not a panic.
        let late = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(rfc2822(late), "Sat, 1 Jan +10000 00:00:00 +0000");
        assert!(!rfc2822(DateTime::<Utc>::MIN_UTC).is_empty());
    }

    /// A two-language site whose names and texts hold every character
    /// the writers treat specially, one update edited after publication.
    #[test]
    fn atom_escapes_what_xml_must_and_leaves_out_what_it_cannot_carry() {
        let config = crate::config::parse(
            std::path::Path::new("herald.toml"),
            "[site]\ntitle = \"Drift & <status> 'A' \\\"B\\\" \\u0001\"\nbase_url = \"https://status.example.se/a&b/\"\ntimezone = \"Europe/Stockholm\"\nlanguages = [\"sv\", \"en\"]\n\n[[components]]\nid = \"mail\"\nname = \"E-post <&> \\\"q\\\" 'a'\"\n\n[[components]]\nid = \"dns\"\nname = \"DNS\\u0007\"\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
        let context = crate::parse::Context {
            timezone: config.site.timezone,
            components: &config.components,
            languages: &config.site.languages,
        };
        let mut files = crate::corpus::Files::default();
        files.update(
            std::path::Path::new("a.md"),
            "+++\ntitle.sv = \"Fel & <fel> 'x' \\\"y\\\" \\u0002\\uFFFE\"\ntitle.en = \"Fault \\u0080 \\uFFFF\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\nA <b>&amp; 'q' \"d\" \u{1}\u{7f}\u{85}\u{fffe}\u{ffff} \u{1f600}\n\n### en\nIn English & <i>so</i>.\n\n## 2019-04-04 09:00 identified\ncomponents: dns=major-outage, mail=operational\nSame words as before, more of them: one two three four five six seven.\n\n## 2019-04-04 10:00 identified\nSame words as before, more of them: one two three four five six seven.\n\n## 2019-04-05 12:00:30 resolved\nDone.\n",
            &context,
        );
        files.update(
            std::path::Path::new("b.md"),
            "+++\ntitle = \"B\"\ncomponents = [\"dns\"]\nseverity = \"major\"\n+++\n\n## 2019-05-01 08:00 investigating\nB.\n",
            &context,
        );
        let (corpus, diagnostics) = files.corpus();
        assert_eq!(corpus.len(), 2, "{diagnostics:?} {files:?}");
        let incidents: Vec<&Incident> = corpus.published().map(AsRef::as_ref).collect();
        let templates = crate::render::Templates::builtin();
        let mut revisions = crate::render::Revisions::new();
        let first = &incidents[0].updates[0];
        revisions.insert(
            (incidents[0].id.clone(), first.instant),
            first.instant + chrono::Duration::hours(30),
        );
        let moves = crate::render::Moves::new();
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2019, 6, 1, 0, 0, 0).unwrap();
        let site = Site::new(&config, &templates, &revisions, &moves, now);
        let every: Vec<Entry> = incidents
            .iter()
            .flat_map(|incident| {
                incident
                    .updates
                    .iter()
                    .map(move |update| Entry { incident, update })
            })
            .collect();
        // Each is written escaped or left out, and the feed parses.
        let swedish = String::from_utf8(atom(&site, &FeedMeta::site(&site), &every)).unwrap();
        for written in [
            "&amp;",
            "&lt;",
            "&gt;",
            "&apos;",
            "&quot;",
            "\u{7f}",
            "\u{85}",
            "\u{1f600}",
        ] {
            assert!(swedish.contains(written), "{written}: {swedish}");
        }
        for left_out in ['\u{1}', '\u{2}', '\u{7}', '\u{fffe}', '\u{ffff}'] {
            assert!(!swedish.contains(left_out), "{left_out:?}: {swedish}");
        }
        let parsed = feed_rs::parser::parse(swedish.as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}: {swedish}");
        // Both formats made together are what each is made alone.
        let meta = FeedMeta::site(&site);
        let (both_rss, both_atom) = rss_and_atom(&site, &meta, &every);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        assert_eq!(text(&both_rss), text(&rss(&site, &meta, &every)));
        assert_eq!(text(&both_atom), text(&atom(&site, &meta, &every)));
    }
}
