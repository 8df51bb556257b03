//! [`Announcement`] × [`Subscriber`] → one email ([`lettre::Message`]).
//! Pure: the send time (`Date`) is passed in, and the Message-ID, MIME
//! boundary and every header derive from the inputs, so the same inputs
//! give the same bytes.
//!
//! Every email of an incident refers (`In-Reply-To`, `References`) to one
//! root Message-ID, `<incident-ID@HOST>`, so mail clients show the
//! incident as a thread. Each carries `List-Unsubscribe` with the
//! subscriber's link and a mailto, and `List-Unsubscribe-Post` for
//! RFC 8058 one-click unsubscribing.
//!
//! The text and HTML parts come from `templates/email/` (compiled in),
//! or from the operator's overrides ([`Composer::with_overrides`], which
//! tries each on sample emails first), with strings per language. A
//! fan-out renders them once per [`Variant`] (language and followed
//! components) with a slot for the token, which each email fills: the
//! templates were a quarter of the mailer's CPU when they ran per
//! subscriber. Nothing from an incident can add a header: control
//! characters in the title become spaces, and lettre encodes header
//! values.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

use crate::announce::Announcement;
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::model::Language;
use crate::model::{ComponentStatus, Confirmation, Follows, IncidentId, Kind, Status, Subscriber};
use crate::render::templates::{EMAILS, Override, Trial};
use crate::render::{i18n, update_url};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid recipient address `{address}`")]
    Recipient {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("invalid sender `{from}`")]
    Sender {
        from: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("rendering email template {name}")]
    Template {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("building the email")]
    Build(#[source] lettre::error::Error),
}

/// The strings of the emails, per language.
const STRINGS_SV: &str = include_str!("../templates/email/sv.toml");
const STRINGS_EN: &str = include_str!("../templates/email/en.toml");

/// The compiled email templates.
pub struct Composer {
    env: Environment<'static>,
    strings: Strings,
}

/// The strings of both languages, for the templates (`s`) and for the
/// subjects.
struct Strings {
    sv: toml::Table,
    en: toml::Table,
}

impl Strings {
    fn of(&self, language: Language) -> &toml::Table {
        match language {
            Language::Sv => &self.sv,
            Language::En => &self.en,
        }
    }

    fn string(&self, language: Language, key: &str, site: &str) -> String {
        self.of(language)
            .get(key)
            .and_then(toml::Value::as_str)
            .unwrap_or(key)
            .replace("{site}", site)
    }

    /// The strings of `language` with `{site}` filled in.
    fn with_site(&self, language: Language, site_title: &str) -> toml::Table {
        self.of(language)
            .iter()
            .map(|(key, value)| match value.as_str() {
                Some(text) => (
                    key.clone(),
                    toml::Value::String(text.replace("{site}", site_title)),
                ),
                None => (key.clone(), value.clone()),
            })
            .collect()
    }
}

impl std::fmt::Debug for Composer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composer").finish_non_exhaustive()
    }
}

impl Default for Composer {
    fn default() -> Self {
        Composer::new()
    }
}

impl Composer {
    /// The built-in templates alone.
    pub fn new() -> Composer {
        Composer {
            env: EMAILS.environment(),
            strings: Strings {
                sv: toml::from_str(STRINGS_SV).unwrap_or_default(),
                en: toml::from_str(STRINGS_EN).unwrap_or_default(),
            },
        }
    }

    /// The built-ins with the operator's templates on top, each
    /// `(template name, file path for messages, text)`.
    ///
    /// An override that does not compile, or that fails on sample emails
    /// built from `config` (a misspelt variable fails only when rendered,
    /// and at send time it would fail every alert for good), is reported
    /// and the built-in stays. A name that is not a built-in is loaded
    /// (another template may include it) and warned about.
    pub fn with_overrides(
        config: &Config,
        overrides: Vec<Override>,
    ) -> (Composer, Vec<Diagnostic>) {
        let mut composer = Composer::new();
        let strings = &composer.strings;
        let mut check =
            |env: &Environment<'static>, name: &str| try_samples(env, strings, config, name);
        let trial = Trial {
            failure: "template fails on a sample email",
            check: &mut check,
        };
        let applied = EMAILS.apply_overrides(&mut composer.env, overrides, Some(trial));
        (composer, applied.diagnostics)
    }

    fn render_template(&self, name: &'static str, context: &Value) -> Result<String, Error> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|source| Error::Template { name, source })
    }

    /// The email announcing `announcement` to `subscriber`, dated `now`.
    pub fn compose(
        &self,
        config: &Config,
        announcement: &Announcement,
        subscriber: &Subscriber,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let rendered = self.render(config, announcement, &Variant::of(announcement, subscriber))?;
        self.alert(config, announcement, &rendered, subscriber, now)
    }

