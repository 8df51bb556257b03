//! The template environment with the operator's overrides, for the pages
//! ([`PAGES`], compiled into [`Templates`]) and for the emails ([`EMAILS`],
//! compiled into [`crate::compose::Composer`]). Pure: the caller reads the
//! override files and passes their texts in.
//!
//! A [`Family`] is a set of built-in templates, compiled into the binary,
//! that the operator's files replace by name. [`Family::environment`]
//! compiles the built-ins; [`Family::apply_overrides`] puts each override
//! on top, compiles it, tries it with a check the caller supplies, and
//! keeps the built-in where an override fails, reporting it at
//! file:line:col. A name that is not a built-in is loaded (another template
//! may include it) and warned about, since it is most likely a typo.
//!
//! The pages' strings come from `templates/i18n/{sv,en}.toml`, also
//! compiled in; the stylesheet is overridden whole, as text.

use std::fmt;
use std::path::{Path, PathBuf};

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value};

use crate::diag::{Diagnostic, Level, LineIndex};
use crate::model::Language;

/// One of the operator's files: `(name, file path for messages, text)`.
pub type Override = (String, PathBuf, String);

/// How a template turns a value into text, when not minijinja's own way.
pub type Formatter = fn(&mut Output, &mut State, &Value) -> Result<(), minijinja::Error>;

/// A set of built-in templates that the operator's files override by name.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The built-in templates, `(name, source)`, by the names overrides use.
    pub builtin: &'static [(&'static str, &'static str)],
    /// Files overridden by name that are not templates (the stylesheet):
    /// [`Family::apply_overrides`] hands their overrides back as they are.
    pub files: &'static [&'static str],
    /// What the warning about an unknown name calls the family's templates.
    pub kind: &'static str,
    /// What a variable the context lacks does.
    pub undefined: UndefinedBehavior,
    /// `None` for minijinja's own escaping formatter.
    pub formatter: Option<Formatter>,
}

/// The pages, from `templates/`. A misspelt variable in an operator's
/// template is an error that names the template and line, not silently
/// empty text; `if x` on an undefined `x` still works. Overrides are only
/// compiled, not tried on sample pages (see [`Templates::with_overrides`]).
pub const PAGES: Family = Family {
    builtin: &[
        ("base.html", include_str!("../../templates/base.html")),
        ("macros.html", include_str!("../../templates/macros.html")),
        ("index.html", include_str!("../../templates/index.html")),
        ("index.txt", include_str!("../../templates/index.txt")),
        (
            "incident.html",
            include_str!("../../templates/incident.html"),
        ),
        ("month.html", include_str!("../../templates/month.html")),
        ("update.html", include_str!("../../templates/update.html")),
        ("summary.html", include_str!("../../templates/summary.html")),
        ("notice.html", include_str!("../../templates/notice.html")),
    ],
    files: &[STYLESHEET_NAME],
    kind: "template",
    undefined: UndefinedBehavior::SemiStrict,
    formatter: Some(html_formatter),
};

/// The emails, from `templates/email/`. Any undefined variable is an
/// error, and overrides are tried on sample emails (see
/// [`crate::compose::Composer::with_overrides`]).
pub const EMAILS: Family = Family {
    builtin: &[
        (
            "message.txt",
            include_str!("../../templates/email/message.txt"),
        ),
        (
            "message.html",
            include_str!("../../templates/email/message.html"),
        ),
        (
            "confirm.txt",
            include_str!("../../templates/email/confirm.txt"),
        ),
        (
            "confirm.html",
            include_str!("../../templates/email/confirm.html"),
        ),
    ],
    files: &[],
    kind: "email template",
    undefined: UndefinedBehavior::Strict,
    formatter: None,
};

/// The name of the stylesheet among the pages' overrides. It is text, not
/// a template: CSS braces and `{#` would otherwise need escaping.
pub const STYLESHEET_NAME: &str = "style.css";

