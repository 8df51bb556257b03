//! Tests of reading `herald.toml`: what parses, and each error with its
//! place.

use super::*;

fn check_error(text: &str, expect: &str) {
    let errors = parse(Path::new("conf/herald.toml"), text).expect_err("config should be rejected");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(shown.join("\n"), expect);
}

const GOOD: &str = r#"
[site]
title = "Example"
base_url = "https://status.example.com"
timezone = "Europe/Stockholm"
language = "sv"

[paths]
incidents = "inc"

[[components]]
id = "mail"
name = "Mail"
group = "Hosting"

[email]
from = "Status <status@example.com>"
grace = "90s"

[publish]
command = ["cp", "-r", "{output}/", "/tmp/x"]

[http]
listen = "127.0.0.1:8081"
"#;

#[test]
fn good_config() {
    let config = parse(Path::new("conf/herald.toml"), GOOD).unwrap();
    assert_eq!(config.site.base_url, "https://status.example.com/");
    assert_eq!(config.site.timezone, chrono_tz::Europe::Stockholm);
    assert_eq!(config.site.language(), Language::Sv);
    assert_eq!(config.site.languages.others(), []);
    assert_eq!(config.paths.incidents, Path::new("conf/inc"));
    assert_eq!(config.paths.output, Path::new("conf/public"));
    assert_eq!(config.components[0].group.as_deref(), Some("Hosting"));
    let email = config.email.unwrap();
    assert_eq!(email.grace, Duration::from_secs(90));
    assert_eq!(email.max_age, Duration::from_secs(86400));
    assert_eq!(email.smtp, Transport::File);
    assert_eq!(email.retry_base, Duration::from_secs(60));
    assert_eq!(config.site.host(), "status.example.com");
    assert_eq!(config.publish.unwrap().timeout, Duration::from_secs(60));
    assert_eq!(config.http.unwrap().listen.port(), 8081);
}

#[test]
fn the_sender_and_the_transport_are_parsed_once() {
    let text = GOOD.replace("grace = \"90s\"", "smtp = \"smtps://mail.example.com\"");
    let email = parse(Path::new("conf/herald.toml"), &text)
        .unwrap()
        .email
        .unwrap();
    assert_eq!(email.from.name.as_deref(), Some("Status"));
    assert_eq!(email.from.email.to_string(), "status@example.com");
    assert_eq!(
        email.smtp,
        Transport::Smtp {
            host: "mail.example.com".into(),
            port: 465,
            tls: Tls::Wrapper,
        }
    );
    assert_eq!(email.smtp_url, "smtps://mail.example.com");
}

#[test]
fn without_email_files_from_herald_at_the_host() {
    let site = |base_url: &str| {
        let text = format!("[site]\ntitle = \"x\"\nbase_url = \"{base_url}\"\n");
        parse(Path::new("herald.toml"), &text).unwrap()
    };
    let email = site("https://status.example.com:8443/status/").email_or_default();
    assert_eq!(email.from.name, None);
    assert_eq!(email.from.email.to_string(), "herald@status.example.com");
    assert_eq!(email.smtp, Transport::File);
    assert_eq!(email.smtp_url, "file");
    // Hosts that make no address: the configuration stays good.
    for base_url in [
        "https:///",
        "https://status..example/",
        "http://[::1]:8080/",
    ] {
        let from = site(base_url).email_or_default().from;
        assert_eq!(from.to_string(), "herald@localhost", "{base_url}");
        assert_eq!(from.email, "herald@localhost".parse().unwrap());
    }
}

#[test]
fn transports() {
    let smtp = |host: &str, port, tls| {
        Ok(Transport::Smtp {
            host: host.into(),
            port,
            tls,
        })
    };
    assert_eq!(Transport::parse("file"), Ok(Transport::File));
    assert_eq!(
        Transport::parse("smtp://127.0.0.1:2525"),
        smtp("127.0.0.1", 2525, Tls::None)
    );
    assert_eq!(
        Transport::parse("smtp://mail.example.com"),
        smtp("mail.example.com", 25, Tls::None)
    );
    assert_eq!(
        Transport::parse("smtps://mail.example.com:465"),
        smtp("mail.example.com", 465, Tls::Wrapper)
    );
    assert_eq!(
        Transport::parse("smtp://mail.example.com:587?tls=starttls"),
        smtp("mail.example.com", 587, Tls::StartTls)
    );
    assert_eq!(
        Transport::parse("smtp://[::1]:25"),
        smtp("::1", 25, Tls::None)
    );
    assert_eq!(Transport::parse("smtp://h:x"), Err("invalid port"));
    assert_eq!(
        Transport::parse("smtps://h?tls=starttls"),
        Err("unknown option")
    );
    assert_eq!(Transport::parse("smtp://:25"), Err("invalid host"));
}

