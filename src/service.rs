//! Tells the service manager how herald is doing, through systemd's
//! `sd_notify` protocol: ready, reloading, stopping, a status line and
//! watchdog pings. Does I/O (a datagram to `NOTIFY_SOCKET`).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing. The
//! watchdog is on only when systemd set `WATCHDOG_USEC` for this very
//! process (`WATCHDOG_PID` unset or ours); otherwise there is no timer at
//! all, so an idle herald stays asleep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// The service manager, as systemd describes it in our environment.
#[derive(Debug)]
pub struct Manager {
    watchdog: Option<Duration>,
    /// Whether a failed notification was already logged: a missing socket
    /// would otherwise be reported at every ping.
    warned: AtomicBool,
}

impl Manager {
    /// Reads `WATCHDOG_USEC` and `WATCHDOG_PID`; `NOTIFY_SOCKET` is read at
    /// each notification by the `sd-notify` crate.
    pub fn from_env() -> Manager {
        Manager {
            watchdog: sd_notify::watchdog_enabled().filter(|period| !period.is_zero()),
            warned: AtomicBool::new(false),
        }
    }

    /// How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3)
    /// advises. `None` when systemd runs no watchdog for us.
    pub fn ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / 2)
    }

    /// Start-up (or a reload) is finished.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A reload begins. systemd 253 and later want the monotonic time with
    /// it, to tell this reload from an earlier one.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// Tells the watchdog that herald is alive.
    pub fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(error) = sd_notify::notify(states)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {error}");
        }
    }
}

/// Completes at each watchdog ping; never when there is no watchdog.
pub async fn next_ping(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A timer for [`next_ping`], ticking at `interval`; the first tick comes
/// one interval from now.
pub fn ping_timer(interval: Option<Duration>) -> Option<tokio::time::Interval> {
    interval.map(|period| {
        let start = tokio::time::Instant::now() + period;
        let mut timer = tokio::time::interval_at(start, period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer
    })
}