/// How [`Family::apply_overrides`] tries each override that compiled and
/// replaces a built-in, once all are in (one may include another).
pub struct Trial<'a> {
    /// How the diagnostic of a failure starts, such as `template fails on
    /// a sample email`.
    pub failure: &'static str,
    /// Renders template `name` of the environment as its uses would.
    pub check: &'a mut dyn FnMut(&Environment<'static>, &str) -> Result<(), minijinja::Error>,
}

/// What [`Family::apply_overrides`] did not put into the environment.
#[derive(Debug, Default)]
pub struct Applied {
    /// The overrides of the family's [`Family::files`], in their order.
    pub files: Vec<Override>,
    /// Broken overrides (errors: the built-in serves) and unknown names
    /// (warnings), in the overrides' order, failed trials last.
    pub diagnostics: Vec<Diagnostic>,
}

impl Family {
    /// The built-in templates, compiled.
    pub fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(escape_by_extension);
        env.set_undefined_behavior(self.undefined);
        if let Some(formatter) = self.formatter {
            env.set_formatter(formatter);
        }
        for (name, source) in self.builtin {
            // The built-ins are tested to compile, so an error here cannot
            // happen in a released binary; skipping the template turns it
            // into a render error rather than a panic.
            let _ = env.add_template(name, source);
        }
        env
    }

    /// The built-in template `name`, as `(name, source)`.
    pub fn builtin_named(&self, name: &str) -> Option<(&'static str, &'static str)> {
        self.builtin
            .iter()
            .copied()
            .find(|(builtin, _)| *builtin == name)
    }

    /// Puts `overrides` into `env` (built by [`Family::environment`]). An
    /// override that does not compile is reported and the built-in keeps
    /// serving; so is one that then fails `trial`, when one is given. A
    /// name that is neither a built-in nor one of [`Family::files`] is
    /// loaded and warned about.
    pub fn apply_overrides(
        &self,
        env: &mut Environment<'static>,
        overrides: Vec<Override>,
        trial: Option<Trial<'_>>,
    ) -> Applied {
        let mut applied = Applied::default();
        let mut compiled = Vec::new();
        for (name, path, text) in overrides {
            if self.files.contains(&name.as_str()) {
                applied.files.push((name, path, text));
                continue;
            }
            let builtin = self.builtin_named(&name);
            match env.add_template_owned(name.clone(), text.clone()) {
                Ok(()) => match builtin {
                    Some(builtin) => compiled.push((builtin, path, text)),
                    None => {
                        let names: Vec<&str> = self
                            .builtin
                            .iter()
                            .map(|(builtin, _)| *builtin)
                            .chain(self.files.iter().copied())
                            .collect();
                        applied
                            .diagnostics
                            .push(unknown_template(path, &name, self.kind, &names));
                    }
                },
                Err(error) => applied.diagnostics.push(template_diagnostic(
                    "template syntax error",
                    &name,
                    path,
                    &text,
                    &error,
                    builtin.is_some(),
                )),
            }
        }
        let Some(trial) = trial else {
            return applied;
        };
        // Once all are in, since one may include another.
        for ((name, source), path, text) in compiled {
            if let Err(error) = (trial.check)(env, name) {
                let _ = env.add_template(name, source);
                applied.diagnostics.push(template_diagnostic(
                    trial.failure,
                    name,
                    path,
                    &text,
                    &error,
                    true,
                ));
            }
        }
        applied
    }
}

/// A page template that failed to render.
#[derive(Debug, thiserror::Error)]
#[error("rendering template {name}")]
pub struct RenderError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// The built-in stylesheet. An override replaces it whole.
const STYLESHEET: &str = include_str!("../../templates/style.css");

const STRINGS_SV: &str = include_str!("../../templates/i18n/sv.toml");
const STRINGS_EN: &str = include_str!("../../templates/i18n/en.toml");

