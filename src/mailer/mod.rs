//! Drains the outbox. Does I/O (SQLite, SMTP, files, HTTP).
//!
//! The mailer leases a batch of due rows (sets `lease_until`), hands each
//! message to [`CONCURRENCY`] SMTP connections that take them from one
//! queue, with MAIL, RCPT and DATA pipelined (RFC 2920) when the server
//! offers it ([`SmtpPool`]), and records the outcome of each message as soon as it has one: sent
//! only after the server's 2xx; a 4xx or a connection failure is retried
//! with exponential backoff (`retry_base`, doubling, at most 60 times
//! `retry_base`) for up to [`GIVE_UP_AFTER`]; a 5xx is failed at once
//! with the server's reply kept.
//!
//! A crash or `kill -9` loses nothing: rows are only ever leased, and at
//! startup every lease goes back to pending (herald is the only sender).
//! A message the server accepted but that was not yet marked sent is sent
//! again, so duplicates are at most the [`IN_FLIGHT`] messages.
//!
//! Confirmation emails for subscriptions asked for over HTTP wait in the
//! state database's `requests` table and go out the same way, on the same
//! connections, with the same retries.
//!
//! It sleeps until the daemon queues mail (a [`Notify`]) or the next retry
//! falls due; it never polls. With `smtp = "file"` (or no `[email]`)
//! messages are written to `state/outbox-files/` instead.
//!
//! The drain is this module; messages leave through a [`Sender`], one of
//! the transports beside it: `smtp` (the connections) and `file` (the
//! `.eml` files).
//!
//! Each row goes by its subscriber's channel: email as above, webhooks as
//! a POST through [`crate::webhook`] ([`post`]), with the same leases,
//! permits, recorder and backoff. A webhook's reply is read by
//! [`classify`]; a `Retry-After` delays the retry to at least then, and a
//! revoked chat webhook's subscription is removed with its queued rows in
//! the recording transaction.

mod cache;
mod file;
pub mod matrix;
mod post;
mod smtp;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use self::cache::Cache;
use self::post::compose_post;
pub use self::post::{classify, post};
pub use self::smtp::{CONCURRENCY, SmtpPool};
use crate::announce::Announcement;
use crate::clock;
use crate::compose::{Composer, Rendered, RenderedPost, Variant};
use crate::config::{Config, Transport};
use crate::driver;
use crate::model::{Channel, Format, Language};
use crate::store::{
    self, Delivery, KeyProblem, Leased, LeasedConfirmation, Outcome, Queued, Store,
};
use crate::webhook;