#[test]
fn unknown_key_is_an_error_with_position() {
    check_error(
        "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\ntitel = \"y\"\n",
        "conf/herald.toml:4:1: error: unknown field `titel`, expected one of `title`, `base_url`, `timezone`, `language`, `languages`",
    );
}

#[test]
fn titles_names_and_groups_may_be_given_per_language() {
    let text = "[site]\ntitle = { sv = \"Driftstatus\", en = \"Service status\" }\nbase_url = \"https://x/\"\nlanguages = [\"sv\", \"en\"]\n\n[[components]]\nid = \"web\"\nname.sv = \"Webbhotell\"\nname.en = \"Web hosting\"\ngroup = \"Värd\"\n";
    let config = parse(Path::new("herald.toml"), text).unwrap();
    assert_eq!(config.site.title, "Driftstatus");
    assert_eq!(config.site.title_in(Language::En), "Service status");
    assert_eq!(config.site.title_in(Language::Sv), "Driftstatus");
    let web = &config.components[0];
    assert_eq!(web.name_in(Language::En), "Web hosting");
    assert_eq!(web.name_in(Language::Sv), "Webbhotell");
    // A group without an English name keeps the site's.
    assert_eq!(web.group_in(Language::En), Some("Värd"));
    assert_eq!(config.component_name("web", Language::En), "Web hosting");
    // A component no longer configured is named by its id.
    assert_eq!(config.component_name("gone", Language::En), "gone");

    let site = "[site]\ntitle = \"T\"\nbase_url = \"https://x/\"\nlanguages = [\"sv\", \"en\"]\n";
    check_error(
        &format!("{site}[[components]]\nid = \"web\"\nname = {{ en = \"Web\" }}\n"),
        "conf/herald.toml:7:8: error: `name` has no `sv` entry, expected the text in the site's language, such as name.sv = \"…\"",
    );
    check_error(
        &format!("{site}[[components]]\nid = \"web\"\nname = {{ sv = \"Webb\", en = \" \" }}\n"),
        "conf/herald.toml:7:8: error: `name.en` is empty",
    );
    check_error(
        "[site]\ntitle = \"\"\nbase_url = \"https://x/\"\n",
        "conf/herald.toml:2:9: error: `title` is empty",
    );
    check_error(
        "[site]\ntitle = \"T\"\nbase_url = \"https://x/\"\n\n[[components]]\nid = \"web\"\nname = { sv = \"Webb\" }\n",
        "conf/herald.toml:7:8: error: `name.sv`: `sv` is not one of the site's languages (`en`); list it in `languages` under [site]\nconf/herald.toml:7:8: error: `name` has no `en` entry, expected the text in the site's language, such as name.en = \"…\"",
    );
}

#[test]
fn languages_list_the_sites_first() {
    let site = |line: &str| {
        let text = format!("[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\n{line}\n");
        parse(Path::new("herald.toml"), &text).map(|config| config.site.languages)
    };
    let both = site("languages = [\"sv\", \"en\"]").unwrap();
    assert_eq!(both.site(), Language::Sv);
    assert_eq!(both.others(), [Language::En]);
    assert_eq!(both.prefix(Language::Sv), "");
    assert_eq!(both.prefix(Language::En), "en/");
    assert_eq!(
        site("languages = [\"en\"]").unwrap(),
        Languages::one(Language::En)
    );
    assert_eq!(
        site("language = \"sv\"").unwrap(),
        Languages::one(Language::Sv)
    );
    assert_eq!(site("").unwrap(), Languages::one(Language::En));
    check_error(
        "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\nlanguages = [\"sv\", \"de\", \"sv\"]\n",
        "conf/herald.toml:4:20: error: unknown language `de`, expected `sv` or `en`
conf/herald.toml:4:26: error: language `sv` is listed twice",
    );
    check_error(
        "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\nlanguages = []\n",
        "conf/herald.toml:4:13: error: `languages` is empty, expected the site's language first, such as [\"sv\", \"en\"]",
    );
    check_error(
        "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\nlanguage = \"sv\"\nlanguages = [\"sv\"]\n",
        "conf/herald.toml:4:12: error: give either `language` or `languages`, not both; `languages = [\"sv\", \"en\"]` lists the site's language first",
    );
}

#[test]
fn alertmanager_needs_http_and_known_severities() {
    let site = "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\n";
    check_error(
        &format!("{site}[alertmanager]\ntoken_file = \"t\"\n"),
        "conf/herald.toml:4:1: error: `[alertmanager]` needs `[http]`: its hook is served there",
    );
    check_error(
        &format!(
            "{site}[http]\nlisten = \"127.0.0.1:1\"\n[alertmanager]\ntoken_file = \"t\"\nseverity = {{ page = \"urgent\" }}\n"
        ),
        "conf/herald.toml:8:21: error: unknown severity `urgent`, expected `minor`, `major` or `critical`",
    );
    let config = parse(
        Path::new("conf/herald.toml"),
        &format!(
            "{site}[http]\nlisten = \"127.0.0.1:1\"\n[alertmanager]\ntoken_file = \"t\"\nseverity = {{ warning = \"major\" }}\n"
        ),
    )
    .unwrap();
    let settings = config.alertmanager.unwrap();
    assert_eq!(settings.token_file, Path::new("conf/t"));
    assert_eq!(settings.component_label, "component");
    assert_eq!(settings.severity["warning"], Severity::Major);
    assert_eq!(settings.severity["critical"], Severity::Critical);
    assert!(!settings.resolve);
}

