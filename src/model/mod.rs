//! Domain types of a status site: incidents, their updates and the component
//! statuses they imply. Pure: no I/O, no clock, no serde.
//!
//! An update's identity is `(IncidentId, instant)`; everything downstream
//! (feed entry ids, email dedup) keys on that pair, never on text.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use thin_vec::ThinVec;

mod language;
mod notice;

pub use language::{Language, Languages};
pub use notice::{Notice, NoticeKind};

/// The file stem of an incident file, checked against `[a-z0-9][a-z0-9._-]{0,99}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncidentId(Arc<str>);

/// Whether `text` matches `[a-z0-9][a-z0-9._-]{0,99}`, the grammar of
/// incident and component ids (both become file names in the output).
pub fn is_slug(text: &str) -> bool {
    let bytes = text.as_bytes();
    let first_ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .skip(1)
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    first_ok && rest_ok && bytes.len() <= 100
}

impl IncidentId {
    /// Checks `text` against the id grammar; `None` if it does not match.
    pub fn new(text: &str) -> Option<IncidentId> {
        is_slug(text).then(|| IncidentId(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The years (in UTC) of every instant an incident may hold. Feeds and
/// calendars write four-digit years (RFC 2822, RFC 3339, RFC 5545), and a
/// local time up to a day away from UTC must keep four digits too; before
/// 1970 there was no service to report on.
pub const PUBLISHABLE_YEARS: std::ops::RangeInclusive<i32> = 1970..=9998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Incident,
    Maintenance,
}

impl Kind {
    /// `incident` or `maintenance`, as the front matter writes it.
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "incident" => Some(Kind::Incident),
            "maintenance" => Some(Kind::Maintenance),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Maintenance => "maintenance",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "minor" => Some(Severity::Minor),
            "major" => Some(Severity::Major),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    /// The component status an unresolved incident of this severity implies.
    pub fn implied_status(self) -> ComponentStatus {
        match self {
            Severity::Minor => ComponentStatus::Degraded,
            Severity::Major => ComponentStatus::PartialOutage,
            Severity::Critical => ComponentStatus::MajorOutage,
        }
    }
}

/// The status an update heading declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Investigating,
    Identified,
    Monitoring,
    Update,
    Resolved,
    Scheduled,
    InProgress,
    Completed,
    /// A maintenance called off: it closes it, and its window never opens
    /// (or stops at once).
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 9] = [
        Status::Investigating,
        Status::Identified,
        Status::Monitoring,
        Status::Update,
        Status::Resolved,
        Status::Scheduled,
        Status::InProgress,
        Status::Completed,
        Status::Cancelled,
    ];

    /// Case-insensitive parse of a heading's status word.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Investigating => "investigating",
            Status::Identified => "identified",
            Status::Monitoring => "monitoring",
            Status::Update => "update",
            Status::Resolved => "resolved",
            Status::Scheduled => "scheduled",
            Status::InProgress => "in-progress",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Statuses only a maintenance may use.
    pub fn is_maintenance_only(self) -> bool {
        matches!(
            self,
            Status::Scheduled | Status::InProgress | Status::Completed | Status::Cancelled
        )
    }

    /// `resolved`, `completed` and `cancelled` close an incident and return
    /// its components to operational.
    pub fn is_closing(self) -> bool {
        matches!(
            self,
            Status::Resolved | Status::Completed | Status::Cancelled
        )
    }
}

/// A component's health. The order is from best to worst, so `max` picks the
/// status a day or a page banner should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentStatus {
    Operational,
    Maintenance,
    Degraded,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    pub const ALL: [ComponentStatus; 5] = [
        ComponentStatus::Operational,
        ComponentStatus::Maintenance,
        ComponentStatus::Degraded,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ];

    pub fn parse(text: &str) -> Option<ComponentStatus> {
        ComponentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::Degraded => "degraded",
            ComponentStatus::PartialOutage => "partial-outage",
            ComponentStatus::MajorOutage => "major-outage",
            ComponentStatus::Maintenance => "maintenance",
        }
    }
}

/// What the title of an update's feed entry and email shows besides the
/// incident's title, so that consecutive updates differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headline {
    /// The status: the first update, or one whose status changed.
    Status,
    /// The first words of the text.
    Words,
    /// The first words and the time, when they repeat the update before.
    WordsAndTime,
}