/// Messages between leaving the outbox and their outcome being recorded:
/// composed and waiting for a connection, on the wire, or waiting for the
/// next commit. Enough that a connection finds the next message waiting
/// when it finishes one (so that the two go in one write) while the
/// previous ones are still being recorded: with twice [`CONCURRENCY`]
/// the connections waited for the database and the email fan-out ran at
/// 52-63 % of smtp-source's rate instead of 72 % and more; a webhook
/// fan-out, 16 connections to one host, gained again from four times to
/// eight (`scripts/bench-webhooks`, BENCHMARKS.md). These are the most a
/// crash may send twice.
pub const IN_FLIGHT: usize = 8 * CONCURRENCY;
/// Rows leased per round trip to the database.
const BATCH: usize = 64;
/// How long a lease holds: longer than any one send (lettre times out
/// each SMTP command after a minute), short enough that a hung send is
/// retried the same hour.
const LEASE: Duration = Duration::from_secs(10 * 60);
/// Transient failures are retried this long after the message was queued.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(2 * 24 * 3600);
/// On shutdown, sends in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the SMTP password file {}", path.display())]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS for {host}")]
    Tls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot create {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a send failed, and what to do about it.
#[derive(Debug)]
pub enum SendError {
    /// Try again later: a 4xx reply, or no usable connection.
    Retry(String),
    /// Try again, not before this long (a webhook's `Retry-After`).
    RetryAfter(String, Duration),
    /// Give up: a 5xx reply or a message that cannot be built.
    Park(String),
    /// The address is gone for good (a chat webhook answered 404 or 410):
    /// the subscription is removed.
    Revoked(String),
}

impl SendError {
    pub fn reply(&self) -> &str {
        match self {
            SendError::Retry(reply)
            | SendError::RetryAfter(reply, _)
            | SendError::Park(reply)
            | SendError::Revoked(reply) => reply,
        }
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Sender {
    /// Connections to the configured server, shared by the send tasks.
    Smtp(Arc<SmtpPool>),
    /// `.eml` files in this directory, one per message, named after it,
    /// so writing one again replaces it.
    Files(PathBuf),
}

impl Sender {
    /// The configured transport.
    pub fn new(config: &Config) -> Result<Sender, Error> {
        let email = config.email_or_default();
        Ok(match &email.smtp {
            Transport::File => Sender::Files(file::create(&config.paths.state)?),
            Transport::Smtp { host, port, tls } => {
                Sender::Smtp(Arc::new(SmtpPool::new(&email, host.clone(), *port, *tls)?))
            }
        })
    }

    /// Sends one message; `Ok` only once the server accepted it (or the
    /// file is on disk). `file_name` names its file with `smtp = "file"`.
    pub async fn send(&self, message: &Message, file_name: &str) -> Result<(), SendError> {
        match self {
            Sender::Smtp(pool) => pool.send(message).await,
            Sender::Files(dir) => file::write(dir, message, file_name).await,
        }
    }
}

/// The delay before retry number `attempts + 1`: `base`, doubling with
/// every attempt, at most 60 times `base`.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.min(6);
    base.saturating_mul(factor).min(base.saturating_mul(60))
}

/// What becomes of a row after a transient failure at `now`: tried again
/// at the returned instant, or `None` to give up (queued too long ago).
pub fn next_attempt(
    base: Duration,
    attempts: u32,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let give_up = chrono::Duration::from_std(GIVE_UP_AFTER).unwrap_or(chrono::Duration::MAX);
    if now.signed_duration_since(created) >= give_up {
        return None;
    }
    let delay =
        chrono::Duration::from_std(retry_delay(base, attempts)).unwrap_or(chrono::Duration::MAX);
    Some(
        now.checked_add_signed(delay)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    )
}

/// Everything the send tasks share.
struct Shared {
    config: Config,
    composer: Composer,
    sender: Sender,
    /// The HTTP client of webhooks and of the Matrix account.
    hooks: Arc<webhook::Client>,
    /// herald's Matrix account, or why there is none.
    matrix: Result<matrix::Client, String>,
    store: Mutex<Store>,
    announcements: Cache<i64, Option<Arc<Announcement>>>,
    /// Alert texts by announcement and variant.
    rendered: Cache<(i64, Variant), Arc<Rendered>>,
    /// Post bodies by announcement, language and format.
    posts: Cache<(i64, Language, Format), Arc<RenderedPost>>,
    /// `component_update` bodies by announcement and component (`None`:
    /// the announcement did not change that component).
    component_posts: Cache<(i64, String), Option<Arc<RenderedPost>>>,
    retry_base: Duration,
    wake: Arc<Notify>,
    deferrals: Deferrals,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (each
        // call is its own statement or transaction), so carry on.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn announcement(&self, id: i64) -> Result<Option<Arc<Announcement>>, store::Error> {
        self.announcements
            .get_or_make(id, |id| Ok(self.store().announcement(*id)?.map(Arc::new)))
    }

    fn rendered(
        &self,
        id: i64,
        announcement: &Announcement,
        variant: Variant,
    ) -> Result<Arc<Rendered>, crate::compose::Error> {
        self.rendered.get_or_make((id, variant), |(_, variant)| {
            Ok(Arc::new(self.composer.render(
                &self.config,
                announcement,
                variant,
            )?))
        })
    }
}

/// Starts the mailer on a thread of its own with a single-threaded
/// runtime: its eight connections are served by one thread, with no
/// wake-ups across threads per message (a quarter of the CPU of a fan-out
/// went to those on the daemon's runtime), and its short SQLite reads may
/// block it without holding up the daemon. Database writes go to tokio's
/// blocking pool, so sending goes on while they commit.
pub fn spawn(
    config: Config,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    blocked: watch::Sender<Option<String>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("herald-mailer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(config, wake, shutdown, blocked)),
                Err(error) => {
                    tracing::error!("email delivery disabled: cannot start its runtime: {error}");
                }
            }
        })
}

