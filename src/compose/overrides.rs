//! The operator's email templates on top of the built-ins, through
//! [`crate::render::templates`]: each override is tried on sample emails
//! built from the configuration before it is used. Pure.

use chrono::DateTime;
use minijinja::{Environment, Value};

use super::confirm::confirmation_context;
use super::variant::alert_context;
use super::{Composer, Strings, Variant};
use crate::announce::Announcement;
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::model::{
    ComponentStatus, Confirmation, Follows, Headline, IncidentId, Kind, Language, Status,
};
use crate::render::templates::{EMAILS, Override, Trial};

impl Composer {
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
        translations: vec![],
        headline: Headline::Status,
        change: true,
        changed: Vec::new(),
        notice: None,
    }
}

/// A subscription request to check an operator's `confirm.*` template
/// against.
fn sample_confirmation(config: &Config, language: Language) -> Confirmation {
    Confirmation {
        channel: crate::model::Channel::Email,
        signing: None,
        id: 1,
        address: "subscriber@example.org".to_owned(),
        follows: Follows::Components(sample_components(config)),
        language,
        token: SAMPLE_TOKEN.to_owned(),
        expires: DateTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{STORAGE, announcement, bodies, config, now, subscriber};
    use std::path::Path;

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
            channel: crate::model::Channel::Email,
            signing: None,
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
