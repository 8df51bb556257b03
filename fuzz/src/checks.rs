//! What each fuzz target checks on one input: no panic, and the
//! properties below. Pure functions of the input, so that a crash found by
//! libFuzzer replays anywhere.
//!
//! This file is also compiled into herald's own tests (`tests/fuzz.rs`
//! includes it by path), which replay the seed corpora and every crash
//! found: keep it to `herald`, `chrono`, `lettre`, `serde_json` and
//! `std`, which herald depends on too.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use herald::announce::Announcement;
use herald::compose::Composer;
use herald::config::{Config, Transport};
use herald::corpus::Corpus;
use herald::diag::Diagnostic;
use herald::http::forms;
use herald::model::{Follows, Incident, IncidentId, Kind, Language, Subscriber};
use herald::parse::{Context, parse_incident, split};
use herald::render::{self, Output, Plan, Revisions, Site, Templates};

/// A target's check of one input.
pub type Check = fn(&[u8]);

/// The targets, by name: the fuzz crate's binaries and the subdirectories
/// of `fuzz/corpus/`.
pub const TARGETS: [(&str, Check); 5] = [
    ("incident", incident),
    ("config", config),
    ("render", render),
    ("forms", forms),
    ("smtp_reply", smtp_reply),
];

/// The repository's sample configuration: Stockholm's zone, Swedish, and
/// the components `web-hosting`, `mail`, `cloud`, `customer-portal` and
/// `dns`.
const SAMPLE_CONFIG: &str = include_str!("../../herald.toml");

static CONFIG: LazyLock<Config> = LazyLock::new(|| {
    herald::config::parse(Path::new("herald.toml"), SAMPLE_CONFIG)
        .expect("the repository's herald.toml is valid")
});
static TEMPLATES: LazyLock<Templates> = LazyLock::new(Templates::builtin);
static COMPOSER: LazyLock<Composer> = LazyLock::new(Composer::new);

/// The instant pages are rendered at, unless an incident suggests others.
fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

fn context(config: &Config) -> Context<'_> {
    Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    }
}

/// Asserts that `diagnostic` points into `text`: a line of the text, and
/// a column from the line's first character to just past its last.
fn assert_inside(text: &str, path: &Path, diagnostic: &Diagnostic) {
    assert_eq!(diagnostic.path, path, "{diagnostic}");
    let lines: Vec<&str> = text.split('\n').collect();
    let line = diagnostic.line as usize;
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} outside the {} lines of the text: {diagnostic}",
        lines.len()
    );
    let width = lines[line - 1].chars().count();
    let column = diagnostic.column as usize;
    assert!(
        (1..=width + 1).contains(&column),
        "column {column} outside line {line} of {width} characters: {diagnostic}"
    );
}

/// `herald::parse::split` and `herald::parse::parse_incident` on any
/// UTF-8 text: ranges and positions inside the text, an incident exactly
/// when there is no error, and its updates in order.
pub fn incident(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match split(text) {
        Ok(found) => {
            assert!(found.front.start <= found.front.end, "{found:?}");
            assert!(text.get(found.front.clone()).is_some(), "{found:?}");
            assert!(text.get(found.body.clone()).is_some(), "{found:?}");
            assert!(found.front.end <= found.body.start, "{found:?}");
        }
        Err((offset, _)) => assert!(text.is_char_boundary(offset), "{offset}"),
    }
    let config = &*CONFIG;
    let path = Path::new("2026/fuzz-incident.md");
    let (parsed, diagnostics) = parse_incident(path, text, &context(config));
    for diagnostic in &diagnostics {
        assert_inside(text, path, diagnostic);
    }
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    match parsed {
        None => assert!(failed, "no incident and no error: {diagnostics:?}"),
        Some(incident) => {
            assert!(!failed, "an incident despite errors: {diagnostics:?}");
            check_incident(config, &incident);
        }
    }
}

