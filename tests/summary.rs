//! `status.json` / `api/v2/summary.json`: the Statuspage-shaped summary,
//! parsed back with serde_json and checked field by field at fixed `now`s.
//!
//! The incident texts leave a blank line after each `##` heading.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};
use herald::config::{self, Config};
use herald::model::IncidentId;
use herald::render::api::{herald_status, summary};
use herald::render::{Revisions, Site, Templates};
use serde_json::{Value, json};

#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/corpus.rs"]
mod support_corpus;
use support_corpus::corpus;

/// Web hosting and mail in the group "Hosting", DNS alone.
const COMPONENTS: &str = r#"
[[components]]
id = "web"
name = "Web hosting"
group = "Hosting"

[[components]]
id = "dns"
name = "DNS"

[[components]]
id = "mail"
name = "Mail"
group = "Hosting"
"#;

/// 10:00 and 10:30 local (CET, UTC+1) on 2 March 2026, a `components:`
/// line at 10:30, an update without status at 11:15, resolved at 12:00.
const MAIL_DELAYS: &str = r#"+++
title = "Mail delays"
components = ["mail", "web"]
severity = "major"
+++

Mail was slow for an afternoon.

## 2026-03-02 10:00 investigating

Mail is slow.

## 2026-03-02 10:30 identified

components: mail=major-outage, web=degraded
A disk is failing.

## 2026-03-02 11:15

Still *working* on it.

## 2026-03-02 12:00 resolved

All good.
"#;

/// The window is 22:00–02:00 local (21:00–01:00 UTC).
const DNS_UPGRADE: &str = r#"+++
title = "DNS upgrade"
components = ["dns"]
severity = "minor"
kind = "maintenance"
starts = "2026-12-10 22:00"
ends = "2026-12-11 02:00"
+++

## 2026-11-20 10:00 scheduled

We upgrade the name servers.
"#;

/// An incident file: `title` on `components` at `severity`, then each
/// `(heading, body)` update, with a blank line after each heading.
fn incident(title: &str, components: &[&str], severity: &str, updates: &[(&str, &str)]) -> String {
    let mut text = format!(
        "+++\ntitle = \"{title}\"\ncomponents = {components:?}\nseverity = \"{severity}\"\n+++\n"
    );
    for (heading, body) in updates {
        text.push_str(&format!("\n## {heading}\n\n{body}\n"));
    }
    text
}

fn config() -> Config {
    let text = site_toml::site("Example Hosting status") + COMPONENTS;
    config::parse(Path::new("herald.toml"), &text).expect("test configuration is valid")
}

fn instant(text: &str) -> DateTime<Utc> {
    text.parse().expect("test instant is RFC 3339")
}

fn render_bytes(files: &[(&str, &str)], revisions: &Revisions, now: &str) -> Vec<u8> {
    let config = config();
    let corpus = corpus(&config, files);
    let templates = Templates::builtin();
    let moves = herald::render::Moves::new();
    let site = Site::new(&config, &templates, revisions, &moves, instant(now));
    herald_status(&site, &corpus)
}

fn render(files: &[(&str, &str)], now: &str) -> Value {
    let bytes = render_bytes(files, &HashMap::new(), now);
    serde_json::from_slice(&bytes).expect("summary is JSON")
}

/// `id → status` of every entry of `components`.
fn statuses(document: &Value) -> Vec<(String, String)> {
    document["components"]
        .as_array()
        .expect("components is an array")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|item| item["id"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn severity_holds_components_until_a_components_line() {
    // 10:15 local: only the first update is out.
    let document = render(&[("mail-delays.md", MAIL_DELAYS)], "2026-03-02T09:15:00Z");
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "partial_outage"),
            ("web", "partial_outage"),
            ("mail", "partial_outage"),
            ("dns", "operational"),
        ])
    );
    assert_eq!(
        document["status"],
        json!({"indicator": "major", "description": "Partial System Outage"})
    );
    assert_eq!(ids(&document["incidents"]), ["mail-delays"]);
    assert_eq!(document["incidents"][0]["status"], "investigating");
}