/// Runs until `shutdown` turns true, then waits at most
/// ten seconds for sends in flight. Runs on the mailer's own
/// single-threaded runtime ([`spawn`]), so it may block briefly.
///
/// While the state database's token key cannot be used, no email can carry
/// a working link: the mailer says why in `blocked` (for `/healthz` and
/// the service status), logs it once, and looks again every minute.
pub async fn run(
    config: Config,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    blocked: watch::Sender<Option<String>>,
) {
    let mut blocked = Blocked::new(blocked);
    let shared = loop {
        match prepare(&config, &wake) {
            Ok(shared) => break shared,
            Err(Prepare::Blocked {
                summary,
                message,
                recheck,
            }) => {
                blocked.report(summary, message);
                tokio::select! {
                    () = tokio::time::sleep(recheck) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return;
                }
            }
            Err(Prepare::Failed(error)) => {
                tracing::error!("email delivery disabled: {error:#}");
                return;
            }
        }
    };
    blocked.clear("the mailer's problem is gone; email resumes");
    deliver_until_shutdown(shared, wake, shutdown, blocked).await;
}

/// Why the mailer sends nothing though it runs: said once in the log,
/// shown on `/healthz` and the status line until it passes.
struct Blocked {
    shown: watch::Sender<Option<String>>,
    reported: Option<String>,
}

impl Blocked {
    fn new(shown: watch::Sender<Option<String>>) -> Blocked {
        Blocked {
            shown,
            reported: None,
        }
    }

    /// Logs `message` unless it was the last one, and shows `summary`.
    fn report(&mut self, summary: &str, message: String) {
        if self.reported.as_ref() != Some(&message) {
            tracing::error!("{message}");
            self.shown.send_replace(Some(summary.to_owned()));
            self.reported = Some(message);
        }
    }

    /// The problem passed: says `resumed` if there was one.
    fn clear(&mut self, resumed: &str) {
        if self.reported.take().is_some() {
            tracing::info!("{resumed}");
            self.shown.send_replace(None);
        }
    }
}

/// How often a mailer blocked on the token key looks at it again.
const KEY_RECHECK: Duration = Duration::from_secs(60);
/// How often a mailer that cannot use the state database (locked by
/// another process, say) tries again.
const STATE_RECHECK: Duration = Duration::from_secs(10);

/// Why the mailer cannot start yet. `Blocked` may pass (the key restored,
/// the database unlocked), so the mailer waits and looks again; `Failed`
/// needs a new configuration.
enum Prepare {
    Blocked {
        summary: &'static str,
        message: String,
        recheck: Duration,
    },
    Failed(anyhow::Error),
}

impl Prepare {
    /// A state database that is busy is waited for; one that cannot be
    /// used at all (a file where the directory should be) stops the
    /// mailer, so that the watchdog has systemd restart herald.
    fn state(error: store::Error) -> Prepare {
        if !error.is_busy() {
            return Prepare::Failed(error.into());
        }
        Prepare::unusable(format!(
            "email waits until the state database can be used: {:#}",
            anyhow::Error::from(error)
        ))
    }

