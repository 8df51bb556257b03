//! herald as a systemd service, with systemd played by a real Unix
//! datagram socket in a temporary directory (`NOTIFY_SOCKET`): readiness,
//! the watchdog, reloads, stopping; journald log priorities; and the
//! `[publish]` command run by `herald run` and `herald build`.
//!
//! Every wait is for a condition with a generous deadline, never a fixed
//! time; the few short sleeps give something that must not happen a
//! chance to happen.

#[path = "support/running.rs"]
mod running;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use running::{Running, incident};
use tempfile::TempDir;

fn config() -> String {
    running::config(&[("mail", "Mail")])
}

/// A site in a temporary directory: `config`, and `incidents/a.md`.
fn site(config: &str) -> TempDir {
    running::site(
        config,
        &[("a.md", &incident("First incident", "first words"))],
    )
}

/// One datagram from herald, and whether the feed existed when it came.
#[derive(Debug, Clone)]
struct Message {
    text: String,
    feed_existed: bool,
}

/// `herald run` on a site, with a notify socket: the [`Running`] herald
/// (which it derefs to) and the datagrams it sent.
struct Service {
    herald: Running,
    messages: Arc<Mutex<Vec<Message>>>,
    listening: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
}

impl Service {
    /// `herald run` in `dir` with `environment` added.
    fn start(dir: TempDir, environment: &[(&str, &str)]) -> Service {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command.arg("run");
        Service::start_command(dir, command, environment)
    }

    /// `command` (which runs herald) in `dir`, with `NOTIFY_SOCKET`, a
    /// log file and `environment`.
    fn start_command(dir: TempDir, mut command: Command, environment: &[(&str, &str)]) -> Service {
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let listening = Arc::new(AtomicBool::new(true));
        let feed = dir.path().join("public/feed.atom");
        let listener = {
            let messages = Arc::clone(&messages);
            let listening = Arc::clone(&listening);
            std::thread::spawn(move || {
                let mut buffer = vec![0u8; 4096];
                while listening.load(Ordering::Relaxed) {
                    if let Ok(length) = socket.recv(&mut buffer) {
                        let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
                        messages.lock().unwrap().push(Message {
                            text,
                            feed_existed: feed.exists(),
                        });
                    }
                }
            })
        };
        command
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env("NOTIFY_SOCKET", &socket_path)
            .envs(environment.iter().copied());
        Service {
            herald: Running::spawn(dir, command),
            messages,
            listening,
            listener: Some(listener),
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|m| m.text).collect()
    }

    /// How many datagrams have a line equal to `line`.
    fn count(&self, line: &str) -> usize {
        self.texts()
            .iter()
            .filter(|text| text.lines().any(|l| l == line))
            .count()
    }

    fn context(&self) -> String {
        format!(
            "notifications: {:#?}\nherald's log:\n{}",
            self.texts(),
            self.log()
        )
    }

    fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        wait::until(what, condition, || self.context());
    }

    /// Waits until `line` has come `times` times.
    fn wait_for_line(&self, line: &str, times: usize) {
        self.wait_for(&format!("{line} ×{times}"), || self.count(line) >= times);
    }

    fn signal(&self, signal: &str) {
        wait::signal(self.child(), signal);
    }

    /// Replaces the configuration and sends SIGHUP.
    fn reload(&self, config: &str) {
        fs::write(self.path("herald.toml"), config).unwrap();
        self.signal("HUP");
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let status = self.herald.try_terminate();
        let status =
            status.unwrap_or_else(|| panic!("herald did not stop on SIGTERM\n{}", self.context()));
        // Datagrams sent just before the exit are already queued.
        std::thread::sleep(Duration::from_millis(100));
        status
    }
}

impl Deref for Service {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.herald
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // The process itself is killed when `herald` drops, after this.
        self.listening.store(false, Ordering::Relaxed);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// The value of `KEY=` in the last datagram that has it.
fn last_value(texts: &[String], key: &str) -> Option<String> {
    texts.iter().rev().find_map(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
    })
}

