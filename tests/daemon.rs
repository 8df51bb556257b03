//! `herald run` on a temporary site: every way a file can change on disk
//! reaches the published outputs, a broken file keeps its last good
//! version, and SIGTERM stops the daemon cleanly.
//!
//! The harness waits for conditions (a file appearing, text in the feed),
//! never for fixed times.

#[path = "support/running.rs"]
mod running;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use running::{Running, incident};

fn config() -> String {
    running::config(&[("mail", "Mail"), ("web", "Web")])
}

/// Starts `herald run` on a site holding `files`, and waits until it says
/// it is ready.
fn start(files: &[(&str, &str)]) -> Running {
    let harness = Running::run(running::site(&config(), files));
    harness.wait_for("the daemon to be ready", || harness.log().contains("ready"));
    harness
}

#[test]
fn new_file_in_new_subdirectory_is_published_and_deletion_unpublished() {
    let mut harness = start(&[("first.md", &incident("First incident", "one"))]);
    assert!(harness.feed().contains("First incident"));
    harness.write_incident(
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
    harness.write_incident("gone/third.md", &incident("Third incident", "three"));
    harness.wait_for_feed("Third incident");
    fs::remove_dir_all(harness.path("incidents/gone")).unwrap();
    harness.wait_for_feed_without("Third incident");
    assert!(harness.feed().contains("First incident"));
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn editor_saves_are_all_seen() {
    let mut harness = start(&[("mail.md", &incident("Mail incident", "original text"))]);
    // vim: swap file, then write a temp file and rename it over the original.
    harness.write_incident(".mail.md.swp", "binary swap junk");
    harness.write_incident("mail.md.new~", &incident("Mail incident", "renamed over"));
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
    let mut harness = start(&[]);
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
    let mut harness = start(&[
        ("keep.md", &incident("Kept incident", "good version")),
        ("other.md", &incident("Other incident", "other v1")),
    ]);
    harness.write_incident(
        "keep.md",
        &incident("Kept incident", "bad version").replace("minor", "tiny"),
    );
    harness.wait_for("the error in the log", || {
        harness
            .log()
            .contains("keep.md:4:12: error: unknown severity `tiny`")
    });
    harness.write_incident("other.md", &incident("Other incident", "other v2"));
    harness.wait_for_feed("other v2");
    let feed = harness.feed();
    assert!(
        feed.contains("good version"),
        "last good version stays published"
    );
    assert!(!feed.contains("bad version"));
    // Fixing the file publishes the fix.
    harness.write_incident("keep.md", &incident("Kept incident", "fixed version"));
    harness.wait_for_feed("fixed version");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn a_year_no_feed_can_carry_is_an_error_not_a_crash() {
    let mut harness = start(&[("other.md", &incident("Other incident", "other v1"))]);
    harness.write_incident(
        "ancient.md",
        "+++\ntitle = \"Ancient\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 0000-01-01 00:30 investigating\nLong ago.\n",
    );
    harness.wait_for("the error in the log", || {
        harness.log().contains(
            "ancient.md:7:4: error: `0000-01-01 00:30` is outside the years herald can publish, 1970 to 9998",
        )
    });
    // Still running: a later change is published.
    harness.write_incident("other.md", &incident("Other incident", "other v2"));
    harness.wait_for_feed("other v2");
    assert!(!harness.feed().contains("Ancient"), "{}", harness.feed());
    assert_eq!(harness.terminate().code(), Some(0));
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn what_is_not_a_regular_file_is_reported_and_the_rest_published() {
    let mut harness = start(&[("first.md", &incident("First incident", "one"))]);
    // One batch: a directory named like an incident, a symlink loop, a
    // FIFO nobody writes to, and a good new file.
    fs::create_dir(harness.path("incidents/dir.md")).unwrap();
    std::os::unix::fs::symlink("loop.md", harness.path("incidents/loop.md")).unwrap();
    mkfifo(&harness.path("incidents/pipe.md"));
    harness.write_incident("good.md", &incident("Good incident", "published"));
    harness.wait_for_feed("Good incident");
    for expected in [
        "pipe.md:1:1: error: is not a regular file (a directory, FIFO or device); herald reads only regular files",
        "loop.md:1:1: error: cannot read incidents/loop.md",
    ] {
        harness.wait_for(expected, || harness.log().contains(expected));
    }
    // The loop still answers signals: a later change is published.
    harness.write_incident("first.md", &incident("First incident", "two"));
    harness.wait_for_feed("two");
    assert_eq!(harness.terminate().code(), Some(0), "{}", harness.log());
}

#[test]
fn check_on_a_fifo_or_a_device_answers_at_once() {
    let dir = running::site(&config(), &[]);
    let fifo = dir.path().join("incidents/pipe.md");
    mkfifo(&fifo);
    for target in [fifo.as_path(), Path::new("/dev/zero")] {
        let output = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("check")
            .arg(target)
            .current_dir(dir.path())
            .env_remove("HERALD_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(
            stdout.contains("is not a regular file"),
            "{}: {stdout}",
            target.display()
        );
    }
}

#[test]
fn outputs_that_failed_to_write_are_written_once_possible() {
    let mut harness = start(&[("first.md", &incident("First incident", "one"))]);
    // The incident pages' directory is taken by a file: writes fail.
    fs::remove_dir_all(harness.path("public/incidents")).unwrap();
    fs::write(harness.path("public/incidents"), "in the way").unwrap();
    harness.write_incident("second.md", &incident("Second incident", "two"));
    harness.wait_for("the write error", || {
        harness.log().contains("cannot write outputs to")
    });
    // The way is cleared; no other change comes, yet the outputs follow.
    fs::remove_file(harness.path("public/incidents")).unwrap();
    harness.wait_for("the backlog to be written", || {
        harness
            .log()
            .contains("every output is written again after the earlier failure")
    });
    assert!(harness.output("incidents/second.html").is_some());
    assert!(harness.output("incidents/first.html").is_some());
    assert!(harness.feed().contains("Second incident"));
    let mut leftovers = Vec::new();
    for dir in ["public", "public/incidents", "public/components"] {
        for entry in fs::read_dir(harness.path(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".herald-tmp") {
                leftovers.push(format!("{dir}/{name}"));
            }
        }
    }
    assert_eq!(leftovers, Vec::<String>::new());
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn burst_of_hundreds_of_files_is_published_completely() {
    let mut harness = start(&[]);
    // Like a git checkout: many files written in quick succession.
    for n in 0..300 {
        harness.write_incident(
            &format!("burst/{:03}/inc-{n}.md", n % 7),
            &incident(&format!("Burst {n}"), "burst body"),
        );
    }
    // Each incident has a page and an Atom feed.
    harness.wait_for("300 incident pages", || {
        fs::read_dir(harness.path("public/incidents"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|entry| entry.path().extension().is_some_and(|e| e == "html"))
                    .count()
            })
            .unwrap_or(0)
            == 300
    });
    let status = harness.output("status.json").unwrap();
    assert!(status.contains("\"name\""), "{status}");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn new_and_post_are_picked_up_live() {
    let mut harness = start(&[]);
    let herald = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .current_dir(harness.dir())
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
    fs::write(dir.path().join("herald.toml"), config()).unwrap();
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
    let mut harness = start(&[("soon.md", &maintenance)]);
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
    let mut harness = start(&[("mail.md", &incident("Mail incident", "quiet"))]);
    // Reading the files at start must not look like a change, and no
    // timer may fire before the next date boundary: after the first
    // build, nothing is rebuilt while nothing changes.
    std::thread::sleep(Duration::from_millis(1500));
    let log = harness.log();
    assert_eq!(log.matches("rebuild{").count(), 1, "{log}");
    harness.write_incident("mail.md", &incident("Mail incident", "one change"));
    harness.wait_for_feed("one change");
    std::thread::sleep(Duration::from_millis(1500));
    let log = harness.log();
    assert_eq!(log.matches("rebuild{").count(), 2, "{log}");
    assert_eq!(harness.terminate().code(), Some(0));
}

#[test]
fn sighup_reloads_a_good_configuration_and_keeps_the_old_one_on_errors() {
    let mut harness = start(&[("mail.md", &incident("Mail incident", "first"))]);
    assert!(harness.feed().contains("<title>Test status</title>"));
    let hangup = || wait::signal(harness.child(), "HUP");
    // A new site title reaches the feed without a restart.
    fs::write(
        harness.path("herald.toml"),
        config().replace("Test status", "Renamed status"),
    )
    .unwrap();
    hangup();
    harness.wait_for_feed("<title>Renamed status</title>");
    // A broken configuration is reported and the running one stays.
    fs::write(
        harness.path("herald.toml"),
        config().replace("language = \"en\"", "langauge = \"en\""),
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
    harness.write_incident(
        "mail.md",
        &incident("Mail incident", "after the failed reload"),
    );
    harness.wait_for_feed("after the failed reload");
    assert!(harness.feed().contains("<title>Renamed status</title>"));
    assert_eq!(harness.terminate().code(), Some(0));
}
