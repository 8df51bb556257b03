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
//!
//! This file holds the connection ([`Store::open`]), the [`Error`]s and
//! the token key's checks ([`KeyProblem`]); the rest is one file per
//! concern: `revisions.rs` (first-seen, edit and notified times),
//! `subscribers.rs` (subscribers and their unsubscribe token hashes,
//! `herald rekey`), `outbox.rs` (announcements and the delivery queues),
//! [`requests`] (subscriptions asked for over HTTP) and `migrations.rs`
//! (the schema).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::token::{self, Key};

mod announcements;
#[cfg(test)]
mod fixtures;
mod migrations;
mod outbox;
pub mod requests;
mod revisions;
mod subscribers;
mod windows;
pub use outbox::{
    Delivery, Leased, OutboxCounts, OutboxEntry, OutboxState, Outcome, Queued, count_recipients,
};
pub use requests::{Confirmed, LeasedConfirmation, NewRequest, Unsubscribed};
pub use subscribers::{Added, NewSubscriber};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the state directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A failed SQLite call, and what herald was doing when it failed.
    #[error("state database {}: cannot {action}", path.display())]
    Database {
        path: PathBuf,
        /// What herald was doing, worded to follow "cannot": "queue
        /// announcements".
        action: &'static str,
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

/// How often, and how long each time, a connection that finds the
/// database locked tries again: every 0.5 ms for at least 5 s.
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_micros(500);
const LOCK_ATTEMPTS: i32 = 10_000;

/// SQLite's busy handler. Its own (`busy_timeout`) sleeps 1, 2, 5, 10, …
/// then 100 ms at a time, so a subscription that met the mailer's commit
/// waited up to 100 ms for a lock freed in one: the p99 of `POST
/// /subscribe` under load was 150 ms. Short naps keep the wait close to
/// the time the lock is actually held. `attempts` counts earlier calls
/// for the same wait; `false` gives up with SQLITE_BUSY.
fn wait_for_lock(attempts: i32) -> bool {
    if attempts >= LOCK_ATTEMPTS {
        return false;
    }
    std::thread::sleep(LOCK_RETRY);
    true
}

impl Store {
    /// Opens (creating if needed) `state_dir/herald.db` and migrates it.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(state_dir).map_err(|source| Error::CreateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join("herald.db");
        let mut connection =
            Connection::open(&path).map_err(Error::database(&path, "open the file"))?;
        let failed = Error::database(&path, "set up the connection");
        // Every transaction here writes. A deferred one that reads first
        // fails at once with SQLITE_BUSY, without waiting, if another
        // connection (the mailer's, the HTTP server's, a CLI command)
        // wrote in between; an immediate one waits its turn.
        connection.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        connection
            .busy_handler(Some(wait_for_lock))
            .map_err(failed)?;
        let mode: String = connection
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(failed)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode");
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(failed)?;
        // Removing a subscriber removes their queued mail.
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(failed)?;
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

    /// Leaves checkpoints (copying the write-ahead log back into the
    /// database, with an fsync of each) to another connection: SQLite runs
    /// one inside whichever commit grows the log past 1,000 pages, so a
    /// writer that answers requests would make the requests of that commit
    /// wait for the disk. Such a writer calls [`Store::checkpoint`] on
    /// another connection instead.
    pub fn leave_checkpoints(&self) -> Result<(), Error> {
        self.connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(Error::database(
                &self.path,
                "turn off automatic checkpoints",
            ))
    }

    /// Copies what it can of the write-ahead log back into the database
    /// without waiting for readers or writers (SQLite's PASSIVE
    /// checkpoint), and returns how many pages the log holds and how many
    /// of them are in the database now. Durability does not depend on it:
    /// a commit is in the log already.
    pub fn checkpoint(&self) -> Result<(i64, i64), Error> {
        self.connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .map_err(Error::database(
                &self.path,
                "checkpoint the write-ahead log",
            ))
    }

    /// The key that makes this database's links, or why there is none.
    pub fn key(&self) -> Result<&Key, Error> {
        self.key
            .as_ref()
            .map_err(|problem| Error::Key(problem.clone()))
    }

    /// Reads the key again, for long-lived stores that make links which
    /// must match the key on disk (`herald rekey` may have replaced it).
    ///
    /// Called before every lease of confirmation emails, so the usual
    /// case (the same key as before) costs one read of a 32-byte file;
    /// only a different or missing key runs the full check, with its
    /// queries.
    pub fn refresh_key(&mut self) -> Result<Key, Error> {
        if let (Ok(current), Ok(Some(on_disk))) = (&self.key, Key::load(&self.state_dir))
            && current.fingerprint() == on_disk.fingerprint()
        {
            return Ok(on_disk);
        }
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
            .map_err(Error::database(
                &self.path,
                "count the links made with the token key",
            ))
    }

    fn stored_fingerprint(&self) -> Result<Option<String>, Error> {
        self.connection
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![KEY_FINGERPRINT],
                |row| row.get(0),
            )
            .optional()
            .map_err(Error::database(
                &self.path,
                "read the token key's fingerprint",
            ))
    }

    fn record_fingerprint(&self, key: &Key) -> Result<(), Error> {
        write_fingerprint(&self.connection, key).map_err(Error::database(
            &self.path,
            "record the token key's fingerprint",
        ))
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
}

impl Error {
    /// What a failed SQLite call on the database at `path` becomes: an
    /// error naming the file and what herald was doing, as in
    /// `.map_err(Error::database(&self.path, "queue announcements"))`.
    fn database<'a>(
        path: &'a Path,
        action: &'static str,
    ) -> impl Fn(rusqlite::Error) -> Error + Copy + 'a {
        move |source| Error::Database {
            path: path.to_owned(),
            action,
            source,
        }
    }

    /// Whether another connection held the database past the busy
    /// timeout: worth trying again, unlike a missing directory or a
    /// corrupt file.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Error::Database {
                source: rusqlite::Error::SqliteFailure(failure, _),
                ..
            } if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        )
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

