//! Which updates to email, and what an email says. Pure: the caller passes
//! the corpus, what the state database remembers, and `now`.
//!
//! An update is announced once: when it is published (its incident is not
//! a draft), its text has been unchanged for `grace` (so a typo fixed right
//! after saving is what goes out), it was not older than `max_age` when
//! herald first saw it (starting herald on an old directory, or after a
//! long stop, does not mail old news), and it was not announced before.
//! Editing an announced update never announces it again: identity is
//! `(incident id, instant)`, never text.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::corpus::Corpus;
use crate::model::{
    ComponentStatus, Headline, Incident, IncidentId, Kind, Language, Notice, NoticeKind, Status,
    Update,
};
use crate::parse::render_markdown;
use crate::render::{Revisions, i18n};

/// An update's identity.
pub type UpdateKey = (IncidentId, DateTime<Utc>);

/// When herald first saw an update, and when its text last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first_seen: DateTime<Utc>,
    /// `None` when never edited.
    pub edited: Option<DateTime<Utc>>,
}

impl Seen {
    pub fn last_change(&self) -> DateTime<Utc> {
        self.edited
            .map_or(self.first_seen, |edited| edited.max(self.first_seen))
    }
}

/// What the state database remembers about updates.
#[derive(Debug, Clone, Default)]
pub struct Announced {
    /// First-seen and edit times of the updates not yet notified: the only
    /// ones [`decide`] looks at, so a change costs what is pending, not
    /// what the corpus holds. [`Announced::record_seen`] and
    /// [`Announced::record_notified`] keep it so.
    pub seen: HashMap<UpdateKey, Seen>,
    /// Updates already announced, skipped as too old, or recorded as the
    /// baseline on first start.
    pub notified: Notified,
}

/// A set of updates, held as each incident's sorted instants: 1.5 MB for
/// 100,000 updates where a set of `(incident, instant)` keys took 4.3 MB
/// of the daemon's memory for good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notified(HashMap<IncidentId, Vec<DateTime<Utc>>>);

impl Notified {
    pub fn contains(&self, (id, instant): &UpdateKey) -> bool {
        self.0
            .get(id)
            .is_some_and(|instants| instants.binary_search(instant).is_ok())
    }

