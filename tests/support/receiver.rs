//! A webhook receiver on 127.0.0.1: a small HTTP/1.1 server with
//! keep-alive that records every request (method, path, headers, body)
//! and answers what a test scripted for its path (200 otherwise).

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// An answer: status, extra header lines, body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn with(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

#[derive(Default)]
struct State {
    received: Vec<Request>,
    /// Answers per path, used once each, in order.
    script: HashMap<String, VecDeque<Answer>>,
    delay: Duration,
    /// Requests read and not yet answered, and the most there were.
    in_flight: usize,
    most_in_flight: usize,
    /// Connections accepted and not yet closed by the client.
    open: usize,
}

pub struct Receiver {
    port: u16,
    state: Arc<Mutex<State>>,
    secure: bool,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_with(None)
    }

    /// A receiver over TLS with these settings (see tests/support/tls.rs).
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Receiver {
        Receiver::start_with(Some(config))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let secure = tls.is_some();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&shared);
                let tls = tls.clone();
                state.lock().unwrap().open += 1;
                std::thread::spawn(move || {
                    match tls {
                        None => serve(stream, &state),
                        Some(config) => {
                            // A handshake refused by the client ends here.
                            if let Ok(connection) = rustls::ServerConnection::new(config) {
                                serve(rustls::StreamOwned::new(connection, stream), &state);
                            }
                        }
                    }
                    state.lock().unwrap().open -= 1;
                });
            }
        });
        Receiver {
            port,
            state,
            secure,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next requests to `path` with these, in order.
    pub fn script(&self, path: &str, answers: Vec<Answer>) {
        self.state
            .lock()
            .unwrap()
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Waits this long before answering each request.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Request> {
        self.state.lock().unwrap().received.clone()
    }

    /// The most requests that were being answered at once.
    pub fn most_in_flight(&self) -> usize {
        self.state.lock().unwrap().most_in_flight
    }

    /// Connections open now: accepted, and not closed by the client.
    pub fn open_connections(&self) -> usize {
        self.state.lock().unwrap().open
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    pub fn to(&self, path: &str) -> Vec<Request> {
        self.received()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }
}

fn serve(stream: impl Read + Write, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (answer, delay) = {
            let mut state = state.lock().unwrap();
            state.in_flight += 1;
            state.most_in_flight = state.most_in_flight.max(state.in_flight);
            let answer = state
                .script
                .get_mut(&path)
                .and_then(VecDeque::pop_front)
                .unwrap_or_else(|| Answer::status(200, "ok"));
            (answer, state.delay)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        // Recorded when answered, as a receiver that commits first would.
        {
            let mut state = state.lock().unwrap();
            state.in_flight -= 1;
            state.received.push(Request {
                method,
                path,
                headers,
                body,
                at: Instant::now(),
            });
        }
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut answer_bytes = head.into_bytes();
        answer_bytes.extend_from_slice(answer.body.as_bytes());
        let writer = reader.get_mut();
        if writer.write_all(&answer_bytes).is_err() || writer.flush().is_err() {
            return;
        }
    }
}
