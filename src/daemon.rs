//! `herald run`: the main loop. Does I/O.
//!
//! One task owns the configuration, the parsed files and the corpus. Every
//! event (files changed, a date boundary, a signal) goes through one
//! `select!`; a change re-reads only the files it names and re-renders only
//! the outputs their incidents touch. Date-dependent pages are re-rendered
//! at local midnight and at maintenance boundaries by a timer that sleeps
//! until then: an idle daemon never wakes up.
//!
//! After each rebuild, and when the earliest update in its grace period or
//! the next maintenance notice falls due, the daemon decides what to
//! announce ([`crate::announce`], [`crate::maintenance`]), queues it in
//! the outbox in one transaction, and wakes the mailer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::announce::{self, Announced, Announcement, Policy};
use crate::maintenance::{self, NoticeKey, Tracked};

use crate::clock;
use crate::config::Config;
use crate::corpus::{Corpus, Files, next_date_change};
use crate::diag::Diagnostic;
use crate::driver;
use crate::fsio::{self, OutputDir};
use crate::health::{Health, HealthProbe};
use crate::http;
use crate::mailer;
use crate::model::{Incident, IncidentId};
use crate::publish::{self, Publisher};
use crate::render::{self, Plan, Revisions, Site, Templates};
use crate::service;
use crate::store::Store;
use crate::watch::{self, Change};

/// After an event that leaves a save unfinished (a file created or written
/// to but not yet closed), wait until the tree has been quiet this long
/// before re-reading (one save can be several writes). An event that ends
/// a save (see [`Change::Paths`]) is acted on at once, with whatever else
/// has arrived by then: a burst that goes on meanwhile is collected by the
/// next round.
const SETTLE: Duration = Duration::from_millis(30);
/// But never wait longer than this for a burst to end.
const SETTLE_MAX: Duration = Duration::from_millis(500);

/// What the daemon owns between events.
pub struct Daemon {
    config: Config,
    templates: Templates,
    files: Files,
    corpus: Corpus,
    output: OutputDir,
    revisions: Revisions,
    /// `None` when the state directory is unusable (logged at start).
    store: Option<Store>,
    generation: u64,
    /// The `now` of the last render: date boundaries after it are still
    /// to be rendered, even if the loop was busy when they passed.
    rendered_at: DateTime<Utc>,
    /// What the state database knows about updates, kept in step with it.
    announced: Announced,
    policy: Policy,
    /// Each maintenance's window as the state database records it.
    windows: HashMap<IncidentId, Tracked>,
    /// The maintenance notices already queued.
    notices_sent: HashSet<NoticeKey>,
    notice_policy: maintenance::Policy,
    /// When the earliest update still in its grace period, or the next
    /// maintenance notice, falls due.
    next_announcement: Option<DateTime<Utc>>,
    /// Wakes the mailer after mail was queued.
    mail_wake: Arc<Notify>,
    /// Tells the HTTP server which incidents may be followed one by one;
    /// shared across reloads.
    followable: Arc<tokio::sync::watch::Sender<Arc<HashSet<IncidentId>>>>,
    /// A render changed an output since the loop last asked (`[publish]`).
    outputs_changed: bool,
    /// What failed and is to be done again at `retry_at` (or at the next
    /// event, for outputs and reads).
    retry: Retry,
}

/// Work that failed for a reason that may pass (a full disk, a full table
/// of open files, a state database locked by another process), to be done
/// again rather than lost.
#[derive(Debug, Default)]
struct Retry {
    /// Paths (files or directories) that could not be read.
    reads: BTreeSet<PathBuf>,
    /// Outputs failed to be written: the next render is a full one.
    outputs: bool,
    /// The state database could not be opened or read at start.
    state: bool,
    /// Incidents whose first-seen and edit times were not recorded.
    observe: BTreeSet<IncidentId>,
    /// The state database failed and has not worked since (`/healthz`).
    state_unusable: bool,
    /// When to try again, if anything is waiting.
    at: Option<DateTime<Utc>>,
}

