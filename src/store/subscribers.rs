//! Subscribers in the state database: adding, updating, listing and
//! removing them, each one's unsubscribe token derived from its nonce,
//! the hashes of those tokens, and `herald rekey`. Does I/O.
//!
//! No link token is stored, only nonces and SHA-256 hashes of tokens; the
//! tokens come from the key next to the database ([`crate::token`]). A
//! removed subscriber's token hashes stay, pointing nowhere, so a repeated
//! unsubscribe still says "unsubscribed" ([`super::requests`]).

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::requests::follows_from_columns;
use super::{Error, Store, unusable, write_fingerprint};
use crate::model::{Channel, Follows, Language, Subscriber};
use crate::token::{self, Key, Purpose};

/// A subscriber to add or update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscriber {
    pub address: String,
    pub channel: Channel,
    pub follows: Follows,
    pub language: Language,
    /// Only the changes: the first update, a change of the incident's or
    /// a component's status, the resolution. Otherwise every update.
    pub only_changes: bool,
}

/// What [`Store::add_subscribers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Added {
    pub added: usize,
    /// Already subscribed: components and language replaced, token kept.
    pub updated: usize,
}

/// The columns [`subscriber_from_row`] reads, for a query on `subscribers s`.
pub(super) const SUBSCRIBER_COLUMNS: &str =
    "s.id, s.address, s.all_components, s.language, s.nonce,
    (SELECT group_concat(component, ' ') FROM
        (SELECT component FROM subscriptions WHERE subscriber = s.id ORDER BY component)),
    s.channel";

/// A subscriber row, with the unsubscribe token derived from its nonce.
pub(super) fn subscriber_from_row(
    row: &rusqlite::Row,
    start: usize,
    key: &Key,
) -> rusqlite::Result<Subscriber> {
    let all: bool = row.get(start + 2)?;
    let language: String = row.get(start + 3)?;
    let components: Option<String> = row.get(start + 5)?;
    let channel: String = row.get(start + 6)?;
    let nonce: String = row.get(start + 4)?;
    // An unknown channel (from a newer herald) is delivered as nothing:
    // the email transport refuses a URL, and the row is parked.
    let channel = Channel::parse(&channel).unwrap_or(Channel::Email);
    let address: String = row.get(start + 1)?;
    Ok(Subscriber {
        id: row.get(start)?,
        signing: matches!(channel, Channel::Webhook(_)).then(|| key.signing_secret(&address)),
        address,
        channel,
        follows: follows_from_columns(all, &components.unwrap_or_default()),
        language: Language::parse(&language).unwrap_or(Language::En),
        token: key.token(Purpose::Unsubscribe, &nonce),
    })
}

/// Adds the hash of a subscriber's unsubscribe token.
fn insert_unsubscribe_token(
    transaction: &rusqlite::Transaction,
    key: &Key,
    subscriber: i64,
    nonce: &str,
) -> rusqlite::Result<()> {
    let hash = token::hash(&key.token(Purpose::Unsubscribe, nonce));
    transaction
        .prepare_cached("INSERT INTO unsubscribe_tokens (hash, subscriber) VALUES (?1, ?2)")?
        .execute(params![hash.as_slice(), subscriber])
        .map(drop)
}

