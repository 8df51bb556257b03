//! The state database (`state/herald.db`, SQLite in WAL mode). Does I/O.
//!
//! It remembers, for every published update (keyed by its identity,
//! incident id and instant), when herald first saw it and when its text
//! last changed. Feeds show the edit as the entry's `updated` time, so
//! the time comes from recorded data and rebuilds stay byte-identical.
//!
//! For email it keeps the subscribers, which updates were notified, each
//! announcement's content (once), and the outbox: one row per
//! (announcement, subscriber), leased before sending and marked sent only
//! after the server accepted it, so a crash loses nothing.
//!
//! Subscriptions asked for over HTTP wait in `requests` until confirmed;
//! each request row is also its confirmation email's queue entry (see
//! [`requests`]). No link token is stored, only nonces and SHA-256 hashes
//! of tokens; the tokens come from the key next to the database
//! ([`crate::token`]).
//!
//! Schema changes are numbered migrations tracked in `user_version`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::announce::{Announcement, Decision};
use crate::model::{ComponentStatus, IncidentId, Kind, Status, Subscriber};
use crate::token::{self, Key};

#[cfg(test)]
mod fixtures;
mod migrations;
pub mod requests;
mod revisions;
mod subscribers;
pub use requests::{Confirmed, LeasedConfirmation, NewRequest, Unsubscribed};
pub use subscribers::{Added, NewSubscriber};
use subscribers::{SUBSCRIBER_COLUMNS, subscriber_from_row};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the state directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state database {}", path.display())]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot make a random token for {}", path.display())]
    Random {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(KeyProblem),
    #[error("state database {} has schema version {found}, newer than this herald knows ({known}); upgrade herald", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Why the token key cannot be used. The database still works (updates
/// are recorded and queued, links already sent still unsubscribe, since
/// only their hashes are needed), but nothing that makes a link can: no
/// email goes out and no subscriber is added until it is mended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error(
        "the token key {} is missing, and {links} subscriptions have links made with it, so email is stopped; restore the key from a backup and reload herald, or run `herald rekey` to start over with a new key (unsubscribe links in mail already sent keep working; confirmation links waiting to be followed stop)",
        path.display()
    )]
    Missing { path: PathBuf, links: u64 },
    #[error(
        "the token key {} is not the key that {links} subscriptions' links were made with, so email is stopped; restore the right key from a backup and reload herald, or run `herald rekey` to start over with this one",
        path.display()
    )]
    Different { path: PathBuf, links: u64 },
    /// Unreadable, of the wrong length, readable by others, or cannot be
    /// created; the text says which and what to do.
    #[error("{message}; email is stopped until it is mended and herald reloaded")]
    Unusable { message: String },
}

impl KeyProblem {
    /// A few words for `systemctl status` and `/healthz`.
    pub fn summary(&self) -> &'static str {
        match self {
            KeyProblem::Missing { .. } => "token key missing",
            KeyProblem::Different { .. } => "token key does not match the database",
            KeyProblem::Unusable { .. } => "token key unusable",
        }
    }
}

/// The `meta` row holding the fingerprint of the key that made the links.
const KEY_FINGERPRINT: &str = "token_key_fingerprint";

pub struct Store {
    path: PathBuf,
    state_dir: PathBuf,
    connection: Connection,
    key: Result<Key, KeyProblem>,
}