/// How long failed reads, writes and state updates wait before the next
/// attempt when no event comes first.
const RETRY_AFTER: chrono::Duration = chrono::Duration::seconds(10);

impl Daemon {
    /// Reads everything and does the first full build.
    pub fn start(config: Config) -> anyhow::Result<Daemon> {
        let (files, unread) = driver::load_files(&config)?;
        let email = config.email_or_default();
        let policy = Policy {
            grace: email.grace,
            max_age: email.max_age,
        };
        let notice_policy = maintenance::Policy {
            reminders: config.maintenance.reminders.clone(),
            grace: email.grace,
            max_age: email.max_age,
        };
        let mut daemon = Daemon {
            output: OutputDir::new(config.paths.output.clone()),
            templates: driver::load_templates(&config)?,
            config,
            files,
            corpus: Corpus::default(),
            revisions: Revisions::new(),
            store: None,
            generation: 0,
            rendered_at: DateTime::<Utc>::MIN_UTC,
            announced: Announced::default(),
            policy,
            windows: HashMap::new(),
            notices_sent: HashSet::new(),
            notice_policy,
            next_announcement: None,
            mail_wake: Arc::new(Notify::new()),
            followable: Arc::new(tokio::sync::watch::Sender::new(Arc::default())),
            outputs_changed: false,
            retry: Retry::default(),
        };
        for path in unread {
            daemon.retry_read(path);
        }
        let diagnostics: Vec<Diagnostic> = daemon.files.diagnostics().cloned().collect();
        log_diagnostics(&diagnostics);
        daemon.corpus = daemon.snapshot();
        daemon.publish_followable();
        daemon.open_state();
        let all: Vec<IncidentId> = daemon.corpus.published().map(|i| i.id.clone()).collect();
        daemon.observe(&all);
        daemon.render(&Plan::Full)?;
        daemon.announce();
        Ok(daemon)
    }

    /// Opens the state database and loads what it knows; on failure,
    /// pages still publish and this is tried again.
    fn open_state(&mut self) {
        if self.store.is_none() {
            match Store::open(&self.config.paths.state) {
                Ok(store) => self.store = Some(store),
                Err(error) => {
                    self.state_failed(
                        "feed entries will not show edit times and no email is queued until it opens",
                        error,
                    );
                    self.retry.state = true;
                    return;
                }
            }
        }
        self.retry.state = !self.load_announced();
    }

    /// Logs a state database failure, says so on `/healthz`, and tries
    /// again later.
    fn state_failed(&mut self, consequence: &str, error: crate::store::Error) {
        let error = anyhow::Error::from(error);
        tracing::error!("{consequence}: {error:#}");
        self.retry.state_unusable = true;
        self.schedule_retry();
    }

    fn state_ok(&mut self) {
        if std::mem::take(&mut self.retry.state_unusable) {
            tracing::info!("the state database works again");
        }
    }

    fn schedule_retry(&mut self) {
        if self.retry.at.is_none() {
            self.retry.at = Some(clock::now() + RETRY_AFTER);
        }
    }

    fn retry_read(&mut self, path: PathBuf) {
        self.retry.reads.insert(path);
        self.schedule_retry();
    }

    /// Why `/healthz` should answer 503 though everything runs.
    pub fn problem(&self) -> Option<String> {
        self.retry
            .state_unusable
            .then(|| "state database unusable".to_owned())
    }

    /// Does again what failed: reads, writes, the state database.
    fn retry_now(&mut self) -> anyhow::Result<()> {
        self.retry.at = None;
        if self.retry.state {
            self.open_state();
        }
        let observe = std::mem::take(&mut self.retry.observe);
        if !observe.is_empty() {
            self.observe(&observe);
        }
        let reads = std::mem::take(&mut self.retry.reads);
        if !reads.is_empty() {
            self.reread(reads.into_iter().collect())?;
        }
        if self.retry.outputs {
            self.render(&Plan::Full)?;
        }
        self.announce();
        Ok(())
    }

