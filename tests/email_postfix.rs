//! Email through Postfix's own test server, `smtp-sink`, on 127.0.0.1:
//! a server herald's authors did not write, which offers PIPELINING and
//! writes every message it accepts to a file. A fan-out arrives once per
//! follower with its headers intact and each subscriber's own link, and
//! smtp-sink's hard and soft refusals are parked or retried with its
//! reply kept.
//!
//! `scripts/test` installs Postfix when `/usr/sbin/smtp-sink` is missing.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp_sink.rs"]
mod smtp_sink;
#[path = "support/wait.rs"]
mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use mailparse::MailHeaderMap;
use site::{Site, email_config, incident, recent};
use smtp_sink::Sink;

/// A site with `followers` of `mail` (and one of `dns`), started.
fn mailing(port: u16, followers: &[String]) -> Site {
    // Refused messages wait an hour, so that a retry never hides them.
    let config = email_config(port, "0s").replace("retry_base = \"100ms\"", "retry_base = \"1h\"");
    let mut site = Site::new(&config);
    let mut csv = String::from("email,components\n");
    for follower in followers {
        csv.push_str(&format!("{follower},mail\n"));
    }
    csv.push_str("nobody@example.org,dns\n");
    fs::write(site.path("subscribers.csv"), csv).unwrap();
    site.ok(&["subscribers", "import", "subscribers.csv"]);
    site.start();
    site
}

fn publish(site: &Site) {
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[(
                &format!("{} investigating", recent(0)),
                "Disks <b>fail</b>.",
            )],
        ),
    );
}

/// The `https` link and the token of a `List-Unsubscribe` value.
fn unsubscribe_link(value: &str) -> (String, String) {
    let link = value
        .split(", ")
        .next()
        .unwrap()
        .trim_matches(['<', '>'])
        .to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    (link, token)
}

#[test]
fn a_fan_out_through_postfix_arrives_once_per_follower_with_its_own_link() {
    const FOLLOWERS: usize = 300;
    let sink = Sink::start(&[]);
    let followers: Vec<String> = (0..FOLLOWERS)
        .map(|n| format!("user{n}@example.org"))
        .collect();
    let mut site = mailing(sink.port, &followers);
    publish(&site);
    site.wait_for("every follower's message to be recorded as sent", || {
        site.ok(&["outbox"]) == format!("pending 0, retrying 0, failed 0, sent {FOLLOWERS}\n")
    });

    let messages = sink.messages();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    let mut message_ids = BTreeSet::new();
    let mut tokens = BTreeSet::new();
    for (recipient, dump) in &messages {
        *per_recipient.entry(recipient.clone()).or_default() += 1;
        let mail = mailparse::parse_mail(dump).unwrap();
        let header = |name: &str| {
            mail.headers
                .get_first_value(name)
                .unwrap_or_else(|| panic!("{name} missing for {recipient}"))
        };
        assert_eq!(header("To"), *recipient);
        assert_eq!(
            header("Subject"),
            "[Test status] Investigating: Storage failure"
        );
        assert_eq!(
            header("In-Reply-To"),
            "<incident-storage@status.example.com>"
        );
        assert_eq!(
            header("References"),
            "<incident-storage@status.example.com>"
        );
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(header("Auto-Submitted"), "auto-generated");
        assert!(
            message_ids.insert(header("Message-ID")),
            "Message-IDs are unique"
        );
        let (link, token) = unsubscribe_link(&header("List-Unsubscribe"));
        assert!(
            header("List-Unsubscribe").ends_with(&format!(
                "<mailto:status@example.com?subject=unsubscribe%20{token}>"
            )),
            "{}",
            header("List-Unsubscribe")
        );
        assert!(
            tokens.insert(token),
            "each subscriber has a token of their own"
        );
        // Both parts carry the same link as the header, and the incident
        // text is escaped in the HTML.
        assert_eq!(mail.ctype.mimetype, "multipart/alternative");
        let text = mail.subparts[0].get_body().unwrap();
        let html = mail.subparts[1].get_body().unwrap();
        assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
        assert_eq!(mail.subparts[1].ctype.mimetype, "text/html");
        assert!(text.contains(&format!("Unsubscribe: {link}")), "{text}");
        assert!(text.contains("Disks <b>fail</b>."), "{text}");
        assert!(
            html.replace("&#x2f;", "/")
                .contains(&format!("href=\"{link}\"")),
            "{html}"
        );
        assert!(html.contains("Disks &lt;b&gt;fail&lt;/b&gt;."), "{html}");
    }
    let expected: BTreeMap<String, usize> = followers.iter().map(|f| (f.clone(), 1)).collect();
    assert_eq!(
        per_recipient, expected,
        "exactly one message per follower, none to others"
    );

    // A restart sends nothing again.
    site.stop();
    site.start();
    site.write(
        "unrelated.md",
        &incident(
            "DNS blip",
            "\"dns\"",
            &[(&format!("{} resolved", recent(0)), "Fine.")],
        ),
    );
    site.wait_for("the DNS follower's message", || {
        sink.messages().len() == FOLLOWERS + 1
    });
    site.stop();
    let last: Vec<String> = sink
        .messages()
        .into_iter()
        .map(|(recipient, _)| recipient)
        .filter(|recipient| !followers.contains(recipient))
        .collect();
    assert_eq!(last, ["nobody@example.org"]);
}

/// The `herald outbox` row of the one follower's message after the sink
/// started with `options` refused it, once the summary reads `summary`.
fn refused(options: &[&str], summary: &str) -> String {
    let sink = Sink::start(options);
    let mut site = mailing(sink.port, &["anna@example.org".to_owned()]);
    publish(&site);
    site.wait_for(summary, || site.ok(&["outbox"]).starts_with(summary));
    site.stop();
    assert!(sink.messages().is_empty());
    site.ok(&["outbox"]).lines().nth(1).unwrap().to_owned()
}

#[test]
fn postfix_refusals_are_failed_or_retried_with_the_reply_kept() {
    let hard = ["-f", "RCPT", "-B", "550 5.1.1 Error: no such user here"];
    let row = refused(&hard, "pending 0, retrying 0, failed 1, sent 0\n");
    assert!(
        row.starts_with("failed\tanna@example.org\tstorage@"),
        "{row}"
    );
    assert!(
        row.ends_with("permanent error (550): 5.1.1 Error: no such user here"),
        "{row}"
    );

    let soft = ["-r", "RCPT", "-b", "450 4.2.0 Error: mailbox busy"];
    let row = refused(&soft, "pending 0, retrying 1, failed 0, sent 0\n");
    assert!(
        row.starts_with("retrying\tanna@example.org\tstorage@"),
        "{row}"
    );
    assert!(
        row.ends_with("transient error (450): 4.2.0 Error: mailbox busy"),
        "{row}"
    );
}