/// What every parsed incident promises (`herald::model::Incident`).
fn check_incident(config: &Config, incident: &Incident) {
    assert!(!incident.updates.is_empty());
    assert!(
        incident
            .updates
            .windows(2)
            .all(|pair| pair[0].instant < pair[1].instant),
        "updates not in order"
    );
    assert!(!incident.title.trim().is_empty());
    assert!(!incident.components.is_empty());
    for id in &incident.components {
        assert!(config.component(id).is_some(), "unknown component {id}");
    }
    assert_eq!(
        incident.window.is_some(),
        incident.kind == Kind::Maintenance
    );
    if let Some(window) = incident.window {
        assert!(window.starts < window.ends);
    }
    incident.timeline();
    incident.closed_at();
    for id in &incident.components {
        incident.component_status_at(id, incident.began());
        incident.component_status_at(id, incident.latest_update().instant);
    }
    // A component that joins later is named by the update it joins at, and
    // is neither affected nor held before it.
    for (id, joined) in &incident.joins {
        assert!(
            incident.components.contains(id),
            "{id} joined but is not listed"
        );
        assert!(
            incident
                .updates
                .iter()
                .any(|update| update.instant == *joined
                    && update
                        .component_statuses
                        .iter()
                        .any(|(named, _)| named == id)),
            "{id} joined at {joined} without an update naming it"
        );
        for update in incident.updates.iter().filter(|u| u.instant < *joined) {
            assert!(!incident.affected_at(update.instant).any(|c| c == id));
        }
        assert!(
            incident
                .timeline()
                .get(id)
                .unwrap_or_else(|| panic!("{id} joined but has no timeline"))
                .iter()
                .all(|segment| segment.from >= *joined),
            "{id} held before it joined at {joined}"
        );
    }
}

/// `herald::config::parse` on any UTF-8 text: positions inside the text,
/// and a configuration that parses holds what its users rely on.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("etc/herald.toml");
    match herald::config::parse(path, text) {
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "refused without a reason");
            for diagnostic in &diagnostics {
                assert!(diagnostic.is_error(), "{diagnostic}");
                assert_inside(text, path, diagnostic);
            }
        }
        Ok(config) => {
            assert!(config.site.base_url.ends_with('/'));
            config.site.host();
            // The configuration holds the parsed transport and sender; the
            // written `smtp` must read back as the same transport.
            let email = config.email_or_default();
            assert_eq!(
                Transport::parse(&email.smtp_url).as_ref(),
                Ok(&email.smtp),
                "{}",
                email.smtp_url
            );
            let mut ids = BTreeSet::new();
            for component in &config.components {
                assert!(herald::model::is_slug(&component.id), "{}", component.id);
                assert!(ids.insert(&component.id), "{} twice", component.id);
            }
        }
    }
}

/// The incident files a render input holds: up to three texts separated
/// by NUL characters.
const RENDER_FILES: usize = 3;