#[test]
fn components_line_sets_statuses_and_is_reported_per_update() {
    // 11:45 local: three updates out, the resolution not yet.
    let document = render(&[("mail-delays.md", MAIL_DELAYS)], "2026-03-02T10:45:00Z");
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "major_outage"),
            ("web", "degraded_performance"),
            ("mail", "major_outage"),
            ("dns", "operational"),
        ])
    );
    assert_eq!(
        document["status"],
        json!({"indicator": "critical", "description": "Major System Outage"})
    );
    assert_eq!(
        document["page"],
        json!({
            "id": "status.example.com",
            "name": "Example Hosting status",
            "url": "https://status.example.com",
            "time_zone": "Europe/Stockholm",
            "updated_at": "2026-03-02T11:15:00.000+01:00",
        })
    );

    let incident = &document["incidents"][0];
    assert_eq!(incident["id"], "mail-delays");
    assert_eq!(incident["name"], "Mail delays");
    assert_eq!(incident["status"], "identified");
    assert_eq!(incident["impact"], "major");
    assert_eq!(incident["created_at"], "2026-03-02T10:00:00.000+01:00");
    assert_eq!(incident["started_at"], "2026-03-02T10:00:00.000+01:00");
    assert_eq!(incident["updated_at"], "2026-03-02T11:15:00.000+01:00");
    assert_eq!(incident["monitoring_at"], Value::Null);
    assert_eq!(incident["resolved_at"], Value::Null);
    assert_eq!(
        incident["shortlink"],
        "https://status.example.com/incidents/mail-delays.html"
    );
    assert_eq!(incident["page_id"], "status.example.com");
    assert_eq!(ids(&incident["components"]), ["mail", "web"]);
    assert_eq!(incident["components"][0]["status"], "major_outage");

    // Newest first, ids from the incident id and the UTC instant.
    let updates = &incident["incident_updates"];
    assert_eq!(
        ids(updates),
        [
            "mail-delays-20260302T101500Z",
            "mail-delays-20260302T093000Z",
            "mail-delays-20260302T090000Z",
        ]
    );
    assert_eq!(
        updates[0],
        json!({
            "id": "mail-delays-20260302T101500Z",
            "status": "identified",
            "body": "Still *working* on it.",
            "incident_id": "mail-delays",
            "created_at": "2026-03-02T11:15:00.000+01:00",
            "updated_at": "2026-03-02T11:15:00.000+01:00",
            "display_at": "2026-03-02T11:15:00.000+01:00",
            "affected_components": null,
            "deliver_notifications": true,
            "custom_tweet": null,
            "tweet_id": null,
        })
    );
    assert_eq!(updates[1]["body"], "A disk is failing.");
    assert_eq!(
        updates[1]["affected_components"],
        json!([
            {"code": "mail", "name": "Mail", "old_status": "partial_outage", "new_status": "major_outage"},
            {"code": "web", "name": "Web hosting", "old_status": "partial_outage", "new_status": "degraded_performance"},
        ])
    );
    assert_eq!(updates[2]["status"], "investigating");
    assert_eq!(
        updates[2]["affected_components"],
        json!([
            {"code": "mail", "name": "Mail", "old_status": "operational", "new_status": "partial_outage"},
            {"code": "web", "name": "Web hosting", "old_status": "operational", "new_status": "partial_outage"},
        ])
    );
}

#[test]
fn resolved_incidents_are_not_listed_and_components_recover() {
    let document = render(&[("mail-delays.md", MAIL_DELAYS)], "2026-03-02T11:00:00Z");
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "operational"),
            ("web", "operational"),
            ("mail", "operational"),
            ("dns", "operational"),
        ])
    );
    assert_eq!(document["incidents"], json!([]));
    assert_eq!(
        document["status"],
        json!({"indicator": "none", "description": "All Systems Operational"})
    );
    assert_eq!(
        document["page"]["updated_at"],
        "2026-03-02T12:00:00.000+01:00"
    );
    let mail = &document["components"][2];
    assert_eq!(mail["id"], "mail");
    assert_eq!(mail["updated_at"], "2026-03-02T12:00:00.000+01:00");
}

#[test]
fn only_unresolved_published_incidents_are_listed_latest_update_first() {
    let open_early = incident(
        "Slow web",
        &["web"],
        "minor",
        &[
            ("2026-03-03 08:00 investigating", "Slow."),
            ("2026-03-03 09:00 monitoring", "A fix is out."),
        ],
    );
    let open_late = incident(
        "DNS errors",
        &["dns"],
        "critical",
        &[("2026-03-03 08:30 investigating", "Errors.")],
    );
    let draft = r#"+++
title = "Draft"
components = ["dns"]
severity = "critical"
draft = true
+++

## 2026-03-03 08:45 investigating

Not yet.
"#;
    let document = render(
        &[
            ("mail-delays.md", MAIL_DELAYS),
            ("slow-web.md", &open_early),
            ("dns-errors.md", &open_late),
            ("draft.md", draft),
        ],
        "2026-03-03T12:00:00Z",
    );
    assert_eq!(ids(&document["incidents"]), ["slow-web", "dns-errors"]);
    let slow = &document["incidents"][0];
    assert_eq!(slow["status"], "monitoring");
    assert_eq!(slow["monitoring_at"], "2026-03-03T09:00:00.000+01:00");
    assert_eq!(slow["impact"], "minor");
    assert_eq!(document["incidents"][1]["impact"], "critical");
    assert_eq!(
        document["status"],
        json!({"indicator": "critical", "description": "Major System Outage"})
    );
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "degraded_performance"),
            ("web", "degraded_performance"),
            ("mail", "operational"),
            ("dns", "major_outage"),
        ])
    );
}

