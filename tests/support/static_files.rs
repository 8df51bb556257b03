//! A static file server on 127.0.0.1 for tests that read a built site
//! over HTTP, as its readers would: `GET` only, one request per
//! connection, files below one directory, 404 for anything else.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Component, Path, PathBuf};
use std::thread;

/// Serves `root` on a free loopback port until the test process ends;
/// returns the base URL, `http://127.0.0.1:PORT`.
pub fn serve(root: &Path) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // The headers, up to the blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim_end() != "" {
                line.clear();
            }
            let target = request.split(' ').nth(1).unwrap_or("/");
            let (status, body, kind) = match file(&root, target) {
                Some((bytes, kind)) => ("200 OK", bytes, kind),
                None => ("404 Not Found", b"not found\n".to_vec(), "text/plain"),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn file(root: &Path, target: &str) -> Option<(Vec<u8>, &'static str)> {
    let path = target.split('?').next()?.trim_start_matches('/');
    let relative = PathBuf::from(path);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let kind = match relative.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    };
    Some((std::fs::read(root.join(relative)).ok()?, kind))
}