    /// What the emails of `announcement` to every subscriber of `variant`
    /// share: their text and HTML, with a slot for the token.
    pub fn render(
        &self,
        config: &Config,
        announcement: &Announcement,
        variant: &Variant,
    ) -> Result<Rendered, Error> {
        let slot = !mentions_slot(config, announcement);
        let (text, html) = if slot {
            self.parts(config, announcement, variant, TOKEN_SLOT)?
        } else {
            (String::new(), String::new())
        };
        Ok(Rendered {
            from: sender(config)?,
            text,
            html,
            slot,
        })
    }

    /// The email announcing `announcement` to `subscriber`, from what
    /// [`Composer::render`] made for the subscriber's variant.
    pub fn alert(
        &self,
        config: &Config,
        announcement: &Announcement,
        rendered: &Rendered,
        subscriber: &Subscriber,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let language = subscriber.language;
        let site = &config.site;
        let host = site.host();
        let site_title = one_line(&site.title);
        let title = one_line(&announcement.title);
        let status = i18n::status_label(language, announcement.status);
        let subject = format!("[{site_title}] {status}: {title}");
        let from = rendered.from.clone();
        let unsubscribe_url = format!("{}unsubscribe/{}", site.base_url, subscriber.token);
        // A token is hex; anything else is rendered, and so escaped, for
        // this email alone.
        let (text, html) = if rendered.slot && is_plain_token(&subscriber.token) {
            (
                rendered.text.replace(TOKEN_SLOT, &subscriber.token),
                rendered.html.replace(TOKEN_SLOT, &subscriber.token),
            )
        } else {
            let variant = Variant::of(announcement, subscriber);
            self.parts(config, announcement, &variant, &subscriber.token)?
        };
        let message_id = format!(
            "<{}.{}.{}@{host}>",
            id_atom(&announcement.incident),
            announcement.instant.format("%Y%m%dT%H%M%SZ"),
            subscriber.id
        );
        let root = thread_root(&announcement.incident, host);
        let list_unsubscribe = format!(
            "<{unsubscribe_url}>, <mailto:{}?subject=unsubscribe%20{}>",
            from.email, subscriber.token
        );
        let to = recipient(&subscriber.address)?;
        // Given, so that lettre does not parse it back from the headers.
        let envelope = Envelope::new(Some(from.email.clone()), vec![to.email.clone()])
            .map_err(Error::Build)?;
        let builder = Message::builder()
            .envelope(envelope)
            .from(from)
            .to(to)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id.clone()))
            .in_reply_to(root.clone())
            .references(root)
            .raw_header(header("List-Unsubscribe", list_unsubscribe))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(header("Auto-Submitted", "auto-generated".into()));
        builder
            .multipart(alternative(&message_id, text, html))
            .map_err(Error::Build)
    }

    /// The text and HTML parts of an alert with `token` in its links.
    fn parts(
        &self,
        config: &Config,
        announcement: &Announcement,
        variant: &Variant,
        token: &str,
    ) -> Result<(String, String), Error> {
        let context = alert_context(&self.strings, config, announcement, variant, token);
        Ok((
            self.render_template("message.txt", &context)?,
            self.render_template("message.html", &context)?,
        ))
    }

    /// The email asking `confirmation.address` to confirm a subscription
    /// (double opt-in), dated `now`. It is not a list message: no
    /// List-Unsubscribe, since nothing more is sent unless the link is
    /// followed.
    pub fn confirmation(
        &self,
        config: &Config,
        confirmation: &Confirmation,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let (subject, context) = confirmation_context(&self.strings, config, confirmation);
        let text = self.render_template("confirm.txt", &context)?;
        let html = self.render_template("confirm.html", &context)?;
        let message_id = format!(
            "<confirm.{}.{}@{}>",
            confirmation.id,
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            config.site.host()
        );
        Message::builder()
            .from(sender(config)?)
            .to(recipient(&confirmation.address)?)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id.clone()))
            .raw_header(header("Auto-Submitted", "auto-generated".into()))
            .multipart(alternative(&message_id, text, html))
            .map_err(Error::Build)
    }

    /// `herald send-test`: one short message to `address`, dated `now`.
    pub fn test_message(
        &self,
        config: &Config,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let language = config.site.language;
        let site_title = one_line(&config.site.title);
        let subject = format!(
            "[{site_title}] {}",
            self.strings.string(language, "test_subject", &site_title)
        );
        let message_id = format!(
            "<test.{}@{}>",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            config.site.host()
        );
        Message::builder()
            .from(sender(config)?)
            .to(recipient(address)?)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id))
            .raw_header(header("Auto-Submitted", "auto-generated".into()))
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(format!(
                        "{}\n",
                        self.strings.string(language, "test_body", &site_title)
                    )),
            )
            .map_err(Error::Build)
    }
}