    /// Adds `key`; `false` if it was there already.
    pub fn insert(&mut self, (id, instant): UpdateKey) -> bool {
        let instants = self.0.entry(id).or_default();
        match instants.binary_search(&instant) {
            Ok(_) => false,
            Err(at) => {
                instants.insert(at, instant);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<UpdateKey> for Notified {
    fn from_iter<I: IntoIterator<Item = UpdateKey>>(keys: I) -> Notified {
        let mut map: HashMap<IncidentId, Vec<DateTime<Utc>>> = HashMap::new();
        for (id, instant) in keys {
            map.entry(id).or_default().push(instant);
        }
        for instants in map.values_mut() {
            instants.sort_unstable();
            instants.dedup();
            instants.shrink_to_fit();
        }
        Notified(map)
    }
}

impl Announced {
    /// Adds first-seen and edit times, keeping those still to notify.
    pub fn record_seen(&mut self, seen: impl IntoIterator<Item = (UpdateKey, Seen)>) {
        let notified = &self.notified;
        self.seen
            .extend(seen.into_iter().filter(|(key, _)| !notified.contains(key)));
    }

    /// Marks updates notified; they are never considered again.
    pub fn record_notified(&mut self, keys: impl IntoIterator<Item = UpdateKey>) {
        for key in keys {
            self.seen.remove(&key);
            self.notified.insert(key);
        }
    }
}

/// The edit times among `seen`, as the renderers want them: an edited
/// update's feed entry shows when it was edited.
pub fn edit_times<'a>(seen: impl IntoIterator<Item = (&'a UpdateKey, &'a Seen)>) -> Revisions {
    seen.into_iter()
        .filter_map(|(key, seen)| Some((key.clone(), seen.edited?)))
        .collect()
}

/// The `[email]` timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub grace: Duration,
    pub max_age: Duration,
}

/// The content of one email-worthy update, stored once however many
/// subscribers get it; each email is composed from it at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub incident: IncidentId,
    pub instant: DateTime<Utc>,
    pub title: String,
    pub kind: Kind,
    pub status: Status,
    pub body_markdown: String,
    /// The body as HTML, raw HTML in the source already escaped by `parse`.
    pub body_html: String,
    /// Every component the incident affects as of this update (those that
    /// joined later are left out of earlier updates), in the incident's
    /// order, with the status the incident holds it at.
    pub components: Vec<(String, ComponentStatus)>,
    /// The title and the text in further languages, where the incident
    /// gives either (`title.en`, a `### en` section).
    pub translations: Vec<Translated>,
    /// What the subject shows besides the title: the status when it
    /// changed, otherwise the text's first words (and the time when they
    /// repeat the update before).
    pub headline: Headline,
    /// One of the changes (the first update, a change of the incident's
    /// or a component's status, the resolution): what subscribers who
    /// asked for fewer emails get.
    pub change: bool,
    /// The components whose status this update changed, each with the
    /// status it had before: at the incident's update before this one, or
    /// operational for a component that joins the incident here. A
    /// webhook following one of them also gets Statuspage's
    /// `component_update` for it. Empty for a maintenance notice.
    pub changed: Vec<(String, ComponentStatus)>,
    /// Set when herald says this by itself about a maintenance window
    /// ([`crate::maintenance`]); the body is then empty, and each channel
    /// words the notice in the reader's language.
    pub notice: Option<Notice>,
}

/// An announcement's title and text in a further language, each when the
/// incident gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub language: Language,
    pub title: Option<String>,
    /// The update's Markdown and HTML.
    pub body: Option<(String, String)>,
}

/// What an email in one language says: the title and text in that
/// language where the incident has them, the site's otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Said<'a> {
    pub title: &'a str,
    pub body_markdown: &'a str,
    pub body_html: &'a str,
    /// The text is the site's, for want of a translation.
    pub untranslated: bool,
}

/// The components whose status a window's edge at `instant` changes,
/// each with the status it had just before: its start brings
/// `maintenance`, its end takes it away. A reminder or a move changes none.
fn window_changes(
    incident: &Incident,
    kind: NoticeKind,
    instant: DateTime<Utc>,
) -> Vec<(String, ComponentStatus)> {
    if !matches!(kind, NoticeKind::Started | NoticeKind::Completed) {
        return Vec::new();
    }
    incident.status_changes(Some(instant - chrono::TimeDelta::milliseconds(1)), instant)
}

impl Announcement {
    pub fn new(incident: &Incident, update: &Update) -> Announcement {
        Announcement {
            incident: incident.id.clone(),
            instant: update.instant,
            title: incident.title.clone(),
            kind: incident.kind,
            status: update.status,
            body_markdown: update.body_markdown.to_string(),
            body_html: render_markdown(&update.body_markdown),
            components: incident
                .affected_at(update.instant)
                .map(|id| (id.clone(), incident.component_status_at(id, update.instant)))
                .collect(),
            translations: translations(incident, update),
            headline: incident.headline(update),
            change: incident.is_change(update),
            changed: incident.component_changes(update),
            notice: None,
        }
    }

