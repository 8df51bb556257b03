//! Double opt-in and unsubscribing by link, in the state database. Does I/O.
//!
//! A subscription asked for over HTTP is a row in `requests` until its
//! link is followed; only then does the address become a subscriber. The
//! row is also its confirmation email's queue entry, drained by the mailer
//! like the outbox. Asking again for an address with a pending request
//! replaces the components and language but sends the email again only
//! once [`RESEND_AFTER`] has passed since it was queued, so repeated
//! requests do not flood the address. An address that is already
//! subscribed goes through the same steps (a request, an email), and
//! nothing changes for it until the link is followed.
//!
//! Links name rows by the SHA-256 of their token; the stored hash is then
//! compared again in constant time ([`crate::token`]).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Error, NewSubscriber, Store, from_millis, millis};
use crate::model::{Channel, Language};
use crate::model::{Confirmation, Follows, IncidentId};
use crate::token::{self, Purpose};

/// How long a confirmation link works.
pub const CONFIRM_WITHIN: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// A repeated request for a pending address sends the email again only
/// this long after it was last queued.
pub const RESEND_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// A subscription asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRequest {
    pub address: String,
    pub channel: Channel,
    pub follows: Follows,
    pub language: Language,
    /// Only the updates that change a status ([`NewSubscriber::only_changes`]).
    pub only_changes: bool,
}

/// What following a confirmation link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// The address is now subscribed (or its choices replaced).
    Now,
    /// The link was followed before; nothing changed.
    Already,
    /// The link is older than [`CONFIRM_WITHIN`].
    Expired,
    Unknown,
}

/// What an unsubscribe link names, or what following it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// A subscriber (for a lookup), or one just removed.
    Now,
    /// A subscriber removed before.
    Already,
    Unknown,
}

/// One confirmation email, leased for sending.
#[derive(Debug, Clone)]
pub struct LeasedConfirmation {
    pub confirmation: Confirmation,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the email was queued: retries stop two days after.
    pub queued: DateTime<Utc>,
}

/// `all_components`, `components` and `incident` of a request row.
fn follows_columns(follows: &Follows) -> (bool, String, Option<&str>) {
    match follows {
        Follows::All => (true, String::new(), None),
        Follows::Components(ids) => (false, ids.join(" "), None),
        Follows::Incident(id) => (false, String::new(), Some(id.as_str())),
    }
}

/// What a request row follows: one incident, everything, or its
/// space-separated components.
fn request_follows(all: bool, components: &str, incident: Option<&str>) -> Follows {
    match incident.and_then(IncidentId::new) {
        Some(id) => Follows::Incident(id),
        None => follows_from_columns(all, components),
    }
}