    /// Loads what the state database knows about updates. On first start
    /// (no baseline yet) every published update is first recorded as
    /// notified, so starting on an old directory emails nobody.
    fn load_announced(&mut self) -> bool {
        let Some(store) = &mut self.store else {
            return false;
        };
        let result = (|| {
            if !store.has_baseline()? {
                let keys = announce::baseline(&self.corpus);
                tracing::info!(
                    updates = keys.len(),
                    "first start: existing updates will not be emailed"
                );
                store.record_baseline(&keys, clock::now())?;
            }
            Ok((store.notified()?, store.sent_notices()?))
        })();
        match result {
            Ok((notified, notices_sent)) => {
                self.notices_sent = notices_sent;
                let seen = std::mem::take(&mut self.announced.seen);
                self.announced.notified = notified;
                self.announced.record_seen(seen);
                self.state_ok();
                true
            }
            Err(error) => {
                self.state_failed(
                    "no email is queued until the state database can be read",
                    error,
                );
                false
            }
        }
    }

    /// Queues the updates that are due, and wakes the mailer if that
    /// queued any mail.
    fn announce(&mut self) {
        // Until the state database says what was sent, nothing is.
        if self.retry.state {
            return;
        }
        let Some(store) = &mut self.store else { return };
        let now = clock::now();
        let mut decision = announce::decide(&self.corpus, &self.announced, now, self.policy);
        let notices = maintenance::decide(
            &self.corpus,
            &self.windows,
            &self.notices_sent,
            now,
            &self.notice_policy,
        );
        self.next_announcement = [decision.next, notices.next].into_iter().flatten().min();
        decision.due.extend(notices.due.iter().filter_map(|due| {
            let incident = self.corpus.published_get(&due.incident)?;
            Some(Announcement::of_notice(incident, due.instant, due.notice))
        }));
        if decision.due.is_empty() && decision.too_old.is_empty() && decision.quiet.is_empty() {
            return;
        }
        match store.enqueue(&decision, now) {
            Ok(queued) => {
                for announcement in &decision.due {
                    tracing::info!(
                        incident = %announcement.incident,
                        instant = %announcement.instant.to_rfc3339(),
                        notice = announcement.notice.map(|notice| notice.kind.code()),
                        "announcing"
                    );
                }
                self.announced.record_notified(
                    decision
                        .due
                        .iter()
                        .filter(|announcement| announcement.notice.is_none())
                        .map(Announcement::key),
                );
                self.notices_sent
                    .extend(notices.due.iter().map(maintenance::Due::key));
                self.announced
                    .record_notified(decision.too_old.iter().cloned());
                self.announced
                    .record_notified(decision.quiet.iter().cloned());
                if queued > 0 {
                    tracing::info!(messages = queued, "queued");
                    self.mail_wake.notify_one();
                }
            }
            Err(error) => {
                // Nothing was recorded; try again soon.
                self.state_failed("cannot queue email", error);
                return;
            }
        }
        self.state_ok();
    }

    /// The handle that wakes the mailer; shared across reloads.
    pub fn mail_wake(&self) -> Arc<Notify> {
        Arc::clone(&self.mail_wake)
    }

    fn set_mail_wake(&mut self, wake: Arc<Notify>) {
        self.mail_wake = wake;
    }

    /// Which incidents the HTTP server lets an address follow one by one.
    pub fn followable(&self) -> http::Followable {
        self.followable.subscribe()
    }

    /// Takes over the handle the HTTP server reads (after a reload) and
    /// publishes this corpus's open incidents to it.
    fn set_followable(
        &mut self,
        sender: Arc<tokio::sync::watch::Sender<Arc<HashSet<IncidentId>>>>,
    ) {
        self.followable = sender;
        self.publish_followable();
    }