    /// A maintenance notice about `incident` at `instant`.
    pub fn of_notice(incident: &Incident, instant: DateTime<Utc>, notice: Notice) -> Announcement {
        let status = match notice.kind {
            NoticeKind::Reminder { .. } | NoticeKind::Rescheduled => Status::Scheduled,
            NoticeKind::Started => Status::InProgress,
            NoticeKind::Completed => Status::Completed,
        };
        Announcement {
            incident: incident.id.clone(),
            instant,
            title: incident.title.clone(),
            kind: incident.kind,
            status,
            body_markdown: String::new(),
            body_html: String::new(),
            components: incident
                .affected_at(instant)
                .map(|id| (id.clone(), incident.component_status_at(id, instant)))
                .collect(),
            translations: titles(incident),
            headline: Headline::Status,
            // A window's reminder, start and end are what a subscriber
            // who asked for changes only wants to know.
            change: true,
            changed: window_changes(incident, notice.kind, instant),
            notice: Some(notice),
        }
    }

    /// What an email in `language` says; `site` is the site's language.
    pub fn said(&self, language: Language, site: Language) -> Said<'_> {
        let own = Said {
            title: &self.title,
            body_markdown: &self.body_markdown,
            body_html: &self.body_html,
            untranslated: false,
        };
        if language == site {
            return own;
        }
        let translated = self.translations.iter().find(|t| t.language == language);
        let title = translated
            .and_then(|t| t.title.as_deref())
            .unwrap_or(&self.title);
        match translated.and_then(|t| t.body.as_ref()) {
            Some((markdown, html)) => Said {
                title,
                body_markdown: markdown,
                body_html: html,
                untranslated: false,
            },
            None => Said {
                title,
                untranslated: true,
                ..own
            },
        }
    }

    /// The subject's words after the title, in `language` (`site` is the
    /// site's language), with times in `timezone`.
    pub fn subject_line(
        &self,
        language: Language,
        site: Language,
        timezone: chrono_tz::Tz,
    ) -> String {
        let said = self.said(language, site);
        let of = i18n::HeadlineOf {
            title: said.title,
            status: self.status,
            kind: self.headline,
            body_markdown: said.body_markdown,
            instant: self.instant,
        };
        i18n::headline(language, &of, timezone)
    }

    pub fn key(&self) -> UpdateKey {
        (self.incident.clone(), self.instant)
    }

    pub fn component_ids(&self) -> impl Iterator<Item = &str> {
        self.components.iter().map(|(id, _)| id.as_str())
    }
}

/// The title of `incident` in each further language it gives one in, for
/// a notice, whose text herald words in each reader's language.
fn titles(incident: &Incident) -> Vec<Translated> {
    incident
        .titles
        .iter()
        .map(|(language, title)| Translated {
            language: *language,
            title: Some(title.clone()),
            body: None,
        })
        .collect()
}

/// The languages in which `incident` gives a title or `update` a text.
fn translations(incident: &Incident, update: &Update) -> Vec<Translated> {
    let mut languages: Vec<Language> = incident
        .titles
        .iter()
        .map(|(language, _)| *language)
        .chain(update.translations.iter().map(|t| t.language))
        .collect();
    languages.sort();
    languages.dedup();
    languages
        .into_iter()
        .map(|language| Translated {
            language,
            title: incident
                .titles
                .iter()
                .find(|(titled, _)| *titled == language)
                .map(|(_, title)| title.clone()),
            body: update
                .translations
                .iter()
                .find(|t| t.language == language)
                .map(|t| (t.body_markdown.clone(), render_markdown(&t.body_markdown))),
        })
        .collect()
}

/// What to do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Updates to email now, oldest first.
    pub due: Vec<Announcement>,
    /// Updates that were already older than `max_age` when first seen:
    /// recorded as notified so they are never considered again.
    pub too_old: Vec<UpdateKey>,
    /// Quiet updates (`notify: no`) at the end of their grace period:
    /// recorded as notified, emailed to nobody.
    pub quiet: Vec<UpdateKey>,
    /// The earliest instant an update still in its grace period becomes
    /// due, if any: the daemon sleeps until then.
    pub next: Option<DateTime<Utc>>,
    /// The updates still in their grace period, each with the instant it
    /// becomes due, soonest first (`herald outbox` lists them).
    pub waiting: Vec<(UpdateKey, DateTime<Utc>)>,
}