impl Headline {
    pub fn as_str(self) -> &'static str {
        match self {
            Headline::Status => "status",
            Headline::Words => "words",
            Headline::WordsAndTime => "words-and-time",
        }
    }

    pub fn parse(text: &str) -> Option<Headline> {
        [Headline::Status, Headline::Words, Headline::WordsAndTime]
            .into_iter()
            .find(|headline| headline.as_str() == text)
    }
}

/// How many words of an update's text a headline shows.
pub const HEADLINE_WORDS: usize = 8;

/// The first [`HEADLINE_WORDS`] words of `markdown` as a reader sees them
/// (emphasis, heading and quote marks and list dashes left out), and
/// whether more follow.
pub fn headline_words(markdown: &str) -> (String, bool) {
    let mut words = words_shown(markdown);
    let shown: Vec<&str> = words.by_ref().take(HEADLINE_WORDS).collect();
    (shown.join(" "), words.next().is_some())
}

/// The words of `markdown` as [`headline_words`] shows them, lazily: a
/// long text is never split whole (feeds ask for every entry's headline).
fn words_shown(markdown: &str) -> impl Iterator<Item = &str> {
    markdown
        .split_whitespace()
        .map(|word| {
            word.trim_start_matches(['#', '>'])
                .trim_matches(|c: char| matches!(c, '*' | '_' | '`'))
        })
        .filter(|word| !word.is_empty() && *word != "-")
}

/// A component as the configuration defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    /// The name in the site's language.
    pub name: String,
    /// The name in further languages (`name.en = "…"`).
    pub names: Vec<(Language, String)>,
    /// The group's name in the site's language: components with the same
    /// one are shown together.
    pub group: Option<String>,
    /// The group's name in further languages (`group.en = "…"`).
    pub group_names: Vec<(Language, String)>,
}

impl Component {
    /// The name in `language`, or in the site's language.
    pub fn name_in(&self, language: Language) -> &str {
        in_language(&self.name, &self.names, language)
    }

    /// The group's name in `language`, or in the site's language.
    pub fn group_in(&self, language: Language) -> Option<&str> {
        let group = self.group.as_deref()?;
        Some(in_language(group, &self.group_names, language))
    }
}

/// The text of `translations` in `language`, or `own` where it has none.
pub fn in_language<'a>(
    own: &'a str,
    translations: &'a [(Language, String)],
    language: Language,
) -> &'a str {
    translations
        .iter()
        .find(|(translated, _)| *translated == language)
        .map_or(own, |(_, text)| text.as_str())
}

/// What a subscriber follows, or a subscription asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follows {
    /// Every component, including ones added to the configuration later.
    All,
    /// These component ids, sorted and distinct.
    Components(Vec<String>),
    /// One incident only, until it is resolved: what a request or
    /// `herald subscribers add --incident` asks for. It adds to what the
    /// address follows already; no component counts as followed.
    Incident(IncidentId),
}

impl Follows {
    pub fn follows(&self, component: &str) -> bool {
        match self {
            Follows::All => true,
            Follows::Components(ids) => ids.iter().any(|id| id == component),
            Follows::Incident(_) => false,
        }
    }
}

/// How a subscriber is reached: what their address is, and which
/// transport delivers to it. Stored as [`Channel::code`] beside the
/// address; a new transport is one more variant here and one more arm in
/// the drain (`crate::mailer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// An email address, over SMTP (or `.eml` files).
    Email,
    /// An `https://` URL that herald POSTs to, in this format.
    Webhook(Format),
    /// A Matrix room, by its id, that herald's account (`[matrix]`)
    /// posts to.
    Matrix,
}

/// What a webhook's body is: Statuspage-shaped JSON, or a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Slack,
    Discord,
    Teams,
    Mattermost,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Slack,
        Format::Discord,
        Format::Teams,
        Format::Mattermost,
    ];

    pub fn parse(text: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.code() == text)
    }

    pub fn code(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Teams => "teams",
            Format::Mattermost => "mattermost",
        }
    }

    /// A chat's incoming webhook: a 404 or 410 means it was revoked.
    pub fn is_chat(self) -> bool {
        self != Format::Json
    }
}

impl Channel {
    /// As stored: `email`, `webhook` (JSON), the chat format's name, or
    /// `matrix`.
    pub fn code(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Matrix => "matrix",
            Channel::Webhook(Format::Json) => "webhook",
            Channel::Webhook(format) => format.code(),
        }
    }

    pub fn parse(code: &str) -> Option<Channel> {
        match code {
            "email" => Some(Channel::Email),
            "matrix" => Some(Channel::Matrix),
            "webhook" => Some(Channel::Webhook(Format::Json)),
            other => Format::parse(other)
                .filter(|format| format.is_chat())
                .map(Channel::Webhook),
        }
    }
}