/// What `message.txt` and `message.html` see: their interface, which
/// operators' overrides rely on.
fn alert_context(
    strings: &Strings,
    config: &Config,
    announcement: &Announcement,
    variant: &Variant,
    token: &str,
) -> Value {
    let language = variant.language;
    let site = &config.site;
    let site_title = one_line(&site.title);
    let title = one_line(&announcement.title);
    let status = i18n::status_label(language, announcement.status);
    let components: Vec<Value> = announcement
        .components
        .iter()
        .zip(&variant.followed)
        .map(|((id, component_status), followed)| {
            let name = config
                .component(id)
                .map_or(id.as_str(), |component| component.name.as_str());
            context! {
                name => one_line(name),
                status => i18n::component_status_label(language, *component_status),
                followed => followed,
            }
        })
        .collect();
    context! {
        lang => language.code(),
        subject => format!("[{site_title}] {status}: {title}"),
        title => &title,
        status => status,
        when => i18n::date_time(language, announcement.instant, site.timezone),
        body => announcement.body_markdown.trim(),
        body_html => &announcement.body_html,
        components => components,
        url => update_url(&site.base_url, &announcement.incident, announcement.instant),
        unsubscribe_url => format!("{}unsubscribe/{token}", site.base_url),
        why => strings.string(language, "why", &site_title),
        s => Value::from(Serde(strings.of(language))),
    }
}

/// The subject of a confirmation email, and what `confirm.txt` and
/// `confirm.html` see.
fn confirmation_context(
    strings: &Strings,
    config: &Config,
    confirmation: &Confirmation,
) -> (String, Value) {
    let language = confirmation.language;
    let site = &config.site;
    let site_title = one_line(&site.title);
    let subject = format!(
        "[{site_title}] {}",
        strings.string(language, "confirm_subject", &site_title)
    );
    let components: Vec<String> = match &confirmation.follows {
        Follows::All => vec![strings.string(language, "confirm_all", &site_title)],
        Follows::Components(ids) => ids
            .iter()
            .map(|id| {
                one_line(
                    config
                        .component(id)
                        .map_or(id.as_str(), |component| component.name.as_str()),
                )
            })
            .collect(),
    };
    let expires = i18n::date_time(language, confirmation.expires, site.timezone);
    let context = context! {
        lang => language.code(),
        subject => &subject,
        components => components,
        confirm_url => format!("{}confirm/{}", site.base_url, confirmation.token),
        expires_text => strings.string(language, "confirm_expires", &site_title).replace("{date}", &expires),
        s => Value::from(Serde(&strings.with_site(language, &site_title))),
    };
    (subject, context)
}

/// Renders template `name` of `env` as the emails that use it would: every
/// language, and both sides of the condition herald sets (followed).
fn try_samples(
    env: &Environment<'static>,
    strings: &Strings,
    config: &Config,
    name: &str,
) -> Result<(), minijinja::Error> {
    let template = env.get_template(name)?;
    for context in sample_contexts(strings, config, name) {
        template.render(context)?;
    }
    Ok(())
}

fn sample_contexts(strings: &Strings, config: &Config, name: &str) -> Vec<Value> {
    let languages = [Language::Sv, Language::En];
    if name.starts_with("confirm.") {
        return languages
            .into_iter()
            .map(|language| {
                let confirmation = sample_confirmation(config, language);
                confirmation_context(strings, config, &confirmation).1
            })
            .collect();
    }
    let announcement = sample_announcement(config);
    languages
        .into_iter()
        .flat_map(|language| {
            [true, false].map(|followed| Variant {
                language,
                followed: vec![followed; announcement.components.len()],
            })
        })
        .map(|variant| alert_context(strings, config, &announcement, &variant, SAMPLE_TOKEN))
        .collect()
}

/// Which alert text a subscriber gets: the language, and which of the
/// announcement's components (in its order) they follow. A fan-out has a
/// handful of these, so the templates run a handful of times, not once
/// per subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    pub language: Language,
    pub followed: Vec<bool>,
}

impl Variant {
    pub fn of(announcement: &Announcement, subscriber: &Subscriber) -> Variant {
        Variant {
            language: subscriber.language,
            followed: announcement
                .components
                .iter()
                .map(|(id, _)| subscriber.follows.follows(id))
                .collect(),
        }
    }
}

/// An alert's parts for one [`Variant`], the token left as a slot.
#[derive(Debug)]
pub struct Rendered {
    from: Mailbox,
    text: String,
    html: String,
    /// False when the incident or the configuration contains the slot's
    /// text: then every email is rendered whole.
    slot: bool,
}

/// Stands for the subscriber's token in a [`Rendered`]: 32 characters
/// like the token, which neither HTML escaping nor anything else in a
/// template changes.
const TOKEN_SLOT: &str = "HERALDTOKENSLOTHERALDTOKENSLOT00";

