//! The state database's schema: numbered migrations, tracked in SQLite's
//! `user_version`, and the data step that goes with migration 3 (raw
//! unsubscribe tokens replaced by nonces and token hashes). Does I/O.
//!
//! Each entry of [`MIGRATIONS`] moves the schema one version up, in one
//! transaction at [`Store::open`] (a table rebuild in its own); never edit a released one.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::{Error, Store, unusable};
use crate::address::Address;
use crate::token::{self, Key, Purpose};

/// Each entry moves the schema one version up; never edit a released one.
pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE revisions (
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        content TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        edited TEXT,
        PRIMARY KEY (incident, instant)
    ) WITHOUT ROWID;",
    // Email: subscribers, what was announced, and the outbox.
    //
    // The unsubscribe token is stored as is: every email carries it in its
    // List-Unsubscribe link, and emails are composed at send time.
    //
    // An announcement's content is stored once; the outbox holds one small
    // row per (announcement, subscriber), so a fan-out to 100,000
    // subscribers does not write 100,000 messages. Outbox times are Unix
    // milliseconds, compared as integers.
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        all_components INTEGER NOT NULL,
        language TEXT NOT NULL,
        token TEXT NOT NULL UNIQUE,
        created TEXT NOT NULL
    );
    CREATE TABLE subscriptions (
        subscriber INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        component TEXT NOT NULL,
        PRIMARY KEY (subscriber, component)
    ) WITHOUT ROWID;
    CREATE INDEX subscriptions_component ON subscriptions (component, subscriber);
    CREATE TABLE announcements (
        id INTEGER PRIMARY KEY,
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        body_markdown TEXT NOT NULL,
        body_html TEXT NOT NULL,
        components TEXT NOT NULL,
        created TEXT NOT NULL,
        UNIQUE (incident, instant)
    );
    CREATE TABLE notified (
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('announced', 'baseline', 'too-old')),
        PRIMARY KEY (incident, instant)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        announcement INTEGER NOT NULL REFERENCES announcements (id),
        subscriber INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_reply TEXT,
        done_at INTEGER,
        UNIQUE (announcement, subscriber)
    );
    CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX outbox_subscriber ON outbox (subscriber);",
    // Links without stored secrets (see crate::token), and subscriptions
    // asked for over HTTP.
    //
    // `subscribers.token` becomes the nonce; `rekey` (run with this
    // migration) gives every subscriber a fresh nonce and stores the
    // hashes of both its new token and the old one, so unsubscribe links
    // in mail already sent keep working, and the raw token leaves the
    // file.
    //
    // A removed subscriber's token hashes stay, pointing nowhere, so a
    // repeated unsubscribe still says "unsubscribed".
    //
    // A request is also its confirmation email's queue entry: the same
    // columns as the outbox, times in Unix milliseconds.
    "ALTER TABLE subscribers RENAME COLUMN token TO nonce;
    CREATE TABLE unsubscribe_tokens (
        hash BLOB PRIMARY KEY,
        subscriber INTEGER REFERENCES subscribers (id) ON DELETE SET NULL
    ) WITHOUT ROWID;
    CREATE INDEX unsubscribe_tokens_subscriber ON unsubscribe_tokens (subscriber);
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        all_components INTEGER NOT NULL,
        components TEXT NOT NULL,
        language TEXT NOT NULL,
        nonce TEXT NOT NULL UNIQUE,
        token_hash BLOB NOT NULL UNIQUE,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        confirmed INTEGER,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        queued INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_reply TEXT
    );
    CREATE INDEX requests_pending ON requests (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX requests_expires ON requests (expires);",
    // One person, one subscriber: addresses differing only in the case of
    // their domain become one ([`merge_addresses`], run with this
    // migration; the rule is `crate::address`).
    "",
    // Maintenance notices (`crate::maintenance`). An announcement is an
    // update's or a notice's, so its identity becomes (incident, instant,
    // notice), `notice` empty for an update; SQLite cannot drop a UNIQUE
    // constraint, so the table is made again: `announcements_new` here,
    // filled and renamed by [`move_announcements`], which keeps every
    // column the old table has (foreign keys are off meanwhile, and
    // checked before the commit). A notice carries its window, and a
    // rescheduled one the window before.
    //
    // `windows` holds each maintenance's window as last seen, when it was
    // first seen, and its moves (the calendar's SEQUENCE counts them);
    // `notices` the notices queued, recorded in the transaction that
    // queues them.
    //
    // Following one incident: a request may name an incident instead of
    // components, and a subscriber follows incidents in
    // `incident_follows` beside their components, each until the
    // incident's resolution is queued (`ended`).
    "CREATE TABLE announcements_new (
        id INTEGER PRIMARY KEY,
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        notice TEXT NOT NULL DEFAULT '',
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        body_markdown TEXT NOT NULL,
        body_html TEXT NOT NULL,
        components TEXT NOT NULL,
        created TEXT NOT NULL,
        starts TEXT,
        ends TEXT,
        previous_starts TEXT,
        previous_ends TEXT,
        UNIQUE (incident, instant, notice)
    );
    CREATE TABLE windows (
        incident TEXT PRIMARY KEY,
        starts TEXT NOT NULL,
        ends TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        moves INTEGER NOT NULL DEFAULT 0,
        moved_at TEXT,
        previous_starts TEXT,
        previous_ends TEXT,
        announced INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE notices (
        incident TEXT NOT NULL,
        notice TEXT NOT NULL,
        instant TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (incident, notice, instant)
    ) WITHOUT ROWID;
    ALTER TABLE requests ADD COLUMN incident TEXT;
    CREATE TABLE incident_follows (
        subscriber INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        incident TEXT NOT NULL,
        ended TEXT,
        PRIMARY KEY (subscriber, incident)
    ) WITHOUT ROWID;
    CREATE INDEX incident_follows_open ON incident_follows (incident) WHERE ended IS NULL;
    CREATE INDEX incident_follows_ended ON incident_follows (subscriber) WHERE ended IS NOT NULL;",
    // Quiet updates (`notify: no`) are recorded as notified for the reason
    // `quiet` (SQLite cannot change a CHECK, so the table is rebuilt).
    // Subscribers, and requests to subscribe, may ask for changes only; an
    // announcement remembers whether it is one, and what its subject shows
    // (`crate::model::Headline`: `status`, `words`, `words-and-time`).
    "CREATE TABLE notified_quiet (
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        at TEXT NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('announced', 'baseline', 'too-old', 'quiet')),
        PRIMARY KEY (incident, instant)
    ) WITHOUT ROWID;
    INSERT INTO notified_quiet (incident, instant, at, reason)
        SELECT incident, instant, at, reason FROM notified;
    DROP TABLE notified;
    ALTER TABLE notified_quiet RENAME TO notified;
    ALTER TABLE subscribers ADD COLUMN only_changes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN only_changes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE announcements ADD COLUMN headline TEXT NOT NULL DEFAULT 'status';
    ALTER TABLE announcements ADD COLUMN is_change INTEGER NOT NULL DEFAULT 1;",
    // Channels: a subscriber (and a request) is an address on a channel,
    // `email` or a webhook (`crate::model::Channel::code`); for a webhook
    // the address is its URL. Its signing secret derives from the URL and
    // the token key, so it is not stored.
    "ALTER TABLE subscribers ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
    ALTER TABLE requests ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';",
    // An announcement's title and text in further languages: a JSON array
    // of {"language", "title", "body_markdown", "body_html"}, the last
    // three null where the incident gives none.
    "ALTER TABLE announcements ADD COLUMN translations TEXT NOT NULL DEFAULT '[]';",
    // Component updates: an announcement keeps the components its update
    // changed, each with its status before (`id=status,…`, like
    // `components`), and a JSON webhook following one of them gets
    // Statuspage's `component_update` as an outbox row of its own, named
    // by `component` (empty for the announcement's own post). SQLite
    // cannot change a UNIQUE constraint, so the outbox is made again.
    "ALTER TABLE announcements ADD COLUMN changed TEXT NOT NULL DEFAULT '';
    CREATE TABLE outbox_new (
        id INTEGER PRIMARY KEY,
        announcement INTEGER NOT NULL REFERENCES announcements (id),
        subscriber INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        component TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_reply TEXT,
        done_at INTEGER,
        UNIQUE (announcement, subscriber, component)
    );
    INSERT INTO outbox_new (id, announcement, subscriber, status, attempts, created,
                            next_attempt_at, lease_until, last_reply, done_at)
        SELECT id, announcement, subscriber, status, attempts, created,
               next_attempt_at, lease_until, last_reply, done_at FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_new RENAME TO outbox;
    CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';
    CREATE INDEX outbox_subscriber ON outbox (subscriber);",
];