/// Every output herald makes from the incidents in `data` (see
/// [`RENDER_FILES`]) parsed against the sample configuration: all pages,
/// feeds, the summary and the calendar at a fixed instant and at instants
/// the incidents suggest, for each [`Plan`], and the email of each update.
/// Nothing may panic or fail to render, and every output is well formed
/// ([`check_outputs`], and an email's headers are those of any other).
pub fn render(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = &*CONFIG;
    let context = context(config);
    let incidents: Vec<Incident> = text
        .split('\0')
        .take(RENDER_FILES)
        .enumerate()
        .filter_map(|(i, part)| {
            let path = format!("{}/fuzz-{i}.md", 2019 + i);
            parse_incident(Path::new(&path), part, &context).0
        })
        .collect();
    if incidents.is_empty() {
        return;
    }
    let corpus = Corpus::from_incidents(incidents);
    let published: Vec<&Incident> = corpus.published().map(AsRef::as_ref).collect();
    // The events of a calendar: every maintenance in `maintenance.ics`,
    // those affecting the component in `components/ID.ics`.
    let events = |path: &str| {
        // The same under a further language's prefix (`en/`).
        let path = path.strip_prefix("en/").unwrap_or(path);
        let component = path
            .strip_prefix("components/")
            .and_then(|rest| rest.strip_suffix(".ics"));
        published
            .iter()
            .filter(|i| i.window.is_some() && component.is_none_or(|id| i.affects(id)))
            .count()
    };

    // The newest update of each incident edited 90 minutes after it was
    // published (an edit time as the state store would record it).
    let mut revisions = Revisions::new();
    for incident in &published {
        let update = incident.latest_update();
        revisions.insert(
            (incident.id.clone(), update.instant),
            update.instant + Duration::minutes(90),
        );
    }

    let mut nows = vec![fixed_now()];
    if let Some(first) = published.first() {
        nows.push(first.began());
        if let Some(window) = first.window {
            nows.push(window.starts + (window.ends - window.starts) / 2);
        }
    }
    let empty = Corpus::from_incidents([]);
    let ids: BTreeSet<IncidentId> = published.iter().map(|i| i.id.clone()).collect();
    let moves = herald::render::Moves::new();
    for (n, now) in nows.into_iter().enumerate() {
        let site = Site::new(config, &TEMPLATES, &revisions, &moves, now);
        let plan = match n {
            0 => Plan::Full,
            1 => Plan::Changed {
                old: &empty,
                ids: &ids,
            },
            _ => Plan::Clock,
        };
        let rendered = render::render(&site, &corpus, &plan)
            .unwrap_or_else(|error| panic!("render at {now}: {error}"));
        check_outputs(&rendered.outputs, &events);
        if n == 0 {
            let pages = render::incident_pages(&site, &published)
                .unwrap_or_else(|error| panic!("incident pages at {now}: {error}"));
            // A page and an Atom feed per incident and language (the
            // sample's: sv, en).
            assert_eq!(
                pages.len(),
                2 * published.len() * config.site.languages.all().len()
            );
            check_outputs(&pages, &events);
        }
    }

    for incident in &published {
        for (i, update) in incident.updates.iter().enumerate() {
            let language = if i % 2 == 0 {
                Language::Sv
            } else {
                Language::En
            };
            let follows = if i % 3 == 2 {
                Follows::Components(vec![incident.components[0].clone()])
            } else {
                Follows::All
            };
            check_email(
                &Announcement::new(incident, update),
                &subscriber(language, follows),
            );
        }
    }
}

fn subscriber(language: Language, follows: Follows) -> Subscriber {
    Subscriber {
        id: 7,
        address: "anna@example.se".to_owned(),
        channel: herald::model::Channel::Email,
        follows,
        language,
        token: "0123456789abcdef0123456789abcdef".to_owned(),
        signing: None,
    }
}

/// Outputs at relative paths, in UTF-8, and each well formed for its
/// kind: pages without script, a calendar of `events` events made of
/// content lines only, JSON that parses.
fn check_outputs(outputs: &[Output], events: &dyn Fn(&str) -> usize) {
    for output in outputs {
        let path = &output.path;
        assert!(
            !path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != ".."),
            "output path {path:?}"
        );
        let text = match std::str::from_utf8(&output.bytes) {
            Ok(text) => text,
            Err(error) => panic!("{path} is not UTF-8: {error}"),
        };
        if path.ends_with(".html") {
            check_page(path, text);
        } else if path.ends_with(".ics") {
            check_calendar(path, text, events(path));
        } else if path.ends_with(".txt") {
            // For terminals: nothing that moves a cursor or sets a colour.
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{path} has a control character: {text:?}"
            );
        } else if path.ends_with(".json")
            && let Err(error) = serde_json::from_str::<serde_json::Value>(text)
        {
            panic!("{path} is not JSON: {error}");
        }
    }
}

/// No `<script>` (the built-in templates have none, and incidents must not
/// add one), and no link or image whose target a browser would run.
fn check_page(path: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{path} has a <script>");
    for attribute in [" href=\"", " src=\""] {
        for (at, _) in lower.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let value = &rest[..rest.find('"').unwrap_or(rest.len())];
            if let Some(scheme) = url_scheme(&decode_attribute(value)) {
                assert!(
                    !["javascript", "vbscript", "data"].contains(&scheme.as_str()),
                    "{path} links to {value:?}"
                );
            }
        }
    }
}