    /// The published incidents that are not closed: those a subscription
    /// may follow one by one.
    fn publish_followable(&self) {
        let open: HashSet<IncidentId> = self
            .corpus
            .published()
            .filter(|incident| incident.closed_at().is_none())
            .map(|incident| incident.id.clone())
            .collect();
        self.followable.send_replace(Arc::new(open));
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records first-seen and edit times of the updates of `ids`, drafts
    /// included: a draft's updates count as seen when the draft was, so
    /// one published later (an alert's, by `herald publish`) is not taken
    /// for old news. Only published updates are announced. An update not
    /// recorded here is never announced, so a failure is tried again until
    /// it succeeds.
    fn observe<'a>(&mut self, ids: impl IntoIterator<Item = &'a IncidentId>) {
        let ids: Vec<&IncidentId> = ids.into_iter().collect();
        let Some(store) = &mut self.store else {
            if self.retry.state {
                self.retry.observe.extend(ids.into_iter().cloned());
            }
            return;
        };
        let incidents: Vec<&Incident> = ids
            .iter()
            .filter_map(|id| self.corpus.get(id))
            .map(AsRef::as_ref)
            .collect();
        let now = clock::now();
        let observed = store
            .observe(incidents.iter().copied(), now)
            .and_then(|seen| Ok((seen, store.observe_windows(incidents.iter().copied(), now)?)));
        match observed {
            Ok((seen, windows)) => {
                self.revisions.extend(announce::edit_times(&seen));
                self.announced.record_seen(seen);
                self.windows.extend(windows);
            }
            Err(error) => {
                self.retry.observe.extend(ids.into_iter().cloned());
                self.state_failed(
                    "cannot record new updates; they are queued for email once it can",
                    error,
                );
            }
        }
    }

    fn snapshot(&self) -> Corpus {
        let (corpus, cross) = self.files.corpus();
        log_diagnostics(&cross);
        corpus
    }

    /// Renders and writes `plan`'s outputs, or every output while an
    /// earlier write failed (it may have left any of them behind). A
    /// failed write is tried again at the next render or [`RETRY_AFTER`].
    fn render(&mut self, plan: &Plan) -> anyhow::Result<()> {
        let backlog = self.retry.outputs;
        let plan = if backlog {
            self.output.forget();
            &Plan::Full
        } else {
            plan
        };
        let result = self.render_plan(plan);
        match &result {
            Ok(()) if backlog => {
                self.retry.outputs = false;
                tracing::info!("every output is written again after the earlier failure");
            }
            Ok(()) => {}
            Err(_) => {
                self.retry.outputs = true;
                self.schedule_retry();
            }
        }
        result
    }

    fn render_plan(&mut self, plan: &Plan) -> anyhow::Result<()> {
        self.generation += 1;
        let span = tracing::info_span!("rebuild", generation = self.generation);
        let _entered = span.enter();
        let now = clock::now();
        let moves = maintenance::moves(&self.windows);
        let site = Site::new(&self.config, &self.templates, &self.revisions, &moves, now);
        let (outputs, changed) = if matches!(plan, Plan::Full) {
            driver::publish_everything(&site, &self.corpus, &mut self.output)?
        } else {
            let rendered = render::render(&site, &self.corpus, plan)?;
            // Pages and feeds first, then what sums them up (the API, the
            // index), and only then are deleted pages removed: a reader of
            // the index never follows a link to a page that is gone.
            let (direct, summaries) = rendered.outputs.split_at(rendered.direct);
            let root = self.output.root().display().to_string();
            let context = || format!("cannot write outputs to {root}");
            let changed = self.output.write(direct, &[]).with_context(context)?
                + self
                    .output
                    .write(summaries, &rendered.removed)
                    .with_context(context)?;
            (rendered.outputs.len(), changed)
        };
        tracing::info!(
            incidents = self.corpus.len(),
            rendered = outputs,
            changed,
            "published"
        );
        self.rendered_at = now;
        self.outputs_changed |= changed > 0;
        Ok(())
    }

    /// Whether an output changed since the last call.
    fn take_outputs_changed(&mut self) -> bool {
        std::mem::take(&mut self.outputs_changed)
    }

