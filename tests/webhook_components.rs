//! Statuspage's component webhook end to end: `herald run` posting
//! `component_update`s to a real HTTP receiver on 127.0.0.1, one per JSON
//! webhook per followed component whose status an update changes, beside
//! the incident's own post; compared field by field with the shape
//! Statuspage documents.

#[path = "support/hooks.rs"]
mod hooks;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::time::Duration;

use hooks::{add_changes_hook, add_hook, config, same_shape, verify_with_python, write_storage};
use receiver::Receiver;
use serde_json::Value;
use site::{Site, recent};

/// Statuspage's component webhook, with the fields and types of the one
/// its documentation shows (values made up here).
const STATUSPAGE_COMPONENT_EXAMPLE: &str =
    include_str!("webhooks/statuspage-component-example.json");

#[test]
fn a_component_status_change_posts_statuspages_component_update_once_per_follower() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    let secret = add_hook(&site, &receiver.url("/mail"), "json", "mail");
    add_hook(&site, &receiver.url("/all"), "json", "*");
    add_hook(&site, &receiver.url("/dns"), "json", "dns");
    add_hook(&site, &receiver.url("/slack"), "slack", "mail");
    site.start();
    let updates = [
        (
            format!("{} investigating", recent(4)),
            "components: mail=partial-outage\nDisks.".to_owned(),
        ),
        (format!("{} update", recent(3)), "Still disks.".to_owned()),
        (
            format!("{} identified", recent(2)),
            "components: mail=major-outage, web=degraded\nWorse.".to_owned(),
        ),
        (
            format!("{} identified", recent(1)),
            "notify: no\ncomponents: mail=degraded, web=degraded\nQuietly better.".to_owned(),
        ),
    ];
    let write = |count: usize| write_storage(&site, "\"mail\", \"web\"", &updates, count);
    // Sorted: posts to one receiver may arrive in any order.
    let components = |path: &str| -> Vec<(String, String, String)> {
        receiver
            .to(path)
            .iter()
            .filter(|r| r.header("idempotency-key").contains("/component/"))
            .map(|r| {
                let body = r.json();
                let update = &body["component_update"];
                (
                    update["component_id"].as_str().unwrap().to_owned(),
                    update["old_status"].as_str().unwrap().to_owned(),
                    update["new_status"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    let incidents = |path: &str| {
        receiver
            .to(path)
            .iter()
            .filter(|r| !r.header("idempotency-key").contains("/component/"))
            .count()
    };
    let triple = |id: &str, old: &str, new: &str| (id.to_owned(), old.to_owned(), new.to_owned());

    // The first update: mail goes down; web joins at the severity's
    // status (a major incident without a line for it holds it at
    // partial outage).
    write(1);
    site.wait_for("the first posts", || receiver.to("/all").len() == 3);
    site.wait_for("the mail follower", || receiver.to("/mail").len() == 2);
    let first_all = components("/all");
    assert_eq!(
        first_all,
        [
            triple("mail", "operational", "partial_outage"),
            triple("web", "operational", "partial_outage")
        ]
    );
    assert_eq!(components("/mail"), [first_all[0].clone()]);

    // Statuspage's shape, field by field, signed like any other post.
    let post = receiver
        .to("/mail")
        .into_iter()
        .find(|r| r.header("idempotency-key").contains("/component/"))
        .unwrap();
    assert!(
        post.header("idempotency-key").starts_with("storage/")
            && post.header("idempotency-key").ends_with("/component/mail"),
        "{}",
        post.header("idempotency-key")
    );
    verify_with_python(&secret, post.header("herald-signature"), &post.body);
    let body = post.json();
    let example: Value = serde_json::from_str(STATUSPAGE_COMPONENT_EXAMPLE).unwrap();
    let mut differences = Vec::new();
    same_shape(&example, &body, "", &mut differences);
    assert_eq!(differences, Vec::<String>::new(), "{body}");
    let mut top: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    top.sort_unstable();
    assert_eq!(top, ["component", "component_update", "meta", "page"]);
    assert!(
        body["meta"]["unsubscribe"]
            .as_str()
            .unwrap()
            .starts_with("https://status.example.com/unsubscribe/"),
        "{body}"
    );
    assert_eq!(body["page"]["id"], "status.example.com");
    assert_eq!(body["component"]["id"], "mail");
    assert_eq!(body["component"]["name"], "Mail");
    assert_eq!(body["component"]["status"], "partial_outage");
    assert_eq!(body["component_update"]["component_id"], "mail");

    // An update without a component change: one incident post each, no
    // component update.
    write(2);
    site.wait_for("the second update", || receiver.to("/all").len() == 4);
    site.wait_for("the second update", || receiver.to("/mail").len() == 3);
    // A change of both: a post per changed component each follower
    // follows. The quiet update after it changes mail again and reaches
    // nobody.
    write(4);
    site.wait_for("the third update", || receiver.to("/all").len() == 7);
    site.wait_for("the third update", || receiver.to("/mail").len() == 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(incidents("/all"), 3);
    assert_eq!(incidents("/mail"), 3);
    assert_eq!(
        components("/all"),
        [
            triple("mail", "operational", "partial_outage"),
            triple("mail", "partial_outage", "major_outage"),
            triple("web", "operational", "partial_outage"),
            triple("web", "partial_outage", "degraded_performance"),
        ]
    );
    assert_eq!(
        components("/mail"),
        [
            triple("mail", "operational", "partial_outage"),
            triple("mail", "partial_outage", "major_outage"),
        ]
    );
    // Not following a changed component, or not a JSON receiver: none.
    assert!(receiver.to("/dns").is_empty());
    assert_eq!(receiver.to("/slack").len(), 3);
    assert_eq!(components("/slack"), []);
    // Each component update once, with its own key.
    let mut keys: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| format!("{} {}", r.path, r.header("idempotency-key")))
        .collect();
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), count, "{keys:?}");
    site.stop();
}

#[test]
fn component_updates_are_retried_under_their_key_and_reach_who_asked_for_changes_only() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    // The first two posts (the incident's and mail's component update,
    // in either order) are answered 503.
    receiver.script(
        "/flaky",
        vec![
            receiver::Answer::status(503, "busy"),
            receiver::Answer::status(503, "busy"),
        ],
    );
    add_hook(&site, &receiver.url("/flaky"), "json", "mail");
    add_changes_hook(&site, &receiver.url("/changes"), "mail");
    site.start();
    let updates = [(
        format!("{} investigating", recent(1)),
        "components: mail=degraded\nSlow.".to_owned(),
    )];
    write_storage(&site, "\"mail\"", &updates, 1);
    site.wait_for("both posts retried and delivered", || {
        receiver.to("/flaky").len() == 4
    });
    site.wait_for("an empty outbox", || {
        site.ok(&["outbox"])
            .starts_with("pending 0, retrying 0, failed 0, sent 4")
    });
    // Each key twice: the failed try and the retry, the same body.
    let mut keys: Vec<String> = receiver
        .to("/flaky")
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys[0], keys[1], "{keys:?}");
    assert_eq!(keys[2], keys[3], "{keys:?}");
    assert!(keys[2].ends_with("/component/mail"), "{keys:?}");
    let component: Vec<Vec<u8>> = receiver
        .to("/flaky")
        .into_iter()
        .filter(|r| r.header("idempotency-key") == keys[2])
        .map(|r| r.body)
        .collect();
    assert_eq!(component[0], component[1]);
    // A component's change is a change: who asked for changes only gets
    // it too.
    let changes: Vec<String> = receiver
        .to("/changes")
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes.iter().any(|key| key.ends_with("/component/mail")),
        "{changes:?}"
    );
    site.stop();
}

