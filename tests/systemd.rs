//! The Debian package installed into a minimal Debian 12 booted with its
//! own systemd: `systemctl start` with readiness and the status line, an
//! incident posted as the `herald` user and published, `systemctl
//! reload` (a new title is applied; a broken configuration keeps the old
//! one running), the watchdog restarting a hung loop, `[publish]` with
//! rsync and with rclone inside the unit's sandbox, `systemctl stop`, no
//! errors in the journal from normal work, and the rating of
//! `systemd-analyze security`.
//!
//! The package is the one tests/package.rs checks, of the binary these
//! tests run (tests/support/deb.rs): no release build of its own.
//!
//! The image is `debootstrap --variant=minbase` of bookworm with systemd,
//! dbus and rsync (not procps: the unit must not need it), made once and
//! cached in `$XDG_CACHE_HOME/herald-test` (default `~/.cache/herald-test`);
//! each run boots a fresh copy with `systemd-nspawn --boot` and runs
//! commands in it with `nsenter`. It needs root, debootstrap,
//! systemd-nspawn, cargo-deb (scripts/test installs them) and, while
//! nothing is cached, Debian's archive. A machine that cannot run it fails
//! the test, saying why: it never passes without having run.

#[path = "support/deb.rs"]
mod deb;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SUITE: &str = "bookworm";
/// What the image has besides minbase: a booted systemd, and rsync for
/// `[publish]`. Changing it makes the next run build the image anew.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,rsync";
/// Where Debian installs it, outside a user's PATH.
const DEBOOTSTRAP: &str = "/usr/sbin/debootstrap";

/// For anything that should take seconds, on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);
/// A watchdog timeout, SIGABRT (or SIGKILL after TimeoutAbortSec=),
/// RestartSec=5s and a start.
const WATCHDOG_PATIENCE: Duration = Duration::from_secs(120);

const CONFIG: &str = "/etc/herald/herald.toml";
const FEED: &str = "/var/lib/herald/public/feed.atom";
const DROP_INS: &str = "/etc/systemd/system/herald.service.d";
const FIRST_TITLE: &str = "Herald test status";
const RELOADED_TITLE: &str = "Herald reloaded status";
const INCIDENT_TITLE: &str = "Database slow";

/// Fails the test because this machine cannot run it.
fn cannot_run(reason: &str) -> ! {
    panic!(
        "tests/systemd.rs cannot run on this machine: {reason}\n\
         It needs root, debootstrap, systemd-nspawn and nsenter, cargo-deb, and \
         Debian's archive while no image is cached; scripts/test installs the programs \
         (apt-get install debootstrap systemd-container; cargo install cargo-deb)."
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn both(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn require(program: &str, arguments: &[&str], install: &str) {
    let works = Command::new(program)
        .args(arguments)
        .output()
        .is_ok_and(|output| output.status.success());
    if !works {
        cannot_run(&format!("`{program}` is not installed ({install})"));
    }
}

fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("unknown");
    if uid != "0" {
        cannot_run(&format!(
            "it must run as root (effective uid {uid}) to debootstrap and boot a container"
        ));
    }
}

/// `$XDG_CACHE_HOME/herald-test`, or `$HOME/.cache/herald-test`.
#[expect(
    clippy::disallowed_methods,
    reason = "where a test keeps its cache is the tester's environment"
)]
fn cache_dir() -> PathBuf {
    let nonempty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    match (nonempty("XDG_CACHE_HOME"), nonempty("HOME")) {
        (Some(cache), _) => PathBuf::from(cache).join("herald-test"),
        (None, Some(home)) => PathBuf::from(home).join(".cache/herald-test"),
        (None, None) => {
            cannot_run("neither XDG_CACHE_HOME nor HOME is set: no place for the image")
        }
    }
}