/// The migration (index into [`MIGRATIONS`]) after which [`rekey`] runs.
const REKEY_MIGRATION: usize = 2;
/// The migration after which [`merge_addresses`] runs.
const MERGE_MIGRATION: usize = 3;
/// The migrations that make a table again, each run alone with foreign
/// keys off.
const REBUILDS: &[usize] = &[4, COMPONENT_UPDATES_MIGRATION];
/// The migration that makes the outbox again with its `component` column.
const COMPONENT_UPDATES_MIGRATION: usize = 8;
/// The migration after which [`move_announcements`] runs.
const NOTICES_MIGRATION: usize = 4;

impl Store {
    /// Brings the schema up to date, refusing one newer than this
    /// herald knows.
    pub(super) fn migrate(&mut self, state_dir: &Path) -> Result<(), Error> {
        let version: i64 = self
            .connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(Error::database(&self.path, "read the schema version"))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        let failed = Error::database(&self.path, "migrate the schema");
        let rekeying = (version as usize) <= REKEY_MIGRATION && known as usize > REKEY_MIGRATION;
        if rekeying {
            // Overwrite the raw tokens' bytes instead of leaving them in
            // free space.
            self.connection
                .pragma_update(None, "secure_delete", true)
                .map_err(failed)?;
        }
        // The migrations before a rebuild (one that makes a table again,
        // SQLite's way to change a constraint) run in one transaction with
        // foreign keys on, so deletes cascade; a rebuild runs in its own,
        // with foreign keys off until every row is back in place and then
        // checked before the commit.
        let mut next = version as usize;
        while next < MIGRATIONS.len() {
            let rebuild = REBUILDS.contains(&next);
            let until = if rebuild {
                next + 1
            } else {
                REBUILDS
                    .iter()
                    .copied()
                    .filter(|&index| index > next)
                    .min()
                    .unwrap_or(MIGRATIONS.len())
            };
            if rebuild {
                self.connection
                    .pragma_update(None, "foreign_keys", false)
                    .map_err(failed)?;
            }
            let transaction = self.connection.transaction().map_err(failed)?;
            for (index, migration) in MIGRATIONS.iter().enumerate().take(until).skip(next) {
                transaction.execute_batch(migration).map_err(failed)?;
                if index == REKEY_MIGRATION {
                    // Links then held raw tokens, so no key made them yet.
                    let key = Key::load_or_create(state_dir)
                        .map_err(|error| Error::Key(unusable(&error)))?;
                    rekey(&transaction, &key).map_err(|error| match error {
                        RekeyError::Database(source) => failed(source),
                        RekeyError::Random(source) => Error::Random {
                            path: self.path.clone(),
                            source,
                        },
                    })?;
                }
                if index == NOTICES_MIGRATION {
                    move_announcements(&transaction).map_err(failed)?;
                }
                if index == MERGE_MIGRATION {
                    let merged = merge_addresses(&transaction).map_err(failed)?;
                    if merged > 0 {
                        tracing::info!(
                            merged,
                            "subscribers whose addresses differed only in the domain's case are one now"
                        );
                    }
                }
                transaction
                    .pragma_update(None, "user_version", index as i64 + 1)
                    .map_err(failed)?;
            }
            if rebuild {
                let dangling: Option<String> = transaction
                    .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
                    .optional()
                    .map_err(failed)?;
                if let Some(table) = dangling {
                    return Err(failed(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                        Some(format!("a row of `{table}` refers to one that is gone")),
                    )));
                }
            }
            transaction.commit().map_err(failed)?;
            if rebuild {
                self.connection
                    .pragma_update(None, "foreign_keys", true)
                    .map_err(failed)?;
            }
            next = until;
        }
        if rekeying {
            self.connection
                .pragma_update(None, "secure_delete", false)
                .map_err(failed)?;
            // Older write-ahead log frames may still hold raw tokens.
            self.connection
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(failed)?;
        }
        Ok(())
    }
}

