//! The email asking an address to confirm a subscription (double opt-in),
//! in the language the subscriber asked in. Pure.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use minijinja::value::Serde;
use minijinja::{Value, context};

use super::message::{alternative, header, recipient, sender};
use super::{Composer, Error, Strings};
use crate::config::Config;
use crate::model::one_line;
use crate::model::{Confirmation, Follows};
use crate::render::{i18n, incident_url};

impl Composer {
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
            .from(sender(config))
            .to(recipient(&confirmation.address)?)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id.clone()))
            .raw_header(header("Auto-Submitted", "auto-generated".into()))
            .multipart(alternative(&message_id, text, html))
            .map_err(Error::Build)
    }
}

/// The subject of a confirmation email, and what `confirm.txt` and
/// `confirm.html` see.
pub(super) fn confirmation_context(
    strings: &Strings,
    config: &Config,
    confirmation: &Confirmation,
) -> (String, Value) {
    let language = confirmation.language;
    let site = &config.site;
    let site_title = one_line(site.title_in(language));
    let subject = format!(
        "[{site_title}] {}",
        strings.string(language, "confirm_subject", &site_title)
    );
    let components: Vec<String> = match &confirmation.follows {
        Follows::All => vec![strings.string(language, "confirm_all", &site_title)],
        Follows::Incident(id) => vec![
            strings
                .string(language, "confirm_incident", &site_title)
                .replace("{incident}", &incident_url(&site.base_url, id)),
        ],
        Follows::Components(ids) => ids
            .iter()
            .map(|id| one_line(config.component_name(id, language)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{config, formatted, headers, now, part};
    use crate::model::Language;

    #[test]
    fn confirmation_asks_once_in_the_subscribers_language() {
        let config = config();
        let confirmation = Confirmation {
            channel: crate::model::Channel::Email,
            signing: None,
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
            "Någon, troligen du, har bett om att få mejl från Example Hosting status om:\n\n  - Webbhotell\n  - E-post\n\nBekräfta prenumerationen:\nhttps://status.example.com/confirm/00112233445566778899aabbccddeeff\n\nLänken fungerar till 11 april 2019 08:21 CEST.\nOm du inte har bett om detta kan du strunta i mejlet: inget mer skickas till dig."
        );
        let html = part(&message, "text/html");
        assert!(
            html.contains("<a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;confirm&#x2f;00112233445566778899aabbccddeeff\">Bekräfta prenumerationen</a>"),
            "{html}"
        );
        let all = Confirmation {
            channel: crate::model::Channel::Email,
            signing: None,
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
}