/// The compiled page templates, the stylesheet and the page strings a site
/// renders with.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
    stylesheet: String,
    strings_sv: Value,
    strings_en: Value,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.templates().map(|(name, _)| name).collect();
        f.debug_struct("Templates")
            .field("templates", &names)
            .finish_non_exhaustive()
    }
}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {
            env: PAGES.environment(),
            stylesheet: STYLESHEET.to_owned(),
            strings_sv: strings_value(STRINGS_SV),
            strings_en: strings_value(STRINGS_EN),
        }
    }

    /// The built-ins with the operator's templates on top. Each override is
    /// `(template name, file path for messages, text)`. An override that
    /// does not compile is reported and the built-in keeps serving; a name
    /// that is not a built-in is loaded (another template may include it)
    /// and warned about, since it is most likely a typo.
    pub fn with_overrides(overrides: Vec<Override>) -> (Templates, Vec<Diagnostic>) {
        let mut templates = Templates::builtin();
        let stale: Vec<Diagnostic> = overrides
            .iter()
            .filter(|(name, _, _)| name == "macros.html")
            .flat_map(|(_, path, text)| stale_macros(path, text))
            .collect();
        // Pages are not tried on sample data: compiling is the only check.
        let applied = PAGES.apply_overrides(&mut templates.env, overrides, None);
        // The stylesheet is the one file among them.
        for (_, _, text) in applied.files {
            templates.stylesheet = text;
        }
        let mut diagnostics = applied.diagnostics;
        diagnostics.extend(stale);
        (templates, diagnostics)
    }

    /// `style.css`: the built-in stylesheet or the operator's.
    pub(super) fn stylesheet(&self) -> &str {
        &self.stylesheet
    }

    /// The page strings of `language`, as the templates see them (`t`).
    pub(super) fn strings(&self, language: Language) -> Value {
        match language {
            Language::Sv => self.strings_sv.clone(),
            Language::En => self.strings_en.clone(),
        }
    }

    /// Renders page template `name`.
    pub(super) fn render(&self, name: &str, context: Value) -> Result<String, RenderError> {
        let error = |source| RenderError {
            name: name.to_owned(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(error)?
            .render(context)
            .map_err(error)
    }
}

fn strings_value(text: &str) -> Value {
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => Value::from(Serde(&table)),
        // Tested never to happen; an empty table makes every string a
        // render error that names it.
        Err(_) => Value::from(Serde(toml::Table::new())),
    }
}

/// Escapes in HTML templates only: an operator's extra template with
/// another extension (a text snippet, a plain-text email) is not HTML.
fn escape_by_extension(name: &str) -> AutoEscape {
    if name.ends_with(".html") {
        AutoEscape::Html
    } else {
        AutoEscape::None
    }
}

/// minijinja's own HTML escaping, minus `/` → `&#x2f;`: a slash is
/// harmless in text and in quoted attributes, and escaping it makes every
/// link and date in the pages harder to read (and to grep). Control
/// characters that HTML forbids in text (NUL and the rest of C0 but
/// whitespace, DEL, C1, and the noncharacters U+FFFE, U+FFFF) are
/// dropped from every value, rendered Markdown included, as the feeds
/// drop them.
fn html_formatter(
    out: &mut Output,
    state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if matches!(state.auto_escape(), AutoEscape::Html) => {
            Ok(write_html_text(out, text, !value.is_safe())?)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// `text` as [`html_formatter`] writes it: escaped when `escape`, without
/// the characters HTML forbids in text. Scans bytes, not characters: every
/// byte it acts on is ASCII or starts one of the few forbidden sequences
/// (C1 controls are `C2 80`–`C2 9F`, U+FFFE and U+FFFF `EF BF BE`/`BF`),
/// so the plain runs between them are written whole.
fn write_html_text(out: &mut dyn fmt::Write, text: &str, escape: bool) -> fmt::Result {
    let bytes = text.as_bytes();
    let acted_on = if escape { ESCAPED | DROPPED } else { DROPPED };
    let mut plain_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Most bytes are plain: skip them by the table alone.
        if HTML_BYTES[usize::from(bytes[at])] & acted_on == 0 {
            at += 1;
            continue;
        }
        let (entity, length) = match bytes[at] {
            b'&' if escape => ("&amp;", 1),
            b'<' if escape => ("&lt;", 1),
            b'>' if escape => ("&gt;", 1),
            b'"' if escape => ("&quot;", 1),
            b'\'' if escape => ("&#x27;", 1),
            b'\t' | b'\n' | b'\r' | 0x0c => {
                at += 1;
                continue;
            }
            0x00..=0x1f | 0x7f => ("", 1),
            0xc2 if matches!(bytes.get(at + 1), Some(0x80..=0x9f)) => ("", 2),
            0xef if bytes.get(at + 1) == Some(&0xbf)
                && matches!(bytes.get(at + 2), Some(0xbe | 0xbf)) =>
            {
                ("", 3)
            }
            _ => {
                at += 1;
                continue;
            }
        };
        out.write_str(&text[plain_from..at])?;
        out.write_str(entity)?;
        at += length;
        plain_from = at;
    }
    out.write_str(&text[plain_from..])
}

/// [`HTML_BYTES`]: a byte escaped when escaping.
const ESCAPED: u8 = 1;
/// [`HTML_BYTES`]: a byte that is, or may begin, a character HTML
/// forbids (see [`write_html_text`]).
const DROPPED: u8 = 2;

/// What [`write_html_text`] may do with each byte; 0 for a plain one.
const HTML_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        if !matches!(byte, 0x09 | 0x0a | 0x0c | 0x0d) {
            table[byte] = DROPPED;
        }
        byte += 1;
    }
    table[0x7f] = DROPPED;
    table[0xc2] = DROPPED;
    table[0xef] = DROPPED;
    table[b'&' as usize] = ESCAPED;
    table[b'<' as usize] = ESCAPED;
    table[b'>' as usize] = ESCAPED;
    table[b'"' as usize] = ESCAPED;
    table[b'\'' as usize] = ESCAPED;
    table
};

