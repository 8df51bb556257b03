//! A small HTTP/1.1 client for tests: it writes the request bytes as
//! given (so a test can send what no well-behaved client would), asks the
//! server to close the connection, and reads the whole answer.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body`, adding `Host`, `Connection: close` and, when `body` is not
/// empty or the method is POST, `Content-Length`.
pub fn send(port: u16, head: &str, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if head.starts_with("POST") && !head.to_ascii_lowercase().contains("content-length") {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer and close before reading a body it refuses.
    let _ = stream.write_all(&bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse(&answer)
}

fn parse(answer: &[u8]) -> Response {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn get(port: u16, path: &str) -> Response {
    send(port, &format!("GET {path} HTTP/1.1"), b"")
}

/// A form POST from `client` (sent as X-Forwarded-For, which herald
/// trusts from loopback).
#[allow(dead_code, reason = "each test binary uses a part of it")]
pub fn post_form(port: u16, path: &str, client: &str, body: &str) -> Response {
    send(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: {client}"
        ),
        body.as_bytes(),
    )
}
