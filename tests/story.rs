//! Issue 13, the seed's story told right, against the real binary: a
//! component that joins an incident later (the customer portal at 11.20
//! in the seed thread), quiet updates, subscribers who want changes only,
//! and the operator's command line (`post` refusals and `--dry-run`).

#[path = "support/feed_reader.rs"]
mod feed_reader;
#[path = "support/seed_thread.rs"]
mod seed_thread;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use herald::parse::{Context, parse_incident};
use site::Site;
use smtp::SmtpServer;

const SEED_COMPONENTS: [(&str, &str); 4] = [
    ("web-hosting", "Webbhotell"),
    ("mail", "E-post"),
    ("cloud", "Molnservrar"),
    ("customer-portal", "Kundportalen"),
];

/// Days to move the 2019 thread by so that it began six days ago: its
/// updates are then within the 90-day bars and `max_age`.
fn shift_days() -> i64 {
    let start = NaiveDate::from_ymd_opt(2019, 4, 4).unwrap();
    let today = herald::clock::now().date_naive();
    (today - start).num_days() - 6
}

/// The Swedish site of the seed, with email to `port` when given.
fn seed_config(port: Option<u16>) -> String {
    let mut text = site_toml::swedish_site() + &site_toml::components(&SEED_COMPONENTS);
    if let Some(port) = port {
        text.push_str(&format!(
            "\n[email]\nfrom = \"Drift <status@example.se>\"\nsmtp = \"smtp://127.0.0.1:{port}\"\ngrace = \"0s\"\nmax_age = \"30days\"\nretry_base = \"100ms\"\n"
        ));
    }
    text
}

/// The converted seed and the instants of its updates, oldest first.
fn seed() -> (String, Vec<DateTime<Utc>>) {
    let telling = seed_thread::Telling {
        portal_joins: true,
        shift_days: Some(shift_days()),
    };
    let text = seed_thread::convert(&seed_thread::read_seed(), telling);
    let config = herald::config::parse(Path::new("herald.toml"), &seed_config(None)).unwrap();
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let (incident, diagnostics) = parse_incident(Path::new("lagring.md"), &text, &context);
    let incident = incident.unwrap_or_else(|| panic!("{diagnostics:?}\n{text}"));
    assert_eq!(incident.updates.len(), 48);
    (text, incident.updates.iter().map(|u| u.instant).collect())
}

/// 11.20 on the thread's first day (moved like the thread).
fn join_instant() -> DateTime<Utc> {
    let day = NaiveDate::from_ymd_opt(2019, 4, 4).unwrap() + chrono::Duration::days(shift_days());
    day.and_hms_opt(9, 20, 0).unwrap().and_utc()
}

