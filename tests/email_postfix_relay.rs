//! Mail through the operator's MTA, the recipe of `docs/mail-relay.md`: a
//! real Postfix, a private instance with its own configuration and queue
//! directories in a temporary directory (the system's `/etc/postfix` is
//! only read), listening on 127.0.0.1 as a relay for herald, with a
//! `relayhost` and one transport per destination, each an `smtp-sink`.
//! herald's outbox drains into Postfix at its own rate while one
//! destination is down: Postfix, not herald, holds that destination's
//! mail, keeps delivering to the other, and delivers the held mail when
//! the destination comes back.
//!
//! Starting Postfix needs root (as for any Postfix); `scripts/test` runs
//! as root and installs Postfix when `/usr/sbin/smtp-sink` is missing.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use site::{Site, email_config, incident, recent};
use smtp_sink::{Sink, is_root};

/// A private Postfix instance: `postfix -c DIR start` on a configuration
/// directory of its own, stopped when dropped.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Postfix {
    /// Starts Postfix listening on 127.0.0.1, relaying all mail to
    /// `relayhost` except `slow.example`'s, which goes to `slow`.
    fn start(relayhost: u16, slow: u16) -> Postfix {
        assert!(
            is_root(),
            "this test starts a private Postfix instance, which needs root"
        );
        let dir = tempfile::tempdir().unwrap();
        // Postfix's daemons run as `postfix` and must reach the queue.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let postfix = Postfix { dir, port };
        for sub in ["conf", "queue", "data"] {
            fs::create_dir(postfix.path(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["postfix"])
            .arg(postfix.path("data"))
            .status()
            .unwrap();
        assert!(chown.success(), "chown postfix (is Postfix installed?)");
        let root = postfix.dir.path().display().to_string();
        fs::write(
            postfix.path("conf/main.cf"),
            format!(
                "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
myhostname = relay.herald.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
relayhost = [127.0.0.1]:{relayhost}
transport_maps = inline:{{slow.example=smtp:[127.0.0.1]:{slow}}}
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
"
            ),
        )
        .unwrap();
        // The packaged master.cf, with the SMTP server on our port.
        let master = fs::read_to_string("/etc/postfix/master.cf").unwrap_or_else(|error| {
            panic!("/etc/postfix/master.cf: {error}; scripts/test installs Postfix (apt-get install postfix)")
        });
        let master: String = master
            .lines()
            .map(|line| {
                if line.starts_with("smtp ") && line.contains(" inet ") {
                    format!("127.0.0.1:{port} inet n - n - - smtpd\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert!(master.contains(&format!(":{port} inet")), "{master}");
        fs::write(postfix.path("conf/master.cf"), master).unwrap();
        let output = postfix.command("postfix", &["start"]);
        assert!(
            output.status.success(),
            "postfix start: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            postfix.log()
        );
        wait::until(
            "Postfix to listen",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || postfix.log(),
        );
        postfix
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn command(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new(Path::new("/usr/sbin").join(program))
            .arg("-c")
            .arg(self.path("conf"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("maillog")).unwrap_or_default()
    }

    /// How many deliveries Postfix has logged as accepted by the server
    /// on `port`: each of its messages is then complete there.
    fn delivered(&self, port: u16) -> usize {
        let relay = format!("relay=127.0.0.1[127.0.0.1]:{port},");
        self.log()
            .lines()
            .filter(|line| line.contains(&relay) && line.contains("status=sent"))
            .count()
    }

    /// The messages in Postfix's queue: each recipient and why it waits.
    fn queue(&self) -> Vec<(String, String)> {
        let output = self.command("postqueue", &["-j"]);
        assert!(
            output.status.success(),
            "postqueue -j: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .flat_map(|line| {
                let message: serde_json::Value = serde_json::from_str(line).unwrap();
                message["recipients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|recipient| {
                        (
                            recipient["address"].as_str().unwrap().to_owned(),
                            recipient["delay_reason"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.command("postfix", &["stop"]);
    }
}

/// How many messages the outbox records as accepted, and over how many
/// seconds from the first acceptance to the last.
fn accepted(site: &Site) -> (i64, f64) {
    let db = rusqlite::Connection::open(site.path("state/herald.db")).unwrap();
    let (count, first, last): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), min(done_at), max(done_at) FROM outbox WHERE status = 'sent'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    (count, (last - first) as f64 / 1000.0)
}

#[test]
fn postfix_queues_a_stopped_destination_while_herald_drains_its_outbox() {
    const PER_DOMAIN: usize = 200;
    let fast = Sink::start(&[]);
    let slow_port = free_port();
    let postfix = Postfix::start(fast.port, slow_port);

    let mut site = Site::new(&email_config(postfix.port, "0s"));
    let mut csv = String::from("email,components\n");
    let mut expected_fast = BTreeMap::new();
    let mut expected_slow = BTreeMap::new();
    for n in 0..PER_DOMAIN {
        csv.push_str(&format!(
            "user{n}@example.org,mail\nuser{n}@slow.example,mail\n"
        ));
        expected_fast.insert(format!("user{n}@example.org"), 1);
        expected_slow.insert(format!("user{n}@slow.example"), 1);
    }
    fs::write(site.path("subscribers.csv"), csv).unwrap();
    site.ok(&["subscribers", "import", "subscribers.csv"]);
    site.start();
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Disks fail.")],
        ),
    );

    // slow.example's server is down, yet herald hands every message to
    // Postfix and its outbox is empty: nothing retrying, nothing failed.
    let all = 2 * PER_DOMAIN;
    site.wait_for("the outbox to drain into Postfix", || {
        site.ok(&["outbox"]) == format!("pending 0, retrying 0, failed 0, sent {all}\n")
    });
    let (count, seconds) = accepted(&site);
    assert_eq!(count, all as i64);
    eprintln!(
        "herald → Postfix: {count} messages accepted in {seconds:.2} s, {:.0} msg/s",
        count as f64 / seconds.max(0.001)
    );

    // Postfix delivers example.org's share and holds slow.example's.
    wait::until(
        "example.org's mail to arrive",
        || postfix.delivered(fast.port) == PER_DOMAIN,
        || postfix.log(),
    );
    let per_recipient = |sink: &Sink| {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (recipient, _) in sink.messages() {
            *counts.entry(recipient).or_default() += 1;
        }
        counts
    };
    assert_eq!(per_recipient(&fast), expected_fast);
    // Once Postfix has removed what it delivered and tried the rest, its
    // queue is slow.example's mail, each deferred with the reason.
    let held = || {
        let queue = postfix.queue();
        let held: BTreeMap<String, usize> = queue.iter().map(|(r, _)| (r.clone(), 1)).collect();
        queue.len() == PER_DOMAIN
            && held == expected_slow
            && queue
                .iter()
                .all(|(_, reason)| reason.contains("Connection refused"))
    };
    wait::until("Postfix to hold slow.example's mail", held, || {
        format!("{:?}\n{}", postfix.queue(), postfix.log())
    });

    // The destination comes back: Postfix delivers what it held, once
    // each, with herald no longer involved.
    let slow = Sink::start_on(slow_port, &[]);
    // Postfix tries each deferred message again once its backoff (2 s at
    // most here) is over. One its queue manager found still held by the
    // delivery agent ("skipped, still being delivered") once waited past
    // this test's patience, so the queue is also flushed every few seconds,
    // as an operator would once the destination is back (`postqueue -f`).
    let flushed = std::cell::Cell::new(std::time::Instant::now());
    wait::until(
        "slow.example's mail to arrive",
        || {
            let arrived = postfix.delivered(slow_port) == PER_DOMAIN && postfix.queue().is_empty();
            if !arrived && flushed.get().elapsed() > std::time::Duration::from_secs(5) {
                let flush = postfix.command("postqueue", &["-f"]);
                assert!(
                    flush.status.success(),
                    "postqueue -f: {}",
                    String::from_utf8_lossy(&flush.stderr)
                );
                flushed.set(std::time::Instant::now());
            }
            arrived
        },
        || postfix.log(),
    );
    assert_eq!(per_recipient(&slow), expected_slow);
    assert_eq!(per_recipient(&fast), expected_fast);
    assert_eq!(
        site.ok(&["outbox"]),
        format!("pending 0, retrying 0, failed 0, sent {all}\n")
    );
    site.stop();
    let log = site.log();
    assert!(!log.contains("ERROR"), "{log}");
}
