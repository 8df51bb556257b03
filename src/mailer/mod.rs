//! Drains the outbox. Does I/O (SQLite, SMTP, files).
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

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::announce::Announcement;
use crate::clock;
use crate::compose::{Composer, Rendered, Variant};
use crate::config::{Config, Tls, Transport};
use crate::driver;
use crate::fsio;
use crate::store::{
    self, Delivery, KeyProblem, Leased, LeasedConfirmation, Outcome, Queued, Store,
};

/// SMTP connections, each a worker that sends one message at a time.
pub const CONCURRENCY: usize = 8;
/// Messages between leaving the outbox and their outcome being recorded:
/// composed and waiting for a connection, on the wire, or waiting for the
/// next commit. Enough that a connection finds the next message waiting
/// when it finishes one (so that the two go in one write) while the
/// previous ones are still being recorded: with twice [`CONCURRENCY`],
/// half as many, the connections waited for the database and the
/// fan-out ran at 52-63 % of smtp-source's rate instead of 72 % and more.
/// These are the most a crash may send twice.
pub const IN_FLIGHT: usize = 4 * CONCURRENCY;
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
    #[error("invalid [email] smtp setting `{url}`: {problem}")]
    Url { url: String, problem: &'static str },
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
    /// Give up: a 5xx reply or a message that cannot be built.
    Park(String),
}

impl SendError {
    pub fn reply(&self) -> &str {
        match self {
            SendError::Retry(reply) | SendError::Park(reply) => reply,
        }
    }
}

/// Whether `error` is the server's reply, not a failed connection.
fn is_reply(error: &lettre::transport::smtp::Error) -> bool {
    error.is_permanent() || error.is_transient()
}

fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let reply = error.to_string();
    // 530 "authentication required" answers the session, not this
    // message: a missing password must not fail every queued message.
    let session = error.status().is_some_and(|code| code.to_string() == "530");
    if error.is_permanent() && !session {
        SendError::Park(reply)
    } else {
        SendError::Retry(reply)
    }
}

/// Connecting gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// One message (MAIL to the reply after DATA) gives up after this long.
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// A connection idle longer than this is checked with NOOP first.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// SMTP connections, each driven by a worker task of its own that takes
/// messages from one queue: at most [`CONCURRENCY`] connections, opened
/// as the queue needs them and reused across messages.
///
/// When the server offers PIPELINING (RFC 2920), a worker that finishes a
/// message's text and finds another message waiting sends the text, its
/// end marker and the next message's MAIL, RCPT and DATA in one write,
/// then reads the replies: one round trip per message while the queue is
/// full, instead of four without pipelining.
///
/// herald opens the TCP connections itself (`Corked`, `TCP_NODELAY`):
/// lettre writes separately what it sends in one go, and with Nagle's
/// algorithm the second write waits for the server's delayed ACK, 40 ms
/// per message (180 messages a second into Postfix's smtp-sink instead of
/// thousands). For `smtps://` lettre must open the connection (TLS from
/// the first byte) and the delay remains where lettre sends the message:
/// STARTTLS on port 587 is the fast way to a TLS relay.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: Tls,
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    queue: mpsc::UnboundedSender<Handoff>,
    /// Shared by the workers; the one holding the lock waits for the next
    /// message, the busy ones peek at it without waiting.
    waiting: tokio::sync::Mutex<mpsc::UnboundedReceiver<Handoff>>,
    workers: std::sync::Once,
}

/// A message for a connection, and where its outcome goes.
struct Handoff {
    message: Formatted,
    done: oneshot::Sender<Result<(), SendError>>,
}

impl Handoff {
    fn finish(self, outcome: Result<(), SendError>) {
        // The sender may have given up (shutdown); the row stays leased.
        let _ = self.done.send(outcome);
    }
}

/// One SMTP connection, and whether its server takes pipelined commands.
struct Session {
    connection: AsyncSmtpConnection,
    /// The server announced PIPELINING.
    pipelining: bool,
    /// When it last finished a message.
    idle_since: tokio::time::Instant,
}