fn read(site: &Site, relative: &str) -> String {
    fs::read_to_string(site.path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn between<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not in {text}"))
        + from.len();
    let end = text[start..]
        .find(to)
        .unwrap_or_else(|| panic!("{to:?} not after {from:?} in {text}"));
    &text[start..start + end]
}

#[test]
fn the_portal_joins_at_11_20_on_the_page_in_its_feed_and_in_the_summary() {
    let site = Site::new(&seed_config(None));
    let (text, instants) = seed();
    let join = join_instant();
    assert!(instants.contains(&join), "{instants:?}");
    let from_join = instants.iter().filter(|at| **at >= join).count();
    assert_eq!(from_join, 43, "five updates before 11.20");
    site.write("lagring.md", &text);
    site.ok(&["build"]);

    // The portal's feed starts at 11.20; the other components' carry all.
    let portal =
        feed_reader::read(read(&site, "public/components/customer-portal.atom").as_bytes());
    let published: Vec<DateTime<Utc>> = portal
        .entries
        .iter()
        .map(|entry| entry.published.unwrap())
        .collect();
    assert_eq!(published.len(), from_join, "{published:?}");
    assert_eq!(published.last(), Some(&join), "{published:?}");
    let mail = feed_reader::read(read(&site, "public/components/mail.atom").as_bytes());
    assert_eq!(mail.entries.len(), 48);
    // In the site feed, an entry names the portal from 11.20 on only.
    let all = feed_reader::read(read(&site, "public/feed.atom").as_bytes());
    for entry in &all.entries {
        let terms: Vec<&str> = entry.categories.iter().map(|c| c.term.as_str()).collect();
        let named = terms.contains(&"customer-portal");
        assert_eq!(
            named,
            entry.published.unwrap() >= join,
            "{terms:?} at {:?}",
            entry.published
        );
    }

    // The incident page's timeline: the portal is down from 11.20, not
    // from 08:00.
    let page = read(&site, "public/incidents/lagring.html");
    let row = between(&page, "Kundportalen</th></tr>", "</tbody>");
    let first = between(row, "datetime=\"", "\"");
    assert_eq!(
        first,
        join.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "{row}"
    );
    let mail_row = between(&page, "E-post</th></tr>", "</tbody>");
    assert_eq!(
        between(mail_row, "datetime=\"", "\""),
        instants[0].to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "{mail_row}"
    );

    // The resolved page says when, and for how long (08:00 on the 4th
    // to 19:26 on the 8th).
    let resolved = instants[47]
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .format("%H:%M %Z</time>")
        .to_string();
    assert!(
        page.contains(&format!(
            "<dt>Löst</dt>\n<dd><time datetime=\"{}\">",
            instants[47].to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{page}"
    );
    assert!(page.contains(&resolved), "{resolved} in {page}");
    assert!(
        page.contains("<dt>Varade</dt>\n<dd>4 dagar 11 timmar</dd>"),
        "{page}"
    );

    // Consecutive feed entries have different titles: the status when it
    // changed, otherwise the text's first words.
    let titles: Vec<String> = all
        .entries
        .iter()
        .map(|e| {
            e.title
                .as_ref()
                .map(|t| t.content.clone())
                .unwrap_or_default()
        })
        .collect();
    for pair in titles.windows(2) {
        assert_ne!(pair[0], pair[1], "{titles:#?}");
    }
    assert_eq!(titles[47], "Felsökning pågår: Fel i lagringsplattformen");
    assert_eq!(titles[0], "Löst: Fel i lagringsplattformen");
    assert_eq!(
        titles[42],
        "Fel i lagringsplattformen: Åtgärd fortlöper. Driftstörningen påverkar även Mina Sidor"
    );

    // The summary lists open incidents: without its resolution, each
    // update's affected components name the portal from 11.20 on only.
    site.write("lagring.md", &text.replace(" resolved\n", "\n"));
    site.ok(&["build"]);
    let summary: serde_json::Value =
        serde_json::from_str(&read(&site, "public/api/v2/summary.json")).unwrap();
    let incident = &summary["incidents"][0];
    let codes: Vec<&str> = incident["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().or(c["name"].as_str()).unwrap_or_default())
        .collect();
    assert_eq!(codes.len(), 4, "{codes:?}");
    let updates = incident["incident_updates"].as_array().unwrap();
    assert_eq!(updates.len(), 48);
    let mut portal_named = Vec::new();
    for update in updates {
        let created: DateTime<Utc> = update["created_at"].as_str().unwrap().parse().unwrap();
        let affected: Vec<(&str, &str)> = update["affected_components"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| {
                        (
                            a["code"].as_str().unwrap(),
                            a["new_status"].as_str().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if affected.iter().any(|(code, _)| *code == "customer-portal") {
            portal_named.push((created, affected));
        }
    }
    assert_eq!(portal_named.len(), 1, "{portal_named:?}");
    assert_eq!(portal_named[0].0, join);
    assert!(
        portal_named[0]
            .1
            .contains(&("customer-portal", "major_outage")),
        "{portal_named:?}"
    );
}

/// The history bars: a component that joins on a later day is not shown
/// down on the days before.
#[test]
fn a_component_joining_a_day_later_is_down_in_the_bars_from_that_day() {
    let site = Site::new(&site::email_config(1, "0s"));
    let days_ago = |days: i64, hour: u32| {
        let day = herald::clock::now().date_naive() - chrono::Duration::days(days);
        format!("{day} {hour:02}:00Z")
    };
    site.write(
        "late.md",
        &site::incident(
            "Storage",
            "\"mail\"",
            &[
                (&format!("{} investigating", days_ago(3, 10)), "Mail down."),
                (&days_ago(2, 10), "components: dns=major-outage\nDNS too."),
                (&format!("{} resolved", days_ago(1, 10)), "Fine."),
            ],
        ),
    );
    site.ok(&["build"]);
    let index = read(&site, "public/index.html");
    // A quiet day is an empty cell, a bad one a link with a one-letter
    // class (`p` partial outage, `x` major outage).
    let cells = |id: &str| -> Vec<String> {
        let bar = between(&index, &format!("id=\"c-{id}\""), "</div>");
        let bar = bar.split_once("<div class=\"bar\">").expect("a bar").1;
        bar.split_inclusive("</span>")
            .flat_map(|part| part.split_inclusive("</a>"))
            .map(|cell| match cell.strip_prefix("<a class=\"") {
                Some(rest) => rest.split('"').next().unwrap().to_owned(),
                None => {
                    assert_eq!(cell, "<span></span>", "{index}");
                    "quiet".to_owned()
                }
            })
            .collect()
    };
    let (mail, dns) = (cells("mail"), cells("dns"));
    let last4 = |cells: &[String]| cells[cells.len() - 4..].to_vec();
    assert_eq!(last4(&mail), ["p", "p", "p", "quiet"], "{index}");
    assert_eq!(last4(&dns), ["quiet", "x", "x", "quiet"], "{index}");
}

/// Message-IDs carry the update's instant: which updates `address` was
/// mailed.
fn mailed_instants(server: &SmtpServer, address: &str) -> BTreeSet<String> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| {
            let mail = mailparse::parse_mail(&message.data).unwrap();
            let id = mail
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Message-ID"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            id.split('.').nth(1).unwrap_or_default().to_owned()
        })
        .collect()
}

#[test]
fn the_portals_subscribers_get_mail_from_11_20_over_smtp() {
    let server = SmtpServer::start();
    let mut site = Site::new(&seed_config(Some(server.port())));
    site.ok(&[
        "subscribers",
        "add",
        "portal@example.org",
        "--components",
        "customer-portal",
    ]);
    site.ok(&[
        "subscribers",
        "add",
        "mail@example.org",
        "--components",
        "mail",
    ]);
    site.start();
    let (text, instants) = seed();
    let join = join_instant();
    site.write("lagring.md", &text);
    site.wait_for("48 + 43 emails", || server.count() >= 48 + 43);
    site.ok(&["outbox"]);
    site.stop();
    assert_eq!(server.count(), 91);
    let format = |at: &DateTime<Utc>| at.format("%Y%m%dT%H%M%SZ").to_string();
    let all: BTreeSet<String> = instants.iter().map(format).collect();
    let from_join: BTreeSet<String> = instants
        .iter()
        .filter(|at| **at >= join)
        .map(format)
        .collect();
    assert_eq!(mailed_instants(&server, "mail@example.org"), all);
    assert_eq!(mailed_instants(&server, "portal@example.org"), from_join);
    // Mailed in order; consecutive subjects differ, and none has seconds.
    let subjects = subjects(&server, "mail@example.org");
    assert_eq!(subjects.len(), 48);
    for pair in subjects.windows(2) {
        assert_ne!(pair[0], pair[1], "{subjects:#?}");
    }
    assert!(
        subjects.contains(
            &"[Exempelhosting driftstatus] Fel i lagringsplattformen: Åtgärd fortlöper. Driftstörningen påverkar även Mina Sidor".to_owned()
        ),
        "{subjects:#?}"
    );
}

/// Every file under the site's directory and its bytes, logs aside.
fn snapshot(site: &Site) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push((path.display().to_string(), fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(&site.path(""), &mut files);
    files
}

/// Fails naming the files added, removed or changed.
fn assert_same_files(after: &[(String, Vec<u8>)], before: &[(String, Vec<u8>)]) {
    let names = |files: &[(String, Vec<u8>)]| -> BTreeSet<String> {
        files.iter().map(|(name, _)| name.clone()).collect()
    };
    assert_eq!(names(after), names(before), "files added or removed");
    let changed: Vec<&String> = after
        .iter()
        .zip(before)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(changed.is_empty(), "changed: {changed:?}");
}

/// Every row of every table of the state database, as text.
fn rows(site: &Site) -> Vec<String> {
    // Read-write, so that closing removes the `-wal` and `-shm` files a
    // read-only connection leaves; `query_only` keeps it from writing.
    let connection = rusqlite::Connection::open_with_flags(
        site.path("state/herald.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
    )
    .unwrap();
    connection.pragma_update(None, "query_only", true).unwrap();
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut rows = Vec::new();
    for table in tables {
        let mut statement = connection
            .prepare(&format!("SELECT * FROM {table}"))
            .unwrap();
        let columns = statement.column_count();
        let mut query = statement.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..columns)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(text) => String::from_utf8_lossy(text).into(),
                    other => format!("{other:?}"),
                })
                .collect();
            rows.push(format!("{table}: {}", values.join(" | ")));
        }
    }
    rows
}

fn fails(site: &Site, args: &[&str], message: &str) -> String {
    let output = site.herald(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    stderr
}

const OPEN: &str = "+++\ntitle = \"Mail slow\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\nLooking.\n";

#[test]
fn post_refuses_an_empty_text_an_update_to_a_resolved_incident_and_a_mistyped_id() {
    let site = Site::new(&site::email_config(1, "0s"));
    site.write("mail-slow.md", OPEN);
    let before = fs::read(site.path("incidents/mail-slow.md")).unwrap();
    // An empty text, as an argument or (here: nothing at all) on stdin.
    for args in [&["update", ""][..], &["update", "  \n\t"], &["update"]] {
        let mut all = vec!["post", "mail-slow"];
        all.extend_from_slice(args);
        fails(&site, &all, "the update has no text");
    }
    assert_eq!(
        fs::read(site.path("incidents/mail-slow.md")).unwrap(),
        before
    );

    for (args, message) in [
        (
            &["mail-slo", "update", "x"][..],
            "no incident `mail-slo` in incidents; did you mean `mail-slow`?",
        ),
        (
            &["web-down", "update", "x"],
            "no incident `web-down` in incidents; create it with `herald new`",
        ),
        (
            &["mail-slow", "update", "--set", "mail=down", "x"],
            "the result would have errors",
        ),
    ] {
        let mut all = vec!["post"];
        all.extend_from_slice(args);
        fails(&site, &all, message);
    }
    site.ok(&["post", "mail-slow", "resolved", "Fixed."]);
    let resolved = fs::read(site.path("incidents/mail-slow.md")).unwrap();
    let stderr = fails(
        &site,
        &["post", "mail-slow", "update", "One more thing."],
        "an `update` would not reopen it: post `investigating`, `identified` or `monitoring` to reopen it",
    );
    assert!(stderr.contains("`mail-slow` was resolved at "), "{stderr}");
    assert_eq!(
        fs::read(site.path("incidents/mail-slow.md")).unwrap(),
        resolved
    );
    // Reopening is allowed.
    site.ok(&["post", "mail-slow", "monitoring", "Back, watching."]);
}

#[test]
fn post_set_and_quiet_write_their_lines() {
    let site = Site::new(&site::email_config(1, "0s"));
    site.write("mail-slow.md", OPEN);
    site.ok(&[
        "post",
        "mail-slow",
        "identified",
        "--set",
        "mail=major-outage",
        "--set",
        "dns=degraded",
        "--quiet",
        "Found it.",
    ]);
    let file = read(&site, "incidents/mail-slow.md");
    assert!(
        file.ends_with(
            " identified\ncomponents: mail=major-outage, dns=degraded\nnotify: no\nFound it.\n"
        ),
        "{file}"
    );
    // The file keeps the seconds; the page shows the minute.
    let heading = file.lines().rev().find(|l| l.starts_with("## ")).unwrap();
    let (date, time) = (&heading[3..13], &heading[14..22]);
    assert_eq!(time.len(), 8, "{heading}");
    site.ok(&["build"]);
    let page = read(&site, "public/incidents/mail-slow.html");
    let day: u32 = date[8..].parse().unwrap();
    let shown = format!("{day}, {} {} C", &date[..4], &time[..5]);
    assert!(page.contains(&shown), "{shown} in {page}");
    assert!(!page.contains(&format!("{time} C")), "{time} in {page}");
    let help = String::from_utf8(site.herald(&["post", "--help"]).stdout).unwrap();
    for text in [
        "--set <COMPONENT=STATUS>",
        "--quiet",
        "--dry-run",
        "joins the incident",
    ] {
        assert!(help.contains(text), "{text}: {help}");
    }
}

#[test]
fn post_dry_run_shows_the_email_per_language_and_changes_no_file_and_no_row() {
    let site = Site::new(&site::email_config(1, "0s"));
    site.write("mail-slow.md", OPEN);
    site.ok(&[
        "subscribers",
        "add",
        "a@example.org",
        "--components",
        "mail",
    ]);
    site.ok(&["subscribers", "add", "b@example.org", "--components", "dns"]);
    site.ok(&["subscribers", "add", "c@example.org", "--lang", "sv"]);
    site.ok(&["build"]);
    let db = rows(&site);
    let files = snapshot(&site);
    assert!(db.iter().any(|row| row.contains("a@example.org")), "{db:?}");

    let out = site.ok(&[
        "post",
        "mail-slow",
        "identified",
        "--set",
        "dns=degraded",
        "--dry-run",
        "Found *it*.",
    ]);
    assert!(
        out.contains("would append to incidents/mail-slow.md:\n\n## "),
        "{out}"
    );
    assert!(
        out.contains(" identified\ncomponents: dns=degraded\nFound *it*.\n"),
        "{out}"
    );
    // English (the site's language) first, then the Swedish subscriber's.
    assert!(
        out.contains(
            "email in en to 2 subscribers:\nSubject: [Test status] Identified: Mail slow\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "email in sv to 1 subscriber:\nSubject: [Test status] Orsak identifierad: Mail slow\n"
        ),
        "{out}"
    );
    assert!(out.contains("Found *it*."), "{out}");
    assert!(out.ends_with("nothing was written\n"), "{out}");
    assert_same_files(&snapshot(&site), &files);
    assert_eq!(rows(&site), db, "a row changed");

    // Quiet: nobody would be mailed.
    let out = site.ok(&[
        "post",
        "mail-slow",
        "update",
        "--quiet",
        "--dry-run",
        "Hush.",
    ]);
    assert!(
        out.contains("no email: a quiet update (notify: no)"),
        "{out}"
    );
    assert_same_files(&snapshot(&site), &files);
}

#[test]
fn list_shows_what_is_open_and_show_one_incident() {
    let site = Site::new(&site::email_config(1, "0s"));
    site.write(
        "mail-slow.md",
        &site::incident(
            "Mail slow",
            "\"mail\"",
            &[
                (&format!("{} investigating", site::recent(125)), "Looking."),
                (
                    &site::recent(65),
                    "components: dns=degraded\nnotify: no\nDNS too.",
                ),
            ],
        ),
    );
    site.write(
        "old.md",
        &format!("{OPEN}\n## 2019-04-04 09:00 resolved\nFixed.\n"),
    );
    let soon = (herald::clock::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
    site.write(
        "dns-work.md",
        &format!(
            "+++\ntitle = \"DNS work\"\ncomponents = [\"dns\"]\nseverity = \"minor\"\nkind = \"maintenance\"\nstarts = \"{soon} 22:00\"\nends = \"{soon} 23:00\"\n+++\n\n## {} scheduled\nPlanned.\n",
            site::recent(30)
        ),
    );
    let list = site.ok(&["list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(
        lines[0], "dns-work\tDNS work\tscheduled\tdns=operational\t30m ago",
        "{list}"
    );
    assert_eq!(
        lines[1],
        "mail-slow\tMail slow\tinvestigating\tmail=partial-outage, dns=degraded\t1h 5m ago",
        "{list}"
    );
    let all = site.ok(&["list", "--all"]);
    assert!(
        all.lines()
            .any(|line| line.starts_with("old\tMail slow\tresolved\tmail=operational\t")),
        "{all}"
    );

    let show = site.ok(&["show", "mail-slow"]);
    for text in [
        "mail-slow: Mail slow\nincident (major), investigating, file incidents/mail-slow.md\n",
        "components now: mail=partial-outage, dns=degraded\ndns joined at ",
        " investigating\nLooking.\n",
        " investigating (quiet)\ncomponents: dns=degraded\nDNS too.\n",
    ] {
        assert!(show.contains(text), "{text:?} in {show}");
    }
    fails(
        &site,
        &["show", "mail-sloww"],
        "no incident `mail-sloww`; did you mean `mail-slow`?",
    );
    fails(
        &site,
        &["show", "nothing-like-it"],
        "`herald list --all` lists them",
    );
}

fn subjects(server: &SmtpServer, address: &str) -> Vec<String> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| {
            let mail = mailparse::parse_mail(&message.data).unwrap();
            mail.headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn quiet_updates_mail_nobody_and_outbox_shows_the_grace_period_and_clean_replies() {
    let server = SmtpServer::start();
    server.reject(
        "gone@example.org",
        "550 5.1.1 \u{1b}[2J\u{1b}]0;pwned\u{7}no such user",
    );
    let mut site = Site::new(&site::email_config(server.port(), "0s"));
    site.ok(&["subscribers", "add", "every@example.org"]);
    site.ok(&["subscribers", "add", "gone@example.org"]);
    site.start();
    site.write(
        "x.md",
        &site::incident(
            "Outage",
            "\"web\"",
            &[(&format!("{} investigating", site::recent(3)), "Down.")],
        ),
    );
    site.wait_for("the first email", || server.count() == 1);
    site.ok(&["post", "x", "update", "--quiet", "Quiet note."]);
    site.wait_for_page("Quiet note.");
    // Recorded as notified, for being quiet, on its own.
    site.wait_for("the quiet update to be recorded", || {
        rows(&site)
            .iter()
            .any(|row| row.starts_with("notified: x | ") && row.ends_with(" | quiet"))
    });
    site.ok(&["post", "x", "identified", "Found it."]);
    site.wait_for("the second email", || server.count() == 2);
    site.wait_for("the refusal to be parked", || {
        site.ok(&["outbox"])
            .starts_with("pending 0, retrying 0, failed 2, sent 2\n")
    });
    site.stop();
    assert_eq!(
        subjects(&server, "every@example.org"),
        [
            "[Test status] Investigating: Outage",
            "[Test status] Identified: Outage"
        ]
    );
    // The quiet update is published, and says so in the summary.
    let summary = read(&site, "public/api/v2/summary.json");
    assert!(
        summary.contains("\"deliver_notifications\": false"),
        "{summary}"
    );

    let outbox = site.ok(&["outbox"]);
    assert!(
        !outbox.contains('\u{1b}') && !outbox.contains('\u{7}'),
        "{outbox:?}"
    );
    assert!(
        outbox.contains("(550): 5.1.1 \\u{1b}[2J\\u{1b}]0;pwned\\u{7}no such user"),
        "{outbox}"
    );

    // With a long grace period, `outbox` says when an update will go.
    fs::write(
        site.path("herald.toml"),
        site::email_config(server.port(), "1h"),
    )
    .unwrap();
    site.start();
    site.ok(&["post", "x", "monitoring", "Watching."]);
    site.wait_for("the update to be seen", || {
        site.ok(&["outbox"]).contains("\ngrace\tx@")
    });
    site.ok(&["post", "x", "update", "--quiet", "Quietly watching."]);
    site.wait_for("the quiet one to be seen", || {
        site.ok(&["outbox"]).contains("\tquiet, emails nobody at ")
    });
    site.stop();
    let outbox = site.ok(&["outbox"]);
    let line = outbox
        .lines()
        .find(|l| l.starts_with("grace\t") && l.contains("\tgoes at "))
        .unwrap();
    let fields: Vec<&str> = line.split('\t').collect();
    let posted = fields[1].strip_prefix("x@").expect("the update");
    let goes = fields[2].strip_prefix("goes at ").expect("when it goes");
    let posted = DateTime::parse_from_str(posted, "%Y-%m-%d %H:%M:%S%:z").unwrap();
    let goes = DateTime::parse_from_str(goes, "%Y-%m-%d %H:%M:%S%:z").unwrap();
    let wait = goes.signed_duration_since(posted);
    assert!(
        wait >= chrono::Duration::minutes(59) && wait <= chrono::Duration::minutes(61),
        "{line}"
    );
    // Stockholm's offset, in the site's zone.
    assert!(
        line.ends_with("+01:00") || line.ends_with("+02:00"),
        "{line}"
    );
    assert_eq!(server.count(), 2);
}

#[test]
fn only_changes_subscribers_get_the_first_update_changes_and_the_resolution() {
    let server = SmtpServer::start();
    let mut site = Site::new(&site::email_config(server.port(), "0s"));
    site.ok(&["subscribers", "add", "every@example.org"]);
    site.ok(&[
        "subscribers",
        "add",
        "changes@example.org",
        "--only-changes",
    ]);
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        "changes@example.org\ten\t*\tchanges\temail\nevery@example.org\ten\t*\tevery\temail\n"
    );
    site.start();
    site.write(
        "x.md",
        &site::incident(
            "Outage",
            "\"web\"",
            &[(&format!("{} investigating", site::recent(3)), "Down.")],
        ),
    );
    site.wait_for("the first emails", || server.count() >= 2);
    let mut expected = 2;
    let mut post = |args: &[&str], mailed: usize| {
        let mut all = vec!["post", "x"];
        all.extend_from_slice(args);
        site.ok(&all);
        expected += mailed;
        let want = expected;
        site.wait_for(&format!("{want} emails"), || server.count() >= want);
    };
    // No change: the status stays, no component moves.
    post(&["update", "Still looking at the disks."], 1);
    // A component's status changes; then the incident's.
    post(
        &["update", "--set", "mail=degraded", "Mail is slow too."],
        2,
    );
    post(&["identified", "Found it."], 2);
    post(&["update", "Replacing the controller."], 1);
    post(&["resolved", "Fixed."], 2);
    site.stop();
    assert_eq!(server.count(), 10);
    assert_eq!(
        subjects(&server, "changes@example.org"),
        [
            "[Test status] Investigating: Outage",
            "[Test status] Outage: Mail is slow too.",
            "[Test status] Identified: Outage",
            "[Test status] Resolved: Outage",
        ]
    );
    assert_eq!(
        subjects(&server, "every@example.org"),
        [
            "[Test status] Investigating: Outage",
            "[Test status] Outage: Still looking at the disks.",
            "[Test status] Outage: Mail is slow too.",
            "[Test status] Identified: Outage",
            "[Test status] Outage: Replacing the controller.",
            "[Test status] Resolved: Outage",
        ]
    );
}
