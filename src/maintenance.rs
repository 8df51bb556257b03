//! Which maintenance notices are due: the reminders before a window, the
//! notices at its start and end, and the one after it moved. Pure: the
//! caller passes the corpus, what the state database remembers, and
//! `now`.
//!
//! The rules, for each published maintenance:
//!
//! - A notice is *armed* from the moment subscribers could know of the
//!   window: `grace` after herald first saw the maintenance, or after it
//!   last saw the window move. A notice whose time comes before that is
//!   never sent (the announcement, or the "rescheduled" notice, said it
//!   already); that is also why starting herald on an old directory sends
//!   nothing.
//! - A reminder goes out `lead` before `starts`, for each lead time of
//!   `[maintenance] reminders`, only while the window has not begun: one
//!   that fell due while herald was down is sent late only if it still
//!   comes before the window.
//! - The "in progress" notice goes out at `starts` unless the file has an
//!   explicit `in-progress` update, or the maintenance was closed by then;
//!   the "completed" notice at `ends` unless the file has a `completed`
//!   update, or it was closed by then. Missed ones are sent late, with
//!   their own time, if no older than `max_age`.
//! - A move of the window (a new `starts` or `ends`) after any of the
//!   maintenance's updates was notified sends one "rescheduled" notice,
//!   `grace` after the last move (moving it twice within that sends one),
//!   unless the window is over by then; the reminders and edges of the new
//!   window are armed again, since their times are new.
//! - A cancelled maintenance sends none of these: its `cancelled` update
//!   is announced like any other.
//!
//! A notice's identity is `(incident, kind, instant)` ([`NoticeKey`]); the
//! state database records it in the transaction that queues it, so it is
//! sent once across restarts, reloads and edits.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::corpus::Corpus;
use crate::model::{Incident, IncidentId, Notice, NoticeKind, Status, Window};
use crate::render::{Moved, Moves};

/// A notice's identity: the maintenance, the kind, and its instant (the
/// edge or reminder time, or when the move was seen).
pub type NoticeKey = (IncidentId, NoticeKind, DateTime<Utc>);

/// What the state database remembers of one maintenance's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// The window as last seen.
    pub window: Window,
    /// When herald first saw the maintenance.
    pub first_seen: DateTime<Utc>,
    /// How many times the window moved: the calendar's `SEQUENCE` grows
    /// with it.
    pub moves: u32,
    /// The last move, if any.
    pub moved: Option<Move>,
}

/// A window seen to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub at: DateTime<Utc>,
    /// The window before.
    pub from: Window,
    /// Whether any update of the maintenance had been notified by then:
    /// only then do subscribers need to hear of it.
    pub announced: bool,
}

/// The settings that time the notices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `[maintenance] reminders`.
    pub reminders: Vec<Duration>,
    /// `[email] grace`.
    pub grace: Duration,
    /// `[email] max_age`: edges missed longer ago than this are dropped.
    pub max_age: Duration,
}

/// One notice to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub incident: IncidentId,
    /// When it happened (or happens, for a reminder): the time it shows.
    pub instant: DateTime<Utc>,
    pub notice: Notice,
}

impl Due {
    pub fn key(&self) -> NoticeKey {
        (self.incident.clone(), self.notice.kind, self.instant)
    }
}

/// What to send now, and when to look again.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Oldest first.
    pub due: Vec<Due>,
    /// The earliest instant a notice not yet due becomes due.
    pub next: Option<DateTime<Utc>>,
}

/// The moved windows among `tracked`, as the calendar counts them.
pub fn moves<'a>(tracked: impl IntoIterator<Item = (&'a IncidentId, &'a Tracked)>) -> Moves {
    tracked
        .into_iter()
        .filter_map(|(id, record)| {
            let moved = record.moved?;
            Some((
                id.clone(),
                Moved {
                    count: record.moves,
                    last: moved.at,
                },
            ))
        })
        .collect()
}

