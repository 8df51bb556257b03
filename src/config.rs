//! `herald.toml`: text → [`RawConfig`] (serde) → validated [`Config`], or
//! diagnostics with file, line and column.
//!
//! Pure: the caller reads the file and passes its path (for messages and for
//! resolving relative paths) and its text.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use lettre::Address;
use lettre::message::Mailbox;
use serde::Deserialize;
use toml::Spanned;

use crate::diag::{Diagnostic, LineIndex};
use crate::model::{Component, Language, Languages, Severity, is_slug};

mod matrix;
mod webhooks;

pub use matrix::{Homeserver, Matrix, RawMatrix};
pub use webhooks::{RawWebhooks, Webhooks};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub site: RawSite,
    #[serde(default)]
    pub paths: RawPaths,
    #[serde(default)]
    pub components: Vec<RawComponent>,
    pub email: Option<RawEmail>,
    pub publish: Option<RawPublish>,
    pub http: Option<RawHttp>,
    pub alertmanager: Option<Spanned<RawAlertmanager>>,
    pub maintenance: Option<RawMaintenance>,
    pub matrix: Option<RawMatrix>,
    pub webhooks: Option<RawWebhooks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub title: Spanned<RawText>,
    pub base_url: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    pub language: Option<Spanned<String>>,
    pub languages: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaths {
    pub incidents: Option<String>,
    pub output: Option<String>,
    pub state: Option<String>,
    pub templates: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    pub id: Spanned<String>,
    pub name: Spanned<RawText>,
    pub group: Option<Spanned<RawText>>,
}

/// A name or a title: one string in the site's language, or a table of
/// strings by language code (`name = { sv = "Webbhotell", en = "Web
/// hosting" }`, or `name.sv` and `name.en` on lines of their own).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawText {
    One(String),
    ByLanguage(BTreeMap<String, String>),
}

