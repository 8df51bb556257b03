//! Maintenance as a lifecycle, end to end: `herald run` against the test
//! SMTP server (tests/support/smtp.rs), with windows a few seconds ahead
//! and the binary's real clock. A reminder, the start and the end each
//! arrive once, on time (never early, within seconds), to the followers
//! of the maintenance's components in their language; a restart between
//! the reminder and the start sends nothing twice; herald down across a
//! start sends the start late, once, and drops the reminder whose window
//! has begun; a moved window sends one "rescheduled" notice and re-arms
//! the reminder; a cancellation sends one notice and nothing after it.
//!
//! The calendars are read back with Python's `icalendar`
//! (tests/calendar_apply.py, installed by scripts/test), applying each
//! version of the event as a calendar program does: by UID and SEQUENCE.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use site::{Site, email_config};
use smtp::SmtpServer;

/// How late a notice may arrive: "within seconds".
const LATENESS: Duration = Duration::from_secs(3);

/// The test site with `[maintenance] reminders = [reminders]` and no
/// grace, and three subscribers: two following `dns` (one Swedish), one
/// following `mail` only.
fn site(server: &SmtpServer, reminders: &str) -> Site {
    let config = format!(
        "{}\n[maintenance]\nreminders = [{reminders}]\n",
        email_config(server.port(), "0s")
    );
    let site = Site::new(&config);
    site.ok(&[
        "subscribers",
        "add",
        "dns@example.org",
        "--components",
        "dns",
    ]);
    site.ok(&[
        "subscribers",
        "add",
        "sv@example.org",
        "--components",
        "dns",
        "--lang",
        "sv",
    ]);
    site.ok(&[
        "subscribers",
        "add",
        "mail@example.org",
        "--components",
        "mail",
    ]);
    site
}

/// The current whole second (never in the future, so an update written
/// at it is visible at once), and `seconds` after it.
fn soon(seconds: i64) -> DateTime<Utc> {
    herald::clock::now().trunc_subsecs(0) + chrono::Duration::seconds(seconds)
}

fn written(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// The DNS maintenance from `starts` to `ends`, scheduled at `posted`,
/// with `more` updates (heading, body) after.
fn maintenance(
    posted: DateTime<Utc>,
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    more: &[(String, &str)],
) -> String {
    let mut text = format!(
        "+++\ntitle = \"DNS work\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"{}\"\nends = \"{}\"\n+++\n\n## {} scheduled\nWe upgrade the DNS servers.\n",
        written(starts),
        written(ends),
        written(posted)
    );
    for (heading, body) in more {
        text.push_str(&format!("\n## {heading}\n{body}\n"));
    }
    text
}

/// One message as a recipient got it.
#[derive(Debug, Clone)]
struct Mail {
    subject: String,
    at: DateTime<Utc>,
    text: String,
}

fn mail_to(server: &SmtpServer, address: &str) -> Vec<Mail> {
    server
        .received()
        .iter()
        .filter(|message| message.to.iter().any(|to| to == address))
        .map(|message| {
            let parsed = mailparse::parse_mail(&message.data).unwrap();
            let subject = parsed
                .headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("Subject"))
                .map(|h| h.get_value())
                .unwrap_or_default();
            let text = parsed
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == "text/plain")
                .map(|p| p.get_body().unwrap().replace("\r\n", "\n"))
                .unwrap_or_default();
            Mail {
                subject,
                at: message.at,
                text,
            }
        })
        .collect()
}

fn subjects(mail: &[Mail]) -> Vec<&str> {
    mail.iter().map(|m| m.subject.as_str()).collect()
}

/// The one message to `address` whose subject starts with `prefix`.
fn one<'a>(mail: &'a [Mail], prefix: &str) -> &'a Mail {
    let found: Vec<&Mail> = mail
        .iter()
        .filter(|m| m.subject.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}: {:?}", subjects(mail));
    found[0]
}

