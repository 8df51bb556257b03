//! What the state database remembers of maintenance windows: each one as
//! last seen, its moves, and the notices queued about it
//! ([`crate::maintenance`]). Does I/O.
//!
//! A move is recorded when a rebuild sees a window other than the stored
//! one; the calendar's `SEQUENCE` counts the moves, so it comes from
//! recorded data and rebuilds stay byte-identical.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{Error, Store, parse_instant};
use crate::maintenance::{Move, NoticeKey, Tracked};
use crate::model::{Incident, IncidentId, NoticeKind, Window};

/// A `windows` row as SQLite gives it.
type Row = (
    String,
    String,
    String,
    u32,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

impl Store {
    /// Records the windows of the maintenances among `incidents` as seen
    /// at `now`: a new one is remembered, a changed one counts a move
    /// (and whether any update of it was notified by then). The window a
    /// move is from is the one subscribers were last told of: moving it
    /// again before the "rescheduled" notice went out keeps it. Returns
    /// what is then recorded for each of them.
    pub fn observe_windows<'a>(
        &mut self,
        incidents: impl IntoIterator<Item = &'a Incident>,
        now: DateTime<Utc>,
    ) -> Result<HashMap<IncidentId, Tracked>, Error> {
        let failed = Error::database(&self.path, "record maintenance windows");
        let mut observed = HashMap::new();
        let transaction = self.connection.transaction().map_err(failed)?;
        {
            let mut select = transaction
                .prepare_cached(
                    "SELECT starts, ends, first_seen, moves, moved_at, previous_starts, previous_ends, announced
                     FROM windows WHERE incident = ?1",
                )
                .map_err(failed)?;
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO windows (incident, starts, ends, first_seen) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(failed)?;
            let mut moved = transaction
                .prepare_cached(
                    "UPDATE windows SET starts = ?2, ends = ?3, moves = moves + 1, moved_at = ?4,
                            previous_starts = CASE WHEN told THEN starts ELSE previous_starts END,
                            previous_ends = CASE WHEN told THEN ends ELSE previous_ends END,
                            announced = announced OR EXISTS (
                                SELECT 1 FROM notified WHERE incident = ?1 AND reason <> 'too-old')
                     FROM (SELECT moved_at IS NULL OR NOT announced OR EXISTS (
                               SELECT 1 FROM notices n
                               WHERE n.incident = ?1 AND n.notice = 'rescheduled' AND n.instant = w.moved_at)
                               AS told
                           FROM windows w WHERE w.incident = ?1)
                     WHERE incident = ?1",
                )
                .map_err(failed)?;
            for incident in incidents {
                let Some(window) = incident.window else {
                    continue;
                };
                let id = incident.id.as_str();
                let (starts, ends) = (window.starts.to_rfc3339(), window.ends.to_rfc3339());
                let stored: Option<Row> = select
                    .query_row(params![id], read_row)
                    .optional()
                    .map_err(failed)?;
                let tracked = match stored.as_ref().and_then(|row| tracked(row, now)) {
                    None => {
                        if stored.is_some() {
                            transaction
                                .execute("DELETE FROM windows WHERE incident = ?1", params![id])
                                .map_err(failed)?;
                        }
                        insert
                            .execute(params![id, starts, ends, now.to_rfc3339()])
                            .map_err(failed)?;
                        Tracked {
                            window,
                            first_seen: now,
                            moves: 0,
                            moved: None,
                        }
                    }
                    Some(tracked) if tracked.window == window => tracked,
                    Some(before) => {
                        moved
                            .execute(params![id, starts, ends, now.to_rfc3339()])
                            .map_err(failed)?;
                        let row: Row = select.query_row(params![id], read_row).map_err(failed)?;
                        tracked(&row, now).unwrap_or(Tracked {
                            window,
                            first_seen: before.first_seen,
                            moves: before.moves.saturating_add(1),
                            moved: None,
                        })
                    }
                };
                observed.insert(incident.id.clone(), tracked);
            }
        }
        transaction.commit().map_err(failed)?;
        Ok(observed)
    }

    /// Every maintenance notice queued so far.
    pub fn sent_notices(&self) -> Result<HashSet<NoticeKey>, Error> {
        let failed = Error::database(&self.path, "read which maintenance notices were sent");
        let mut statement = self
            .connection
            .prepare("SELECT incident, notice, instant FROM notices")
            .map_err(failed)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(failed)?;
        let mut sent = HashSet::new();
        for row in rows {
            let (incident, notice, instant) = row.map_err(failed)?;
            if let (Some(incident), Some(kind), Some(instant)) = (
                IncidentId::new(&incident),
                NoticeKind::parse(&notice),
                parse_instant(&instant),
            ) {
                sent.insert((incident, kind, instant));
            }
        }
        Ok(sent)
    }
}

