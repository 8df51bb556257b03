//! Statuspage's public API v2 as herald writes it, read over HTTP on
//! loopback by `statuspage.io`, a client library for Statuspage's own
//! pages published by others on npm, and checked against the types that
//! library declares (`tests/statuspage-client/check.js`). Needs Node.js and
//! the library in `tests/statuspage-client/node_modules`; `scripts/test`
//! installs both when missing (`npm install --prefix
//! tests/statuspage-client`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/static_files.rs"]
mod static_files;
#[path = "support/wait.rs"]
mod wait;

use site::Site;

/// A heading or front-matter time `hours` from now (negative: ago), in
/// UTC.
fn at(hours: i64) -> String {
    (herald::clock::now() + chrono::Duration::hours(hours))
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

fn incident(title: &str, components: &str, severity: &str, updates: &[(i64, &str)]) -> String {
    let mut text = format!(
        "+++\ntitle = \"{title}\"\ncomponents = [{components}]\nseverity = \"{severity}\"\n+++\n"
    );
    for (hours, status) in updates {
        text += &format!("\n## {} {status}\n\nText of {status}.\n", at(*hours));
    }
    text
}

fn maintenance(title: &str, starts: i64, ends: i64, updates: &[(i64, &str)]) -> String {
    let mut text = format!(
        "+++\ntitle = \"{title}\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"{}\"\nends = \"{}\"\n+++\n",
        at(starts),
        at(ends)
    );
    for (hours, status) in updates {
        text += &format!("\n## {} {status}\n\nText of {status}.\n", at(*hours));
    }
    text
}

fn client_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/statuspage-client"
    ))
}

/// `(id, status)` of each listed item, by document.
type Listed = BTreeMap<String, Vec<(String, String)>>;

fn read_with_client(base: &str) -> Listed {
    let dir = client_dir();
    assert!(
        dir.join("node_modules/statuspage.io").is_dir()
            && dir.join("node_modules/typescript").is_dir(),
        "the Statuspage client library is missing: run scripts/test, or \
         `npm install --prefix tests/statuspage-client` (needs Node.js and npm)"
    );
    let output = Command::new("node")
        .arg("check.js")
        .arg(base)
        .current_dir(dir)
        .output()
        .expect("Node.js (`node`) runs; scripts/test installs it when missing");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client library's types do not fit:\n{stderr}\n{stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn ids(listed: &Listed, document: &str) -> Vec<String> {
    listed[document].iter().map(|(id, _)| id.clone()).collect()
}

#[test]
fn a_statuspage_client_library_reads_every_document_with_its_declared_types() {
    let config = site_toml::site("Test status")
        + &site_toml::components(&[("web", "Web hosting"), ("mail", "Mail"), ("dns", "DNS")]);
    let site = Site::new(&config);
    site.write(
        "old-outage.md",
        &incident(
            "Old outage",
            "\"web\"",
            "major",
            &[(-50, "investigating"), (-49, "resolved")],
        ),
    );
    site.write(
        "mail-slow.md",
        &incident(
            "Mail slow",
            "\"mail\", \"web\"",
            "minor",
            &[(-2, "investigating"), (-1, "identified")],
        ),
    );
    site.write(
        "dns-upgrade.md",
        &maintenance("DNS upgrade", 48, 50, &[(-3, "scheduled")]),
    );
    site.write(
        "dns-move.md",
        &maintenance("DNS move", -1, 2, &[(-5, "scheduled"), (-1, "in-progress")]),
    );
    site.write(
        "dns-done.md",
        &maintenance(
            "DNS done",
            -30,
            -28,
            &[(-40, "scheduled"), (-28, "completed")],
        ),
    );
    site.ok(&["build"]);

    let base = static_files::serve(&site.path("public"));
    let listed = read_with_client(&base);
    let shown = format!("{listed:?}");

    assert_eq!(
        ids(&listed, "incidents.json"),
        ["mail-slow", "old-outage"],
        "{shown}"
    );
    assert_eq!(
        ids(&listed, "incidents/unresolved.json"),
        ["mail-slow"],
        "{shown}"
    );
    assert_eq!(ids(&listed, "summary.json"), ["mail-slow"], "{shown}");
    assert_eq!(listed["incidents.json"][0].1, "identified", "{shown}");
    assert_eq!(
        listed["scheduled-maintenances/upcoming.json"],
        [("dns-upgrade".to_owned(), "scheduled".to_owned())],
        "{shown}"
    );
    assert_eq!(
        listed["scheduled-maintenances/active.json"],
        [("dns-move".to_owned(), "in_progress".to_owned())],
        "{shown}"
    );
    assert_eq!(
        ids(&listed, "scheduled-maintenances.json"),
        ["dns-upgrade", "dns-move", "dns-done"],
        "{shown}"
    );
    assert_eq!(
        listed["scheduled-maintenances.json"][2].1, "completed",
        "{shown}"
    );
    // The minor incident degrades mail and web; DNS is under maintenance.
    assert_eq!(listed["status.json"][0].1, "minor", "{shown}");
    assert!(
        listed["components.json"].contains(&("dns".to_owned(), "under_maintenance".to_owned())),
        "{shown}"
    );
    // Updates carry the components they changed (the library's types do
    // not declare the field, so it is checked here).
    let incidents: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.path("public/api/v2/incidents.json")).unwrap())
            .unwrap();
    let updates = &incidents["incidents"][0]["incident_updates"];
    assert_eq!(
        updates[1]["affected_components"],
        serde_json::json!([
            {"code": "mail", "name": "Mail", "old_status": "operational", "new_status": "degraded_performance"},
            {"code": "web", "name": "Web hosting", "old_status": "operational", "new_status": "degraded_performance"}
        ]),
        "{updates}"
    );
    assert!(updates[0]["affected_components"].is_null(), "{updates}");
}

#[test]
fn the_check_fails_on_a_document_that_does_not_fit_the_types() {
    // The same check on a site whose incidents.json lost a field and has
    // a number for a time: the check must say so, naming both.
    let config = site_toml::site("Test status") + &site_toml::components(&[("web", "Web")]);
    let site = Site::new(&config);
    site.write(
        "outage.md",
        &incident("Outage", "\"web\"", "major", &[(-2, "investigating")]),
    );
    site.ok(&["build"]);
    let path = site.path("public/api/v2/incidents.json");
    let mut document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let first = &mut document["incidents"][0];
    first.as_object_mut().unwrap().remove("shortlink");
    first["incident_updates"][0]["created_at"] = serde_json::json!(5);
    std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();

    let base = static_files::serve(&site.path("public"));
    let output = Command::new("node")
        .arg("check.js")
        .arg(&base)
        .current_dir(client_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("incidents.json.incidents[0].shortlink: missing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("incident_updates[0].created_at: 5 is not a string"),
        "{stderr}"
    );
}