#[test]
fn matrix_account_is_parsed_and_its_errors_placed() {
    let config = parse(
        Path::new("conf/herald.toml"),
        &format!(
            "{GOOD}\n[matrix]\nhomeserver = \"https://matrix.example.org\"\naccess_token_file = \"matrix-token\"\n"
        ),
    )
    .unwrap();
    let matrix = config.matrix.unwrap();
    assert_eq!(matrix.homeserver.host, "matrix.example.org");
    assert_eq!(matrix.access_token_file, Path::new("conf/matrix-token"));
    assert!(
        parse(Path::new("conf/herald.toml"), GOOD)
            .unwrap()
            .matrix
            .is_none()
    );
    check_error(
        &format!(
            "{GOOD}\n[matrix]\nhomeserver = \"http://matrix.example.org\"\naccess_token_file = \"t\"\n"
        ),
        "conf/herald.toml:27:14: error: `http://matrix.example.org` would send the access token unencrypted; use https:// (plain http:// only to a loopback host)",
    );
    check_error(
        &format!("{GOOD}\n[matrix]\nhomeserver = \"https://m.example.org\"\n"),
        "conf/herald.toml:26:1: error: missing field `access_token_file`",
    );
}

#[test]
fn syntax_error() {
    check_error(
        "[site\n",
        "conf/herald.toml:1:6: error: unclosed table, expected `]`",
    );
}

#[test]
fn missing_site() {
    check_error("", "conf/herald.toml:1:1: error: missing field `site`");
}

#[test]
fn bad_values_are_all_reported() {
    check_error(
        r#"[site]
title = "x"
base_url = "status.example.com"
timezone = "Europe/Stockholmm"
language = "de"
[[components]]
id = "Mail"
name = "Mail"
[[components]]
id = "web"
name = "Web"
[[components]]
id = "web"
name = "Web again"
[email]
from = "nobody"
smtp = "http://x"
grace = "soon"
[publish]
command = []
[http]
listen = "localhost"
"#,
        "conf/herald.toml:3:12: error: expected an absolute http:// or https:// URL, found `status.example.com`
conf/herald.toml:4:12: error: unknown time zone `Europe/Stockholmm`, expected an IANA name such as `Europe/Stockholm`
conf/herald.toml:5:12: error: unknown language `de`, expected `sv` or `en`
conf/herald.toml:7:6: error: invalid component id `Mail`, expected lowercase letters, digits, `.`, `_` or `-`
conf/herald.toml:13:6: error: component `web` is defined twice
conf/herald.toml:18:9: error: invalid duration `soon`: expected number at 0
conf/herald.toml:20:11: error: `command` is empty, expected a program and its arguments
conf/herald.toml:16:8: error: invalid sender address `nobody`
conf/herald.toml:17:8: error: unsupported transport in `http://x`, expected `file`, `smtp://HOST:PORT`, `smtps://HOST:PORT` or `smtp://HOST:PORT?tls=starttls`
conf/herald.toml:22:10: error: invalid listen address `localhost`, expected IP:PORT such as `127.0.0.1:8081`",
    );
}

#[test]
fn maintenance_reminders_default_to_one_hour_and_parse_longest_first() {
    let config = parse(Path::new("conf/herald.toml"), GOOD).unwrap();
    assert_eq!(config.maintenance.reminders, [Duration::from_secs(3600)]);
    let text = format!("{GOOD}\n[maintenance]\nreminders = [\"1h\", \"24h\", \"1h\"]\n");
    let config = parse(Path::new("conf/herald.toml"), &text).unwrap();
    assert_eq!(
        config.maintenance.reminders,
        [Duration::from_secs(86400), Duration::from_secs(3600)]
    );
    let text = format!("{GOOD}\n[maintenance]\nreminders = []\n");
    let config = parse(Path::new("conf/herald.toml"), &text).unwrap();
    assert_eq!(config.maintenance.reminders, Vec::<Duration>::new());
}

#[test]
fn a_bad_or_zero_reminder_is_an_error_at_its_place() {
    let text = format!("{GOOD}\n[maintenance]\nreminders = [\"1h\", \"soon\", \"0s\"]\n");
    check_error(
        &text,
        "conf/herald.toml:27:20: error: invalid duration `soon`: expected number at 0\n\
         conf/herald.toml:27:28: error: a reminder `0s` before the window is no reminder, expected a duration such as `1h`",
    );
}
