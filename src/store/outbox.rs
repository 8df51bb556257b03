//! Email announcements and the outbox, in the state database. Does I/O.
//!
//! An announcement's content is stored once; the outbox holds one small
//! row per (announcement, subscriber), queued in the same transaction
//! that records the update as notified. A row is leased before sending
//! and marked sent only after the server accepted it, so a crash loses
//! nothing. The lease, retry and outcome steps also serve the queue of
//! confirmation emails ([`super::requests`]). Outbox times are Unix
//! milliseconds, compared as integers.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::announcements::{stored_statuses, translations_json};
use super::subscribers::{SUBSCRIBER_COLUMNS, subscriber_from_row};
use super::{Error, Store, from_millis, millis};
use crate::announce::{Announcement, Decision};
use crate::model::{Channel, Format, Language, Subscriber};

/// One outbox row, leased for sending.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: i64,
    pub announcement: i64,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the row was enqueued: retries stop two days after.
    pub created: DateTime<Utc>,
    pub subscriber: Subscriber,
    /// For a JSON webhook's `component_update`, the component whose
    /// status the announcement changed; `None` for the announcement's own
    /// message.
    pub component: Option<String>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The server accepted it (2xx).
    Sent,
    /// A transient failure: try again at `next`.
    Retry { next: DateTime<Utc>, reply: String },
    /// A permanent failure, or retried for too long; the reply is kept.
    Failed { reply: String },
    /// The address is gone for good: the subscriber is removed, with
    /// their queued deliveries.
    Revoked { reply: String },
}

/// A row of one of the two mail queues: the outbox (announcements) or
/// `requests` (confirmation emails, see [`requests`](super::requests)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Outbox(i64),
    Request(i64),
}

/// The outcome of sending the email of `row`, decided at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub row: Queued,
    pub at: DateTime<Utc>,
    pub delivery: Delivery,
}

/// An outbox row's state, for `herald outbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    /// Not tried yet.
    Pending,
    /// Tried and failed transiently; will be tried again.
    Retrying,
    /// Given up: a permanent failure, or transient ones for too long.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Retrying => "retrying",
            OutboxState::Failed => "failed",
        }
    }
}

/// A message not (yet) delivered, for `herald outbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub state: OutboxState,
    pub address: String,
    pub incident: String,
    /// The update's instant; for a maintenance notice, then its kind
    /// (`2026-12-10T21:00:00+00:00 started`).
    pub instant: String,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_reply: Option<String>,
}

/// Counts per outbox status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: usize,
    pub retrying: usize,
    pub sent: usize,
    pub failed: usize,
}

/// Who gets an announcement, as a condition on `subscribers s`, its
/// parameters named by the arguments: subscribers following one of its
/// components (`components`, a JSON array of ids) or the incident itself
/// (`incident`), and, unless it is a change (`change`), not those who
/// asked for changes only.
fn recipients(components: &str, incident: &str, change: &str) -> String {
    format!(
        "({change} OR NOT s.only_changes)
         AND (s.all_components
              OR EXISTS (SELECT 1 FROM subscriptions c
                         WHERE c.subscriber = s.id
                           AND c.component IN (SELECT value FROM json_each({components})))
              OR EXISTS (SELECT 1 FROM incident_follows f
                         WHERE f.subscriber = s.id AND f.incident = {incident} AND f.ended IS NULL))"
    )
}