#[test]
fn ready_after_the_first_build_then_status_and_stopping_without_a_watchdog() {
    let mut service = Service::start(site(&config()), &[]);
    service.wait_for_line("READY=1", 1);
    let messages = service.messages();
    let ready = messages
        .iter()
        .find(|m| m.text.lines().any(|l| l == "READY=1"))
        .unwrap();
    assert!(ready.feed_existed, "READY=1 before the first build");
    assert!(
        ready.text.contains("STATUS=1 incident, 0 mail pending"),
        "{messages:#?}"
    );
    // A change updates the status line.
    service.write_incident("b.md", &incident("Second incident", "second words"));
    service.wait_for("the new status", || {
        last_value(&service.texts(), "STATUS").as_deref() == Some("2 incidents, 0 mail pending")
    });
    assert!(service.feed().contains("Second incident"));
    // Without WATCHDOG_USEC there is no timer: nothing but events.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(service.terminate().code(), Some(0));
    let texts = service.texts();
    assert_eq!(service.count("WATCHDOG=1"), 0, "{texts:#?}");
    assert_eq!(service.count("READY=1"), 1, "{texts:#?}");
    let last = texts.last().unwrap();
    assert_eq!(last, "STOPPING=1\nSTATUS=stopping\n");
}

#[test]
fn watchdog_pings_at_half_the_interval_while_alive() {
    let mut service = Service::start(site(&config()), &[("WATCHDOG_USEC", "400000")]);
    service.wait_for_line("READY=1", 1);
    service.wait_for_line("WATCHDOG=1", 4);
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn watchdog_for_another_process_is_not_ours() {
    let mut service = Service::start(
        site(&config()),
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
    );
    service.wait_for_line("READY=1", 1);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(service.terminate().code(), Some(0));
    assert_eq!(service.count("WATCHDOG=1"), 0, "{}", service.context());
}

#[test]
fn watchdog_for_our_own_pid_pings() {
    // `exec` keeps the shell's pid, so WATCHDOG_PID=$$ is herald's.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "WATCHDOG_PID=$$ exec \"$0\" run",
        env!("CARGO_BIN_EXE_herald"),
    ]);
    let mut service =
        Service::start_command(site(&config()), command, &[("WATCHDOG_USEC", "200000")]);
    service.wait_for_line("WATCHDOG=1", 2);
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn no_watchdog_ping_when_the_mailer_has_stopped() {
    let dir = site(&config());
    // The state directory's place is taken by a file: the mailer cannot
    // open its database and stops.
    fs::write(dir.path().join("state"), "not a directory").unwrap();
    let mut service = Service::start(dir, &[("WATCHDOG_USEC", "200000")]);
    service.wait_for_line("READY=1", 1);
    service.wait_for("the watchdog complaint", || {
        service.log().contains("not pinging the watchdog")
    });
    let log = service.log();
    assert!(log.contains("email delivery disabled"), "{log}");
    assert!(log.contains("mailer: false"), "{log}");
    assert_eq!(service.terminate().code(), Some(0));
    assert_eq!(service.count("WATCHDOG=1"), 0, "{}", service.context());
    assert!(service.texts()[0].contains("STATUS=1 incident, email disabled"));
}

