//! An alert's text and HTML, rendered once per [`Variant`] (language and
//! followed components) with a slot for the token, which each email fills:
//! the templates were a quarter of the mailer's CPU when they ran per
//! subscriber. Pure.

use lettre::message::Mailbox;
use minijinja::value::Serde;
use minijinja::{Value, context};

use super::{Composer, Error, Strings};
use crate::announce::Announcement;
use crate::config::Config;
use crate::model::one_line;
use crate::model::{Language, Notice, NoticeKind, Subscriber};
use crate::render::{i18n, incident_url, update_url};

impl Composer {
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
            from: config.email_or_default().from,
            text,
            html,
            slot,
        })
    }

    /// What `herald post --dry-run` shows of the alert in `language`: its
    /// subject and its text part, as a subscriber following every
    /// component gets it, with `TOKEN` where each email has its
    /// subscriber's token.
    pub fn preview(
        &self,
        config: &Config,
        announcement: &Announcement,
        language: Language,
    ) -> Result<(String, String), Error> {
        let variant = Variant {
            language,
            followed: vec![true; announcement.components.len()],
        };
        let context = alert_context(&self.strings, config, announcement, &variant, "TOKEN");
        let subject = subject(&self.strings, config, language, announcement);
        Ok((subject, self.render_template("message.txt", &context)?))
    }

    /// The text and HTML of the alert to `subscriber`: `rendered` with the
    /// subscriber's token in its slot.
    pub(super) fn parts_for(
        &self,
        config: &Config,
        announcement: &Announcement,
        rendered: &Rendered,
        subscriber: &Subscriber,
    ) -> Result<(String, String), Error> {
        // A token is hex; anything else is rendered, and so escaped, for
        // this email alone.
        if rendered.slot && is_plain_token(&subscriber.token) {
            Ok((
                rendered.text.replace(TOKEN_SLOT, &subscriber.token),
                rendered.html.replace(TOKEN_SLOT, &subscriber.token),
            ))
        } else {
            let variant = Variant::of(announcement, subscriber);
            self.parts(config, announcement, &variant, &subscriber.token)
        }
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
}

/// What `message.txt` and `message.html` see: their interface, which
/// operators' overrides rely on.
pub(super) fn alert_context(
    strings: &Strings,
    config: &Config,
    announcement: &Announcement,
    variant: &Variant,
    token: &str,
) -> Value {
    let language = variant.language;
    let site = &config.site;
    let site_title = one_line(site.title_in(language));
    let said = announcement.said(language, site.language());
    let title = one_line(said.title);
    // The incident's page in the subscriber's language, where the site
    // has one.
    let base_url = if site.languages.all().contains(&language) {
        format!("{}{}", site.base_url, site.languages.prefix(language))
    } else {
        site.base_url.clone()
    };
    let (status, body, body_html) = match &announcement.notice {
        None => (
            i18n::status_label(language, announcement.status).to_owned(),
            said.body_markdown.trim().to_owned(),
            said.body_html.to_owned(),
        ),
        Some(notice) => {
            let text = notice_text(strings, config, language, notice);
            let html = format!("<p>{}</p>\n", minijinja::HtmlEscape(&text));
            (status_word(strings, language, announcement), text, html)
        }
    };
    // Only where the site is translated into the language (elsewhere
    // every text is the site's, and the note would say so each time),
    // and never on a notice, which herald words in the reader's language.
    let untranslated = said.untranslated
        && announcement.notice.is_none()
        && site.languages.others().contains(&language);
    let components: Vec<Value> = announcement
        .components
        .iter()
        .zip(&variant.followed)
        .map(|((id, component_status), followed)| {
            let name = config.component_name(id, language);
            context! {
                name => one_line(name),
                status => i18n::component_status_label(language, *component_status),
                followed => followed,
            }
        })
        .collect();
    context! {
        lang => language.code(),
        subject => subject(strings, config, language, announcement),
        title => &title,
        status => status,
        when => i18n::date_time(language, announcement.instant, site.timezone),
        body => body,
        body_html => body_html,
        untranslated => untranslated.then(|| strings.string(language, "untranslated", &site_title)),
        components => components,
        // A notice has no anchor of its own on the page.
        url => if announcement.notice.is_some() {
            incident_url(&base_url, &announcement.incident)
        } else {
            update_url(&base_url, &announcement.incident, announcement.instant)
        },
        unsubscribe_url => format!("{}unsubscribe/{token}", site.base_url),
        why => strings.string(language, "why", &site_title),
        s => Value::from(Serde(strings.of(language))),
    }
}