/// How many subscribers of each language would get `announcement`, read
/// from `state_dir/herald.db` without writing to it (`herald post
/// --dry-run`): nothing when there is no database yet.
pub fn count_recipients(
    state_dir: &Path,
    announcement: &Announcement,
) -> Result<Vec<(Language, usize)>, Error> {
    let path = state_dir.join("herald.db");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let failed = Error::database(&path, "count the recipients");
    // Read-write but never writing (`query_only`): a read-only connection
    // to a database in WAL mode would leave its `-wal` and `-shm` files
    // behind, while the last connection to close removes them.
    let connection = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(failed)?;
    connection
        .pragma_update(None, "query_only", true)
        .map_err(failed)?;
    let ids: Vec<&str> = announcement.component_ids().collect();
    let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    let mut statement = connection
        .prepare(&format!(
            "SELECT s.language, count(*) FROM subscribers s WHERE {}
             GROUP BY s.language ORDER BY s.language",
            recipients("?1", "?3", "?2")
        ))
        .map_err(failed)?;
    let rows = statement
        .query_map(
            params![ids, announcement.change, announcement.incident.as_str()],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
        )
        .map_err(failed)?;
    let mut counts = Vec::new();
    for row in rows {
        let (language, count) = row.map_err(failed)?;
        if let Some(language) = Language::parse(&language) {
            counts.push((language, usize::try_from(count).unwrap_or(0)));
        }
    }
    Ok(counts)
}

/// Removes who followed only incidents, all of them ended, once no mail
/// waits for them: nothing more will reach them. Run when mail is queued
/// and when it is delivered.
fn remove_finished_followers(transaction: &rusqlite::Transaction) -> rusqlite::Result<usize> {
    transaction
        .prepare_cached(
            "DELETE FROM subscribers
             WHERE id IN (SELECT subscriber FROM incident_follows WHERE ended IS NOT NULL)
               AND NOT all_components
               AND NOT EXISTS (SELECT 1 FROM subscriptions c WHERE c.subscriber = subscribers.id)
               AND NOT EXISTS (SELECT 1 FROM incident_follows f
                               WHERE f.subscriber = subscribers.id AND f.ended IS NULL)
               AND NOT EXISTS (SELECT 1 FROM outbox o
                               WHERE o.subscriber = subscribers.id AND o.status = 'pending')",
        )?
        .execute([])
}

/// Leases due outbox rows: `?1` now, `?2` the lease's end, `?3` how many.
/// The limit is bound as `(SELECT ?3)`: SQLite plans `ORDER BY ... LIMIT ?`
/// with the bound value, so with a plain `LIMIT ?3` the cached statement
/// was parsed and planned again at every lease (the largest database cost
/// of a fan-out).
const LEASE: &str = "WITH picked AS (
        SELECT id FROM outbox
        WHERE status = 'pending' AND next_attempt_at <= ?1
          AND (lease_until IS NULL OR lease_until <= ?1)
        ORDER BY next_attempt_at, id LIMIT (SELECT ?3))
     UPDATE outbox SET lease_until = ?2 WHERE id IN (SELECT id FROM picked)
     RETURNING id, announcement, attempts, created, subscriber, component";

