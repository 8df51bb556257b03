//! Following one incident, end to end: `herald run` with `[http]` on
//! 127.0.0.1, the incident page's form posted over HTTP
//! (tests/support/http.rs), the confirmation and the alerts read from the
//! test SMTP server (tests/support/smtp.rs), and the incident's own Atom
//! feed read back with feed-rs. The follower hears of that incident only,
//! and nothing after its resolution; `herald subscribers add --incident`
//! does the same from the command line.

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

use site::{Site, email_config, incident, recent};
use smtp::{SmtpServer, free_port};

fn subjects_to(server: &SmtpServer, address: &str) -> Vec<String> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| {
            mailparse::parse_mail(&message.data)
                .unwrap()
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default()
        })
        .collect()
}

fn text_to(server: &SmtpServer, address: &str) -> String {
    let message = server
        .received()
        .into_iter()
        .find(|message| message.to.iter().any(|to| to == address))
        .unwrap();
    let mail = mailparse::parse_mail(&message.data).unwrap();
    mail.subparts[0].get_body().unwrap().replace("\r\n", "\n")
}

/// The path of the `/confirm/` link in `text`.
fn confirm_link(text: &str) -> String {
    let base = "https://status.example.com";
    let start = text
        .find(&format!("{base}/confirm/"))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"));
    text[start + base.len()..]
        .split(char::is_whitespace)
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn following_one_incident_over_http_brings_its_updates_only_until_resolved() {
    let server = SmtpServer::start();
    let port = free_port();
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
        email_config(server.port(), "0s")
    );
    let mut site = Site::new(&config);
    let (first, second, third, fourth) = (recent(4), recent(3), recent(2), recent(1));
    let storage = |updates: &[(&str, &str)]| incident("Storage failure", "\"mail\"", updates);
    let opened = format!("{first} investigating");
    site.write("storage.md", &storage(&[(&opened, "Disks.")]));
    site.write(
        "other.md",
        &incident("Other trouble", "\"mail\"", &[(&opened, "Elsewhere.")]),
    );
    site.ok(&[
        "subscribers",
        "add",
        "mail@example.org",
        "--components",
        "mail",
    ]);
    site.start();

    // The page offers to follow just this incident, and its own feed.
    let page = fs::read_to_string(site.path("public/incidents/storage.html")).unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"../subscribe\">\n<input type=\"hidden\" name=\"incident\" value=\"storage\">"),
        "{page}"
    );
    assert!(page.contains("href=\"storage.atom\""), "{page}");

    // An incident that is not published cannot be followed.
    let refused = http::post_form(
        port,
        "/subscribe",
        "192.0.2.9",
        "email=one%40example.org&incident=nope",
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused
            .body
            .contains("The incident to follow does not exist."),
        "{}",
        refused.body
    );

    // After a reload the server still knows what may be followed.
    site.reload();
    let asked = http::post_form(
        port,
        "/subscribe",
        "192.0.2.1",
        "email=one%40example.org&incident=storage",
    );
    assert_eq!(asked.status, 200, "{asked:?}");
    site.wait_for("the confirmation", || {
        !subjects_to(&server, "one@example.org").is_empty()
    });
    let text = text_to(&server, "one@example.org");
    assert!(
        text.contains(
            "  - The incident https://status.example.com/incidents/storage.html only, until it is resolved\n"
        ),
        "{text}"
    );
    let confirmed = http::get(port, &confirm_link(&text));
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    // Another asks too, but follows the link only after the resolution.
    let slow = http::post_form(
        port,
        "/subscribe",
        "192.0.2.3",
        "email=slow%40example.org&incident=storage",
    );
    assert_eq!(slow.status, 200, "{slow:?}");
    site.wait_for("the second confirmation", || {
        !subjects_to(&server, "slow@example.org").is_empty()
    });
    let slow_link = confirm_link(&text_to(&server, "slow@example.org"));

    // An update of the incident reaches the follower; one of another
    // incident on the same component does not.
    let identified = format!("{second} identified");
    site.write(
        "other.md",
        &incident(
            "Other trouble",
            "\"mail\"",
            &[(&opened, "Elsewhere."), (&identified, "Found.")],
        ),
    );
    site.write(
        "storage.md",
        &storage(&[(&opened, "Disks."), (&identified, "A controller.")]),
    );
    site.wait_for("the update to the follower", || {
        subjects_to(&server, "one@example.org").len() == 2
    });
    let resolved = format!("{third} resolved");
    site.write(
        "storage.md",
        &storage(&[
            (&opened, "Disks."),
            (&identified, "A controller."),
            (&resolved, "Replaced."),
        ]),
    );
    site.wait_for("the resolution to the follower", || {
        subjects_to(&server, "one@example.org").len() == 3
    });
    // A closed incident offers no more following, and takes none.
    let page = fs::read_to_string(site.path("public/incidents/storage.html")).unwrap();
    assert!(!page.contains("name=\"incident\""), "{page}");
    let closed = http::post_form(
        port,
        "/subscribe",
        "192.0.2.2",
        "email=late%40example.org&incident=storage",
    );
    assert_eq!(closed.status, 400, "{closed:?}");
    let too_late = http::get(port, &slow_link);
    assert_eq!(too_late.status, 404, "{too_late:?}");
    // Reopened after the resolution: the follower hears nothing more.
    let reopened = format!("{fourth} investigating");
    site.write(
        "storage.md",
        &storage(&[
            (&opened, "Disks."),
            (&identified, "A controller."),
            (&resolved, "Replaced."),
            (&reopened, "Again."),
        ]),
    );
    site.wait_for("the reopening to the component's follower", || {
        subjects_to(&server, "mail@example.org")
            .iter()
            .filter(|s| s.contains("Storage failure"))
            .count()
            == 3
    });
    site.stop();
    assert_eq!(
        subjects_to(&server, "one@example.org"),
        [
            "[Test status] Confirm your subscription",
            "[Test status] Identified: Storage failure",
            "[Test status] Resolved: Storage failure",
        ]
    );
    // Their follow ended and they followed nothing else: they are gone.
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        "mail@example.org\ten\tmail\tevery\temail\n"
    );

    // The incident's feed holds its four updates, newest first.
    let feed = feed_reader::read(&fs::read(site.path("public/incidents/storage.atom")).unwrap());
    let titles: Vec<String> = feed
        .entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.clone())
        .collect();
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert!(titles[0].starts_with("Investigating"), "{titles:?}");
    assert!(titles[1].starts_with("Resolved"), "{titles:?}");
}