    /// The token key cannot be used: looked at again every minute.
    fn key(problem: &KeyProblem) -> Prepare {
        Prepare::Blocked {
            summary: problem.summary(),
            message: problem.to_string(),
            recheck: KEY_RECHECK,
        }
    }

    /// The state database cannot be used now: tried again soon.
    fn unusable(message: String) -> Prepare {
        Prepare::Blocked {
            summary: "state database unusable",
            message,
            recheck: STATE_RECHECK,
        }
    }
}

fn prepare(config: &Config, wake: &Arc<Notify>) -> Result<Arc<Shared>, Prepare> {
    let mut store = Store::open(&config.paths.state).map_err(Prepare::state)?;
    if let Some(problem) = store.key_problem() {
        return Err(Prepare::key(problem));
    }
    let released = store.release_leases().map_err(Prepare::state)?;
    if released > 0 {
        tracing::info!(
            released,
            "messages left in flight by the last run go back to pending"
        );
    }
    let sender = Sender::new(config).map_err(|error| Prepare::Failed(error.into()))?;
    let hooks = Arc::new(webhook::Client::new(&config.webhooks));
    let matrix = matrix::client(config, &hooks);
    let config = config.clone();
    Ok(Arc::new(Shared {
        retry_base: config.email_or_default().retry_base,
        composer: driver::load_email_templates(&config),
        sender,
        hooks,
        matrix,
        store: Mutex::new(store),
        announcements: Cache::new(),
        rendered: Cache::new(),
        posts: Cache::new(),
        component_posts: Cache::new(),
        wake: Arc::clone(wake),
        deferrals: Deferrals::default(),
        config,
    }))
}

