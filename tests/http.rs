//! The subscription endpoints end to end: real `herald run` processes
//! with `[http]`, real HTTP requests on 127.0.0.1 (tests/support/http.rs),
//! a real SMTP server (tests/support/smtp.rs) or the `.eml` file
//! transport, and the real state database, read back with rusqlite.
//!
//! Covered: double opt-in (nothing before the link is followed, alerts
//! after), RFC 8058 one-click unsubscribe with the token from an alert's
//! List-Unsubscribe header, unknown and expired links, rate limits, bad
//! bodies that store nothing, the same answer for new, pending and
//! subscribed addresses, /healthz, and a state directory that holds no
//! working token.

#[path = "support/http.rs"]
mod http;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use smtp::{SmtpServer, free_port};

/// A site with `[http]` on a free port; `smtp` is a port, or `None` for
/// the `.eml` file transport.
fn config(http_port: u16, smtp: Option<u16>) -> String {
    let email = match smtp {
        Some(port) => format!(
            "[email]\nfrom = \"Test status <status@example.com>\"\nsmtp = \"smtp://127.0.0.1:{port}\"\ngrace = \"0s\"\nretry_base = \"100ms\"\n"
        ),
        None => String::new(),
    };
    let site = site_toml::site("Test status")
        + &site_toml::components(&[("mail", "Mail"), ("web", "Web hosting")]);
    format!(
        r#"{site}
[http]
listen = "127.0.0.1:{http_port}"

{email}"#
    )
}

/// One `herald run` in a temporary directory.
struct Daemon {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Daemon {
    fn start(smtp: Option<u16>) -> Daemon {
        Daemon::start_with(smtp, &[])
    }

    /// Starts after adding `subscribers` (address, `--components` value).
    fn start_with(smtp: Option<u16>, subscribers: &[(&str, &str)]) -> Daemon {
        Daemon::start_configured(smtp, subscribers, "")
    }

