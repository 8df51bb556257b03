//! `herald run` on a temporary site, for the email tests: writes incident
//! files, runs `herald` commands and waits for conditions (messages
//! arriving, text in a page or in `herald outbox`), never for fixed times.

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use tempfile::TempDir;

/// A site with three components (`mail`, `web`, `dns`) whose email goes
/// to an SMTP server on 127.0.0.1 at `port`, retried after 100 ms.
pub fn email_config(port: u16, grace: &str) -> String {
    let site = super::site_toml::site("Test status")
        + &super::site_toml::components(&[
            ("mail", "Mail"),
            ("web", "Web hosting"),
            ("dns", "DNS"),
        ]);
    format!(
        r#"{site}
[email]
from = "Test status <status@example.com>"
smtp = "smtp://127.0.0.1:{port}"
grace = "{grace}"
retry_base = "100ms"
"#
    )
}

pub fn incident(title: &str, components: &str, updates: &[(&str, &str)]) -> String {
    let mut text = format!(
        "+++\ntitle = \"{title}\"\ncomponents = [{components}]\nseverity = \"major\"\n+++\n"
    );
    for (heading, body) in updates {
        text.push_str(&format!("\n## {heading}\n{body}\n"));
    }
    text
}

/// A heading time a minute ago, in the site's zone: recent enough to be
/// emailed.
pub fn recent(minutes_ago: i64) -> String {
    let local = herald::clock::now().with_timezone(&chrono_tz::Europe::Stockholm)
        - chrono::Duration::minutes(minutes_ago);
    local.format("%Y-%m-%d %H:%M:%S%:z").to_string()
}

pub fn wait_for(what: &str, log: impl Fn() -> String, condition: impl Fn() -> bool) {
    super::wait::until(what, condition, || format!("herald's log:\n{}", log()));
}

pub struct Site {
    dir: TempDir,
    child: Option<Child>,
    runs: usize,
    /// Environment variables for every `herald` this site runs.
    env: Vec<(OsString, OsString)>,
}

impl Site {
    pub fn new(config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("herald.toml"), config).unwrap();
        fs::create_dir_all(dir.path().join("incidents")).unwrap();
        Site {
            dir,
            child: None,
            runs: 0,
            env: Vec::new(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, name: &str, text: &str) {
        fs::write(self.path("incidents").join(name), text).unwrap();
    }

    /// Sets `key` to `value` in the environment of every later `herald`.
    pub fn set_env(&mut self, key: &str, value: impl Into<OsString>) {
        self.env.push((key.into(), value.into()));
    }

    pub fn herald(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("HERALD_CONFIG")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.herald(args);
        assert!(
            output.status.success(),
            "herald {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn log_path(&self) -> PathBuf {
        self.path(&format!("herald-{}.log", self.runs))
    }

    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                fs::read_to_string(self.path(&format!("herald-{run}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// Starts `herald run` and waits until it is ready.
    pub fn start(&mut self) {
        assert!(self.child.is_none());
        self.runs += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("run")
            .current_dir(self.dir.path())
            .env_remove("HERALD_CONFIG")
            .envs(self.env.iter().cloned())
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.log_path()).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let log = self.log_path();
        wait_for(
            "the daemon to be ready",
            || self.log(),
            || {
                fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("ready")
            },
        );
    }

    pub fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap()
    }

    /// Sends SIGHUP and waits until herald has reloaded (a new mailer
    /// included).
    pub fn reload(&self) {
        let reloads = || self.log().matches(" reloaded").count();
        let before = reloads();
        super::wait::signal(self.child.as_ref().unwrap(), "HUP");
        self.wait_for("the reload", || reloads() > before);
    }

    pub fn stop(&mut self) {
        let status = self.signal("-TERM");
        assert_eq!(status.code(), Some(0), "log:\n{}", self.log());
    }

    pub fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        wait_for(what, || self.log(), condition);
    }

    pub fn wait_for_page(&self, text: &str) {
        self.wait_for(&format!("{text:?} in the feed"), || {
            fs::read_to_string(self.path("public/feed.atom"))
                .unwrap_or_default()
                .contains(text)
        });
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
