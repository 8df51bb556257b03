//! Announcements as the state database keeps them: each column back to
//! its part of an [`Announcement`] (component statuses as `id=status,…`,
//! translations as JSON). Does I/O (SQLite).

use rusqlite::{OptionalExtension, params};

use super::{Error, Store, parse_instant};
use crate::announce::{Announcement, Translated};
use crate::model::{
    ComponentStatus, Headline, IncidentId, Kind, Language, Notice, NoticeKind, Status, Window,
};

/// An announcement's translations as the `translations` column holds them.
pub(super) fn translations_json(translations: &[Translated]) -> String {
    let list: Vec<serde_json::Value> = translations
        .iter()
        .map(|translated| {
            let (markdown, html) = translated
                .body
                .as_ref()
                .map(|(markdown, html)| (markdown.as_str(), html.as_str()))
                .unzip();
            serde_json::json!({
                "language": translated.language.code(),
                "title": translated.title,
                "body_markdown": markdown,
                "body_html": html,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The `translations` column read back; an entry that cannot be read is
/// left out (its readers get the site's text).
fn translations_from_json(text: &str) -> Vec<Translated> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str(text) else {
        tracing::warn!("ignoring an unreadable list of translations");
        return Vec::new();
    };
    let text = |entry: &serde_json::Value, key: &str| {
        entry.get(key).and_then(|v| v.as_str()).map(str::to_owned)
    };
    list.iter()
        .filter_map(|entry| {
            let language = Language::parse(entry.get("language")?.as_str()?)?;
            Some(Translated {
                language,
                title: text(entry, "title"),
                body: text(entry, "body_markdown").zip(text(entry, "body_html")),
            })
        })
        .collect()
}

/// An `announcements` row as SQLite gives it.
struct StoredAnnouncement {
    incident: String,
    instant: String,
    title: String,
    kind: String,
    status: String,
    body_markdown: String,
    body_html: String,
    components: String,
    /// The changed components with their statuses before.
    changed: String,
    notice: String,
    /// `starts`, `ends`, `previous_starts`, `previous_ends`.
    window: [Option<String>; 4],
    /// JSON ([`translations_json`]).
    translations: String,
    headline: String,
    change: bool,
}

/// `id=status,…` as stored, back to pairs.
fn statuses(stored: &str) -> Vec<(String, ComponentStatus)> {
    stored
        .split(',')
        .filter_map(|pair| {
            let (id, status) = pair.split_once('=')?;
            Some((id.to_owned(), ComponentStatus::parse(status)?))
        })
        .collect()
}

/// Pairs as stored: `id=status,…`.
pub(super) fn stored_statuses(pairs: &[(String, ComponentStatus)]) -> String {
    pairs
        .iter()
        .map(|(id, status)| format!("{id}={}", status.as_str()))
        .collect::<Vec<_>>()
        .join(",")
}

impl StoredAnnouncement {
    fn parse(self) -> Option<Announcement> {
        let window = |starts: &Option<String>, ends: &Option<String>| {
            Some(Window {
                starts: parse_instant(starts.as_deref()?)?,
                ends: parse_instant(ends.as_deref()?)?,
            })
        };
        let notice = if self.notice.is_empty() {
            None
        } else {
            Some(Notice {
                kind: NoticeKind::parse(&self.notice)?,
                window: window(&self.window[0], &self.window[1])?,
                previous: window(&self.window[2], &self.window[3]),
            })
        };
        Some(Announcement {
            incident: IncidentId::new(&self.incident)?,
            instant: parse_instant(&self.instant)?,
            title: self.title,
            kind: Kind::parse(&self.kind).unwrap_or(Kind::Incident),
            status: Status::parse(&self.status)?,
            body_markdown: self.body_markdown,
            body_html: self.body_html,
            components: statuses(&self.components),
            changed: statuses(&self.changed),
            translations: translations_from_json(&self.translations),
            headline: Headline::parse(&self.headline).unwrap_or(Headline::Status),
            change: self.change,
            notice,
        })
    }
}

impl Store {
    /// A stored announcement.
    pub fn announcement(&self, id: i64) -> Result<Option<Announcement>, Error> {
        let row = self
            .connection
            .query_row(
                "SELECT incident, instant, title, kind, status, body_markdown, body_html, components,
                        notice, starts, ends, previous_starts, previous_ends, headline, is_change, changed, translations
                 FROM announcements WHERE id = ?1",
                params![id],
                |row| {
                    Ok(StoredAnnouncement {
                        incident: row.get(0)?,
                        instant: row.get(1)?,
                        title: row.get(2)?,
                        kind: row.get(3)?,
                        status: row.get(4)?,
                        body_markdown: row.get(5)?,
                        body_html: row.get(6)?,
                        components: row.get(7)?,
                        notice: row.get(8)?,
                        window: [row.get(9)?, row.get(10)?, row.get(11)?, row.get(12)?],
                        headline: row.get(13)?,
                        change: row.get(14)?,
                        changed: row.get(15)?,
                        translations: row.get(16)?,
                    })
                },
            )
            .optional()
            .map_err(Error::database(&self.path, "read an announcement"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let announcement = row.parse();
        if announcement.is_none() {
            tracing::warn!(id, "ignoring an unreadable announcement row");
        }
        Ok(announcement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_translations_are_left_out() {
        assert_eq!(translations_from_json("{"), vec![]);
        assert_eq!(
            translations_from_json(r#"[{"language": "de"}, {"language": "en", "title": 3}]"#),
            vec![Translated {
                language: Language::En,
                title: None,
                body: None
            }]
        );
    }
}
