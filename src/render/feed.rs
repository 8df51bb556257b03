//! RSS 2.0 and Atom 1.0 feeds, one entry per update. Pure.
//!
//! Entry ids and dates come from the data only, so an unchanged corpus
//! gives byte-identical feeds. An entry's link, Atom id and RSS guid are
//! one string, [`update_url`]. A feed is dated by its newest entry's last
//! edit; an empty Atom feed, which must still carry `updated`, says
//! 1970-01-01 rather than reading the clock, and an empty RSS channel
//! leaves `lastBuildDate` out.

use std::collections::BTreeMap;

use atom_syndication::{Content, Generator, Link, Person, Text};
use chrono::{DateTime, Utc};

use crate::model::{Component, Incident, Language};

use super::{Entry, Site, i18n, incident_feed_path, incident_url, update_url};

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
    let language = site.language();
    let items: Vec<rss::Item> = entries
        .iter()
        .map(|entry| (entry, entry_link(site, entry)))
        .map(|(entry, link)| rss::Item {
            title: Some(entry_title(site, entry)),
            link: Some(link.clone()),
            description: Some(entry_html(site, entry)),
            categories: entry
                .incident
                .affected_at(entry.update.instant)
                .map(|id| rss::Category {
                    name: id.clone(),
                    domain: None,
                })
                .collect(),
            guid: Some(rss::Guid {
                value: link,
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
    let language = site.language();
    let atom_entries: Vec<atom_syndication::Entry> = entries
        .iter()
        .map(|entry| (entry, entry_link(site, entry)))
        .map(|(entry, link)| atom_syndication::Entry {
            title: Text::plain(entry_title(site, entry)),
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
                value: Some(entry_html(site, entry)),
                content_type: Some("html".to_owned()),
                ..Content::default()
            }),
            ..atom_syndication::Entry::default()
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
    feed.write_to(Vec::new()).unwrap_or_default()
}

/// The newest `updated` of the entries, `None` for no entries.
/// An RSS date (RFC 2822). chrono's own `to_rfc2822` panics on a year
/// it cannot write; parsing keeps incidents in
/// [`crate::model::PUBLISHABLE_YEARS`], and an edit time read back from
/// the state database must not crash a build either.
fn rfc2822(instant: DateTime<Utc>) -> String {
    instant.format("%a, %-d %b %Y %H:%M:%S %z").to_string()
}

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
    let of = i18n::HeadlineOf {
        title: site.title(entry.incident),
        status: entry.update.status,
        kind: entry.incident.headline(entry.update),
        body_markdown: site.text(entry.update).markdown,
        instant: entry.update.instant,
    };
    xml_text(&i18n::headline(site.language(), &of, site.timezone()))
}

/// The entry's link, Atom id and RSS guid: one string, derived from the
/// base URL, the incident id and the instant only.
fn entry_link(site: &Site, entry: &Entry) -> String {
    update_url(&site.base_url(), &entry.incident.id, entry.update.instant)
}

/// The entry body: a line naming the affected components (with the
/// statuses the update sets, if it sets any), then the update's HTML.
fn entry_html(site: &Site, entry: &Entry) -> String {
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
    xml_text(&format!(
        "<p>{heading}: {}</p>\n{}",
        components.join(", "),
        site.text(entry.update).html()
    ))
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
    text.chars()
        .filter(|&character| {
            matches!(character, '\t' | '\n' | '\r')
                || (character >= ' ' && !matches!(character, '\u{FFFE}' | '\u{FFFF}'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

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
}