enum RekeyError {
    Database(rusqlite::Error),
    Random(std::io::Error),
}

impl From<rusqlite::Error> for RekeyError {
    fn from(error: rusqlite::Error) -> Self {
        RekeyError::Database(error)
    }
}

/// Migration 5's data step: every row of `announcements` into
/// `announcements_new`, which then takes its name. A column the old table
/// has and the new one lacks (one a migration before this one added) is
/// added first, with its type and default, so nothing is lost whatever
/// order the migrations were numbered in.
fn move_announcements(transaction: &rusqlite::Transaction) -> rusqlite::Result<()> {
    type Column = (String, String, bool, Option<String>);
    let columns = |table: &str| -> rusqlite::Result<Vec<Column>> {
        transaction
            .prepare(&format!("PRAGMA table_info({table})"))?
            .query_map([], |row| {
                Ok((row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
            })?
            .collect()
    };
    let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let old = columns("announcements")?;
    let new: Vec<String> = columns("announcements_new")?
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    for (name, kind, not_null, default) in &old {
        if new.contains(name) {
            continue;
        }
        // SQLite adds a NOT NULL column only with a default.
        let constraint = match default {
            Some(default) if *not_null => format!(" NOT NULL DEFAULT {default}"),
            Some(default) => format!(" DEFAULT {default}"),
            None => String::new(),
        };
        transaction.execute_batch(&format!(
            "ALTER TABLE announcements_new ADD COLUMN {} {kind}{constraint}",
            quote(name)
        ))?;
    }
    let list: Vec<String> = old.iter().map(|(name, ..)| quote(name)).collect();
    let list = list.join(", ");
    transaction.execute_batch(&format!(
        "INSERT INTO announcements_new ({list}) SELECT {list} FROM announcements;
         DROP TABLE announcements;
         ALTER TABLE announcements_new RENAME TO announcements;"
    ))
}

/// Migration 3's data step: each subscriber's raw token (now in `nonce`)
/// is replaced by a fresh nonce; the hashes of the new token and of the
/// old one both unsubscribe.
fn rekey(transaction: &rusqlite::Transaction, key: &Key) -> Result<(), RekeyError> {
    let legacy: Vec<(i64, String)> = transaction
        .prepare("SELECT id, nonce FROM subscribers")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = transaction.prepare("UPDATE subscribers SET nonce = ?2 WHERE id = ?1")?;
    let mut insert = transaction
        .prepare("INSERT OR IGNORE INTO unsubscribe_tokens (hash, subscriber) VALUES (?1, ?2)")?;
    for (id, old_token) in legacy {
        let nonce = token::new_nonce().map_err(RekeyError::Random)?;
        update.execute(params![id, nonce])?;
        let current = key.token(Purpose::Unsubscribe, &nonce);
        insert.execute(params![token::hash(&current).as_slice(), id])?;
        insert.execute(params![token::hash(&old_token).as_slice(), id])?;
    }
    Ok(())
}

/// Migration 4's data step: subscribers whose addresses are one under
/// [`Address::parse`] become the oldest of them, under the normalised
/// address, following the union of what they followed (everything if one
/// of them did). Their unsubscribe links and their outbox rows move to
/// it; where two of them had a row for the same announcement, one stays.
/// An address the rule refuses is left as it is. Returns how many rows
/// were merged away.
fn merge_addresses(transaction: &rusqlite::Transaction) -> rusqlite::Result<usize> {
    let rows: Vec<(i64, String)> = transaction
        .prepare("SELECT id, address FROM subscribers ORDER BY id")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut groups: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (id, address) in rows {
        let Ok(normal) = Address::parse(&address) else {
            continue;
        };
        groups
            .entry(normal.to_string())
            .or_default()
            .push((id, address));
    }
    let mut merged = 0;
    for (normal, members) in groups {
        let (keeper, address) = &members[0];
        for (other, _) in &members[1..] {
            transaction.execute(
                "UPDATE subscribers SET all_components = 1 WHERE id = ?1
                 AND (SELECT all_components FROM subscribers WHERE id = ?2)",
                params![keeper, other],
            )?;
            for sql in [
                "UPDATE OR IGNORE subscriptions SET subscriber = ?1 WHERE subscriber = ?2",
                "UPDATE unsubscribe_tokens SET subscriber = ?1 WHERE subscriber = ?2",
                "UPDATE OR IGNORE outbox SET subscriber = ?1 WHERE subscriber = ?2",
                "DELETE FROM subscribers WHERE id = ?2 AND ?1 IS NOT NULL",
            ] {
                transaction.execute(sql, params![keeper, other])?;
            }
            merged += 1;
        }
        transaction.execute(
            "DELETE FROM subscriptions WHERE subscriber = ?1
             AND (SELECT all_components FROM subscribers WHERE id = ?1)",
            params![keeper],
        )?;
        if *address != normal {
            transaction.execute(
                "UPDATE subscribers SET address = ?2 WHERE id = ?1",
                params![keeper, normal],
            )?;
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::at;
    use crate::store::parse_instant;
    use rusqlite::Connection;

    #[test]
    fn version_1_database_migrates_and_keeps_its_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("herald.db")).unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection
            .execute(
                "INSERT INTO revisions VALUES ('x', '2019-04-04T08:00:00+00:00', 'c', '2019-04-04T10:00:00+00:00', NULL)",
                [],
            )
            .unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        drop(connection);
        let store = Store::open(dir.path()).unwrap();
        let version: i64 = store
            .connection
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let first_seen: String = store
            .connection
            .query_row(
                "SELECT first_seen FROM revisions WHERE incident = 'x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(parse_instant(&first_seen), Some(at(10)));
        assert!(!store.has_baseline().unwrap());
    }

    #[test]
    fn addresses_differing_in_the_domain_case_merge_into_one_subscriber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let connection = Connection::open(&path).unwrap();
        for migration in &MIGRATIONS[..MERGE_MIGRATION] {
            connection.execute_batch(migration).unwrap();
        }
        connection
            .pragma_update(None, "user_version", MERGE_MIGRATION as i64)
            .unwrap();
        connection
            .execute_batch(
                "INSERT INTO subscribers VALUES (1, 'anna@Example.COM', 0, 'sv', 'n1', 'c');
                 INSERT INTO subscribers VALUES (2, 'anna@example.com', 0, 'sv', 'n2', 'c');
                 INSERT INTO subscribers VALUES (3, 'Bo@EXAMPLE.org', 1, 'en', 'n3', 'c');
                 INSERT INTO subscribers VALUES (4, 'bo@example.org', 0, 'en', 'n4', 'c');
                 INSERT INTO subscribers VALUES (5, 'Bo@example.org', 0, 'en', 'n5', 'c');
                 INSERT INTO subscriptions VALUES (1, 'mail'), (2, 'mail'), (2, 'web'), (4, 'dns'), (5, 'dns');
                 INSERT INTO unsubscribe_tokens VALUES (x'01', 1), (x'02', 2), (x'05', 5);
                 INSERT INTO announcements VALUES (7, 'x', 'i', 't', 'incident', 'investigating', 'b', 'b', 'mail', 'c');
                 INSERT INTO outbox (announcement, subscriber, status, created, next_attempt_at)
                     VALUES (7, 1, 'sent', 0, 0), (7, 2, 'pending', 0, 0);",
            )
            .unwrap();
        drop(connection);
        let store = Store::open(dir.path()).unwrap();
        let rows: Vec<(i64, String, bool, String)> = store
            .connection
            .prepare(
                "SELECT s.id, s.address, s.all_components,
                        coalesce((SELECT group_concat(component, ' ') FROM
                                  (SELECT component FROM subscriptions WHERE subscriber = s.id ORDER BY component)), '')
                 FROM subscribers s ORDER BY s.id",
            )
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (
                    1,
                    "anna@example.com".to_owned(),
                    false,
                    "mail web".to_owned()
                ),
                (3, "Bo@example.org".to_owned(), true, String::new()),
                (4, "bo@example.org".to_owned(), false, "dns".to_owned()),
            ]
        );
        // Links of every merged row still name the one that stays.
        let tokens: Vec<(Vec<u8>, i64)> = store
            .connection
            .prepare("SELECT hash, subscriber FROM unsubscribe_tokens ORDER BY hash")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tokens, [(vec![1], 1), (vec![2], 1), (vec![5], 3)]);
        // One outbox row per person and announcement: one email.
        let outbox: Vec<(i64, String)> = store
            .connection
            .prepare("SELECT subscriber, status FROM outbox WHERE announcement = 7")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(outbox, [(1, "sent".to_owned())]);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("herald.db")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let error = Store::open(dir.path()).err().unwrap();
        assert!(
            error.to_string().contains(&format!(
                "has schema version 99, newer than this herald knows ({})",
                MIGRATIONS.len()
            )),
            "{error}"
        );
    }

    #[test]
    fn version_4_announcements_and_their_outbox_rows_survive_the_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("herald.db")).unwrap();
        for migration in &MIGRATIONS[..4] {
            connection.execute_batch(migration).unwrap();
        }
        connection.pragma_update(None, "user_version", 4).unwrap();
        connection
            .execute_batch(
                "INSERT INTO subscribers VALUES (1, 'a@example.org', 1, 'sv', 'n1', 'c');
                 INSERT INTO announcements VALUES (7, 'x', '2019-04-04T08:00:00+00:00', 't', 'incident', 'investigating', 'b', '<p>b</p>', 'mail=major-outage', 'c');
                 INSERT INTO outbox (announcement, subscriber, status, created, next_attempt_at)
                     VALUES (7, 1, 'pending', 0, 0);",
            )
            .unwrap();
        drop(connection);
        let store = Store::open(dir.path()).unwrap();
        let announcement = store.announcement(7).unwrap().unwrap();
        assert_eq!(announcement.instant, at(8));
        assert_eq!(announcement.notice, None);
        assert_eq!(announcement.body_html, "<p>b</p>");
        // The outbox still refers to it, and foreign keys are on again:
        // removing the subscriber removes its row.
        let count = |store: &Store| -> i64 {
            store
                .connection
                .query_row(
                    "SELECT count(*) FROM outbox WHERE announcement = 7",
                    [],
                    |row| row.get(0),
                )
                .unwrap()
        };
        assert_eq!(count(&store), 1);
        store
            .connection
            .execute("DELETE FROM subscribers WHERE id = 1", [])
            .unwrap();
        assert_eq!(count(&store), 0);
    }

    #[test]
    fn a_rebuild_that_would_leave_a_dangling_row_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let connection = Connection::open(&path).unwrap();
        for migration in &MIGRATIONS[..4] {
            connection.execute_batch(migration).unwrap();
        }
        connection.pragma_update(None, "user_version", 4).unwrap();
        // An outbox row whose announcement is gone, as a damaged file
        // might hold.
        connection
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 INSERT INTO subscribers VALUES (1, 'a@example.org', 1, 'sv', 'n1', 'c');
                 INSERT INTO outbox (announcement, subscriber, status, created, next_attempt_at)
                     VALUES (99, 1, 'pending', 0, 0);",
            )
            .unwrap();
        drop(connection);
        let error = Store::open(dir.path())
            .err()
            .expect("the migration is refused");
        assert_eq!(
            error.to_string(),
            format!(
                "state database {}: cannot migrate the schema",
                path.display()
            )
        );
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(
            cause.contains("a row of `outbox` refers to one that is gone"),
            "{cause}"
        );
        // Rolled back: still version 4.
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 4);
    }

    #[test]
    fn a_column_another_migration_added_to_announcements_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("herald.db")).unwrap();
        for migration in &MIGRATIONS[..4] {
            connection.execute_batch(migration).unwrap();
        }
        // As a migration numbered before the rebuild might have.
        connection
            .execute_batch(
                "ALTER TABLE announcements ADD COLUMN probe TEXT NOT NULL DEFAULT 'none';
                 INSERT INTO announcements VALUES (7, 'x', '2019-04-04T08:00:00+00:00', 't', 'incident', 'investigating', 'b', '<p>b</p>', '', 'c', 'words');",
            )
            .unwrap();
        connection.pragma_update(None, "user_version", 4).unwrap();
        drop(connection);
        let store = Store::open(dir.path()).unwrap();
        let kept: (String, String) = store
            .connection
            .query_row(
                "SELECT probe, notice FROM announcements WHERE id = 7",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, ("words".to_owned(), String::new()));
        let sql: String = store
            .connection
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'announcements'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(sql.contains("UNIQUE (incident, instant, notice)"), "{sql}");
        assert!(
            sql.contains("\"probe\" TEXT NOT NULL DEFAULT 'none'"),
            "{sql}"
        );
    }
}