/// `file:line:col: error: WHAT: detail` for a template `name` from file
/// `path` that failed to compile or to render. minijinja gives the line
/// and usually the byte range; the column comes from the range when it is
/// on that line, else it is 1. An error inside a template that `name`
/// includes is placed at the include, and the detail names the other
/// template, its line and what went wrong there.
fn template_diagnostic(
    what: &str,
    name: &str,
    path: PathBuf,
    text: &str,
    error: &minijinja::Error,
    known: bool,
) -> Diagnostic {
    let describe = |error: &minijinja::Error| {
        error
            .detail()
            .map_or_else(|| error.kind().to_string(), str::to_owned)
    };
    let mut detail = describe(error);
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause.and_then(|cause| cause.downcast_ref::<minijinja::Error>()) {
        detail.push_str(": ");
        detail.push_str(&describe(inner));
        if let (Some(other), Some(line)) = (inner.name(), inner.line()) {
            detail.push_str(&format!(" (`{other}` line {line})"));
        }
        cause = std::error::Error::source(inner);
    }
    let (line, column) = error_position(text, error);
    let fallback = if known {
        format!("; the built-in `{name}` is used instead")
    } else {
        String::new()
    };
    Diagnostic {
        path,
        line,
        column,
        level: Level::Error,
        message: format!("{what}: {detail}{fallback}"),
    }
}

/// Warnings for an operator's `macros.html` (at `path`) that defines the
/// `update` or `summary` macro without including the template the
/// built-in pages now use for it: the incident and month pages include
/// `update.html` and `summary.html` themselves, so such a macro shapes
/// the index alone.
fn stale_macros(path: &Path, text: &str) -> Vec<Diagnostic> {
    let index = LineIndex::new(text);
    [("update", "update.html"), ("summary", "summary.html")]
        .into_iter()
        .filter(|(_, template)| !text.contains(template))
        .filter_map(|(name, template)| {
            let offset = macro_definition(text, name)?;
            Some(Diagnostic::warning(
                path,
                &index,
                offset,
                format!(
                    "the `{name}` macro shapes only the index now: the incident and month pages include `{template}`; put its markup in an override of `{template}`, which the built-in macro includes"
                ),
            ))
        })
        .collect()
}

/// Where `text` defines macro `name` (`macro name(`, any spaces between),
/// as a byte offset of `macro`.
fn macro_definition(text: &str, name: &str) -> Option<usize> {
    text.match_indices("macro").map(|(at, _)| at).find(|&at| {
        let rest = &text[at + "macro".len()..];
        let after_space = rest.trim_start();
        after_space.len() < rest.len()
            && after_space
                .strip_prefix(name)
                .is_some_and(|after| after.trim_start().starts_with('('))
    })
}