/// An alert's subject: `[SITE] ` and a notice's word and the title, or an
/// update's headline ([`Announcement::subject_line`]).
pub(super) fn subject(
    strings: &Strings,
    config: &Config,
    language: Language,
    announcement: &Announcement,
) -> String {
    let words = match announcement.notice {
        Some(_) => format!(
            "{}: {}",
            status_word(strings, language, announcement),
            announcement.said(language, config.site.language()).title
        ),
        None => announcement.subject_line(language, config.site.language(), config.site.timezone),
    };
    format!(
        "[{}] {}",
        one_line(config.site.title_in(language)),
        one_line(&words)
    )
}

/// The status an alert's subject and heading show: an update's, a
/// reminder's or a move's own word, an edge's the status it brings.
pub(super) fn status_word(
    strings: &Strings,
    language: Language,
    announcement: &Announcement,
) -> String {
    match announcement.notice.map(|notice| notice.kind) {
        Some(NoticeKind::Reminder { .. }) => strings.string(language, "notice_reminder", ""),
        Some(NoticeKind::Rescheduled) => strings.string(language, "notice_rescheduled", ""),
        _ => i18n::status_label(language, announcement.status).to_owned(),
    }
}

/// A maintenance notice in `language`, its times in the site's zone.
pub(super) fn notice_text(
    strings: &Strings,
    config: &Config,
    language: Language,
    notice: &Notice,
) -> String {
    let key = match notice.kind {
        NoticeKind::Reminder { .. } => "notice_reminder_text",
        NoticeKind::Started => "notice_started_text",
        NoticeKind::Completed => "notice_completed_text",
        NoticeKind::Rescheduled => "notice_rescheduled_text",
    };
    let timezone = config.site.timezone;
    let when = |instant| i18n::date_time(language, instant, timezone);
    let previous = notice.previous.unwrap_or(notice.window);
    strings
        .string(language, key, &one_line(config.site.title_in(language)))
        .replace("{previous_starts}", &when(previous.starts))
        .replace("{previous_ends}", &when(previous.ends))
        .replace("{starts}", &when(notice.window.starts))
        .replace("{ends}", &when(notice.window.ends))
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
    pub(super) from: Mailbox,
    text: String,
    html: String,
    /// False when the incident or the configuration contains the slot's
    /// text: then every email is rendered whole.
    slot: bool,
}

/// Stands for the subscriber's token in a [`Rendered`]: 32 characters
/// like the token, which neither HTML escaping nor anything else in a
/// template changes.
pub(super) const TOKEN_SLOT: &str = "HERALDTOKENSLOTHERALDTOKENSLOT00";

pub(super) fn mentions_slot(config: &Config, announcement: &Announcement) -> bool {
    [
        announcement.title.as_str(),
        &announcement.body_markdown,
        &announcement.body_html,
        &config.site.title,
        &config.site.base_url,
    ]
    .into_iter()
    .chain(config.site.titles.iter().map(|(_, title)| title.as_str()))
    .chain(config.components.iter().flat_map(|component| {
        std::iter::once(component.name.as_str())
            .chain(component.names.iter().map(|(_, name)| name.as_str()))
    }))
    .chain(announcement.translations.iter().flat_map(|translated| {
        let body = translated.body.as_ref();
        [
            translated.title.as_deref(),
            body.map(|(markdown, _)| markdown.as_str()),
            body.map(|(_, html)| html.as_str()),
        ]
        .into_iter()
        .flatten()
    }))
    .any(|text| text.contains(TOKEN_SLOT))
}

