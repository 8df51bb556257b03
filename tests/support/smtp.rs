//! A small SMTP server on 127.0.0.1 for tests: it speaks enough SMTP for
//! a real client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps
//! every message it accepted, can reject chosen recipients with a given
//! reply, and can be started on a port that was closed before (a server
//! that was down).
//!
//! With a [`Setup`] it also speaks TLS, from the first byte or after
//! STARTTLS, and AUTH PLAIN and LOGIN, offered over TLS only as real
//! servers do. It records what every session did: whether it was
//! encrypted, each command verb, each login attempt and each failed TLS
//! handshake.

#![allow(dead_code, reason = "each test binary uses a part of the server")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
    /// Whether the session that sent it was encrypted.
    pub tls: bool,
    /// The user the session authenticated as, if it did.
    pub user: Option<String>,
    /// When the server accepted it (after the final `.`).
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One AUTH exchange, as the server decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub mechanism: String,
    pub user: String,
    pub password: String,
    pub accepted: bool,
}

/// One command a client sent, by verb (`EHLO`, `STARTTLS`, `AUTH`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    pub verb: String,
    /// Whether it came over TLS.
    pub tls: bool,
}

/// How the server speaks TLS.
#[derive(Clone, Default)]
pub enum Encryption {
    /// Plain text only.
    #[default]
    None,
    /// Plain text that offers STARTTLS (`250-STARTTLS`).
    StartTls(Arc<ServerConfig>),
    /// TLS from the first byte, like port 465.
    Implicit(Arc<ServerConfig>),
}

/// What the server offers and demands beyond plain SMTP.
#[derive(Clone)]
pub struct Setup {
    pub encryption: Encryption,
    /// The one user and password that AUTH accepts; without it (or
    /// without TLS) AUTH is not offered.
    pub login: Option<(String, String)>,
    /// The mechanisms offered, in order, e.g. `["PLAIN", "LOGIN"]`.
    pub mechanisms: Vec<&'static str>,
    /// MAIL before a successful AUTH gets `530`.
    pub require_auth: bool,
    /// Offers PIPELINING (RFC 2920), as Postfix and Exim do.
    pub pipelining: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            encryption: Encryption::None,
            login: None,
            mechanisms: Vec::new(),
            require_auth: false,
            pipelining: true,
        }
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Recipient → full reply line for RCPT, e.g. `550 5.1.1 no such user`.
    rejects: HashMap<String, String>,
    /// Recipient → full reply line to the end of the text (after DATA).
    text_rejects: HashMap<String, String>,
    /// Texts left until the server hangs up instead of answering one
    /// (and keeps nothing of it); `None` never.
    hang_up_in: Option<usize>,
    /// Texts left until the server keeps and answers one, then hangs up
    /// (as servers with a limit of messages per connection do).
    close_in: Option<usize>,
    /// Delay before answering DATA, to keep messages in flight longer.
    data_delay: Duration,
    connections: usize,
    logins: Vec<Login>,
    said: Vec<Said>,
    /// MAIL commands that came with the next command already behind them
    /// (pipelined).
    grouped_mail: usize,
    /// Messages whose end marker came with the next command behind it.
    chained: usize,
    /// Why TLS handshakes failed, as the server saw it.
    handshake_failures: Vec<String>,
}

pub struct SmtpServer {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<thread::JoinHandle<()>>,
}

