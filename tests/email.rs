//! Email end to end: `herald run` against a real SMTP server on 127.0.0.1
//! (tests/support/smtp.rs). Subscribers get exactly one email per update;
//! nothing at first start, on an edit or on a restart; a typo fixed within
//! grace is what is sent; a draft, and an incident deleted within grace,
//! send nothing; a server that was down gets the mail later; a
//! 5xx recipient is parked while the others arrive; and `kill -9` in the
//! middle of a 2,000-recipient fan-out loses nothing.
//!
//! The harness (tests/support/site.rs) waits for conditions (messages
//! arriving, text in a page or in `herald outbox`), never for fixed times.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use site::{Site, email_config as config, incident, recent};
use smtp::{Setup, SmtpServer, free_port};

fn parsed(message: &smtp::Received) -> mailparse::ParsedMail<'_> {
    mailparse::parse_mail(&message.data).unwrap()
}

fn header(message: &smtp::Received, name: &str) -> String {
    parsed(message)
        .headers
        .iter()
        .find(|h| h.get_key().eq_ignore_ascii_case(name))
        .map(|h| h.get_value())
        .unwrap_or_default()
}

fn text_part(message: &smtp::Received) -> String {
    let mail = parsed(message);
    let part = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .unwrap();
    part.get_body().unwrap().replace("\r\n", "\n")
}

/// Messages received, per recipient, as (subject, text part) lists.
fn by_recipient(server: &SmtpServer) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in server.received() {
        for to in &message.to {
            map.entry(to.clone())
                .or_default()
                .push(header(&message, "Subject"));
        }
    }
    map
}

#[test]
fn one_email_per_follower_and_none_at_first_start_on_edit_or_restart() {
    let server = SmtpServer::start();
    let mut site = Site::new(&config(server.port(), "0s"));
    // An old incident and a recent one exist before the first start.
    site.write(
        "old.md",
        &incident(
            "Old outage",
            "\"mail\"",
            &[("2019-04-04 08:00 investigating", "Old.")],
        ),
    );
    site.write(
        "before.md",
        &incident(
            "Before the first start",
            "\"mail\"",
            &[(&format!("{} investigating", recent(1)), "Before.")],
        ),
    );
    for (address, components) in [
        ("mail@example.org", "mail"),
        ("web@example.org", "web"),
        ("both@example.org", "mail,web"),
        ("dns@example.org", "dns"),
    ] {
        site.ok(&["subscribers", "add", address, "--components", components]);
    }
    site.ok(&["subscribers", "add", "all@example.org"]);
    site.start();

    let first = recent(1);
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\", \"web\"",
            &[(&format!("{first} investigating"), "Disks are failing.")],
        ),
    );
    let followers = [
        "all@example.org",
        "both@example.org",
        "mail@example.org",
        "web@example.org",
    ];
    site.wait_for("four emails", || server.count() >= 4);
    let subject = "[Test status] Investigating: Storage failure".to_owned();
    let expected: BTreeMap<String, Vec<String>> = followers
        .iter()
        .map(|a| ((*a).to_owned(), vec![subject.clone()]))
        .collect();
    assert_eq!(by_recipient(&server), expected);

    // Editing the update sends nothing; the next update is the next email.
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\", \"web\"",
            &[(
                &format!("{first} investigating"),
                "Disks are failing (edited).",
            )],
        ),
    );
    site.wait_for_page("(edited)");
    let second = recent(0);
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\", \"web\"",
            &[
                (
                    &format!("{first} investigating"),
                    "Disks are failing (edited).",
                ),
                (&format!("{second} identified"), "A controller."),
            ],
        ),
    );
    site.wait_for("eight emails", || server.count() >= 8);

    // A restart sends nothing again; only the next update.
    site.stop();
    site.start();
    site.write(
        "dns.md",
        &incident(
            "Resolver trouble",
            "\"dns\"",
            &[(&format!("{} investigating", recent(0)), "Slow lookups.")],
        ),
    );
    site.wait_for("the DNS emails", || server.count() >= 10);
    site.stop();

    let identified = "[Test status] Identified: Storage failure".to_owned();
    let dns = "[Test status] Investigating: Resolver trouble".to_owned();
    let mut expected: BTreeMap<String, Vec<String>> = followers
        .iter()
        .map(|a| ((*a).to_owned(), vec![subject.clone(), identified.clone()]))
        .collect();
    expected
        .get_mut("all@example.org")
        .unwrap()
        .push(dns.clone());
    expected.insert("dns@example.org".into(), vec![dns]);
    let mut received = by_recipient(&server);
    for subjects in received.values_mut() {
        subjects.sort();
    }
    for subjects in expected.values_mut() {
        subjects.sort();
    }
    assert_eq!(received, expected, "log:\n{}", site.log());
    let outbox = site.ok(&["outbox"]);
    assert_eq!(outbox, "pending 0, retrying 0, failed 0, sent 10\n");
}

