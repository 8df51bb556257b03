//! The HTML pages of SPEC §3, rendered from the sample site in
//! `incidents/` with a fixed `now`, in Swedish and English, and from
//! generated corpora for escaping, overrides and size.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use herald::config::{self, Config};
use herald::corpus::Corpus;
use herald::diag::Level;
use herald::model::Incident;
use herald::model::Language;
use herald::parse::{Context, parse_incident};
use herald::render::{Revisions, Site, Templates, html};

mod bars;

use bars::{cell, cell_count};

const STORAGE: &str = "storage-failure-2019-04";

/// The sample site's configuration: Swedish, and English under `en/`.
fn sample_config() -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("herald.toml")).expect("read herald.toml");
    config::parse(Path::new("herald.toml"), &text).expect("sample config")
}

fn parse_all(config: &Config, files: &[(PathBuf, String)]) -> Corpus {
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let incidents: Vec<Incident> = files
        .iter()
        .map(|(path, text)| {
            let (incident, diagnostics) = parse_incident(path, text, &context);
            incident.unwrap_or_else(|| panic!("{}: {diagnostics:?}", path.display()))
        })
        .collect();
    Corpus::from_incidents(incidents)
}

fn sample_corpus(config: &Config) -> Corpus {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read incidents dir")
            .map(|entry| entry.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                let text = std::fs::read_to_string(&path).expect("read incident");
                let relative = path.strip_prefix(base).expect("under base").to_owned();
                out.push((relative, text));
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("incidents");
    let mut files = Vec::new();
    walk(&dir, &dir, &mut files);
    assert_eq!(files.len(), 4, "the sample site has four incident files");
    parse_all(config, &files)
}

/// Stockholm wall-clock time.
fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Stockholm
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

struct Fixture {
    config: Config,
    /// The language of the pages rendered.
    language: Language,
    corpus: Corpus,
    templates: Templates,
    revisions: Revisions,
    moves: herald::render::Moves,
}

impl Fixture {
    /// The sample site's pages in `language`.
    fn sample(language: Language) -> Fixture {
        let config = sample_config();
        let corpus = sample_corpus(&config);
        Fixture {
            language,
            ..Fixture::new(config, corpus)
        }
    }

    fn new(config: Config, corpus: Corpus) -> Fixture {
        Fixture {
            language: config.site.language(),
            config,
            corpus,
            templates: Templates::builtin(),
            revisions: Revisions::new(),
            moves: herald::render::Moves::new(),
        }
    }

    fn site(&self, now: DateTime<Utc>) -> Site<'_> {
        Site::new(
            &self.config,
            &self.templates,
            &self.revisions,
            &self.moves,
            now,
        )
        .in_language(self.language)
    }

    fn index(&self, now: DateTime<Utc>) -> String {
        let bytes = html::index(&self.site(now), &self.corpus).expect("index renders");
        String::from_utf8(bytes).expect("utf-8")
    }

    fn incident(&self, id: &str) -> String {
        let incident = self
            .corpus
            .published()
            .find(|incident| incident.id.as_str() == id)
            .expect("incident exists");
        // Incident pages do not depend on `now`.
        let bytes = html::incident(&self.site(utc("2000-01-01T00:00:00Z")), incident)
            .expect("incident renders");
        String::from_utf8(bytes).expect("utf-8")
    }

    fn month(&self, year: i32, month: u32) -> String {
        let bytes = html::month(
            &self.site(utc("2000-01-01T00:00:00Z")),
            &self.corpus,
            year,
            month,
        )
        .expect("month renders");
        String::from_utf8(bytes).expect("utf-8")
    }
}

/// The text between `from` and the next `to` after it.
fn between<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
    let start = html
        .find(from)
        .unwrap_or_else(|| panic!("`{from}` not found in:\n{html}"));
    let rest = &html[start + from.len()..];
    let end = rest
        .find(to)
        .unwrap_or_else(|| panic!("`{to}` not found after `{from}`"));
    &rest[..end]
}

fn banner(html: &str) -> String {
    let paragraph = between(html, "<p class=\"banner ", "</p>");
    // `s-STATUS"><span class="dot"></span>TEXT`
    let (class, rest) = paragraph.split_once('"').expect("class");
    let text = rest.rsplit("</span>").next().expect("text");
    format!("{class}: {text}")
}

/// A component's current status on the index: `class: text`.
fn component_status(html: &str, id: &str) -> String {
    let block = between(html, &format!("id=\"c-{id}\""), "<div class=\"bar\">");
    let status = between(block, "<span class=\"status ", "</span></p>");
    let (class, rest) = status.split_once('"').expect("class");
    let text = rest.rsplit("</span>").next().expect("text");
    format!("{class}: {text}")
}

