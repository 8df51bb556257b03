//! `index.txt` (the status for terminals) and the status badges
//! (`badge.svg`, `components/ID.svg`), from `herald build` on a temporary
//! site. Badges are read back with an XML parser (quick-xml).

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::fs;

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use site::Site;

fn at(hours: i64) -> String {
    (herald::clock::now() + chrono::Duration::hours(hours))
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

fn site() -> Site {
    let config = site_toml::site("Test <status>")
        + &site_toml::components(&[("web", "Web & <API>"), ("mail", "Mail"), ("dns", "DNS")]);
    let site = Site::new(&config);
    site.write(
        "web-down.md",
        &format!(
            "+++\ntitle = \"Web down\"\ncomponents = [\"web\"]\nseverity = \"critical\"\n+++\n\n## {} investigating\n\nLooking.\n\n## {} identified\n\nA bad \u{1b}[31mdeploy\u{1b}[0m.\nRolling back.\n",
            at(-2),
            at(-1)
        ),
    );
    site.write(
        "dns-work.md",
        &format!(
            "+++\ntitle = \"DNS work\"\ncomponents = [\"dns\"]\nkind = \"maintenance\"\nstarts = \"{}\"\nends = \"{}\"\n+++\n\n## {} scheduled\n\nNew servers.\n",
            at(24),
            at(26),
            at(-3)
        ),
    );
    site.ok(&["build"]);
    site
}

#[test]
fn index_txt_tells_the_state_open_incidents_and_maintenance_in_a_few_lines() {
    let site = site();
    let text = fs::read_to_string(site.path("public/index.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Test <status>", "{text}");
    assert_eq!(lines[1], "Major outage", "{text}");
    assert_eq!(lines[2], "  Web & <API>: Major outage", "{text}");
    assert!(
        text.contains("\nCurrent incidents\n\n* Web down (Identified, "),
        "{text}"
    );
    // The latest update only, indented, without the escape sequences.
    assert!(
        text.contains("\n  A bad [31mdeploy[0m.\n  Rolling back.\n  https://status.example.com/incidents/web-down.html\n"),
        "{text}"
    );
    assert!(!text.contains("Looking."), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.contains("\nScheduled maintenance\n\n* DNS work (Upcoming)\n"),
        "{text}"
    );
    assert!(
        text.ends_with("/incidents/dns-work.html\n\nhttps://status.example.com/\n"),
        "{text}"
    );
    assert!(lines.len() < 25, "{text}");
}

/// The root element's name, the `<title>` text, and every `<text>`.
fn read_svg(bytes: &[u8]) -> (String, String, Vec<String>) {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    let mut root = String::new();
    let mut title = String::new();
    let mut texts = Vec::new();
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("{e}: {text}"));
        match event {
            Event::Start(start) => {
                let name = start.name().0.to_owned();
                for attribute in start.attributes() {
                    let attribute = attribute.unwrap();
                    attribute.normalized_value(XmlVersion::Implicit1_0).unwrap();
                }
                if stack.is_empty() {
                    root = name.clone();
                    let xmlns = start.try_get_attribute("xmlns").unwrap().map(|a| {
                        a.normalized_value(XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned()
                    });
                    assert_eq!(xmlns.as_deref(), Some("http://www.w3.org/2000/svg"));
                }
                stack.push(name);
            }
            Event::Empty(_) => assert!(!stack.is_empty(), "an element outside the root"),
            Event::End(end) => {
                let name = end.name().0.to_owned();
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()));
            }
            Event::Text(text) => {
                let text = text.xml10_content().into_owned();
                match stack.last().map(String::as_str) {
                    Some("title") => title.push_str(&text),
                    Some("text") => texts.push(text),
                    _ => assert!(text.trim().is_empty(), "stray text {text:?}"),
                }
            }
            Event::GeneralRef(reference) => {
                let name = reference.into_inner().into_owned();
                let c = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => panic!("unknown entity &{other};"),
                };
                match stack.last().map(String::as_str) {
                    Some("title") => title.push_str(c),
                    Some("text") => {
                        if let Some(last) = texts.last_mut() {
                            last.push_str(c);
                        }
                    }
                    _ => panic!("stray entity"),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    (root, title, texts)
}

#[test]
fn badges_are_svg_with_the_status_in_words_and_a_title() {
    let site = site();
    let (root, title, texts) = read_svg(&fs::read(site.path("public/badge.svg")).unwrap());
    assert_eq!(root, "svg");
    assert_eq!(title, "status: Major outage");
    assert!(texts.contains(&"Major outage".to_owned()), "{texts:?}");
    let (_, title, _) = read_svg(&fs::read(site.path("public/components/web.svg")).unwrap());
    assert_eq!(title, "Web & <API>: Major outage");
    let (_, title, _) = read_svg(&fs::read(site.path("public/components/mail.svg")).unwrap());
    assert_eq!(title, "Mail: Operational");
    let (_, title, texts) = read_svg(&fs::read(site.path("public/components/dns.svg")).unwrap());
    assert_eq!(title, "DNS: Operational");
    assert!(texts.contains(&"DNS".to_owned()), "{texts:?}");
    // The page shows each badge with its snippets.
    let index = fs::read_to_string(site.path("public/index.html")).unwrap();
    assert!(
        index.contains("<img src=\"badge.svg\" alt=\"Test &lt;status&gt;: Major outage\">"),
        "{index}"
    );
    assert!(
        index.contains("<pre><code>[![DNS](https://status.example.com/components/dns.svg)](https://status.example.com/)</code></pre>"),
        "{index}"
    );
    // And the uptime of each component.
    assert!(index.contains("<p class=\"uptime\">Uptime: "), "{index}");
}
