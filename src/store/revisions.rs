//! What the state database remembers about each published update (keyed
//! by its identity, incident id and instant): when herald first saw it,
//! when its text last changed, and whether it was notified (announced,
//! skipped as too old, or part of the first start's baseline). Does I/O.
//!
//! Feeds show the edit as the entry's `updated` time, so the time comes
//! from recorded data and rebuilds stay byte-identical.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Error, Store, parse_instant};
use crate::announce::{Notified, Seen, UpdateKey};
use crate::model::{Incident, IncidentId};

impl Store {
    /// Records the updates of `incidents` as seen at `now`: new ones get a
    /// first-seen time, ones whose text changed get an edit time. Returns
    /// what is then recorded for each of them, so the caller never reads
    /// back what it just wrote.
    pub fn observe<'a>(
        &mut self,
        incidents: impl IntoIterator<Item = &'a Incident>,
        now: DateTime<Utc>,
    ) -> Result<HashMap<UpdateKey, Seen>, Error> {
        let failed = Error::database(&self.path, "record first-seen and edit times");
        // Sized once: growing a map of 100,000 updates by doubling held the
        // old and the new table at once, the peak of a whole build.
        let incidents: Vec<&Incident> = incidents.into_iter().collect();
        let updates = incidents
            .iter()
            .map(|incident| incident.updates.len())
            .sum();
        let mut observed = HashMap::with_capacity(updates);
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let mut select = transaction
                .prepare_cached(
                    "SELECT content, first_seen, edited FROM revisions WHERE incident = ?1 AND instant = ?2",
                )
                .map_err(failed)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO revisions (incident, instant, content, first_seen) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(failed)?;
            let mut edit = transaction
                .prepare_cached("UPDATE revisions SET content = ?3, edited = ?4 WHERE incident = ?1 AND instant = ?2")
                .map_err(failed)?;
            let now_text = now.to_rfc3339();
            for incident in incidents {
                for update in &incident.updates {
                    let key = (incident.id.as_str(), update.instant.to_rfc3339());
                    let content = revision_content(incident, update);
                    let digest = content_digest(&content);
                    let stored: Option<(String, String, Option<String>)> = select
                        .query_row(params![key.0, key.1], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })
                        .optional()
                        .map_err(failed)?;
                    let seen = match stored {
                        None => {
                            insert
                                .execute(params![key.0, key.1, digest, now_text])
                                .map_err(failed)?;
                            Seen {
                                first_seen: now,
                                edited: None,
                            }
                        }
                        Some((stored, first_seen, edited)) => {
                            let first_seen = parse_instant(&first_seen).unwrap_or(now);
                            // Rows written before digests hold the text.
                            if stored == digest || stored == content {
                                Seen {
                                    first_seen,
                                    edited: edited.as_deref().and_then(parse_instant),
                                }
                            } else {
                                edit.execute(params![key.0, key.1, digest, now_text])
                                    .map_err(failed)?;
                                Seen {
                                    first_seen,
                                    edited: Some(now),
                                }
                            }
                        }
                    };
                    observed.insert((incident.id.clone(), update.instant), seen);
                }
            }
        }
        transaction.commit().map_err(failed)?;
        Ok(observed)
    }

    /// Whether first start has recorded its baseline.
    pub fn has_baseline(&self) -> Result<bool, Error> {
        let found: Option<String> = self
            .connection
            .query_row("SELECT value FROM meta WHERE key = 'baseline'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(Error::database(&self.path, "read the baseline"))?;
        Ok(found.is_some())
    }

    /// First start: records `keys` (every published update) as already
    /// notified, so an old directory emails nobody.
    pub fn record_baseline(&mut self, keys: &[UpdateKey], now: DateTime<Utc>) -> Result<(), Error> {
        let failed = Error::database(&self.path, "record the baseline");
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO notified (incident, instant, at, reason) VALUES (?1, ?2, ?3, 'baseline')",
                )
                .map_err(failed)?;
            let at = now.to_rfc3339();
            for (id, instant) in keys {
                insert
                    .execute(params![id.as_str(), instant.to_rfc3339(), at])
                    .map_err(failed)?;
            }
            transaction
                .execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('baseline', ?1)",
                    params![at],
                )
                .map_err(failed)?;
        }
        transaction.commit().map_err(failed)
    }

    /// First-seen and edit times of the updates seen and not yet
    /// notified (`herald outbox` shows which wait out their grace period).
    pub fn pending_seen(&self) -> Result<HashMap<UpdateKey, Seen>, Error> {
        let failed = Error::database(&self.path, "read the updates not yet notified");
        let mut statement = self
            .connection
            .prepare(
                "SELECT r.incident, r.instant, r.first_seen, r.edited FROM revisions r
                 WHERE NOT EXISTS (SELECT 1 FROM notified n
                                   WHERE n.incident = r.incident AND n.instant = r.instant)",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(failed)?;
        let mut pending = HashMap::new();
        for row in rows {
            let (incident, instant, first_seen, edited) = row.map_err(failed)?;
            if let (Some(id), Some(instant), Some(first_seen)) = (
                IncidentId::new(&incident),
                parse_instant(&instant),
                parse_instant(&first_seen),
            ) {
                let edited = edited.as_deref().and_then(parse_instant);
                pending.insert((id, instant), Seen { first_seen, edited });
            }
        }
        Ok(pending)
    }

    /// Every update already notified, skipped as too old, or recorded as
    /// the baseline.
    pub fn notified(&self) -> Result<Notified, Error> {
        let failed = Error::database(&self.path, "read which updates were notified");
        let mut statement = self
            .connection
            .prepare("SELECT incident, instant FROM notified")
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(failed)?;
        let mut keys = Vec::new();
        for row in rows {
            let (incident, instant) = row.map_err(failed)?;
            if let (Some(id), Some(instant)) = (IncidentId::new(&incident), parse_instant(&instant))
            {
                keys.push((id, instant));
            }
        }
        Ok(keys.into_iter().collect())
    }
}

