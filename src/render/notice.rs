//! The pages the subscription endpoints answer with (`notice.html`): a
//! request taken, a subscription confirmed, the unsubscribe button, and the
//! errors. Pure: the templates and the configuration are passed in.

use minijinja::Value;
use minijinja::value::Serde;
use serde::Serialize;

use crate::config::Config;
use crate::model::Language;

use super::templates::{RenderError, Templates};

/// The pages the subscription endpoints answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A subscription was asked for (whatever the address's state).
    Requested,
    /// A webhook's subscription was asked for: its confirmation is posted.
    Posted,
    Confirmed,
    /// The page behind an unsubscribe link: one button.
    Unsubscribe,
    Unsubscribed,
    NotFound,
    /// A form that cannot be used, and why (a key of `t.problem`).
    BadRequest(&'static str),
    TooMany,
    Unavailable,
}

impl Notice {
    /// The key of `t.notice` the page shows.
    pub fn page(self) -> &'static str {
        match self {
            Notice::Requested => "requested",
            Notice::Posted => "posted",
            Notice::Confirmed => "confirmed",
            Notice::Unsubscribe => "unsubscribe",
            Notice::Unsubscribed => "unsubscribed",
            Notice::NotFound => "not_found",
            Notice::BadRequest(_) => "bad_request",
            Notice::TooMany => "too_many",
            Notice::Unavailable => "unavailable",
        }
    }
}

#[derive(Serialize)]
struct NoticePage {
    lang: &'static str,
    /// The site's base URL: these pages are served at several depths, and
    /// behind whatever prefix the operator's web server maps.
    root: String,
    /// The base URL of the status page in this page's language.
    home: String,
    /// Empty: no page of another language corresponds to these.
    languages: Vec<()>,
    site_title: String,
    t: Value,
    page: &'static str,
    problem: Option<&'static str>,
}

/// A page of `notice.html` in `language`, one of the site's: its link
/// home leads to the status page in that language.
pub fn notice(
    templates: &Templates,
    config: &Config,
    language: Language,
    notice: Notice,
) -> Result<Vec<u8>, RenderError> {
    let page = NoticePage {
        lang: language.code(),
        root: config.site.base_url.clone(),
        home: format!(
            "{}{}",
            config.site.base_url,
            config.site.languages.prefix(language)
        ),
        languages: Vec::new(),
        site_title: config.site.title_in(language).to_owned(),
        t: templates.strings(language),
        page: notice.page(),
        problem: match notice {
            Notice::BadRequest(problem) => Some(problem),
            _ => None,
        },
    };
    templates
        .render("notice.html", Value::from(Serde(&page)))
        .map(String::into_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_notice_renders_in_both_languages() {
        let templates = Templates::builtin();
        for language in ["sv", "en"] {
            let text = format!(
                "[site]\ntitle = \"T & co\"\nbase_url = \"https://s.example/status/\"\ntimezone = \"UTC\"\nlanguage = \"{language}\"\n"
            );
            let config = crate::config::parse(std::path::Path::new("herald.toml"), &text).unwrap();
            let problems = [
                "too_large",
                "content_type",
                "encoding",
                "form",
                "email_missing",
                "email_invalid",
                "component_unknown",
                "webhook_invalid",
                "format_unknown",
                "one_click",
            ];
            let notices = [
                Notice::Requested,
                Notice::Posted,
                Notice::Confirmed,
                Notice::Unsubscribe,
                Notice::Unsubscribed,
                Notice::NotFound,
                Notice::TooMany,
                Notice::Unavailable,
            ]
            .into_iter()
            .chain(problems.into_iter().map(Notice::BadRequest));
            for notice in notices {
                let page = String::from_utf8(
                    super::notice(&templates, &config, config.site.language(), notice).unwrap(),
                )
                .unwrap();
                assert!(
                    page.contains(&format!("<html lang=\"{language}\">")),
                    "{page}"
                );
                assert!(
                    page.contains("href=\"https://s.example/status/style.css\""),
                    "{page}"
                );
                assert!(page.contains("T &amp; co"), "{page}");
                assert_eq!(
                    page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""),
                    notice == Notice::Unsubscribe,
                    "{page}"
                );
            }
        }
        let config = crate::config::parse(
            std::path::Path::new("herald.toml"),
            "[site]\ntitle = \"T\"\nbase_url = \"https://s.example/\"\ntimezone = \"UTC\"\nlanguage = \"en\"\n",
        )
        .unwrap();
        let page = String::from_utf8(
            super::notice(
                &templates,
                &config,
                config.site.language(),
                Notice::BadRequest("email_invalid"),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(
            page.contains("<h1>The form could not be used</h1>"),
            "{page}"
        );
        assert!(
            page.contains("<p>The email address is not valid.</p>"),
            "{page}"
        );
    }
}