/// Someone who gets email, or a webhook that gets posts, about what
/// they follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The state database's row id; part of each email's Message-ID.
    pub id: i64,
    /// An email address, or a webhook's URL ([`Subscriber::channel`]).
    pub address: String,
    pub channel: Channel,
    pub follows: Follows,
    pub language: Language,
    /// The unguessable secret in this subscriber's unsubscribe link.
    pub token: String,
    /// A webhook's signing secret, derived from its URL and the token
    /// key (never stored).
    pub signing: Option<String>,
}

/// A subscription asked for over HTTP and not yet confirmed: what its
/// confirmation email needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The state database's row id; part of the email's Message-ID.
    pub id: i64,
    pub address: String,
    pub channel: Channel,
    pub follows: Follows,
    pub language: Language,
    /// The unguessable secret in the confirmation link.
    pub token: String,
    /// A webhook's signing secret, told to it in the confirmation post.
    pub signing: Option<String>,
    /// When the link stops working.
    pub expires: DateTime<Utc>,
}

/// One `## DATE TIME [STATUS]` section of an incident file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub instant: DateTime<Utc>,
    /// The status written in the heading; `None` when omitted.
    pub declared: Option<Status>,
    /// `declared`, or the status of the previous update when omitted; the
    /// first update without a status counts as `investigating`
    /// (`scheduled` for a maintenance).
    pub status: Status,
    /// The `components:` line, if the update has one, in the order written.
    /// (A `ThinVec`, like `translations`: one pointer, its length beside
    /// its items, 16 bytes less than a `Vec` in each of a million updates,
    /// most of which have neither.)
    pub component_statuses: ThinVec<(String, ComponentStatus)>,
    /// `false` for a quiet update (`notify: no`): published everywhere,
    /// notified to nobody.
    pub notify: bool,
    /// Markdown source of the body in the site's language, without the
    /// `components:` and `notify:` lines and without the translations. Its
    /// HTML is made where it is shown (`parse::render_markdown`): a corpus
    /// of 100,000 updates holds only their Markdown.
    pub body_markdown: Box<str>,
    /// The text of each `### LANG` section, in the order written.
    pub translations: ThinVec<Translation>,
    /// 1-based line of the heading, for diagnostics and editors.
    pub line: u32,
}

// A site of 100,000 incidents holds a million updates: each byte here is a
// megabyte of a build's peak.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Update>() == 56);

/// An update's text in a further language: its `### LANG` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub language: Language,
    pub body_markdown: String,
}

impl Update {
    /// The Markdown of the text in `language`, if the update has one: its
    /// own text for the site's language, a `### LANG` section for another.
    pub fn text_in(&self, language: Language, site: Language) -> Option<&str> {
        if language == site {
            return Some(&self.body_markdown);
        }
        self.translations
            .iter()
            .find(|translation| translation.language == language)
            .map(|translation| translation.body_markdown.as_str())
    }
}

/// A validated incident or maintenance, as one file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: IncidentId,
    /// Path relative to the incidents directory, `/`-separated.
    pub path: PathBuf,
    /// The title in the site's language.
    pub title: String,
    /// The title in further languages (`title.en = "…"`), in the order
    /// written.
    pub titles: Vec<(Language, String)>,
    /// Every component the incident affects at some time: the front
    /// matter's, then those that joined later, in the order they joined.
    pub components: Vec<String>,
    /// The components not in the front matter, each with the instant of
    /// the first update whose `components:` line names it: affected from
    /// then on, never before.
    pub joins: Joins,
    pub severity: Severity,
    pub kind: Kind,
    pub draft: bool,
    /// Maintenance window; both set exactly when `kind` is maintenance.
    pub window: Option<Window>,
    /// The text before the first update, in the site's language.
    pub summary_markdown: String,
    /// Its `### LANG` sections.
    pub summary_translations: Vec<Translation>,
    /// Sorted by instant, oldest first, instants distinct.
    pub updates: Vec<Update>,
    /// [`Incident::timeline`], computed on first use. An incident is
    /// immutable and shared between rebuilds, so this is computed once per
    /// version of a file, not once per render.
    pub timeline_cache: TimelineCache,
}

/// Components that joined an incident after its first update, each with
/// the instant of the update that named it first.
pub type Joins = Vec<(String, DateTime<Utc>)>;