async fn deliver_until_shutdown(
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut blocked: Blocked,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let (recorder, finished) = mpsc::unbounded_channel();
    let recording = tokio::spawn(record(Arc::clone(&shared), finished));
    // The next batch, leased while the one before it goes out: a fan-out
    // never waits for the database between batches.
    let mut ahead: Option<tokio::task::JoinHandle<Result<Vec<Job>, Prepare>>> = None;
    while !*shutdown.borrow() {
        // Reap finished sends so the set stays small.
        while tasks.try_join_next().is_some() {}
        let leased = match ahead.take() {
            Some(next) => next.await.unwrap_or_else(|error| {
                Err(Prepare::unusable(format!(
                    "cannot read the outbox: {error}"
                )))
            }),
            None => lease(Arc::clone(&shared)).await,
        };
        let jobs = match leased {
            Ok(jobs) => {
                blocked.clear("the outbox can be read again; email resumes");
                jobs
            }
            Err(Prepare::Blocked {
                summary,
                message,
                recheck,
            }) => {
                // Said once, shown on /healthz, tried again later: never
                // a loop that logs as fast as it fails.
                blocked.report(summary, message);
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(recheck) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            Err(Prepare::Failed(error)) => {
                tracing::error!("{error:#}");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            let next = shared.store().next_attempt().unwrap_or_else(|error| {
                tracing::error!("cannot read the outbox: {:#}", anyhow::Error::from(error));
                Some(clock::now() + chrono::Duration::seconds(60))
            });
            let sleep = next.map(|next| (next - clock::now()).to_std().unwrap_or(Duration::ZERO));
            tokio::select! {
                () = wake.notified() => {}
                () = sleep_or_forever(sleep) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // A full batch says more is due.
        if jobs.len() >= BATCH {
            ahead = Some(tokio::spawn(lease(Arc::clone(&shared))));
        }
        for job in jobs {
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = permit else { break };
            let shared = Arc::clone(&shared);
            let recorder = recorder.clone();
            let span = tracing::debug_span!("send", row = ?job.row());
            tasks.spawn(
                async move {
                    deliver(&shared, job, &recorder).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("leaving sends in flight; they are retried at the next start");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    drop(recorder);
    if let Err(error) = recording.await {
        tracing::error!("the delivery recorder stopped abnormally: {error}");
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// One email to send: an announcement to a subscriber (the outbox) or a
/// confirmation to an address that asked to subscribe (`requests`). Both
/// share the connections, the retries, the recorder and the shutdown.
enum Job {
    Alert(Leased),
    Confirm(LeasedConfirmation),
}

impl Job {
    fn row(&self) -> Queued {
        match self {
            Job::Alert(row) => Queued::Outbox(row.id),
            Job::Confirm(row) => Queued::Request(row.confirmation.id),
        }
    }

    /// Attempts made before this one, and when the email was queued.
    fn history(&self) -> (u32, DateTime<Utc>) {
        match self {
            Job::Alert(row) => (row.attempts, row.created),
            Job::Confirm(row) => (row.attempts, row.queued),
        }
    }

    fn recipient(&self) -> &str {
        match self {
            Job::Alert(row) => &row.subscriber.address,
            Job::Confirm(row) => &row.confirmation.address,
        }
    }

    fn channel(&self) -> Channel {
        match self {
            Job::Alert(row) => row.subscriber.channel,
            Job::Confirm(row) => row.confirmation.channel,
        }
    }
}

/// Leases what is due from both queues, confirmations first: someone is
/// waiting for those on the subscribe page. An error says why nothing
/// can be leased (the caller logs and shows it).
async fn lease(shared: Arc<Shared>) -> Result<Vec<Job>, Prepare> {
    let now = clock::now();
    let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
    let leased = {
        tokio::task::spawn_blocking(move || -> Result<Vec<Job>, store::Error> {
            let mut store = shared.store();
            let confirmations = store.lease_confirmations(now, lease_until, BATCH)?;
            let alerts = store.lease(now, lease_until, BATCH)?;
            Ok(confirmations
                .into_iter()
                .map(Job::Confirm)
                .chain(alerts.into_iter().map(Job::Alert))
                .collect())
        })
        .await
    };
    match leased {
        Ok(Ok(jobs)) => Ok(jobs),
        Ok(Err(store::Error::Key(problem))) => Err(Prepare::key(&problem)),
        Ok(Err(error)) => Err(Prepare::unusable(format!(
            "cannot read the outbox: {:#}",
            anyhow::Error::from(error)
        ))),
        Err(error) => Err(Prepare::unusable(format!(
            "cannot read the outbox: {error}"
        ))),
    }
}

/// A delivery whose outcome waits to be recorded; `recorded` fires once
/// it is in the database.
struct Finished {
    outcome: Outcome,
    recorded: oneshot::Sender<()>,
}

/// Composes, sends and records one row. Returns only once the outcome is
/// recorded, so the permit it holds also bounds the messages that a
/// crash could send twice.
async fn deliver(shared: &Shared, job: Job, recorder: &mpsc::UnboundedSender<Finished>) {
    // Composed before a connection is free, so that none waits for it.
    // Only JSON webhooks are queued component updates (`Store::enqueue`).
    let stray = matches!(&job, Job::Alert(row) if row.component.is_some())
        && !matches!(job.channel(), Channel::Webhook(_));
    let outcome = match job.channel() {
        _ if stray => Err(SendError::Park(
            "a component update is posted to JSON webhooks only".into(),
        )),
        Channel::Email => match compose(shared, &job, clock::now()) {
            Ok((message, file_name)) => shared.sender.send(&message, &file_name).await,
            Err(error) => Err(error),
        },
        Channel::Matrix => match matrix::compose(shared, &job) {
            Ok(message) => matrix::post(shared, job.recipient(), &message).await,
            Err(error) => Err(error),
        },
        Channel::Webhook(format) => match compose_post(shared, &job, format) {
            Ok((post_body, signing)) => {
                post(
                    &shared.hooks,
                    job.recipient(),
                    format,
                    post_body,
                    signing.as_deref(),
                )
                .await
            }
            Err(error) => Err(error),
        },
    };
    let done = clock::now();
    let delivery = match &outcome {
        Ok(()) => Delivery::Sent,
        Err(SendError::Park(reply)) => Delivery::Failed {
            reply: reply.clone(),
        },
        Err(SendError::Revoked(reply)) => Delivery::Revoked {
            reply: reply.clone(),
        },
        Err(SendError::RetryAfter(reply, after)) => {
            let (attempts, queued) = job.history();
            match next_attempt(shared.retry_base, attempts, queued, done) {
                Some(next) => Delivery::Retry {
                    // Not before the receiver asked, nor sooner than the
                    // backoff would.
                    next: next.max(done + chrono::Duration::from_std(*after).unwrap_or_default()),
                    reply: reply.clone(),
                },
                None => Delivery::Failed {
                    reply: reply.clone(),
                },
            }
        }
        Err(SendError::Retry(reply)) => {
            let (attempts, queued) = job.history();
            match next_attempt(shared.retry_base, attempts, queued, done) {
                Some(next) => Delivery::Retry {
                    next,
                    reply: reply.clone(),
                },
                None => Delivery::Failed {
                    reply: reply.clone(),
                },
            }
        }
    };
    let (recorded, was_recorded) = oneshot::channel();
    let finished = Finished {
        outcome: Outcome {
            row: job.row(),
            at: done,
            delivery,
        },
        recorded,
    };
    if recorder.send(finished).is_err() || was_recorded.await.is_err() {
        // The recorder logged why; the lease expires and the row is retried.
        return;
    }
    let row = job.row();
    match &outcome {
        Ok(()) => {
            tracing::debug!(to = %job.recipient(), "sent");
            shared.deferrals.sent();
        }
        Err(SendError::Retry(reply) | SendError::RetryAfter(reply, _)) => {
            let attempts = job.history().0 + 1;
            tracing::debug!(?row, attempts, %reply, "delivery deferred");
            shared.deferrals.deferred(reply);
            // The retry may be earlier than what the loop sleeps until.
            shared.wake.notify_one();
        }
        Err(SendError::Park(reply)) => {
            tracing::warn!(?row, %reply, "delivery failed");
        }
        Err(SendError::Revoked(reply)) if job.channel() == Channel::Matrix => {
            tracing::warn!(
                room = %job.recipient(),
                %reply,
                "herald cannot post to the Matrix room (kicked, banned, or no such room); its subscription is removed"
            );
        }
        Err(SendError::Revoked(reply)) => {
            tracing::warn!(
                url = %job.recipient(),
                %reply,
                "the chat webhook is gone; its subscription is removed"
            );
        }
    }
}

/// How often deferrals are summed up in the log while they go on.
const DEFERRAL_REPORT: Duration = Duration::from_secs(60);

/// Deferred deliveries, logged as a few lines rather than one per message
/// and attempt: during an outage of the server every queued message is
/// deferred again and again, and the log must stay readable.
#[derive(Default)]
struct Deferrals(Mutex<DeferralCount>);

#[derive(Default)]
struct DeferralCount {
    /// Deferrals since the last line.
    unreported: u64,
    /// The reply of the last line, and when it was written.
    reported: Option<(String, std::time::Instant)>,
}

impl Deferrals {
    /// A warning for the first deferral with a new reply; then one line
    /// a minute with the count.
    fn deferred(&self, reply: &str) {
        let mut count = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        count.unreported += 1;
        let due = match &count.reported {
            None => true,
            Some((last, at)) => last != reply || at.elapsed() >= DEFERRAL_REPORT,
        };
        if due {
            tracing::warn!(
                deliveries = count.unreported,
                %reply,
                "delivery deferred; each is tried again later (one line a minute while this goes on)"
            );
            count.unreported = 0;
            count.reported = Some((reply.to_owned(), std::time::Instant::now()));
        }
    }

    /// A message went through: the deferrals not yet reported are.
    fn sent(&self) {
        let mut count = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if count.reported.take().is_some() {
            tracing::info!(
                deferred = count.unreported,
                "the server accepts mail again; deferrals since the last report"
            );
            count.unreported = 0;
        }
    }
}

/// Most outcomes recorded in one transaction.
const RECORD_BATCH: usize = 256;

/// Records outcomes as they come: each commit takes everything that
/// finished while the previous one ran. Ends when every sender is gone.
async fn record(shared: Arc<Shared>, mut finished: mpsc::UnboundedReceiver<Finished>) {
    let mut buffer = Vec::with_capacity(RECORD_BATCH);
    while finished.recv_many(&mut buffer, RECORD_BATCH).await > 0 {
        let (outcomes, waiting): (Vec<Outcome>, Vec<oneshot::Sender<()>>) = buffer
            .drain(..)
            .map(|finished| (finished.outcome, finished.recorded))
            .unzip();
        let count = outcomes.len();
        let store = Arc::clone(&shared);
        match tokio::task::spawn_blocking(move || store.store().record(&outcomes)).await {
            Ok(Ok(())) => {
                for waiting in waiting {
                    let _ = waiting.send(());
                }
            }
            // Dropping `waiting` tells the senders; their rows stay leased
            // and are sent again when the lease expires.
            Ok(Err(error)) => tracing::error!(
                messages = count,
                "cannot record deliveries: {:#}",
                anyhow::Error::from(error)
            ),
            Err(error) => tracing::error!(messages = count, "cannot record deliveries: {error}"),
        }
    }
}

/// The message of `job`, and the file name it gets with `smtp = "file"`.
fn compose(shared: &Shared, job: &Job, now: DateTime<Utc>) -> Result<(Message, String), SendError> {
    let row = match job {
        Job::Alert(row) => row,
        Job::Confirm(row) => {
            let message = shared
                .composer
                .confirmation(&shared.config, &row.confirmation, now)
                .map_err(|error| SendError::Park(format!("{:#}", anyhow::Error::from(error))))?;
            return Ok((message, format!("confirm.{}.eml", row.confirmation.id)));
        }
    };
    let announcement = shared
        .announcement(row.announcement)
        .map_err(|error| SendError::Retry(format!("{:#}", anyhow::Error::from(error))))?
        .ok_or_else(|| SendError::Park("the announcement is missing from the database".into()))?;
    let park =
        |error: crate::compose::Error| SendError::Park(format!("{:#}", anyhow::Error::from(error)));
    let variant = Variant::of(&announcement, &row.subscriber);
    let rendered = shared
        .rendered(row.announcement, &announcement, variant)
        .map_err(park)?;
    let message = shared
        .composer
        .alert(
            &shared.config,
            &announcement,
            &rendered,
            &row.subscriber,
            now,
        )
        .map_err(park)?;
    let file_name = format!(
        "{}.{}.{}.eml",
        announcement.incident,
        announcement.instant.format("%Y%m%dT%H%M%SZ"),
        row.subscriber.id
    );
    Ok((message, file_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_from_the_base_up_to_sixty_times_it() {
        let minute = Duration::from_secs(60);
        let delays: Vec<u64> = (0..9)
            .map(|attempts| retry_delay(minute, attempts).as_secs() / 60)
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(
            retry_delay(Duration::from_millis(200), 0),
            Duration::from_millis(200)
        );
        assert_eq!(
            retry_delay(Duration::from_millis(200), 40),
            Duration::from_secs(12)
        );
    }

    #[test]
    fn transient_failures_give_up_after_two_days() {
        let created = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(
            next_attempt(minute, 0, created, created),
            Some(created + chrono::Duration::minutes(1))
        );
        let almost = created + chrono::Duration::days(2) - chrono::Duration::seconds(1);
        assert_eq!(
            next_attempt(minute, 30, created, almost),
            Some(almost + chrono::Duration::hours(1))
        );
        assert_eq!(
            next_attempt(minute, 30, created, created + chrono::Duration::days(2)),
            None
        );
    }
}