/// A failure before any message was offered (greeting, EHLO, STARTTLS,
/// AUTH) says nothing about the recipient: even a 5xx there, such as a
/// wrong password (535), is retried, so that mail waits while the admin
/// fixes the setting instead of failing for good.
fn session_error(error: lettre::transport::smtp::Error) -> SendError {
    SendError::Retry(error.to_string())
}

fn connection_error(error: impl std::fmt::Display) -> SendError {
    SendError::Retry(format!("Connection error: {error}"))
}

fn timed_out() -> SendError {
    SendError::Retry("timed out waiting for the server".into())
}

/// How one exchange with the server went.
enum Exchange {
    /// Every reply, in order; a refusal as its error.
    Replies(Vec<Result<(), lettre::transport::smtp::Error>>),
    /// The connection failed or timed out before all replies came: the
    /// replies read before, and why.
    Broken(Vec<Result<(), lettre::transport::smtp::Error>>, SendError),
}

impl SmtpPool {
    /// A new session, greeted, upgraded and logged in; a server that
    /// stops answering at any step gives up after [`CONNECT_TIMEOUT`].
    async fn connect(&self) -> Result<Session, SendError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open())
            .await
            .unwrap_or_else(|_| Err(connection_error("the server did not answer in time")))
    }

    async fn open(&self) -> Result<Session, SendError> {
        let mut connection = match (&self.tls, &self.tls_parameters) {
            (Tls::Wrapper, Some(parameters)) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(CONNECT_TIMEOUT),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(session_error)?,
            _ => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| connection_error("connection timed out"))?
                .map_err(connection_error)?;
                stream.set_nodelay(true).map_err(connection_error)?;
                let mut connection = AsyncSmtpConnection::connect_with_transport(
                    Box::new(Corked::new(stream)),
                    &self.hello,
                )
                .await
                .map_err(session_error)?;
                if let (Tls::StartTls, Some(parameters)) = (&self.tls, &self.tls_parameters) {
                    connection
                        .starttls(parameters.clone(), &self.hello)
                        .await
                        .map_err(session_error)?;
                }
                connection
            }
        };
        // lettre keeps only the extensions it uses itself from the EHLO
        // reply, and PIPELINING is not one of them: ask once more, before
        // AUTH (an EHLO resets the session).
        let hello = connection
            .command(Ehlo::new(self.hello.clone()))
            .await
            .map_err(session_error)?;
        let pipelining = hello.message().skip(1).any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        });
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(session_error)?;
        }
        Ok(Session {
            connection,
            pipelining,
            idle_since: tokio::time::Instant::now(),
        })
    }

    /// Hands `message` to the connections; `Ok` once the server took it.
    async fn send(self: &Arc<Self>, message: Formatted) -> Result<(), SendError> {
        self.workers.call_once(|| {
            for _ in 0..CONCURRENCY {
                tokio::spawn(Arc::clone(self).work());
            }
        });
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Handoff { message, done })
            .map_err(|_| SendError::Retry("the mailer is stopping".into()))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(SendError::Retry("the mailer is stopping".into())))
    }

    /// One connection's life: waits for a message, sends it and whatever
    /// follows it without waiting, keeps the connection for the next.
    async fn work(self: Arc<Self>) {
        let mut session: Option<Session> = None;
        let mut carried: Option<Handoff> = None;
        loop {
            let first = match carried.take() {
                Some(handoff) => handoff,
                None => match self.waiting.lock().await.recv().await {
                    Some(handoff) => handoff,
                    None => return,
                },
            };
            if let Some(idle) = &mut session
                && idle.idle_since.elapsed() >= IDLE_CHECK
                && !tokio::time::timeout(IDLE_CHECK, idle.connection.test_connected())
                    .await
                    .unwrap_or(false)
            {
                session = None;
            }
            (session, carried) = self.chain(session, first).await;
            if let Some(session) = &mut session {
                session.idle_since = tokio::time::Instant::now();
            }
        }
    }

    /// The next message if one is waiting now.
    fn peek(&self) -> Option<Handoff> {
        self.waiting.try_lock().ok()?.try_recv().ok()
    }

    /// Sends `first`, then, while messages are waiting, the next ones on
    /// the same connection. Returns the connection if it is still good,
    /// and a message taken from the queue but not sent: the next one, or
    /// `first` itself when the reused connection turned out to be closed
    /// before the server took anything (the worker then tries it at once
    /// on a new connection).
    async fn chain(
        &self,
        session: Option<Session>,
        first: Handoff,
    ) -> (Option<Session>, Option<Handoff>) {
        let (mut session, reused) = match session {
            Some(session) => (session, true),
            None => match self.connect().await {
                Ok(session) => (session, false),
                Err(error) => {
                    first.finish(Err(error));
                    return (None, None);
                }
            },
        };
        if !(session.pipelining && first.message.pipelinable()) {
            let message = &first.message;
            let sent = tokio::time::timeout(
                SEND_TIMEOUT,
                session.connection.send(&message.envelope, &message.bytes),
            )
            .await;
            // After a refusal lettre marks the connection broken.
            let error = match sent {
                Ok(Ok(_)) => {
                    first.finish(Ok(()));
                    return (Some(session), None);
                }
                Ok(Err(error)) if reused && !is_reply(&error) => return (None, Some(first)),
                Ok(Err(error)) => classify(&error),
                Err(_) => timed_out(),
            };
            first.finish(Err(error));
            return (None, None);
        }
        let commands = first.message.commands();
        match session.exchange(&commands, first.message.replies()).await {
            Exchange::Replies(replies) => match first_refusal(replies) {
                // The server may hold part of the transaction, or wait
                // for the text after a DATA it took: closing is simpler
                // than RSET, and closing in the middle of DATA makes it
                // drop the message.
                Some(error) => {
                    first.finish(Err(error));
                    (None, None)
                }
                None => self.texts(session, first).await,
            },
            // Nothing reached the server in a way it took.
            Exchange::Broken(_, _) if reused => (None, Some(first)),
            Exchange::Broken(_, error) => {
                first.finish(Err(error));
                (None, None)
            }
        }
    }

    /// Sends the text of `current`, whose DATA the server took, with the
    /// next waiting message's commands behind it, and so on while messages
    /// wait.
    async fn texts(
        &self,
        mut session: Session,
        mut current: Handoff,
    ) -> (Option<Session>, Option<Handoff>) {
        loop {
            let next = self.peek();
            let chained = next
                .as_ref()
                .filter(|next| next.message.pipelinable())
                .map(|next| next.message.replies());
            let mut text = current.message.data();
            if chained.is_some()
                && let Some(next) = &next
            {
                text.push_str(&next.message.commands());
            }
            let replies = match session.exchange(&text, 1 + chained.unwrap_or(0)).await {
                Exchange::Replies(replies) => replies,
                Exchange::Broken(replies, error) => {
                    // The text's reply, if it came before the connection
                    // failed (a server that answers, then closes at its
                    // limit of messages per connection), settles it.
                    // Without one, the text may have arrived: sent again
                    // later, the duplicate a lost connection can cause.
                    let outcome = match replies.into_iter().next() {
                        Some(reply) => reply.map_err(|refusal| classify(&refusal)),
                        None => Err(error),
                    };
                    current.finish(outcome);
                    return (None, next);
                }
            };
            let mut replies = replies.into_iter();
            let accepted = replies.next().unwrap_or(Ok(()));
            current.finish(accepted.map_err(|error| classify(&error)));
            let Some(next) = next else {
                return (Some(session), None);
            };
            if chained.is_none() {
                return (Some(session), Some(next));
            }
            if let Some(error) = first_refusal(replies.collect()) {
                next.finish(Err(error));
                return (None, None);
            }
            current = next;
        }
    }
}