/// Whether `token` can stand in a link as it is.
pub(super) fn is_plain_token(token: &str) -> bool {
    token.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{
        STORAGE, announcement, bodies, config, formatted, headers, now, part, subscriber,
    };
    use crate::model::Follows;

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
    fn each_subscriber_gets_their_language_or_the_sites_with_a_note() {
        let mut config = config();
        config.site.languages =
            crate::model::Languages::new(Language::Sv, &[Language::En]).unwrap();
        let translated = "+++\ntitle.sv = \"Lagringsfel\"\ntitle.en = \"Storage failure\"\ncomponents = [\"mail\", \"web\"]\nseverity = \"major\"\n+++\n## 2019-04-04 08:20 identified\nOrsaken hittad.\n\n### en\nCause found.\n";
        let announcement = announcement(&config, translated);
        let (text, html) = rendered_for(&config, &announcement, &subscriber(Language::En));
        assert!(text.starts_with("Storage failure\nIdentified - "), "{text}");
        assert!(text.contains("\nCause found.\n"), "{text}");
        assert!(!text.contains("Orsaken"), "{text}");
        assert!(!text.contains("original text"), "{text}");
        assert!(
            text.contains(
                "https://status.example.com/en/incidents/storage.html#u-20190404T062000Z"
            ),
            "{text}"
        );
        assert!(html.contains("<p>Cause found.</p>"), "{html}");
        let (text, _) = rendered_for(&config, &announcement, &subscriber(Language::Sv));
        assert!(
            text.starts_with("Lagringsfel\nOrsak identifierad - "),
            "{text}"
        );
        assert!(text.contains("\nOrsaken hittad.\n"), "{text}");
        assert!(
            text.contains("https://status.example.com/incidents/storage.html#"),
            "{text}"
        );

        // No English text: the Swedish one, and a line that says so.
        let untranslated = translated.replace("\n### en\nCause found.\n", "");
        let announcement = super::super::fixtures::announcement(&config, &untranslated);
        let (text, html) = rendered_for(&config, &announcement, &subscriber(Language::En));
        assert!(
            text.contains("\nThis update has not been translated into English; here is its original text.\n\nOrsaken hittad.\n"),
            "{text}"
        );
        assert!(text.starts_with("Storage failure\n"), "{text}");
        assert!(html.contains("<p><em>This update has not been translated into English; here is its original text.</em></p>"), "{html}");
        let (text, _) = rendered_for(&config, &announcement, &subscriber(Language::Sv));
        assert!(!text.contains("svenska"), "{text}");
    }

    #[test]
    fn one_rendering_serves_every_subscriber_of_a_variant() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let composer = Composer::new();
        let anna = subscriber(Language::En);
        let bob = Subscriber {
            id: 43,
            channel: crate::model::Channel::Email,
            signing: None,
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
    fn a_notice_is_worded_in_the_readers_language_with_the_sites_times() {
        use crate::model::{Notice, NoticeKind, Window};
        use chrono::{TimeZone, Utc};
        let config = config();
        let at = |hour| Utc.with_ymd_and_hms(2019, 4, 4, hour, 0, 0).unwrap();
        let moved = Announcement {
            body_markdown: String::new(),
            body_html: String::new(),
            notice: Some(Notice {
                kind: NoticeKind::Rescheduled,
                window: Window {
                    starts: at(20),
                    ends: at(21),
                },
                previous: Some(Window {
                    starts: at(18),
                    ends: at(19),
                }),
            }),
            ..announcement(&config, STORAGE)
        };
        let composer = Composer::new();
        let message = composer
            .compose(&config, &moved, &subscriber(Language::En), now())
            .unwrap();
        let head = headers(&formatted(&message)).join("\n");
        assert!(
            head.contains("Subject: [Example Hosting status] Rescheduled: Storage failure"),
            "{head}"
        );
        let (text, html) = bodies(&message);
        let expected = "The maintenance has moved. It was planned from April 4, 2019 20:00 CEST to April 4, 2019 21:00 CEST; it is now planned from April 4, 2019 22:00 CEST to April 4, 2019 23:00 CEST.";
        assert!(text.contains(expected), "{text}");
        assert!(html.contains(&format!("<p>{expected}</p>")), "{html}");
        assert!(
            text.contains("https://status.example.com/incidents/storage.html\n"),
            "{text}"
        );
        let (text, _) = rendered_for(
            &config,
            &Announcement {
                notice: Some(Notice {
                    kind: NoticeKind::Reminder {
                        lead: std::time::Duration::from_secs(3600),
                    },
                    ..moved.notice.unwrap()
                }),
                ..moved.clone()
            },
            &subscriber(Language::Sv),
        );
        assert!(
            text.contains("Underhållet börjar 4 april 2019 22:00 CEST och beräknas vara klart 4 april 2019 23:00 CEST."),
            "{text}"
        );
    }
}