/// The cached image, made with debootstrap when missing or made with
/// another package list, and the lock that keeps other runs from
/// rebuilding it while it is copied.
fn image() -> (PathBuf, File) {
    let cache = cache_dir();
    fs::create_dir_all(&cache)
        .unwrap_or_else(|error| cannot_run(&format!("cannot create {}: {error}", cache.display())));
    let lock = File::create(cache.join("lock")).unwrap();
    lock.lock().unwrap();
    let name = format!("{SUITE}-minbase");
    let image = cache.join(&name);
    let stamp = cache.join(format!("{name}.include"));
    if image.join("usr/lib/systemd/systemd").exists()
        && fs::read_to_string(&stamp).is_ok_and(|made| made == INCLUDE)
    {
        return (image, lock);
    }
    require(DEBOOTSTRAP, &["--version"], "apt-get install debootstrap");
    let partial = cache.join(format!("{name}.partial"));
    for old in [&image, &partial] {
        if old.exists() {
            fs::remove_dir_all(old).unwrap();
        }
    }
    let _ = fs::remove_file(&stamp);
    let log = cache.join("debootstrap.log");
    println!(
        "making the image {} with debootstrap (once; log in {})",
        image.display(),
        log.display()
    );
    let started = Instant::now();
    let output = Command::new(DEBOOTSTRAP)
        .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
        .arg(&partial)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    fs::write(&log, both(&output)).unwrap();
    if !output.status.success() {
        let _ = fs::remove_dir_all(&partial);
        cannot_run(&format!(
            "debootstrap --variant=minbase --include={INCLUDE} {SUITE} failed ({}), \
             so there is no Debian image to boot; the end of its log:\n{}",
            output.status,
            tail(&both(&output), 15)
        ));
    }
    fs::rename(&partial, &image).unwrap();
    fs::write(&stamp, INCLUDE).unwrap();
    println!("image made in {:.0?}", started.elapsed());
    (image, lock)
}

/// A fresh copy of the image, booted with systemd-nspawn; powered off and
/// removed when dropped.
struct Container {
    dir: TempDir,
    root: PathBuf,
    nspawn: Child,
    /// The container's systemd, as the host sees it; 0 until found.
    init: u32,
}

