//! What the unit tests of the emails share: a configuration, an
//! announcement parsed from an incident file, a subscriber, and readers of
//! the formatted message. Pure, and compiled for tests only.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use lettre::Message;

use crate::announce::{Announced, Announcement, Policy, Seen, decide};
use crate::config::Config;
use crate::corpus::Corpus;
use crate::model::{Follows, Language, Subscriber};
use crate::parse::{Context, parse_incident};

const CONFIG: &str = r#"
[site]
title = "Example Hosting status"
base_url = "https://status.example.com/"
timezone = "Europe/Stockholm"
language = "sv"

[[components]]
id = "mail"
name = "E-post"

[[components]]
id = "web"
name = "Webbhotell"

[email]
from = "Example Hosting <status@example.com>"
"#;

pub(super) fn config() -> Config {
    crate::config::parse(Path::new("herald.toml"), CONFIG).unwrap()
}

pub(super) fn announcement(config: &Config, text: &str) -> Announcement {
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let (incident, diagnostics) = parse_incident(Path::new("storage.md"), text, &context);
    let incident = incident.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let key = (incident.id.clone(), incident.updates[0].instant);
    let corpus = Corpus::from_incidents([incident]);
    let mut announced = Announced::default();
    announced.seen.insert(
        key.clone(),
        Seen {
            first_seen: key.1,
            edited: None,
        },
    );
    let policy = Policy {
        grace: std::time::Duration::ZERO,
        max_age: std::time::Duration::from_secs(3600),
    };
    decide(&corpus, &announced, key.1, policy)
        .due
        .into_iter()
        .next()
        .unwrap()
}

pub(super) const STORAGE: &str = "+++\ntitle = \"Storage failure\"\ncomponents = [\"mail\", \"web\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:20 identified\nCause found: a <b>disk</b> & its controller.\n";

pub(super) fn subscriber(language: Language) -> Subscriber {
    Subscriber {
        id: 42,
        channel: crate::model::Channel::Email,
        signing: None,
        address: "anna@example.org".into(),
        follows: Follows::Components(vec!["web".into()]),
        language,
        token: "0123456789abcdef0123456789abcdef".into(),
    }
}

pub(super) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 4, 4, 6, 21, 30).unwrap()
}

pub(super) fn formatted(message: &Message) -> String {
    String::from_utf8(message.formatted()).unwrap()
}

/// The header block, unfolded, one `Name: value` per line.
pub(super) fn headers(message: &str) -> Vec<String> {
    let head = message.split("\r\n\r\n").next().unwrap();
    head.replace("\r\n ", " ")
        .replace("\r\n\t", " ")
        .split("\r\n")
        .map(str::to_owned)
        .collect()
}

/// The decoded parts, by content type.
pub(super) fn part(message: &str, content_type: &str) -> String {
    let start = message.find(content_type).unwrap();
    let body_start = start + message[start..].find("\r\n\r\n").unwrap() + 4;
    let end = body_start + message[body_start..].find("\r\n--=_herald").unwrap();
    decode_quoted_printable(&message[body_start..end])
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap().replace("\r\n", "\n")
}

/// The text and HTML parts of `message`, decoded.
pub(super) fn bodies(message: &Message) -> (String, String) {
    let text = formatted(message);
    (
        part(&text, "Content-Type: text/plain"),
        // minijinja escapes `/` in attributes too.
        part(&text, "Content-Type: text/html").replace("&#x2f;", "/"),
    )
}