/// A maintenance window's start and end change its components' status
/// with no update in the file: a JSON webhook following them gets a
/// `component_update` at each edge (operational → under maintenance, and
/// back), under the notice's own key, once.
#[test]
fn a_maintenance_windows_start_and_end_post_component_updates() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    add_hook(&site, &receiver.url("/dns"), "json", "dns");
    add_hook(&site, &receiver.url("/mail"), "json", "mail");
    site.start();
    let written =
        |instant: chrono::DateTime<chrono::Utc>| instant.format("%Y-%m-%d %H:%M:%SZ").to_string();
    let now = herald::clock::now();
    let starts = now + chrono::TimeDelta::seconds(4);
    let ends = now + chrono::TimeDelta::seconds(7);
    site.write(
        "dns-work.md",
        &format!(
            "+++\ntitle = \"DNS work\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"{}\"\nends = \"{}\"\n+++\n\n## {} scheduled\nWe upgrade the DNS servers.\n",
            written(starts),
            written(ends),
            written(now - chrono::TimeDelta::seconds(1))
        ),
    );
    let updates = || {
        receiver
            .to("/dns")
            .iter()
            .filter(|r| r.header("idempotency-key").contains("/component/"))
            .map(|r| {
                let body = r.json();
                let update = &body["component_update"];
                (
                    r.header("idempotency-key").to_owned(),
                    update["old_status"].as_str().unwrap().to_owned(),
                    update["new_status"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    site.wait_for("the component updates of both edges", || {
        updates().len() >= 2
    });
    // Anything late would have arrived with the end's.
    std::thread::sleep(Duration::from_millis(500));
    let mut got = updates();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    let started = got
        .iter()
        .find(|(key, _, _)| key.contains("/started/component/dns"))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(
        (started.1.as_str(), started.2.as_str()),
        ("operational", "under_maintenance"),
        "{got:?}"
    );
    let completed = got
        .iter()
        .find(|(key, _, _)| key.contains("/completed/component/dns"))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(
        (completed.1.as_str(), completed.2.as_str()),
        ("under_maintenance", "operational"),
        "{got:?}"
    );
    // The mail follower gets no component update for the DNS window.
    let mail: Vec<String> = receiver
        .to("/mail")
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    assert!(
        mail.iter().all(|key| !key.contains("/component/")),
        "{mail:?}"
    );
    site.stop();
}