/// An attribute value as a browser reads it: character references decoded.
fn decode_attribute(value: &str) -> String {
    let mut decoded = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else {
            break;
        };
        let name = &rest[1..end];
        let character = match name {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "colon" => Some(':'),
            "tab" => Some('\t'),
            "newline" => Some('\n'),
            _ => name
                .strip_prefix("#x")
                .or_else(|| name.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match character {
            Some(c) => {
                decoded.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                decoded.push('&');
                rest = &rest[1..];
            }
        }
    }
    decoded.push_str(rest);
    decoded
}

/// The scheme of a URL as the WHATWG URL parser finds it: after leading C0
/// controls and spaces, with tabs and line breaks removed; lowercase.
fn url_scheme(url: &str) -> Option<String> {
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    (starts_with_letter && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then(|| scheme.to_ascii_lowercase())
}

/// RFC 5545's line rules (CRLF, at most 75 octets, folded lines start
/// with a space or tab), every unfolded line a property `NAME[;…]:value`,
/// one VCALENDAR holding `events` VEVENTs and nothing else: text from an
/// incident cannot add a line, a property or a component.
fn check_calendar(path: &str, text: &str, events: usize) {
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("{path} does not end with CRLF"));
    let mut lines: Vec<String> = Vec::new();
    for line in body.split("\r\n") {
        assert!(line.len() <= 75, "{path}: a line of {} octets", line.len());
        assert!(!line.contains(['\r', '\n']), "{path}: a bare CR or LF");
        match line.strip_prefix([' ', '\t']) {
            Some(folded) => lines
                .last_mut()
                .unwrap_or_else(|| panic!("{path} starts with a folded line"))
                .push_str(folded),
            None => lines.push(line.to_owned()),
        }
    }
    let mut open: Vec<&str> = Vec::new();
    let mut seen = 0;
    for line in &lines {
        let name_end = line.find([':', ';']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '-'),
            "{path}: not a property: {line:?}"
        );
        if let Some(component) = line.strip_prefix("BEGIN:") {
            let expected = if open.is_empty() {
                "VCALENDAR"
            } else {
                "VEVENT"
            };
            assert!(component == expected && open.len() < 2, "{path}: {line}");
            open.push(component);
            seen += usize::from(component == "VEVENT");
        } else if let Some(component) = line.strip_prefix("END:") {
            assert_eq!(open.pop(), Some(component), "{path}: {line}");
        } else {
            assert!(!open.is_empty(), "{path}: {line:?} outside the calendar");
        }
    }
    assert!(open.is_empty(), "{path}: {open:?} not closed");
    assert_eq!(lines.first().map(String::as_str), Some("BEGIN:VCALENDAR"));
    assert_eq!(seen, events, "{path}: events");
}

/// The names of an email's top-level headers, in order.
fn header_names(message: &[u8]) -> Vec<String> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line ends the headers");
    String::from_utf8_lossy(&message[..end])
        .split("\r\n")
        .filter(|line| !line.starts_with([' ', '\t']))
        .map(|line| line.split(':').next().unwrap_or(line).to_owned())
        .collect()
}

/// The headers of an email about an ordinary incident: a fuzzed one must
/// have exactly these, since nothing in an incident may add a header.
static EMAIL_HEADERS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let text = "+++\ntitle = \"T\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\
                ## 2026-11-02 08:47 investigating\nText.\n";
    let (incident, diagnostics) = parse_incident(Path::new("t.md"), text, &context(&CONFIG));
    let incident = incident.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let announcement = Announcement::new(&incident, &incident.updates[0]);
    let message = COMPOSER
        .compose(
            &CONFIG,
            &announcement,
            &subscriber(Language::Sv, Follows::All),
            fixed_now(),
        )
        .expect("the sample email composes");
    header_names(&message.formatted())
});

fn check_email(announcement: &Announcement, subscriber: &Subscriber) {
    let message = COMPOSER
        .compose(&CONFIG, announcement, subscriber, fixed_now())
        .unwrap_or_else(|error| panic!("email of {}: {error}", announcement.instant));
    let bytes = message.formatted();
    assert_eq!(header_names(&bytes), *EMAIL_HEADERS, "headers of the email");
}