fn mentions_slot(config: &Config, announcement: &Announcement) -> bool {
    [
        announcement.title.as_str(),
        &announcement.body_markdown,
        &announcement.body_html,
        &config.site.title,
        &config.site.base_url,
    ]
    .into_iter()
    .chain(
        config
            .components
            .iter()
            .map(|component| component.name.as_str()),
    )
    .any(|text| text.contains(TOKEN_SLOT))
}

/// The token in sample emails: shaped like a real one.
const SAMPLE_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Component ids for sample emails: the configured ones, or a made-up one
/// so that a template's loop body still runs.
fn sample_components(config: &Config) -> Vec<String> {
    let mut ids: Vec<String> = config.components.iter().map(|c| c.id.clone()).collect();
    if ids.is_empty() {
        ids.push("example".to_owned());
    }
    ids
}

/// An update to check an operator's `message.*` template against.
fn sample_announcement(config: &Config) -> Announcement {
    Announcement {
        incident: IncidentId::new("example").expect("`example` is a valid id"),
        instant: DateTime::UNIX_EPOCH,
        title: "Example incident".to_owned(),
        kind: Kind::Incident,
        status: Status::Investigating,
        body_markdown: "Example *update*.".to_owned(),
        body_html: "<p>Example <em>update</em>.</p>".to_owned(),
        components: sample_components(config)
            .into_iter()
            .map(|id| (id, ComponentStatus::PartialOutage))
            .collect(),
    }
}

/// A subscription request to check an operator's `confirm.*` template
/// against.
fn sample_confirmation(config: &Config, language: Language) -> Confirmation {
    Confirmation {
        id: 1,
        address: "subscriber@example.org".to_owned(),
        follows: Follows::Components(sample_components(config)),
        language,
        token: SAMPLE_TOKEN.to_owned(),
        expires: DateTime::UNIX_EPOCH,
    }
}

/// Whether `token` can stand in a link as it is.
fn is_plain_token(token: &str) -> bool {
    token.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

/// The Message-ID every email of an incident refers to.
pub fn thread_root(incident: &IncidentId, host: &str) -> String {
    format!("<incident-{}@{host}>", id_atom(incident))
}

/// An incident id as a Message-ID part: ids may hold `..` or end in `.`,
/// which a Message-ID may not, so dots become `=2E` (`=` never occurs in
/// an id, so this stays one-to-one).
fn id_atom(id: &IncidentId) -> String {
    id.as_str().replace('.', "=2E")
}

/// Text safe for one header line: control characters (CR and LF above
/// all) become spaces, runs of white space one space.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn sender(config: &Config) -> Result<Mailbox, Error> {
    let from = config.email_or_default().from;
    from.parse::<Mailbox>()
        .map_err(|source| Error::Sender { from, source })
}

fn recipient(address: &str) -> Result<Mailbox, Error> {
    address
        .parse::<lettre::Address>()
        .map(|address| Mailbox::new(None, address))
        .map_err(|source| Error::Recipient {
            address: address.to_owned(),
            source,
        })
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// text/plain and text/html, quoted-printable, with a boundary derived
/// from the Message-ID. Quoted-printable writes `=` as `=3D`, so the
/// boundary, which starts with `=_`, cannot occur in either part.
fn alternative(message_id: &str, text: String, html: String) -> MultiPart {
    let boundary = format!("=_herald_{:016x}", fnv1a(message_id.as_bytes()));
    MultiPart::alternative()
        .boundary(boundary)
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(text),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(html),
        )
}