/// Each affected component's segments, by component id, in id order.
///
/// A sorted vector rather than a `BTreeMap`: an incident affects one to a
/// few components, and a map's first node alone takes over 500 bytes,
/// which over 10,000 incidents was 5 MB of a build's peak.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline(Vec<(String, Vec<Segment>)>);

impl Timeline {
    /// The segments of `component`, if the incident affects it.
    pub fn get(&self, component: &str) -> Option<&Vec<Segment>> {
        self.0
            .binary_search_by(|(id, _)| id.as_str().cmp(component))
            .ok()
            .map(|at| &self.0[at].1)
    }

    /// Each component's segments, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Vec<Segment>> {
        self.0.iter().map(|(_, segments)| segments)
    }

    /// `(component id, segments)`, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<Segment>)> {
        self.0.iter().map(|(id, segments)| (id, segments))
    }

    /// Sets `component`'s segments, replacing any it had.
    fn insert(&mut self, component: String, segments: Vec<Segment>) {
        match self
            .0
            .binary_search_by(|(id, _)| id.as_str().cmp(&component))
        {
            Ok(at) => self.0[at].1 = segments,
            Err(at) => self.0.insert(at, (component, segments)),
        }
    }
}

impl<'a> IntoIterator for &'a Timeline {
    type Item = (&'a String, &'a Vec<Segment>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Vec<Segment>)>,
        fn(&'a (String, Vec<Segment>)) -> (&'a String, &'a Vec<Segment>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(id, segments)| (id, segments))
    }
}

/// A lazily filled [`Timeline`] that takes no part in equality: two
/// incidents are equal when their data is, whether or not either has
/// computed its timeline yet.
#[derive(Debug, Clone, Default)]
pub struct TimelineCache(OnceLock<Timeline>);

impl PartialEq for TimelineCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TimelineCache {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
}

/// A stretch of time during which an incident holds a component at a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: DateTime<Utc>,
    /// `None`: still holding.
    pub until: Option<DateTime<Utc>>,
    pub status: ComponentStatus,
}

impl Incident {
    /// Forgets the text of every update, in every language, and the
    /// timeline its page computed (computed again if asked for), and keeps
    /// all else: a full build does so once an incident's page and feed are
    /// rendered and no summary can show its texts. At 100,000 incidents
    /// the timelines alone held about 20 MB.
    pub fn drop_texts(&mut self) {
        for update in &mut self.updates {
            update.body_markdown = Box::default();
            update.translations = ThinVec::new();
        }
        self.timeline_cache = TimelineCache::default();
    }

    /// The title in `language`, or in the site's language when the front
    /// matter gives none in it.
    pub fn title_in(&self, language: Language) -> &str {
        in_language(&self.title, &self.titles, language)
    }

    /// The summary's Markdown in `language`, if it has a text in it.
    pub fn summary_in(&self, language: Language, site: Language) -> Option<&str> {
        if language == site {
            return Some(&self.summary_markdown);
        }
        self.summary_translations
            .iter()
            .find(|translation| translation.language == language)
            .map(|translation| translation.body_markdown.as_str())
    }

    pub fn first_update(&self) -> &Update {
        &self.updates[0]
    }

    pub fn latest_update(&self) -> &Update {
        self.updates
            .last()
            .expect("an incident has at least one update")
    }

    /// When the incident began: its first update, or the window start of a
    /// maintenance if that is earlier.
    pub fn began(&self) -> DateTime<Utc> {
        let first = self.first_update().instant;
        match self.window {
            Some(window) => first.min(window.starts),
            None => first,
        }
    }

    /// The instant the incident closed (`resolved`/`completed`), if its latest
    /// status closes it.
    pub fn closed_at(&self) -> Option<DateTime<Utc>> {
        let latest = self.latest_update();
        latest.status.is_closing().then_some(latest.instant)
    }

    /// Open: an incident whose latest status does not close it. A maintenance
    /// is never "open" in this sense; see [`Incident::maintenance_phase`].
    pub fn is_open(&self) -> bool {
        self.kind == Kind::Incident && self.closed_at().is_none()
    }

    /// Whether the maintenance was called off: its latest status is
    /// `cancelled`.
    pub fn is_cancelled(&self) -> bool {
        self.latest_update().status == Status::Cancelled
    }