#[test]
fn headers_parse_back_and_thread_per_incident() {
    let server = SmtpServer::start();
    let mut site = Site::new(&config(server.port(), "0s"));
    site.ok(&[
        "subscribers",
        "add",
        "anna@example.org",
        "--components",
        "web",
    ]);
    site.start();
    let first = recent(1);
    let text = |updates: &[(&str, &str)]| incident("Storage failure", "\"mail\", \"web\"", updates);
    site.write(
        "storage.md",
        &text(&[(&format!("{first} investigating"), "Disks <b>failing</b>.")]),
    );
    site.wait_for("the first email", || server.count() == 1);
    site.write(
        "storage.md",
        &text(&[
            (&format!("{first} investigating"), "Disks <b>failing</b>."),
            (&format!("{} resolved", recent(0)), "Fixed."),
        ]),
    );
    site.wait_for("the second email", || server.count() == 2);
    site.stop();
    let messages = server.received();
    let mail = parsed(&messages[0]);
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let types: Vec<&str> = mail
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.as_str())
        .collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    let html = mail.subparts[1].get_body().unwrap();
    assert!(
        html.contains("Disks &lt;b&gt;failing&lt;/b&gt;."),
        "raw HTML is escaped: {html}"
    );
    assert!(
        html.contains("<strong>Web hosting</strong>: Partial outage (you follow this)"),
        "{html}"
    );
    let text = text_part(&messages[0]);
    assert!(text.contains("  - Mail: Partial outage\n"), "{text}");
    assert!(
        text.contains("  * Web hosting: Partial outage (you follow this)\n"),
        "{text}"
    );
    assert_eq!(
        header(&messages[0], "Subject"),
        "[Test status] Investigating: Storage failure"
    );
    assert_eq!(
        header(&messages[1], "Subject"),
        "[Test status] Resolved: Storage failure"
    );
    for message in &messages {
        assert_eq!(
            header(message, "In-Reply-To"),
            "<incident-storage@status.example.com>"
        );
        assert_eq!(
            header(message, "References"),
            "<incident-storage@status.example.com>"
        );
        assert_eq!(header(message, "Auto-Submitted"), "auto-generated");
        assert_eq!(
            header(message, "List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(message.from, "status@example.com");
        assert_eq!(message.to, ["anna@example.org"]);
    }
    assert_ne!(
        header(&messages[0], "Message-ID"),
        header(&messages[1], "Message-ID")
    );
    let unsubscribe = header(&messages[0], "List-Unsubscribe");
    let token = unsubscribe
        .strip_prefix("<https://status.example.com/unsubscribe/")
        .and_then(|rest| rest.split_once('>'))
        .map(|(token, _)| token.to_owned())
        .unwrap_or_else(|| panic!("{unsubscribe}"));
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(
        unsubscribe,
        format!(
            "<https://status.example.com/unsubscribe/{token}>, <mailto:status@example.com?subject=unsubscribe%20{token}>"
        )
    );
}

#[test]
fn typo_fixed_within_grace_is_what_is_sent() {
    let server = SmtpServer::start();
    let mut site = Site::new(&config(server.port(), "3s"));
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.start();
    let heading = format!("{} investigating", recent(0));
    site.write(
        "typo.md",
        &incident("Mail delays", "\"mail\"", &[(&heading, "Mail is slwo.")]),
    );
    site.wait_for_page("Mail is slwo.");
    site.write(
        "typo.md",
        &incident("Mail delays", "\"mail\"", &[(&heading, "Mail is slow.")]),
    );
    site.wait_for("the email", || server.count() == 1);
    // Another update, so that a second email for the first would show.
    site.write(
        "typo.md",
        &incident(
            "Mail delays",
            "\"mail\"",
            &[
                (&heading, "Mail is slow."),
                (&format!("{} resolved", recent(0)), "Done."),
            ],
        ),
    );
    site.wait_for("the second email", || server.count() == 2);
    site.stop();
    let messages = server.received();
    let first = text_part(&messages[0]);
    assert!(first.contains("\nMail is slow.\n"), "{first}");
    assert!(!first.contains("slwo"), "{first}");
    assert_eq!(
        header(&messages[1], "Subject"),
        "[Test status] Resolved: Mail delays"
    );
}

#[test]
fn drafts_and_incidents_deleted_within_grace_send_nothing() {
    let server = SmtpServer::start();
    let mut site = Site::new(&config(server.port(), "3s"));
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.start();
    let heading = format!("{} investigating", recent(0));
    let draft = incident("Planned work", "\"mail\"", &[(&heading, "Not ready.")]).replacen(
        "+++\n",
        "+++\ndraft = true\n",
        1,
    );
    site.write("draft.md", &draft);
    site.write(
        "doomed.md",
        &incident(
            "Short-lived",
            "\"mail\"",
            &[(&heading, "Posted by mistake.")],
        ),
    );
    site.wait_for_page("Posted by mistake.");
    fs::remove_file(site.path("incidents/doomed.md")).unwrap();
    site.wait_for("the deleted incident to leave the feed", || {
        !fs::read_to_string(site.path("public/feed.atom"))
            .unwrap()
            .contains("Posted by mistake.")
    });
    // Written last, due last: had the others been queued, the outbox
    // would hold them by the time this one is sent.
    site.write(
        "kept.md",
        &incident("Kept", "\"mail\"", &[(&heading, "This one stays.")]),
    );
    site.wait_for("only the kept incident's email", || {
        site.ok(&["outbox"]) == "pending 0, retrying 0, failed 0, sent 1\n"
    });
    site.stop();
    let messages = server.received();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        header(&messages[0], "Subject"),
        "[Test status] Investigating: Kept"
    );
}

