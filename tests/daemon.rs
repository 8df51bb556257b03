//! `herald run` on a temporary site: every way a file can change on disk
//! reaches the published outputs, a broken file keeps its last good
//! version, and SIGTERM stops the daemon cleanly.
//!
//! The harness waits for conditions (a file appearing, text in the feed),
//! never for fixed times.

#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

const CONFIG: &str = r#"
[site]
title = "Test status"
base_url = "https://status.example.com/"
timezone = "Europe/Stockholm"
language = "en"

[paths]
incidents = "incidents"
output = "public"
state = "state"

[[components]]
id = "mail"
name = "Mail"

[[components]]
id = "web"
name = "Web"
"#;

fn incident(title: &str, body: &str) -> String {
    format!(
        "+++\ntitle = \"{title}\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\n{body}\n"
    )
}

struct Harness {
    dir: TempDir,
    child: Child,
    log: PathBuf,
}

impl Harness {
    /// Starts `herald run` on a site holding `files`, and waits until it
    /// says it is ready.
    fn start(files: &[(&str, &str)]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("herald.toml"), CONFIG).unwrap();
        fs::create_dir_all(dir.path().join("incidents")).unwrap();
        for (path, text) in files {
            let path = dir.path().join("incidents").join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let log = dir.path().join("herald.log");
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("run")
            .current_dir(dir.path())
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let harness = Harness { dir, child, log };
        harness.wait_for("the daemon to be ready", || harness.log().contains("ready"));
        harness
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn output(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.path("public").join(relative)).ok()
    }

    fn feed(&self) -> String {
        self.output("feed.atom").unwrap_or_default()
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path("incidents").join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Polls `condition` until it holds; fails with the daemon's log.
    fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        wait::until(what, condition, || format!("herald's log:\n{}", self.log()));
    }

    fn wait_for_feed(&self, text: &str) {
        self.wait_for(&format!("{text:?} in the feed"), || {
            self.feed().contains(text)
        });
    }