/// The first refusal among `replies`, as what to do about it.
fn first_refusal(replies: Vec<Result<(), lettre::transport::smtp::Error>>) -> Option<SendError> {
    replies
        .into_iter()
        .find_map(Result::err)
        .map(|error| classify(&error))
}

impl Session {
    /// Writes `text` and reads `count` replies. Every reply is read, even
    /// after a refusal, so that none is left for the next command.
    async fn exchange(&mut self, text: &str, count: usize) -> Exchange {
        let mut replies = Vec::with_capacity(count);
        let reading = async {
            for index in 0..count {
                let reply = if index == 0 {
                    self.connection.command(text).await
                } else {
                    self.connection.read_response().await
                };
                match reply {
                    Ok(_) => replies.push(Ok(())),
                    Err(error) if is_reply(&error) => replies.push(Err(error)),
                    Err(error) => return Err(classify(&error)),
                }
            }
            Ok(())
        };
        // No QUIT on a timeout: a server that stopped answering would hold
        // the connection's worker forever.
        let outcome = tokio::time::timeout(SEND_TIMEOUT, reading)
            .await
            .unwrap_or_else(|_| Err(timed_out()));
        match outcome {
            Ok(()) => Exchange::Replies(replies),
            Err(error) => Exchange::Broken(replies, error),
        }
    }
}