#[test]
fn mail_queued_while_the_server_is_down_arrives_when_it_is_back() {
    let port = free_port();
    let mut site = Site::new(&config(port, "0s"));
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.ok(&["subscribers", "add", "bob@example.org"]);
    site.start();
    site.write(
        "down.md",
        &incident(
            "Relay trouble",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Queued.")],
        ),
    );
    site.wait_for("retries in the outbox", || {
        let outbox = String::from_utf8(site.herald(&["outbox"]).stdout).unwrap();
        outbox.starts_with("pending 0, retrying 2,") && outbox.contains("Connection error")
    });
    let outbox = site.ok(&["outbox"]);
    assert!(
        outbox.contains("retrying\tanna@example.org\tdown@"),
        "{outbox}"
    );
    let server = SmtpServer::start_on(port);
    site.wait_for("both emails", || server.count() == 2);
    site.wait_for("the outbox to record them", || {
        site.ok(&["outbox"]) == "pending 0, retrying 0, failed 0, sent 2\n"
    });
    site.stop();
    let mut to: Vec<String> = server.received().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["anna@example.org", "bob@example.org"]);
}

#[test]
fn an_outage_of_the_server_is_a_few_log_lines_not_one_per_attempt() {
    let port = free_port();
    let mut site = followed_at(port, 300);
    site.write(
        "down.md",
        &incident(
            "Relay trouble",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Queued.")],
        ),
    );
    // Every message deferred at least twice: 600 deferrals or more.
    site.wait_for("two rounds of retries", || {
        let database = rusqlite::Connection::open(site.path("state/herald.db")).unwrap();
        let attempts: i64 = database
            .query_row("SELECT coalesce(sum(attempts), 0) FROM outbox", [], |row| {
                row.get(0)
            })
            .unwrap();
        attempts >= 600
    });
    let server = SmtpServer::start_on(port);
    site.wait_for("every email", || server.count() == 300);
    site.wait_for("the report that mail goes through", || {
        site.log().contains("the server accepts mail again")
    });
    site.stop();
    let log = site.log();
    let lines = log.matches("delivery deferred").count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} lines about deferrals:\n{log}"
    );
}