    fn wait_for_feed_without(&self, text: &str) {
        self.wait_for(&format!("{text:?} gone from the feed"), || {
            !self.feed().contains(text)
        });
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let status = wait::terminate(&mut self.child);
        status.unwrap_or_else(|| panic!("herald did not stop on SIGTERM; log:\n{}", self.log()))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn new_file_in_new_subdirectory_is_published_and_deletion_unpublished() {
    let harness = Harness::start(&[("first.md", &incident("First incident", "one"))]);
    assert!(harness.feed().contains("First incident"));
    harness.write(
        "2026/11/deep/second.md",
        &incident("Second incident", "two"),
    );
    harness.wait_for_feed("Second incident");
    assert!(harness.output("incidents/second.html").is_some());
    fs::remove_file(harness.path("incidents/2026/11/deep/second.md")).unwrap();
    harness.wait_for_feed_without("Second incident");
    harness.wait_for("the page to be removed", || {
        harness.output("incidents/second.html").is_none()
    });
    // Removing a whole directory unpublishes what it held.
    harness.write("gone/third.md", &incident("Third incident", "three"));
    harness.wait_for_feed("Third incident");
    fs::remove_dir_all(harness.path("incidents/gone")).unwrap();
    harness.wait_for_feed_without("Third incident");
    assert!(harness.feed().contains("First incident"));
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn editor_saves_are_all_seen() {
    let harness = Harness::start(&[("mail.md", &incident("Mail incident", "original text"))]);
    // vim: swap file, then write a temp file and rename it over the original.
    harness.write(".mail.md.swp", "binary swap junk");
    harness.write("mail.md.new~", &incident("Mail incident", "renamed over"));
    fs::rename(
        harness.path("incidents/mail.md.new~"),
        harness.path("incidents/mail.md"),
    )
    .unwrap();
    harness.wait_for_feed("renamed over");
    // sed -i: same trick, done by sed itself.
    let status = Command::new("sed")
        .args([
            "-i",
            "s/renamed over/edited by sed/",
            harness.path("incidents/mail.md").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    harness.wait_for_feed("edited by sed");
    // An append: a new update at the end of the file.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(harness.path("incidents/mail.md"))
        .unwrap();
    file.write_all(b"\n## 2019-04-04 09:30 resolved\nappended update\n")
        .unwrap();
    drop(file);
    harness.wait_for_feed("appended update");
    assert!(
        !harness.log().contains("swp"),
        "debris must be ignored silently:\n{}",
        harness.log()
    );
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn file_saved_in_two_writes_ends_up_whole() {
    let harness = Harness::start(&[]);
    let text = incident("Two writes", "second half arrives later");
    let (first, second) = text.split_at(text.len() / 2);
    let path = harness.path("incidents/split.md");
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    file.write_all(second.as_bytes()).unwrap();
    drop(file);
    harness.wait_for_feed("second half arrives later");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn broken_file_keeps_last_good_version_and_others_still_publish() {
    let harness = Harness::start(&[
        ("keep.md", &incident("Kept incident", "good version")),
        ("other.md", &incident("Other incident", "other v1")),
    ]);
    harness.write(
        "keep.md",
        &incident("Kept incident", "bad version").replace("minor", "tiny"),
    );
    harness.wait_for("the error in the log", || {
        harness
            .log()
            .contains("keep.md:4:12: error: unknown severity `tiny`")
    });
    harness.write("other.md", &incident("Other incident", "other v2"));
    harness.wait_for_feed("other v2");
    let feed = harness.feed();
    assert!(
        feed.contains("good version"),
        "last good version stays published"
    );
    assert!(!feed.contains("bad version"));
    // Fixing the file publishes the fix.
    harness.write("keep.md", &incident("Kept incident", "fixed version"));
    harness.wait_for_feed("fixed version");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn burst_of_hundreds_of_files_is_published_completely() {
    let harness = Harness::start(&[]);
    // Like a git checkout: many files written in quick succession.
    for n in 0..300 {
        harness.write(
            &format!("burst/{:03}/inc-{n}.md", n % 7),
            &incident(&format!("Burst {n}"), "burst body"),
        );
    }
    harness.wait_for("300 incident pages", || {
        fs::read_dir(harness.path("public/incidents"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 300
    });
    let status = harness.output("status.json").unwrap();
    assert!(status.contains("\"name\""), "{status}");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn new_and_post_are_picked_up_live() {
    let harness = Harness::start(&[]);
    let herald = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .current_dir(harness.dir.path())
            .env_remove("HERALD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    herald(
        &[
            "new",
            "live",
            "--title",
            "Live incident",
            "--components",
            "mail,web",
            "First words.",
        ],
        None,
    );
    harness.wait_for_feed("First words.");
    std::thread::sleep(Duration::from_millis(1000));
    herald(&["post", "live", "monitoring"], Some("Posted from stdin."));
    harness.wait_for_feed("Posted from stdin.");
    assert!(
        harness
            .output("components/web.atom")
            .unwrap()
            .contains("Posted from stdin.")
    );
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn missing_incidents_directory_fails_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("herald.toml"), CONFIG).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("run")
        .current_dir(dir.path())
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("incidents"), "{stderr}");
    assert!(!Path::new(&dir.path().join("public")).exists());
}

#[test]
fn maintenance_window_opening_re_renders_without_a_file_change() {
    // A window that opens three seconds from now and closes three later,
    // written in UTC so the test does not depend on the machine's zone.
    let at = |offset: i64| {
        let output = Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("{offset} seconds"),
                "+%Y-%m-%d %H:%M:%SZ",
            ])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let maintenance = format!(
        "+++\ntitle = \"Soon\"\ncomponents = [\"web\"]\nkind = \"maintenance\"\nstarts = \"{}\"\nends = \"{}\"\n+++\n\n## {} scheduled\nPlanned.\n",
        at(3),
        at(6),
        at(-60)
    );
    let harness = Harness::start(&[("soon.md", &maintenance)]);
    let status = || harness.output("status.json").unwrap_or_default();
    assert!(
        !status().contains("under_maintenance"),
        "not before the window opens"
    );
    harness.wait_for("the window to open", || {
        status().contains("under_maintenance")
    });
    harness.wait_for("the window to close", || {
        !status().contains("under_maintenance")
    });
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn idle_daemon_does_no_work() {
    let harness = Harness::start(&[("mail.md", &incident("Mail incident", "quiet"))]);
    // Reading the files at start must not look like a change, and no
    // timer may fire before the next date boundary: after the first
    // build, nothing is rebuilt while nothing changes.
    std::thread::sleep(Duration::from_millis(1500));
    let log = harness.log();
    assert_eq!(log.matches("rebuild{").count(), 1, "{log}");
    harness.write("mail.md", &incident("Mail incident", "one change"));
    harness.wait_for_feed("one change");
    std::thread::sleep(Duration::from_millis(1500));
    let log = harness.log();
    assert_eq!(log.matches("rebuild{").count(), 2, "{log}");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn sighup_reloads_a_good_configuration_and_keeps_the_old_one_on_errors() {
    let harness = Harness::start(&[("mail.md", &incident("Mail incident", "first"))]);
    assert!(harness.feed().contains("<title>Test status</title>"));
    let hangup = || wait::signal(&harness.child, "HUP");
    // A new site title reaches the feed without a restart.
    fs::write(
        harness.path("herald.toml"),
        CONFIG.replace("Test status", "Renamed status"),
    )
    .unwrap();
    hangup();
    harness.wait_for_feed("<title>Renamed status</title>");
    // A broken configuration is reported and the running one stays.
    fs::write(
        harness.path("herald.toml"),
        CONFIG.replace("language = \"en\"", "langauge = \"en\""),
    )
    .unwrap();
    hangup();
    harness.wait_for("the reload error", || {
        harness
            .log()
            .contains("reload failed, keeping the running configuration")
    });
    assert!(
        harness
            .log()
            .contains("herald.toml:6:1: error: unknown field `langauge`"),
        "{}",
        harness.log()
    );
    harness.write(
        "mail.md",
        &incident("Mail incident", "after the failed reload"),
    );
    harness.wait_for_feed("after the failed reload");
    assert!(harness.feed().contains("<title>Renamed status</title>"));
    assert_eq!(harness.terminate().code(), Some(0));
}