/// Arrived at `due` or after, and within [`LATENESS`].
fn on_time(mail: &Mail, due: DateTime<Utc>) {
    let late = mail.at - due;
    eprintln!(
        "{:?}: {} ms after its time",
        mail.subject,
        late.num_milliseconds()
    );
    assert!(
        late >= chrono::Duration::zero() && late.to_std().unwrap() <= LATENESS,
        "{:?} arrived at {}, due {due}",
        mail.subject,
        mail.at
    );
}

fn wait_for_mail(site: &Site, server: &SmtpServer, address: &str, subject: &str) {
    site.wait_for(&format!("{subject:?} to {address}"), || {
        mail_to(server, address)
            .iter()
            .any(|m| m.subject.starts_with(subject))
    });
}

#[test]
fn reminder_start_and_end_each_arrive_once_and_on_time_in_the_readers_language() {
    let server = SmtpServer::start();
    let mut site = site(&server, "\"3s\"");
    site.start();
    let posted = soon(0);
    let (starts, ends) = (
        posted + chrono::Duration::seconds(6),
        posted + chrono::Duration::seconds(9),
    );
    site.write("dns-work.md", &maintenance(posted, starts, ends, &[]));
    wait_for_mail(&site, &server, "sv@example.org", "[Test status] Slutfört");
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Completed");
    site.stop();

    let english = mail_to(&server, "dns@example.org");
    assert_eq!(
        subjects(&english),
        [
            "[Test status] Scheduled: DNS work",
            "[Test status] Reminder: DNS work",
            "[Test status] In progress: DNS work",
            "[Test status] Completed: DNS work",
        ]
    );
    on_time(&english[1], starts - chrono::Duration::seconds(3));
    on_time(&english[2], starts);
    on_time(&english[3], ends);
    assert!(
        english[1].text.contains("The maintenance begins "),
        "{}",
        english[1].text
    );
    let swedish = mail_to(&server, "sv@example.org");
    assert_eq!(
        subjects(&swedish),
        [
            "[Test status] Planerat: DNS work",
            "[Test status] Påminnelse: DNS work",
            "[Test status] Pågår: DNS work",
            "[Test status] Slutfört: DNS work",
        ]
    );
    assert!(
        swedish[3].text.contains("Underhållsfönstret slutade "),
        "{}",
        swedish[3].text
    );
    // Nobody who follows only other components hears of it.
    assert!(mail_to(&server, "mail@example.org").is_empty());
}

#[test]
fn a_restart_between_reminder_and_start_sends_nothing_twice() {
    let server = SmtpServer::start();
    let mut site = site(&server, "\"3s\"");
    site.start();
    let posted = soon(0);
    let (starts, ends) = (
        posted + chrono::Duration::seconds(7),
        posted + chrono::Duration::seconds(9),
    );
    site.write("dns-work.md", &maintenance(posted, starts, ends, &[]));
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Reminder");
    site.stop();
    site.start();
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Completed");
    // And a reload after the end sends nothing either.
    site.reload();
    site.stop();
    let mail = mail_to(&server, "dns@example.org");
    assert_eq!(
        subjects(&mail),
        [
            "[Test status] Scheduled: DNS work",
            "[Test status] Reminder: DNS work",
            "[Test status] In progress: DNS work",
            "[Test status] Completed: DNS work",
        ]
    );
    on_time(&mail[2], starts);
    on_time(&mail[3], ends);
}

#[test]
fn herald_down_across_a_start_sends_it_late_once_and_drops_the_reminder() {
    let server = SmtpServer::start();
    let mut site = site(&server, "\"3s\"");
    site.start();
    let posted = soon(0);
    let (starts, ends) = (
        posted + chrono::Duration::seconds(6),
        posted + chrono::Duration::seconds(60),
    );
    site.write("dns-work.md", &maintenance(posted, starts, ends, &[]));
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Scheduled");
    site.stop();
    // Down across the reminder (due 3 s after posting) and the start.
    let until_after_start = (starts + chrono::Duration::seconds(1) - herald::clock::now())
        .to_std()
        .unwrap_or_default();
    assert_eq!(
        mail_to(&server, "dns@example.org").len(),
        1,
        "the reminder went out before herald stopped: the machine is too slow for this test"
    );
    std::thread::sleep(until_after_start);
    let restarted = herald::clock::now();
    site.start();
    wait_for_mail(
        &site,
        &server,
        "dns@example.org",
        "[Test status] In progress",
    );
    site.stop();
    site.start();
    site.stop();
    let mail = mail_to(&server, "dns@example.org");
    assert_eq!(
        subjects(&mail),
        [
            "[Test status] Scheduled: DNS work",
            "[Test status] In progress: DNS work",
        ]
    );
    let late = &mail[1];
    assert!(late.at >= restarted, "{late:?}");
    // With its real time: when the window began, in the site's zone.
    let began = starts
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .format("began %B %-d, %Y %H:%M")
        .to_string();
    assert!(late.text.contains(&began), "{began:?} in {}", late.text);
}