/// Stores which key the database's links are made with (on a connection
/// or inside a transaction).
pub(super) fn write_fingerprint(connection: &Connection, key: &Key) -> rusqlite::Result<()> {
    connection
        .execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![KEY_FINGERPRINT, key.fingerprint()],
        )
        .map(drop)
}

#[cfg(test)]
impl Store {
    /// How often the cached statement `sql` ran, and how often SQLite
    /// prepared it again (a plan that depends on a bound value).
    fn statement_runs(&self, sql: &str) -> (i32, i32) {
        let statement = self.connection.prepare_cached(sql).unwrap();
        (
            statement.get_status(rusqlite::StatementStatus::Run),
            statement.get_status(rusqlite::StatementStatus::RePrepare),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{at, subscriber};
    use super::*;

    /// Pages in `dir`'s write-ahead log file (4 KiB pages; the file is
    /// reused from its start after a checkpoint, not shrunk).
    fn wal_pages(dir: &Path) -> u64 {
        let length = std::fs::metadata(dir.join("herald.db-wal")).map_or(0, |m| m.len());
        length.saturating_sub(32) / (4096 + 24)
    }

    #[test]
    fn a_writer_that_leaves_checkpoints_lets_another_connection_do_them() {
        let request = |n: usize| NewRequest {
            channel: crate::model::Channel::Email,
            address: format!("reader{n}@example.org"),
            follows: crate::model::Follows::All,
            language: crate::model::Language::Sv,
            only_changes: false,
        };
        // A writer that checkpoints as SQLite does: its log stays near
        // 1,000 pages.
        let plain = tempfile::tempdir().unwrap();
        let mut store = Store::open(plain.path()).unwrap();
        for n in 0..1_500 {
            store.request_subscriptions(&[request(n)], at(8)).unwrap();
        }
        let pages = wal_pages(plain.path());
        assert!(pages < 1_100, "{pages}");

        // One that leaves them: the log grows past that, until the other
        // connection copies it back.
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Store::open(dir.path()).unwrap();
        writer.leave_checkpoints().unwrap();
        let checkpointer = Store::open(dir.path()).unwrap();
        for n in 0..1_500 {
            writer.request_subscriptions(&[request(n)], at(8)).unwrap();
        }
        let pages = wal_pages(dir.path());
        assert!(pages > 1_500, "{pages}");
        let (logged, copied) = checkpointer.checkpoint().unwrap();
        assert!(logged > 1_500, "{logged}");
        assert_eq!(copied, logged);
        writer
            .request_subscriptions(&[request(1_500)], at(8))
            .unwrap();
        // Nothing was lost on the way.
        let stored: i64 = checkpointer
            .connection
            .query_row("SELECT count(*) FROM requests", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 1_501);
    }

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

    #[test]
    fn a_database_error_names_the_file_and_the_action() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = dir.path().join("herald.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TABLE outbox")
            .unwrap();
        let error = store.pending_mail().unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "state database {}: cannot count pending mail",
                path.display()
            )
        );
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(cause.contains("no such table: outbox"), "{cause}");
    }
}