#[test]
fn a_pooled_connection_the_server_closed_is_replaced_at_once() {
    let port = free_port();
    let server = SmtpServer::start_on(port);
    let mut site = Site::new(&config(port, "0s"));
    // As many as there are connections, so that each message of the
    // second update goes to a worker that kept one.
    for n in 0..8 {
        site.ok(&["subscribers", "add", &format!("user{n}@example.org")]);
    }
    site.start();
    let first = (format!("{} investigating", recent(1)), "Restarting.");
    site.write(
        "relay.md",
        &incident("Relay restart", "\"mail\"", &[(&first.0, first.1)]),
    );
    site.wait_for("the first emails", || server.count() == 8);
    // A restarted relay: the connections herald keeps for the next
    // messages are closed under it.
    drop(server);
    let server = SmtpServer::start_on(port);
    site.write(
        "relay.md",
        &incident(
            "Relay restart",
            "\"mail\"",
            &[
                (&first.0, first.1),
                (&format!("{} resolved", recent(0)), "Back."),
            ],
        ),
    );
    site.wait_for("the second emails", || server.count() == 8);
    site.stop();
    // Sent on new connections at once, not deferred as failures.
    assert!(!site.log().contains("delivery deferred"), "{}", site.log());
    assert!(server.connections() <= 8, "{}", server.connections());
}

#[test]
fn permanent_rejection_is_parked_with_its_reply_and_others_arrive() {
    let server = SmtpServer::start();
    let mails = rejections(&server);
    // MAIL, RCPT and DATA went out together every time.
    assert_eq!(server.grouped_mail(), mails);
}

#[test]
fn a_server_without_pipelining_gets_one_command_at_a_time() {
    let server = SmtpServer::start_with(
        0,
        Setup {
            pipelining: false,
            ..Setup::default()
        },
    );
    rejections(&server);
    assert_eq!(server.grouped_mail(), 0);
    assert_eq!(server.chained(), 0);
}

