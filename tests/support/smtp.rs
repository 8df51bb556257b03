//! A small SMTP server on 127.0.0.1 for tests: it speaks enough SMTP for
//! a real client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps
//! every message it accepted, can reject chosen recipients with a given
//! reply, and can be started on a port that was closed before (a server
//! that was down).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Recipient → full reply line for RCPT, e.g. `550 5.1.1 no such user`.
    rejects: HashMap<String, String>,
    /// Delay before answering DATA, to keep messages in flight longer.
    data_delay: Duration,
    connections: usize,
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
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = Arc::clone(&state);
                            let stop = Arc::clone(&stop);
                            state.lock().unwrap().connections += 1;
                            thread::spawn(move || {
                                let _ = serve(stream, &state, &stop);
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

fn serve(stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 test.localhost ESMTP ready\r\n")?;
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        // A read that times out keeps what it read in `line`.
        match reader.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            Err(error) => return Err(error),
        }
        if stop.load(Ordering::SeqCst) {
            // A server going down drops its connections.
            return Ok(());
        }
        if !line.ends_with('\n') {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        line.clear();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-test.localhost\r\n250-8BITMIME\r\n250 SIZE 10000000".into(),
            "HELO" | "NOOP" => "250 OK".into(),
            "MAIL" => {
                from = address_in(&command);
                to.clear();
                "250 OK".into()
            }
            "RCPT" => {
                let recipient = address_in(&command);
                match state.lock().unwrap().rejects.get(&recipient) {
                    Some(reply) => reply.clone(),
                    None => {
                        to.push(recipient);
                        "250 OK".into()
                    }
                }
            }
            "DATA" if to.is_empty() => "554 no valid recipients".into(),
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = Vec::new();
                let mut data_line = Vec::new();
                loop {
                    match reader.read_until(b'\n', &mut data_line) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        // What was read so far stays in `data_line`.
                        Err(error)
                            if matches!(
                                error.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            continue;
                        }
                        Err(error) => return Err(error),
                    }
                    if !data_line.ends_with(b"\n") {
                        return Ok(());
                    }
                    if data_line == b".\r\n" {
                        break;
                    }
                    let unstuffed = data_line.strip_prefix(b".").unwrap_or(&data_line);
                    data.extend_from_slice(unstuffed);
                    data_line.clear();
                }
                let delay = state.lock().unwrap().data_delay;
                thread::sleep(delay);
                state.lock().unwrap().received.push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                "250 OK queued".into()
            }
            "RSET" => {
                to.clear();
                "250 OK".into()
            }
            "QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => "502 command not implemented".into(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}