    /// Starts with `extra` appended to the configuration (to its last
    /// section, `[email]` when `smtp` is set).
    fn start_configured(smtp: Option<u16>, subscribers: &[(&str, &str)], extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        fs::write(dir.path().join("herald.toml"), config(port, smtp) + extra).unwrap();
        fs::create_dir_all(dir.path().join("incidents")).unwrap();
        let mut daemon = Daemon {
            dir,
            port,
            child: None,
        };
        for (address, components) in subscribers {
            daemon.herald(&["subscribers", "add", address, "--components", components]);
        }
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("run")
            .current_dir(daemon.dir.path())
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(daemon.path("herald.log")).unwrap())
            .spawn()
            .unwrap();
        daemon.child = Some(child);
        daemon.wait_for("the daemon to be ready", || daemon.log().contains("ready"));
        daemon
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("herald.log")).unwrap_or_default()
    }

    fn herald(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("HERALD_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "herald {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn wait_for(&self, what: &str, condition: impl Fn() -> bool) {
        wait::until(what, condition, || format!("herald's log:\n{}", self.log()));
    }

    fn write_incident(&self, updates: &[(&str, &str)]) {
        let mut text = "+++\ntitle = \"Storage failure\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n".to_owned();
        for (heading, body) in updates {
            text.push_str(&format!("\n## {heading}\n{body}\n"));
        }
        fs::write(self.path("incidents/storage.md"), text).unwrap();
    }

    fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("state/herald.db")).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.database()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    /// The `.eml` files the file transport wrote, by name.
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path("state/outbox-files"))
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn subscribe(&self, client: &str, body: &str) -> http::Response {
        http::post_form(self.port, "/subscribe", client, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A heading time `minutes_ago`, in the site's zone.
fn recent(minutes_ago: i64) -> String {
    let local = herald::clock::now().with_timezone(&chrono_tz::Europe::Stockholm)
        - chrono::Duration::minutes(minutes_ago);
    local.format("%Y-%m-%d %H:%M:%S%:z").to_string()
}

fn messages_to(server: &SmtpServer, address: &str) -> Vec<Vec<(String, String)>> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| read(message).1)
        .collect()
}

/// A message's text part and headers.
fn read(message: &smtp::Received) -> (String, Vec<(String, String)>) {
    let mail = mailparse::parse_mail(&message.data).unwrap();
    let headers = mail
        .headers
        .iter()
        .map(|h| (h.get_key(), h.get_value()))
        .collect();
    let text = mail
        .subparts
        .iter()
        .find(|part| part.ctype.mimetype == "text/plain")
        .map(|part| part.get_body().unwrap().replace("\r\n", "\n"))
        .unwrap_or_default();
    (text, headers)
}

/// The path of the first `https://status.example.com/PREFIX…` link.
fn link(text: &str, prefix: &str) -> String {
    let base = "https://status.example.com";
    let start = text
        .find(&format!("{base}{prefix}"))
        .unwrap_or_else(|| panic!("no {prefix} link in {text}"));
    text[start + base.len()..]
        .split(|c: char| c.is_whitespace() || c == '>' || c == ',')
        .next()
        .unwrap()
        .to_owned()
}

fn subjects_to(server: &SmtpServer, address: &str) -> Vec<String> {
    let mut subjects: Vec<String> = messages_to(server, address)
        .into_iter()
        .map(|headers| {
            headers
                .into_iter()
                .find(|(key, _)| key == "Subject")
                .map(|(_, value)| value)
                .unwrap_or_default()
        })
        .collect();
    subjects.sort();
    subjects
}

/// Whether `needle` occurs anywhere in the files of `dir`.
fn occurs_in(dir: &Path, needle: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| {
            fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .map(|path| path.display().to_string())
        .collect()
}

#[test]
fn double_opt_in_then_one_click_unsubscribe() {
    let server = SmtpServer::start();
    let daemon = Daemon::start_with(Some(server.port()), &[("other@example.org", "mail")]);
    // Changes only: the updates below each change the status, so all reach it.
    let answer = daemon.subscribe(
        "192.0.2.1",
        "email=new%40example.org&components=mail&volume=changes",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains("<h1>Check your inbox</h1>"),
        "{}",
        answer.body
    );

    daemon.wait_for("the confirmation email", || server.count() == 1);
    let confirmation = server.received().remove(0);
    assert_eq!(confirmation.to, ["new@example.org"]);
    let (text, headers) = read(&confirmation);
    assert!(
        headers.contains(&(
            "Subject".into(),
            "[Test status] Confirm your subscription".into()
        )),
        "{headers:?}"
    );
    assert!(text.contains("  - Mail\n"), "{text}");
    let confirm = link(&text, "/confirm/");

    // Before the link is followed, an alert reaches the others only.
    let first = recent(2);
    daemon.write_incident(&[(&format!("{first} investigating"), "Disks.")]);
    daemon.wait_for("the first alert", || {
        subjects_to(&server, "other@example.org").len() == 1
    });
    assert_eq!(
        subjects_to(&server, "new@example.org"),
        ["[Test status] Confirm your subscription"]
    );

    let confirmed = http::get(daemon.port, &confirm);
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert!(confirmed.body.contains("<h1>Subscription confirmed</h1>"));
    assert_eq!(
        daemon.herald(&["subscribers", "list"]),
        "new@example.org\ten\tmail\tchanges\temail\nother@example.org\ten\tmail\tevery\temail\n"
    );

    let second = recent(1);
    daemon.write_incident(&[
        (&format!("{first} investigating"), "Disks."),
        (&format!("{second} identified"), "A controller."),
    ]);
    daemon.wait_for("the alert to the new subscriber", || {
        subjects_to(&server, "new@example.org").len() == 2
    });
    let unsubscribe = unsubscribe_link(&server, "new@example.org");
    let confirm_token = confirm.trim_start_matches("/confirm/");
    let unsubscribe_token = unsubscribe.trim_start_matches("/unsubscribe/");

    // A leaked state directory holds neither token.
    for token in [confirm_token, unsubscribe_token] {
        assert_eq!(
            occurs_in(&daemon.path("state"), token),
            Vec::<String>::new()
        );
    }

    // The page behind the link changes nothing.
    let page = http::get(daemon.port, &unsubscribe);
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"),
        "{}",
        page.body
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(
        daemon
            .herald(&["subscribers", "list"])
            .contains("new@example.org")
    );

    // One click, as the page's button and many mail clients send it;
    // then again, as multipart/form-data, which RFC 8058 prefers.
    let done = http::post_form(
        daemon.port,
        &unsubscribe,
        "192.0.2.1",
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert!(done.body.contains("<h1>Unsubscribed</h1>"));
    let again = http::send(
        daemon.port,
        &format!("POST {unsubscribe} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b0undary"),
        b"--b0undary\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b0undary--\r\n",
    );
    assert_eq!(again.status, 200, "{again:?}");
    assert!(again.body.contains("<h1>Unsubscribed</h1>"));
    assert_eq!(
        daemon.herald(&["subscribers", "list"]),
        "other@example.org\ten\tmail\tevery\temail\n"
    );

    daemon.write_incident(&[
        (&format!("{first} investigating"), "Disks."),
        (&format!("{second} identified"), "A controller."),
        (&format!("{} resolved", recent(0)), "Replaced."),
    ]);
    daemon.wait_for("the third alert", || {
        subjects_to(&server, "other@example.org").len() == 3
    });
    assert_eq!(
        subjects_to(&server, "new@example.org"),
        [
            "[Test status] Confirm your subscription",
            "[Test status] Identified: Storage failure"
        ]
    );
}

/// The path of the unsubscribe link in `message`'s `List-Unsubscribe`.
fn list_unsubscribe(message: &smtp::Received) -> String {
    let (_, headers) = read(message);
    let value = headers
        .iter()
        .find(|(key, _)| key == "List-Unsubscribe")
        .map(|(_, value)| value.clone())
        .unwrap();
    link(&value, "/unsubscribe/")
}

/// [`list_unsubscribe`] of the last message to `address`.
fn unsubscribe_link(server: &SmtpServer, address: &str) -> String {
    let message = server
        .received()
        .into_iter()
        .rfind(|message| message.to == [address])
        .unwrap();
    list_unsubscribe(&message)
}

#[test]
fn a_lost_token_key_stops_email_until_rekeyed_and_no_link_breaks() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = SmtpServer::start();
    let daemon = Daemon::start_with(
        Some(server.port()),
        &[("a@example.org", "mail"), ("b@example.org", "mail")],
    );
    let first = recent(3);
    daemon.write_incident(&[(&format!("{first} investigating"), "Disks.")]);
    daemon.wait_for("the first alerts", || server.count() == 2);
    let old_link = unsubscribe_link(&server, "a@example.org");

    // The key is lost; herald notices at the next start or reload.
    fs::remove_file(daemon.path("state/token.key")).unwrap();
    wait::signal(daemon.child.as_ref().unwrap(), "HUP");
    daemon.wait_for("the problem in the log", || {
        daemon.log().contains(
            "token.key is missing, and 2 subscriptions have links made with it, so email is stopped; restore the key from a backup and reload herald, or run `herald rekey`",
        )
    });
    daemon.wait_for("/healthz to say so", || {
        http::get(daemon.port, "/healthz").status == 503
    });
    let health = http::get(daemon.port, "/healthz");
    assert_eq!(
        health.body, "email stopped: token key missing\n",
        "{health:?}"
    );
    assert!(
        !daemon.path("state/token.key").exists(),
        "no key is made behind the operator's back"
    );

    // An update is queued but not sent; nothing new gets a link.
    let second = recent(2);
    daemon.write_incident(&[
        (&format!("{first} investigating"), "Disks."),
        (&format!("{second} identified"), "A controller."),
    ]);
    daemon.wait_for("the update to be queued", || {
        daemon.count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 2
    });
    let added = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["subscribers", "add", "c@example.org"])
        .current_dir(daemon.dir.path())
        .env_remove("HERALD_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&added.stderr);
    assert_eq!(added.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("token.key is missing"), "{stderr}");
    let subscribe = daemon.subscribe("192.0.2.9", "email=d%40example.org");
    assert_eq!(subscribe.status, 503, "{subscribe:?}");
    assert_eq!(server.count(), 2, "nothing was sent without the key");

    // The operator has no backup and starts over.
    let rekeyed = daemon.herald(&["rekey"]);
    assert!(rekeyed.contains("2 subscriptions re-keyed"), "{rekeyed}");
    let mode = fs::metadata(daemon.path("state/token.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    daemon.wait_for("the held alerts after the reload", || {
        wait::signal(daemon.child.as_ref().unwrap(), "HUP");
        std::thread::sleep(std::time::Duration::from_millis(200));
        server.count() == 4
    });
    daemon.wait_for("/healthz to recover", || {
        http::get(daemon.port, "/healthz").status == 200
    });

    // The new link works, and so does the one in the mail sent before.
    let new_link = unsubscribe_link(&server, "a@example.org");
    assert_ne!(new_link, old_link);
    let done = http::post_form(
        daemon.port,
        &new_link,
        "192.0.2.1",
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(done.status, 200, "{done:?}");
    let first_to_b = server
        .received()
        .into_iter()
        .find(|message| message.to == ["b@example.org"])
        .unwrap();
    let old_b = list_unsubscribe(&first_to_b);
    let done = http::post_form(
        daemon.port,
        &old_b,
        "192.0.2.2",
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(daemon.herald(&["subscribers", "list"]), "");
}

#[test]
fn a_state_database_locked_for_long_delays_email_but_loses_none() {
    let server = SmtpServer::start();
    let daemon = Daemon::start_with(Some(server.port()), &[("a@example.org", "mail")]);
    // Another process holds the write lock past herald's 5 s patience.
    let locker = daemon.database();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let first = format!("{} investigating", recent(1));
    daemon.write_incident(&[(&first, "Disks.")]);
    daemon.wait_for("the failure in the log", || {
        daemon
            .log()
            .contains("cannot record new updates; they are queued for email once it can")
    });
    let health = http::get(daemon.port, "/healthz");
    assert_eq!(health.status, 503, "{health:?}");
    // Said by the daemon, or by the mailer if its lease met the lock too.
    assert!(
        health.body.ends_with("state database unusable\n"),
        "{}",
        health.body
    );
    assert!(
        fs::read_to_string(daemon.path("public/feed.atom"))
            .unwrap()
            .contains("Disks."),
        "the update is published meanwhile"
    );
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    daemon.wait_for("the alert once the lock is gone", || {
        subjects_to(&server, "a@example.org").len() == 1
    });
    daemon.wait_for("/healthz to recover", || {
        http::get(daemon.port, "/healthz").status == 200
    });
    assert!(daemon.log().contains("the state database works again"));

    // Locked again while the mailer restarts (a reload): it waits for
    // the database instead of giving up, and sends once it can.
    let locker = daemon.database();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    wait::signal(daemon.child.as_ref().unwrap(), "HUP");
    daemon.wait_for("the mailer to say it waits", || {
        daemon
            .log()
            .contains("email waits until the state database can be used")
    });
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    daemon.write_incident(&[
        (&first, "Disks."),
        (&format!("{} identified", recent(0)), "A controller."),
    ]);
    daemon.wait_for("the second alert", || {
        subjects_to(&server, "a@example.org").len() == 2
    });
    daemon.wait_for("the outbox to settle", || {
        daemon.count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
    });
    assert_eq!(server.count(), 2, "one email per update");
}

#[test]
fn one_address_from_the_command_line_and_the_form_is_one_subscriber() {
    let server = SmtpServer::start();
    let daemon = Daemon::start_with(Some(server.port()), &[("Anna@Example.COM", "mail")]);
    let answer = daemon.subscribe("192.0.2.1", "email=Anna%40example.com&components=web");
    assert_eq!(answer.status, 200, "{answer:?}");
    daemon.wait_for("the confirmation email", || server.count() == 1);
    let (text, _) = read(&server.received()[0]);
    let confirmed = http::get(daemon.port, &link(&text, "/confirm/"));
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    // The form replaced the choice of the one subscriber there was.
    assert_eq!(
        daemon.herald(&["subscribers", "list"]),
        "Anna@example.com\ten\tweb\tevery\temail\n"
    );
    let incident = "+++\ntitle = \"Web down\"\ncomponents = [\"web\"]\nseverity = \"major\"\n+++\n";
    fs::write(
        daemon.path("incidents/web.md"),
        format!("{incident}\n## {} investigating\nLooking.\n", recent(1)),
    )
    .unwrap();
    daemon.wait_for("the alert", || {
        subjects_to(&server, "Anna@example.com").len() == 2
    });
    daemon.wait_for("the outbox to settle", || {
        daemon.count("SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
    });
    assert_eq!(
        subjects_to(&server, "Anna@example.com"),
        [
            "[Test status] Confirm your subscription",
            "[Test status] Investigating: Web down"
        ]
    );
    assert_eq!(server.count(), 2, "one email per alert, to one address");
}

#[test]
fn a_damaged_state_database_shows_on_healthz() {
    let server = SmtpServer::start();
    let daemon = Daemon::start_with(Some(server.port()), &[("a@example.org", "mail")]);
    // One alert first, so that the mailer is running (a database already
    // damaged when it starts stops it instead, for systemd to restart).
    let first = (format!("{} investigating", recent(2)), "Disks.");
    daemon.write_incident(&[(&first.0, first.1)]);
    daemon.wait_for("the first alert", || server.count() == 1);
    daemon
        .database()
        .execute_batch("PRAGMA foreign_keys = OFF; DROP TABLE outbox;")
        .unwrap();
    daemon.write_incident(&[
        (&first.0, first.1),
        (&format!("{} identified", recent(1)), "A disk."),
    ]);
    daemon.wait_for("/healthz to say so", || {
        http::get(daemon.port, "/healthz").status == 503
    });
    let health = http::get(daemon.port, "/healthz");
    assert!(
        health.body.ends_with("state database unusable\n"),
        "{}",
        health.body
    );
    assert!(
        daemon.log().contains("no such table: outbox"),
        "{}",
        daemon.log()
    );
}

#[test]
fn slow_and_idle_clients_cannot_hold_connections_or_descriptors() {
    use std::io::{Read as _, Write as _};
    use std::net::TcpStream;
    let daemon = Daemon::start(None);
    let pid = daemon.child.as_ref().unwrap().id();
    let descriptors = || fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let before = descriptors();

    // Headers that never end are cut off.
    let mut slow = TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    slow.write_all(b"POST /subscribe HTTP/1.1\r\nHost: status\r\n")
        .unwrap();
    slow.set_read_timeout(Some(wait::PATIENCE)).unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(read.is_ok(), "the server closes the connection: {read:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "closed after {:?}",
        started.elapsed()
    );

    // Raise this process's own limit so that it can open more
    // connections than herald may hold.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(4096);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let idle: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(("127.0.0.1", daemon.port)).unwrap())
        .collect();
    daemon.wait_for("herald to accept what it may", || {
        descriptors() >= before + herald::http::MAX_CONNECTIONS - 8
    });
    let held = descriptors();
    assert!(
        held <= before + herald::http::MAX_CONNECTIONS + 8,
        "{held} descriptors with 600 idle clients, {before} before"
    );
    // The daemon still opens incident files meanwhile.
    fs::write(
        daemon.path("incidents/meanwhile.md"),
        format!(
            "+++\ntitle = \"Published meanwhile\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## {} investigating\nx\n",
            recent(1)
        ),
    )
    .unwrap();
    daemon.wait_for("the new incident in the feed", || {
        fs::read_to_string(daemon.path("public/feed.atom"))
            .unwrap_or_default()
            .contains("Published meanwhile")
    });
    // Once the idle ones time out, the endpoints answer again.
    daemon.wait_for("/healthz to answer", || {
        http::get(daemon.port, "/healthz").status == 200
    });
    drop(idle);
}

/// The confirmation token in the one `.eml` file written so far.
fn confirm_link_in_files(daemon: &Daemon) -> String {
    daemon.wait_for("a confirmation email file", || !daemon.files().is_empty());
    let name = daemon.files().remove(0);
    let bytes = fs::read(daemon.path("state/outbox-files").join(name)).unwrap();
    let mail = mailparse::parse_mail(&bytes).unwrap();
    link(&mail.subparts[0].get_body().unwrap(), "/confirm/")
}

#[test]
fn unknown_and_expired_links_are_refused_with_a_page() {
    let daemon = Daemon::start(None);
    assert_eq!(
        daemon
            .subscribe("192.0.2.1", "email=late%40example.org")
            .status,
        200
    );
    let confirm = confirm_link_in_files(&daemon);
    // Eight days pass (the link works for seven).
    let week = 8 * 24 * 3600 * 1000;
    daemon
        .database()
        .execute(
            "UPDATE requests SET created = created - ?1, expires = expires - ?1",
            [week],
        )
        .unwrap();
    let expired = http::get(daemon.port, &confirm);
    assert_eq!(expired.status, 404);
    assert!(
        expired.body.contains("<h1>Link not found</h1>"),
        "{}",
        expired.body
    );
    assert_eq!(daemon.herald(&["subscribers", "list"]), "");

    let made_up = "0123456789abcdef0123456789abcdef";
    for answer in [
        http::get(daemon.port, &format!("/confirm/{made_up}")),
        http::get(daemon.port, &format!("/unsubscribe/{made_up}")),
        http::post_form(
            daemon.port,
            &format!("/unsubscribe/{made_up}"),
            "192.0.2.1",
            "List-Unsubscribe=One-Click",
        ),
        http::get(daemon.port, "/confirm/not-a-token"),
        http::get(daemon.port, "/unsubscribe/%ff%fe"),
        http::get(daemon.port, "/no/such/page"),
    ] {
        assert_eq!(answer.status, 404, "{answer:?}");
        assert!(
            answer.body.contains("<h1>Link not found</h1>"),
            "{answer:?}"
        );
        assert_eq!(
            answer.header("content-type"),
            Some("text/html; charset=utf-8")
        );
    }
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let daemon = Daemon::start(None);
    // Per address: three, whoever asks.
    for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let answer = daemon.subscribe(client, "email=a%40example.org");
        assert_eq!(answer.status, 200, "{answer:?}\n{}", daemon.log());
    }
    let limited = daemon.subscribe("192.0.2.4", "email=A%40example.org");
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.body.contains("<h1>Too many requests</h1>"));
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20 * 60).contains(&wait), "{wait}");

    // Per client: ten, whatever the address.
    for n in 0..10 {
        let answer = daemon.subscribe("198.51.100.7", &format!("email=c{n}%40example.org"));
        assert_eq!(answer.status, 200, "{n}: {answer:?}");
    }
    let limited = daemon.subscribe("198.51.100.7", "email=c10%40example.org");
    assert_eq!(limited.status, 429);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Another client is not limited.
    assert_eq!(
        daemon
            .subscribe("198.51.100.8", "email=c10%40example.org")
            .status,
        200
    );
    assert_eq!(daemon.count("SELECT count(*) FROM requests"), 12);
}

#[test]
fn bad_bodies_are_refused_and_store_nothing() {
    let daemon = Daemon::start(None);
    let form = "application/x-www-form-urlencoded";
    let big = format!("email=a%40example.org&components={}", "mail".repeat(2000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (form, big.into_bytes(), 413, "too large"),
        (
            "text/plain",
            b"email=a%40example.org".to_vec(),
            415,
            "application/x-www-form-urlencoded",
        ),
        (
            "application/x-www-form-urlencoded; charset=iso-8859-1",
            b"email=a%40example.org".to_vec(),
            415,
            "application/x-www-form-urlencoded",
        ),
        (
            form,
            b"email=\xff\xfe@example.org".to_vec(),
            400,
            "not valid form encoding",
        ),
        (
            form,
            b"email=%ff%fe%40example.org".to_vec(),
            400,
            "not valid form encoding",
        ),
        (form, b"components=mail".to_vec(), 400, "address is missing"),
        (
            form,
            b"email=a%40example.org&components=dns".to_vec(),
            400,
            "does not exist",
        ),
        (
            form,
            b"email=a%40example.org&admin=1".to_vec(),
            400,
            "unexpected",
        ),
        (
            form,
            b"email=a%40example.org%0D%0ABcc%3A%20b%40example.org".to_vec(),
            400,
            "not valid",
        ),
        (
            form,
            b"email=a@example.org\r\nBcc: b@example.org".to_vec(),
            400,
            "not valid",
        ),
        (form, b"email=not-an-address".to_vec(), 400, "not valid"),
    ];
    for (n, (content_type, body, status, text)) in cases.into_iter().enumerate() {
        let answer = http::send(
            daemon.port,
            &format!(
                "POST /subscribe HTTP/1.1\r\nContent-Type: {content_type}\r\nX-Forwarded-For: 192.0.2.{n}"
            ),
            &body,
        );
        assert_eq!(answer.status, status, "case {n}: {answer:?}");
        assert!(answer.body.contains(text), "case {n}: {}", answer.body);
    }
    // A body larger than allowed with no length given (chunked).
    let chunk = "a".repeat(8000);
    let chunked = format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let answer = http::send(
        daemon.port,
        "POST /subscribe HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\nX-Forwarded-For: 192.0.2.100",
        chunked.as_bytes(),
    );
    assert!(answer.status == 413 || answer.status == 400, "{answer:?}");
    // One-click with the wrong body.
    let answer = http::post_form(
        daemon.port,
        "/unsubscribe/0123456789abcdef0123456789abcdef",
        "192.0.2.101",
        "List-Unsubscribe=Yes",
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    // GET on a POST-only endpoint.
    assert_eq!(http::get(daemon.port, "/subscribe").status, 405);

    assert_eq!(daemon.count("SELECT count(*) FROM requests"), 0);
    assert_eq!(daemon.count("SELECT count(*) FROM subscribers"), 0);
    // The endpoint still works.
    assert_eq!(
        daemon
            .subscribe("192.0.2.200", "email=a%40example.org")
            .status,
        200
    );
    assert_eq!(daemon.count("SELECT count(*) FROM requests"), 1);
}

#[test]
fn new_pending_and_subscribed_addresses_get_the_same_answer() {
    let daemon = Daemon::start_with(None, &[("sub@example.org", "web")]);
    let answers: Vec<http::Response> = [
        ("192.0.2.1", "email=new%40example.org&components=mail"),
        ("192.0.2.2", "email=new%40example.org&components=mail"),
        ("192.0.2.3", "email=sub%40example.org&components=mail"),
    ]
    .into_iter()
    .map(|(client, body)| {
        let mut answer = daemon.subscribe(client, body);
        answer.headers.retain(|(name, _)| name != "date");
        answer
    })
    .collect();
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
    // One email each: the pending address is not sent a second one, and
    // the subscriber's choice is unchanged until the link is followed.
    daemon.wait_for("two confirmation emails", || daemon.files().len() == 2);
    daemon.wait_for("both marked sent", || {
        daemon.count("SELECT count(*) FROM requests WHERE status = 'sent'") == 2
    });
    assert_eq!(daemon.files(), ["confirm.1.eml", "confirm.2.eml"]);
    assert_eq!(
        daemon.herald(&["subscribers", "list"]),
        "sub@example.org\ten\tweb\tevery\temail\n"
    );
}

#[test]
fn healthz_answers_while_the_daemon_is_alive() {
    let daemon = Daemon::start(None);
    let answer = http::get(daemon.port, "/healthz");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "ok\n");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}

#[test]
fn healthz_answers_503_once_the_outbox_worker_has_stopped() {
    // An unreadable password file stops the outbox worker at start; the
    // rest of herald runs on.
    let daemon = Daemon::start_configured(
        Some(free_port()),
        &[],
        "smtp_password_file = \"missing-password\"\n",
    );
    daemon.wait_for("the mailer to stop", || {
        daemon.log().contains("email delivery disabled")
    });
    // The thread ends just after it logs.
    daemon.wait_for("/healthz to notice", || {
        http::get(daemon.port, "/healthz").status != 200
    });
    let answer = http::get(daemon.port, "/healthz");
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
}