/// Two good recipients, one refused for good (parked) and one for now
/// (retried): the good ones arrive and the refusals keep their replies.
/// Returns how many MAIL commands the server got.
fn rejections(server: &SmtpServer) -> usize {
    server.reject(
        "gone@example.org",
        "550 5.1.1 <gone@example.org>: no such user",
    );
    server.reject("busy@example.org", "451 4.3.0 try again later");
    let mut site = Site::new(&config(server.port(), "0s"));
    for address in [
        "anna@example.org",
        "gone@example.org",
        "busy@example.org",
        "bob@example.org",
    ] {
        site.ok(&["subscribers", "add", address]);
    }
    site.start();
    site.write(
        "x.md",
        &incident(
            "Outage",
            "\"web\"",
            &[(&format!("{} investigating", recent(0)), "Down.")],
        ),
    );
    site.wait_for("the two good emails", || server.count() == 2);
    site.wait_for("the 5xx to be parked and the 4xx retried", || {
        let outbox = site.ok(&["outbox"]);
        outbox.starts_with("pending 0, retrying 1, failed 1, sent 2\n")
    });
    site.stop();
    let outbox = site.ok(&["outbox"]);
    let lines: Vec<&str> = outbox.lines().collect();
    assert!(
        lines[1].starts_with("failed\tgone@example.org\tx@")
            && lines[1].ends_with("permanent error (550): 5.1.1 <gone@example.org>: no such user"),
        "{outbox}"
    );
    assert!(
        lines[2].starts_with("retrying\tbusy@example.org\tx@")
            && lines[2].ends_with("transient error (451): 4.3.0 try again later"),
        "{outbox}"
    );
    let mut to: Vec<String> = server.received().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["anna@example.org", "bob@example.org"]);
    let mails = server
        .said()
        .iter()
        .filter(|said| said.verb == "MAIL")
        .count();
    assert!(mails >= 4, "one per recipient, and retries: {mails}");
    mails
}

/// A started site whose `followers` (`userN@example.org`) follow `mail`,
/// mailing through `server`.
fn followed_by(server: &SmtpServer, followers: usize) -> Site {
    followed_at(server.port(), followers)
}

/// [`followed_by`] a server that will be on `port`.
fn followed_at(port: u16, followers: usize) -> Site {
    let mut site = Site::new(&config(port, "0s"));
    let mut csv = String::from("email,components\n");
    for n in 0..followers {
        csv.push_str(&format!("user{n}@example.org,mail\n"));
    }
    fs::write(site.path("subscribers.csv"), csv).unwrap();
    site.ok(&["subscribers", "import", "subscribers.csv"]);
    site.start();
    site
}

#[test]
fn a_busy_connection_sends_the_next_message_behind_the_last_text() {
    const FOLLOWERS: usize = 200;
    let server = SmtpServer::start();
    // Slow answers to the text keep every connection busy, so messages
    // wait for one.
    server.set_data_delay(Duration::from_millis(5));
    // Refusals in the middle of such chains, and a connection that drops
    // with the next message's commands already sent.
    server.reject("user7@example.org", "550 5.1.1 no such user");
    server.reject_text("user9@example.org", "554 5.7.1 text refused");
    server.hang_up_at_text(60);
    let mut site = followed_by(&server, FOLLOWERS);
    site.write(
        "busy.md",
        &incident(
            "Busy",
            "\"mail\"",
            &[(
                &format!("{} investigating", recent(0)),
                // A line that starts with a dot, and one that is only a
                // dot, must arrive as written (dot-stuffing).
                "Queue.\n\n.hidden files are safe\n\n.\n",
            )],
        ),
    );
    site.wait_for("every message to be recorded", || {
        site.ok(&["outbox"]).starts_with(&format!(
            "pending 0, retrying 0, failed 2, sent {}\n",
            FOLLOWERS - 2
        ))
    });
    site.stop();
    let outbox = site.ok(&["outbox"]);
    let failed: Vec<&str> = outbox.lines().skip(1).collect();
    assert_eq!(failed.len(), 2, "{outbox}");
    assert!(
        failed[0].starts_with("failed\tuser7@example.org\t")
            && failed[0].ends_with("permanent error (550): 5.1.1 no such user")
            && failed[1].starts_with("failed\tuser9@example.org\t")
            && failed[1].ends_with("permanent error (554): 5.7.1 text refused"),
        "{outbox}"
    );
    // The message the server hung up on was kept nowhere and sent again:
    // everyone else has exactly one.
    let mut to: Vec<String> = server.received().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!((to.len(), server.count()), (FOLLOWERS - 2, FOLLOWERS - 2));
    assert!(
        server.connections() > 8,
        "a new connection after the hang-up"
    );
    for message in server.received() {
        // Quoted-printable leaves the dots as they are, so the client
        // had to stuff them.
        let raw = String::from_utf8_lossy(&message.data);
        assert!(raw.contains("\r\n.hidden files are safe\r\n"), "{raw}");
        let text = text_part(&message);
        assert!(text.contains("\n.hidden files are safe\n\n.\n"), "{text}");
    }
    // Each connection handles some 25 messages; those that found another
    // waiting sent its MAIL, RCPT and DATA with the text's end marker.
    let chained = server.chained();
    assert!(chained > 0, "no message went behind another's text");
    eprintln!("{chained} of {FOLLOWERS} messages had the next one's commands behind them");
}