fn read_row(row: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

/// A stored row as [`Tracked`]; `None` if it cannot be read (then it is
/// recorded again as new).
fn tracked(row: &Row, now: DateTime<Utc>) -> Option<Tracked> {
    let (starts, ends, first_seen, moves, moved_at, previous_starts, previous_ends, announced) =
        row;
    let window = Window {
        starts: parse_instant(starts)?,
        ends: parse_instant(ends)?,
    };
    let moved = match (moved_at, previous_starts, previous_ends) {
        (Some(at), Some(starts), Some(ends)) => Some(Move {
            at: parse_instant(at)?,
            from: Window {
                starts: parse_instant(starts)?,
                ends: parse_instant(ends)?,
            },
            announced: *announced,
        }),
        _ => None,
    };
    Some(Tracked {
        window,
        first_seen: parse_instant(first_seen).unwrap_or(now),
        moves: *moves,
        moved,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{at, subscriber};
    use super::*;
    use crate::announce::{Announcement, Decision};
    use crate::model::{Component, Notice};
    use crate::parse::{Context, parse_incident};

    fn maintenance(starts: u32, ends: u32) -> Incident {
        let components = [Component {
            id: "dns".into(),
            name: "DNS".into(),
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
            "+++\ntitle = \"DNS\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2019-04-04 {starts:02}:00\"\nends = \"2019-04-04 {ends:02}:00\"\n+++\n\n## 2019-04-04 06:00\nPlanned.\n"
        );
        let (incident, diagnostics) =
            parse_incident(std::path::Path::new("dns.md"), &text, &context);
        incident.unwrap_or_else(|| panic!("{diagnostics:?}"))
    }

    fn window(starts: u32, ends: u32) -> Window {
        Window {
            starts: at(starts),
            ends: at(ends),
        }
    }

    #[test]
    fn a_window_is_remembered_and_each_move_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = IncidentId::new("dns").unwrap();
        let first = store
            .observe_windows([&maintenance(10, 12)], at(7))
            .unwrap();
        assert_eq!(
            first[&id],
            Tracked {
                window: window(10, 12),
                first_seen: at(7),
                moves: 0,
                moved: None,
            }
        );
        // Seen again unchanged: nothing new.
        let again = store
            .observe_windows([&maintenance(10, 12)], at(8))
            .unwrap();
        assert_eq!(again[&id], first[&id]);
        // Moved before anything was notified.
        let moved = store
            .observe_windows([&maintenance(11, 12)], at(8))
            .unwrap();
        assert_eq!(
            moved[&id].moved,
            Some(Move {
                at: at(8),
                from: window(10, 12),
                announced: false,
            })
        );
        // Moved again after the announcement, and read back after a restart.
        store
            .record_baseline(&[(id.clone(), at(6))], at(8))
            .unwrap();
        store
            .observe_windows([&maintenance(11, 13)], at(9))
            .unwrap();
        drop(store);
        let mut store = Store::open(dir.path()).unwrap();
        let read = store
            .observe_windows([&maintenance(11, 13)], at(10))
            .unwrap();
        assert_eq!(
            read[&id],
            Tracked {
                window: window(11, 13),
                first_seen: at(7),
                moves: 2,
                moved: Some(Move {
                    at: at(9),
                    from: window(11, 12),
                    announced: true,
                }),
            }
        );
        // Moved again before the notice of that move went out: it is
        // still from the window subscribers were told of.
        let again = store
            .observe_windows([&maintenance(12, 13)], at(10))
            .unwrap();
        assert_eq!(
            again[&id].moved,
            Some(Move {
                at: at(10),
                from: window(11, 12),
                announced: true,
            })
        );
        // Once that notice is queued, the next move is from its window.
        let incident = maintenance(12, 13);
        let notice = Announcement::of_notice(
            &incident,
            at(10),
            Notice {
                kind: NoticeKind::Rescheduled,
                window: window(12, 13),
                previous: Some(window(11, 12)),
            },
        );
        let decision = Decision {
            due: vec![notice],
            ..Decision::default()
        };
        store.enqueue(&decision, at(10)).unwrap();
        let after = store
            .observe_windows([&maintenance(13, 14)], at(11))
            .unwrap();
        assert_eq!(
            after[&id].moved.map(|moved| moved.from),
            Some(window(12, 13))
        );
        assert_eq!(after[&id].moves, 4);
    }

    #[test]
    fn a_notice_is_queued_once_beside_an_update_at_the_same_instant() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store
            .add_subscribers(&[subscriber("a@example.org", &["dns"])], at(5))
            .unwrap();
        let incident = maintenance(10, 12);
        let update = Announcement::new(&incident, &incident.updates[0]);
        // A reminder at the same instant as the update: both go out.
        let reminder = Announcement::of_notice(
            &incident,
            at(6),
            Notice {
                kind: NoticeKind::Reminder {
                    lead: std::time::Duration::from_secs(4 * 3600),
                },
                window: window(10, 12),
                previous: None,
            },
        );
        let moved = Announcement::of_notice(
            &incident,
            at(7),
            Notice {
                kind: NoticeKind::Rescheduled,
                window: window(10, 12),
                previous: Some(window(9, 11)),
            },
        );
        let decision = Decision {
            due: vec![update.clone(), reminder.clone(), moved.clone()],
            ..Decision::default()
        };
        assert_eq!(store.enqueue(&decision, at(7)).unwrap(), 3);
        // Again (a restart, a reload): nothing.
        assert_eq!(store.enqueue(&decision, at(8)).unwrap(), 0);
        let sent = store.sent_notices().unwrap();
        let id = IncidentId::new("dns").unwrap();
        let reminder_kind = reminder.notice.unwrap().kind;
        assert_eq!(
            sent,
            HashSet::from([
                (id.clone(), reminder_kind, at(6)),
                (id.clone(), NoticeKind::Rescheduled, at(7)),
            ])
        );
        // `herald outbox` tells a notice by its kind.
        let mut listed: Vec<String> = store
            .outbox(10)
            .unwrap()
            .into_iter()
            .map(|entry| entry.instant)
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                "2019-04-04T06:00:00+00:00",
                "2019-04-04T06:00:00+00:00 reminder-14400s",
                "2019-04-04T07:00:00+00:00 rescheduled",
            ]
        );
        // Each reads back as it was queued.
        let leased = store.lease(at(9), at(10), 10).unwrap();
        let mut read: Vec<Announcement> = leased
            .iter()
            .map(|row| store.announcement(row.announcement).unwrap().unwrap())
            .collect();
        read.sort_by_key(|announcement| (announcement.instant, announcement.notice.is_some()));
        assert_eq!(read, [update, reminder, moved]);
    }

    #[test]
    fn unreadable_rows_are_recorded_anew_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let id = IncidentId::new("dns").unwrap();
        store
            .observe_windows([&maintenance(10, 12)], at(7))
            .unwrap();
        store
            .connection
            .execute_batch(
                "UPDATE windows SET starts = 'soon';
                 INSERT INTO notices VALUES ('dns', 'bogus', '2019-04-04T09:00:00+00:00', 'x');
                 INSERT INTO announcements (id, incident, instant, notice, title, kind, status, body_markdown, body_html, components, created)
                     VALUES (5, 'dns', '2019-04-04T09:00:00+00:00', 'bogus', 't', 'maintenance', 'scheduled', '', '', '', 'x');",
            )
            .unwrap();
        // A window that cannot be read is recorded again, as first seen now.
        let read = store
            .observe_windows([&maintenance(10, 12)], at(9))
            .unwrap();
        assert_eq!(read[&id].first_seen, at(9));
        assert_eq!(read[&id].moved, None);
        // A notice or an announcement of an unknown kind is left out.
        assert!(store.sent_notices().unwrap().is_empty());
        assert_eq!(store.announcement(5).unwrap(), None);
    }
}
