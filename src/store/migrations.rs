//! The state database's schema: numbered migrations, tracked in SQLite's
//! `user_version`, and the data step that goes with migration 3 (raw
//! unsubscribe tokens replaced by nonces and token hashes). Does I/O.
//!
//! Each entry of [`MIGRATIONS`] moves the schema one version up, all of
//! them in one transaction at [`Store::open`]; never edit a released one.

use std::path::Path;

use rusqlite::params;

use super::{Error, Store, unusable};
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
];

/// The migration (index into [`MIGRATIONS`]) after which [`rekey`] runs.
const REKEY_MIGRATION: usize = 2;

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
        let transaction = self.connection.transaction().map_err(failed)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            transaction.execute_batch(migration).map_err(failed)?;
            if index == REKEY_MIGRATION {
                // Links then held raw tokens, so no key made them yet.
                let key =
                    Key::load_or_create(state_dir).map_err(|error| Error::Key(unusable(&error)))?;
                rekey(&transaction, &key).map_err(|error| match error {
                    RekeyError::Database(source) => failed(source),
                    RekeyError::Random(source) => Error::Random {
                        path: self.path.clone(),
                        source,
                    },
                })?;
            }
            transaction
                .pragma_update(None, "user_version", index as i64 + 1)
                .map_err(failed)?;
        }
        transaction.commit().map_err(failed)?;
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
        assert_eq!(version, 3);
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
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::open(dir.path().join("herald.db")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        let error = Store::open(dir.path()).err().unwrap();
        assert!(
            error
                .to_string()
                .contains("has schema version 99, newer than this herald knows (3)"),
            "{error}"
        );
    }
}