#[test]
fn a_text_answered_just_before_the_server_hangs_up_is_sent_once() {
    const FOLLOWERS: usize = 100;
    let server = SmtpServer::start();
    server.set_data_delay(Duration::from_millis(5));
    // 250 to a text, then the connection closes with the next message's
    // commands unread, as a server with a limit per connection does.
    server.close_after_text(30);
    let mut site = followed_by(&server, FOLLOWERS);
    site.write(
        "limit.md",
        &incident(
            "Limit",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Once.")],
        ),
    );
    site.wait_for("every message to be recorded", || {
        site.ok(&["outbox"]) == format!("pending 0, retrying 0, failed 0, sent {FOLLOWERS}\n")
    });
    site.stop();
    // The answered text counts as sent: nobody gets it twice.
    assert_eq!(
        server.count(),
        FOLLOWERS,
        "{:?}",
        by_recipient(&server).len()
    );
    assert!(server.connections() > 8, "a new connection after the close");
}

#[test]
fn kill_9_in_the_middle_of_a_fan_out_loses_nothing() {
    const FOLLOWERS: usize = 2000;
    let server = SmtpServer::start();
    server.set_data_delay(Duration::from_millis(2));
    let mut site = Site::new(&config(server.port(), "0s"));
    let mut csv = String::from("email,components\n");
    for n in 0..FOLLOWERS {
        csv.push_str(&format!("user{n}@example.org,mail\n"));
    }
    csv.push_str("nobody@example.org,dns\n");
    fs::write(site.path("subscribers.csv"), csv).unwrap();
    assert_eq!(
        site.ok(&["subscribers", "import", "subscribers.csv"]),
        format!(
            "imported {} subscriber(s): {} new, 0 updated\n",
            FOLLOWERS + 1,
            FOLLOWERS + 1
        )
    );
    site.start();
    site.write(
        "big.md",
        &incident(
            "Big outage",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Everyone hears.")],
        ),
    );
    site.wait_for("a quarter of the fan-out", || {
        server.count() >= FOLLOWERS / 4
    });
    let status = site.signal("-KILL");
    assert_eq!(status.code(), None, "killed by a signal");
    let at_kill = server.count();
    assert!(
        at_kill < FOLLOWERS,
        "the kill came too late to test anything"
    );
    site.start();
    site.wait_for("every follower's email", || {
        let mut to: Vec<String> = server.received().into_iter().flat_map(|m| m.to).collect();
        to.sort();
        to.dedup();
        to.len() >= FOLLOWERS
    });
    site.wait_for("the outbox to record them", || {
        site.ok(&["outbox"]) == format!("pending 0, retrying 0, failed 0, sent {FOLLOWERS}\n")
    });
    site.stop();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in server.received() {
        for to in message.to {
            *counts.entry(to).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), FOLLOWERS, "nobody missing, nobody extra");
    assert!(!counts.contains_key("nobody@example.org"));
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    // In flight: composed, on the wire or waiting for their commit.
    assert!(
        duplicates <= herald::mailer::IN_FLIGHT,
        "{duplicates} duplicates; at most the {} messages in flight may be sent twice",
        herald::mailer::IN_FLIGHT
    );
    // At most 8 connections per run, each reused for many messages.
    assert!(
        server.connections() <= 2 * 8,
        "connections are pooled and reused: {} opened",
        server.connections()
    );
    eprintln!(
        "killed after {at_kill} of {FOLLOWERS}; {duplicates} duplicate(s); {} connection(s)",
        server.connections()
    );
}