/// Decides which updates of the published incidents are due at `now`.
/// Updates with no recorded first-seen time wait until they have one.
pub fn decide(
    corpus: &Corpus,
    announced: &Announced,
    now: DateTime<Utc>,
    policy: Policy,
) -> Decision {
    let grace = chrono::Duration::from_std(policy.grace).unwrap_or(chrono::Duration::MAX);
    let max_age = chrono::Duration::from_std(policy.max_age).unwrap_or(chrono::Duration::MAX);
    let mut decision = Decision::default();
    for (key, seen) in &announced.seen {
        if announced.notified.contains(key) {
            continue;
        }
        // Gone, drafted, or moved to another instant: nothing to send.
        let Some(incident) = corpus.published_get(&key.0) else {
            continue;
        };
        let Some(update) = incident.updates.iter().find(|u| u.instant == key.1) else {
            continue;
        };
        let age = seen.first_seen.signed_duration_since(update.instant);
        if age > max_age {
            decision.too_old.push(key.clone());
            continue;
        }
        let due_at = seen
            .last_change()
            .checked_add_signed(grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if due_at <= now && !update.notify {
            decision.quiet.push(key.clone());
        } else if due_at <= now {
            decision.due.push(Announcement::new(incident, update));
        } else {
            decision.next = Some(decision.next.map_or(due_at, |next| next.min(due_at)));
            decision.waiting.push((key.clone(), due_at));
        }
    }
    decision
        .due
        .sort_by(|a, b| (a.instant, &a.incident).cmp(&(b.instant, &b.incident)));
    decision.too_old.sort();
    decision.quiet.sort();
    decision
        .waiting
        .sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    decision
}

/// Every update of the published incidents: what first start records as
/// already notified.
pub fn baseline(corpus: &Corpus) -> Vec<UpdateKey> {
    corpus
        .published()
        .flat_map(|incident| {
            incident
                .updates
                .iter()
                .map(|update| (incident.id.clone(), update.instant))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;
    use crate::parse::{Context, parse_incident};
    use chrono::TimeZone;
    use std::path::Path;

    fn corpus(files: &[(&str, &str)]) -> Corpus {
        let components: Vec<Component> = ["mail", "web"]
            .iter()
            .map(|id| Component {
                id: (*id).into(),
                name: id.to_uppercase(),
                group: None,
                names: Vec::new(),
                group_names: Vec::new(),
            })
            .collect();
        let context = Context {
            timezone: chrono_tz::UTC,
            components: &components,
            languages: &crate::model::Languages::one(crate::model::Language::En),
        };
        Corpus::from_incidents(files.iter().map(|(name, text)| {
            let (incident, diagnostics) =
                parse_incident(Path::new(&format!("{name}.md")), text, &context);
            incident.unwrap_or_else(|| panic!("{diagnostics:?}"))
        }))
    }

    fn utc(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, hour, minute, second)
            .unwrap()
    }

    const POLICY: Policy = Policy {
        grace: Duration::from_secs(60),
        max_age: Duration::from_secs(24 * 3600),
    };

    const OUTAGE: &str = "+++\ntitle = \"Mail down\"\ncomponents = [\"mail\", \"web\"]\nseverity = \"major\"\n+++\n## 2026-11-24 10:00 investigating\ncomponents: web=degraded\nLooking.\n\n## 2026-11-24 10:30 identified\nFound it.\n";

    fn key(id: &str, hour: u32, minute: u32) -> UpdateKey {
        (IncidentId::new(id).unwrap(), utc(hour, minute, 0))
    }

    #[test]
    fn a_windows_start_and_end_change_its_components_and_a_reminder_none() {
        let corpus = corpus(&[(
            "work",
            "+++\ntitle = \"Work\"\ncomponents = [\"mail\"]\nkind = \"maintenance\"\nstarts = \"2026-11-24 12:00Z\"\nends = \"2026-11-24 13:00Z\"\n+++\n## 2026-11-24 10:00Z scheduled\nPlanned.\n",
        )]);
        let incident = corpus.get(&IncidentId::new("work").unwrap()).unwrap();
        let window = incident.window.unwrap();
        let notice = |kind| Notice {
            kind,
            window,
            previous: None,
        };
        let started = Announcement::of_notice(incident, window.starts, notice(NoticeKind::Started));
        assert_eq!(
            started.changed,
            [("mail".to_owned(), ComponentStatus::Operational)]
        );
        assert_eq!(
            started.components,
            [("mail".to_owned(), ComponentStatus::Maintenance)]
        );
        let completed =
            Announcement::of_notice(incident, window.ends, notice(NoticeKind::Completed));
        assert_eq!(
            completed.changed,
            [("mail".to_owned(), ComponentStatus::Maintenance)]
        );
        assert_eq!(
            completed.components,
            [("mail".to_owned(), ComponentStatus::Operational)]
        );
        let reminder = Announcement::of_notice(
            incident,
            window.starts - chrono::TimeDelta::hours(1),
            notice(NoticeKind::Reminder {
                lead: Duration::from_secs(3600),
            }),
        );
        assert!(reminder.changed.is_empty(), "{:?}", reminder.changed);
    }

    #[test]
    fn notified_is_a_set_of_update_keys() {
        let mut notified: Notified = [
            key("a", 10, 0),
            key("b", 9, 0),
            key("a", 8, 0),
            key("a", 10, 0),
        ]
        .into_iter()
        .collect();
        assert_eq!(notified.len(), 3);
        assert!(notified.contains(&key("a", 8, 0)));
        assert!(notified.contains(&key("a", 10, 0)));
        assert!(!notified.contains(&key("a", 9, 0)));
        assert!(!notified.contains(&key("c", 10, 0)));
        assert!(notified.insert(key("a", 9, 0)));
        assert!(!notified.insert(key("a", 9, 0)));
        assert!(notified.contains(&key("a", 9, 0)));
        assert_eq!(notified.len(), 4);
        let same: Notified = [
            key("a", 9, 0),
            key("b", 9, 0),
            key("a", 10, 0),
            key("a", 8, 0),
        ]
        .into_iter()
        .collect();
        assert_eq!(notified, same);
        assert!(Notified::default().is_empty());
    }

    fn seen(first_seen: DateTime<Utc>, edited: Option<DateTime<Utc>>) -> Seen {
        Seen { first_seen, edited }
    }

    /// `(due keys, too-old keys, next)` at `now`.
    fn check(
        corpus: &Corpus,
        announced: &Announced,
        now: DateTime<Utc>,
        due: &[UpdateKey],
        too_old: &[UpdateKey],
        next: Option<DateTime<Utc>>,
    ) {
        let decision = decide(corpus, announced, now, POLICY);
        let keys: Vec<UpdateKey> = decision.due.iter().map(Announcement::key).collect();
        assert_eq!(keys, due, "due");
        assert_eq!(decision.too_old, too_old, "too old");
        assert_eq!(decision.next, next, "next");
    }

    #[test]
    fn an_update_is_due_once_unchanged_for_grace() {
        let corpus = corpus(&[("outage", OUTAGE)]);
        let mut announced = Announced::default();
        announced
            .seen
            .insert(key("outage", 10, 0), seen(utc(10, 0, 5), None));
        // Within grace: not yet, wake up when it ends.
        check(
            &corpus,
            &announced,
            utc(10, 0, 30),
            &[],
            &[],
            Some(utc(10, 1, 5)),
        );
        check(
            &corpus,
            &announced,
            utc(10, 1, 5),
            &[key("outage", 10, 0)],
            &[],
            None,
        );
        // An edit restarts the grace period.
        announced.seen.insert(
            key("outage", 10, 0),
            seen(utc(10, 0, 5), Some(utc(10, 0, 50))),
        );
        check(
            &corpus,
            &announced,
            utc(10, 1, 5),
            &[],
            &[],
            Some(utc(10, 1, 50)),
        );
        // Once notified, never again, edited or not.
        announced.notified.insert(key("outage", 10, 0));
        check(&corpus, &announced, utc(12, 0, 0), &[], &[], None);
    }

    #[test]
    fn unseen_updates_wait_and_old_ones_are_skipped() {
        let corpus = corpus(&[("outage", OUTAGE)]);
        let mut announced = Announced::default();
        // 10:30 has no first-seen time yet; 10:00 was first seen a day and
        // a second after it happened.
        announced.seen.insert(
            key("outage", 10, 0),
            seen(utc(10, 0, 1) + chrono::Duration::days(1), None),
        );
        check(
            &corpus,
            &announced,
            utc(10, 0, 0) + chrono::Duration::days(2),
            &[],
            &[key("outage", 10, 0)],
            None,
        );
        // Exactly max_age old is still announced.
        announced.seen.insert(
            key("outage", 10, 0),
            seen(utc(10, 0, 0) + chrono::Duration::days(1), None),
        );
        check(
            &corpus,
            &announced,
            utc(10, 0, 0) + chrono::Duration::days(2),
            &[key("outage", 10, 0)],
            &[],
            None,
        );
    }

    #[test]
    fn drafts_send_nothing() {
        let draft = OUTAGE.replace("severity", "draft = true\nseverity");
        let corpus = corpus(&[("outage", &draft)]);
        let mut announced = Announced::default();
        announced
            .seen
            .insert(key("outage", 10, 0), seen(utc(10, 0, 0), None));
        check(&corpus, &announced, utc(12, 0, 0), &[], &[], None);
        assert_eq!(baseline(&corpus), Vec::<UpdateKey>::new());
    }

    #[test]
    fn only_pending_updates_are_kept_and_gone_ones_send_nothing() {
        let corpus = corpus(&[("outage", OUTAGE)]);
        let mut announced = Announced::default();
        announced.record_notified([key("outage", 10, 0)]);
        announced.record_seen([
            (key("outage", 10, 0), seen(utc(10, 0, 0), None)),
            (key("outage", 10, 30), seen(utc(10, 30, 0), None)),
            // An incident deleted since, and an instant no longer in the file.
            (key("gone", 10, 0), seen(utc(10, 0, 0), None)),
            (key("outage", 10, 15), seen(utc(10, 15, 0), None)),
        ]);
        let mut pending: Vec<&UpdateKey> = announced.seen.keys().collect();
        pending.sort();
        assert_eq!(
            pending,
            [
                &key("gone", 10, 0),
                &key("outage", 10, 15),
                &key("outage", 10, 30)
            ]
        );
        check(
            &corpus,
            &announced,
            utc(11, 0, 0),
            &[key("outage", 10, 30)],
            &[],
            None,
        );
        announced.record_notified([key("outage", 10, 30)]);
        assert!(!announced.seen.contains_key(&key("outage", 10, 30)));
        check(&corpus, &announced, utc(11, 0, 0), &[], &[], None);
    }

    #[test]
    fn announcement_carries_the_statuses_as_of_its_update() {
        let corpus = corpus(&[("outage", OUTAGE)]);
        let mut announced = Announced::default();
        for minute in [0, 30] {
            announced
                .seen
                .insert(key("outage", 10, minute), seen(utc(10, minute, 0), None));
        }
        let decision = decide(&corpus, &announced, utc(11, 0, 0), POLICY);
        assert_eq!(
            decision.due,
            vec![
                Announcement {
                    incident: IncidentId::new("outage").unwrap(),
                    instant: utc(10, 0, 0),
                    title: "Mail down".into(),
                    kind: Kind::Incident,
                    status: Status::Investigating,
                    body_markdown: "Looking.".into(),
                    body_html: "<p>Looking.</p>\n".into(),
                    components: vec![
                        ("mail".into(), ComponentStatus::PartialOutage),
                        ("web".into(), ComponentStatus::Degraded),
                    ],
                    translations: vec![],
                    headline: Headline::Status,
                    change: true,
                    changed: vec![
                        ("mail".into(), ComponentStatus::Operational),
                        ("web".into(), ComponentStatus::Operational),
                    ],
                    notice: None,
                },
                Announcement {
                    incident: IncidentId::new("outage").unwrap(),
                    instant: utc(10, 30, 0),
                    title: "Mail down".into(),
                    kind: Kind::Incident,
                    status: Status::Identified,
                    body_markdown: "Found it.".into(),
                    body_html: "<p>Found it.</p>\n".into(),
                    components: vec![
                        ("mail".into(), ComponentStatus::PartialOutage),
                        ("web".into(), ComponentStatus::Degraded),
                    ],
                    translations: vec![],
                    headline: Headline::Status,
                    change: true,
                    changed: Vec::new(),
                    notice: None,
                },
            ]
        );
        assert_eq!(
            baseline(&corpus),
            vec![key("outage", 10, 0), key("outage", 10, 30)]
        );
    }

    #[test]
    fn quiet_updates_are_recorded_not_sent_and_joined_components_count_from_their_update() {
        let text = "+++\ntitle = \"Mail down\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n## 2026-11-24 10:00 investigating\nLooking.\n\n## 2026-11-24 10:30\nnotify: no\nStill looking.\n\n## 2026-11-24 10:40\ncomponents: web=degraded\nWeb too.\n\n## 2026-11-24 10:50\nWorking on it.\n";
        let corpus = corpus(&[("outage", text)]);
        let mut announced = Announced::default();
        for minute in [0, 30, 40, 50] {
            announced
                .seen
                .insert(key("outage", 10, minute), seen(utc(10, minute, 0), None));
        }
        // Within its grace period, a quiet update is neither due nor quiet yet.
        let early = decide(&corpus, &announced, utc(10, 30, 30), POLICY);
        assert_eq!(early.quiet, Vec::<UpdateKey>::new());
        assert_eq!(early.next, Some(utc(10, 31, 0)));
        assert_eq!(
            early.waiting,
            [
                (key("outage", 10, 30), utc(10, 31, 0)),
                (key("outage", 10, 40), utc(10, 41, 0)),
                (key("outage", 10, 50), utc(10, 51, 0)),
            ]
        );
        let decision = decide(&corpus, &announced, utc(11, 0, 0), POLICY);
        assert_eq!(decision.quiet, [key("outage", 10, 30)]);
        let due: Vec<(UpdateKey, Vec<&str>, Headline, bool)> = decision
            .due
            .iter()
            .map(|a| (a.key(), a.component_ids().collect(), a.headline, a.change))
            .collect();
        assert_eq!(
            due,
            [
                (key("outage", 10, 0), vec!["mail"], Headline::Status, true),
                (
                    key("outage", 10, 40),
                    vec!["mail", "web"],
                    Headline::Words,
                    true
                ),
                (
                    key("outage", 10, 50),
                    vec!["mail", "web"],
                    Headline::Words,
                    false
                ),
            ]
        );
    }
}

#[cfg(test)]
mod edit_time_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn only_edited_updates_have_edit_times() {
        let at = |hour| Utc.with_ymd_and_hms(2019, 4, 4, hour, 0, 0).unwrap();
        let id = IncidentId::new("x").unwrap();
        let seen = HashMap::from([
            (
                (id.clone(), at(8)),
                Seen {
                    first_seen: at(9),
                    edited: None,
                },
            ),
            (
                (id.clone(), at(10)),
                Seen {
                    first_seen: at(10),
                    edited: Some(at(12)),
                },
            ),
        ]);
        assert_eq!(edit_times(&seen), Revisions::from([((id, at(10)), at(12))]));
    }
}
