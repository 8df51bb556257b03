//! Two languages of incident text (`[site] languages = ["sv", "en"]`),
//! through the binary: the English outputs under `en/` read back with a
//! feed parser, pages linking to each other, a Swedish and an English
//! subscriber each mailed their text over a real SMTP server (or the
//! Swedish text with a note), `herald post` taking the translation from
//! its text, `herald check` warning about partly translated incidents, and
//! the English page's subscribe form making English subscribers.

#[path = "support/feed_reader.rs"]
mod feed_reader;
#[path = "support/http.rs"]
mod http;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::fs;

use site::{Site, email_config, recent};
use smtp::SmtpServer;

/// `config` in Swedish first, then English.
fn bilingual(config: &str) -> String {
    assert!(config.contains("language = \"en\""), "{config}");
    config.replace("language = \"en\"", "languages = [\"sv\", \"en\"]")
}

fn build_config() -> String {
    bilingual(
        &(site_toml::site("Driftstatus")
            + &site_toml::components(&[("mail", "E-post"), ("web", "Webbhotell")])),
    )
}

/// Translated throughout: its title and both updates.
const STORAGE: &str = r#"+++
title.sv = "Lagringsfel"
title.en = "Storage failure"
components = ["mail", "web"]
severity = "major"
+++

## 2019-04-04 08:00 investigating
Vi felsöker.

### en
We are *investigating*.

## 2019-04-04 09:30 identified
components: mail=major-outage
Orsaken hittad.

### en
Cause found.
"#;

/// Swedish only.
const DNS: &str = r#"+++
title = "Långsam DNS"
components = ["web"]
severity = "minor"
+++

## 2019-04-05 10:00 investigating
Namnuppslag går långsamt.
"#;

/// Translated in part: `check` warns at the title and the second update.
const PARTLY: &str = r#"+++
title = "Webbhotellet nere"
components = ["web"]
severity = "major"
+++

## 2019-04-06 10:00 investigating
Nere.

### en
Down.

## 2019-04-06 11:00 resolved
Uppe igen.
"#;