#[test]
fn unreachable_notify_socket_is_reported_once_and_herald_runs_on() {
    let mut service = Service::start(
        site(&config()),
        &[
            ("NOTIFY_SOCKET", "missing.sock"),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    service.wait_for("the warning", || {
        service.log().contains(
            "cannot notify the service manager (NOTIFY_SOCKET): No such file or directory",
        )
    });
    // Pings keep failing, silently.
    std::thread::sleep(Duration::from_millis(1000));
    service.write_incident("b.md", &incident("Second incident", "second words"));
    service.wait_for("the change", || service.feed().contains("Second incident"));
    assert_eq!(service.terminate().code(), Some(0));
    assert_eq!(
        service.log().matches("cannot notify").count(),
        1,
        "{}",
        service.log()
    );
    assert_eq!(service.texts(), Vec::<String>::new());
}

#[test]
fn sighup_sends_reloading_then_ready_and_a_broken_config_keeps_the_old_one() {
    let mut service = Service::start(site(&config()), &[]);
    service.wait_for_line("READY=1", 1);
    assert!(service.feed().contains("<title>Test status</title>"));

    service.reload(&config().replace("Test status", "Renamed status"));
    service.wait_for_line("READY=1", 2);
    assert!(service.feed().contains("<title>Renamed status</title>"));
    let texts = service.texts();
    let reloading = texts
        .iter()
        .position(|t| t.starts_with("RELOADING=1\n"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {texts:#?}"));
    let monotonic: u64 = texts[reloading]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC: {texts:#?}"));
    assert!(monotonic > 0);
    let ready_again = texts
        .iter()
        .rposition(|t| t.starts_with("READY=1\n"))
        .unwrap();
    assert!(reloading < ready_again, "{texts:#?}");
    assert_eq!(
        texts[ready_again],
        "READY=1\nSTATUS=1 incident, 0 mail pending\n"
    );

    // A configuration with errors: reported, READY=1 again with a status
    // that says so, and the old configuration keeps running.
    service.reload(&config().replace("language = \"en\"", "langauge = \"en\""));
    service.wait_for_line("READY=1", 3);
    assert_eq!(service.count("RELOADING=1"), 2);
    let texts = service.texts();
    assert_eq!(
        last_value(&texts, "STATUS").as_deref(),
        Some("reload failed, running the previous configuration; 1 incident, 0 mail pending")
    );
    assert!(
        service
            .log()
            .contains("herald.toml:6:1: error: unknown field `langauge`"),
        "{}",
        service.log()
    );
    service.write_incident(
        "a.md",
        &incident("First incident", "after the failed reload"),
    );
    service.wait_for("the change in the feed", || {
        service.feed().contains("after the failed reload")
    });
    assert!(service.feed().contains("<title>Renamed status</title>"));
    assert_eq!(service.terminate().code(), Some(0));
    assert_eq!(service.count("STOPPING=1"), 1);
}

#[test]
fn journald_lines_start_with_their_syslog_priority() {
    let dir = site(&config().replace(
        "state = \"state\"",
        "state = \"state\"\ntemplates = \"templates\"",
    ));
    fs::create_dir_all(dir.path().join("templates")).unwrap();
    fs::write(dir.path().join("templates/month.html"), "{% if %}broken\n").unwrap();
    let herald = |journal: bool, arguments: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args(arguments)
            .current_dir(dir.path())
            .env_remove("HERALD_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .env("HERALD_LOG", "debug");
        if journal {
            command.env("JOURNAL_STREAM", "8:12345");
        }
        command.output().unwrap()
    };
    let output = herald(true, &["build"]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    let with = |prefix: &str, text: &str| {
        lines
            .iter()
            .any(|line| line.starts_with(prefix) && line.contains(text))
    };
    assert!(with("<3>", "templates/month.html:1:"), "{stderr}");
    assert!(with("<6>", "built"), "{stderr}");
    assert!(lines.iter().all(|line| line.starts_with('<')), "{stderr}");
    // No time stamps: the level follows the prefix directly.
    assert!(with("<6> INFO ", "built"), "{stderr}");

    // A fatal error is `<3>` too.
    let output = herald(true, &["--config", "missing.toml", "build"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "<3>herald: configuration file missing.toml not found (give --config PATH or set HERALD_CONFIG)\n"
    );

    // On a terminal or a file: no prefixes.
    let output = herald(false, &["build"]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("built"), "{stderr}");
    assert!(
        !stderr.lines().any(|line| line.starts_with('<')),
        "{stderr}"
    );
}

// --- [publish] -------------------------------------------------------

/// A site whose `[publish]` runs `script` (a shell script written to
/// `publish.sh`) with the output directory, killed after `timeout`.
fn publishing_site(script: &str, timeout: &str) -> TempDir {
    let dir = site(&config());
    let path = dir.path().join("publish.sh");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "{}\n[publish]\ncommand = [{:?}, \"{{output}}\"]\ntimeout = \"{timeout}\"\n",
        config(),
        path.display().to_string()
    );
    fs::write(dir.path().join("herald.toml"), config).unwrap();
    dir
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn publish_copies_the_outputs_after_the_first_build_and_each_change() {
    let dir = site(&config());
    let copy = dir.path().join("copy");
    fs::create_dir(&copy).unwrap();
    let config = format!(
        "{}\n[publish]\ncommand = [\"cp\", \"-r\", \"{{output}}/.\", {:?}]\n",
        config(),
        copy.display().to_string()
    );
    fs::write(dir.path().join("herald.toml"), config).unwrap();
    let mut service = Service::start(dir, &[]);
    // `cp -r` may still be copying the page when the feed is there: wait
    // for both.
    service.wait_for("the first copy", || {
        read(&copy.join("feed.atom")).contains("First incident")
            && copy.join("incidents/a.html").exists()
    });
    service.write_incident("b.md", &incident("Second incident", "second words"));
    service.wait_for("the change to be copied", || {
        read(&copy.join("feed.atom")).contains("Second incident")
            && copy.join("incidents/b.html").exists()
    });
    assert_eq!(service.terminate().code(), Some(0));
    assert!(!service.log().contains("failed"), "{}", service.log());
}

/// Records each run in `runs.log`; a run that finds another one running
/// (its `running` directory) records `overlap`. A run waits for the file
/// `gate`, then copies the outputs to `copy/`.
const GATED: &str = r#"#!/bin/sh
here=$(dirname "$0")
if ! mkdir "$here/running" 2>/dev/null; then
    echo overlap >> "$here/runs.log"
    exit 1
fi
echo start >> "$here/runs.log"
while [ ! -e "$here/gate" ]; do sleep 0.02; done
mkdir -p "$here/copy"
cp -r "$1/." "$here/copy/"
rmdir "$here/running"
echo end >> "$here/runs.log"
"#;

#[test]
fn publish_never_runs_twice_at_once_and_never_holds_up_rebuilds() {
    let mut service = Service::start(publishing_site(GATED, "60s"), &[]);
    let runs = service.path("runs.log");
    // Each change is one rename into place, as an editor saves: one event,
    // so one rebuild, however slowly a loaded machine writes the text.
    let save = |name: &str, title: &str| {
        let staged = service.path(&format!("{name}.staged"));
        fs::write(&staged, incident(title, "words")).unwrap();
        fs::rename(&staged, service.path(&format!("incidents/{name}"))).unwrap();
    };
    service.wait_for("the first run to start", || read(&runs) == "start\n");
    // While it hangs, changes are still published at once, and queue
    // exactly one more run.
    for n in 1..=3 {
        let title = format!("Change {n}");
        save(&format!("c{n}.md"), &title);
        service.wait_for(&format!("{title} in the feed"), || {
            service.feed().contains(&title)
        });
        // The feed is written before the rebuild asks for a run; the status
        // line comes after. Opening the gate earlier lets the queued run
        // start before this change asks, which then queues a run of its own.
        service.wait_for_line(&format!("STATUS={} incidents, 0 mail pending", n + 1), 1);
    }
    assert_eq!(read(&runs), "start\n");
    fs::write(service.path("gate"), "").unwrap();
    service.wait_for("the queued run", || read(&runs).matches("end").count() == 2);
    let copy = service.path("copy/feed.atom");
    assert!(read(&copy).contains("Change 3"));
    // One more change, one more run, and nothing queued from before.
    save("c4.md", "Change 4");
    service.wait_for("the last run", || {
        read(&copy).contains("Change 4") && read(&runs).matches("end").count() == 3
    });
    assert_eq!(read(&runs), "start\nend\n".repeat(3));
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn failed_publish_is_logged_and_retried_at_the_next_change() {
    let script = r#"#!/bin/sh
here=$(dirname "$0")
if [ ! -e "$here/failed-once" ]; then
    touch "$here/failed-once"
    echo "rsync: connection refused" >&2
    exit 23
fi
mkdir -p "$here/copy"
cp -r "$1/." "$here/copy/"
"#;
    let mut service = Service::start(publishing_site(script, "60s"), &[]);
    let command = format!("{} public", service.path("publish.sh").display());
    let expected = format!(
        "publish command `{command}` failed: exited with status 23: rsync: connection refused; retrying after the next change or in 1m"
    );
    service.wait_for("the failure in the log", || {
        service.log().contains(&expected)
    });
    assert!(!service.path("copy").exists());
    service.write_incident("b.md", &incident("Second incident", "second words"));
    service.wait_for("the retry", || {
        read(&service.path("copy/feed.atom")).contains("Second incident")
    });
    assert_eq!(service.terminate().code(), Some(0));
}

/// Whether `pid` is gone (or dead and only waiting to be reaped by init).
fn dead(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(&parent.to_string()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Starts a long `sleep` in the background, records both pids, waits.
const HANGS: &str = r#"#!/bin/sh
here=$(dirname "$0")
sleep 300 &
echo $! > "$here/sleep.pid"
echo $$ > "$here/script.pid"
echo start >> "$here/runs.log"
wait
"#;

#[test]
fn publish_past_its_timeout_is_killed_with_its_children() {
    let mut service = Service::start(publishing_site(HANGS, "1s"), &[]);
    service.wait_for("the timeout in the log", || {
        service
            .log()
            .contains("failed: did not finish within 1s; killed")
    });
    let script = read(&service.path("script.pid")).trim().to_owned();
    let sleep = read(&service.path("sleep.pid")).trim().to_owned();
    assert!(!script.is_empty() && !sleep.is_empty());
    service.wait_for("the command and its child to die", || {
        dead(&script) && dead(&sleep)
    });
    // herald reaped its child: no zombie of it is left.
    assert_eq!(children(service.child().id()), Vec::<String>::new());
    // The event loop went on meanwhile.
    service.write_incident("b.md", &incident("Second incident", "second words"));
    service.wait_for("the change", || service.feed().contains("Second incident"));
    assert_eq!(service.terminate().code(), Some(0));
}

#[test]
fn sigterm_during_a_publish_stops_it_and_exits_0() {
    let mut service = Service::start(publishing_site(HANGS, "300s"), &[]);
    let runs = service.path("runs.log");
    service.wait_for("the run to start", || read(&runs) == "start\n");
    let script = read(&service.path("script.pid")).trim().to_owned();
    let sleep = read(&service.path("sleep.pid")).trim().to_owned();
    assert_eq!(service.terminate().code(), Some(0));
    assert!(dead(&script) && dead(&sleep), "{}", service.log());
    assert!(
        service.log().contains("stopped: herald is stopping"),
        "{}",
        service.log()
    );
}

#[test]
fn build_publishes_when_an_output_changed_and_fails_with_the_command() {
    let dir = site(&config());
    let copy = dir.path().join("copy");
    let config = format!(
        "{}\n[publish]\ncommand = [\"cp\", \"-r\", \"{{output}}\", {:?}]\n",
        config(),
        copy.display().to_string()
    );
    fs::write(dir.path().join("herald.toml"), &config).unwrap();
    let build = || {
        Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("build")
            .current_dir(dir.path())
            .env_remove("HERALD_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .env("HERALD_LOG", "warn")
            .output()
            .unwrap()
    };
    let output = build();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(read(&copy.join("feed.atom")).contains("First incident"));
    // Nothing changed: nothing to publish.
    fs::remove_dir_all(&copy).unwrap();
    assert_eq!(build().status.code(), Some(0));
    assert!(!copy.exists());
    // A change, and a command that cannot start: exit 3, one line.
    fs::write(
        dir.path().join("incidents/a.md"),
        incident("First incident", "edited"),
    )
    .unwrap();
    fs::write(
        dir.path().join("herald.toml"),
        config.replace("\"cp\"", "\"no-such-publisher\""),
    )
    .unwrap();
    let output = build();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        vec![format!(
            "herald: publish command `no-such-publisher -r public {}` failed: cannot start `no-such-publisher`: No such file or directory (os error 2)",
            copy.display()
        )]
    );
}