    /// The service manager's status line: `12 incidents, 3 mail pending`.
    pub fn status_line(&self) -> String {
        let incidents = self.corpus.len();
        let mail = match self.store.as_ref().map(Store::pending_mail) {
            Some(Ok(pending)) => format!("{pending} mail pending"),
            Some(Err(_)) => "mail queue unreadable".to_owned(),
            None => "email disabled".to_owned(),
        };
        let noun = if incidents == 1 {
            "incident"
        } else {
            "incidents"
        };
        format!("{incidents} {noun}, {mail}")
    }

    /// Re-reads `paths` (absolute, as notify reports them; files or
    /// directories, existing or not) and publishes what changed.
    pub fn apply(&mut self, paths: &[PathBuf]) -> anyhow::Result<()> {
        let root = self.config.paths.incidents.clone();
        // notify reports absolute paths; files are known by the configured
        // (possibly relative) path, which is also how messages name them.
        let absolute_root = std::path::absolute(&root).unwrap_or_else(|_| root.clone());
        let canonical_root = root
            .canonicalize()
            .unwrap_or_else(|_| absolute_root.clone());
        let configured: Vec<PathBuf> = paths
            .iter()
            .filter_map(|path| {
                let relative = path
                    .strip_prefix(&canonical_root)
                    .or_else(|_| path.strip_prefix(&absolute_root));
                relative.ok().map(|relative| root.join(relative))
            })
            .collect();
        self.reread(configured)
    }

    /// Re-reads `paths` (under the configured incidents directory) and
    /// publishes what changed. A path that cannot be read is reported and
    /// tried again later; the others publish.
    fn reread(&mut self, paths: Vec<PathBuf>) -> anyhow::Result<()> {
        let root = self.config.paths.incidents.clone();
        let mut reread: BTreeSet<PathBuf> = BTreeSet::new();
        for path in paths {
            if path.is_dir() {
                match fsio::find_incident_files(&path) {
                    Ok(found) => reread.extend(found),
                    Err(error) => {
                        tracing::error!("{:#}", anyhow::Error::from(error));
                        self.retry_read(path.clone());
                    }
                }
            }
            // A path that is gone may have been a directory: drop what it held.
            reread.extend(self.files.paths_under(&path));
            if fsio::is_incident_path(&root, &path) {
                reread.insert(path);
            }
        }
        if reread.is_empty() {
            return Ok(());
        }
        self.read_all(&reread);
        let diagnostics: Vec<Diagnostic> = reread
            .iter()
            .filter_map(|path| self.files.get(path))
            .flat_map(|entry| entry.diagnostics.iter().cloned())
            .collect();
        log_diagnostics(&diagnostics);
        self.publish_changes()
    }

    /// Reads each of `paths`; those that failed for a reason that may pass
    /// are tried again later (their error is among the diagnostics).
    fn read_all<'a>(&mut self, paths: impl IntoIterator<Item = &'a PathBuf>) {
        let context = driver::parse_context(&self.config);
        let mut failed = Vec::new();
        for path in paths {
            if let Err(error) = driver::read_incident(&mut self.files, path, &context)
                && error.is_transient()
            {
                failed.push(path.clone());
            }
        }
        for path in failed {
            self.retry_read(path);
        }
    }

    /// Re-reads the whole tree (after lost events).
    pub fn rescan(&mut self) -> anyhow::Result<()> {
        let found = fsio::find_incident_files(&self.config.paths.incidents)?;
        let present: std::collections::HashSet<&Path> =
            found.iter().map(PathBuf::as_path).collect();
        let gone: Vec<PathBuf> = self
            .files
            .paths()
            .filter(|p| !present.contains(p))
            .map(Path::to_owned)
            .collect();
        let mut paths = found;
        paths.extend(gone);
        self.read_all(&paths);
        self.publish_changes()
    }

    fn publish_changes(&mut self) -> anyhow::Result<()> {
        let newer = self.snapshot();
        let ids = self.corpus.changed_ids(&newer);
        if ids.is_empty() {
            return Ok(());
        }
        let older = std::mem::replace(&mut self.corpus, newer);
        self.publish_followable();
        tracing::debug!(changed = ids.len(), "incidents changed");
        self.observe(&ids);
        let rendered = self.render(&Plan::Changed {
            old: &older,
            ids: &ids,
        });
        self.announce();
        rendered
    }

    /// Re-renders what depends on the date alone.
    pub fn clock_tick(&mut self) -> anyhow::Result<()> {
        self.render(&Plan::Clock)
    }

    /// The next instant a date-dependent output changes by itself, counted
    /// from the last render (so it may already have passed).
    pub fn next_wakeup(&self) -> DateTime<Utc> {
        next_date_change(&self.corpus, self.config.site.timezone, self.rendered_at)
    }

    /// The timer fired at `now`, having been set for `date` (the next date
    /// boundary) or an update's grace period ending, whichever came first.
    fn timer(&mut self, date: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<()> {
        if self.retry.at.is_some_and(|at| at <= now) {
            self.retry_now()?;
        }
        if self.next_announcement.is_some_and(|next| next <= now) {
            self.announce();
        }
        if date <= now {
            self.clock_tick()?;
        }
        Ok(())
    }

    /// Applies a new configuration and templates (SIGHUP) with a full
    /// rebuild. The caller keeps the old daemon if this fails.
    pub fn reload(config_path: &Path) -> anyhow::Result<Daemon> {
        let config = driver::load_config(config_path)?;
        Daemon::start(config)
    }
}

