//! The state database (`state/herald.db`, SQLite in WAL mode). Does I/O.
//!
//! Today it remembers, for every published update (keyed by its identity,
//! incident id and instant), when herald first saw it and when its text
//! last changed. Feeds show the edit as the entry's `updated` time, so
//! the time comes from recorded data and rebuilds stay byte-identical.
//! Schema changes are numbered migrations tracked in `user_version`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{Incident, IncidentId};
use crate::render::Revisions;

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
    #[error("state database {} has schema version {found}, newer than this herald knows ({known}); upgrade herald", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Each entry moves the schema one version up; never edit a released one.
const MIGRATIONS: &[&str] = &["CREATE TABLE revisions (
        incident TEXT NOT NULL,
        instant TEXT NOT NULL,
        content TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        edited TEXT,
        PRIMARY KEY (incident, instant)
    ) WITHOUT ROWID;"];

pub struct Store {
    path: PathBuf,
    connection: Connection,
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
        let connection = Connection::open(&path).map_err(database)?;
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
        let mut store = Store { path, connection };
        store.migrate()?;
        Ok(store)
    }

    fn database(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Database {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let version: i64 = self
            .connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(self.database())?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(Error::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        let path = self.path.clone();
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let transaction = self.connection.transaction().map_err(database)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            transaction.execute_batch(migration).map_err(database)?;
            transaction
                .pragma_update(None, "user_version", index as i64 + 1)
                .map_err(database)?;
        }
        transaction.commit().map_err(database)
    }

    /// Records the updates of `incidents` as seen at `now`: new ones get a
    /// first-seen time, ones whose text changed get an edit time. Returns
    /// the edits found, to merge into the in-memory [`Revisions`].
    pub fn observe<'a>(
        &mut self,
        incidents: impl IntoIterator<Item = &'a Incident>,
        now: DateTime<Utc>,
    ) -> Result<Revisions, Error> {
        let path = self.path.clone();
        let database = |source| Error::Database {
            path: path.clone(),
            source,
        };
        let mut edits = Revisions::new();
        let transaction = self.connection.transaction().map_err(database)?;
        {
            let mut select = transaction
                .prepare_cached(
                    "SELECT content FROM revisions WHERE incident = ?1 AND instant = ?2",
                )
                .map_err(database)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO revisions (incident, instant, content, first_seen) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(database)?;
            let mut edit = transaction
                .prepare_cached("UPDATE revisions SET content = ?3, edited = ?4 WHERE incident = ?1 AND instant = ?2")
                .map_err(database)?;
            let seen = now.to_rfc3339();
            for incident in incidents {
                for update in &incident.updates {
                    let key = (incident.id.as_str(), update.instant.to_rfc3339());
                    let content = revision_content(incident, update);
                    let stored: Option<String> = select
                        .query_row(params![key.0, key.1], |row| row.get(0))
                        .optional()
                        .map_err(database)?;
                    match stored {
                        None => {
                            insert
                                .execute(params![key.0, key.1, content, seen])
                                .map_err(database)?;
                        }
                        Some(stored) if stored != content => {
                            edit.execute(params![key.0, key.1, content, seen])
                                .map_err(database)?;
                            edits.insert((incident.id.clone(), update.instant), now);
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        transaction.commit().map_err(database)?;
        Ok(edits)
    }

    /// Every recorded edit time.
    pub fn revisions(&self) -> Result<Revisions, Error> {
        let mut statement = self
            .connection
            .prepare("SELECT incident, instant, edited FROM revisions WHERE edited IS NOT NULL")
            .map_err(self.database())?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(self.database())?;
        let mut revisions = Revisions::new();
        for row in rows {
            let (incident, instant, edited) = row.map_err(self.database())?;
            let (Some(id), Ok(instant), Ok(edited)) = (
                IncidentId::new(&incident),
                DateTime::parse_from_rfc3339(&instant),
                DateTime::parse_from_rfc3339(&edited),
            ) else {
                tracing::warn!(%incident, %instant, "ignoring an unreadable revision row");
                continue;
            };
            revisions.insert(
                (id, instant.with_timezone(&Utc)),
                edited.with_timezone(&Utc),
            );
        }
        Ok(revisions)
    }

    /// When an update was first seen, if ever.
    pub fn first_seen(
        &self,
        id: &IncidentId,
        instant: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let text: Option<String> = self
            .connection
            .query_row(
                "SELECT first_seen FROM revisions WHERE incident = ?1 AND instant = ?2",
                params![id.as_str(), instant.to_rfc3339()],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.database())?;
        Ok(text
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }
}

/// What counts as an update's text for edit detection: what a reader
/// sees of it in a feed entry.
fn revision_content(incident: &Incident, update: &crate::model::Update) -> String {
    let components: Vec<String> = update
        .component_statuses
        .iter()
        .map(|(id, status)| format!("{id}={}", status.as_str()))
        .collect();
    format!(
        "{}\n{}\n{}\n{}",
        incident.title,
        update.status.as_str(),
        components.join(","),
        update.body_markdown
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;
    use crate::parse::{Context, parse_incident};

    fn incident(body: &str) -> Incident {
        let components = vec![Component {
            id: "mail".into(),
            name: "Mail".into(),
            group: None,
        }];
        let context = Context {
            timezone: chrono_tz::UTC,
            components: &components,
        };
        let text = format!(
            "+++\ntitle = \"T\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n## 2019-04-04 08:00\n{body}\n## 2019-04-04 09:00\nsecond\n"
        );
        parse_incident(Path::new("x.md"), &text, &context)
            .0
            .unwrap()
    }

    fn at(hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2019, 4, 4, hour, 0, 0).unwrap()
    }

    #[test]
    fn edits_are_recorded_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.observe([&incident("first")], at(10)).unwrap(),
            Revisions::new()
        );
        // Unchanged: no edit.
        assert_eq!(
            store.observe([&incident("first")], at(11)).unwrap(),
            Revisions::new()
        );
        let edits = store
            .observe([&incident("first, fixed typo")], at(12))
            .unwrap();
        let id = IncidentId::new("x").unwrap();
        assert_eq!(edits, Revisions::from([((id.clone(), at(8)), at(12))]));
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.revisions().unwrap(),
            Revisions::from([((id.clone(), at(8)), at(12))])
        );
        assert_eq!(store.first_seen(&id, at(9)).unwrap(), Some(at(10)));
        assert_eq!(store.first_seen(&id, at(7)).unwrap(), None);
        let mode: String = store
            .connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
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
                .contains("has schema version 99, newer than this herald knows (1)"),
            "{error}"
        );
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