impl Container {
    fn boot(image: &Path) -> Self {
        require(
            "systemd-nspawn",
            &["--version"],
            "apt-get install systemd-container",
        );
        require("nsenter", &["--version"], "apt-get install util-linux");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let copy = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(image)
            .arg(&root)
            .output()
            .unwrap();
        assert!(
            copy.status.success(),
            "copying the image {} failed: {}",
            image.display(),
            both(&copy)
        );
        let log = File::create(dir.path().join("nspawn.log")).unwrap();
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--private-network",
                &format!("--machine=herald-test-{}", std::process::id()),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| cannot_run(&format!("cannot start systemd-nspawn: {error}")));
        let mut container = Self {
            dir,
            root,
            nspawn,
            init: 0,
        };
        container.find_init();
        container.wait_for_boot();
        container
    }

    fn nspawn_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("nspawn.log")).unwrap_or_default()
    }

    /// Finds the container's systemd: the child of systemd-nspawn.
    fn find_init(&mut self) {
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if let Some(status) = self.nspawn.try_wait().unwrap() {
                cannot_run(&format!(
                    "systemd-nspawn --boot exited ({status}) instead of booting the container:\n{}",
                    tail(&self.nspawn_log(), 30)
                ));
            }
            if let Some(init) = children(self.nspawn.id()).into_iter().find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "systemd")
            }) {
                self.init = init;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        cannot_run(&format!(
            "no systemd started under systemd-nspawn within {PATIENCE:?}:\n{}",
            tail(&self.nspawn_log(), 30)
        ));
    }

    fn wait_for_boot(&self) {
        let start = Instant::now();
        let mut seen = String::new();
        while start.elapsed() < PATIENCE * 2 {
            let output = self.run(&["systemctl", "is-system-running", "--wait"]);
            seen = both(&output);
            match text(&output.stdout).trim() {
                "running" => return,
                "degraded" => {
                    let failed = self.run(&["systemctl", "--failed", "--no-pager"]);
                    println!("the container booted degraded:\n{}", text(&failed.stdout));
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        cannot_run(&format!(
            "the container's systemd did not finish booting within {:?} \
             (`systemctl is-system-running --wait`: {seen}):\n{}",
            PATIENCE * 2,
            tail(&self.nspawn_log(), 30)
        ));
    }

    /// `ARGS` inside the container, in a clean environment, killed after
    /// two minutes.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("timeout");
        command
            .args(["--kill-after=10", "120", "nsenter", "-t"])
            .arg(self.init.to_string())
            .args([
                "-a",
                "--",
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LC_ALL=C",
                "SYSTEMD_COLORS=0",
            ])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs `ARGS`, which must succeed, for `what`; its standard output.
    fn must(&self, what: &str, args: &[&str]) -> String {
        let output = self.run(args);
        if !output.status.success() {
            self.fail(&format!(
                "{what}: `{}` failed ({}):\n{}",
                args.join(" "),
                output.status,
                both(&output)
            ));
        }
        text(&output.stdout)
    }

    /// `systemctl show -P NAME herald`.
    fn property(&self, name: &str) -> String {
        self.must(
            &format!("reading {name}"),
            &["systemctl", "show", "-P", name, "herald"],
        )
        .trim()
        .to_owned()
    }

    /// Several properties as `NAME=value NAME=value`, in the order asked.
    fn properties(&self, names: &[&str]) -> String {
        let mut args = vec!["systemctl", "show"];
        for name in names {
            args.extend(["-p", name]);
        }
        args.push("herald");
        let shown = self.must("reading the unit's state", &args);
        names
            .iter()
            .map(|name| {
                let value = shown
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}=")))
                    .unwrap_or("");
                format!("{name}={value}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// A file of the container, empty if it does not exist.
    fn read(&self, path: &str) -> String {
        fs::read_to_string(self.path(path)).unwrap_or_default()
    }

    /// Writes a file of the container (as root, mode 0644).
    fn write(&self, path: &str, contents: &str) {
        let path = self.path(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn journal(&self, args: &[&str]) -> String {
        let mut all = vec!["journalctl", "-u", "herald", "--no-pager", "-q"];
        all.extend(args);
        self.must("reading the journal", &all)
    }

    /// What the unit and its log say, for failure messages.
    fn diagnostics(&self) -> String {
        let show = self.run(&[
            "systemctl",
            "show",
            "-p",
            "ActiveState,SubState,Result,MainPID,NRestarts,StatusText",
            "herald",
        ]);
        let status = self.run(&[
            "systemctl",
            "status",
            "herald",
            "--no-pager",
            "-l",
            "-n",
            "0",
        ]);
        let journal = self.run(&["journalctl", "-u", "herald", "--no-pager", "-n", "40"]);
        format!(
            "--- systemctl show herald\n{}\n--- systemctl status herald\n{}\n\
             --- journalctl -u herald -n 40\n{}",
            both(&show),
            both(&status),
            both(&journal)
        )
    }

    fn fail(&self, message: &str) -> ! {
        panic!("{message}\n\n{}", self.diagnostics())
    }

    /// Waits until `check` holds; it says what it saw when it does not.
    fn eventually(&self, what: &str, patience: Duration, check: impl Fn() -> Result<(), String>) {
        let start = Instant::now();
        loop {
            match check() {
                Ok(()) => return,
                Err(seen) if start.elapsed() > patience => self.fail(&format!(
                    "timed out after {patience:?} waiting for {what}; last seen: {seen}"
                )),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn systemctl(&self, args: &[&str]) {
        let mut all = vec!["systemctl"];
        all.extend(args);
        self.must(&format!("systemctl {}", args.join(" ")), &all);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.init != 0 {
            let _ = self
                .command(&["systemctl", "poweroff", "--no-block"])
                .output();
        }
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if !matches!(self.nspawn.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.init != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.init.to_string()])
                .status();
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// The service's configuration: the packaged paths, one component, and
/// optionally `[publish]` lines.
fn config(title: &str, publish: &str) -> String {
    format!(
        "[site]\ntitle = \"{title}\"\nbase_url = \"https://status.example.com/\"\n\n\
         [paths]\nincidents = \"/var/lib/herald/incidents\"\n\
         output = \"/var/lib/herald/public\"\nstate = \"/var/lib/herald/state\"\n\n\
         [[components]]\nid = \"website\"\nname = \"Website\"\n{publish}"
    )
}

/// At most the first 1500 characters of `text`, for messages.
fn excerpt(text: &str) -> String {
    if text.is_empty() {
        return "(missing or empty)".to_owned();
    }
    text.chars().take(1500).collect()
}

fn install(container: &Container, deb: &Path) {
    fs::copy(deb, container.path("/root/herald.deb")).unwrap();
    container.must(
        "installing the package (every dependency must be in the minbase image)",
        &["dpkg", "-i", "/root/herald.deb"],
    );
    let status = container.must(
        "asking dpkg about herald",
        &["dpkg-query", "-W", "-f=${Status}", "herald"],
    );
    if status != "install ok installed" {
        container.fail(&format!("dpkg says herald is {status:?} after dpkg -i"));
    }
}

/// 1: started, the unit is active and shows herald's status line.
fn start(container: &Container) {
    container.write(CONFIG, &config(FIRST_TITLE, ""));
    container.systemctl(&["start", "herald"]);
    let state = container.property("ActiveState");
    if state != "active" {
        container.fail(&format!(
            "after `systemctl start herald` the unit is {state:?}, not \"active\""
        ));
    }
    let status = container.property("StatusText");
    if !status.starts_with("0 incidents, ") {
        container.fail(&format!(
            "StatusText is {status:?}, not herald's status line \"0 incidents, …\""
        ));
    }
}

/// 7: `systemd-analyze security` on the running system rates the unit
/// 2.0 or better (lower).
fn security(container: &Container) -> f64 {
    let report = container.must(
        "rating the unit",
        &[
            "systemd-analyze",
            "security",
            "herald.service",
            "--no-pager",
        ],
    );
    let exposure = report
        .lines()
        .find_map(|line| line.split_once("Overall exposure level for herald.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok());
    match exposure {
        Some(exposure) if exposure <= 2.0 => exposure,
        Some(exposure) => container.fail(&format!(
            "systemd-analyze security rates herald.service {exposure}, above 2.0:\n{report}"
        )),
        None => container.fail(&format!(
            "no overall exposure level in systemd-analyze security's report:\n{report}"
        )),
    }
}

/// 2: an incident created as the herald user is published by the service.
fn post_incident(container: &Container) {
    container.must(
        "creating an incident as the herald user",
        &[
            "runuser",
            "-u",
            "herald",
            "--",
            "herald",
            "--config",
            CONFIG,
            "new",
            "db-slow",
            "--title",
            INCIDENT_TITLE,
            "--components",
            "website",
            "Looking into it.",
        ],
    );
    container.eventually(&format!("{INCIDENT_TITLE:?} in {FEED}"), PATIENCE, || {
        let feed = container.read(FEED);
        feed.contains(INCIDENT_TITLE)
            .then_some(())
            .ok_or_else(|| excerpt(&feed))
    });
    container.eventually("the status line to count it", PATIENCE, || {
        let status = container.property("StatusText");
        status
            .starts_with("1 incident, ")
            .then_some(())
            .ok_or(status)
    });
}

fn feed_title(container: &Container, title: &str) -> Result<(), String> {
    let feed = container.read(FEED);
    feed.contains(&format!("<title>{title}</title>"))
        .then_some(())
        .ok_or_else(|| excerpt(&feed))
}

/// 3, first half: a reload applies a new site title.
fn reload(container: &Container) {
    container.write(CONFIG, &config(RELOADED_TITLE, ""));
    container.systemctl(&["reload", "herald"]);
    container.eventually(
        &format!("the reloaded title {RELOADED_TITLE:?} in {FEED}"),
        PATIENCE,
        || feed_title(container, RELOADED_TITLE),
    );
    container.eventually("herald to log that it reloaded", PATIENCE, || {
        let journal = container.journal(&[]);
        journal
            .contains("reloaded")
            .then_some(())
            .ok_or_else(|| tail(&journal, 10))
    });
}

/// 6: nothing at priority err or worse in herald's journal (after
/// `cursor`, when given).
fn no_errors(container: &Container, during: &str, cursor: Option<&str>) {
    // Whatever herald wrote before now is in the journal.
    container.must("syncing the journal", &["journalctl", "--sync"]);
    let after = cursor.map(|cursor| format!("--after-cursor={cursor}"));
    let mut args = vec!["-p", "err"];
    args.extend(after.as_deref());
    let errors = container.journal(&args);
    if !errors.trim().is_empty() {
        container.fail(&format!(
            "`journalctl -u herald -p err` has lines from {during}:\n{errors}"
        ));
    }
}

/// 3, second half: a broken configuration is refused and the running one
/// kept; then the good one is restored.
fn broken_reload(container: &Container) {
    let pid = container.property("MainPID");
    container.write(CONFIG, "[site\ntitle = \"Broken\n");
    container.systemctl(&["reload", "herald"]);
    container.eventually("StatusText to say the reload failed", PATIENCE, || {
        let status = container.property("StatusText");
        status
            .starts_with("reload failed")
            .then_some(())
            .ok_or(status)
    });
    container.eventually("the service to stay active", PATIENCE, || {
        let state = container.properties(&["ActiveState", "MainPID"]);
        (state == format!("ActiveState=active MainPID={pid}"))
            .then_some(())
            .ok_or(state)
    });
    if let Err(feed) = feed_title(container, RELOADED_TITLE) {
        container.fail(&format!(
            "after a broken reload the feed lost the running title {RELOADED_TITLE:?}:\n{feed}"
        ));
    }

    container.write(CONFIG, &config(RELOADED_TITLE, ""));
    container.systemctl(&["reload", "herald"]);
    container.eventually("the restored configuration to load", PATIENCE, || {
        let status = container.property("StatusText");
        status
            .starts_with("1 incident, ")
            .then_some(())
            .ok_or(status)
    });
}

/// 4: a hung loop is restarted by the watchdog.
fn watchdog(container: &Container) {
    container.write(
        &format!("{DROP_INS}/watchdog.conf"),
        "[Service]\nWatchdogSec=4s\n",
    );
    container.systemctl(&["daemon-reload"]);
    container.systemctl(&["restart", "herald"]);
    let period = container.property("WatchdogUSec");
    if period != "4s" {
        container.fail(&format!(
            "WatchdogUSec is {period:?} with the drop-in, not 4s"
        ));
    }
    let restarts: u32 = container.property("NRestarts").parse().unwrap();
    let pid = container.property("MainPID");
    container.must(
        "stopping herald's main process",
        &["/bin/sh", "-c", "kill -STOP \"$1\"", "sh", &pid],
    );
    container.eventually(
        &format!("the watchdog to restart herald (main pid {pid}, {restarts} restarts before)"),
        WATCHDOG_PATIENCE,
        || {
            let state = container.properties(&["ActiveState", "MainPID", "NRestarts", "SubState"]);
            let value = |name: &str| {
                state
                    .split(' ')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                    .unwrap_or("")
                    .to_owned()
            };
            let restarted = value("ActiveState") == "active"
                && value("MainPID") != pid
                && value("MainPID") != "0"
                && value("NRestarts")
                    .parse::<u32>()
                    .is_ok_and(|now| now > restarts);
            restarted.then_some(()).ok_or(state)
        },
    );
    let journal = container.journal(&[]);
    if !journal.contains("Watchdog timeout") {
        container.fail(&format!(
            "herald was restarted, but the journal does not say the watchdog did it:\n{}",
            tail(&journal, 15)
        ));
    }
}

/// 8: `[publish]` runs rsync to a local directory inside the sandbox,
/// given `ReadWritePaths=` for it.
fn publish_with_rsync(container: &Container) {
    container.must(
        "making the publish target",
        &[
            "install",
            "-d",
            "-o",
            "herald",
            "-g",
            "herald",
            "/srv/status",
        ],
    );
    container.write(
        &format!("{DROP_INS}/publish.conf"),
        "[Service]\nReadWritePaths=/srv/status\n",
    );
    container.write(
        CONFIG,
        &config(
            RELOADED_TITLE,
            "\n[publish]\ncommand = [\"rsync\", \"-a\", \"--delete\", \"{output}/\", \"/srv/status/\"]\ntimeout = \"30s\"\n",
        ),
    );
    container.systemctl(&["daemon-reload"]);
    container.systemctl(&["restart", "herald"]);
    container.eventually("rsync to copy the feed to /srv/status", PATIENCE, || {
        let feed = container.read("/srv/status/feed.atom");
        if feed.contains(INCIDENT_TITLE) && feed.contains(RELOADED_TITLE) {
            return Ok(());
        }
        let publishing: Vec<String> = container
            .journal(&[])
            .lines()
            .filter(|line| line.contains("publish"))
            .map(str::to_owned)
            .collect();
        Err(format!(
            "/srv/status/feed.atom: {}\nherald's log of publishing:\n{}",
            excerpt(&feed),
            publishing.join("\n")
        ))
    });
}

/// 9: `[publish]` runs rclone with the flags of docs/publish-s3.md under
/// the unit's system-call filter, `MemoryDenyWriteExecute=` and private
/// users, reading its remote from /etc/herald/rclone.conf (root:herald,
/// 0640). The container has no network, so the remote is a local
/// directory; the rclone is the host's (Debian 12's package, as the image).
fn publish_with_rclone(container: &Container) {
    let rclone = Path::new("/usr/bin/rclone");
    if !rclone.exists() {
        container
            .fail("/usr/bin/rclone is missing: scripts/test installs it (apt-get install rclone)");
    }
    fs::copy(rclone, container.path("/usr/local/bin/rclone")).unwrap();
    container.write("/etc/herald/rclone.conf", "[store]\ntype = local\n");
    container.must(
        "securing rclone.conf",
        &["chown", "root:herald", "/etc/herald/rclone.conf"],
    );
    container.must(
        "securing rclone.conf",
        &["chmod", "0640", "/etc/herald/rclone.conf"],
    );
    container.must(
        "making the rclone target",
        &[
            "install",
            "-d",
            "-o",
            "herald",
            "-g",
            "herald",
            "/srv/status-rclone",
        ],
    );
    container.write(
        &format!("{DROP_INS}/rclone.conf"),
        "[Service]\nReadWritePaths=/srv/status-rclone\n",
    );
    container.write(
        CONFIG,
        &config(
            RELOADED_TITLE,
            concat!(
                "\n[publish]\ncommand = [\"rclone\", \"--config\", \"/etc/herald/rclone.conf\", ",
                "\"sync\", \"--checksum\", \"--fast-list\", \"--retries\", \"1\", ",
                "\"--low-level-retries\", \"2\", \"--header-upload\", ",
                "\"Cache-Control: public, max-age=60\", \"{output}/\", \"store:/srv/status-rclone\"]\n",
                "timeout = \"30s\"\n",
            ),
        ),
    );
    container.systemctl(&["daemon-reload"]);
    container.systemctl(&["restart", "herald"]);
    container.eventually(
        "rclone to sync the feed to /srv/status-rclone",
        PATIENCE,
        || {
            let feed = container.read("/srv/status-rclone/feed.atom");
            if feed.contains(INCIDENT_TITLE) && feed.contains(RELOADED_TITLE) {
                return Ok(());
            }
            let publishing: Vec<String> = container
                .journal(&[])
                .lines()
                .filter(|line| line.contains("publish"))
                .map(str::to_owned)
                .collect();
            Err(format!(
                "/srv/status-rclone/feed.atom: {}\nherald's log of publishing:\n{}",
                excerpt(&feed),
                publishing.join("\n")
            ))
        },
    );
}

/// 5: a stop is clean.
fn stop(container: &Container) {
    container.systemctl(&["stop", "herald"]);
    let state = container.properties(&["ActiveState", "Result"]);
    if state != "ActiveState=inactive Result=success" {
        container.fail(&format!(
            "after `systemctl stop herald`: {state}, not ActiveState=inactive Result=success"
        ));
    }
}

/// The last entry of herald's journal, to look only after it.
fn cursor(container: &Container) -> String {
    let out = container.journal(&["-n", "1", "--show-cursor"]);
    out.lines()
        .find_map(|line| line.strip_prefix("-- cursor: "))
        .unwrap_or_else(|| {
            container.fail(&format!("no cursor in `journalctl --show-cursor`:\n{out}"))
        })
        .to_owned()
}

#[test]
fn package_runs_under_systemd_on_minimal_debian() {
    let began = Instant::now();
    require_root();
    require("cargo", &["deb", "--version"], "cargo install cargo-deb");
    require("dpkg-deb", &["--version"], "apt-get install dpkg");
    let packaging = tempfile::tempdir().unwrap();
    let deb = deb::build(packaging.path());
    let container = {
        let (image, _lock) = image();
        Container::boot(&image)
    };
    println!("booted in {:.1?}", began.elapsed());
    install(&container, &deb);

    start(&container);
    let exposure = security(&container);
    println!(
        "1: active, StatusText {:?}; 7: exposure {exposure}",
        container.property("StatusText")
    );
    post_incident(&container);
    println!("2: the incident is published");
    reload(&container);
    no_errors(&container, "starting, posting and reloading", None);
    broken_reload(&container);
    println!("3: reload applied; a broken one kept the old; 6: no errors so far");
    watchdog(&container);
    println!("4: the watchdog restarted a stopped herald");
    let cursor = cursor(&container);
    publish_with_rsync(&container);
    println!("8: rsync published inside the sandbox");
    publish_with_rclone(&container);
    println!("9: rclone published inside the sandbox");
    stop(&container);
    no_errors(
        &container,
        "publishing with rsync and rclone, and stopping",
        Some(&cursor),
    );
    println!(
        "5: stopped with Result=success; 6: no errors; in all {:.1?}",
        began.elapsed()
    );
}