/// A TCP stream that holds written bytes until the next read.
///
/// lettre flushes after every write, and writes a message and its final
/// `.` line separately: two segments, and two wake-ups of the server, per
/// message. SMTP without pipelining always reads a reply after it writes,
/// so holding writes until then sends each command, and each message with
/// its end marker, in one segment, and cannot leave bytes unsent while
/// waiting for an answer. Under TLS (STARTTLS), lettre's TLS layer sits on
/// top of this stream, so the same holds for its records.
#[derive(Debug)]
struct Corked {
    stream: tokio::net::TcpStream,
    held: Vec<u8>,
    /// How much of `held` is already written.
    written: usize,
}

/// Above this many held bytes, writing goes out at once.
const CORK_LIMIT: usize = 64 * 1024;

impl Corked {
    fn new(stream: tokio::net::TcpStream) -> Corked {
        Corked {
            stream,
            held: Vec::new(),
            written: 0,
        }
    }

    /// Writes out what is held.
    fn poll_drain(&mut self, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.written < self.held.len() {
            let remaining = &self.held[self.written..];
            match Pin::new(&mut self.stream).poll_write(context, remaining) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(count)) => self.written += count,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.held.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Corked {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(context))?;
        Pin::new(&mut this.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for Corked {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + bytes.len() > CORK_LIMIT {
            std::task::ready!(this.poll_drain(context))?;
        }
        this.held.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    /// Held until the next read; see [`Corked`].
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(context))?;
        Pin::new(&mut this.stream).poll_shutdown(context)
    }
}

impl AsyncTokioStream for Corked {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.stream.peer_addr()
    }
}

/// A message as it goes on the wire.
struct Formatted {
    envelope: Envelope,
    bytes: Vec<u8>,
}

impl Formatted {
    /// Whether it can go pipelined: nothing needs SMTPUTF8 or 8BITMIME,
    /// which lettre's own transaction asks for.
    fn pipelinable(&self) -> bool {
        let envelope = &self.envelope;
        envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .all(|address| AsRef::<str>::as_ref(address).is_ascii())
            && self.bytes.is_ascii()
    }

    /// MAIL, RCPT and DATA, to go in one write.
    fn commands(&self) -> String {
        let envelope = &self.envelope;
        let mut commands = Mail::new(envelope.from().cloned(), Vec::new()).to_string();
        for to in envelope.to() {
            commands.push_str(&Rcpt::new(to.clone(), Vec::new()).to_string());
        }
        commands.push_str(&Data.to_string());
        commands
    }

    /// The replies [`Formatted::commands`] get: MAIL's, one per RCPT,
    /// DATA's.
    fn replies(&self) -> usize {
        self.envelope.to().len() + 2
    }