/// A port on 127.0.0.1 that nothing listens on (for a server that is down).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(0)
    }

    pub fn start_on(port: u16) -> SmtpServer {
        SmtpServer::start_with(port, Setup::default())
    }

    /// A server on `port` (0 for any) that offers what `setup` says.
    pub fn start_with(port: u16, setup: Setup) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let setup = Arc::new(setup);
        let acceptor = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = Arc::clone(&state);
                            let stop = Arc::clone(&stop);
                            let setup = Arc::clone(&setup);
                            state.lock().unwrap().connections += 1;
                            thread::spawn(move || {
                                let _ = serve(stream, &state, &stop, &setup);
                            });
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        SmtpServer {
            address,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn reject(&self, recipient: &str, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .rejects
            .insert(recipient.to_owned(), reply.to_owned());
    }

    /// Refuses the text of messages to `recipient` with `reply`, after
    /// taking MAIL, RCPT and DATA.
    pub fn reject_text(&self, recipient: &str, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .text_rejects
            .insert(recipient.to_owned(), reply.to_owned());
    }

    /// Closes the connection, unanswered, at the end of the `n`th text
    /// from now, keeping nothing of that message.
    pub fn hang_up_at_text(&self, n: usize) {
        self.state.lock().unwrap().hang_up_in = Some(n);
    }

    /// Keeps and answers the `n`th text from now, then closes the
    /// connection without reading what followed it.
    pub fn close_after_text(&self, n: usize) {
        self.state.lock().unwrap().close_in = Some(n);
    }

    pub fn set_data_delay(&self, delay: Duration) {
        self.state.lock().unwrap().data_delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Every AUTH exchange, in order.
    pub fn logins(&self) -> Vec<Login> {
        self.state.lock().unwrap().logins.clone()
    }

    /// Every command of every session, in the order they arrived.
    pub fn said(&self) -> Vec<Said> {
        self.state.lock().unwrap().said.clone()
    }

    /// Why TLS handshakes failed, one entry per failed handshake.
    /// How many MAIL commands arrived together with what followed them.
    pub fn grouped_mail(&self) -> usize {
        self.state.lock().unwrap().grouped_mail
    }

    /// How many messages ended with the next command already behind
    /// their end marker.
    pub fn chained(&self) -> usize {
        self.state.lock().unwrap().chained
    }

    pub fn handshake_failures(&self) -> Vec<String> {
        self.state.lock().unwrap().handshake_failures.clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn address_in(argument: &str) -> String {
    let start = argument.find('<').map_or(0, |i| i + 1);
    let end = argument[start..]
        .find('>')
        .map_or(argument.len(), |i| start + i);
    argument[start..end].to_owned()
}

fn timed_out(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A connection, plain or encrypted.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buffer),
            Stream::Tls(stream) => stream.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(bytes),
            Stream::Tls(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

/// How a conversation on one stream ended.
enum End {
    Closed,
    /// The client asked for STARTTLS and was told to go ahead.
    StartTls,
}

/// One client connection: its SMTP state and what it shares with the
/// server.
struct Session<'a> {
    state: &'a Mutex<State>,
    stop: &'a AtomicBool,
    setup: &'a Setup,
    tls: bool,
    user: Option<String>,
    from: String,
    to: Vec<String>,
}

fn serve(
    stream: TcpStream,
    state: &Mutex<State>,
    stop: &AtomicBool,
    setup: &Setup,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut session = Session {
        state,
        stop,
        setup,
        tls: false,
        user: None,
        from: String::new(),
        to: Vec::new(),
    };
    let mut stream = match &setup.encryption {
        Encryption::Implicit(config) => match session.handshake(config, stream)? {
            Some(stream) => stream,
            None => return Ok(()),
        },
        _ => Stream::Plain(stream),
    };
    stream.write_all(b"220 test.localhost ESMTP ready\r\n")?;
    stream.flush()?;
    loop {
        let mut reader = BufReader::new(stream);
        match session.converse(&mut reader)? {
            End::Closed => return Ok(()),
            End::StartTls => {
                // Whatever the client sent after STARTTLS and before the
                // handshake goes with the buffer (RFC 3207, section 5).
                let (Stream::Plain(plain), Encryption::StartTls(config)) =
                    (reader.into_inner(), &setup.encryption)
                else {
                    return Ok(());
                };
                stream = match session.handshake(config, plain)? {
                    Some(stream) => stream,
                    None => return Ok(()),
                };
                // A new session: the client says EHLO again.
                session.from.clear();
                session.to.clear();
            }
        }
    }
}

impl Session<'_> {
    /// Completes a TLS handshake as the server; `None` when the server
    /// stops first.
    fn handshake(
        &mut self,
        config: &Arc<ServerConfig>,
        mut stream: TcpStream,
    ) -> std::io::Result<Option<Stream>> {
        let mut connection =
            ServerConnection::new(Arc::clone(config)).map_err(std::io::Error::other)?;
        while connection.is_handshaking() {
            match connection.complete_io(&mut stream) {
                Ok(_) => {}
                Err(error) if timed_out(&error) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                }
                Err(error) => {
                    self.state
                        .lock()
                        .unwrap()
                        .handshake_failures
                        .push(error.to_string());
                    return Err(error);
                }
            }
        }
        self.tls = true;
        Ok(Some(Stream::Tls(Box::new(StreamOwned::new(
            connection, stream,
        )))))
    }

    /// Reads one line ending in `\n` into `line`; `false` when the
    /// client closed the connection or the server stops.
    fn read_line(
        &self,
        reader: &mut BufReader<Stream>,
        line: &mut Vec<u8>,
    ) -> std::io::Result<bool> {
        line.clear();
        loop {
            // A read that times out keeps what it read in `line`.
            match reader.read_until(b'\n', line) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(error) if timed_out(&error) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ok(false);
                    }
                    continue;
                }
                Err(error) => return Err(error),
            }
            // A server going down drops its connections.
            return Ok(line.ends_with(b"\n") && !self.stop.load(Ordering::SeqCst));
        }
    }

    fn ehlo(&self) -> String {
        let mut lines = vec!["test.localhost", "8BITMIME"];
        if self.setup.pipelining {
            lines.push("PIPELINING");
        }
        if matches!(self.setup.encryption, Encryption::StartTls(_)) && !self.tls {
            lines.push("STARTTLS");
        }
        let auth = format!("AUTH {}", self.setup.mechanisms.join(" "));
        if self.offers_auth() {
            lines.push(&auth);
        }
        lines.push("SIZE 10000000");
        let last = lines.len() - 1;
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn offers_auth(&self) -> bool {
        self.tls && self.setup.login.is_some() && !self.setup.mechanisms.is_empty()
    }

    fn converse(&mut self, reader: &mut BufReader<Stream>) -> std::io::Result<End> {
        let mut line = Vec::new();
        loop {
            if !self.read_line(reader, &mut line)? {
                return Ok(End::Closed);
            }
            let command = String::from_utf8_lossy(&line).trim_end().to_owned();
            let verb = command
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let mut state = self.state.lock().unwrap();
            state.said.push(Said {
                verb: verb.clone(),
                tls: self.tls,
            });
            if verb == "MAIL" && !reader.buffer().is_empty() {
                state.grouped_mail += 1;
            }
            drop(state);
            let answer: String = match verb.as_str() {
                "EHLO" => self.ehlo(),
                "HELO" | "NOOP" => "250 OK".into(),
                "STARTTLS"
                    if matches!(self.setup.encryption, Encryption::StartTls(_)) && !self.tls =>
                {
                    reply(reader, "220 2.0.0 go ahead")?;
                    return Ok(End::StartTls);
                }
                "AUTH" => match self.auth(reader, &command)? {
                    Some(reply) => reply,
                    None => return Ok(End::Closed),
                },
                "MAIL" if self.setup.require_auth && self.user.is_none() => {
                    "530 5.7.0 authentication required".into()
                }
                "MAIL" => {
                    self.from = address_in(&command);
                    self.to.clear();
                    "250 OK".into()
                }
                "RCPT" => {
                    let recipient = address_in(&command);
                    match self.state.lock().unwrap().rejects.get(&recipient) {
                        Some(reply) => reply.clone(),
                        None => {
                            self.to.push(recipient);
                            "250 OK".into()
                        }
                    }
                }
                "DATA" if self.to.is_empty() => "554 no valid recipients".into(),
                "DATA" => {
                    reply(reader, "354 end with <CRLF>.<CRLF>")?;
                    let mut data = Vec::new();
                    loop {
                        if !self.read_line(reader, &mut line)? {
                            return Ok(End::Closed);
                        }
                        if line == b".\r\n" {
                            if !reader.buffer().is_empty() {
                                self.state.lock().unwrap().chained += 1;
                            }
                            break;
                        }
                        data.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
                    }
                    let delay = self.state.lock().unwrap().data_delay;
                    thread::sleep(delay);
                    let mut state = self.state.lock().unwrap();
                    if let Some(left) = state.hang_up_in.as_mut() {
                        *left -= 1;
                        if *left == 0 {
                            state.hang_up_in = None;
                            return Ok(End::Closed);
                        }
                    }
                    let refusal = self.to.iter().find_map(|to| state.text_rejects.get(to));
                    if let Some(refusal) = refusal.cloned() {
                        self.to.clear();
                        drop(state);
                        reply(reader, &refusal)?;
                        continue;
                    }
                    state.received.push(Received {
                        from: self.from.clone(),
                        to: std::mem::take(&mut self.to),
                        data,
                        tls: self.tls,
                        user: self.user.clone(),
                        at: herald::clock::now(),
                    });
                    let close = state.close_in.as_mut().is_some_and(|left| {
                        *left -= 1;
                        *left == 0
                    });
                    if close {
                        state.close_in = None;
                    }
                    drop(state);
                    if close {
                        reply(reader, "250 OK queued")?;
                        return Ok(End::Closed);
                    }
                    "250 OK queued".into()
                }
                "RSET" => {
                    self.to.clear();
                    "250 OK".into()
                }
                "QUIT" => {
                    reply(reader, "221 bye")?;
                    return Ok(End::Closed);
                }
                _ => "502 command not implemented".into(),
            };
            reply(reader, &answer)?;
        }
    }

    /// One AUTH exchange: the final reply, or `None` when the client
    /// went away in the middle.
    fn auth(
        &mut self,
        reader: &mut BufReader<Stream>,
        command: &str,
    ) -> std::io::Result<Option<String>> {
        let mut words = command.split_whitespace().skip(1);
        let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        if !self.offers_auth() || !self.setup.mechanisms.contains(&mechanism.as_str()) {
            return Ok(Some("504 5.5.4 mechanism not supported".into()));
        }
        if self.user.is_some() {
            return Ok(Some("503 5.5.1 already authenticated".into()));
        }
        // Asks for one more base64 line, after a 334 with `challenge`.
        let mut ask = |challenge: &str| -> std::io::Result<Option<String>> {
            reply(reader, &format!("334 {}", BASE64.encode(challenge)))?;
            let mut line = Vec::new();
            if !self.read_line(reader, &mut line)? {
                return Ok(None);
            }
            Ok(Some(String::from_utf8_lossy(&line).trim_end().to_owned()))
        };
        let decode = |text: &str| {
            BASE64
                .decode(text)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
        };
        let (user, password) = if mechanism == "PLAIN" {
            let response = match initial {
                Some(response) => response,
                None => match ask("")? {
                    Some(response) => response,
                    None => return Ok(None),
                },
            };
            // authorization identity NUL user NUL password
            let decoded = decode(&response).unwrap_or_default();
            let mut parts = decoded.splitn(3, '\0').skip(1);
            match (parts.next(), parts.next()) {
                (Some(user), Some(password)) => (user.to_owned(), password.to_owned()),
                _ => return Ok(Some("501 5.5.2 cannot decode the response".into())),
            }
        } else {
            let user = match initial {
                Some(user) => user,
                None => match ask("Username:")? {
                    Some(user) => user,
                    None => return Ok(None),
                },
            };
            let Some(password) = ask("Password:")? else {
                return Ok(None);
            };
            match (decode(&user), decode(&password)) {
                (Some(user), Some(password)) => (user, password),
                _ => return Ok(Some("501 5.5.2 cannot decode the response".into())),
            }
        };
        let accepted = self
            .setup
            .login
            .as_ref()
            .is_some_and(|(u, p)| *u == user && *p == password);
        self.state.lock().unwrap().logins.push(Login {
            mechanism,
            user: user.clone(),
            password,
            accepted,
        });
        Ok(Some(if accepted {
            self.user = Some(user);
            "235 2.7.0 authentication successful".into()
        } else {
            "535 5.7.8 authentication failed".into()
        }))
    }
}

fn reply(reader: &mut BufReader<Stream>, text: &str) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(format!("{text}\r\n").as_bytes())?;
    stream.flush()
}