fn section<'a>(html: &'a str, class: &str) -> Option<&'a str> {
    let from = format!("<section class=\"{class}\">");
    html.contains(&from)
        .then(|| between(html, &from, "\n</section>\n"))
}

#[test]
fn index_during_the_storage_failure() {
    // 2019-04-05 14:00 CEST: mail and the portal are down, web hosting and
    // cloud partly, DNS untouched.
    let now = utc("2019-04-05T12:00:00Z");
    let sv = Fixture::sample(Language::Sv).index(now);
    assert_eq!(banner(&sv), "s-major-outage: Större avbrott");
    assert_eq!(
        component_status(&sv, "mail"),
        "s-major-outage: Större avbrott"
    );
    assert_eq!(
        component_status(&sv, "web-hosting"),
        "s-partial-outage: Delvis avbrott"
    );
    assert_eq!(component_status(&sv, "dns"), "s-operational: Fungerar");
    assert_eq!(
        between(&sv, "<h3 class=\"group\">", "</h3>"),
        "Webbhotell och e-post <span class=\"status s-major-outage\"><span class=\"dot\"></span>Större avbrott</span>"
    );
    assert!(sv.starts_with("<!DOCTYPE html>\n<html lang=\"sv\">"));

    // Every component has 90 days, the last one today.
    for id in ["web-hosting", "mail", "cloud", "customer-portal", "dns"] {
        assert_eq!(cell_count(&sv, id), 90, "{id}");
    }
    assert_eq!(
        cell(&sv, "mail", 1),
        "x | 4 apr: Större avbrott – Fel i lagringssystemet påverkar… -> incidents/storage-failure-2019-04.html"
    );
    assert_eq!(
        cell(&sv, "mail", 24),
        "d | 12 mar: Försämrad prestanda – Fördröjd leverans av inkommande… -> incidents/mail-delay-2019-03.html"
    );
    assert_eq!(cell(&sv, "mail", 25), "quiet");
    // Quiet days are empty cells, which the bar's hidden heading
    // describes once.
    assert_eq!(cell(&sv, "mail", 89), "quiet");
    assert!(sv.contains(
        "<p class=\"vh\">E-post, <span class=\"wide\">de senaste 90 dagarna</span><span class=\"narrow\">de senaste 30 dagarna</span> (dagar som inte nämns: fungerar):</p>"
    ));

    // The incident is open as of now: the later updates are not known yet.
    let open = section(&sv, "open").expect("open incidents listed");
    assert!(
        open.contains(
            "<h3><a href=\"incidents/storage-failure-2019-04.html\">Fel i lagringssystemet"
        )
    );
    assert!(open.contains("Påverkar: Webbhotell, E-post, Molnservrar, Kundportalen"));
    let newest = open.find("u-20190405T114000Z").expect("13.40 update shown");
    let older = open.find("u-20190405T101500Z").expect("12.15 update shown");
    assert!(newest < older, "latest update first");
    assert!(!open.contains("u-20190405T092500Z"), "only the latest two");
    assert!(!open.contains("u-20190405T122000Z"), "14.20 is after now");
    assert!(open.contains("Visa alla 32 uppdateringar"));
    assert!(section(&sv, "maintenance").is_none());
    // The fortnight counts the incident still open.
    assert!(!sv.contains("Inga driftstörningar"), "{sv}");
    let recent = section(&sv, "recent").expect("the last 14 days");
    assert!(
        recent.contains("incidents/storage-failure-2019-04.html"),
        "{recent}"
    );

    let en = Fixture::sample(Language::En).index(now);
    assert_eq!(banner(&en), "s-major-outage: Major outage");
    assert_eq!(
        component_status(&en, "mail"),
        "s-major-outage: Major outage"
    );
    assert_eq!(
        cell(&en, "customer-portal", 1),
        "x | Apr 4: Major outage – Fel i lagringssystemet påverkar… -> incidents/storage-failure-2019-04.html"
    );
    assert!(en.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(en.contains("<h2>Current incidents</h2>"));
    assert!(en.contains("Show all 32 updates"));
}

#[test]
fn index_after_the_login_incident() {
    let now = utc("2026-11-12T12:00:00Z");
    let sv = Fixture::sample(Language::Sv).index(now);
    assert_eq!(banner(&sv), "s-operational: Alla system fungerar");
    assert_eq!(
        component_status(&sv, "customer-portal"),
        "s-operational: Fungerar"
    );
    assert_eq!(
        cell(&sv, "customer-portal", 10),
        "p | 2 nov: Delvis avbrott – Det gick inte att logga in i kun… -> incidents/portal-login-2026-11.html"
    );
    assert!(section(&sv, "open").is_none());
    // Announced on 20 November: not known yet.
    assert!(section(&sv, "maintenance").is_none());
    let recent = section(&sv, "recent").expect("recent history");
    assert!(recent.contains(
        "<a href=\"incidents/portal-login-2026-11.html\">Det gick inte att logga in i kundportalen</a> <span class=\"label\">Löst</span>"
    ));
    assert!(
        recent.contains("<time datetime=\"2026-11-02T07:47:00Z\">2 november 2026 08:47 CET</time>")
    );
}

#[test]
fn index_after_everything_resolved() {
    let now = utc("2027-01-15T12:00:00Z");
    let sv = Fixture::sample(Language::Sv).index(now);
    assert_eq!(banner(&sv), "s-operational: Alla system fungerar");
    assert!(section(&sv, "open").is_none());
    assert!(section(&sv, "maintenance").is_none());
    assert!(sv.contains("<p>Inga driftstörningar de senaste 14 dagarna.</p>"));
    // The maintenance night spans two local days.
    assert_eq!(
        cell(&sv, "dns", 36),
        "m | 10 dec: Underhåll – Planerat underhåll: uppgradering… -> incidents/dns-upgrade-2026-12.html"
    );
    assert_eq!(
        cell(&sv, "dns", 35),
        "m | 11 dec: Underhåll – Planerat underhåll: uppgradering… -> incidents/dns-upgrade-2026-12.html"
    );
    assert_eq!(cell(&sv, "dns", 34), "quiet");
    // Archive links, newest first; the maintenance was announced (began)
    // in November.
    let archive = between(&sv, "<ul class=\"months\">", "</ul>");
    assert_eq!(
        archive,
        "\n<li><a href=\"history/2026-11.html\">november 2026</a></li>\
         \n<li><a href=\"history/2019-04.html\">april 2019</a></li>\
         \n<li><a href=\"history/2019-03.html\">mars 2019</a></li>\n"
    );

    let en = Fixture::sample(Language::En).index(now);
    assert_eq!(banner(&en), "s-operational: All systems operational");
    assert!(en.contains("<p>No incidents in the past 14 days.</p>"));
    assert!(en.contains(">November 2026</a>"));
}

#[test]
fn index_around_the_dns_maintenance() {
    let fixture = Fixture::sample(Language::Sv);

    let before = fixture.index(local(2026, 12, 1, 12, 0));
    assert_eq!(banner(&before), "s-operational: Alla system fungerar");
    let maintenance = section(&before, "maintenance").expect("maintenance listed");
    assert!(maintenance.contains(
        "Planerat underhåll: uppgradering av DNS-plattformen</a> <span class=\"label\">Kommande</span>"
    ));
    assert!(maintenance.contains(
        "Tid: <time datetime=\"2026-12-10T21:00:00Z\">10 december 2026 22:00 CET</time> – <time datetime=\"2026-12-11T01:00:00Z\">11 december 2026 02:00 CET</time>"
    ));
    assert!(maintenance.contains("Påverkar: DNS, Kundportalen"));
    // Scheduled is not held: the bar does not show tonight's window yet.
    assert_eq!(component_status(&before, "dns"), "s-operational: Fungerar");

    let during = fixture.index(local(2026, 12, 10, 22, 30));
    assert_eq!(banner(&during), "s-maintenance: Underhåll pågår");
    assert_eq!(component_status(&during, "dns"), "s-maintenance: Underhåll");
    assert_eq!(
        component_status(&during, "customer-portal"),
        "s-maintenance: Underhåll"
    );
    assert_eq!(
        cell(&during, "dns", 0),
        "m | 10 dec: Underhåll – Planerat underhåll: uppgradering… -> incidents/dns-upgrade-2026-12.html"
    );
    let maintenance = section(&during, "maintenance").expect("maintenance listed");
    assert!(maintenance.contains("<span class=\"label\">Pågår nu</span>"));
    assert!(
        section(&during, "recent")
            .expect("recent")
            .contains("Inga driftstörningar")
    );

    let en = Fixture::sample(Language::En).index(local(2026, 12, 10, 22, 30));
    assert_eq!(banner(&en), "s-maintenance: Maintenance in progress");
    assert_eq!(
        component_status(&en, "dns"),
        "s-maintenance: Under maintenance"
    );
    let maintenance = section(&en, "maintenance").expect("maintenance listed");
    assert!(maintenance.contains("<h2>Scheduled maintenance</h2>"));
    assert!(maintenance.contains("<span class=\"label\">In progress</span>"));
    assert!(maintenance.contains(
        "When: <time datetime=\"2026-12-10T21:00:00Z\">December 10, 2026 22:00 CET</time>"
    ));

    let after = fixture.index(local(2026, 12, 11, 2, 0));
    assert_eq!(banner(&after), "s-operational: Alla system fungerar");
    assert!(section(&after, "maintenance").is_none());
    assert!(section(&after, "recent").expect("recent").contains(
        "<a href=\"incidents/dns-upgrade-2026-12.html\">Planerat underhåll: uppgradering av DNS-plattformen</a>"
    ));
}

#[test]
fn incident_page_lists_updates_newest_first_with_anchors() {
    let fixture = Fixture::sample(Language::Sv);
    let page = fixture.incident(STORAGE);
    assert!(page.contains(
        "<title>Fel i lagringssystemet påverkar webbhotell, e-post, moln och kundportal – Exempelhosting driftstatus</title>"
    ));
    assert!(page.contains("<link rel=\"stylesheet\" href=\"../style.css\">"));
    assert!(page.contains(
        "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Exempelhosting driftstatus (Atom)\" href=\"../feed.atom\">"
    ));
    assert!(page.contains("<dd>Webbhotell, E-post, Molnservrar, Kundportalen</dd>"));
    assert!(page.contains("<div class=\"summary\"><p>En lagringsyta i vår centrala"));

    let anchors: Vec<&str> = page
        .split("<article class=\"update\" id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("anchor"))
        .collect();
    assert_eq!(anchors.len(), 50);
    assert_eq!(
        anchors[..3],
        [
            "u-20190408T172600Z",
            "u-20190408T063000Z",
            "u-20190407T193000Z"
        ]
    );
    assert_eq!(anchors[49], "u-20190404T060000Z");
    let mut sorted = anchors.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(anchors, sorted, "newest first");

    assert!(page.contains(
        "<h3 class=\"update-head\"><span class=\"label\">Löst</span> <a href=\"../incidents/storage-failure-2019-04.html#u-20190408T172600Z\"><time datetime=\"2019-04-08T17:26:00Z\">8 april 2019 19:26 CEST</time></a></h3>"
    ));
    // Seconds and an explicit offset in the file, shown in local time
    // to the minute.
    assert!(
        page.contains("<time datetime=\"2019-04-05T07:16:42Z\">5 april 2019 09:16 CEST</time>"),
        "{page}"
    );
    assert!(
        page.contains("<time datetime=\"2019-04-05T18:34:00Z\">5 april 2019 20:34 CEST</time>")
    );
    // A components line is shown with each status in words.
    assert!(page.contains(
        "<li class=\"s-partial-outage\"><span class=\"dot\"></span>Molnservrar: Delvis avbrott</li>"
    ));
    // Raw HTML in a body was escaped by the parser and stays escaped.
    assert!(page.contains("&lt;b&gt;Tillfälligt otillgänglig&lt;/b&gt;"));
    assert!(page.contains(
        "<a href=\"../history/2019-04.html\">Fler händelser från april 2019</a> · <a href=\"../index.html\">Tillbaka till driftstatus</a>"
    ));

    let en = Fixture::sample(Language::En).incident(STORAGE);
    assert!(en.contains("<time datetime=\"2019-04-08T17:26:00Z\">April 8, 2019 19:26 CEST</time>"));
    assert!(en.contains("<span class=\"label\">Resolved</span>"));
    assert!(en.contains(">More from April 2019</a>"));
}

#[test]
fn maintenance_page_shows_its_window() {
    let page = Fixture::sample(Language::En).incident("dns-upgrade-2026-12");
    assert!(page.contains("<span class=\"label\">Scheduled</span> Maintenance</p>"));
    assert!(page.contains(
        "<dt>When</dt>\n<dd><time datetime=\"2026-12-10T21:00:00Z\">December 10, 2026 22:00 CET</time> – <time datetime=\"2026-12-11T01:00:00Z\">December 11, 2026 02:00 CET</time></dd>"
    ));
    assert!(page.contains("<article class=\"update\" id=\"u-20261120T090000Z\">"));
}

#[test]
fn month_page_lists_the_incidents_that_began_in_it() {
    let fixture = Fixture::sample(Language::Sv);
    let april = fixture.month(2019, 4);
    assert!(april.contains("<h1>Driftstörningar och underhåll, april 2019</h1>"));
    let list = between(&april, "<ul class=\"incident-list\">", "</ul>");
    assert_eq!(list.matches("<li>").count(), 1);
    assert!(list.contains(
        "<a href=\"../incidents/storage-failure-2019-04.html\">Fel i lagringssystemet påverkar webbhotell, e-post, moln och kundportal</a> <span class=\"label\">Löst</span>"
    ));
    assert!(
        list.contains("<time datetime=\"2019-04-04T06:00:00Z\">4 april 2019 08:00 CEST</time>")
    );

    // The maintenance began with its announcement in November.
    let november = fixture.month(2026, 11);
    let list = between(&november, "<ul class=\"incident-list\">", "</ul>");
    let maintenance = list
        .find("dns-upgrade-2026-12")
        .expect("maintenance listed");
    let login = list.find("portal-login-2026-11").expect("incident listed");
    assert!(maintenance < login, "newest first");
    assert!(list.contains("<span class=\"label\">Planerat</span>"));

    let empty = fixture.month(2020, 1);
    assert!(empty.contains("<p>Inga driftstörningar eller underhåll den här månaden.</p>"));

    let en = Fixture::sample(Language::En).month(2019, 3);
    assert!(en.contains("<h1>Incidents and maintenance, March 2019</h1>"));
    assert!(en.contains("<span class=\"label\">Resolved</span>"));
}

fn small_config() -> Config {
    let text = r#"
[site]
title = "Test <status>"
base_url = "https://status.example.com/"
timezone = "Europe/Stockholm"
language = "en"

[[components]]
id = "web"
name = "Web & <API>"

[[components]]
id = "mail"
name = "Mail"
"#;
    config::parse(Path::new("herald.toml"), text).expect("config")
}

#[test]
fn text_is_escaped_and_bodies_are_not_raw_html() {
    let config = small_config();
    let file = r#"+++
title = "Outage in <b>storage</b> & \"more\""
components = ["web"]
severity = "major"
+++

Summary with <script>alert("summary")</script>.

## 2026-03-01 10:00 investigating
<script>alert("body")</script> and <img src=x onerror=alert(1)>
"#;
    let corpus = parse_all(&config, &[(PathBuf::from("esc.md"), file.to_owned())]);
    let fixture = Fixture::new(config, corpus);
    let index = fixture.index(utc("2026-03-01T12:00:00Z"));
    let page = fixture.incident("esc");
    for html in [&index, &page] {
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>storage"));
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(html.contains("Outage in &lt;b&gt;storage&lt;/b&gt; &amp; &quot;more&quot;"));
        assert!(html.contains("&lt;script&gt;alert(\"body\")&lt;/script&gt; and &lt;img src=x"));
        assert!(html.contains("Test &lt;status&gt;</title>"));
    }
    assert!(page.contains("<div class=\"summary\"><p>Summary with &lt;script&gt;alert(\"summary\")&lt;/script&gt;.</p>"));
    assert!(index.contains("Affects: Web &amp; &lt;API&gt;"));
    assert!(index.contains("<span class=\"name\">Web &amp; &lt;API&gt;</span>"));
    // The badge's text and its snippets: names escaped, never markup.
    assert!(
        index.contains(
            "<img src=\"components/web.svg\" alt=\"Web &amp; &lt;API&gt;: Partial outage\">"
        ),
        "{index}"
    );
    assert!(
        index.contains("<pre><code>&lt;a href=&quot;https://status.example.com/&quot;&gt;&lt;img src=&quot;https://status.example.com/components/web.svg&quot; alt=&quot;Web API&quot;&gt;&lt;/a&gt;</code></pre>"),
        "{index}"
    );
    assert!(index.contains(
        "title=\"Mar 1: Partial outage – Outage in &lt;b&gt;storage&lt;/b&gt; &amp; &quot;more…\""
    ));
}

#[test]
fn override_with_a_syntax_error_is_reported_and_the_builtin_serves() {
    let broken =
        "{% extends \"base.html\" %}\n{% block main %}\n<p>{{ banner }</p>\n{% endblock %}\n";
    let (templates, diagnostics) = Templates::with_overrides(vec![
        (
            "index.html".into(),
            PathBuf::from("templates/index.html"),
            broken.into(),
        ),
        (
            "indx.html".into(),
            PathBuf::from("templates/indx.html"),
            "hello".into(),
        ),
    ]);
    let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(diagnostics[0].level, Level::Error);
    assert!(
        shown[0].starts_with("templates/index.html:3:14: error: template syntax error: "),
        "{}",
        shown[0]
    );
    assert!(shown[0].ends_with("; the built-in `index.html` is used instead"));
    assert_eq!(diagnostics[1].level, Level::Warning);
    assert!(
        shown[1].starts_with(
            "templates/indx.html:1:1: warning: `indx.html` is not a built-in template"
        ),
        "{}",
        shown[1]
    );

    let mut fixture = Fixture::sample(Language::En);
    fixture.templates = templates;
    let index = fixture.index(utc("2027-01-15T12:00:00Z"));
    assert_eq!(banner(&index), "s-operational: All systems operational");
}

#[test]
fn a_good_override_replaces_the_builtin_and_keeps_escaping() {
    let text = "{% extends \"base.html\" %}\n{% block main %}<p id=\"mine\">{{ t.banner[overall] }} {{ site_title }}</p>{% endblock %}\n";
    let (templates, diagnostics) = Templates::with_overrides(vec![(
        "index.html".into(),
        PathBuf::from("templates/index.html"),
        text.into(),
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut fixture = Fixture::new(small_config(), Corpus::default());
    fixture.templates = templates;
    let index = fixture.index(utc("2027-01-15T12:00:00Z"));
    assert!(index.contains("<p id=\"mine\">All systems operational Test &lt;status&gt;</p>"));
}

#[test]
fn update_and_summary_overrides_reach_every_page_that_shows_one() {
    let template = |name: &str, text: &str| {
        (
            name.to_owned(),
            PathBuf::from("templates").join(name),
            text.to_owned(),
        )
    };
    let (templates, diagnostics) = Templates::with_overrides(vec![
        template(
            "update.html",
            "<p class=\"mine\">{{ u.status_label }} h{{ level|default(3) }}</p>",
        ),
        template("summary.html", "<b class=\"mine\">{{ i.title }}</b>"),
    ]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut fixture = Fixture::sample(Language::Sv);
    fixture.templates = templates;
    let page = fixture.incident(STORAGE);
    assert!(page.contains("<p class=\"mine\">Löst h3</p>"), "{page}");
    assert!(!page.contains("<article"), "{page}");
    let month = fixture.month(2019, 4);
    assert!(
        month.contains("<li><b class=\"mine\">Fel i lagringssystemet"),
        "{month}"
    );
    // The index calls the macros, which include the same templates.
    let index = fixture.index(utc("2019-04-05T12:00:00Z"));
    assert!(index.contains("<p class=\"mine\">"), "{index}");
    assert!(index.contains(" h4</p>"), "{index}");
    assert!(index.contains("<b class=\"mine\">"), "{index}");
}

#[test]
fn stylesheet_follows_the_color_scheme() {
    let fixture = Fixture::sample(Language::Sv);
    let css = String::from_utf8(html::stylesheet(&fixture.site(utc("2027-01-15T12:00:00Z"))))
        .expect("utf-8");
    assert!(css.contains("@media (prefers-color-scheme: dark)"));
    assert!(css.contains(".s-major-outage { --c: var(--major-outage); }"));

    // An override is taken as it is: CSS is not a template.
    let mine = "main { max-width: 40rem; }\n.a{#b{color:red}}\n";
    let (templates, diagnostics) = Templates::with_overrides(vec![(
        "style.css".into(),
        PathBuf::from("templates/style.css"),
        mine.into(),
    )]);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut fixture = Fixture::sample(Language::Sv);
    fixture.templates = templates;
    let css = html::stylesheet(&fixture.site(utc("2027-01-15T12:00:00Z")));
    assert_eq!(String::from_utf8(css).expect("utf-8"), mine);
}

#[test]
fn subscribe_form_when_http_is_configured() {
    let mut config = small_config();
    let without =
        Fixture::new(config.clone(), Corpus::default()).index(utc("2027-01-15T12:00:00Z"));
    assert!(!without.contains("<form"));
    config.http = Some(config::Http {
        listen: "127.0.0.1:8081".parse().expect("address"),
    });
    let with = Fixture::new(config, Corpus::default()).index(utc("2027-01-15T12:00:00Z"));
    assert!(with.contains("<form method=\"post\" action=\"subscribe\">"));
    assert!(with.contains(
        "<label><input type=\"checkbox\" name=\"components\" value=\"web\"> Web &amp; &lt;API&gt;</label>"
    ));
}

#[test]
fn output_is_deterministic() {
    let fixture = Fixture::sample(Language::Sv);
    let now = utc("2019-04-05T12:00:00Z");
    assert_eq!(fixture.index(now), fixture.index(now));
    assert_eq!(fixture.incident(STORAGE), fixture.incident(STORAGE));
}

#[test]
fn index_links_every_feed_and_the_calendar() {
    let now = utc("2026-12-01T12:00:00Z");
    let sv = Fixture::sample(Language::Sv).index(now);
    // Site feeds: discoverable from the head, and listed for people.
    let head = between(&sv, "<head>", "</head>");
    assert!(head.contains(
        "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Exempelhosting driftstatus (Atom)\" href=\"feed.atom\">"
    ));
    assert!(head.contains(
        "<link rel=\"alternate\" type=\"application/rss+xml\" title=\"Exempelhosting driftstatus (RSS)\" href=\"feed.rss\">"
    ));
    let follow = section(&sv, "follow").expect("a follow section");
    assert!(follow.contains(
        "<li>Alla tjänster: <a href=\"feed.atom\">Atom</a> · <a href=\"feed.rss\">RSS</a></li>"
    ));
    // The calendar: webcal:// opens a calendar app as a subscription, the
    // plain link downloads, and the https address is there to paste.
    assert!(follow.contains(
        "<a href=\"webcal://status.example.se/maintenance.ics\">Prenumerera på underhållskalendern</a> (<a href=\"maintenance.ics\">ladda ner maintenance.ics</a>)"
    ));
    assert!(follow.contains("<code>https://status.example.se/maintenance.ics</code>"));

    // Each component row links its own feeds, named for screen readers.
    for (id, name) in [
        ("web-hosting", "Webbhotell"),
        ("mail", "E-post"),
        ("cloud", "Molnservrar"),
        ("customer-portal", "Kundportalen"),
        ("dns", "DNS"),
    ] {
        let row = between(&sv, &format!("id=\"c-{id}\""), "</li>\n");
        let row = row.rsplit("</div>").next().expect("after the bar");
        assert!(
            row.contains(&format!(
                "<a href=\"components/{id}.atom\" title=\"flöde för {name} (Atom)\">Atom<span class=\"vh\"> flöde för {name}</span></a>"
            )),
            "{id}: {row}"
        );
        assert!(
            row.contains(&format!(
                "<a href=\"components/{id}.rss\" title=\"flöde för {name} (RSS)\">RSS<span class=\"vh\"> flöde för {name}</span></a>"
            )),
            "{id}: {row}"
        );
    }
    // The index lists the feeds once, not again in a footer.
    assert!(!sv.contains("<footer"));

    let en = Fixture::sample(Language::En).index(now);
    let follow = section(&en, "follow").expect("a follow section");
    assert!(follow.contains("<h2>Follow updates</h2>"));
    assert!(follow.contains(
        "<a href=\"webcal://status.example.se/en/maintenance.ics\">Subscribe to the maintenance calendar</a> (<a href=\"maintenance.ics\">download maintenance.ics</a>)"
    ));
    assert!(en.contains("title=\"feed for Web hosting (Atom)\""));

    // Other pages keep the feeds and the calendar in their footer.
    let page = Fixture::sample(Language::Sv).incident(STORAGE);
    assert!(page.contains(
        "<footer class=\"site\">\n<p>Prenumerera: <a href=\"../feed.atom\">Atom</a> · <a href=\"../feed.rss\">RSS</a> · <a href=\"../maintenance.ics\">underhållskalender</a></p>\n</footer>"
    ));
}

#[test]
fn upcoming_maintenance_comes_after_the_components_and_ongoing_before() {
    let fixture = Fixture::sample(Language::Sv);
    let before = fixture.index(local(2026, 12, 1, 12, 0));
    let components = before
        .find("<section class=\"components\">")
        .expect("components");
    let upcoming = before
        .find("<section class=\"maintenance\">")
        .expect("maintenance");
    assert!(components < upcoming, "upcoming below the components");
    let during = fixture.index(local(2026, 12, 10, 22, 30));
    let components = during
        .find("<section class=\"components\">")
        .expect("components");
    let ongoing = during
        .find("<section class=\"maintenance\">")
        .expect("maintenance");
    assert!(ongoing < components, "ongoing above the components");
    assert_eq!(during.matches("<section class=\"maintenance\">").count(), 1);
}

/// A component's rows in the incident page's status-over-time table:
/// `time | class | text` per change.
fn timeline(html: &str, name: &str) -> Vec<String> {
    let table = between(html, "<section class=\"timeline\">", "</table>");
    let group = between(
        table,
        &format!("<tr><th scope=\"rowgroup\" colspan=\"2\">{name}</th></tr>"),
        "</tbody>",
    );
    group
        .split("<tr>")
        .skip(1)
        .map(|row| {
            if let Some(text) = row.strip_prefix("<td colspan=\"2\">") {
                return text.split('<').next().expect("text").to_owned();
            }
            let time = between(row, "\">", "</time>");
            let class = between(row, "<span class=\"status ", "\"");
            let text = between(row, "<span class=\"dot\"></span>", "</span>");
            format!("{time} | {class} | {text}")
        })
        .collect()
}

#[test]
fn incident_page_shows_each_component_over_time() {
    let sv = Fixture::sample(Language::Sv).incident(STORAGE);
    assert!(sv.contains("<h2 id=\"timeline-heading\">Status över tid</h2>"));
    assert!(sv.contains(
        "<thead><tr><th scope=\"col\">Från</th><th scope=\"col\">Status</th></tr></thead>"
    ));
    // From the file's `components:` lines: degraded at the first update,
    // partial outage 20 minutes later, still partial on 7 April (no row),
    // degraded on 8 April, and all clear when resolved.
    assert_eq!(
        timeline(&sv, "Molnservrar"),
        [
            "4 april 2019 08:00 CEST | s-degraded | Försämrad prestanda",
            "4 april 2019 08:20 CEST | s-partial-outage | Delvis avbrott",
            "8 april 2019 08:30 CEST | s-degraded | Försämrad prestanda",
            "8 april 2019 19:26 CEST | s-operational | Fungerar",
        ]
    );
    // The portal was untouched until 11.20, and operational again before
    // the incident was resolved.
    assert_eq!(
        timeline(&sv, "Kundportalen"),
        [
            "4 april 2019 11:20 CEST | s-degraded | Försämrad prestanda",
            "4 april 2019 14:05 CEST | s-major-outage | Större avbrott",
            "7 april 2019 10:00 CEST | s-degraded | Försämrad prestanda",
            "7 april 2019 14:30 CEST | s-operational | Fungerar",
        ]
    );
    assert_eq!(
        timeline(&sv, "E-post"),
        [
            "4 april 2019 08:00 CEST | s-degraded | Försämrad prestanda",
            "4 april 2019 08:20 CEST | s-partial-outage | Delvis avbrott",
            "4 april 2019 10:20 CEST | s-major-outage | Större avbrott",
            "6 april 2019 19:00 CEST | s-operational | Fungerar",
        ]
    );
    // Rows follow the incident's component order.
    let order: Vec<usize> = ["Webbhotell", "E-post", "Molnservrar", "Kundportalen"]
        .iter()
        .map(|name| {
            sv.find(&format!("colspan=\"2\">{name}</th>"))
                .expect("row group")
        })
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");

    let en = Fixture::sample(Language::En).incident(STORAGE);
    assert!(en.contains("<h2 id=\"timeline-heading\">Status over time</h2>"));
    assert_eq!(
        timeline(&en, "Cloud servers")[3],
        "April 8, 2019 19:26 CEST | s-operational | Operational"
    );

    // A maintenance holds its components for its window.
    let maintenance = Fixture::sample(Language::En).incident("dns-upgrade-2026-12");
    assert_eq!(
        timeline(&maintenance, "DNS"),
        [
            "December 10, 2026 22:00 CET | s-maintenance | Under maintenance",
            "December 11, 2026 02:00 CET | s-operational | Operational",
        ]
    );
}

#[test]
fn a_component_the_incident_never_held_says_so() {
    let config = small_config();
    let file = "+++\ntitle = \"Web only\"\ncomponents = [\"web\", \"mail\"]\nseverity = \"minor\"\n+++\n\n\
                ## 2026-03-01 10:00 investigating\ncomponents: mail=operational\nLooking.\n\n\
                ## 2026-03-01 11:00 resolved\nFixed.\n";
    let corpus = parse_all(&config, &[(PathBuf::from("web-only.md"), file.to_owned())]);
    let page = Fixture::new(config, corpus).incident("web-only");
    assert_eq!(timeline(&page, "Mail"), ["Not affected"]);
    assert_eq!(
        timeline(&page, "Web &amp; &lt;API&gt;"),
        [
            "March 1, 2026 10:00 CET | s-degraded | Degraded performance",
            "March 1, 2026 11:00 CET | s-operational | Operational",
        ]
    );
}