impl Store {
    /// In one transaction: stores each due announcement, records it and
    /// the too-old updates as notified, and queues one outbox row per
    /// subscriber following at least one affected component or the
    /// incident itself. A resolution ends the incident's follows; a
    /// subscriber who followed only incidents, all ended, is removed once
    /// no mail waits for them. Returns the number of messages queued.
    pub fn enqueue(&mut self, decision: &Decision, now: DateTime<Utc>) -> Result<usize, Error> {
        let failed = Error::database(&self.path, "queue announcements");
        let mut queued = 0;
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let at = now.to_rfc3339();
            let mut notify = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO notified (incident, instant, at, reason) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(failed)?;
            let mut record_notice = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO notices (incident, notice, instant, at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(failed)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO announcements (incident, instant, notice, title, kind, status, body_markdown, body_html, components, created, starts, ends, previous_starts, previous_ends, headline, is_change, changed, translations)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                )
                .map_err(failed)?;
            let mut fan_out = transaction
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO outbox (announcement, subscriber, status, created, next_attempt_at)
                     SELECT ?1, s.id, 'pending', ?2, ?2 FROM subscribers s WHERE {}",
                    recipients("?3", "?5", "?4")
                ))
                .map_err(failed)?;
            // Statuspage's component webhook: one row per JSON webhook
            // following a component the update changed (not those who
            // follow the incident only: they follow no component).
            let mut fan_out_component = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO outbox (announcement, subscriber, component, status, created, next_attempt_at)
                     SELECT ?1, s.id, ?3, 'pending', ?2, ?2 FROM subscribers s
                     WHERE s.channel = ?4
                       AND (s.all_components
                            OR EXISTS (SELECT 1 FROM subscriptions c
                                       WHERE c.subscriber = s.id AND c.component = ?3))",
                )
                .map_err(failed)?;
            // Following one incident ends with its resolution, once that
            // email is queued.
            let mut end_follows = transaction
                .prepare_cached(
                    "UPDATE incident_follows SET ended = ?2 WHERE incident = ?1 AND ended IS NULL",
                )
                .map_err(failed)?;
            for announcement in &decision.due {
                let instant = announcement.instant.to_rfc3339();
                let code = announcement
                    .notice
                    .map_or_else(String::new, |notice| notice.kind.code());
                // An update is recorded as notified, a notice as sent:
                // either way once.
                let fresh = if announcement.notice.is_some() {
                    record_notice.execute(params![
                        announcement.incident.as_str(),
                        code,
                        instant,
                        at
                    ])
                } else {
                    notify.execute(params![
                        announcement.incident.as_str(),
                        instant,
                        at,
                        "announced"
                    ])
                }
                .map_err(failed)?;
                if fresh == 0 {
                    continue;
                }
                let window = announcement.notice.map(|notice| notice.window);
                let previous = announcement.notice.and_then(|notice| notice.previous);
                insert
                    .execute(params![
                        announcement.incident.as_str(),
                        instant,
                        code,
                        announcement.title,
                        announcement.kind.as_str(),
                        announcement.status.as_str(),
                        announcement.body_markdown,
                        announcement.body_html,
                        stored_statuses(&announcement.components),
                        at,
                        window.map(|w| w.starts.to_rfc3339()),
                        window.map(|w| w.ends.to_rfc3339()),
                        previous.map(|w| w.starts.to_rfc3339()),
                        previous.map(|w| w.ends.to_rfc3339()),
                        announcement.headline.as_str(),
                        announcement.change,
                        stored_statuses(&announcement.changed),
                        translations_json(&announcement.translations),
                    ])
                    .map_err(failed)?;
                let id = transaction.last_insert_rowid();
                let ids: Vec<&str> = announcement.component_ids().collect();
                let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                queued += fan_out
                    .execute(params![
                        id,
                        millis(now),
                        ids,
                        announcement.change,
                        announcement.incident.as_str()
                    ])
                    .map_err(failed)?;
                for (component, _) in &announcement.changed {
                    queued += fan_out_component
                        .execute(params![
                            id,
                            millis(now),
                            component,
                            Channel::Webhook(Format::Json).code()
                        ])
                        .map_err(failed)?;
                }
                // A resolution, or a maintenance's completion (written or
                // noticed at its end) or cancellation.
                if announcement.status.is_closing() {
                    end_follows
                        .execute(params![announcement.incident.as_str(), at])
                        .map_err(failed)?;
                }
            }
            remove_finished_followers(&transaction).map_err(failed)?;
            for (id, instant) in &decision.too_old {
                notify
                    .execute(params![id.as_str(), instant.to_rfc3339(), at, "too-old"])
                    .map_err(failed)?;
            }
            for (id, instant) in &decision.quiet {
                notify
                    .execute(params![id.as_str(), instant.to_rfc3339(), at, "quiet"])
                    .map_err(failed)?;
            }
        }
        transaction.commit().map_err(failed)?;
        Ok(queued)
    }

    /// At startup: rows leased by a process that is gone go back to
    /// pending. herald is the only process that sends, so every lease
    /// found at startup is stale.
    pub fn release_leases(&mut self) -> Result<usize, Error> {
        let mut released = 0;
        for table in ["outbox", "requests"] {
            released += self
                .connection
                .execute(
                    &format!("UPDATE {table} SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL"),
                    [],
                )
                .map_err(Error::database(&self.path, "release stale leases"))?;
        }
        Ok(released)
    }

    /// Leases up to `limit` rows due at `now` until `lease_until`, oldest
    /// first. A lease that expired (a send that hung) is taken over.
    pub fn lease(
        &mut self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Leased>, Error> {
        let key = &self.key()?.clone();
        let failed = Error::database(&self.path, "lease outbox rows");
        let transaction = self.connection.transaction().map_err(failed)?;
        let leased = {
            let mut statement = transaction.prepare_cached(LEASE).map_err(failed)?;
            let rows = statement
                .query_map(
                    params![millis(now), millis(lease_until), limit as i64],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, u32>(2)?,
                            row.get::<_, i64>(3)?,
                            row.get::<_, i64>(4)?,
                            row.get::<_, String>(5)?,
                        ))
                    },
                )
                .map_err(failed)?;
            let rows: Vec<_> = rows.collect::<Result<_, _>>().map_err(failed)?;
            let mut subscriber = transaction
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.id = ?1"
                ))
                .map_err(failed)?;
            let mut leased = Vec::with_capacity(rows.len());
            for (id, announcement, attempts, created, subscriber_id, component) in rows {
                let found = subscriber
                    .query_row(params![subscriber_id], |row| {
                        subscriber_from_row(row, 0, key)
                    })
                    .optional()
                    .map_err(failed)?;
                if let Some(found) = found {
                    leased.push(Leased {
                        id,
                        announcement,
                        attempts,
                        created: from_millis(created),
                        subscriber: found,
                        component: (!component.is_empty()).then_some(component),
                    });
                }
            }
            leased.sort_by_key(|row| row.id);
            leased
        };
        transaction.commit().map_err(failed)?;
        Ok(leased)
    }

    /// When the next pending row not leased (announcement or
    /// confirmation) falls due, if any.
    pub fn next_attempt(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let next: Option<i64> = self
            .connection
            .query_row(
                "SELECT min(due) FROM (
                    SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) AS due FROM outbox WHERE status = 'pending'
                    UNION ALL
                    SELECT min(max(next_attempt_at, coalesce(lease_until, 0))) FROM requests WHERE status = 'pending')",
                [],
                |row| row.get(0),
            )
            .map_err(Error::database(&self.path, "find when the next email is due"))?;
        Ok(next.map(from_millis))
    }

    /// Records the outcomes of deliveries, from either queue, in one
    /// transaction: the mailer gathers what finished while the previous
    /// commit ran, so a fan-out pays for a commit per handful of messages,
    /// not per message.
    pub fn record(&mut self, outcomes: &[Outcome]) -> Result<(), Error> {
        let failed = Error::database(&self.path, "record delivery outcomes");
        let transaction = self.connection.transaction().map_err(failed)?;
        for outcome in outcomes {
            let at = millis(outcome.at);
            match (outcome.row, &outcome.delivery) {
                    (Queued::Outbox(id), Delivery::Sent) => transaction
                        .prepare_cached(
                            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, lease_until = NULL, done_at = ?2 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, at])),
                    (Queued::Outbox(id), Delivery::Retry { next, reply }) => transaction
                        .prepare_cached(
                            "UPDATE outbox SET attempts = attempts + 1, lease_until = NULL, next_attempt_at = ?2, last_reply = ?3 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, millis(*next), reply])),
                    (Queued::Outbox(id), Delivery::Failed { reply }) => transaction
                        .prepare_cached(
                            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, lease_until = NULL, last_reply = ?3, done_at = ?2 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, at, reply])),
                    (Queued::Request(id), Delivery::Sent) => transaction
                        .prepare_cached(
                            "UPDATE requests SET status = 'sent', attempts = attempts + 1, lease_until = NULL WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id])),
                    (Queued::Request(id), Delivery::Retry { next, reply }) => transaction
                        .prepare_cached(
                            "UPDATE requests SET attempts = attempts + 1, lease_until = NULL, next_attempt_at = ?2, last_reply = ?3 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, millis(*next), reply])),
                    (Queued::Outbox(id), Delivery::Revoked { .. }) => transaction
                        .prepare_cached(
                            "DELETE FROM subscribers WHERE id = (SELECT subscriber FROM outbox WHERE id = ?1)",
                        )
                        .and_then(|mut delete| delete.execute(params![id])),
                    (Queued::Request(id), Delivery::Failed { reply } | Delivery::Revoked { reply }) => transaction
                        .prepare_cached(
                            "UPDATE requests SET status = 'failed', attempts = attempts + 1, lease_until = NULL, last_reply = ?2 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, reply])),
                }
                .map_err(failed)?;
        }
        remove_finished_followers(&transaction).map_err(failed)?;
        transaction.commit().map_err(failed)
    }

    /// Messages not yet delivered and not given up on (pending or
    /// retrying); counted on the pending index, so cheap on a large outbox.
    pub fn pending_mail(&self) -> Result<usize, Error> {
        self.connection
            .query_row(
                "SELECT count(*) FROM outbox WHERE status = 'pending'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| usize::try_from(count).unwrap_or(0))
            .map_err(Error::database(&self.path, "count pending mail"))
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, Error> {
        let failed = Error::database(&self.path, "count outbox rows");
        let mut statement = self
            .connection
            .prepare(
                "SELECT status, attempts > 0, count(*) FROM outbox GROUP BY status, attempts > 0",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(failed)?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let (status, tried, count) = row.map_err(failed)?;
            let count = usize::try_from(count).unwrap_or(0);
            match (status.as_str(), tried) {
                ("pending", false) => counts.pending += count,
                ("pending", true) => counts.retrying += count,
                ("sent", _) => counts.sent += count,
                _ => counts.failed += count,
            }
        }
        Ok(counts)
    }

    /// Undelivered messages: failed ones first, then retrying, then
    /// pending, at most `limit`.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, Error> {
        let failed = Error::database(&self.path, "list the outbox");
        let mut statement = self
            .connection
            .prepare(
                "SELECT o.status, o.attempts, o.next_attempt_at, o.last_reply, s.address, a.incident,
                        a.instant || CASE WHEN a.notice = '' THEN '' ELSE ' ' || a.notice END
                                  || CASE WHEN o.component = '' THEN '' ELSE ' component ' || o.component END
                 FROM outbox o JOIN subscribers s ON s.id = o.subscriber JOIN announcements a ON a.id = o.announcement
                 WHERE o.status != 'sent'
                 ORDER BY o.status = 'pending', o.attempts = 0, o.next_attempt_at, o.id
                 LIMIT ?1",
            )
            .map_err(failed)?;
        let rows = statement
            .query_map(params![limit as i64], |row| {
                let status: String = row.get(0)?;
                let attempts: u32 = row.get(1)?;
                Ok(OutboxEntry {
                    state: match (status.as_str(), attempts) {
                        ("pending", 0) => OutboxState::Pending,
                        ("pending", _) => OutboxState::Retrying,
                        _ => OutboxState::Failed,
                    },
                    attempts,
                    next_attempt: from_millis(row.get(2)?),
                    last_reply: row.get(3)?,
                    address: row.get(4)?,
                    incident: row.get(5)?,
                    instant: row.get(6)?,
                })
            })
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::Translated;
    use crate::model::{ComponentStatus, Headline, IncidentId, Kind, Status};
    use crate::store::NewSubscriber;
    use crate::store::fixtures::{at, subscriber};

    fn announcement(id: &str, hour: u32, components: &[&str]) -> Announcement {
        Announcement {
            incident: IncidentId::new(id).unwrap(),
            instant: at(hour),
            title: "Title".into(),
            kind: Kind::Incident,
            status: Status::Investigating,
            body_markdown: "Body *text*".into(),
            body_html: "<p>Body <em>text</em></p>".into(),
            components: components
                .iter()
                .map(|c| ((*c).to_owned(), ComponentStatus::MajorOutage))
                .collect(),
            translations: vec![],
            headline: Headline::Status,
            change: true,
            changed: Vec::new(),
            notice: None,
        }
    }

    fn leased_addresses(store: &mut Store, now: DateTime<Utc>) -> Vec<String> {
        store
            .lease(now, now + chrono::Duration::minutes(5), 100)
            .unwrap()
            .into_iter()
            .map(|row| row.subscriber.address)
            .collect()
    }

    #[test]
    fn the_cached_lease_statement_is_not_planned_again_at_each_lease() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for hour in 1..4 {
            leased_addresses(&mut store, at(hour));
        }
        assert_eq!(store.statement_runs(LEASE), (3, 0), "{LEASE}");
    }

    #[test]
    fn enqueue_fans_out_once_per_follower_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .add_subscribers(
                &[
                    subscriber("both@example.com", &["mail", "web"]),
                    subscriber("all@example.com", &["*"]),
                    subscriber("web@example.com", &["web"]),
                    subscriber("dns@example.com", &["dns"]),
                ],
                at(8),
            )
            .unwrap();
        let mut translated = announcement("x", 8, &["mail", "web"]);
        translated.translations = vec![
            Translated {
                language: Language::En,
                title: Some("Title in English".into()),
                body: Some(("Body".into(), "<p>Body</p>".into())),
            },
            Translated {
                language: Language::Sv,
                title: None,
                body: Some(("Text".into(), "<p>Text</p>".into())),
            },
        ];
        let decision = Decision {
            due: vec![translated],
            too_old: vec![(IncidentId::new("old").unwrap(), at(1))],
            quiet: vec![(IncidentId::new("quiet").unwrap(), at(2))],
            next: None,
            waiting: Vec::new(),
        };
        assert_eq!(store.enqueue(&decision, at(9)).unwrap(), 3);
        // A second enqueue of the same update queues nothing.
        assert_eq!(store.enqueue(&decision, at(10)).unwrap(), 0);
        assert_eq!(
            store.notified().unwrap(),
            [
                (IncidentId::new("x").unwrap(), at(8)),
                (IncidentId::new("old").unwrap(), at(1)),
                (IncidentId::new("quiet").unwrap(), at(2))
            ]
            .into_iter()
            .collect()
        );
        assert_eq!(
            store.announcement(1).unwrap(),
            Some(decision.due[0].clone())
        );
        let mut addresses = leased_addresses(&mut store, at(9));
        addresses.sort();
        assert_eq!(
            addresses,
            ["all@example.com", "both@example.com", "web@example.com"]
        );
        // Leased rows are not leased again until the lease expires.
        assert_eq!(leased_addresses(&mut store, at(9)), Vec::<String>::new());
        assert_eq!(store.outbox_counts().unwrap().pending, 3);
        assert_eq!(store.pending_mail().unwrap(), 3);
    }

    #[test]
    fn a_changed_component_queues_one_component_update_per_json_webhook_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let hook = |url: &str, channel, follows: &[&str]| NewSubscriber {
            channel,
            ..subscriber(url, follows)
        };
        let json = Channel::Webhook(Format::Json);
        store
            .add_subscribers(
                &[
                    hook("https://a.example/mail", json, &["mail"]),
                    hook("https://a.example/all", json, &["*"]),
                    hook("https://a.example/web", json, &["web"]),
                    hook(
                        "https://a.example/slack",
                        Channel::Webhook(Format::Slack),
                        &["*"],
                    ),
                    subscriber("mail@example.com", &["mail"]),
                ],
                at(8),
            )
            .unwrap();
        let mut changed = announcement("x", 8, &["mail", "web"]);
        changed.changed = vec![("mail".into(), ComponentStatus::Degraded)];
        let decision = Decision {
            due: vec![changed],
            ..Decision::default()
        };
        // Five incident messages, two component updates (mail's JSON
        // followers); the same update again queues nothing.
        assert_eq!(store.enqueue(&decision, at(9)).unwrap(), 7);
        assert_eq!(store.enqueue(&decision, at(10)).unwrap(), 0);
        assert_eq!(
            store.announcement(1).unwrap(),
            Some(decision.due[0].clone())
        );
        let mut leased: Vec<(String, Option<String>)> = store
            .lease(at(9), at(9) + chrono::Duration::minutes(5), 100)
            .unwrap()
            .into_iter()
            .filter(|row| row.component.is_some())
            .map(|row| (row.subscriber.address, row.component))
            .collect();
        leased.sort();
        assert_eq!(
            leased,
            [
                ("https://a.example/all".to_owned(), Some("mail".to_owned())),
                ("https://a.example/mail".to_owned(), Some("mail".to_owned())),
            ]
        );
        let listed = store.outbox(10).unwrap();
        assert!(
            listed
                .iter()
                .any(|entry| entry.instant.ends_with(" component mail")),
            "{listed:?}"
        );
    }

    #[test]
    fn outbox_rows_move_through_retry_sent_and_failed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .add_subscribers(
                &[
                    subscriber("a@example.com", &["*"]),
                    subscriber("b@example.com", &["*"]),
                    subscriber("c@example.com", &["*"]),
                ],
                at(8),
            )
            .unwrap();
        let decision = Decision {
            due: vec![announcement("x", 8, &["mail"])],
            ..Decision::default()
        };
        store.enqueue(&decision, at(9)).unwrap();
        let rows = store.lease(at(9), at(10), 100).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].created, at(9));
        store
            .record(&[
                Outcome {
                    row: Queued::Outbox(rows[0].id),
                    at: at(9),
                    delivery: Delivery::Sent,
                },
                Outcome {
                    row: Queued::Outbox(rows[1].id),
                    at: at(9),
                    delivery: Delivery::Retry {
                        next: at(11),
                        reply: "451 try later".into(),
                    },
                },
                Outcome {
                    row: Queued::Outbox(rows[2].id),
                    at: at(9),
                    delivery: Delivery::Failed {
                        reply: "550 no such user".into(),
                    },
                },
            ])
            .unwrap();
        assert_eq!(
            store.outbox_counts().unwrap(),
            OutboxCounts {
                pending: 0,
                retrying: 1,
                sent: 1,
                failed: 1
            }
        );
        assert_eq!(store.next_attempt().unwrap(), Some(at(11)));
        let listed: Vec<(OutboxState, String, Option<String>)> = store
            .outbox(10)
            .unwrap()
            .into_iter()
            .map(|e| (e.state, e.address, e.last_reply))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    OutboxState::Failed,
                    "c@example.com".into(),
                    Some("550 no such user".into())
                ),
                (
                    OutboxState::Retrying,
                    "b@example.com".into(),
                    Some("451 try later".into())
                ),
            ]
        );
        // Not due before 11:00.
        assert_eq!(leased_addresses(&mut store, at(10)), Vec::<String>::new());
        assert_eq!(leased_addresses(&mut store, at(11)), ["b@example.com"]);
        // A crash while it was leased: startup releases it.
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.release_leases().unwrap(), 1);
        let again = store.lease(at(11), at(12), 100).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        // Removing the subscriber removes their queued mail.
        assert!(store.remove_subscriber("b@example.com").unwrap());
        assert_eq!(store.outbox_counts().unwrap().retrying, 0);
    }
}