/// `herald::http::forms::parse` on a `Content-Type` value (the first line
/// of `data`) and a body (the rest), then `subscription` on the fields.
/// Refusals are problem keys; an accepted subscription is one plain
/// address, already normal, and known components.
pub fn forms(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(head);
    let kind = forms::body_kind(&content_type);
    let fields = match forms::parse(&content_type, body) {
        Ok(fields) => fields,
        Err(problem) => {
            assert!(
                ["content_type", "form", "encoding"].contains(&problem),
                "{problem}"
            );
            assert_eq!(kind.is_none(), problem == "content_type");
            return;
        }
    };
    let kind = kind.expect("a parsed body had a known type");
    let one_click =
        fields.len() == 1 && fields[0].0 == "List-Unsubscribe" && fields[0].1 == "One-Click";
    assert_eq!(forms::is_one_click(&kind, body), one_click);
    for (_, value) in &fields {
        if let Ok(address) = forms::valid_address(value) {
            check_address(&address);
        }
    }
    let config = &*CONFIG;
    match forms::subscription(
        fields,
        |id| config.component(id).is_some(),
        &config.site.languages,
    ) {
        Ok(subscription) => {
            check_address(&subscription.address);
            if let Some(language) = subscription.language {
                assert!(config.site.languages.all().contains(&language));
            }
            if let Follows::Components(ids) = &subscription.follows {
                assert!(!ids.is_empty());
                assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
                assert!(ids.iter().all(|id| config.component(id).is_some()));
            }
        }
        Err(problem) => assert!(
            [
                "form",
                "email_missing",
                "email_invalid",
                "component_unknown"
            ]
            .contains(&problem),
            "{problem}"
        ),
    }
}

/// An accepted address: nothing that could reach another header, and
/// accepted again as it is (one person stays one subscriber).
fn check_address(address: &str) {
    assert!(
        !address.is_empty()
            && address.len() <= 254
            && !address.chars().any(|c| c.is_whitespace() || c.is_control())
            && address.contains('@'),
        "accepted {address:?}"
    );
    assert_eq!(
        forms::valid_address(address).as_deref(),
        Ok(address),
        "the accepted address {address:?} is not accepted as it is"
    );
}

/// A server's reply as the mailer reads it: herald reads replies with
/// lettre's reader (`read_response`, which parses them as
/// `Response::from_str` does) and decides by the reply's code, so a
/// hostile or broken relay must not make that panic, and a reply read
/// must carry the code the text gives, positive exactly for 2xx and 3xx.
pub fn smtp_reply(data: &[u8]) {
    use lettre::transport::smtp::response::Response;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reply) = text.parse::<Response>() else {
        return;
    };
    let code = u16::from(reply.code());
    assert!((200..600).contains(&code), "{code} from {text:?}");
    assert!(text.starts_with(&code.to_string()), "{code} from {text:?}");
    assert_eq!(reply.is_positive(), code < 400, "{code} from {text:?}");
    let _ = (reply.first_line(), reply.first_word());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_sees_the_scheme_through_references_and_controls() {
        for value in [
            "javascript:alert(1)",
            " \u{1}JavaScript:alert(1)",
            "java&#x09;script:alert(1)",
            "jav&#97;script&colon;alert(1)",
            "java\nscript:alert(1)",
        ] {
            assert_eq!(
                url_scheme(&decode_attribute(value)).as_deref(),
                Some("javascript"),
                "{value:?}"
            );
        }
        for value in ["#", "/incidents/x.html", "x.html#u:1", "&#x2F;&#x2F;x:1"] {
            assert_ne!(
                url_scheme(&decode_attribute(value)).as_deref(),
                Some("javascript"),
                "{value:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "links to")]
    fn a_script_link_fails_the_page_check() {
        check_page("x.html", "<p><a href=\"jav&#x61;script:x\">x</a></p>");
    }

    #[test]
    #[should_panic(expected = "has a <script>")]
    fn a_script_element_fails_the_page_check() {
        check_page("x.html", "<p>x</p><SCRIPT>x</SCRIPT>");
    }

    #[test]
    fn a_calendar_is_checked_line_by_line() {
        let good = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:a\r\n  b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        check_calendar("c.ics", good, 1);
        for bad in [
            good.replace("SUMMARY:a", "SUMMARY:a\rDTEND:1"),
            good.replace("SUMMARY:a", "SUMMARY:a\r\nEND:VEVENT\r\nBEGIN:VEVENT"),
            good.replace("SUMMARY:a", "summary:a"),
            good.replace("SUMMARY:a", &format!("SUMMARY:{}", "a".repeat(70))),
            good.replace("\r\nEND:VCALENDAR", ""),
        ] {
            let caught = std::panic::catch_unwind(|| check_calendar("c.ics", &bad, 1));
            assert!(caught.is_err(), "{bad:?}");
        }
    }
}