#[test]
fn an_open_incident_counts_even_with_every_component_operational() {
    let text = incident(
        "Web errors",
        &["web"],
        "minor",
        &[
            ("2026-03-03 08:00 investigating", "Errors."),
            (
                "2026-03-03 09:00 monitoring",
                "components: web=operational\nA fix is out; we are watching.",
            ),
        ],
    );
    let document = render(&[("web-errors.md", &text)], "2026-03-03T09:00:00Z");
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "operational"),
            ("web", "operational"),
            ("mail", "operational"),
            ("dns", "operational"),
        ])
    );
    assert_eq!(
        document["status"],
        json!({"indicator": "minor", "description": "Minor Service Outage"})
    );
    assert_eq!(ids(&document["incidents"]), ["web-errors"]);
    assert_eq!(
        document["incidents"][0]["incident_updates"][0]["affected_components"],
        json!([{"code": "web", "name": "Web hosting", "old_status": "degraded_performance", "new_status": "operational"}])
    );
}

#[test]
fn a_component_shows_the_worst_status_any_incident_holds_it_at() {
    let outage = incident(
        "Web down",
        &["web"],
        "critical",
        &[("2026-12-10 21:00 investigating", "Down.")],
    );
    let slow = incident(
        "Web slow",
        &["web", "dns"],
        "minor",
        &[("2026-12-10 21:30 investigating", "Slow.")],
    );
    // Ids sort "a-…", "b-…", "dns-upgrade": the worst comes first, the
    // maintenance last.
    let document = render(
        &[
            ("a-web-down.md", &outage),
            ("b-web-slow.md", &slow),
            ("dns-upgrade.md", DNS_UPGRADE),
        ],
        "2026-12-10T21:30:00Z",
    );
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "major_outage"),
            ("web", "major_outage"),
            ("mail", "operational"),
            ("dns", "degraded_performance"),
        ])
    );
}

#[test]
fn maintenance_is_operational_until_the_window_opens() {
    let files = [("dns-upgrade.md", DNS_UPGRADE)];
    let before = render(&files, "2026-12-10T20:59:59Z");
    assert_eq!(
        statuses(&before),
        pairs(&[
            ("group-hosting", "operational"),
            ("web", "operational"),
            ("mail", "operational"),
            ("dns", "operational"),
        ])
    );
    assert_eq!(
        before["status"],
        json!({"indicator": "none", "description": "All Systems Operational"})
    );
    assert_eq!(before["incidents"], json!([]));
    let maintenance = &before["scheduled_maintenances"][0];
    assert_eq!(maintenance["id"], "dns-upgrade");
    assert_eq!(maintenance["status"], "scheduled");
    assert_eq!(maintenance["impact"], "maintenance");
    assert_eq!(
        maintenance["scheduled_for"],
        "2026-12-10T22:00:00.000+01:00"
    );
    assert_eq!(
        maintenance["scheduled_until"],
        "2026-12-11T02:00:00.000+01:00"
    );
    assert_eq!(maintenance["created_at"], "2026-11-20T10:00:00.000+01:00");
    assert_eq!(maintenance["components"][0]["status"], "operational");
    assert_eq!(
        maintenance["incident_updates"][0]["affected_components"],
        Value::Null
    );
    assert_eq!(
        before["page"]["updated_at"],
        "2026-11-20T10:00:00.000+01:00"
    );
}

