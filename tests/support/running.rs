//! A `herald` process on a temporary site with its log in `herald.log`,
//! for the tests of `herald run` (tests/daemon.rs) and of herald as a
//! service (tests/service.rs): the site they start it on, reading what it
//! wrote, waiting for conditions and stopping it with SIGTERM. The
//! process is killed if a test ends without stopping it.

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use tempfile::TempDir;

use super::{site_toml, wait};

/// `herald.toml` of the test site with `components` (id, name), every
/// path spelled out: `incidents`, `public` and `state`.
pub fn config(components: &[(&str, &str)]) -> String {
    format!(
        "{}\n[paths]\nincidents = \"incidents\"\noutput = \"public\"\nstate = \"state\"\n{}",
        site_toml::site("Test status"),
        site_toml::components(components)
    )
}

/// A minor incident on `mail` with one update, `body`, investigating at
/// 2019-04-04 08:00.
pub fn incident(title: &str, body: &str) -> String {
    format!(
        "+++\ntitle = \"{title}\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\n{body}\n"
    )
}

/// A site in a temporary directory: `config` as `herald.toml`, and each
/// `(path, text)` of `files` under `incidents/`, directories created.
pub fn site(config: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("herald.toml"), config).unwrap();
    fs::create_dir_all(dir.path().join("incidents")).unwrap();
    for (path, text) in files {
        write(&dir.path().join("incidents").join(path), text);
    }
    dir
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

pub struct Running {
    dir: TempDir,
    child: Child,
    log: PathBuf,
}

impl Running {
    /// `herald run` in `dir`.
    pub fn run(dir: TempDir) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command.arg("run");
        Running::spawn(dir, command)
    }

    /// Starts `command` (which runs herald) in `dir`, without
    /// `HERALD_CONFIG`, logging at `info` to `herald.log`.
    pub fn spawn(dir: TempDir, mut command: Command) -> Running {
        let log = dir.path().join("herald.log");
        let child = command
            .current_dir(dir.path())
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running { dir, child, log }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn child(&self) -> &Child {
        &self.child
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A published file, `relative` to the output directory.
    pub fn output(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.path("public").join(relative)).ok()
    }

    /// The site's Atom feed; empty before the first build.
    pub fn feed(&self) -> String {
        self.output("feed.atom").unwrap_or_default()
    }

    /// Writes an incident file, `relative` to `incidents/`.
    pub fn write_incident(&self, relative: &str, text: &str) {
        write(&self.path("incidents").join(relative), text);
    }

    /// Polls `condition` until it holds; fails with the log.
    pub fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        wait::until(what, condition, || format!("herald's log:\n{}", self.log()));
    }

    pub fn wait_for_feed(&self, text: &str) {
        self.wait_for(&format!("{text:?} in the feed"), || {
            self.feed().contains(text)
        });
    }

    pub fn wait_for_feed_without(&self, text: &str) {
        self.wait_for(&format!("{text:?} gone from the feed"), || {
            !self.feed().contains(text)
        });
    }

    /// Sends SIGTERM and waits for the exit: `None` if herald has not
    /// stopped within [`wait::PATIENCE`].
    pub fn try_terminate(&mut self) -> Option<ExitStatus> {
        wait::terminate(&mut self.child)
    }

    /// Sends SIGTERM and waits for the exit; fails with the log if herald
    /// does not stop.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = self.try_terminate();
        status.unwrap_or_else(|| panic!("herald did not stop on SIGTERM; log:\n{}", self.log()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
