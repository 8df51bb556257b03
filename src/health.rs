//! What `/healthz` and the systemd watchdog ask the daemon's loop: which
//! parts still run, and why email is stopped if it is. A module of its
//! own so that the daemon (which answers) and the HTTP server (which
//! asks) both reach it without reaching each other.

use tokio::sync::{mpsc, oneshot};

/// Whether the parts that must keep running still do; asked by the
/// systemd watchdog and by `/healthz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// notify's thread still delivers events.
    pub watcher: bool,
    /// The outbox worker has not stopped.
    pub mailer: bool,
    /// Why the mailer, though running, sends nothing (the token key);
    /// a restart would not mend it.
    pub problem: Option<String>,
}

impl Health {
    /// Nothing has stopped: what the watchdog asks (a restart helps).
    pub fn is_alive(&self) -> bool {
        self.watcher && self.mailer
    }

    /// Alive and doing its work: what `/healthz` asks.
    pub fn is_healthy(&self) -> bool {
        self.is_alive() && self.problem.is_none()
    }
}

/// Asks the event loop for its [`Health`]; no answer means the loop itself
/// is stuck or gone.
pub type HealthProbe = mpsc::Sender<oneshot::Sender<Health>>;