#[test]
fn maintenance_shows_during_its_window() {
    let document = render(&[("dns-upgrade.md", DNS_UPGRADE)], "2026-12-10T21:00:00Z");
    assert_eq!(
        statuses(&document),
        pairs(&[
            ("group-hosting", "operational"),
            ("web", "operational"),
            ("mail", "operational"),
            ("dns", "under_maintenance"),
        ])
    );
    assert_eq!(
        document["status"],
        json!({"indicator": "maintenance", "description": "Service Under Maintenance"})
    );
    // Still marked `scheduled` in the file; Statuspage would have moved it on.
    let maintenance = &document["scheduled_maintenances"][0];
    assert_eq!(maintenance["status"], "in_progress");
    assert_eq!(maintenance["incident_updates"][0]["status"], "scheduled");
    assert_eq!(document["incidents"], json!([]));
    // The window opening is the latest change.
    assert_eq!(
        document["page"]["updated_at"],
        "2026-12-10T22:00:00.000+01:00"
    );
}

#[test]
fn maintenance_leaves_the_list_when_over_or_completed() {
    let after = render(&[("dns-upgrade.md", DNS_UPGRADE)], "2026-12-11T01:00:00Z");
    assert_eq!(after["scheduled_maintenances"], json!([]));
    assert_eq!(after["components"][3]["status"], "operational");

    let completed = format!(
        "{DNS_UPGRADE}\n## 2026-12-10 23:30 completed\n\nDone early.\n\n## 2026-12-10 22:05 in-progress\n\nStarted.\n"
    );
    let during = render(&[("dns-upgrade.md", &completed)], "2026-12-10T22:00:00Z");
    let maintenance = &during["scheduled_maintenances"][0];
    assert_eq!(maintenance["status"], "in_progress");
    assert_eq!(
        ids(&maintenance["incident_updates"]),
        [
            "dns-upgrade-20261210T210500Z",
            "dns-upgrade-20261120T090000Z"
        ]
    );
    assert_eq!(maintenance["incident_updates"][0]["status"], "in_progress");
    let done = render(&[("dns-upgrade.md", &completed)], "2026-12-10T22:30:00Z");
    assert_eq!(done["scheduled_maintenances"], json!([]));
    assert_eq!(done["components"][3]["status"], "operational");
    assert_eq!(
        done["status"],
        json!({"indicator": "none", "description": "All Systems Operational"})
    );
}

#[test]
fn groups_are_components_with_members() {
    let document = render(&[], "2026-01-01T00:00:00Z");
    let components = document["components"].as_array().expect("an array");
    assert_eq!(
        ids(&document["components"]),
        ["group-hosting", "web", "mail", "dns"]
    );
    assert_eq!(components[0]["group"], true);
    assert_eq!(components[0]["name"], "Hosting");
    assert_eq!(components[0]["components"], json!(["web", "mail"]));
    assert_eq!(components[0]["group_id"], Value::Null);
    assert_eq!(components[1]["group"], false);
    assert_eq!(components[1]["group_id"], "group-hosting");
    assert_eq!(components[2]["group_id"], "group-hosting");
    assert_eq!(components[3]["group_id"], Value::Null);
    let positions: Vec<&Value> = components.iter().map(|c| &c["position"]).collect();
    assert_eq!(positions, [&json!(1), &json!(1), &json!(2), &json!(2)]);
    // Only groups list members.
    assert!(components[1].get("components").is_none());
    // No data at all: the epoch, not the clock.
    assert_eq!(
        document["page"]["updated_at"],
        "1970-01-01T01:00:00.000+01:00"
    );
}

#[test]
fn shape_is_statuspages() {
    let open = incident(
        "Web errors",
        &["web"],
        "minor",
        &[("2026-12-01 08:00", "Errors.")],
    );
    let document = render(
        &[("web-errors.md", &open), ("dns-upgrade.md", DNS_UPGRADE)],
        "2026-12-01T12:00:00Z",
    );
    // A first update without a status counts as investigating.
    assert_eq!(document["incidents"][0]["status"], "investigating");
    let keys = |value: &Value| -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    };
    let set =
        |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| (*s).to_owned()).collect() };
    assert_eq!(
        keys(&document),
        set(&[
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status",
            "schema_version",
            "uptime",
        ])
    );
    assert_eq!(document["schema_version"], 1);
    // api/v2/summary.json: exactly Statuspage's fields, the same values.
    let config = config();
    let corpus = corpus(
        &config,
        &[("web-errors.md", &open), ("dns-upgrade.md", DNS_UPGRADE)],
    );
    let templates = Templates::builtin();
    let (revisions, moves) = (HashMap::new(), herald::render::Moves::new());
    let site = Site::new(
        &config,
        &templates,
        &revisions,
        &moves,
        instant("2026-12-01T12:00:00Z"),
    );
    let statuspage: Value = serde_json::from_slice(&summary(&site, &corpus)).unwrap();
    assert_eq!(
        keys(&statuspage),
        set(&[
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status"
        ])
    );
    let mut trimmed = document.clone();
    let object = trimmed.as_object_mut().unwrap();
    object.remove("schema_version");
    object.remove("uptime");
    assert_eq!(statuspage, trimmed);
    assert_eq!(
        keys(&document["components"][1]),
        set(&[
            "id",
            "name",
            "status",
            "created_at",
            "updated_at",
            "position",
            "description",
            "showcase",
            "start_date",
            "group_id",
            "page_id",
            "group",
            "only_show_if_degraded",
        ])
    );
    let incident_keys = [
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "impact",
        "shortlink",
        "started_at",
        "page_id",
        "incident_updates",
        "components",
    ];
    assert_eq!(keys(&document["incidents"][0]), set(&incident_keys));
    let mut maintenance_keys = incident_keys.to_vec();
    maintenance_keys.extend(["scheduled_for", "scheduled_until"]);
    assert_eq!(
        keys(&document["scheduled_maintenances"][0]),
        set(&maintenance_keys)
    );
}

