//! The SMTP transport. Does I/O (TCP, TLS, the password file).
//!
//! [`SmtpPool`]: up to [`CONCURRENCY`] connections to one server, each
//! driven by a worker that takes messages from one queue, with MAIL, RCPT
//! and DATA pipelined (RFC 2920) when the server offers it, and the next
//! message's commands written behind the previous message's text while
//! the queue is full. Every step has a timeout; a reply is classified as
//! a [`SendError`]: retry later, or give up on the message.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::{Error, SendError};
use crate::config::{Email, Tls};

/// SMTP connections, each a worker that sends one message at a time.
pub const CONCURRENCY: usize = 8;

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
    /// Connections to `host:port` secured as `tls` says, logging in with
    /// `email`'s password file if it names one. Nothing is opened yet:
    /// reads the password file only.
    pub(super) fn new(email: &Email, host: String, port: u16, tls: Tls) -> Result<SmtpPool, Error> {
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
            let user = email
                .smtp_user
                .clone()
                .unwrap_or_else(|| email.from.email.to_string());
            credentials = Some(Credentials::new(
                user,
                password.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        let (queue, waiting) = mpsc::unbounded_channel();
        Ok(SmtpPool {
            host,
            port,
            tls,
            tls_parameters,
            credentials,
            hello: ClientId::default(),
            queue,
            waiting: tokio::sync::Mutex::new(waiting),
            workers: std::sync::Once::new(),
        })
    }

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
    pub(super) async fn send(self: &Arc<Self>, message: &Message) -> Result<(), SendError> {
        let message = Formatted {
            envelope: message.envelope().clone(),
            bytes: message.formatted(),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
