//! Waiting on a running `herald` in tests: for a condition or for the
//! process to exit, polling, with one generous deadline, and failing with
//! what the caller says about the run (usually herald's log).

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine; a passing test never waits it out.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds; after [`PATIENCE`] fails with
/// `context()`.
pub fn until(what: &str, condition: impl Fn() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < PATIENCE,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` (`TERM`, `HUP`, …) to `child` with kill(1).
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Sends SIGTERM and waits for `child` to exit: `None` if it has not
/// within [`PATIENCE`].
pub fn terminate(child: &mut Child) -> Option<ExitStatus> {
    signal(child, "TERM");
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}