/// 64-bit FNV-1a: a stable hash, the same on every machine and release.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::{Announced, Policy, Seen, decide};
    use crate::corpus::Corpus;
    use crate::model::Follows;
    use crate::parse::{Context, parse_incident};
    use chrono::TimeZone;
    use std::path::Path;

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

    fn config() -> Config {
        crate::config::parse(Path::new("herald.toml"), CONFIG).unwrap()
    }

    fn announcement(config: &Config, text: &str) -> Announcement {
        let context = Context {
            timezone: config.site.timezone,
            components: &config.components,
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

    const STORAGE: &str = "+++\ntitle = \"Storage failure\"\ncomponents = [\"mail\", \"web\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:20 identified\nCause found: a <b>disk</b> & its controller.\n";

    fn subscriber(language: Language) -> Subscriber {
        Subscriber {
            id: 42,
            address: "anna@example.org".into(),
            follows: Follows::Components(vec!["web".into()]),
            language,
            token: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2019, 4, 4, 6, 21, 30).unwrap()
    }

    fn formatted(message: &Message) -> String {
        String::from_utf8(message.formatted()).unwrap()
    }

    /// The header block, unfolded, one `Name: value` per line.
    fn headers(message: &str) -> Vec<String> {
        let head = message.split("\r\n\r\n").next().unwrap();
        head.replace("\r\n ", " ")
            .replace("\r\n\t", " ")
            .split("\r\n")
            .map(str::to_owned)
            .collect()
    }

    /// The decoded parts, by content type.
    fn part(message: &str, content_type: &str) -> String {
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

    #[test]
    fn confirmation_asks_once_in_the_subscribers_language() {
        let config = config();
        let confirmation = Confirmation {
            id: 7,
            address: "anna@example.org".into(),
            follows: Follows::Components(vec!["web".into(), "mail".into()]),
            language: Language::Sv,
            token: "00112233445566778899aabbccddeeff".into(),
            expires: now() + chrono::TimeDelta::days(7),
        };
        let composer = Composer::new();
        let message = formatted(
            &composer
                .confirmation(&config, &confirmation, now())
                .unwrap(),
        );
        let headers = headers(&message);
        for expected in [
            "Subject: [Example Hosting status] =?utf-8?b?QmVrcsOkZnRh?= din prenumeration",
            "Auto-Submitted: auto-generated",
            "To: anna@example.org",
            "Message-ID: <confirm.7.20190404T062130.000Z@status.example.com>",
        ] {
            assert!(
                headers.iter().any(|h| h == expected),
                "{expected} in {headers:#?}"
            );
        }
        assert!(!message.contains("List-Unsubscribe"));
        assert_eq!(
            part(&message, "text/plain"),
            "Någon, troligen du, har bett om att få mejl från Example Hosting status om:\n\n  - Webbhotell\n  - E-post\n\nBekräfta prenumerationen:\nhttps://status.example.com/confirm/00112233445566778899aabbccddeeff\n\nLänken fungerar till 11 april 2019 08:21:30 CEST.\nOm du inte har bett om detta kan du strunta i mejlet: inget mer skickas till dig."
        );
        let html = part(&message, "text/html");
        assert!(
            html.contains("<a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;confirm&#x2f;00112233445566778899aabbccddeeff\">Bekräfta prenumerationen</a>"),
            "{html}"
        );
        let all = Confirmation {
            follows: Follows::All,
            language: Language::En,
            ..confirmation
        };
        let text = part(
            &formatted(&composer.confirmation(&config, &all, now()).unwrap()),
            "text/plain",
        );
        assert!(
            text.starts_with("Someone, probably you, asked to get email from Example Hosting status about:\n\n  - All components, including ones added later\n"),
            "{text}"
        );
    }

    #[test]
    fn announcement_email_has_every_header() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let message = Composer::new()
            .compose(&config, &announcement, &subscriber(Language::En), now())
            .unwrap();
        let text = formatted(&message);
        let headers = headers(&text);
        let expected = [
            "From: \"Example Hosting\" <status@example.com>",
            "To: anna@example.org",
            "Subject: [Example Hosting status] Identified: Storage failure",
            "Date: Thu, 04 Apr 2019 06:21:30 +0000",
            "Message-ID: <storage.20190404T062000Z.42@status.example.com>",
            "In-Reply-To: <incident-storage@status.example.com>",
            "References: <incident-storage@status.example.com>",
            "List-Unsubscribe: <https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef>, <mailto:status@example.com?subject=unsubscribe%200123456789abcdef0123456789abcdef>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
        ];
        for line in expected {
            assert!(
                headers.iter().any(|h| h == line),
                "{line}\nin\n{headers:#?}"
            );
        }
        assert!(
            headers.iter().any(|h| h.starts_with(
                "Content-Type: multipart/alternative; boundary=\"=_herald_"
            )),
            "{headers:#?}"
        );
        assert_eq!(
            part(&text, "Content-Type: text/plain"),
            "Storage failure
Identified - April 4, 2019 08:20 CEST

Cause found: a <b>disk</b> & its controller.

Affected components:
  - E-post: Partial outage
  * Webbhotell: Partial outage (you follow this)

Follow the incident: https://status.example.com/incidents/storage.html#u-20190404T062000Z

-- 
You get this email because you subscribed to updates from Example Hosting status.
Unsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef"
        );
        let html = part(&text, "Content-Type: text/html");
        assert!(
            html.contains("<p>Cause found: a &lt;b&gt;disk&lt;/b&gt; &amp; its controller.</p>"),
            "{html}"
        );
        assert!(html.contains("<li>E-post: Partial outage</li>"), "{html}");
        assert!(
            html.contains("<li><strong>Webbhotell</strong>: Partial outage (you follow this)</li>"),
            "{html}"
        );
        // Same inputs, same bytes.
        let again = Composer::new()
            .compose(&config, &announcement, &subscriber(Language::En), now())
            .unwrap();
        assert_eq!(formatted(&again), text);
    }

    /// The text and HTML parts of `message`, decoded.
    fn bodies(message: &Message) -> (String, String) {
        let text = formatted(message);
        (
            part(&text, "Content-Type: text/plain"),
            // minijinja escapes `/` in attributes too.
            part(&text, "Content-Type: text/html").replace("&#x2f;", "/"),
        )
    }

    /// The parts of the alert to `subscriber`, through a rendering for
    /// their variant.
    fn rendered_for(
        config: &Config,
        announcement: &Announcement,
        subscriber: &Subscriber,
    ) -> (String, String) {
        let composer = Composer::new();
        let variant = Variant::of(announcement, subscriber);
        let rendered = composer.render(config, announcement, &variant).unwrap();
        bodies(
            &composer
                .alert(config, announcement, &rendered, subscriber, now())
                .unwrap(),
        )
    }

    #[test]
    fn one_rendering_serves_every_subscriber_of_a_variant() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let composer = Composer::new();
        let anna = subscriber(Language::En);
        let bob = Subscriber {
            id: 43,
            address: "bob@example.org".into(),
            token: "fedcba9876543210fedcba9876543210".into(),
            ..anna.clone()
        };
        let variant = Variant::of(&announcement, &anna);
        assert_eq!(variant, Variant::of(&announcement, &bob));
        let rendered = composer.render(&config, &announcement, &variant).unwrap();
        for subscriber in [&anna, &bob] {
            let message = composer
                .alert(&config, &announcement, &rendered, subscriber, now())
                .unwrap();
            // The same bytes as rendering for this subscriber alone.
            let alone = composer
                .compose(&config, &announcement, subscriber, now())
                .unwrap();
            assert_eq!(formatted(&message), formatted(&alone));
            let (text, html) = bodies(&message);
            let link = format!(
                "https://status.example.com/unsubscribe/{}",
                subscriber.token
            );
            assert!(text.contains(&link), "{text}");
            assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
            for other in [&anna, &bob] {
                if other.token != subscriber.token {
                    assert!(!text.contains(&other.token) && !html.contains(&other.token));
                }
            }
            assert!(!text.contains(TOKEN_SLOT) && !html.contains(TOKEN_SLOT));
        }
        // Another language or another set of followed components is
        // another variant.
        let swedish = subscriber(Language::Sv);
        assert_ne!(Variant::of(&announcement, &swedish), variant);
        let everything = Subscriber {
            follows: Follows::All,
            ..anna.clone()
        };
        assert_ne!(Variant::of(&announcement, &everything), variant);
    }

    #[test]
    fn an_incident_quoting_the_slot_is_rendered_per_email() {
        let config = config();
        let quoting = STORAGE.replace("its controller", TOKEN_SLOT);
        let announcement = announcement(&config, &quoting);
        let anna = subscriber(Language::En);
        let (text, html) = rendered_for(&config, &announcement, &anna);
        // The incident's words stay as written; the link has the token.
        assert!(text.contains(&format!("& {TOKEN_SLOT}.")), "{text}");
        assert!(html.contains(&format!("&amp; {TOKEN_SLOT}.")), "{html}");
        assert!(
            text.contains(&format!("unsubscribe/{}", anna.token)),
            "{text}"
        );
    }

    #[test]
    fn a_token_that_is_not_plain_is_escaped_like_any_text() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let odd = Subscriber {
            token: "a&b\"c".into(),
            ..subscriber(Language::En)
        };
        let (text, html) = rendered_for(&config, &announcement, &odd);
        assert!(text.contains("unsubscribe/a&b\"c"), "{text}");
        assert!(html.contains("unsubscribe/a&amp;b&quot;c\""), "{html}");
    }

    #[test]
    fn swedish_subscriber_gets_swedish_words() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let text = formatted(
            &Composer::new()
                .compose(&config, &announcement, &subscriber(Language::Sv), now())
                .unwrap(),
        );
        let plain = part(&text, "Content-Type: text/plain");
        assert!(
            plain.starts_with("Storage failure\nOrsak identifierad - 4 april 2019 08:20 CEST\n"),
            "{plain}"
        );
        assert!(
            plain.contains("  * Webbhotell: Delvis avbrott (du följer denna)\n"),
            "{plain}"
        );
        assert!(
            headers(&text).contains(
                &"Subject: [Example Hosting status] Orsak identifierad: Storage failure".to_owned()
            ),
            "{text}"
        );
    }

    #[test]
    fn titles_cannot_inject_headers() {
        let config = config();
        let mut announcement = announcement(&config, STORAGE);
        announcement.title = "Down\r\nBcc: victim@example.net\nX-Evil: 1".into();
        let text = formatted(
            &Composer::new()
                .compose(&config, &announcement, &subscriber(Language::En), now())
                .unwrap(),
        );
        let headers = headers(&text);
        assert!(
            headers.contains(
                &"Subject: [Example Hosting status] Identified: Down Bcc: victim@example.net X-Evil: 1"
                    .to_owned()
            ),
            "{headers:#?}"
        );
        assert!(
            !headers
                .iter()
                .any(|h| h.starts_with("Bcc:") || h.starts_with("X-Evil:"))
        );
        assert_eq!(one_line(" a\r\n\tb\u{7}c  "), "a b c");
    }

    #[test]
    fn thread_root_is_one_per_incident_and_dots_are_encoded() {
        let id = IncidentId::new("db..primary.").unwrap();
        assert_eq!(
            thread_root(&id, "status.example.com"),
            "<incident-db=2E=2Eprimary=2E@status.example.com>"
        );
    }

    #[test]
    fn test_message_is_plain_text_to_the_address() {
        let config = config();
        let text = formatted(
            &Composer::new()
                .test_message(&config, "ops@example.org", now())
                .unwrap(),
        );
        let headers = headers(&text);
        assert!(
            headers.contains(&"To: ops@example.org".to_owned()),
            "{headers:#?}"
        );
        assert!(
            headers
                .contains(&"Message-ID: <test.20190404T062130.000Z@status.example.com>".to_owned()),
            "{headers:#?}"
        );
        let error = Composer::new()
            .test_message(&config, "not an address", now())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid recipient address `not an address`"
        );
    }

    #[test]
    fn every_language_has_every_string() {
        let composer = Composer::new();
        let mut sv: Vec<&String> = composer.strings.sv.keys().collect();
        let mut en: Vec<&String> = composer.strings.en.keys().collect();
        sv.sort();
        en.sort();
        assert_eq!(sv, en);
        assert_eq!(en.len(), 13);
    }

    /// A composer with `overrides` (name, text) from `email/`, and its
    /// diagnostics as `herald` prints them.
    fn overridden(config: &Config, overrides: &[(&str, &str)]) -> (Composer, Vec<String>) {
        let overrides = overrides
            .iter()
            .map(|(name, text)| {
                (
                    (*name).to_owned(),
                    Path::new("email").join(name),
                    (*text).to_owned(),
                )
            })
            .collect();
        let (composer, diagnostics) = Composer::with_overrides(config, overrides);
        let shown = diagnostics.iter().map(ToString::to_string).collect();
        (composer, shown)
    }

    fn alert_bodies(composer: &Composer, config: &Config, title: &str) -> (String, String) {
        let mut announcement = announcement(config, STORAGE);
        announcement.title = title.to_owned();
        bodies(
            &composer
                .compose(config, &announcement, &subscriber(Language::En), now())
                .unwrap(),
        )
    }

    #[test]
    fn an_override_replaces_the_builtin_text() {
        let config = config();
        let (composer, diagnostics) = overridden(
            &config,
            &[(
                "message.txt",
                "{{ subject }}\n{% for c in components %}{{ c.name }}{% if c.followed %} (yours){% endif %}\n{% endfor %}{{ s.unsubscribe }}: {{ unsubscribe_url }}\n",
            )],
        );
        assert_eq!(diagnostics, Vec::<String>::new());
        let (text, html) = alert_bodies(&composer, &config, "Storage failure");
        assert_eq!(
            text,
            "[Example Hosting status] Identified: Storage failure\nE-post\nWebbhotell (yours)\nUnsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef"
        );
        // The HTML part is still the built-in's.
        assert_eq!(
            html,
            alert_bodies(&Composer::new(), &config, "Storage failure").1
        );
    }

    #[test]
    fn an_html_override_still_escapes_incident_text() {
        let config = config();
        let (composer, diagnostics) = overridden(
            &config,
            &[(
                "message.html",
                "<h1>{{ title }}</h1>\n{{ body_html|safe }}\n",
            )],
        );
        assert_eq!(diagnostics, Vec::<String>::new());
        let (text, html) = alert_bodies(&composer, &config, "Disk <b>gone</b> & \"lost\"");
        assert_eq!(
            html,
            "<h1>Disk &lt;b&gt;gone&lt;/b&gt; &amp; &quot;lost&quot;</h1>\n<p>Cause found: a &lt;b&gt;disk&lt;/b&gt; &amp; its controller.</p>\n"
        );
        // Escaping goes by extension: the text part is not HTML.
        assert!(text.starts_with("Disk <b>gone</b> & \"lost\"\n"), "{text}");
    }

    #[test]
    fn a_syntax_error_is_reported_and_the_builtin_stays() {
        let config = config();
        let (composer, diagnostics) = overridden(
            &config,
            &[("message.txt", "{{ title }}\nStatus: {{ status }\n")],
        );
        assert_eq!(
            diagnostics,
            [
                "email/message.txt:2:19: error: template syntax error: unexpected `}`, expected end of variable block; the built-in `message.txt` is used instead"
            ]
        );
        assert_eq!(
            alert_bodies(&composer, &config, "Storage failure"),
            alert_bodies(&Composer::new(), &config, "Storage failure")
        );
    }

    #[test]
    fn an_override_that_fails_when_rendered_is_reported_and_the_builtin_stays() {
        let config = config();
        // The site's language is Swedish; the second fails only for an
        // English subscriber, the third only outside an alert.
        let (composer, diagnostics) = overridden(
            &config,
            &[
                ("message.txt", "{{ title }}\n\n{{ titel }}\n"),
                (
                    "message.html",
                    "<p>{{ title }}</p>\n{% if lang == \"en\" %}{{ s.missing }}{% endif %}\n",
                ),
                ("confirm.txt", "{{ confirm_url }}\n{{ unsubscribe_url }}"),
            ],
        );
        assert_eq!(
            diagnostics,
            [
                "email/message.txt:3:4: error: template fails on a sample email: `titel` is undefined; the built-in `message.txt` is used instead",
                "email/message.html:2:25: error: template fails on a sample email: `s.missing` is undefined; the built-in `message.html` is used instead",
                "email/confirm.txt:2:4: error: template fails on a sample email: `unsubscribe_url` is undefined; the built-in `confirm.txt` is used instead",
            ]
        );
        assert_eq!(
            alert_bodies(&composer, &config, "Storage failure"),
            alert_bodies(&Composer::new(), &config, "Storage failure")
        );
    }

    #[test]
    fn an_unknown_name_is_a_warning_and_can_be_included() {
        let config = config();
        // Included by an override that comes first: all are loaded before
        // any is tried.
        let (composer, diagnostics) = overridden(
            &config,
            &[
                ("message.txt", "{{ title }}\n{% include \"footer.txt\" %}"),
                (
                    "footer.txt",
                    "-- \n{{ s.unsubscribe }}: {{ unsubscribe_url }}\n",
                ),
            ],
        );
        assert_eq!(
            diagnostics,
            [
                "email/footer.txt:1:1: warning: `footer.txt` is not a built-in email template (expected one of message.txt, message.html, confirm.txt, confirm.html); it is used only where another template includes it"
            ]
        );
        let (text, _) = alert_bodies(&composer, &config, "Storage failure");
        assert_eq!(
            text,
            "Storage failure\n-- \nUnsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef"
        );
    }

    #[test]
    fn an_included_template_that_fails_names_itself() {
        let config = config();
        let (_, diagnostics) = overridden(
            &config,
            &[
                ("message.txt", "{{ title }}\n{% include \"footer.txt\" %}"),
                ("footer.txt", "\n{{ nothing }}\n"),
            ],
        );
        assert_eq!(
            diagnostics[1],
            "email/message.txt:2:4: error: template fails on a sample email: error in \"footer.txt\": `nothing` is undefined (`footer.txt` line 2); the built-in `message.txt` is used instead"
        );
    }

    #[test]
    fn confirmation_templates_can_be_overridden() {
        let config = config();
        let (composer, diagnostics) = overridden(
            &config,
            &[
                (
                    "confirm.txt",
                    "{{ subject }}\n{{ components|join(\", \") }}\n{{ confirm_url }}\n",
                ),
                (
                    "confirm.html",
                    "<a href=\"{{ confirm_url }}\">{{ s.confirm_action }}</a>\n",
                ),
            ],
        );
        assert_eq!(diagnostics, Vec::<String>::new());
        let confirmation = Confirmation {
            id: 7,
            address: "anna@example.org".into(),
            follows: Follows::Components(vec!["web".into(), "mail".into()]),
            language: Language::En,
            token: "00112233445566778899aabbccddeeff".into(),
            expires: now() + chrono::TimeDelta::days(7),
        };
        let (text, html) = bodies(
            &composer
                .confirmation(&config, &confirmation, now())
                .unwrap(),
        );
        assert_eq!(
            text,
            "[Example Hosting status] Confirm your subscription\nWebbhotell, E-post\nhttps://status.example.com/confirm/00112233445566778899aabbccddeeff"
        );
        assert_eq!(
            html,
            "<a href=\"https://status.example.com/confirm/00112233445566778899aabbccddeeff\">Confirm the subscription</a>"
        );
    }

    #[test]
    fn builtins_pass_their_own_samples() {
        let config = config();
        let composer = Composer::new();
        for (name, _) in EMAILS.builtin {
            assert_eq!(
                sample_contexts(&composer.strings, &config, name).len(),
                if name.starts_with("confirm.") { 2 } else { 4 }
            );
            try_samples(&composer.env, &composer.strings, &config, name).unwrap();
        }
    }
}