#[test]
fn a_moved_window_sends_one_rescheduled_notice_and_rearms_the_reminder() {
    let server = SmtpServer::start();
    let mut site = site(&server, "\"3s\"");
    site.start();
    let posted = soon(0);
    let far = (
        posted + chrono::Duration::seconds(40),
        posted + chrono::Duration::seconds(50),
    );
    site.write("dns-work.md", &maintenance(posted, far.0, far.1, &[]));
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Scheduled");
    let calendar_before = site.path("before.ics");
    site.wait_for("the calendar", || {
        site.path("public/maintenance.ics").exists()
    });
    fs::copy(site.path("public/maintenance.ics"), &calendar_before).unwrap();
    // Moved to start in 5 s: one notice at once, the reminder 3 s before
    // the new start.
    let moved = soon(0);
    let (starts, ends) = (
        moved + chrono::Duration::seconds(5),
        moved + chrono::Duration::seconds(7),
    );
    site.write("dns-work.md", &maintenance(posted, starts, ends, &[]));
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Completed");
    site.stop();
    let mail = mail_to(&server, "dns@example.org");
    assert_eq!(
        subjects(&mail),
        [
            "[Test status] Scheduled: DNS work",
            "[Test status] Rescheduled: DNS work",
            "[Test status] Reminder: DNS work",
            "[Test status] In progress: DNS work",
            "[Test status] Completed: DNS work",
        ]
    );
    let rescheduled = one(&mail, "[Test status] Rescheduled");
    assert!(
        rescheduled.text.contains("The maintenance has moved."),
        "{}",
        rescheduled.text
    );
    on_time(&mail[2], starts - chrono::Duration::seconds(3));
    on_time(&mail[3], starts);
    on_time(&mail[4], ends);

    // A calendar program that fetched the calendar before and after the
    // move shows the new window; a stale copy fetched late changes
    // nothing.
    let events = apply(&[
        calendar_before.to_str().unwrap(),
        site.path("public/maintenance.ics").to_str().unwrap(),
        calendar_before.to_str().unwrap(),
    ]);
    let event = &events["dns-work@status.example.com"];
    assert_eq!(
        event["start"],
        starts.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    assert_eq!(event["end"], ends.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    assert_eq!(event["status"], "CONFIRMED");
    assert_eq!(event["sequence"], 1);
}

#[test]
fn a_cancelled_maintenance_sends_one_notice_and_nothing_after() {
    let server = SmtpServer::start();
    let mut site = site(&server, "\"2s\"");
    site.start();
    let posted = soon(0);
    let (starts, ends) = (
        posted + chrono::Duration::seconds(6),
        posted + chrono::Duration::seconds(7),
    );
    site.write("dns-work.md", &maintenance(posted, starts, ends, &[]));
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Scheduled");
    let index_path = site.path("public/index.html");
    let index = || fs::read_to_string(&index_path).unwrap_or_default();
    site.wait_for("the maintenance among the upcoming", || {
        index().contains("class=\"incident phase-upcoming\"")
    });
    let called_off = herald::clock::now()
        .trunc_subsecs(0)
        .max(posted + chrono::Duration::seconds(1));
    site.write(
        "dns-work.md",
        &maintenance(
            posted,
            starts,
            ends,
            &[(format!("{} cancelled", written(called_off)), "Called off.")],
        ),
    );
    wait_for_mail(&site, &server, "dns@example.org", "[Test status] Cancelled");
    // Past the old window's end: no reminder, start or end came.
    let until_after_end = (ends + chrono::Duration::seconds(1) - herald::clock::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(until_after_end);
    site.stop();
    let mail = mail_to(&server, "dns@example.org");
    assert_eq!(
        subjects(&mail),
        [
            "[Test status] Scheduled: DNS work",
            "[Test status] Cancelled: DNS work",
        ]
    );
    let page = fs::read_to_string(site.path("public/incidents/dns-work.html")).unwrap();
    assert!(page.contains("Cancelled"), "{page}");
    // Out of the upcoming list as soon as it was cancelled.
    assert!(!index().contains("phase-upcoming"), "{}", index());
}

/// The events a calendar program shows after fetching `calendars` in
/// order (tests/calendar_apply.py).
fn apply(calendars: &[&str]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/calendar_apply.py");
    let output = Command::new("python3")
        .arg(script)
        .args(calendars)
        .output()
        .expect("python3 runs (scripts/test installs its icalendar package)");
    assert!(
        output.status.success(),
        "tests/calendar_apply.py failed (scripts/test installs Python's icalendar): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn calendars_move_and_cancel_events_in_place_as_a_calendar_program_applies_them() {
    let server = SmtpServer::start();
    let site = site(&server, "");
    let at = |text: &str| -> DateTime<Utc> { text.parse().unwrap() };
    let posted = at("2026-12-01T10:00:00Z");
    let snapshot = |name: &str| {
        site.ok(&["build"]);
        let copy = site.path(name);
        fs::copy(site.path("public/maintenance.ics"), &copy).unwrap();
        fs::copy(
            site.path("public/components/dns.ics"),
            site.path(&format!("dns-{name}")),
        )
        .unwrap();
        copy.to_str().unwrap().to_owned()
    };
    let first = (at("2026-12-10T21:00:00Z"), at("2026-12-10T23:00:00Z"));
    site.write("dns-work.md", &maintenance(posted, first.0, first.1, &[]));
    let planned = snapshot("planned.ics");
    let moved = (at("2026-12-11T21:00:00Z"), at("2026-12-11T22:30:00Z"));
    site.write("dns-work.md", &maintenance(posted, moved.0, moved.1, &[]));
    let rescheduled = snapshot("moved.ics");
    // Building again changes nothing: the move was counted once.
    let again = snapshot("again.ics");
    assert_eq!(fs::read(&again).unwrap(), fs::read(&rescheduled).unwrap());
    site.write(
        "dns-work.md",
        &maintenance(
            posted,
            moved.0,
            moved.1,
            &[(
                "2026-12-02 09:00Z cancelled".to_owned(),
                "Not needed after all.",
            )],
        ),
    );
    let cancelled = snapshot("cancelled.ics");

    let events = apply(&[&planned, &rescheduled]);
    let event = &events["dns-work@status.example.com"];
    assert_eq!(event["start"], "2026-12-11T21:00:00Z");
    assert_eq!(event["end"], "2026-12-11T22:30:00Z");
    assert_eq!(event["status"], "CONFIRMED");
    assert_eq!(event["sequence"], 1);
    // Cancelled, and an old copy fetched after that changes nothing.
    let events = apply(&[&planned, &rescheduled, &cancelled, &planned]);
    let event = &events["dns-work@status.example.com"];
    assert_eq!(event["status"], "CANCELLED");
    assert_eq!(event["start"], "2026-12-11T21:00:00Z");
    assert_eq!(event["sequence"], 2);

    // The component's calendar holds the same event; another component's
    // holds none.
    let dns = apply(&[site.path("dns-cancelled.ics").to_str().unwrap()]);
    assert_eq!(dns, events);
    let mail = apply(&[site.path("public/components/mail.ics").to_str().unwrap()]);
    assert_eq!(mail, serde_json::json!({}));
    // Linked from the status page.
    let index = fs::read_to_string(site.path("public/index.html")).unwrap();
    assert!(index.contains("href=\"components/dns.ics\""), "{index}");
}