fn log_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        if diagnostic.is_error() {
            tracing::error!("{diagnostic}");
        } else {
            tracing::warn!("{diagnostic}");
        }
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = driver::load_config(&config_path)?;
    let (sender, mut receiver) = mpsc::unbounded_channel();
    // A missing directory is a mistake to report, not a reason to poll.
    let incidents = &config.paths.incidents;
    std::fs::read_dir(incidents)
        .map_err(|source| fsio::Error::List {
            path: incidents.clone(),
            source,
        })
        .with_context(|| {
            format!(
                "cannot read the incidents directory {}",
                incidents.display()
            )
        })?;
    // Watch before the first build, so no change in between is lost.
    let mut watcher = watch::watch(&config.paths.incidents, sender.clone())?;
    let mut daemon = tokio::task::block_in_place(|| Daemon::start(config))?;
    // The first build's pages and parse buffers are freed by now.
    release_free_memory();
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let (probe, mut probes) = mpsc::channel::<oneshot::Sender<Health>>(16);
    let probe: HealthProbe = probe;
    let mut http = http::Server::start(
        &daemon.config,
        &daemon.templates,
        probe.clone(),
        daemon.mail_wake(),
        daemon.followable(),
    )
    .await?;
    tracing::info!(
        incidents = daemon.corpus.len(),
        watching = %daemon.config.paths.incidents.display(),
        polling = watcher.is_polling(),
        "ready"
    );
    let mut mail = Mail::start(&daemon);
    let publisher = Publisher::start(publish::Job::from_config(&daemon.config));
    // The last run's publishing may have failed: publish the first build
    // even when it changed nothing on disk.
    daemon.take_outputs_changed();
    publisher.request();
    let manager = service::Manager::from_env();
    let mut watchdog = service::ping_timer(manager.ping_interval());
    let mut status = daemon.status_line();
    manager.ready(&status);

    loop {
        let now = clock::now();
        let date = daemon.next_wakeup();
        let wakeup = [daemon.next_announcement, daemon.retry.at]
            .into_iter()
            .flatten()
            .fold(date, DateTime::min);
        let sleep = (wakeup - now).to_std().unwrap_or(Duration::ZERO);
        tracing::debug!(%wakeup, ?sleep, "sleeping until the next date boundary, grace end or maintenance notice");
        tokio::select! {
            change = receiver.recv() => {
                let Some(change) = change else { break };
                let batch = settle(change, &mut receiver).await;
                let result = tokio::task::block_in_place(|| match batch {
                    Change::Rescan => daemon.rescan(),
                    Change::Paths { paths, .. } => daemon.apply(&paths),
                });
                if let Err(error) = result {
                    tracing::error!("{error:#}");
                }
                release_free_memory();
            }
            () = tokio::time::sleep(sleep) => {
                // The timer may fire a hair early; act on what was due.
                let now = clock::now().max(wakeup);
                if let Err(error) = tokio::task::block_in_place(|| daemon.timer(date, now)) {
                    tracing::error!("{error:#}");
                }
                release_free_memory();
            }
            _ = hangup.recv() => {
                tracing::info!(config = %config_path.display(), "reloading");
                manager.reloading();
                match tokio::task::block_in_place(|| Daemon::reload(&config_path)) {
                    Ok(mut reloaded) => {
                        // Mail the reload queued may have woken the new
                        // handle, which no mailer listens to.
                        reloaded.set_mail_wake(daemon.mail_wake());
                        reloaded.mail_wake.notify_one();
                        reloaded.set_followable(Arc::clone(&daemon.followable));
                        if reloaded.config.paths.incidents != daemon.config.paths.incidents {
                            watcher = watch::watch(&reloaded.config.paths.incidents, sender.clone())?;
                        }
                        daemon = reloaded;
                        // The queue stays in the database; the new mailer
                        // picks it up with the new settings.
                        mail.stop().await;
                        mail = Mail::start(&daemon);
                        publisher.configure(publish::Job::from_config(&daemon.config));
                        http = http::reload(http, &daemon.config, &daemon.templates, &probe, daemon.mail_wake(), daemon.followable()).await;
                        release_free_memory();
                        tracing::info!("reloaded");
                        status = daemon.status_line();
                        manager.ready(&status);
                    }
                    Err(error) => {
                        tracing::error!("reload failed, keeping the running configuration: {error:#}");
                        status = daemon.status_line();
                        manager.ready(&format!("reload failed, running the previous configuration; {status}"));
                    }
                }
            }
            () = service::next_ping(&mut watchdog) => {
                let health = mail.health(&watcher, daemon.problem());
                if health.is_alive() {
                    manager.ping();
                } else {
                    tracing::error!(?health, "not pinging the watchdog: a part of herald has stopped");
                }
            }
            Some(reply) = probes.recv() => {
                let _ = reply.send(mail.health(&watcher, daemon.problem()));
            }
            // The mailer found (or mended) a problem: the status line says so.
            Ok(()) = mail.blocked.changed() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
        if daemon.take_outputs_changed() {
            publisher.request();
        }
        let current = with_problem(daemon.status_line(), mail.problem().or(daemon.problem()));
        if current != status {
            manager.status(&current);
            status = current;
        }
    }
    manager.stopping();
    drop(watcher);
    if let Some(http) = http {
        http.stop().await;
    }
    publisher.stop().await;
    mail.stop().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The running mailer thread.
struct Mail {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Why it sends nothing while running, if so.
    blocked: tokio::sync::watch::Receiver<Option<String>>,
}

impl Mail {
    fn start(daemon: &Daemon) -> Mail {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (blocking, blocked) = tokio::sync::watch::channel(None);
        let thread = mailer::spawn(daemon.config.clone(), daemon.mail_wake(), stopped, blocking)
            .inspect_err(|error| {
                tracing::error!("email delivery disabled: cannot start its thread: {error}");
            })
            .ok();
        Mail {
            stop,
            thread,
            blocked,
        }
    }

    /// The mailer's health beside the watcher's, and `other`, the
    /// daemon's own problem, when the mailer has none.
    fn health(&self, watcher: &watch::Handle, other: Option<String>) -> Health {
        Health {
            watcher: watcher.is_alive(),
            mailer: self.is_alive(),
            problem: self.problem().or(other),
        }
    }

    fn problem(&self) -> Option<String> {
        let blocked = self.blocked.borrow();
        blocked
            .as_ref()
            .map(|problem| format!("email stopped: {problem}"))
    }

    fn is_alive(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    /// Stops leasing, lets sends in flight finish (within a deadline).
    async fn stop(self) {
        let _ = self.stop.send(true);
        let Some(thread) = self.thread else { return };
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the mailer stopped abnormally");
        }
    }
}

/// Hands the heap's free memory back to the system. glibc keeps what a
/// rebuild freed (rendered pages, read buffers) for reuse; an idle daemon
/// would otherwise hold its busiest moment's size for good (124 MB at
/// 10,000 incidents, against about 60 MB for what it keeps). Takes a
/// millisecond or two, after the outputs are written.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and shrinks glibc's own heap; it
    // takes and returns plain integers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The status line, with what is wrong when something is.
fn with_problem(status: String, problem: Option<String>) -> String {
    match problem {
        Some(problem) => format!("{status}; {problem}"),
        None => status,
    }
}

/// Collects the rest of a burst: takes what has already arrived, then, as
/// long as the last event left a save unfinished, waits until no event came
/// for [`SETTLE`], at most [`SETTLE_MAX`] in all.
async fn settle(first: Change, receiver: &mut mpsc::UnboundedReceiver<Change>) -> Change {
    let deadline = tokio::time::Instant::now() + SETTLE_MAX;
    let mut complete = matches!(first, Change::Paths { complete: true, .. });
    let mut batch = first;
    loop {
        let next = match receiver.try_recv() {
            Ok(change) => Some(change),
            Err(_) if complete => None,
            Err(_) => {
                let quiet = tokio::time::Instant::now() + SETTLE;
                tokio::time::timeout_at(quiet.min(deadline), receiver.recv())
                    .await
                    .ok()
                    .flatten()
            }
        };
        let Some(change) = next else { break };
        complete = matches!(change, Change::Paths { complete: true, .. });
        batch = match (batch, change) {
            (Change::Paths { mut paths, .. }, Change::Paths { paths: more, .. }) => {
                paths.extend(more);
                Change::Paths { paths, complete }
            }
            _ => Change::Rescan,
        };
    }
    if let Change::Paths { paths, .. } = &mut batch {
        paths.sort();
        paths.dedup();
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn paths(names: &[&str], complete: bool) -> Change {
        Change::Paths {
            paths: names.iter().map(PathBuf::from).collect(),
            complete,
        }
    }

    /// Polls `settle` once, as the event loop's first poll would.
    fn first_poll(first: Change, receiver: &mut mpsc::UnboundedReceiver<Change>) -> Poll<Change> {
        let mut future = pin!(settle(first, receiver));
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn a_finished_save_is_taken_at_once_with_what_already_arrived() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender.send(paths(&["b.md", "a.md"], true)).unwrap();
        let Poll::Ready(Change::Paths { paths, .. }) =
            first_poll(paths(&["a.md"], true), &mut receiver)
        else {
            panic!("a save that ended waits for nothing");
        };
        assert_eq!(paths, [PathBuf::from("a.md"), PathBuf::from("b.md")]);
    }

    #[tokio::test]
    async fn an_unfinished_save_waits_for_the_burst() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        // A file created, then renamed away: more is coming.
        sender.send(paths(&["a.md"], false)).unwrap();
        assert!(first_poll(paths(&["a.md"], false), &mut receiver).is_pending());
        // Once the save ends the burst is taken whole.
        sender.send(paths(&["a.md"], false)).unwrap();
        sender.send(paths(&["b.md"], true)).unwrap();
        let Change::Paths { paths, .. } = settle(paths(&["c.md"], false), &mut receiver).await
        else {
            panic!("paths stay paths");
        };
        assert_eq!(
            paths,
            [
                PathBuf::from("a.md"),
                PathBuf::from("b.md"),
                PathBuf::from("c.md")
            ]
        );
    }

    #[tokio::test]
    async fn lost_events_make_the_batch_a_rescan() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender.send(Change::Rescan).unwrap();
        sender.send(paths(&["b.md"], true)).unwrap();
        let batch = settle(paths(&["a.md"], false), &mut receiver).await;
        assert!(matches!(batch, Change::Rescan), "{batch:?}");
    }
}
