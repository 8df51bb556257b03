//! What the webhook tests share: a site whose webhooks may reach
//! loopback, adding a webhook, telling incident posts from component
//! updates, checking a signature with Python's `hmac` (not herald's code)
//! and comparing herald's JSON with Statuspage's documented examples.
#![allow(dead_code, reason = "each test binary uses a part of the harness")]

use std::fs;
use std::process::Command;

use serde_json::Value;

use super::receiver::{self, Receiver};
use super::site::{Site, incident, recent};
use super::site_toml;

/// A site with `mail`, `web` and `dns`, email to files, retries after
/// 100 ms, and webhooks allowed to reach 127.0.0.0/8.
pub fn config() -> String {
    let site = site_toml::site("Test status")
        + &site_toml::components(&[("mail", "Mail"), ("web", "Web hosting"), ("dns", "DNS")]);
    format!(
        r#"{site}
[email]
from = "Test status <status@example.com>"
grace = "0s"
retry_base = "100ms"

[webhooks]
allow = ["127.0.0.0/8"]
"#
    )
}

/// Adds a webhook and returns its signing secret from the output.
pub fn add_hook(site: &Site, url: &str, format: &str, components: &str) -> String {
    let out = site.ok(&[
        "subscribers",
        "add",
        "--webhook",
        url,
        "--format",
        format,
        "--components",
        components,
    ]);
    assert!(out.starts_with(&format!("added {url} (")), "{out}");
    out.lines()
        .find_map(|line| line.strip_prefix("signing secret: "))
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .to_owned()
}

/// Adds a JSON webhook for `components` that asked for changes only.
pub fn add_changes_hook(site: &Site, url: &str, components: &str) {
    let out = site.ok(&[
        "subscribers",
        "add",
        "--webhook",
        url,
        "--components",
        components,
        "--only-changes",
    ]);
    assert!(out.starts_with(&format!("added {url} (")), "{out}");
}

/// Whether `request` is a `component_update` (its key ends
/// `/component/ID`) rather than an incident's post.
pub fn is_component_update(request: &receiver::Request) -> bool {
    request.header("idempotency-key").contains("/component/")
}

/// The incident posts `path` received, not its component updates.
pub fn incident_posts(receiver: &Receiver, path: &str) -> Vec<receiver::Request> {
    receiver
        .to(path)
        .into_iter()
        .filter(|request| !is_component_update(request))
        .collect()
}

/// Checks `Herald-Signature` with Python's hmac, as a receiver would.
pub fn verify_with_python(secret: &str, signature: &str, body: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body");
    fs::write(&path, body).unwrap();
    let script = r#"
import hmac, hashlib, sys
secret, header, path = sys.argv[1], sys.argv[2], sys.argv[3]
parts = dict(p.split("=", 1) for p in header.split(","))
body = open(path, "rb").read()
mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
sys.exit(0 if hmac.compare_digest(mac, parts["v1"]) else 1)
"#;
    let status = Command::new("python3")
        .args(["-c", script, secret, signature])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "signature {signature} does not verify");
}

/// Statuspage fields herald has no data for (Twitter, postmortems,
/// backfilling, its own organisations and scheduling automation).
const STATUSPAGE_ONLY: &[&str] = &[
    "backfilled",
    "impact_override",
    "organization_id",
    "postmortem_",
    "scheduled_",
    "twitter_updated_at",
    "wants_twitter_update",
];

/// Every field of `example` (but those of [`STATUSPAGE_ONLY`]) is in
/// `actual` with the same JSON type, or null where the example has null.
pub fn same_shape(example: &Value, actual: &Value, path: &str, missing: &mut Vec<String>) {
    match (example, actual) {
        (Value::Object(fields), Value::Object(got)) => {
            for (name, value) in fields {
                if STATUSPAGE_ONLY.iter().any(|only| name.starts_with(only)) {
                    continue;
                }
                match got.get(name) {
                    Some(found) => same_shape(value, found, &format!("{path}.{name}"), missing),
                    None => missing.push(format!("{path}.{name}")),
                }
            }
        }
        (Value::Array(items), Value::Array(got)) => {
            if let (Some(first), Some(found)) = (items.first(), got.first()) {
                same_shape(first, found, &format!("{path}[0]"), missing);
            }
        }
        (Value::Null, _)
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (Value::Number(_), Value::Number(_)) => {}
        (Value::String(_), Value::Null) if path.ends_with("_at") => {}
        _ => missing.push(format!("{path}: {example} but {actual}")),
    }
}

/// Writes `storage.md`, "Storage failure" affecting `components`, with
/// the first `count` of `updates` (heading, body).
pub fn write_storage(site: &Site, components: &str, updates: &[(String, String)], count: usize) {
    let list: Vec<(&str, &str)> = updates[..count]
        .iter()
        .map(|(heading, body)| (heading.as_str(), body.as_str()))
        .collect();
    site.write(
        "storage.md",
        &incident("Storage failure", components, &list),
    );
}

/// Writes `storage.md` with one recent update that holds mail
/// operational: no component changes status, so each follower gets one
/// post.
pub fn write_steady_storage(site: &Site) {
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[(
                &format!("{} investigating", recent(1)),
                "components: mail=operational\nDisks.",
            )],
        ),
    );
}