#[test]
fn subscribers_add_incident_follows_a_published_incident_only() {
    let server = SmtpServer::start();
    let site = Site::new(&email_config(server.port(), "0s"));
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[("2019-04-04 08:00 investigating", "Disks.")],
        ),
    );
    assert_eq!(
        site.ok(&[
            "subscribers",
            "add",
            "one@example.org",
            "--incident",
            "storage"
        ]),
        "added one@example.org\n"
    );
    let unknown = site.herald(&[
        "subscribers",
        "add",
        "one@example.org",
        "--incident",
        "nope",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("no published incident `nope`"), "{stderr}");
    site.write(
        "done.md",
        &incident(
            "Done",
            "\"mail\"",
            &[
                ("2019-04-04 08:00 investigating", "Disks."),
                ("2019-04-04 09:00 resolved", "Fixed."),
            ],
        ),
    );
    let closed = site.herald(&[
        "subscribers",
        "add",
        "one@example.org",
        "--incident",
        "done",
    ]);
    assert_eq!(closed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert!(
        stderr.contains("incident `done` is closed already"),
        "{stderr}"
    );
    let both = site.herald(&[
        "subscribers",
        "add",
        "one@example.org",
        "--incident",
        "storage",
        "--components",
        "mail",
    ]);
    assert_eq!(both.status.code(), Some(2));
}