impl Store {
    /// Opens (creating if needed) `state_dir/herald.db` and migrates it.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(state_dir).map_err(|source| Error::CreateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join("herald.db");
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let mut connection = Connection::open(&path).map_err(database)?;
        // Every transaction here writes. A deferred one that reads first
        // fails at once with SQLITE_BUSY, without waiting, if another
        // connection (the mailer's, the HTTP server's, a CLI command)
        // wrote in between; an immediate one waits its turn.
        connection.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(database)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(database)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode");
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(database)?;
        // Removing a subscriber removes their queued mail.
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(database)?;
        let mut store = Store {
            path,
            state_dir: state_dir.to_owned(),
            connection,
            key: Err(KeyProblem::Unusable {
                message: "the token key was not read yet".to_owned(),
            }),
        };
        store.migrate(state_dir)?;
        store.key = store.check_key(state_dir)?;
        Ok(store)
    }

    /// The key that makes this database's links, or why there is none.
    pub fn key(&self) -> Result<&Key, Error> {
        self.key
            .as_ref()
            .map_err(|problem| Error::Key(problem.clone()))
    }

    /// Reads the key again, for long-lived stores that make links which
    /// must match the key on disk (`herald rekey` may have replaced it).
    pub fn refresh_key(&mut self) -> Result<Key, Error> {
        self.key = self.check_key(&self.state_dir)?;
        self.key().cloned()
    }

    /// Why no email can be composed, if that is so.
    pub fn key_problem(&self) -> Option<&KeyProblem> {
        self.key.as_ref().err()
    }

    /// Subscribers and pending subscription requests: the links a key
    /// change would break.
    fn links(&self) -> Result<u64, Error> {
        self.connection
            .query_row(
                "SELECT (SELECT count(*) FROM subscribers)
                      + (SELECT count(*) FROM requests WHERE confirmed IS NULL)",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| count.unsigned_abs())
            .map_err(self.database())
    }

    fn stored_fingerprint(&self) -> Result<Option<String>, Error> {
        self.connection
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![KEY_FINGERPRINT],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.database())
    }

    fn record_fingerprint(&self, key: &Key) -> Result<(), Error> {
        self.connection
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![KEY_FINGERPRINT, key.fingerprint()],
            )
            .map(drop)
            .map_err(self.database())
    }

    /// Reads the key, or makes one when no link depends on it yet. A
    /// missing key, or another than the one the links were made with, is
    /// never replaced silently: every later email's links would be dead.
    fn check_key(&self, state_dir: &Path) -> Result<Result<Key, KeyProblem>, Error> {
        let path = state_dir.join(token::KEY_FILE);
        let links = self.links()?;
        let stored = self.stored_fingerprint()?;
        let key = match Key::load(state_dir) {
            Ok(Some(key)) => key,
            Ok(None) if links > 0 => return Ok(Err(KeyProblem::Missing { path, links })),
            Ok(None) => match Key::create(state_dir) {
                Ok(key) => key,
                Err(error) => return Ok(Err(unusable(&error))),
            },
            Err(error) => return Ok(Err(unusable(&error))),
        };
        let fingerprint = key.fingerprint();
        match stored {
            Some(stored) if stored == fingerprint => {}
            Some(_) if links > 0 => return Ok(Err(KeyProblem::Different { path, links })),
            _ => self.record_fingerprint(&key)?,
        }
        Ok(Ok(key))
    }

    fn database(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Database {
            path: self.path.clone(),
            source,
        }
    }
}

/// Milliseconds since the Unix epoch: how the outbox stores instants.
fn millis(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_millis()
}

fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A key error as a [`KeyProblem`], with its cause.
fn unusable(error: &token::Error) -> KeyProblem {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    KeyProblem::Unusable { message }
}

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
}

/// A row of one of the two mail queues: the outbox (announcements) or
/// `requests` (confirmation emails, see [`requests`]).
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