#[test]
fn times_are_rfc3339_with_the_site_offset() {
    let summer = incident(
        "Summer outage",
        &["web"],
        "minor",
        &[("2026-07-01 12:00 investigating", "Down.")],
    );
    let document = render(&[("summer.md", &summer)], "2026-07-01T12:00:00Z");
    let incident = &document["incidents"][0];
    assert_eq!(incident["created_at"], "2026-07-01T12:00:00.000+02:00");
    let parsed = DateTime::parse_from_rfc3339(incident["created_at"].as_str().expect("a string"))
        .expect("RFC 3339");
    assert_eq!(parsed, instant("2026-07-01T10:00:00Z"));

    // Every `*_at`, `scheduled_*` and `start_date` value anywhere is null
    // or RFC 3339 with an explicit offset.
    let document = render(
        &[
            ("mail-delays.md", MAIL_DELAYS),
            ("dns-upgrade.md", DNS_UPGRADE),
        ],
        "2026-12-10T21:30:00Z",
    );
    let mut checked = 0;
    let mut stack = vec![&document];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, field) in map {
                    let is_time = key.ends_with("_at")
                        || key.starts_with("scheduled_") && key != "scheduled_maintenances"
                        || key == "start_date";
                    if is_time && let Some(text) = field.as_str() {
                        assert!(
                            DateTime::parse_from_rfc3339(text).is_ok()
                                && (text.ends_with("+01:00") || text.ends_with("+02:00")),
                            "{key}: {text}"
                        );
                        checked += 1;
                    } else if is_time {
                        assert!(field.is_null(), "{key}: {field}");
                    }
                    stack.push(field);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    assert!(checked >= 15, "only {checked} times found");
}

#[test]
fn edits_move_updated_at_but_not_created_at() {
    let mut revisions: Revisions = HashMap::new();
    let id = IncidentId::new("mail-delays").expect("valid id");
    revisions.insert(
        (id, instant("2026-03-02T09:30:00Z")),
        instant("2026-03-02T10:40:00Z"),
    );
    let bytes = render_bytes(
        &[("mail-delays.md", MAIL_DELAYS)],
        &revisions,
        "2026-03-02T10:45:00Z",
    );
    let document: Value = serde_json::from_slice(&bytes).expect("JSON");
    let incident = &document["incidents"][0];
    let edited = &incident["incident_updates"][1];
    assert_eq!(edited["created_at"], "2026-03-02T10:30:00.000+01:00");
    assert_eq!(edited["updated_at"], "2026-03-02T11:40:00.000+01:00");
    assert_eq!(incident["updated_at"], "2026-03-02T11:40:00.000+01:00");
    assert_eq!(
        document["page"]["updated_at"],
        "2026-03-02T11:40:00.000+01:00"
    );
}

#[test]
fn output_is_deterministic_and_ends_with_a_newline() {
    let files = [
        ("mail-delays.md", MAIL_DELAYS),
        ("dns-upgrade.md", DNS_UPGRADE),
    ];
    let first = render_bytes(&files, &HashMap::new(), "2026-03-02T10:45:00Z");
    let second = render_bytes(&files, &HashMap::new(), "2026-03-02T10:45:00Z");
    assert_eq!(first, second);
    assert_eq!(first.last(), Some(&b'\n'));
    // Listing the files in another order changes nothing.
    let reversed = [files[1], files[0]];
    assert_eq!(
        render_bytes(&reversed, &HashMap::new(), "2026-03-02T10:45:00Z"),
        first
    );
}