/// What a subscriber row follows: everything, or its space-separated
/// components.
pub(super) fn follows_from_columns(all: bool, components: &str) -> Follows {
    if all {
        Follows::All
    } else {
        Follows::Components(
            components
                .split(' ')
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

/// Leases due confirmation emails: `?1` now, `?2` the lease's end, `?3`
/// how many (bound as `(SELECT ?3)`, as in `outbox::LEASE`, so that the
/// cached statement is not planned again at every lease).
const LEASE_CONFIRMATIONS: &str = "WITH picked AS (
        SELECT id FROM requests
        WHERE status = 'pending' AND next_attempt_at <= ?1
          AND (lease_until IS NULL OR lease_until <= ?1)
        ORDER BY next_attempt_at, id LIMIT (SELECT ?3))
     UPDATE requests SET lease_until = ?2 WHERE id IN (SELECT id FROM picked)
     RETURNING id, address, all_components, components, language, nonce, expires, attempts, queued, incident, channel";

impl Store {
    /// Records subscription requests in one transaction and queues their
    /// confirmation emails; returns how many emails were queued.
    pub fn request_subscriptions(
        &mut self,
        requests: &[NewRequest],
        now: DateTime<Utc>,
    ) -> Result<usize, Error> {
        let key = &self.refresh_key()?;
        let failed = Error::database(&self.path, "record subscription requests");
        let now_ms = millis(now);
        let expires = millis(now + CONFIRM_WITHIN);
        let resend_before = millis(now - RESEND_AFTER);
        let mut queued = 0;
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let mut find = transaction
                .prepare_cached(
                    "SELECT id, expires <= ?2 OR confirmed IS NOT NULL, status = 'pending', queued
                     FROM requests WHERE address = ?1",
                )
                .map_err(failed)?;
            let mut remove = transaction
                .prepare_cached("DELETE FROM requests WHERE id = ?1")
                .map_err(failed)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO requests (address, all_components, components, language, nonce, token_hash,
                                           created, expires, status, queued, next_attempt_at, incident, only_changes,
                                           channel)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?7, ?7, ?9, ?10, ?11)",
                )
                .map_err(failed)?;
            let mut replace = transaction
                .prepare_cached(
                    "UPDATE requests SET all_components = ?2, components = ?3, language = ?4, incident = ?5,
                        only_changes = ?6, channel = ?7
                     WHERE id = ?1",
                )
                .map_err(failed)?;
            let mut resend = transaction
                .prepare_cached(
                    "UPDATE requests SET status = 'pending', attempts = 0, queued = ?2, next_attempt_at = ?2,
                        lease_until = NULL, last_reply = NULL, expires = ?3
                     WHERE id = ?1",
                )
                .map_err(failed)?;
            for request in requests {
                let (all, components, incident) = follows_columns(&request.follows);
                let language = request.language.code();
                let found: Option<(i64, bool, bool, i64)> = find
                    .query_row(params![request.address, now_ms], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()
                    .map_err(failed)?;
                match found {
                    Some((id, false, in_queue, last_queued)) => {
                        replace
                            .execute(params![
                                id,
                                all,
                                components,
                                language,
                                incident,
                                request.only_changes,
                                request.channel.code()
                            ])
                            .map_err(failed)?;
                        if !in_queue && last_queued <= resend_before {
                            resend
                                .execute(params![id, now_ms, expires])
                                .map_err(failed)?;
                            queued += 1;
                        }
                    }
                    stale => {
                        if let Some((id, ..)) = stale {
                            remove.execute(params![id]).map_err(failed)?;
                        }
                        let nonce = token::new_nonce().map_err(|source| Error::Random {
                            path: self.path.clone(),
                            source,
                        })?;
                        let hash = token::hash(&key.token(Purpose::Confirm, &nonce));
                        insert
                            .execute(params![
                                request.address,
                                all,
                                components,
                                language,
                                nonce,
                                hash.as_slice(),
                                now_ms,
                                expires,
                                incident,
                                request.only_changes,
                                request.channel.code()
                            ])
                            .map_err(failed)?;
                        queued += 1;
                    }
                }
            }
        }
        transaction.commit().map_err(failed)?;
        Ok(queued)
    }

    /// Follows a confirmation link: the request's address becomes a
    /// subscriber with the request's components and language (an
    /// existing subscriber keeps their unsubscribe link).
    pub fn confirm(&mut self, link_token: &str, now: DateTime<Utc>) -> Result<Confirmed, Error> {
        self.confirm_following(link_token, now, |_| true)
    }

    /// [`Store::confirm`], where a request to follow an incident that is
    /// no longer `open` (closed since it was asked for) has expired:
    /// there is nothing left to follow.
    pub fn confirm_following(
        &mut self,
        link_token: &str,
        now: DateTime<Utc>,
        open: impl Fn(&IncidentId) -> bool,
    ) -> Result<Confirmed, Error> {
        let hash = token::hash(link_token);
        type Row = (
            i64,
            Vec<u8>,
            String,
            bool,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            bool,
            String,
        );
        let row: Option<Row> = self
            .connection
            .query_row(
                "SELECT id, token_hash, address, all_components, components, language, expires, confirmed, incident,
                        only_changes, channel
                 FROM requests WHERE token_hash = ?1",
                params![hash.as_slice()],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                        row.get(7)?,
                        row.get(8)?,
                        row.get(9)?,
                        row.get(10)?,
                    ))
                },
            )
            .optional()
            .map_err(Error::database(&self.path, "look up a confirmation link"))?;
        let Some((
            id,
            stored,
            address,
            all,
            components,
            language,
            expires,
            confirmed,
            incident,
            only_changes,
            channel,
        )) = row
        else {
            return Ok(Confirmed::Unknown);
        };
        if !token::same_hash(&stored, &hash) {
            return Ok(Confirmed::Unknown);
        }
        if confirmed.is_some() {
            return Ok(Confirmed::Already);
        }
        if expires <= millis(now) {
            return Ok(Confirmed::Expired);
        }
        let follows = request_follows(all, &components, incident.as_deref());
        if let Follows::Incident(id) = &follows
            && !open(id)
        {
            return Ok(Confirmed::Expired);
        }
        // Adding first and marking second: a failure in between leaves a
        // link that, followed again, adds the same subscriber again.
        self.add_subscribers(
            &[NewSubscriber {
                address,
                channel: Channel::parse(&channel).unwrap_or(Channel::Email),
                follows,
                language: Language::parse(&language).unwrap_or(Language::En),
                only_changes,
            }],
            now,
        )?;
        self.connection
            .execute(
                "UPDATE requests SET confirmed = ?2 WHERE id = ?1",
                params![id, millis(now)],
            )
            .map_err(Error::database(&self.path, "mark a request confirmed"))?;
        Ok(Confirmed::Now)
    }

    /// The subscriber an unsubscribe link names, if it is known, and
    /// their row id while they are still subscribed.
    fn unsubscribe_target(&self, link_token: &str) -> Result<Option<Option<i64>>, Error> {
        let hash = token::hash(link_token);
        let row: Option<(Vec<u8>, Option<i64>)> = self
            .connection
            .query_row(
                "SELECT hash, subscriber FROM unsubscribe_tokens WHERE hash = ?1",
                params![hash.as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(Error::database(&self.path, "look up an unsubscribe link"))?;
        Ok(row
            .filter(|(stored, _)| token::same_hash(stored, &hash))
            .map(|(_, subscriber)| subscriber))
    }

    /// What an unsubscribe link names; changes nothing.
    pub fn unsubscribe_lookup(&self, link_token: &str) -> Result<Unsubscribed, Error> {
        Ok(match self.unsubscribe_target(link_token)? {
            Some(Some(_)) => Unsubscribed::Now,
            Some(None) => Unsubscribed::Already,
            None => Unsubscribed::Unknown,
        })
    }

    /// Follows an unsubscribe link: removes the subscriber and their
    /// queued mail.
    pub fn unsubscribe(&mut self, link_token: &str) -> Result<Unsubscribed, Error> {
        Ok(match self.unsubscribe_target(link_token)? {
            Some(Some(id)) => {
                self.connection
                    .execute("DELETE FROM subscribers WHERE id = ?1", params![id])
                    .map_err(Error::database(
                        &self.path,
                        "remove an unsubscribed subscriber",
                    ))?;
                Unsubscribed::Now
            }
            Some(None) => Unsubscribed::Already,
            None => Unsubscribed::Unknown,
        })
    }

    /// Forgets requests whose links have expired (and with them the
    /// addresses that never confirmed). Returns how many.
    pub fn expire_requests(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        self.connection
            .execute(
                "DELETE FROM requests WHERE expires <= ?1",
                params![millis(now)],
            )
            .map_err(Error::database(&self.path, "forget expired requests"))
    }

    /// Leases up to `limit` confirmation emails due at `now`, like
    /// [`Store::lease`]. Emails whose link has expired are failed instead.
    pub fn lease_confirmations(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<LeasedConfirmation>, Error> {
        let key = &self.refresh_key()?;
        let failed = Error::database(&self.path, "lease confirmation emails");
        let transaction = self.connection.transaction().map_err(failed)?;
        let leased = {
            transaction
                .prepare_cached(
                    "UPDATE requests SET status = 'failed', last_reply = 'the link expired before the email was sent'
                     WHERE status = 'pending' AND expires <= ?1",
                )
                .map_err(failed)?
                .execute(params![millis(now)])
                .map_err(failed)?;
            let mut statement = transaction
                .prepare_cached(LEASE_CONFIRMATIONS)
                .map_err(failed)?;
            let rows = statement
                .query_map(
                    params![millis(now), millis(lease_until), limit as i64],
                    |row| {
                        let all: bool = row.get(2)?;
                        let components: String = row.get(3)?;
                        let language: String = row.get(4)?;
                        let nonce: String = row.get(5)?;
                        let incident: Option<String> = row.get(9)?;
                        let channel: String = row.get(10)?;
                        let channel = Channel::parse(&channel).unwrap_or(Channel::Email);
                        let address: String = row.get(1)?;
                        Ok(LeasedConfirmation {
                            confirmation: Confirmation {
                                id: row.get(0)?,
                                signing: (channel != Channel::Email)
                                    .then(|| key.signing_secret(&address)),
                                address,
                                channel,
                                follows: request_follows(all, &components, incident.as_deref()),
                                language: Language::parse(&language).unwrap_or(Language::En),
                                token: key.token(Purpose::Confirm, &nonce),
                                expires: from_millis(row.get(6)?),
                            },
                            attempts: row.get(7)?,
                            queued: from_millis(row.get(8)?),
                        })
                    },
                )
                .map_err(failed)?;
            let mut leased: Vec<LeasedConfirmation> =
                rows.collect::<Result<_, _>>().map_err(failed)?;
            leased.sort_by_key(|row| row.confirmation.id);
            leased
        };
        transaction.commit().map_err(failed)?;
        Ok(leased)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Delivery, Outcome, Queued};
    use chrono::TimeZone;
    use rusqlite::Connection;

    #[test]
    fn the_cached_confirmation_lease_is_not_planned_again_at_each_lease() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for hour in 1..4 {
            store
                .lease_confirmations(at(1, hour), at(1, hour + 1), 64)
                .unwrap();
        }
        assert_eq!(
            store.statement_runs(LEASE_CONFIRMATIONS),
            (3, 0),
            "{LEASE_CONFIRMATIONS}"
        );
    }

    /// Records the confirmation email of request `id` as accepted.
    fn sent(store: &mut Store, id: i64) {
        store
            .record(&[Outcome {
                row: Queued::Request(id),
                at: at(1, 0),
                delivery: Delivery::Sent,
            }])
            .unwrap();
    }

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn request(address: &str, components: &[&str]) -> NewRequest {
        NewRequest {
            address: address.into(),
            channel: Channel::Email,
            follows: Follows::Components(components.iter().map(|c| (*c).to_owned()).collect()),
            language: Language::Sv,
            only_changes: false,
        }
    }

    fn leased(store: &mut Store, now: DateTime<Utc>) -> Vec<Confirmation> {
        store
            .lease_confirmations(now, now + chrono::TimeDelta::minutes(5), 100)
            .unwrap()
            .into_iter()
            .map(|row| row.confirmation)
            .collect()
    }

    fn addresses(store: &Store) -> Vec<(String, Follows)> {
        store
            .subscribers()
            .unwrap()
            .into_iter()
            .map(|s| (s.address, s.follows))
            .collect()
    }

    #[test]
    fn a_deferred_confirmation_waits_and_a_failed_one_is_not_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .request_subscriptions(&[request("a@example.org", &["mail"])], at(1, 8))
            .unwrap();
        let id = leased(&mut store, at(1, 8))[0].id;
        store
            .record(&[Outcome {
                row: Queued::Request(id),
                at: at(1, 8),
                delivery: Delivery::Retry {
                    next: at(1, 10),
                    reply: "451 try later".into(),
                },
            }])
            .unwrap();
        assert_eq!(store.next_attempt().unwrap(), Some(at(1, 10)));
        assert!(leased(&mut store, at(1, 9)).is_empty());
        let again = store
            .lease_confirmations(at(1, 10), at(1, 11), 100)
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        store
            .record(&[Outcome {
                row: Queued::Request(id),
                at: at(1, 10),
                delivery: Delivery::Failed {
                    reply: "550 no such user".into(),
                },
            }])
            .unwrap();
        assert_eq!(store.next_attempt().unwrap(), None);
        assert!(leased(&mut store, at(2, 10)).is_empty());
        let (status, attempts, reply): (String, u32, String) = store
            .connection
            .query_row(
                "SELECT status, attempts, last_reply FROM requests WHERE id = ?1",
                params![id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), attempts), ("failed", 2));
        assert_eq!(reply, "550 no such user");
    }

    #[test]
    fn a_request_becomes_a_subscriber_only_through_its_link() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let queued = store
            .request_subscriptions(&[request("a@example.org", &["mail", "web"])], at(1, 8))
            .unwrap();
        assert_eq!(queued, 1);
        assert_eq!(addresses(&store), []);
        let mails = leased(&mut store, at(1, 8));
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.address, "a@example.org");
        assert_eq!(
            mail.follows,
            Follows::Components(vec!["mail".into(), "web".into()])
        );
        assert_eq!(mail.expires, at(8, 8));
        assert!(token::is_well_formed(&mail.token));
        sent(&mut store, mail.id);
        assert_eq!(store.next_attempt().unwrap(), None);

        let wrong = "0123456789abcdef0123456789abcdef";
        assert_eq!(store.confirm(wrong, at(2, 8)).unwrap(), Confirmed::Unknown);
        // An unsubscribe token for the same nonce is not a confirm token.
        assert_eq!(
            store.unsubscribe(&mail.token).unwrap(),
            Unsubscribed::Unknown
        );
        assert_eq!(
            store.confirm(&mail.token, at(2, 8)).unwrap(),
            Confirmed::Now
        );
        assert_eq!(
            addresses(&store),
            [(
                "a@example.org".into(),
                Follows::Components(vec!["mail".into(), "web".into()])
            )]
        );
        assert_eq!(
            store.confirm(&mail.token, at(2, 9)).unwrap(),
            Confirmed::Already
        );
        assert_eq!(addresses(&store).len(), 1);
    }

    #[test]
    fn repeated_requests_resend_at_most_hourly_and_change_nothing_until_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .add_subscribers(
                &[NewSubscriber {
                    address: "old@example.org".into(),
                    channel: crate::model::Channel::Email,
                    follows: Follows::All,
                    language: Language::En,
                    only_changes: false,
                }],
                at(1, 7),
            )
            .unwrap();
        let token_before = store.subscribers().unwrap()[0].token.clone();
        let first = store
            .request_subscriptions(
                &[
                    request("new@example.org", &["mail"]),
                    request("old@example.org", &["dns"]),
                ],
                at(1, 8),
            )
            .unwrap();
        assert_eq!(first, 2);
        let mails = leased(&mut store, at(1, 8));
        for mail in &mails {
            sent(&mut store, mail.id);
        }
        // The existing subscriber is unchanged until the link is followed.
        assert_eq!(
            addresses(&store),
            [("old@example.org".into(), Follows::All)]
        );
        // Within the hour: nothing is queued; the choice is replaced.
        let again = store
            .request_subscriptions(&[request("new@example.org", &["web"])], at(1, 8))
            .unwrap();
        assert_eq!(again, 0);
        assert_eq!(leased(&mut store, at(1, 8)), []);
        // After an hour, one more email with the same link.
        let later = store
            .request_subscriptions(&[request("new@example.org", &["web"])], at(1, 10))
            .unwrap();
        assert_eq!(later, 1);
        let resent = leased(&mut store, at(1, 10));
        assert_eq!(resent.len(), 1);
        assert_eq!(resent[0].token, mails[0].token);
        assert_eq!(resent[0].follows, Follows::Components(vec!["web".into()]));
        assert_eq!(resent[0].expires, at(8, 10));

        let old = mails
            .iter()
            .find(|m| m.address == "old@example.org")
            .unwrap();
        assert_eq!(
            store.confirm(&old.token, at(1, 11)).unwrap(),
            Confirmed::Now
        );
        let subscribers = store.subscribers().unwrap();
        assert_eq!(subscribers.len(), 1);
        assert_eq!(subscribers[0].address, "old@example.org");
        assert_eq!(
            subscribers[0].follows,
            Follows::Components(vec!["dns".into()])
        );
        assert_eq!(
            subscribers[0].token, token_before,
            "the unsubscribe link stays"
        );
    }

    #[test]
    fn links_expire_after_seven_days_and_expired_requests_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .request_subscriptions(&[request("late@example.org", &["mail"])], at(1, 8))
            .unwrap();
        store
            .request_subscriptions(&[request("unsent@example.org", &["mail"])], at(1, 8))
            .unwrap();
        let mails = leased(&mut store, at(1, 8));
        sent(&mut store, mails[0].id);
        store.release_leases().unwrap();
        assert_eq!(
            store.confirm(&mails[0].token, at(8, 8)).unwrap(),
            Confirmed::Expired
        );
        assert_eq!(addresses(&store), []);
        // An email whose link expired before it went out is not sent.
        assert_eq!(leased(&mut store, at(8, 8)), []);
        assert_eq!(store.next_attempt().unwrap(), None);
        assert_eq!(store.expire_requests(at(8, 8)).unwrap(), 2);
        assert_eq!(
            store.confirm(&mails[0].token, at(8, 8)).unwrap(),
            Confirmed::Unknown
        );
        // A new request for the address starts afresh.
        assert_eq!(
            store
                .request_subscriptions(&[request("late@example.org", &["mail"])], at(8, 9))
                .unwrap(),
            1
        );
    }

    #[test]
    fn unsubscribing_removes_once_and_is_harmless_when_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .add_subscribers(
                &[NewSubscriber {
                    address: "a@example.org".into(),
                    channel: crate::model::Channel::Email,
                    follows: Follows::All,
                    language: Language::En,
                    only_changes: false,
                }],
                at(1, 7),
            )
            .unwrap();
        let token = store.subscribers().unwrap()[0].token.clone();
        assert_eq!(store.unsubscribe_lookup(&token).unwrap(), Unsubscribed::Now);
        assert_eq!(addresses(&store).len(), 1, "a lookup changes nothing");
        assert_eq!(store.unsubscribe(&token).unwrap(), Unsubscribed::Now);
        assert_eq!(addresses(&store), []);
        assert_eq!(store.unsubscribe(&token).unwrap(), Unsubscribed::Already);
        assert_eq!(
            store.unsubscribe_lookup(&token).unwrap(),
            Unsubscribed::Already
        );
        assert_eq!(
            store
                .unsubscribe("0123456789abcdef0123456789abcdef")
                .unwrap(),
            Unsubscribed::Unknown
        );
    }

    #[test]
    fn version_2_tokens_keep_working_and_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = "5f0c1e2d3b4a69788796a5b4c3d2e1f0";
        {
            let connection = Connection::open(dir.path().join("herald.db")).unwrap();
            connection
                .execute_batch(super::super::migrations::MIGRATIONS[0])
                .unwrap();
            connection
                .execute_batch(super::super::migrations::MIGRATIONS[1])
                .unwrap();
            connection
                .execute(
                    "INSERT INTO subscribers (address, all_components, language, token, created)
                     VALUES ('a@example.org', 1, 'sv', ?1, '2026-11-01T00:00:00+00:00')",
                    params![legacy],
                )
                .unwrap();
            connection.pragma_update(None, "user_version", 2).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let subscriber = store.subscribers().unwrap().remove(0);
        assert_ne!(subscriber.token, legacy, "new mail carries a new token");
        drop(store);
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        for secret in [legacy, &subscriber.token] {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{secret} is in the state directory"
            );
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.unsubscribe_lookup(&subscriber.token).unwrap(),
            Unsubscribed::Now
        );
        assert_eq!(store.unsubscribe(legacy).unwrap(), Unsubscribed::Now);
        assert_eq!(addresses(&store), []);
    }

    #[test]
    fn a_request_to_follow_an_incident_closed_since_has_expired() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let storage = IncidentId::new("storage").unwrap();
        let request = NewRequest {
            channel: Channel::Email,
            address: "one@example.org".into(),
            follows: Follows::Incident(storage.clone()),
            language: Language::En,
            only_changes: false,
        };
        store.request_subscriptions(&[request], at(2, 8)).unwrap();
        let leased = store.lease_confirmations(at(2, 8), at(2, 9), 10).unwrap();
        assert_eq!(
            leased[0].confirmation.follows,
            Follows::Incident(storage.clone())
        );
        let token = leased[0].confirmation.token.clone();
        assert_eq!(
            store
                .confirm_following(&token, at(2, 9), |_| false)
                .unwrap(),
            Confirmed::Expired
        );
        assert!(store.subscribers().unwrap().is_empty());
        assert_eq!(
            store
                .confirm_following(&token, at(2, 9), |id| *id == storage)
                .unwrap(),
            Confirmed::Now
        );
        assert_eq!(
            store.followed_incidents().unwrap(),
            [("one@example.org".to_owned(), "storage".to_owned())]
        );
    }
}