/// What the database keeps of [`revision_content`]: its SHA-256, which
/// tells an edit as well as the text did (a full build of 100,000 updates
/// wrote 350 MB of text into the database, and read it back at each start).
fn content_digest(content: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let mut digest = String::with_capacity(7 + 64);
    digest.push_str("sha256:");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in Sha256::digest(content.as_bytes()) {
        digest.push(char::from(HEX[usize::from(byte >> 4)]));
        digest.push(char::from(HEX[usize::from(byte & 15)]));
    }
    digest
}

/// What counts as an update's text for edit detection: what a reader
/// sees of it in a feed entry, in any language.
fn revision_content(incident: &Incident, update: &crate::model::Update) -> String {
    let components: Vec<String> = update
        .component_statuses
        .iter()
        .map(|(id, status)| format!("{id}={}", status.as_str()))
        .collect();
    let mut content = format!(
        "{}\n{}\n{}\n{}",
        incident.title,
        update.status.as_str(),
        components.join(","),
        update.body_markdown
    );
    // Translations after it, so that an update without any reads as it
    // did before there were translations.
    for (language, title) in &incident.titles {
        content.push_str(&format!("\ntitle.{}={title}", language.code()));
    }
    for translation in &update.translations {
        content.push_str(&format!(
            "\n### {}\n{}",
            translation.language.code(),
            translation.body_markdown
        ));
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;
    use crate::parse::{Context, parse_incident};
    use crate::store::fixtures::at;
    use std::path::Path;

    fn incident(body: &str) -> Incident {
        let components = vec![Component {
            id: "mail".into(),
            name: "Mail".into(),
            group: None,
            names: Vec::new(),
            group_names: Vec::new(),
        }];
        let context = Context {
            timezone: chrono_tz::UTC,
            components: &components,
            languages: &crate::model::Languages::one(crate::model::Language::En),
        };
        let text = format!(
            "+++\ntitle = \"T\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n## 2019-04-04 08:00\n{body}\n## 2019-04-04 09:00\nsecond\n"
        );
        parse_incident(Path::new("x.md"), &text, &context)
            .0
            .unwrap()
    }

    #[test]
    fn an_edit_of_a_translation_is_an_edit_and_none_reads_as_before() {
        let components = vec![Component {
            id: "mail".into(),
            name: "Mail".into(),
            group: None,
            names: Vec::new(),
            group_names: Vec::new(),
        }];
        let languages =
            crate::model::Languages::new(crate::model::Language::En, &[crate::model::Language::Sv])
                .unwrap();
        let context = Context {
            timezone: chrono_tz::UTC,
            components: &components,
            languages: &languages,
        };
        let parsed = |translation: &str| {
            let text = format!(
                "+++\ntitle = \"T\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n## 2019-04-04 08:00\nfirst\n{translation}"
            );
            parse_incident(Path::new("x.md"), &text, &context)
                .0
                .unwrap()
        };
        let plain = parsed("");
        assert_eq!(
            revision_content(&plain, &plain.updates[0]),
            "T\ninvestigating\n\nfirst"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let key = (IncidentId::new("x").unwrap(), at(8));
        store.observe([&parsed("### sv\nförst\n")], at(10)).unwrap();
        let seen = store
            .observe([&parsed("### sv\nförsta\n")], at(11))
            .unwrap();
        assert_eq!(seen[&key].edited, Some(at(11)));
    }

    #[test]
    fn the_database_keeps_a_digest_and_still_knows_rows_that_hold_the_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let key = (IncidentId::new("x").unwrap(), at(8));
        let first = incident("first");
        store.observe([&first], at(10)).unwrap();
        let stored: String = store
            .connection
            .query_row(
                "SELECT content FROM revisions WHERE instant = ?1",
                [at(8).to_rfc3339()],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            stored,
            content_digest(&revision_content(&first, &first.updates[0]))
        );
        assert!(
            stored.starts_with("sha256:") && stored.len() == 71,
            "{stored}"
        );
        assert_eq!(
            content_digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // A row an older herald wrote holds the text itself: unchanged
        // text is no edit, changed text is.
        store
            .connection
            .execute(
                "UPDATE revisions SET content = ?1 WHERE instant = ?2",
                [
                    revision_content(&first, &first.updates[0]),
                    at(8).to_rfc3339(),
                ],
            )
            .unwrap();
        assert_eq!(store.observe([&first], at(11)).unwrap()[&key].edited, None);
        let seen = store.observe([&incident("first, fixed")], at(12)).unwrap();
        assert_eq!(seen[&key].edited, Some(at(12)));
    }

    #[test]
    fn edits_are_recorded_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = IncidentId::new("x").unwrap();
        let seen = |first: u32, edited: Option<u32>| Seen {
            first_seen: at(first),
            edited: edited.map(at),
        };
        assert_eq!(
            store.observe([&incident("first")], at(10)).unwrap(),
            HashMap::from([
                ((id.clone(), at(8)), seen(10, None)),
                ((id.clone(), at(9)), seen(10, None)),
            ])
        );
        // Unchanged: no edit, first seen stays.
        assert_eq!(
            store.observe([&incident("first")], at(11)).unwrap()[&(id.clone(), at(8))],
            seen(10, None)
        );
        store
            .observe([&incident("first, fixed typo")], at(12))
            .unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store
                .observe([&incident("first, fixed typo")], at(13))
                .unwrap(),
            HashMap::from([
                ((id.clone(), at(8)), seen(10, Some(12))),
                ((id.clone(), at(9)), seen(10, None)),
            ])
        );
        let mode: String = store
            .connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn baseline_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert!(!store.has_baseline().unwrap());
        let keys = vec![(IncidentId::new("x").unwrap(), at(8))];
        store.record_baseline(&keys, at(9)).unwrap();
        assert!(store.has_baseline().unwrap());
        assert_eq!(store.notified().unwrap(), keys.into_iter().collect());
    }
}