impl Store {
    /// In one transaction: stores each due announcement, records it and
    /// the too-old updates as notified, and queues one outbox row per
    /// subscriber following at least one affected component. Returns the
    /// number of messages queued.
    pub fn enqueue(&mut self, decision: &Decision, now: DateTime<Utc>) -> Result<usize, Error> {
        let path = self.path.clone();
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let mut queued = 0;
        let transaction = self.connection.transaction().map_err(database)?;
        {
            let at = now.to_rfc3339();
            let mut notify = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO notified (incident, instant, at, reason) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(database)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO announcements (incident, instant, title, kind, status, body_markdown, body_html, components, created)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(database)?;
            let mut fan_out = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO outbox (announcement, subscriber, status, created, next_attempt_at)
                     SELECT ?1, s.id, 'pending', ?2, ?2 FROM subscribers s
                     WHERE s.all_components
                        OR EXISTS (SELECT 1 FROM subscriptions c
                                   WHERE c.subscriber = s.id
                                     AND c.component IN (SELECT value FROM json_each(?3)))",
                )
                .map_err(database)?;
            for announcement in &decision.due {
                let instant = announcement.instant.to_rfc3339();
                let fresh = notify
                    .execute(params![
                        announcement.incident.as_str(),
                        instant,
                        at,
                        "announced"
                    ])
                    .map_err(database)?;
                if fresh == 0 {
                    continue;
                }
                let components: Vec<String> = announcement
                    .components
                    .iter()
                    .map(|(id, status)| format!("{id}={}", status.as_str()))
                    .collect();
                insert
                    .execute(params![
                        announcement.incident.as_str(),
                        instant,
                        announcement.title,
                        announcement.kind.as_str(),
                        announcement.status.as_str(),
                        announcement.body_markdown,
                        announcement.body_html,
                        components.join(","),
                        at,
                    ])
                    .map_err(database)?;
                let id = transaction.last_insert_rowid();
                let ids: Vec<&str> = announcement.component_ids().collect();
                let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                queued += fan_out
                    .execute(params![id, millis(now), ids])
                    .map_err(database)?;
            }
            for (id, instant) in &decision.too_old {
                notify
                    .execute(params![id.as_str(), instant.to_rfc3339(), at, "too-old"])
                    .map_err(database)?;
            }
        }
        transaction.commit().map_err(database)?;
        Ok(queued)
    }

    /// A stored announcement.
    pub fn announcement(&self, id: i64) -> Result<Option<Announcement>, Error> {
        let row = self
            .connection
            .query_row(
                "SELECT incident, instant, title, kind, status, body_markdown, body_html, components
                 FROM announcements WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, String>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(self.database())?;
        let Some((incident, instant, title, kind, status, body_markdown, body_html, components)) =
            row
        else {
            return Ok(None);
        };
        let (Some(incident), Some(instant), Some(status)) = (
            IncidentId::new(&incident),
            parse_instant(&instant),
            Status::parse(&status),
        ) else {
            tracing::warn!(id, "ignoring an unreadable announcement row");
            return Ok(None);
        };
        Ok(Some(Announcement {
            incident,
            instant,
            title,
            kind: Kind::parse(&kind).unwrap_or(Kind::Incident),
            status,
            body_markdown,
            body_html,
            components: components
                .split(',')
                .filter_map(|pair| {
                    let (id, status) = pair.split_once('=')?;
                    Some((id.to_owned(), ComponentStatus::parse(status)?))
                })
                .collect(),
        }))
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
                .map_err(self.database())?;
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
        let path = self.path.clone();
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(database)?;
        let leased = {
            let mut statement = transaction
                .prepare_cached(
                    "WITH picked AS (
                        SELECT id FROM outbox
                        WHERE status = 'pending' AND next_attempt_at <= ?1
                          AND (lease_until IS NULL OR lease_until <= ?1)
                        ORDER BY next_attempt_at, id LIMIT ?3)
                     UPDATE outbox SET lease_until = ?2 WHERE id IN (SELECT id FROM picked)
                     RETURNING id, announcement, attempts, created, subscriber",
                )
                .map_err(database)?;
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
                        ))
                    },
                )
                .map_err(database)?;
            let rows: Vec<_> = rows.collect::<Result<_, _>>().map_err(database)?;
            let mut subscriber = transaction
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers s WHERE s.id = ?1"
                ))
                .map_err(database)?;
            let mut leased = Vec::with_capacity(rows.len());
            for (id, announcement, attempts, created, subscriber_id) in rows {
                let found = subscriber
                    .query_row(params![subscriber_id], |row| {
                        subscriber_from_row(row, 0, key)
                    })
                    .optional()
                    .map_err(database)?;
                if let Some(found) = found {
                    leased.push(Leased {
                        id,
                        announcement,
                        attempts,
                        created: from_millis(created),
                        subscriber: found,
                    });
                }
            }
            leased.sort_by_key(|row| row.id);
            leased
        };
        transaction.commit().map_err(database)?;
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
            .map_err(self.database())?;
        Ok(next.map(from_millis))
    }

    /// Records the outcomes of deliveries, from either queue, in one
    /// transaction: the mailer gathers what finished while the previous
    /// commit ran, so a fan-out pays for a commit per handful of messages,
    /// not per message.
    pub fn record(&mut self, outcomes: &[Outcome]) -> Result<(), Error> {
        let path = self.path.clone();
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(database)?;
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
                    (Queued::Request(id), Delivery::Failed { reply }) => transaction
                        .prepare_cached(
                            "UPDATE requests SET status = 'failed', attempts = attempts + 1, lease_until = NULL, last_reply = ?2 WHERE id = ?1",
                        )
                        .and_then(|mut update| update.execute(params![id, reply])),
                }
                .map_err(database)?;
        }
        transaction.commit().map_err(database)
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
            .map_err(self.database())
    }

    pub fn outbox_counts(&self) -> Result<OutboxCounts, Error> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT status, attempts > 0, count(*) FROM outbox GROUP BY status, attempts > 0",
            )
            .map_err(self.database())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.database())?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let (status, tried, count) = row.map_err(self.database())?;
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
        let mut statement = self
            .connection
            .prepare(
                "SELECT o.status, o.attempts, o.next_attempt_at, o.last_reply, s.address, a.incident, a.instant
                 FROM outbox o JOIN subscribers s ON s.id = o.subscriber JOIN announcements a ON a.id = o.announcement
                 WHERE o.status != 'sent'
                 ORDER BY o.status = 'pending', o.attempts = 0, o.next_attempt_at, o.id
                 LIMIT ?1",
            )
            .map_err(self.database())?;
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
            .map_err(self.database())?;
        rows.collect::<Result<_, _>>().map_err(self.database())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{at, subscriber};
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_key_that_links_depend_on_is_never_replaced_silently() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join(token::KEY_FILE);
        // No links yet: a missing key is simply made.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.key_problem(), None);
        let first = store.key().unwrap().fingerprint();
        std::fs::remove_file(&key_path).unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.key_problem(), None);
        store
            .add_subscribers(&[subscriber("a@example.org", &[])], at(8))
            .unwrap();

        // Missing, with a subscriber: a problem, and no key is made.
        std::fs::remove_file(&key_path).unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert!(
            matches!(
                store.key_problem(),
                Some(KeyProblem::Missing { links: 1, .. })
            ),
            "{:?}",
            store.key_problem()
        );
        assert!(!key_path.exists());
        let error = store
            .add_subscribers(&[subscriber("b@example.org", &[])], at(9))
            .unwrap_err();
        assert!(error.to_string().contains("is missing"), "{error}");
        assert!(store.subscribers().is_err());
        assert!(store.lease(at(9), at(10), 10).is_err());

        // Another key than the links were made with.
        std::fs::write(&key_path, [9u8; 32]).unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(
            matches!(
                store.key_problem(),
                Some(KeyProblem::Different { links: 1, .. })
            ),
            "{:?}",
            store.key_problem()
        );
        assert_eq!(
            store.key_problem().unwrap().summary(),
            "token key does not match the database"
        );

        // Readable by others.
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let problem = store.key_problem().unwrap().to_string();
        assert!(
            problem.contains("can be read by other users (mode 644)")
                && problem.ends_with("email is stopped until it is mended and herald reloaded"),
            "{problem}"
        );

        // Rekey: a new private key the database accepts from now on.
        let rekeyed = store.rekey(dir.path()).unwrap();
        assert_eq!(rekeyed, 1);
        assert_eq!(store.key_problem(), None);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.key_problem(), None);
        let fingerprint = store.key().unwrap().fingerprint();
        assert_ne!(fingerprint, first);
        let subscribers = store.subscribers().unwrap();
        assert_eq!(subscribers.len(), 1);
        // The new token unsubscribes.
        let found = store.unsubscribe_lookup(&subscribers[0].token).unwrap();
        assert_eq!(found, Unsubscribed::Now);
    }

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
        let decision = Decision {
            due: vec![announcement("x", 8, &["mail", "web"])],
            too_old: vec![(IncidentId::new("old").unwrap(), at(1))],
            next: None,
        };
        assert_eq!(store.enqueue(&decision, at(9)).unwrap(), 3);
        // A second enqueue of the same update queues nothing.
        assert_eq!(store.enqueue(&decision, at(10)).unwrap(), 0);
        assert_eq!(
            store.notified().unwrap(),
            HashSet::from([
                (IncidentId::new("x").unwrap(), at(8)),
                (IncidentId::new("old").unwrap(), at(1))
            ])
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

    #[test]
    fn unwritable_state_dir_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let error = Store::open(&file.join("state")).err().unwrap();
        assert!(
            error
                .to_string()
                .starts_with("cannot create the state directory"),
            "{error}"
        );
    }
}
