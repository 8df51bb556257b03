//! [`Announcement`](crate::announce::Announcement) ×
//! [`Subscriber`](crate::model::Subscriber) → one email
//! ([`lettre::Message`]).
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
//!
//! A webhook subscriber gets a POST instead ([`Post`]): Statuspage's
//! webhook JSON (`hook`) or a chat message (`chat`).
//!
//! In parts: `message` (the messages and their headers), `variant` (an
//! alert's text and HTML per variant, with the token slot), `confirm` (the
//! confirmation email) and `overrides` (the operator's templates, through
//! [`crate::render::templates`]).

mod chat;
mod confirm;
mod hook;
mod matrix;
mod message;
mod overrides;
mod variant;

#[cfg(test)]
mod fixtures;

use minijinja::{Environment, Value};

use crate::model::Language;
use crate::render::templates::EMAILS;

pub use hook::{DOCUMENTATION, Post, RenderedPost, identity};
pub use matrix::{MatrixMessage, defuse_mentions, txn_id};
pub use message::thread_root;
pub use variant::{Rendered, Variant};

/// Why an email could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid recipient address `{address}`")]
    Recipient {
        address: String,
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
const STRINGS_SV: &str = include_str!("../../templates/email/sv.toml");
const STRINGS_EN: &str = include_str!("../../templates/email/en.toml");

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

    /// Renders email template `name` with `context`.
    fn render_template(&self, name: &'static str, context: &Value) -> Result<String, Error> {
        self.env
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|source| Error::Template { name, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_string() {
        let composer = Composer::new();
        let mut sv: Vec<&String> = composer.strings.sv.keys().collect();
        let mut en: Vec<&String> = composer.strings.en.keys().collect();
        sv.sort();
        en.sort();
        assert_eq!(sv, en);
        assert_eq!(en.len(), 24);
    }
}