    /// The text as it goes after DATA's 354: a line that starts with a
    /// dot gets another (RFC 5321, section 4.5.2), then the end marker.
    /// lettre's own encoder for this is private to it. Only called for
    /// [`Formatted::pipelinable`] (ASCII) messages.
    fn data(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut data = String::with_capacity(text.len() + 64);
        for line in text.split_inclusive('\n') {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
        }
        if !data.is_empty() && !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        data
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Sender {
    Smtp(Arc<SmtpPool>),
    /// `.eml` files in this directory, one per message, named after it,
    /// so writing one again replaces it.
    Files(PathBuf),
}

impl Sender {
    /// The configured transport.
    pub fn new(config: &Config) -> Result<Sender, Error> {
        let email = config.email_or_default();
        let transport = Transport::parse(&email.smtp).map_err(|problem| Error::Url {
            url: email.smtp.clone(),
            problem,
        })?;
        let (host, port, tls) = match transport {
            Transport::File => {
                let dir = config.paths.state.join("outbox-files");
                std::fs::create_dir_all(&dir).map_err(|source| Error::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
                return Ok(Sender::Files(dir));
            }
            Transport::Smtp { host, port, tls } => (host, port, tls),
        };
        let tls_parameters = match tls {
            Tls::None => None,
            Tls::StartTls | Tls::Wrapper => Some(TlsParameters::new(host.clone()).map_err(
                |source| Error::Tls {
                    host: host.clone(),
                    source,
                },
            )?),
        };
        let mut credentials = None;
        if let Some(path) = &email.smtp_password_file {
            let password = std::fs::read_to_string(path).map_err(|source| Error::Password {
                path: path.clone(),
                source,
            })?;
            let user = email.smtp_user.clone().unwrap_or_else(|| {
                email
                    .from
                    .parse::<lettre::message::Mailbox>()
                    .map_or_else(|_| email.from.clone(), |mailbox| mailbox.email.to_string())
            });
            credentials = Some(Credentials::new(
                user,
                password.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        let (queue, waiting) = mpsc::unbounded_channel();
        Ok(Sender::Smtp(Arc::new(SmtpPool {
            host,
            port,
            tls,
            tls_parameters,
            credentials,
            hello: ClientId::default(),
            queue,
            waiting: tokio::sync::Mutex::new(waiting),
            workers: std::sync::Once::new(),
        })))
    }

    /// Sends one message; `Ok` only once the server accepted it (or the
    /// file is on disk).
    pub async fn send(&self, message: &Message, file_name: &str) -> Result<(), SendError> {
        match self {
            Sender::Smtp(pool) => {
                let message = Formatted {
                    envelope: message.envelope().clone(),
                    bytes: message.formatted(),
                };
                pool.send(message).await
            }
            Sender::Files(dir) => {
                let path = dir.join(file_name);
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || fsio::replace_file(&path, &bytes))
                    .await
                    .map_err(|error| SendError::Retry(error.to_string()))?
                    .map_err(|error| SendError::Retry(format!("{:#}", anyhow::Error::from(error))))
            }
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
    store: Mutex<Store>,
    announcements: Mutex<HashMap<i64, Option<Arc<Announcement>>>>,
    /// Alert texts by announcement and variant.
    rendered: Mutex<HashMap<(i64, Variant), Arc<Rendered>>>,
    retry_base: Duration,
    wake: Arc<Notify>,
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
        let mut cache = self
            .announcements
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(&id) {
            return Ok(found.clone());
        }
        let found = self.store().announcement(id)?.map(Arc::new);
        cache.insert(id, found.clone());
        Ok(found)
    }

    /// The texts of `announcement` for `variant`, rendered once.
    fn rendered(
        &self,
        id: i64,
        announcement: &Announcement,
        variant: Variant,
    ) -> Result<Arc<Rendered>, crate::compose::Error> {
        let mut cache = self
            .rendered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (id, variant);
        if let Some(found) = cache.get(&key) {
            return Ok(Arc::clone(found));
        }
        let rendered = Arc::new(self.composer.render(&self.config, announcement, &key.1)?);
        // Variants are few per fan-out; this only bounds a long run.
        if cache.len() >= RENDERED_CACHE {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&rendered));
        Ok(rendered)
    }
}

/// Most alert texts kept between fan-outs.
const RENDERED_CACHE: usize = 256;

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
    let mut reported = None;
    let shared = loop {
        match prepare(&config, &wake) {
            Ok(shared) => break shared,
            Err(Prepare::Blocked(problem)) => {
                if reported.as_ref() != Some(&problem) {
                    tracing::error!("{problem}");
                    blocked.send_replace(Some(problem.summary().to_owned()));
                    reported = Some(problem);
                }
                tokio::select! {
                    () = tokio::time::sleep(KEY_RECHECK) => {}
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
    if reported.is_some() {
        tracing::info!("the token key is usable again; email resumes");
        blocked.send_replace(None);
    }
    deliver_until_shutdown(shared, wake, shutdown).await;
}

/// How often a mailer blocked on the token key looks at it again.
const KEY_RECHECK: Duration = Duration::from_secs(60);

enum Prepare {
    Blocked(KeyProblem),
    Failed(anyhow::Error),
}

fn prepare(config: &Config, wake: &Arc<Notify>) -> Result<Arc<Shared>, Prepare> {
    let store = Store::open(&config.paths.state).map_err(|error| Prepare::Failed(error.into()))?;
    if let Some(problem) = store.key_problem() {
        return Err(Prepare::Blocked(problem.clone()));
    }
    let config = config.clone();
    let prepared = (|| -> anyhow::Result<Shared> {
        let sender = Sender::new(&config)?;
        let mut store = store;
        let released = store.release_leases()?;
        if released > 0 {
            tracing::info!(
                released,
                "messages left in flight by the last run go back to pending"
            );
        }
        Ok(Shared {
            retry_base: config.email_or_default().retry_base,
            composer: driver::load_email_templates(&config),
            sender,
            store: Mutex::new(store),
            announcements: Mutex::new(HashMap::new()),
            rendered: Mutex::new(HashMap::new()),
            wake: Arc::clone(wake),
            config,
        })
    })();
    prepared.map(Arc::new).map_err(Prepare::Failed)
}

async fn deliver_until_shutdown(
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let (recorder, finished) = mpsc::unbounded_channel();
    let recording = tokio::spawn(record(Arc::clone(&shared), finished));
    while !*shutdown.borrow() {
        // Reap finished sends so the set stays small.
        while tasks.try_join_next().is_some() {}
        let now = clock::now();
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let jobs = lease(&shared, now, lease_until).await;
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
}

/// Leases what is due from both queues, confirmations first: someone is
/// waiting for those on the subscribe page.
async fn lease(shared: &Arc<Shared>, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Vec<Job> {
    let leased = {
        let shared = Arc::clone(shared);
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
        Ok(Ok(jobs)) => jobs,
        Ok(Err(error)) => {
            tracing::error!("cannot read the outbox: {:#}", anyhow::Error::from(error));
            Vec::new()
        }
        Err(error) => {
            tracing::error!("cannot read the outbox: {error}");
            Vec::new()
        }
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
    let outcome = match compose(shared, &job, clock::now()) {
        Ok((message, file_name)) => shared.sender.send(&message, &file_name).await,
        Err(error) => Err(error),
    };
    let done = clock::now();
    let delivery = match &outcome {
        Ok(()) => Delivery::Sent,
        Err(SendError::Park(reply)) => Delivery::Failed {
            reply: reply.clone(),
        },
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
        }
        Err(SendError::Retry(reply)) => {
            let attempts = job.history().0 + 1;
            tracing::warn!(?row, attempts, %reply, "delivery deferred");
            // The retry may be earlier than what the loop sleeps until.
            shared.wake.notify_one();
        }
        Err(SendError::Park(reply)) => {
            tracing::warn!(?row, %reply, "delivery failed");
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
    fn text_after_data_is_dot_stuffed_and_ends_once() {
        let message = |bytes: &[u8]| Formatted {
            envelope: Envelope::new(None, vec!["a@example.org".parse().unwrap()]).unwrap(),
            bytes: bytes.to_vec(),
        };
        assert_eq!(
            message(b"a\r\n.b\r\n..c\r\n.\r\nd\r\n").data(),
            "a\r\n..b\r\n...c\r\n..\r\nd\r\n.\r\n"
        );
        assert_eq!(
            message(b".first\r\nlast").data(),
            "..first\r\nlast\r\n.\r\n"
        );
        assert_eq!(message(b"").data(), ".\r\n");
        let envelope = message(b"x").commands();
        assert_eq!(
            envelope,
            "MAIL FROM:<>\r\nRCPT TO:<a@example.org>\r\nDATA\r\n"
        );
        assert_eq!(message(b"x").replies(), 3);
        assert!(message(b"plain").pipelinable());
        assert!(!message("8bit \u{e5}".as_bytes()).pipelinable());
    }

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