/// Decides which notices are due at `now`. A maintenance herald has not
/// recorded yet, or whose recorded window is not the one in its file,
/// waits until it has been.
pub fn decide(
    corpus: &Corpus,
    tracked: &HashMap<IncidentId, Tracked>,
    sent: &HashSet<NoticeKey>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Decision {
    let grace = chrono::Duration::from_std(policy.grace).unwrap_or(chrono::Duration::MAX);
    let max_age = chrono::Duration::from_std(policy.max_age).unwrap_or(chrono::Duration::MAX);
    let mut decision = Decision::default();
    for (id, record) in tracked {
        let Some(incident) = corpus.published_get(id) else {
            continue;
        };
        let Some(window) = incident.window else {
            continue;
        };
        if window != record.window || incident.is_cancelled() {
            continue;
        }
        let since = record.moved.map_or(record.first_seen, |moved| moved.at);
        let armed = since
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        for candidate in candidates(incident, window, record, policy, armed) {
            let Candidate {
                instant,
                notice,
                send_at,
                until,
            } = candidate;
            if sent.contains(&(id.clone(), notice.kind, instant)) {
                continue;
            }
            let until = until.unwrap_or_else(|| {
                instant
                    .checked_add_signed(max_age)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            });
            if now >= until {
                continue;
            }
            if send_at <= now {
                decision.due.push(Due {
                    incident: id.clone(),
                    instant,
                    notice,
                });
            } else {
                decision.next = Some(decision.next.map_or(send_at, |next| next.min(send_at)));
            }
        }
    }
    decision.due.sort_by(|a, b| {
        (a.instant, &a.incident, a.notice.kind).cmp(&(b.instant, &b.incident, b.notice.kind))
    });
    decision
}

/// A notice `incident` may still send.
struct Candidate {
    /// The instant it shows (and its identity's).
    instant: DateTime<Utc>,
    notice: Notice,
    /// When it may be sent.
    send_at: DateTime<Utc>,
    /// The instant after which it never is (`None`: `max_age` after its
    /// instant).
    until: Option<DateTime<Utc>>,
}

/// Each notice `incident` may still send.
fn candidates(
    incident: &Incident,
    window: Window,
    record: &Tracked,
    policy: &Policy,
    armed: DateTime<Utc>,
) -> Vec<Candidate> {
    let plain = |kind| Notice {
        kind,
        window,
        previous: None,
    };
    let mut found = Vec::new();
    // Moved back to the window subscribers were told of: nothing to say.
    if let Some(moved) = record.moved
        && moved.announced
        && moved.from != window
    {
        let notice = Notice {
            kind: NoticeKind::Rescheduled,
            window,
            previous: Some(moved.from),
        };
        found.push(Candidate {
            instant: moved.at,
            notice,
            send_at: armed,
            until: Some(window.ends),
        });
    }
    let closed_by = |instant: DateTime<Utc>| {
        incident
            .updates
            .iter()
            .any(|update| update.status.is_closing() && update.instant <= instant)
    };
    let declared = |status: Status| {
        incident
            .updates
            .iter()
            .any(|update| update.declared == Some(status))
    };
    for lead in &policy.reminders {
        let Some(at) = chrono::Duration::from_std(*lead)
            .ok()
            .and_then(|lead| window.starts.checked_sub_signed(lead))
        else {
            continue;
        };
        if at >= armed && !closed_by(window.starts) {
            let kind = NoticeKind::Reminder { lead: *lead };
            found.push(Candidate {
                instant: at,
                notice: plain(kind),
                send_at: at,
                until: Some(window.starts),
            });
        }
    }
    if window.starts >= armed && !declared(Status::InProgress) && !closed_by(window.starts) {
        found.push(Candidate {
            instant: window.starts,
            notice: plain(NoticeKind::Started),
            send_at: window.starts,
            until: None,
        });
    }
    if window.ends >= armed && !declared(Status::Completed) && !closed_by(window.ends) {
        found.push(Candidate {
            instant: window.ends,
            notice: plain(NoticeKind::Completed),
            send_at: window.ends,
            until: None,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;
    use crate::parse::{Context, parse_incident};
    use chrono::TimeZone;
    use std::path::Path;

    fn corpus(text: &str) -> Corpus {
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
        let (incident, diagnostics) = parse_incident(Path::new("dns.md"), text, &context);
        Corpus::from_incidents([incident.unwrap_or_else(|| panic!("{diagnostics:?}"))])
    }

    /// 10 December 2026 at `hour:minute` UTC.
    fn at(hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 10, hour, minute, 0).unwrap()
    }

    fn maintenance(starts: &str, ends: &str, updates: &str) -> String {
        format!(
            "+++\ntitle = \"DNS\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 {starts}\"\nends = \"2026-12-10 {ends}\"\n+++\n\n## 2026-12-10 08:00\nPlanned.\n{updates}"
        )
    }

    fn window(starts: DateTime<Utc>, ends: DateTime<Utc>) -> Window {
        Window { starts, ends }
    }

    fn id() -> IncidentId {
        IncidentId::new("dns").unwrap()
    }

    fn tracked(window: Window, first_seen: DateTime<Utc>) -> HashMap<IncidentId, Tracked> {
        HashMap::from([(
            id(),
            Tracked {
                window,
                first_seen,
                moves: 0,
                moved: None,
            },
        )])
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(reminders: &[Duration]) -> Policy {
        Policy {
            reminders: reminders.to_vec(),
            grace: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
        }
    }

    /// `(kind, instant)` of each due notice, and `next`.
    fn check(
        corpus: &Corpus,
        tracked: &HashMap<IncidentId, Tracked>,
        sent: &HashSet<NoticeKey>,
        now: DateTime<Utc>,
        policy: &Policy,
        due: &[(NoticeKind, DateTime<Utc>)],
        next: Option<DateTime<Utc>>,
    ) -> Decision {
        let decision = decide(corpus, tracked, sent, now, policy);
        let found: Vec<(NoticeKind, DateTime<Utc>)> = decision
            .due
            .iter()
            .map(|due| (due.notice.kind, due.instant))
            .collect();
        assert_eq!(found, due, "due at {now}");
        assert_eq!(decision.next, next, "next at {now}");
        decision
    }

    fn reminder(lead: Duration) -> NoticeKind {
        NoticeKind::Reminder { lead }
    }

    #[test]
    fn reminders_then_start_then_end_each_at_their_time_and_once() {
        let corpus = corpus(&maintenance("22:00", "23:30", ""));
        let tracked = tracked(window(at(22, 0), at(23, 30)), at(8, 0));
        let policy = policy(&[3 * HOUR, HOUR]);
        let mut sent = HashSet::new();
        // Before anything: sleep until the first reminder.
        check(
            &corpus,
            &tracked,
            &sent,
            at(9, 0),
            &policy,
            &[],
            Some(at(19, 0)),
        );
        // Never early: a second before it, still nothing.
        let early = at(19, 0) - chrono::Duration::seconds(1);
        check(
            &corpus,
            &tracked,
            &sent,
            early,
            &policy,
            &[],
            Some(at(19, 0)),
        );
        let decision = check(
            &corpus,
            &tracked,
            &sent,
            at(19, 0),
            &policy,
            &[(reminder(3 * HOUR), at(19, 0))],
            Some(at(21, 0)),
        );
        assert_eq!(
            decision.due[0].notice,
            Notice {
                kind: reminder(3 * HOUR),
                window: window(at(22, 0), at(23, 30)),
                previous: None,
            }
        );
        sent.extend(decision.due.iter().map(Due::key));
        let decision = check(
            &corpus,
            &tracked,
            &sent,
            at(21, 0),
            &policy,
            &[(reminder(HOUR), at(21, 0))],
            Some(at(22, 0)),
        );
        sent.extend(decision.due.iter().map(Due::key));
        let decision = check(
            &corpus,
            &tracked,
            &sent,
            at(22, 0),
            &policy,
            &[(NoticeKind::Started, at(22, 0))],
            Some(at(23, 30)),
        );
        sent.extend(decision.due.iter().map(Due::key));
        let decision = check(
            &corpus,
            &tracked,
            &sent,
            at(23, 30),
            &policy,
            &[(NoticeKind::Completed, at(23, 30))],
            None,
        );
        sent.extend(decision.due.iter().map(Due::key));
        check(&corpus, &tracked, &sent, at(23, 59), &policy, &[], None);
    }

    #[test]
    fn a_reminder_missed_while_down_goes_out_only_before_the_window() {
        let corpus = corpus(&maintenance("22:00", "23:30", ""));
        let tracked = tracked(window(at(22, 0), at(23, 30)), at(8, 0));
        let policy = policy(&[HOUR]);
        let sent = HashSet::new();
        // Back at 21:30: the 21:00 reminder goes out late.
        check(
            &corpus,
            &tracked,
            &sent,
            at(21, 30),
            &policy,
            &[(reminder(HOUR), at(21, 0))],
            Some(at(22, 0)),
        );
        // Back at 22:10: the reminder is dropped, the start is sent late
        // with its own time.
        check(
            &corpus,
            &tracked,
            &sent,
            at(22, 10),
            &policy,
            &[(NoticeKind::Started, at(22, 0))],
            Some(at(23, 30)),
        );
        // Back the next morning: start and end, late, once each.
        let tomorrow = at(9, 0) + chrono::Duration::days(1);
        check(
            &corpus,
            &tracked,
            &sent,
            tomorrow,
            &policy,
            &[
                (NoticeKind::Started, at(22, 0)),
                (NoticeKind::Completed, at(23, 30)),
            ],
            None,
        );
        // More than max_age late: dropped.
        let later = at(23, 31) + chrono::Duration::days(1);
        check(&corpus, &tracked, &sent, later, &policy, &[], None);
    }

    #[test]
    fn explicit_updates_cover_their_edges_and_closing_early_ends_it() {
        let policy = policy(&[HOUR]);
        let sent = HashSet::new();
        let tracked = tracked(window(at(22, 0), at(23, 30)), at(8, 0));
        let corpus_with = |updates: &str| corpus(&maintenance("22:00", "23:30", updates));
        // An explicit in-progress update: no start notice, the end still.
        let corpus = corpus_with("\n## 2026-12-10 22:01 in-progress\nStarted.\n");
        check(
            &corpus,
            &tracked,
            &sent,
            at(23, 30),
            &policy,
            &[(NoticeKind::Completed, at(23, 30))],
            None,
        );
        // Completed early: no end notice; written before the start, nothing
        // at all.
        let corpus = corpus_with("\n## 2026-12-10 23:00 completed\nDone early.\n");
        check(
            &corpus,
            &tracked,
            &sent,
            at(23, 45),
            &policy,
            &[(NoticeKind::Started, at(22, 0))],
            None,
        );
        let corpus = corpus_with("\n## 2026-12-10 20:00 completed\nNot needed.\n");
        check(&corpus, &tracked, &sent, at(20, 30), &policy, &[], None);
        // Cancelled: nothing, whatever the time.
        let corpus = corpus_with("\n## 2026-12-10 20:00 cancelled\nCalled off.\n");
        check(&corpus, &tracked, &sent, at(21, 0), &policy, &[], None);
        check(&corpus, &tracked, &sent, at(23, 45), &policy, &[], None);
    }

    #[test]
    fn nothing_due_before_herald_could_have_told_anyone() {
        let corpus = corpus(&maintenance("22:00", "23:30", ""));
        let policy = policy(&[3 * HOUR, HOUR]);
        let sent = HashSet::new();
        // First seen at 20:30: the 19:00 reminder never goes, the 21:00
        // one does.
        let tracked = tracked(window(at(22, 0), at(23, 30)), at(20, 30));
        check(
            &corpus,
            &tracked,
            &sent,
            at(20, 30),
            &policy,
            &[],
            Some(at(21, 0)),
        );
        // A reminder due within the announcement's grace waits for nothing:
        // it is dropped, the announcement says as much.
        let seen = at(21, 0) - chrono::Duration::seconds(30);
        let tracked = super::tests::tracked(window(at(22, 0), at(23, 30)), seen);
        check(
            &corpus,
            &tracked,
            &sent,
            at(21, 0),
            &policy,
            &[],
            Some(at(22, 0)),
        );
        // First seen after the window (an old directory): nothing, ever.
        let tracked = super::tests::tracked(window(at(22, 0), at(23, 30)), at(23, 45));
        check(&corpus, &tracked, &sent, at(23, 50), &policy, &[], None);
        // Not recorded yet, or recorded with another window: wait.
        check(
            &corpus,
            &HashMap::new(),
            &sent,
            at(22, 0),
            &policy,
            &[],
            None,
        );
        let other = super::tests::tracked(window(at(21, 0), at(23, 30)), at(8, 0));
        check(&corpus, &other, &sent, at(22, 0), &policy, &[], None);
    }

    #[test]
    fn a_moved_window_sends_one_notice_after_grace_and_rearms() {
        // Moved from 22:00–23:30 to 23:00–23:45 at 20:00, after the
        // announcement.
        let corpus = corpus(&maintenance("23:00", "23:45", ""));
        let policy = policy(&[HOUR]);
        let from = window(at(22, 0), at(23, 30));
        let moved = |announced| {
            HashMap::from([(
                id(),
                Tracked {
                    window: window(at(23, 0), at(23, 45)),
                    first_seen: at(8, 0),
                    moves: 1,
                    moved: Some(Move {
                        at: at(20, 0),
                        from,
                        announced,
                    }),
                },
            )])
        };
        let mut sent = HashSet::new();
        let tracked = moved(true);
        check(
            &corpus,
            &tracked,
            &sent,
            at(20, 0),
            &policy,
            &[],
            Some(at(20, 1)),
        );
        let decision = check(
            &corpus,
            &tracked,
            &sent,
            at(20, 1),
            &policy,
            &[(NoticeKind::Rescheduled, at(20, 0))],
            Some(at(22, 0)),
        );
        assert_eq!(decision.due[0].notice.previous, Some(from));
        sent.extend(decision.due.iter().map(Due::key));
        // The old window's reminder was sent before the move; the new one
        // is armed again.
        sent.insert((id(), reminder(HOUR), at(21, 0)));
        check(
            &corpus,
            &tracked,
            &sent,
            at(22, 0),
            &policy,
            &[(reminder(HOUR), at(22, 0))],
            Some(at(23, 0)),
        );
        // Moved back to where it was: no notice.
        let back = HashMap::from([(
            id(),
            Tracked {
                window: from,
                ..tracked[&id()]
            },
        )]);
        let corpus_back = super::tests::corpus(&maintenance("22:00", "23:30", ""));
        check(
            &corpus_back,
            &back,
            &HashSet::new(),
            at(20, 5),
            &policy,
            &[],
            Some(at(21, 0)),
        );
        // Moved before anyone was told: no notice, the reminder still.
        let tracked = moved(false);
        check(
            &corpus,
            &tracked,
            &HashSet::new(),
            at(20, 5),
            &policy,
            &[],
            Some(at(22, 0)),
        );
        // A move not told by the time the new window ended is dropped.
        let tracked = moved(true);
        check(
            &corpus,
            &tracked,
            &HashSet::from([
                (id(), NoticeKind::Started, at(23, 0)),
                (id(), NoticeKind::Completed, at(23, 45)),
            ]),
            at(23, 50),
            &policy,
            &[],
            None,
        );
    }

    #[test]
    fn without_reminders_only_the_edges() {
        let corpus = corpus(&maintenance("22:00", "23:30", ""));
        let tracked = tracked(window(at(22, 0), at(23, 30)), at(8, 0));
        check(
            &corpus,
            &tracked,
            &HashSet::new(),
            at(9, 0),
            &policy(&[]),
            &[],
            Some(at(22, 0)),
        );
    }
}