#[test]
fn import_reports_every_bad_row_and_imports_nothing() {
    let site = Site::new(&config(free_port(), "0s"));
    fs::write(
        site.path("list.csv"),
        "email,components\nanna@example.org,mail;web\nnot-an-address,mail\n\nbob@example.org,mail wbe\ncarl@example.org\n",
    )
    .unwrap();
    let output = site.herald(&["subscribers", "import", "list.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "list.csv:3:1: error: invalid email address `not-an-address`\n\
         list.csv:5:22: error: unknown component `wbe`\n\
         herald: list.csv has 2 error(s); nothing was imported\n"
    );
    assert_eq!(site.ok(&["subscribers", "list"]), "");
    fs::write(
        site.path("list.csv"),
        "anna@example.org,mail;web\nbob@example.org,\"mail dns\"\ncarl@example.org\n",
    )
    .unwrap();
    assert_eq!(
        site.ok(&["subscribers", "import", "list.csv"]),
        "imported 3 subscriber(s): 3 new, 0 updated\n"
    );
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        "anna@example.org\ten\tmail,web\tevery\temail\nbob@example.org\ten\tdns,mail\tevery\temail\ncarl@example.org\ten\t*\tevery\temail\n"
    );
    assert_eq!(
        site.ok(&["subscribers", "remove", "bob@example.org"]),
        "removed bob@example.org\n"
    );
    let missing = site.herald(&["subscribers", "remove", "bob@example.org"]);
    assert_eq!(missing.status.code(), Some(1));
    let bad = site.herald(&["subscribers", "add", "x@example.org", "--lang", "de"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr),
        "herald: unknown language `de`, expected `sv` or `en`\n"
    );
}

#[test]
fn send_test_delivers_or_exits_3() {
    let server = SmtpServer::start();
    let site = Site::new(&config(server.port(), "0s"));
    let output = site.ok(&["send-test", "ops@example.org"]);
    assert_eq!(
        output,
        format!(
            "sent to ops@example.org via smtp://127.0.0.1:{}\n",
            server.port()
        )
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["ops@example.org"]);
    assert_eq!(
        header(&received[0], "Subject"),
        "[Test status] Test message"
    );

    let down = Site::new(&config(free_port(), "0s"));
    let output = down.herald(&["send-test", "ops@example.org"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("herald: cannot send the test message via smtp://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("Connection error"), "{stderr}");
}

#[test]
fn without_a_mail_server_messages_are_written_as_files() {
    let mut site = Site::new(
        "[site]\ntitle = \"Files\"\nbase_url = \"https://status.example.com/\"\n\n[[components]]\nid = \"mail\"\nname = \"Mail\"\n\n[email]\nfrom = \"status@example.com\"\nsmtp = \"file\"\ngrace = \"0s\"\n",
    );
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.start();
    site.write(
        "f.md",
        &incident(
            "File mail",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "On disk.")],
        ),
    );
    let dir = site.path("state/outbox-files");
    site.wait_for("an .eml file", || {
        fs::read_dir(&dir)
            .map(|entries| entries.count() == 1)
            .unwrap_or(false)
    });
    site.stop();
    let entry = fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
    let name = entry.file_name().into_string().unwrap();
    assert!(name.starts_with("f.") && name.ends_with(".1.eml"), "{name}");
    let bytes = fs::read(entry.path()).unwrap();
    let mail = mailparse::parse_mail(&bytes).unwrap();
    let subject = mail
        .headers
        .iter()
        .find(|h| h.get_key() == "Subject")
        .map(|h| h.get_value());
    assert_eq!(subject.as_deref(), Some("[Files] Investigating: File mail"));
    assert!(Path::new(&site.path("state/herald.db")).exists());
}
