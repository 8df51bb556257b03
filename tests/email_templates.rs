//! Operators' email templates (`paths.templates/email/`) end to end:
//! `herald run` against the SMTP server on 127.0.0.1
//! (tests/support/smtp.rs). An override is what subscribers get, an edit
//! takes effect on SIGHUP, and a broken override or an unreadable
//! directory is logged while the built-in keeps the mail going.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::fs;

use site::{Site, incident, recent};
use smtp::SmtpServer;

fn config(port: u16) -> String {
    let site = site_toml::site("Test status") + &site_toml::components(&[("mail", "Mail")]);
    format!(
        r#"{site}
[paths]
templates = "templates"

[email]
from = "Test status <status@example.com>"
smtp = "smtp://127.0.0.1:{port}"
grace = "0s"
retry_base = "100ms"
"#
    )
}

/// A site with one subscriber to `mail`, its email templates directory
/// created, not started.
fn site(server: &SmtpServer) -> Site {
    let site = Site::new(&config(server.port()));
    fs::create_dir_all(site.path("templates")).unwrap();
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site
}

fn write_template(site: &Site, name: &str, text: &str) {
    fs::create_dir_all(site.path("templates/email")).unwrap();
    fs::write(site.path("templates/email").join(name), text).unwrap();
}

/// The decoded part of `message` with media type `mimetype`, CRLF as LF.
fn part(message: &smtp::Received, mimetype: &str) -> String {
    let mail = mailparse::parse_mail(&message.data).unwrap();
    let part = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == mimetype)
        .unwrap();
    part.get_body().unwrap().replace("\r\n", "\n")
}

/// `text` with the subscriber's token (32 hex digits after
/// `unsubscribe/`) replaced by `TOKEN`.
fn redacted(text: &str) -> String {
    let Some(at) = text.find("unsubscribe/") else {
        return text.to_owned();
    };
    let start = at + "unsubscribe/".len();
    let token = &text[start..start + 32];
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    text.replace(token, "TOKEN")
}

/// Publishes the storage incident with updates at `headings`, and waits
/// for the `count`th email.
fn publish(site: &Site, server: &SmtpServer, updates: &[(&str, &str)], count: usize) -> String {
    site.write(
        "storage.md",
        &incident("Storage failure", "\"mail\"", updates),
    );
    site.wait_for(&format!("email {count}"), || server.count() >= count);
    redacted(&part(&server.received()[count - 1], "text/plain"))
}

/// Asserts that `text` is the built-in `message.txt`'s, for the first update.
fn assert_builtin_text(text: &str) {
    assert!(
        text.starts_with("Storage failure\nInvestigating - "),
        "{text}"
    );
    assert!(
        text.ends_with("Unsubscribe: https://status.example.com/unsubscribe/TOKEN"),
        "{text}"
    );
}

#[test]
fn an_override_is_sent_and_an_edit_takes_effect_on_sighup() {
    let server = SmtpServer::start();
    let mut site = site(&server);
    write_template(
        &site,
        "message.txt",
        "Version one: {{ title }} ({{ status }})\n{{ s.unsubscribe }}: {{ unsubscribe_url }}\n",
    );
    site.start();
    let first = format!("{} investigating", recent(1));
    let text = publish(&site, &server, &[(&first, "Disks.")], 1);
    assert_eq!(
        text,
        "Version one: Storage failure (Investigating)\nUnsubscribe: https://status.example.com/unsubscribe/TOKEN"
    );
    // The HTML part is still the built-in's.
    let html = part(&server.received()[0], "text/html");
    assert!(html.contains("<p>Disks.</p>"), "{html}");

    write_template(
        &site,
        "message.txt",
        "Version two: {{ title }}\n{{ body }}\n",
    );
    site.reload();
    let second = format!("{} identified", recent(0));
    let text = publish(
        &site,
        &server,
        &[(&first, "Disks."), (&second, "A controller.")],
        2,
    );
    assert_eq!(text, "Version two: Storage failure\nA controller.");
    site.stop();
    assert_eq!(server.count(), 2);
}

#[test]
fn a_broken_override_is_logged_and_the_builtin_is_sent() {
    let server = SmtpServer::start();
    let mut site = site(&server);
    write_template(&site, "message.txt", "{{ title }}\nStatus: {{ status }\n");
    write_template(
        &site,
        "message.html",
        "<p>{{ title }}</p>\n<p>{{ titel }}</p>\n",
    );
    site.start();
    let heading = format!("{} investigating", recent(1));
    assert_builtin_text(&publish(&site, &server, &[(&heading, "Disks.")], 1));
    let html = part(&server.received()[0], "text/html");
    assert!(html.contains("<p>Disks.</p>"), "{html}");
    site.stop();
    let log = site.log();
    for expected in [
        "templates/email/message.txt:2:19: error: template syntax error: unexpected `}`, expected end of variable block; the built-in `message.txt` is used instead; using the built-in template",
        "templates/email/message.html:2:7: error: template fails on a sample email: `titel` is undefined; the built-in `message.html` is used instead; using the built-in template",
    ] {
        assert!(log.contains(expected), "{expected}\nnot in\n{log}");
    }
}

#[test]
fn an_unreadable_email_directory_is_logged_and_the_builtins_are_sent() {
    let server = SmtpServer::start();
    let mut site = site(&server);
    // A file where the directory should be.
    fs::write(site.path("templates/email"), "not a directory").unwrap();
    site.start();
    let heading = format!("{} investigating", recent(1));
    assert_builtin_text(&publish(&site, &server, &[(&heading, "Disks.")], 1));
    site.stop();
    let log = site.log();
    let expected = "cannot read the templates directory templates/email: Not a directory (os error 20); using the built-in email templates";
    assert!(log.contains(expected), "{expected}\nnot in\n{log}");
}
