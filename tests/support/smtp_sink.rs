//! Postfix's test server `smtp-sink` on 127.0.0.1, writing every message
//! it accepts to a file of its own. `scripts/test` installs Postfix when
//! `/usr/sbin/smtp-sink` is missing.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use mailparse::MailHeaderMap;

pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// A running `smtp-sink` that dumps each message into a directory.
pub struct Sink {
    child: Child,
    pub port: u16,
    dumps: tempfile::TempDir,
}

impl Sink {
    /// Starts smtp-sink on a free port with `options` (beyond the port and
    /// the dump directory) and waits until it accepts connections.
    pub fn start(options: &[&str]) -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Sink::start_on(port, options)
    }

    /// Starts smtp-sink on `port`.
    pub fn start_on(port: u16, options: &[&str]) -> Sink {
        let program = Path::new(SMTP_SINK);
        assert!(
            program.exists(),
            "{SMTP_SINK} is missing: scripts/test installs Postfix (apt-get install postfix)"
        );
        let dumps = tempfile::tempdir().unwrap();
        // smtp-sink refuses to run as root without -u; it keeps root's
        // rights here so that it can write into the test's directory.
        let mut command = Command::new(program);
        if is_root() {
            command.args(["-u", "root"]);
        }
        let child = command
            .args(options)
            .arg("-d")
            .arg(format!("{}/%H%M%S.", dumps.path().display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("64")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        super::wait::until(
            "smtp-sink to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            String::new,
        );
        Sink { child, port, dumps }
    }

    /// Every message smtp-sink accepted: its recipient and what it
    /// received, headers first.
    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
        let mut messages = Vec::new();
        for entry in fs::read_dir(self.dumps.path()).unwrap() {
            let dump = fs::read(entry.unwrap().path()).unwrap();
            let parsed = mailparse::parse_mail(&dump).unwrap();
            // `<address>`, then any parameters (an MTA adds `ORCPT=…`).
            let arguments = parsed.headers.get_first_value("X-Rcpt-Args").unwrap();
            let recipient = arguments
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches(['<', '>'])
                .to_owned();
            messages.push((recipient, dump));
        }
        messages
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}