    pub fn maintenance_phase(&self, now: DateTime<Utc>) -> Option<MaintenancePhase> {
        let window = self.window?;
        if self.closed_at().is_some_and(|closed| closed <= now) || now >= window.ends {
            Some(MaintenancePhase::Over)
        } else if now >= window.starts {
            Some(MaintenancePhase::Ongoing)
        } else {
            Some(MaintenancePhase::Upcoming)
        }
    }

    /// Whether the incident affects `component` at any time.
    pub fn affects(&self, component: &str) -> bool {
        self.components.iter().any(|c| c == component)
    }

    /// The front matter's components: those affected from the first
    /// update, without the ones that joined later.
    pub fn front_components(&self) -> Vec<String> {
        self.components
            .iter()
            .filter(|component| !self.joins.iter().any(|(joined, _)| joined == *component))
            .cloned()
            .collect()
    }

    /// From when the incident affects `component`: the beginning of time
    /// for a front matter component, the joining update's instant for one
    /// that joined later, `None` for one it never affects.
    pub fn joined_at(&self, component: &str) -> Option<DateTime<Utc>> {
        match self.joins.iter().find(|(id, _)| id == component) {
            Some((_, instant)) => Some(*instant),
            None => self.affects(component).then_some(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// The components the incident affects at `instant` (those that have
    /// joined by then), in the incident's order.
    pub fn affected_at(&self, instant: DateTime<Utc>) -> impl Iterator<Item = &String> {
        self.components.iter().filter(move |component| {
            self.joins
                .iter()
                .find(|(id, _)| id == *component)
                .is_none_or(|(_, joined)| *joined <= instant)
        })
    }

    /// Whether `update` is the first or declares a status other than the
    /// one before it: what its headline names.
    pub fn status_changed(&self, update: &Update) -> bool {
        let index = self
            .updates
            .iter()
            .position(|u| u.instant == update.instant);
        match index.and_then(|i| i.checked_sub(1)) {
            Some(previous) => self.updates[previous].status != update.status,
            None => true,
        }
    }

    /// What `update`'s headline shows: its status when it changed (or it
    /// is the first, or has no text), otherwise its first words, with its
    /// time when they are the words of the update before.
    pub fn headline(&self, update: &Update) -> Headline {
        let words = || words_shown(&update.body_markdown).take(HEADLINE_WORDS);
        if self.status_changed(update) || words().next().is_none() {
            return Headline::Status;
        }
        let index = self
            .updates
            .iter()
            .position(|u| u.instant == update.instant);
        let previous = index
            .and_then(|i| i.checked_sub(1))
            .map(|i| &self.updates[i]);
        // Words hold no space: the same words are the same headline.
        let same = |p: &Update| {
            words_shown(&p.body_markdown)
                .take(HEADLINE_WORDS)
                .eq(words())
        };
        if previous.is_some_and(same) {
            Headline::WordsAndTime
        } else {
            Headline::Words
        }
    }

    /// Whether `update` is one of the changes a subscriber who asked for
    /// fewer emails gets: the first update, a change of the incident's
    /// status (which includes the resolution) or of a component's status.
    pub fn is_change(&self, update: &Update) -> bool {
        let index = self
            .updates
            .iter()
            .position(|u| u.instant == update.instant);
        let Some(previous) = index
            .and_then(|i| i.checked_sub(1))
            .map(|i| &self.updates[i])
        else {
            return true;
        };
        previous.status != update.status || !self.component_changes(update).is_empty()
    }

    /// The components whose status `update` changed, in the incident's
    /// order, each with the status it had before: at the update before, or
    /// operational for a component that joins with `update` (or with the
    /// first update).
    pub fn component_changes(&self, update: &Update) -> Vec<(String, ComponentStatus)> {
        let index = self
            .updates
            .iter()
            .position(|u| u.instant == update.instant);
        let previous = index
            .and_then(|i| i.checked_sub(1))
            .map(|i| self.updates[i].instant);
        self.status_changes(previous, update.instant)
    }

    /// The components whose status differs at `at` from `previous` (or that
    /// were not affected then and are not operational now), each with the
    /// status it had before: operational when it was not affected yet.
    pub fn status_changes(
        &self,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Vec<(String, ComponentStatus)> {
        let affected_before: Vec<&String> = previous
            .map(|instant| self.affected_at(instant).collect())
            .unwrap_or_default();
        self.affected_at(at)
            .filter_map(|component| {
                let before = match previous {
                    Some(instant) if affected_before.contains(&component) => {
                        self.component_status_at(component, instant)
                    }
                    _ => ComponentStatus::Operational,
                };
                (before != self.component_status_at(component, at))
                    .then(|| (component.clone(), before))
            })
            .collect()
    }

    /// For each affected component, the stretches of time during which this
    /// incident held it at a non-operational status.
    ///
    /// Rules (SPEC §1): a `components:` line sets statuses from its update
    /// on; without one, an unresolved incident holds every component at the
    /// severity-implied status and a closing update returns them to
    /// operational. A maintenance holds its components at `maintenance`
    /// between `starts` and `ends` only, unless a `components:` line says
    /// otherwise.
    ///
    /// Computed on first use and kept with the incident.
    /// Whether the timeline is computed and held.
    #[cfg(test)]
    pub(crate) fn holds_timeline(&self) -> bool {
        self.timeline_cache.0.get().is_some()
    }

    pub fn timeline(&self) -> &Timeline {
        self.timeline_cache
            .0
            .get_or_init(|| self.compute_timeline())
    }

    fn compute_timeline(&self) -> Timeline {
        // Change points: (instant, component, status), in time order.
        let mut changes: Vec<(DateTime<Utc>, &str, ComponentStatus)> = Vec::new();
        match self.window {
            None => {
                let implied = self.severity.implied_status();
                let mut closed = true;
                for update in &self.updates {
                    let closing = update.status.is_closing();
                    if closing {
                        for component in self.affected_at(update.instant) {
                            changes.push((update.instant, component, ComponentStatus::Operational));
                        }
                    } else if closed {
                        // Opening (or re-opening): back to the implied status.
                        for component in self.affected_at(update.instant) {
                            changes.push((update.instant, component, implied));
                        }
                    }
                    closed = closing;
                    for (component, status) in &update.component_statuses {
                        changes.push((update.instant, component, *status));
                    }
                }
            }
            Some(window) => {
                let mut events: Vec<(DateTime<Utc>, u8, Option<&Update>)> =
                    vec![(window.starts, 0, None), (window.ends, 2, None)];
                events.extend(self.updates.iter().map(|u| (u.instant, 1, Some(u))));
                events.sort_by_key(|(instant, order, _)| (*instant, *order));
                let mut ended = false;
                for (instant, order, update) in events {
                    match (order, update) {
                        (0, _) if !ended => {
                            for component in self.affected_at(instant) {
                                changes.push((instant, component, ComponentStatus::Maintenance));
                            }
                        }
                        (2, _) if !ended => {
                            ended = true;
                            for component in self.affected_at(instant) {
                                changes.push((instant, component, ComponentStatus::Operational));
                            }
                        }
                        (1, Some(update)) => {
                            if update.status.is_closing() && !ended {
                                ended = true;
                                for component in self.affected_at(instant) {
                                    changes.push((
                                        instant,
                                        component,
                                        ComponentStatus::Operational,
                                    ));
                                }
                            }
                            for (component, status) in &update.component_statuses {
                                changes.push((instant, component, *status));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }

        let mut result = Timeline::default();
        for component in &self.components {
            let mut segments: Vec<Segment> = Vec::new();
            let mut current: Option<(DateTime<Utc>, ComponentStatus)> = None;
            for (instant, _, status) in changes.iter().filter(|(_, c, _)| c == component) {
                if let Some((from, held)) = current {
                    if held == *status {
                        continue;
                    }
                    if held != ComponentStatus::Operational && from < *instant {
                        segments.push(Segment {
                            from,
                            until: Some(*instant),
                            status: held,
                        });
                    }
                }
                current = Some((*instant, *status));
            }
            if let Some((from, held)) = current
                && held != ComponentStatus::Operational
            {
                segments.push(Segment {
                    from,
                    until: None,
                    status: held,
                });
            }
            segments.shrink_to_fit();
            result.insert(component.clone(), segments);
        }
        result.0.shrink_to_fit();
        result
    }

    /// The status this incident holds `component` at, at `instant`;
    /// operational when it is not holding it at all.
    pub fn component_status_at(&self, component: &str, instant: DateTime<Utc>) -> ComponentStatus {
        self.timeline()
            .get(component)
            .into_iter()
            .flatten()
            .filter(|s| s.from <= instant && s.until.is_none_or(|until| instant < until))
            .map(|s| s.status)
            .max()
            .unwrap_or(ComponentStatus::Operational)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenancePhase {
    Upcoming,
    Ongoing,
    Over,
}

/// Text safe for one line (an email header, a chat title, a draft's
/// front matter): control characters (CR and LF above
/// all) become spaces, runs of white space one space.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