fn read(site: &Site, path: &str) -> String {
    fs::read_to_string(site.path(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[test]
fn english_outputs_under_en_read_back_and_link_to_the_swedish() {
    let site = Site::new(&build_config());
    site.write("storage.md", STORAGE);
    site.write("dns.md", DNS);
    site.ok(&["build"]);

    // The same set of outputs in each language; one stylesheet.
    for path in [
        "index.html",
        "feed.atom",
        "feed.rss",
        "components/mail.atom",
        "components/mail.rss",
        "components/web.atom",
        "components/web.rss",
        "incidents/storage.html",
        "incidents/dns.html",
        "history/2019-04.html",
        "maintenance.ics",
        "status.json",
        "api/v2/summary.json",
        "api/v2/incidents.json",
        "incidents/storage.atom",
        "components/mail.ics",
        "index.txt",
        "badge.svg",
    ] {
        assert!(site.path(&format!("public/{path}")).is_file(), "{path}");
        assert!(
            site.path(&format!("public/en/{path}")).is_file(),
            "en/{path}"
        );
    }
    assert!(site.path("public/style.css").is_file());
    assert!(!site.path("public/en/style.css").exists());

    // The English site feed: English titles and text, English links.
    let feed = feed_reader::read(read(&site, "public/en/feed.atom").as_bytes());
    assert_eq!(feed.language.as_deref(), Some("en"));
    let titles: Vec<String> = feed
        .entries
        .iter()
        .map(|entry| entry.title.as_ref().unwrap().content.clone())
        .collect();
    assert_eq!(
        titles,
        [
            "Investigating: Långsam DNS",
            "Identified: Storage failure",
            "Investigating: Storage failure"
        ]
    );
    let found = &feed.entries[1];
    let body = found.content.as_ref().unwrap().body.clone().unwrap();
    assert!(body.contains("<p>Cause found.</p>"), "{body}");
    assert!(!body.contains("Orsaken"), "{body}");
    assert_eq!(
        found.links[0].href,
        "https://status.example.com/en/incidents/storage.html#u-20190404T073000Z"
    );
    // RSS too, and a component feed.
    let rss = feed_reader::read(read(&site, "public/en/feed.rss").as_bytes());
    assert_eq!(
        rss.entries[2].title.as_ref().unwrap().content,
        "Investigating: Storage failure"
    );
    let mail = feed_reader::read(read(&site, "public/en/components/mail.atom").as_bytes());
    let mail_titles: Vec<&str> = mail
        .entries
        .iter()
        .map(|entry| entry.title.as_ref().unwrap().content.as_str())
        .collect();
    assert_eq!(
        mail_titles,
        [
            "Identified: Storage failure",
            "Investigating: Storage failure"
        ]
    );
    // The Swedish feed stays where it was, in Swedish.
    let swedish = feed_reader::read(read(&site, "public/feed.atom").as_bytes());
    assert_eq!(
        swedish.entries[1].title.as_ref().unwrap().content,
        "Orsak identifierad: Lagringsfel"
    );
    assert_eq!(
        swedish.entries[1].links[0].href,
        "https://status.example.com/incidents/storage.html#u-20190404T073000Z"
    );

    // Pages: English chrome, links both ways, hreflang alternates.
    let page = read(&site, "public/en/incidents/storage.html");
    for needle in [
        "<html lang=\"en\">",
        "<h1>Storage failure</h1>",
        "<p>We are <em>investigating</em>.</p>",
        "Status over time",
        "<link rel=\"stylesheet\" href=\"../../style.css\">",
        "<link rel=\"alternate\" hreflang=\"sv\" href=\"https://status.example.com/incidents/storage.html\">",
        "<link rel=\"alternate\" hreflang=\"en\" href=\"https://status.example.com/en/incidents/storage.html\">",
        "<a href=\"../../incidents/storage.html\" hreflang=\"sv\" lang=\"sv\">Svenska</a>",
        "<a href=\"../index.html\">Back to the status page</a>",
    ] {
        assert!(page.contains(needle), "{needle} in:\n{page}");
    }
    assert!(!page.contains("Vi felsöker"), "{page}");
    let swedish_page = read(&site, "public/incidents/storage.html");
    assert!(
        swedish_page.contains(
            "<a href=\"../en/incidents/storage.html\" hreflang=\"en\" lang=\"en\">English</a>"
        ),
        "{swedish_page}"
    );
    // An update nobody translated: the Swedish text, marked as such.
    let dns = read(&site, "public/en/incidents/dns.html");
    assert!(
        dns.contains("<div class=\"body\" lang=\"sv\"><p>Namnuppslag går långsamt.</p>"),
        "{dns}"
    );
    let index = read(&site, "public/en/index.html");
    for needle in [
        "<a href=\"../index.html\" hreflang=\"sv\" lang=\"sv\">Svenska</a>",
        "href=\"components/mail.atom\"",
        "<a href=\"history/2019-04.html\">April 2019</a>",
    ] {
        assert!(index.contains(needle), "{needle} in:\n{index}");
    }
    let month = read(&site, "public/en/history/2019-04.html");
    assert!(
        month.contains("<a href=\"../incidents/storage.html\">Storage failure</a>"),
        "{month}"
    );

    // One incident's feed and the plain-text page in English too.
    let storage = feed_reader::read(read(&site, "public/en/incidents/storage.atom").as_bytes());
    assert_eq!(
        storage.entries[0].title.as_ref().unwrap().content,
        "Identified: Storage failure"
    );
    let text = read(&site, "public/en/index.txt");
    assert!(text.contains("https://status.example.com/en/"), "{text}");

    // The JSON summary and the calendar in English too.
    let summary: serde_json::Value =
        serde_json::from_str(&read(&site, "public/en/api/v2/summary.json")).unwrap();
    assert_eq!(
        summary["page"]["url"], "https://status.example.com/en",
        "{summary}"
    );
}

#[test]
fn check_warns_where_an_incident_is_partly_translated() {
    let site = Site::new(&build_config());
    site.write("storage.md", STORAGE);
    site.write("partly.md", PARTLY);
    let output = site.herald(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.trim_end(),
        "incidents/partly.md:2:9: warning: the title has no `en` version (`title.en = \"…\"`), while 1 of the 2 updates have `### en` text; its pages in `en` show the title in `sv`
incidents/partly.md:13:1: warning: this update has no `### en` text, while 1 of this incident's 2 updates have; readers in `en` get its `sv` text"
    );
    // A misplaced language is an error, with its place.
    site.write(
        "partly.md",
        &PARTLY.replace("### en\nDown.", "### sv\nNere igen."),
    );
    let output = site.herald(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("incidents/partly.md:10:1: error: `### sv` names the site's language; its text is the one before the first `### LANG` heading"),
        "{stdout}"
    );
}

fn text_part(message: &smtp::Received) -> String {
    let mail = mailparse::parse_mail(&message.data).unwrap();
    let part = mail
        .subparts
        .iter()
        .find(|part| part.ctype.mimetype == "text/plain")
        .expect("a text part");
    part.get_body().unwrap().replace("\r\n", "\n")
}

fn subject(message: &smtp::Received) -> String {
    let mail = mailparse::parse_mail(&message.data).unwrap();
    mail.headers
        .iter()
        .find(|header| header.get_key().eq_ignore_ascii_case("Subject"))
        .map(|header| header.get_value())
        .unwrap_or_default()
}

/// The messages to `address`, oldest first, as (subject, text part).
fn mail_to(server: &SmtpServer, address: &str) -> Vec<(String, String)> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| (subject(message), text_part(message)))
        .collect()
}

#[test]
fn a_swedish_and_an_english_subscriber_each_get_their_text() {
    let server = SmtpServer::start();
    let mut site = Site::new(&bilingual(&email_config(server.port(), "0s")));
    site.ok(&["subscribers", "add", "sv@example.org", "--lang", "sv"]);
    site.ok(&["subscribers", "add", "en@example.org", "--lang", "en"]);
    site.start();

    site.write(
        "storage.md",
        &format!(
            "+++\ntitle.sv = \"Lagringsfel\"\ntitle.en = \"Storage failure\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n\n## {} investigating\nVi felsöker.\n\n### en\nWe are investigating.\n",
            recent(1)
        ),
    );
    site.wait_for("two emails", || server.count() >= 2);
    let swedish = mail_to(&server, "sv@example.org");
    assert_eq!(swedish.len(), 1, "{swedish:?}");
    assert_eq!(swedish[0].0, "[Test status] Felsökning pågår: Lagringsfel");
    assert!(
        swedish[0].1.contains("\nVi felsöker.\n"),
        "{}",
        swedish[0].1
    );
    assert!(!swedish[0].1.contains("investigating"), "{}", swedish[0].1);
    let english = mail_to(&server, "en@example.org");
    assert_eq!(english.len(), 1, "{english:?}");
    assert_eq!(english[0].0, "[Test status] Investigating: Storage failure");
    assert!(
        english[0].1.contains("\nWe are investigating.\n"),
        "{}",
        english[0].1
    );
    assert!(!english[0].1.contains("Vi felsöker"), "{}", english[0].1);
    assert!(
        english[0]
            .1
            .contains("https://status.example.com/en/incidents/storage.html#u-"),
        "{}",
        english[0].1
    );

    // `herald post` takes the translation from its text.
    site.ok(&[
        "post",
        "storage",
        "identified",
        "Orsaken hittad.\n\n### en\nCause found.",
    ]);
    site.wait_for("four emails", || server.count() >= 4);
    let english = mail_to(&server, "en@example.org");
    assert_eq!(english[1].0, "[Test status] Identified: Storage failure");
    assert!(
        english[1].1.contains("\nCause found.\n"),
        "{}",
        english[1].1
    );
    assert!(!english[1].1.contains("Orsaken"), "{}", english[1].1);
    let swedish = mail_to(&server, "sv@example.org");
    assert!(
        swedish[1].1.contains("\nOrsaken hittad.\n"),
        "{}",
        swedish[1].1
    );
    assert!(!swedish[1].1.contains("Cause found"), "{}", swedish[1].1);

    // Untranslated: the Swedish text, and one line saying so.
    site.ok(&["post", "storage", "resolved", "Allt fungerar igen."]);
    site.wait_for("six emails", || server.count() >= 6);
    let english = mail_to(&server, "en@example.org");
    assert_eq!(english[2].0, "[Test status] Resolved: Storage failure");
    assert!(
        english[2].1.contains(
            "\nThis update has not been translated into English; here is its original text.\n\nAllt fungerar igen.\n"
        ),
        "{}",
        english[2].1
    );
    let swedish = mail_to(&server, "sv@example.org");
    assert!(
        swedish[2].1.contains("\nAllt fungerar igen.\n"),
        "{}",
        swedish[2].1
    );
    assert!(!swedish[2].1.contains("translated"), "{}", swedish[2].1);
    // The file holds the translation as written.
    let file = fs::read_to_string(site.path("incidents/storage.md")).unwrap();
    assert!(
        file.contains(" identified\nOrsaken hittad.\n\n### en\nCause found.\n"),
        "{file}"
    );
    site.stop();
}

#[test]
fn subscribing_on_the_english_page_makes_an_english_subscriber() {
    let server = SmtpServer::start();
    let port = smtp::free_port();
    let config = bilingual(&email_config(server.port(), "0s"))
        + &format!("\n[http]\nlisten = \"127.0.0.1:{port}\"\n");
    let mut site = Site::new(&config);
    site.start();
    site.wait_for("the English index", || {
        site.path("public/en/index.html").is_file()
    });
    let index = read(&site, "public/en/index.html");
    assert!(
        index.contains("<form method=\"post\" action=\"../subscribe\">\n<input type=\"hidden\" name=\"lang\" value=\"en\">"),
        "{index}"
    );

    let answer = http::post_form(
        port,
        "/subscribe",
        "192.0.2.1",
        "lang=en&email=new%40example.org",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    for needle in [
        "<html lang=\"en\">",
        "<h1>Check your inbox</h1>",
        "href=\"https://status.example.com/en/index.html\"",
    ] {
        assert!(
            answer.body.contains(needle),
            "{needle} in:\n{}",
            answer.body
        );
    }
    site.wait_for("the confirmation", || server.count() == 1);
    let confirmation = &server.received()[0];
    assert_eq!(
        subject(confirmation),
        "[Test status] Confirm your subscription"
    );
    let text = text_part(confirmation);
    let start = text.find("/confirm/").expect("a confirmation link");
    let token: String = text[start + "/confirm/".len()..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let confirmed = http::get(port, &format!("/confirm/{token}"));
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        "new@example.org\ten\t*\tevery\temail\n"
    );

    // A language the site does not have is a bad form, and nothing is asked.
    let refused = http::post_form(
        port,
        "/subscribe",
        "192.0.2.2",
        "lang=de&email=b%40example.org",
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    site.stop();
    assert_eq!(server.count(), 1);
}

/// The configuration's own words have their English too: the site's title
/// (`title.en`), a component's name (`name.en`) and its group's
/// (`group.en`) on the English pages, feeds, calendars and JSON, and in an
/// English subscriber's email; the Swedish outputs keep the Swedish.
#[test]
fn the_site_title_and_component_names_have_their_english_version() {
    let server = SmtpServer::start();
    let config = format!(
        r#"
[site]
title.sv = "Driftstatus"
title.en = "Service status"
base_url = "https://status.example.com/"
timezone = "Europe/Stockholm"
languages = ["sv", "en"]

[[components]]
id = "web"
name = {{ sv = "Webbhotell", en = "Web hosting" }}
group.sv = "Värdtjänster"
group.en = "Hosting services"

[[components]]
id = "mail"
name = "E-post"

[email]
from = "Status <status@example.com>"
smtp = "smtp://127.0.0.1:{}"
grace = "0s"
retry_base = "100ms"
"#,
        server.port()
    );
    let mut site = Site::new(&config);
    site.ok(&["subscribers", "add", "sv@example.org", "--lang", "sv"]);
    site.ok(&["subscribers", "add", "en@example.org", "--lang", "en"]);
    site.start();
    site.write(
        "web.md",
        &format!(
            "+++\ntitle.sv = \"Webbhotellet nere\"\ntitle.en = \"Web hosting down\"\ncomponents = [\"web\", \"mail\"]\nseverity = \"major\"\n+++\n\n## {} investigating\nVi felsöker.\n\n### en\nWe are investigating.\n",
            recent(1)
        ),
    );
    site.wait_for("two emails", || server.count() >= 2);

    let english = mail_to(&server, "en@example.org");
    assert_eq!(
        english[0].0,
        "[Service status] Investigating: Web hosting down"
    );
    assert!(english[0].1.contains("Web hosting"), "{}", english[0].1);
    assert!(!english[0].1.contains("Webbhotell"), "{}", english[0].1);
    let swedish = mail_to(&server, "sv@example.org");
    assert_eq!(
        swedish[0].0,
        "[Driftstatus] Felsökning pågår: Webbhotellet nere"
    );
    assert!(swedish[0].1.contains("Webbhotell"), "{}", swedish[0].1);

    let index = read(&site, "public/en/index.html");
    for needle in ["Service status", "Web hosting", "Hosting services"] {
        assert!(index.contains(needle), "{needle} in:\n{index}");
    }
    for needle in ["Driftstatus", "Webbhotell<", "Värdtjänster"] {
        assert!(!index.contains(needle), "{needle} in:\n{index}");
    }
    let swedish_index = read(&site, "public/index.html");
    for needle in ["Driftstatus", "Webbhotell", "Värdtjänster"] {
        assert!(
            swedish_index.contains(needle),
            "{needle} in:\n{swedish_index}"
        );
    }
    let feed = feed_reader::read(read(&site, "public/en/components/web.atom").as_bytes());
    assert_eq!(
        feed.title.as_ref().unwrap().content,
        "Service status: Web hosting"
    );
    let swedish_feed = feed_reader::read(read(&site, "public/components/web.atom").as_bytes());
    assert_eq!(
        swedish_feed.title.as_ref().unwrap().content,
        "Driftstatus: Webbhotell"
    );
    let components = read(&site, "public/en/api/v2/components.json");
    for needle in [
        "\"Web hosting\"",
        "\"Hosting services\"",
        "\"Service status\"",
    ] {
        assert!(components.contains(needle), "{needle} in:\n{components}");
    }
    let calendar = read(&site, "public/en/components/web.ics");
    assert!(
        calendar.contains("Service status: Web hosting"),
        "{calendar}"
    );
    site.stop();
}

/// A translation of the configuration's words in a language the site does
/// not have, or without the site's own, is refused with its place.
#[test]
fn a_name_in_a_language_the_site_lacks_is_refused() {
    let site = Site::new(
        "\n[site]\ntitle = \"Status\"\nbase_url = \"https://status.example.com/\"\nlanguages = [\"sv\", \"en\"]\n\n[[components]]\nid = \"web\"\nname = { sv = \"Webb\", de = \"Netz\" }\n",
    );
    let output = site.herald(&["check"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let out = String::from_utf8_lossy(&output.stderr);
    assert!(
        out.contains("herald.toml:9:8: error: `name.de`: `de` is not one of the site's languages (`sv`, `en`)"),
        "{out}"
    );
}

/// `post --dry-run` on a translated site shows the email in each of the
/// site's languages, with the translation from TEXT, even where no
/// subscriber reads one of them yet.
#[test]
fn a_dry_run_shows_the_email_in_every_language_of_the_site() {
    let site = Site::new(&bilingual(&email_config(1, "0s")));
    site.ok(&["subscribers", "add", "sv@example.org", "--lang", "sv"]);
    site.write(
        "storage.md",
        &format!(
            "+++\ntitle.sv = \"Lagringsfel\"\ntitle.en = \"Storage failure\"\ncomponents = [\"mail\"]\nseverity = \"major\"\n+++\n\n## {} investigating\nVi felsöker.\n\n### en\nWe are investigating.\n",
            recent(1)
        ),
    );
    let out = site.ok(&[
        "post",
        "storage",
        "identified",
        "--dry-run",
        "Orsaken hittad.\n\n### en\nCause found.",
    ]);
    let swedish = out
        .find("email in sv to 1 subscriber:\nSubject: [Test status] Orsak identifierad: Lagringsfel\n")
        .unwrap_or_else(|| panic!("{out}"));
    let english = out
        .find("email in en to 0 subscribers:\nSubject: [Test status] Identified: Storage failure\n")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(swedish < english, "{out}");
    assert!(out[english..].contains("Cause found."), "{out}");
    assert!(!out[english..].contains("Orsaken hittad."), "{out}");
}