/// The warning for an override `name` that replaces none of the
/// `expected` built-in templates (of the `kind` given).
fn unknown_template(path: PathBuf, name: &str, kind: &str, expected: &[&str]) -> Diagnostic {
    Diagnostic {
        path,
        line: 1,
        column: 1,
        level: Level::Warning,
        message: format!(
            "`{name}` is not a built-in {kind} (expected one of {}); it is used only where another template includes it",
            expected.join(", ")
        ),
    }
}

/// Where in `text` `error` happened, as 1-based line and column.
fn error_position(text: &str, error: &minijinja::Error) -> (u32, u32) {
    let index = LineIndex::new(text);
    let from_range = error.range().map(|range| index.position(range.start));
    match (error.line(), from_range) {
        (Some(line), Some((range_line, column))) if range_line as usize == line => {
            (range_line, column)
        }
        (Some(line), _) => (u32::try_from(line).unwrap_or(u32::MAX), 1),
        (None, Some(position)) => position,
        (None, None) => (1, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ComponentStatus;

    /// [`write_html_text`] as it was written first, character by character.
    fn html_text_by_characters(text: &str, escape: bool) -> String {
        let mut out = String::new();
        for character in text.chars() {
            match character {
                '&' if escape => out.push_str("&amp;"),
                '<' if escape => out.push_str("&lt;"),
                '>' if escape => out.push_str("&gt;"),
                '"' if escape => out.push_str("&quot;"),
                '\'' if escape => out.push_str("&#x27;"),
                c if (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
                    || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
                c => out.push(c),
            }
        }
        out
    }

    fn html_text(text: &str, escape: bool) -> String {
        let mut out = String::new();
        write_html_text(&mut out, text, escape).unwrap();
        out
    }

    #[test]
    fn html_text_is_escaped_and_loses_what_html_forbids() {
        let text = "a&b<c>d\"e'f/g\u{0}h\u{7}\t\n\r\u{c}\u{7f}\u{80}\u{9f}\u{a0}\u{fffd}\u{fffe}\u{ffff}\u{10ffff}åäö\u{1f600}";
        assert_eq!(
            html_text(text, true),
            "a&amp;b&lt;c&gt;d&quot;e&#x27;f/gh\t\n\r\u{c}\u{a0}\u{fffd}\u{10ffff}åäö\u{1f600}"
        );
        assert_eq!(
            html_text(text, false),
            "a&b<c>d\"e'f/gh\t\n\r\u{c}\u{a0}\u{fffd}\u{10ffff}åäö\u{1f600}"
        );
        for escape in [true, false] {
            assert_eq!(
                html_text(text, escape),
                html_text_by_characters(text, escape)
            );
            assert_eq!(html_text("", escape), "");
        }
    }

    proptest::proptest! {
        #[test]
        fn html_text_by_bytes_is_html_text_by_characters(text in "\\PC*|[\\x00-\\x{ff}\\x{fff0}-\\x{ffff}&<>\"' ]*", escape: bool) {
            proptest::prop_assert_eq!(html_text(&text, escape), html_text_by_characters(&text, escape));
        }
    }

    #[test]
    fn templates_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Templates>();
    }

    fn keys(text: &str) -> Vec<String> {
        fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
            for (key, value) in table {
                let path = format!("{prefix}{key}");
                match value {
                    toml::Value::Table(inner) => walk(&format!("{path}."), inner, out),
                    _ => out.push(path),
                }
            }
        }
        let table: toml::Table = toml::from_str(text).expect("strings parse");
        let mut out = Vec::new();
        walk("", &table, &mut out);
        out.sort();
        out
    }

    #[test]
    fn both_languages_have_the_same_strings() {
        let sv = keys(STRINGS_SV);
        assert_eq!(sv, keys(STRINGS_EN));
        // The banner has a sentence for every status.
        for status in ComponentStatus::ALL {
            assert!(
                sv.contains(&format!("banner.{}", status.as_str())),
                "{status:?}"
            );
        }
    }

    #[test]
    fn every_builtin_compiles() {
        for family in [PAGES, EMAILS] {
            let mut env = Environment::new();
            for (name, source) in family.builtin {
                if let Err(error) = env.add_template(name, source) {
                    panic!("{name}: {error:#}");
                }
            }
        }
    }

    #[test]
    fn the_pages_macros_give_what_their_included_templates_give() {
        let templates = Templates::builtin();
        let time =
            minijinja::context! { iso => "2026-11-30T12:00:00Z", text => "30 nov 13:00 <CET>" };
        let context = minijinja::context! {
            u => minijinja::context! {
                anchor => "u-20261130T120000Z",
                href => "../incidents/a.html#u-20261130T120000Z",
                status_label => "Löst",
                time => time.clone(),
                components => vec![minijinja::context! { name => "Web & <mail>", status => "operational", label => "I drift" }],
                body_html => "<p>Fixed.</p>",
                body_lang => "en",
            },
            i => minijinja::context! {
                href => "../incidents/a.html",
                title => "Storage <failure>",
                status_label => "Löst",
                kind => "maintenance",
                began => time,
                components => vec!["Web", "Mail"],
            },
            t => templates.strings(Language::Sv),
        };
        let render = |source: &str| {
            templates
                .env
                .render_named_str("page.html", source, context.clone())
                .unwrap()
        };
        let by_macro = render(
            "{% import \"macros.html\" as m %}{{ m.update(u, true) }}|{{ m.update(u, level=4) }}|{{ m.update(u) }}|{{ m.summary(i, t) }}",
        );
        let by_include = render(
            "{% set anchored = true %}{% include \"update.html\" %}|{% set anchored = false %}{% set level = 4 %}{% include \"update.html\" %}|{% set level = 3 %}{% include \"update.html\" %}|{% include \"summary.html\" %}",
        );
        assert_eq!(by_macro, by_include);
        for expected in [
            "<article class=\"update\" id=\"u-20261130T120000Z\">\n<h3 class=\"update-head\">",
            "|<article class=\"update\">\n<h4 class=\"update-head\">",
            "Web &amp; &lt;mail&gt;: I drift",
            "<time datetime=\"2026-11-30T12:00:00Z\">30 nov 13:00 &lt;CET&gt;</time>",
            "<div class=\"body\" lang=\"en\"><p>Fixed.</p></div>",
            "<a href=\"../incidents/a.html\">Storage &lt;failure&gt;</a>",
            " · Underhåll · Påverkar: Web, Mail</span>",
        ] {
            assert!(
                by_macro.contains(expected),
                "{expected:?} not in {by_macro}"
            );
        }
        // Without `level` set, an update's heading is an h3.
        let bare = render("{% include \"update.html\" %}");
        assert!(bare.contains("<h3 class=\"update-head\">"), "{bare}");
    }

    #[test]
    fn an_override_of_the_update_or_summary_macro_is_warned_about() {
        let text = "{%- macro time(value) -%}{{ value.text }}{%- endmacro -%}\n{%- macro  update (u, anchored=false, level=3) -%}<p>{{ u.body }}</p>{%- endmacro -%}\n{%- macro summary(i, t) -%}{% include \"summary.html\" %}{%- endmacro -%}\n";
        let (_, diagnostics) = Templates::with_overrides(vec![(
            "macros.html".into(),
            PathBuf::from("templates/macros.html"),
            text.into(),
        )]);
        let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "templates/macros.html:2:5: warning: the `update` macro shapes only the index now: the incident and month pages include `update.html`; put its markup in an override of `update.html`, which the built-in macro includes"
            ]
        );
        // One that includes the templates, or defines neither, is fine.
        for quiet in [
            "{%- macro update(u, anchored=false, level=3) -%}{% include \"update.html\" %}{%- endmacro -%}",
            "{%- macro time(value) -%}{{ value.text }}{%- endmacro -%}{# update(x) #}",
        ] {
            let (_, diagnostics) = Templates::with_overrides(vec![(
                "macros.html".into(),
                PathBuf::from("templates/macros.html"),
                quiet.into(),
            )]);
            assert!(diagnostics.is_empty(), "{quiet}: {diagnostics:?}");
        }
    }

    /// A family of two templates, `a.txt` including `b.txt`, and a file.
    const FAMILY: Family = Family {
        builtin: &[("a.txt", "A{% include \"b.txt\" %}"), ("b.txt", "B{{ x }}")],
        files: &["notes.css"],
        kind: "test template",
        undefined: UndefinedBehavior::Strict,
        formatter: None,
    };

    fn overrides(texts: &[(&str, &str)]) -> Vec<Override> {
        texts
            .iter()
            .map(|(name, text)| {
                (
                    (*name).to_owned(),
                    PathBuf::from("t").join(name),
                    (*text).to_owned(),
                )
            })
            .collect()
    }

    fn render(env: &Environment<'static>, name: &str) -> String {
        env.get_template(name)
            .and_then(|template| template.render(minijinja::context! { x => 1 }))
            .unwrap()
    }

    fn shown(applied: &Applied) -> Vec<String> {
        applied
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn overrides_replace_builtins_by_name_and_files_come_back() {
        let mut env = FAMILY.environment();
        let applied = FAMILY.apply_overrides(
            &mut env,
            overrides(&[
                ("notes.css", "{{ not a template"),
                ("b.txt", "b{{ x + 1 }}"),
                ("extra.txt", "E"),
            ]),
            None,
        );
        assert_eq!(render(&env, "a.txt"), "Ab2");
        assert_eq!(render(&env, "extra.txt"), "E");
        assert_eq!(
            applied.files,
            overrides(&[("notes.css", "{{ not a template")])
        );
        assert_eq!(
            shown(&applied),
            [
                "t/extra.txt:1:1: warning: `extra.txt` is not a built-in test template (expected one of a.txt, b.txt, notes.css); it is used only where another template includes it"
            ]
        );
    }

    #[test]
    fn without_a_trial_what_compiles_serves() {
        let mut env = FAMILY.environment();
        let applied = FAMILY.apply_overrides(
            &mut env,
            overrides(&[("a.txt", "{{ y }}"), ("b.txt", "{% if %}")]),
            None,
        );
        assert_eq!(
            shown(&applied),
            [
                "t/b.txt:1:7: error: template syntax error: unexpected end of block; the built-in `b.txt` is used instead"
            ]
        );
        // Fails only when rendered, which nothing tried.
        assert!(env.get_template("a.txt").unwrap().render(()).is_err());
        assert_eq!(render(&env, "b.txt"), "B1");
    }

    #[test]
    fn a_failed_trial_keeps_the_builtin_and_trials_run_once_all_are_in() {
        let mut env = FAMILY.environment();
        let mut tried = Vec::new();
        let mut check = |env: &Environment<'static>, name: &str| {
            tried.push(name.to_owned());
            env.get_template(name)?
                .render(minijinja::context! { x => 1 })
                .map(drop)
        };
        let applied = FAMILY.apply_overrides(
            &mut env,
            overrides(&[
                ("a.txt", "{% include \"c.txt\" %}"),
                ("b.txt", "\n{{ y }}"),
                ("c.txt", "C{{ x }}"),
            ]),
            Some(Trial {
                failure: "template fails on a sample",
                check: &mut check,
            }),
        );
        // `a.txt` includes `c.txt`, which came after it; the unknown
        // `c.txt` itself is not tried.
        assert_eq!(tried, ["a.txt", "b.txt"]);
        assert_eq!(
            shown(&applied),
            [
                "t/c.txt:1:1: warning: `c.txt` is not a built-in test template (expected one of a.txt, b.txt, notes.css); it is used only where another template includes it",
                "t/b.txt:2:4: error: template fails on a sample: `y` is undefined; the built-in `b.txt` is used instead",
            ]
        );
        assert_eq!(render(&env, "a.txt"), "C1");
        assert_eq!(render(&env, "b.txt"), "B1");
    }
}