/// `key`'s text in the site's language, and in each further language the
/// table gives. Reports a code that is not one of the site's languages, a
/// table without the site's language, and an empty text.
fn phrase(
    raw: &Spanned<RawText>,
    key: &str,
    languages: &Languages,
    report: &mut dyn FnMut(Range<usize>, String),
) -> (String, Vec<(Language, String)>) {
    let site = languages.site();
    let (own, others) = match raw.get_ref() {
        RawText::One(text) => (Some(text.clone()), Vec::new()),
        RawText::ByLanguage(table) => {
            let mut own = None;
            let mut others = Vec::new();
            for (code, text) in table {
                match Language::parse(code) {
                    Some(language) if language == site => own = Some(text.clone()),
                    Some(language) if languages.others().contains(&language) => {
                        others.push((language, text.clone()))
                    }
                    _ => report(
                        raw.span(),
                        format!(
                            "`{key}.{code}`: `{code}` is not one of the site's languages ({}); list it in `languages` under [site]",
                            languages
                                .all()
                                .iter()
                                .map(|language| format!("`{}`", language.code()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
            }
            if own.is_none() {
                report(
                    raw.span(),
                    format!(
                        "`{key}` has no `{0}` entry, expected the text in the site's language, such as {key}.{0} = \"…\"",
                        site.code()
                    ),
                );
            }
            (own, others)
        }
    };
    if own.as_deref().is_some_and(|own| own.trim().is_empty()) {
        report(raw.span(), format!("`{key}` is empty"));
    }
    let own = own.unwrap_or_default();
    for (language, text) in &others {
        if text.trim().is_empty() {
            report(raw.span(), format!("`{key}.{}` is empty", language.code()));
        }
    }
    (own, others)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub from: Spanned<String>,
    pub smtp: Option<Spanned<String>>,
    pub smtp_user: Option<String>,
    pub smtp_password_file: Option<String>,
    pub grace: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
    pub retry_base: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPublish {
    pub command: Spanned<Vec<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    pub reminders: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    pub token_file: String,
    pub component_label: Option<String>,
    pub severity: Option<BTreeMap<String, Spanned<String>>>,
    pub resolve: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file itself.
    pub path: PathBuf,
    pub site: Site,
    pub paths: Paths,
    pub components: Vec<Component>,
    pub email: Option<Email>,
    pub publish: Option<Publish>,
    pub http: Option<Http>,
    pub alertmanager: Option<Alertmanager>,
    pub maintenance: Maintenance,
    /// `[matrix]`: herald's account for posting to subscribed rooms.
    pub matrix: Option<Matrix>,
    /// `[webhooks]`: which addresses webhooks may reach beyond public
    /// ones, and how long a post may take.
    pub webhooks: Webhooks,
}

/// `[maintenance]`: the notices herald sends by itself around a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// How long before `starts` each reminder goes out, longest first,
    /// distinct and never zero; empty for none.
    pub reminders: Vec<Duration>,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            reminders: vec![DEFAULT_REMINDER],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Site {
    /// The title in the site's language.
    pub title: String,
    /// The title in further languages (`title.en = "…"`).
    pub titles: Vec<(Language, String)>,
    /// Always ends with `/`.
    pub base_url: String,
    pub timezone: Tz,
    /// The site's language first, then those its pages are translated
    /// into (`language = "sv"` or `languages = ["sv", "en"]`).
    pub languages: Languages,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub incidents: PathBuf,
    pub output: PathBuf,
    pub state: PathBuf,
    pub templates: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Email {
    /// The sender of every message (`From:` and the envelope).
    pub from: Mailbox,
    /// Where mail goes: `smtp`, parsed (`file` when not set).
    pub smtp: Transport,
    /// `smtp` as written (`file`, `smtp://…` or `smtps://…`), to name it
    /// in messages.
    pub smtp_url: String,
    /// The SMTP login; the address part of `from` when not set.
    pub smtp_user: Option<String>,
    pub smtp_password_file: Option<PathBuf>,
    pub grace: Duration,
    pub max_age: Duration,
    /// The first retry delay after a transient failure; it doubles up to
    /// 60 times this (1 minute to 1 hour by default). Tests shorten it.
    pub retry_base: Duration,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub command: Vec<String>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub listen: SocketAddr,
}

/// `[alertmanager]`: alerts in through `POST /hooks/alertmanager` on the
/// `[http]` listener.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    /// Holds the bearer token Alertmanager sends.
    pub token_file: PathBuf,
    /// The label naming an alert's component.
    pub component_label: String,
    /// `labels.severity` value → severity; values not here are `major`.
    pub severity: BTreeMap<String, Severity>,
    /// Whether a resolved group appends a `resolved` update to its
    /// published incident.
    pub resolve: bool,
}

/// Alertmanager's usual severities, before `[alertmanager.severity]`.
const DEFAULT_ALERT_SEVERITIES: &[(&str, Severity)] = &[
    ("critical", Severity::Critical),
    ("error", Severity::Major),
    ("warning", Severity::Minor),
    ("info", Severity::Minor),
];

impl Config {
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }

    /// The name of component `id` in `language`; the id itself for a
    /// component no longer configured.
    pub fn component_name<'a>(&'a self, id: &'a str, language: Language) -> &'a str {
        self.component(id)
            .map_or(id, |component| component.name_in(language))
    }

    /// The `[email]` settings, or without that section the defaults:
    /// messages written as files, from `herald@` the site's host
    /// (`default_sender`).
    pub fn email_or_default(&self) -> Email {
        self.email.clone().unwrap_or_else(|| Email {
            from: default_sender(self.site.host()),
            smtp: Transport::File,
            smtp_url: "file".into(),
            smtp_user: None,
            smtp_password_file: None,
            grace: DEFAULT_GRACE,
            max_age: DEFAULT_MAX_AGE,
            retry_base: DEFAULT_RETRY_BASE,
        })
    }
}

/// `herald@HOST`, the sender without `[email]`, or `herald@localhost`
/// when `host` cannot form an address (`https:///`, `status..example`,
/// `[::1]`). Without `[email]` messages only go to files, so a made-up
/// sender harms nothing, while refusing the configuration would stop the
/// pages over a setting nobody made.
fn default_sender(host: &str) -> Mailbox {
    format!("herald@{host}")
        .parse()
        .unwrap_or_else(|_| Mailbox::new(None, Address::new_dangerous("herald", "localhost")))
}

impl Site {
    /// The site's language: the first of `languages`.
    pub fn language(&self) -> Language {
        self.languages.site()
    }

    /// The title in `language`, or in the site's language.
    pub fn title_in(&self, language: Language) -> &str {
        crate::model::in_language(&self.title, &self.titles, language)
    }

    /// The host name of `base_url` (`status.example.com`).
    pub fn host(&self) -> &str {
        let rest = self
            .base_url
            .split_once("://")
            .map_or(self.base_url.as_str(), |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    }
}

/// Where mail goes: `[email] smtp`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `.eml` files under `state/outbox-files/`.
    File,
    Smtp {
        host: String,
        port: u16,
        tls: Tls,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// `smtp://`: plain, for a relay on the same machine or network.
    None,
    /// `smtp://…?tls=starttls`: STARTTLS required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
}

impl Transport {
    pub fn parse(url: &str) -> Result<Transport, &'static str> {
        if url == "file" {
            return Ok(Transport::File);
        }
        let (rest, mut tls, default_port) = if let Some(rest) = url.strip_prefix("smtp://") {
            (rest, Tls::None, 25)
        } else if let Some(rest) = url.strip_prefix("smtps://") {
            (rest, Tls::Wrapper, 465)
        } else {
            return Err("unsupported transport");
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair {
                "tls=starttls" if tls == Tls::None => tls = Tls::StartTls,
                "tls=none" if tls == Tls::None => {}
                _ => return Err("unknown option"),
            }
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| "invalid port")?),
            None => (authority, default_port),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err("invalid host");
        }
        Ok(Transport::Smtp {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

const DEFAULT_GRACE: Duration = Duration::from_secs(60);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(60);
const DEFAULT_REMINDER: Duration = Duration::from_secs(3600);

/// Parses and validates a configuration. `path` names the file in messages
/// and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let index = LineIndex::new(text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(error) => {
            let offset = error.span().map_or(0, |span| span.start);
            return Err(vec![Diagnostic::error(
                path,
                &index,
                offset,
                error.message().trim_end(),
            )]);
        }
    };
    let mut errors = Vec::new();
    let mut report = |span: Range<usize>, message: String| {
        errors.push(Diagnostic::error(path, &index, span.start, message));
    };

    let base = path.parent().unwrap_or(Path::new("")).to_owned();
    let resolve =
        |value: &Option<String>, default: &str| base.join(value.as_deref().unwrap_or(default));

    let mut base_url = raw.site.base_url.get_ref().clone();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
        || base_url.contains(char::is_whitespace)
    {
        report(
            raw.site.base_url.span(),
            format!("expected an absolute http:// or https:// URL, found `{base_url}`"),
        );
    }
    if !base_url.ends_with('/') {
        base_url.push('/');
    }

    let timezone = match &raw.site.timezone {
        None => Tz::UTC,
        Some(name) => name.get_ref().parse::<Tz>().unwrap_or_else(|_| {
            report(
                name.span(),
                format!(
                    "unknown time zone `{}`, expected an IANA name such as `Europe/Stockholm`",
                    name.get_ref()
                ),
            );
            Tz::UTC
        }),
    };

    let language = |code: &Spanned<String>, report: &mut dyn FnMut(Range<usize>, String)| {
        Language::parse(code.get_ref()).or_else(|| {
            report(
                code.span(),
                format!(
                    "unknown language `{}`, expected `sv` or `en`",
                    code.get_ref()
                ),
            );
            None
        })
    };
    let languages = match (&raw.site.language, &raw.site.languages) {
        (None, None) => Languages::one(Language::En),
        (Some(code), None) => Languages::one(language(code, &mut report).unwrap_or(Language::En)),
        (Some(code), Some(_)) => {
            report(
                code.span(),
                "give either `language` or `languages`, not both; `languages = [\"sv\", \"en\"]` lists the site's language first".into(),
            );
            Languages::one(Language::En)
        }
        (None, Some(list)) => {
            let mut parsed: Vec<Language> = Vec::new();
            for code in list.get_ref() {
                let Some(found) = language(code, &mut report) else {
                    continue;
                };
                if parsed.contains(&found) {
                    report(
                        code.span(),
                        format!("language `{}` is listed twice", code.get_ref()),
                    );
                } else {
                    parsed.push(found);
                }
            }
            match parsed.split_first() {
                Some((site, others)) => {
                    Languages::new(*site, others).unwrap_or_else(|| Languages::one(*site))
                }
                None => {
                    if list.get_ref().is_empty() {
                        report(
                            list.span(),
                            "`languages` is empty, expected the site's language first, such as [\"sv\", \"en\"]".into(),
                        );
                    }
                    Languages::one(Language::En)
                }
            }
        }
    };

    let (title, titles) = phrase(&raw.site.title, "title", &languages, &mut report);

    let mut components: Vec<Component> = Vec::new();
    for raw_component in &raw.components {
        let id = raw_component.id.get_ref();
        if !is_slug(id) {
            report(
                raw_component.id.span(),
                format!(
                    "invalid component id `{id}`, expected lowercase letters, digits, `.`, `_` or `-`"
                ),
            );
        } else if components.iter().any(|c| &c.id == id) {
            report(
                raw_component.id.span(),
                format!("component `{id}` is defined twice"),
            );
        }
        let (name, names) = phrase(&raw_component.name, "name", &languages, &mut report);
        let (group, group_names) = match &raw_component.group {
            Some(group) => {
                let (group, names) = phrase(group, "group", &languages, &mut report);
                (Some(group), names)
            }
            None => (None, Vec::new()),
        };
        components.push(Component {
            id: id.clone(),
            name,
            names,
            group,
            group_names,
        });
    }

    let mut duration = |value: &Option<Spanned<String>>, default: Duration| match value {
        None => default,
        Some(text) => humantime::parse_duration(text.get_ref()).unwrap_or_else(|error| {
            report(
                text.span(),
                format!("invalid duration `{}`: {error}", text.get_ref()),
            );
            default
        }),
    };

    // The durations here, the addresses after `[publish]`: the order in
    // which their errors are reported.
    let email_timing = raw.email.as_ref().map(|email| {
        (
            duration(&email.grace, DEFAULT_GRACE),
            duration(&email.max_age, DEFAULT_MAX_AGE),
            duration(&email.retry_base, DEFAULT_RETRY_BASE),
        )
    });
    let publish = raw.publish.as_ref().map(|publish| Publish {
        command: publish.command.get_ref().clone(),
        timeout: duration(&publish.timeout, Duration::from_secs(60)),
    });
    if let Some(publish) = &raw.publish
        && publish.command.get_ref().is_empty()
    {
        report(
            publish.command.span(),
            "`command` is empty, expected a program and its arguments".into(),
        );
    }
    let email = raw.email.as_ref().zip(email_timing).and_then(
        |(email, (grace, max_age, retry_base))| {
            let from = email.from.get_ref().parse::<Mailbox>().ok();
            if from.is_none() {
                report(
                    email.from.span(),
                    format!("invalid sender address `{}`", email.from.get_ref()),
                );
            }
            let (smtp, smtp_url) = match &email.smtp {
                None => (Some(Transport::File), "file".to_owned()),
                Some(smtp) => {
                    let url = smtp.get_ref();
                    let transport = Transport::parse(url);
                    if let Err(problem) = &transport {
                        report(
                            smtp.span(),
                            format!(
                                "{problem} in `{url}`, expected `file`, `smtp://HOST:PORT`, `smtps://HOST:PORT` or `smtp://HOST:PORT?tls=starttls`"
                            ),
                        );
                    }
                    (transport.ok(), url.clone())
                }
            };
            Some(Email {
                from: from?,
                smtp: smtp?,
                smtp_url,
                smtp_user: email.smtp_user.clone(),
                smtp_password_file: email.smtp_password_file.as_ref().map(|p| base.join(p)),
                grace,
                max_age,
                retry_base,
            })
        },
    );
    let maintenance = match raw.maintenance.as_ref().and_then(|m| m.reminders.as_ref()) {
        None => Maintenance::default(),
        Some(written) => {
            let mut reminders: Vec<Duration> = Vec::new();
            for lead in written {
                match humantime::parse_duration(lead.get_ref()) {
                    Ok(duration) if duration.is_zero() => report(
                        lead.span(),
                        format!(
                            "a reminder `{}` before the window is no reminder, expected a duration such as `1h`",
                            lead.get_ref()
                        ),
                    ),
                    Ok(duration) => reminders.push(duration),
                    Err(error) => report(
                        lead.span(),
                        format!("invalid duration `{}`: {error}", lead.get_ref()),
                    ),
                }
            }
            reminders.sort_unstable_by(|a, b| b.cmp(a));
            reminders.dedup();
            Maintenance { reminders }
        }
    };
    let http = raw.http.as_ref().and_then(|http| {
        match http.listen.get_ref().parse::<SocketAddr>() {
            Ok(listen) => Some(Http { listen }),
            Err(_) => {
                report(
                    http.listen.span(),
                    format!(
                        "invalid listen address `{}`, expected IP:PORT such as `127.0.0.1:8081`",
                        http.listen.get_ref()
                    ),
                );
                None
            }
        }
    });
    let alertmanager = raw.alertmanager.as_ref().map(|table| {
        if raw.http.is_none() {
            report(
                table.span(),
                "`[alertmanager]` needs `[http]`: its hook is served there".into(),
            );
        }
        let table = table.get_ref();
        let mut severity: BTreeMap<String, Severity> = DEFAULT_ALERT_SEVERITIES
            .iter()
            .map(|(label, severity)| ((*label).to_owned(), *severity))
            .collect();
        for (label, value) in table.severity.iter().flatten() {
            match Severity::parse(value.get_ref()) {
                Some(parsed) => {
                    severity.insert(label.clone(), parsed);
                }
                None => report(
                    value.span(),
                    format!(
                        "unknown severity `{}`, expected `minor`, `major` or `critical`",
                        value.get_ref()
                    ),
                ),
            }
        }
        Alertmanager {
            token_file: base.join(&table.token_file),
            component_label: table
                .component_label
                .clone()
                .unwrap_or_else(|| "component".to_owned()),
            severity,
            resolve: table.resolve.unwrap_or(false),
        }
    });
    let matrix = raw
        .matrix
        .as_ref()
        .and_then(|raw| matrix::validate(raw, &base, &mut report));
    let webhooks = webhooks::validate(raw.webhooks.as_ref(), &mut report);

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        path: path.to_owned(),
        site: Site {
            title,
            titles,
            base_url,
            timezone,
            languages,
        },
        paths: Paths {
            incidents: resolve(&raw.paths.incidents, "incidents"),
            output: resolve(&raw.paths.output, "public"),
            state: resolve(&raw.paths.state, "state"),
            templates: raw.paths.templates.as_ref().map(|t| base.join(t)),
        },
        components,
        email,
        publish,
        http,
        alertmanager,
        maintenance,
        matrix,
        webhooks,
    })
}

#[cfg(test)]
mod tests;