impl Store {
    /// Adds subscribers, or updates the components and language of those
    /// already there (keeping their tokens), all in one transaction. One
    /// following an incident ([`Follows::Incident`]) adds that incident
    /// to what the address follows, and follows no component if new.
    pub fn add_subscribers(
        &mut self,
        subscribers: &[NewSubscriber],
        now: DateTime<Utc>,
    ) -> Result<Added, Error> {
        let failed = Error::database(&self.path, "add subscribers");
        let mut result = Added::default();
        let key = &self.key()?.clone();
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let mut find = transaction
                .prepare_cached("SELECT id FROM subscribers WHERE address = ?1")
                .map_err(failed)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO subscribers (address, all_components, language, nonce, created, only_changes, channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(failed)?;
            let mut update = transaction
                .prepare_cached(
                    "UPDATE subscribers SET all_components = ?2, language = ?3, only_changes = ?4, channel = ?5 WHERE id = ?1",
                )
                .map_err(failed)?;
            let mut clear = transaction
                .prepare_cached("DELETE FROM subscriptions WHERE subscriber = ?1")
                .map_err(failed)?;
            let mut follow = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO subscriptions (subscriber, component) VALUES (?1, ?2)",
                )
                .map_err(failed)?;
            let mut follow_incident = transaction
                .prepare_cached(
                    "INSERT INTO incident_follows (subscriber, incident) VALUES (?1, ?2)
                     ON CONFLICT DO UPDATE SET ended = NULL",
                )
                .map_err(failed)?;
            let mut language_only = transaction
                .prepare_cached("UPDATE subscribers SET language = ?2 WHERE id = ?1")
                .map_err(failed)?;
            let created = now.to_rfc3339();
            for subscriber in subscribers {
                let all = subscriber.follows == Follows::All;
                let language = subscriber.language.code();
                let existing: Option<i64> = find
                    .query_row(params![subscriber.address], |row| row.get(0))
                    .optional()
                    .map_err(failed)?;
                let id = match existing {
                    // Following one incident adds to what they follow.
                    Some(id) if matches!(subscriber.follows, Follows::Incident(_)) => {
                        language_only
                            .execute(params![id, language])
                            .map_err(failed)?;
                        result.updated += 1;
                        id
                    }
                    Some(id) => {
                        update
                            .execute(params![
                                id,
                                all,
                                language,
                                subscriber.only_changes,
                                subscriber.channel.code()
                            ])
                            .map_err(failed)?;
                        clear.execute(params![id]).map_err(failed)?;
                        result.updated += 1;
                        id
                    }
                    None => {
                        let nonce = token::new_nonce().map_err(|source| Error::Random {
                            path: self.path.clone(),
                            source,
                        })?;
                        insert
                            .execute(params![
                                subscriber.address,
                                all,
                                language,
                                nonce,
                                created,
                                subscriber.only_changes,
                                subscriber.channel.code()
                            ])
                            .map_err(failed)?;
                        result.added += 1;
                        let id = transaction.last_insert_rowid();
                        insert_unsubscribe_token(&transaction, key, id, &nonce).map_err(failed)?;
                        id
                    }
                };
                if let Follows::Incident(incident) = &subscriber.follows {
                    follow_incident
                        .execute(params![id, incident.as_str()])
                        .map_err(failed)?;
                }
                if let Follows::Components(components) = &subscriber.follows {
                    for component in components {
                        follow.execute(params![id, component]).map_err(failed)?;
                    }
                }
            }
        }
        transaction.commit().map_err(failed)?;
        Ok(result)
    }

    /// Removes a subscriber and their queued mail; `false` if unknown.
    pub fn remove_subscriber(&mut self, address: &str) -> Result<bool, Error> {
        let removed = self
            .connection
            .execute(
                "DELETE FROM subscribers WHERE address = ?1",
                params![address],
            )
            .map_err(Error::database(&self.path, "remove a subscriber"))?;
        Ok(removed > 0)
    }

    /// The incidents each address follows until their resolution, by
    /// address then incident.
    pub fn followed_incidents(&self) -> Result<Vec<(String, String)>, Error> {
        let failed = Error::database(&self.path, "list followed incidents");
        let mut statement = self
            .connection
            .prepare(
                "SELECT s.address, f.incident FROM incident_follows f
                 JOIN subscribers s ON s.id = f.subscriber
                 WHERE f.ended IS NULL ORDER BY s.address, f.incident",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    /// The subscriber at `address`, if any.
    pub fn subscriber(&self, address: &str) -> Result<Option<Subscriber>, Error> {
        let failed = Error::database(&self.path, "find a subscriber");
        let key = self.key()?;
        self.connection
            .query_row(
                &format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.address = ?1"),
                params![address],
                |row| subscriber_from_row(row, 0, key),
            )
            .optional()
            .map_err(failed)
    }

    /// Every subscriber, by address.
    pub fn subscribers(&self) -> Result<Vec<Subscriber>, Error> {
        let failed = Error::database(&self.path, "list subscribers");
        let key = self.key()?;
        let mut statement = self
            .connection
            .prepare(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s ORDER BY s.address"
            ))
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| subscriber_from_row(row, 0, key))
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    /// The addresses of the subscribers who asked for changes only.
    pub fn only_changes(&self) -> Result<HashSet<String>, Error> {
        let failed = Error::database(&self.path, "list subscribers");
        let mut statement = self
            .connection
            .prepare("SELECT address FROM subscribers WHERE only_changes")
            .map_err(failed)?;
        let rows = statement.query_map([], |row| row.get(0)).map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }

    /// `herald rekey`: a new key, and the hashes of every subscriber's new
    /// unsubscribe token beside the old ones (links in mail already sent
    /// keep working). Pending requests get new confirmation tokens; the
    /// links already mailed for them stop working. Returns the number of
    /// subscribers and requests re-keyed.
    pub fn rekey(&mut self, state_dir: &Path) -> Result<u64, Error> {
        // The key first: a crash before the commit leaves a key that the
        // database does not know, reported as such, and rekey can run again.
        let key = Key::replace(state_dir).map_err(|error| Error::Key(unusable(&error)))?;
        let failed = Error::database(&self.path, "rekey subscribers and requests");
        let random = |source| Error::Random {
            path: self.path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(failed)?;
        let mut count = 0;
        {
            let subscribers: Vec<(i64, String)> = transaction
                .prepare("SELECT id, nonce FROM subscribers")
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                        .collect()
                })
                .map_err(failed)?;
            for (id, nonce) in subscribers {
                insert_unsubscribe_token(&transaction, &key, id, &nonce).map_err(failed)?;
                count += 1;
            }
            let requests: Vec<i64> = transaction
                .prepare("SELECT id FROM requests WHERE confirmed IS NULL")
                .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
                .map_err(failed)?;
            let mut update = transaction
                .prepare("UPDATE requests SET nonce = ?2, token_hash = ?3 WHERE id = ?1")
                .map_err(failed)?;
            for id in requests {
                let nonce = token::new_nonce().map_err(random)?;
                let hash = token::hash(&key.token(Purpose::Confirm, &nonce));
                update
                    .execute(params![id, nonce, hash.as_slice()])
                    .map_err(failed)?;
                count += 1;
            }
            write_fingerprint(&transaction, &key).map_err(failed)?;
        }
        transaction.commit().map_err(failed)?;
        self.key = Ok(key);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{at, subscriber};

    #[test]
    fn subscribers_are_added_updated_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let added = store
            .add_subscribers(
                &[
                    subscriber("a@example.com", &["web", "mail"]),
                    subscriber("b@example.com", &["*"]),
                ],
                at(8),
            )
            .unwrap();
        assert_eq!(
            added,
            Added {
                added: 2,
                updated: 0
            }
        );
        let before = store.subscribers().unwrap();
        assert_eq!(
            before[0].follows,
            Follows::Components(vec!["mail".into(), "web".into()])
        );
        assert_eq!(before[1].follows, Follows::All);
        assert_eq!(before[0].token.len(), 32);
        assert_ne!(before[0].token, before[1].token);
        let again = store
            .add_subscribers(&[subscriber("a@example.com", &["dns"])], at(9))
            .unwrap();
        assert_eq!(
            again,
            Added {
                added: 0,
                updated: 1
            }
        );
        let after = store.subscribers().unwrap();
        assert_eq!(after[0].follows, Follows::Components(vec!["dns".into()]));
        assert_eq!(
            after[0].token, before[0].token,
            "the token survives an update"
        );
        assert!(store.remove_subscriber("a@example.com").unwrap());
        assert!(!store.remove_subscriber("a@example.com").unwrap());
        let left: Vec<String> = store
            .subscribers()
            .unwrap()
            .into_iter()
            .map(|s| s.address)
            .collect();
        assert_eq!(left, ["b@example.com"]);
    }

    #[test]
    fn following_one_incident_gets_its_mail_only_until_its_resolution() {
        use crate::announce::{Announcement, Decision};
        use crate::model::{ComponentStatus, IncidentId, Kind, Status};
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let incident = |id: &str| IncidentId::new(id).unwrap();
        let follow = |address: &str, id: &str| NewSubscriber {
            address: address.into(),
            channel: crate::model::Channel::Email,
            follows: Follows::Incident(incident(id)),
            language: Language::En,
            only_changes: false,
        };
        store
            .add_subscribers(&[subscriber("dns@example.org", &["dns"])], at(5))
            .unwrap();
        let added = store
            .add_subscribers(
                &[
                    follow("one@example.org", "x"),
                    follow("dns@example.org", "y"),
                ],
                at(6),
            )
            .unwrap();
        assert_eq!(
            added,
            Added {
                added: 1,
                updated: 1
            }
        );
        // Following an incident kept the components followed before.
        let listed: Vec<(String, Follows)> = store
            .subscribers()
            .unwrap()
            .into_iter()
            .map(|s| (s.address, s.follows))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "dns@example.org".into(),
                    Follows::Components(vec!["dns".into()])
                ),
                ("one@example.org".into(), Follows::Components(Vec::new())),
            ]
        );
        let update = |id: &str, hour: u32, status: Status| Announcement {
            incident: incident(id),
            instant: at(hour),
            title: "Mail down".into(),
            kind: Kind::Incident,
            status,
            body_markdown: String::new(),
            body_html: String::new(),
            components: vec![("mail".into(), ComponentStatus::MajorOutage)],
            translations: vec![],
            headline: crate::model::Headline::Status,
            change: true,
            changed: Vec::new(),
            notice: None,
        };
        let recipients = |store: &mut Store, due: Vec<Announcement>, now| {
            let decision = Decision {
                due,
                ..Decision::default()
            };
            store.enqueue(&decision, now).unwrap();
            let mut rows: Vec<String> = store
                .connection
                .prepare(
                    "SELECT s.address FROM outbox o JOIN subscribers s ON s.id = o.subscriber
                     WHERE o.status = 'pending' ORDER BY s.address",
                )
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            store
                .connection
                .execute("UPDATE outbox SET status = 'sent'", [])
                .unwrap();
            rows.dedup();
            rows
        };
        // x's update reaches its follower only; y's its follower only.
        let got = recipients(
            &mut store,
            vec![update("x", 8, Status::Investigating)],
            at(8),
        );
        assert_eq!(got, ["one@example.org"]);
        let got = recipients(
            &mut store,
            vec![update("y", 8, Status::Investigating)],
            at(8),
        );
        assert_eq!(got, ["dns@example.org"]);
        // The resolution still goes out; then the follow has ended.
        let got = recipients(&mut store, vec![update("x", 9, Status::Resolved)], at(9));
        assert_eq!(got, ["one@example.org"]);
        let got = recipients(
            &mut store,
            vec![update("x", 10, Status::Investigating)],
            at(10),
        );
        assert_eq!(got, Vec::<String>::new());
        // Who followed only x is gone once nothing waited for them; the
        // other keeps their components.
        let addresses: Vec<String> = store
            .subscribers()
            .unwrap()
            .into_iter()
            .map(|s| s.address)
            .collect();
        assert_eq!(addresses, ["dns@example.org"]);
    }
}
