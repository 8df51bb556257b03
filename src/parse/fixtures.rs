//! What the parser's unit tests share (and other modules' tests that need
//! a parsed incident): a site's components, a parse of a text as
//! `incidents/x.md` or another path, and the check of its exact
//! diagnostics. Pure, and compiled for tests only.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Stockholm;

use super::{Context, parse_incident};
use crate::diag::Diagnostic;
use crate::model::{Component, Incident};

pub(super) fn components() -> Vec<Component> {
    ["web-hosting", "mail", "cloud", "customer-portal", "dns"]
        .into_iter()
        .map(|id| Component {
            id: id.into(),
            name: id.to_uppercase(),
            group: None,
            names: Vec::new(),
            group_names: Vec::new(),
        })
        .collect()
}

pub(super) fn parse(text: &str) -> (Option<Incident>, Vec<Diagnostic>) {
    parse_at(Path::new("incidents/x.md"), text)
}

/// [`parse`] of the file at `path`, whose name gives the incident's id.
pub(crate) fn parse_at(path: &Path, text: &str) -> (Option<Incident>, Vec<Diagnostic>) {
    let components = components();
    let context = Context {
        timezone: Stockholm,
        components: &components,
        languages: &crate::model::Languages::new(
            crate::model::Language::Sv,
            &[crate::model::Language::En],
        )
        .unwrap(),
    };
    parse_incident(path, text, &context)
}

/// Asserts the exact diagnostics of `text` (one per line).
pub(super) fn check_diagnostics(text: &str, expect: &str) {
    let (incident, diagnostics) = parse(text);
    let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(shown.join("\n"), expect.trim());
    let has_error = diagnostics.iter().any(Diagnostic::is_error);
    assert_eq!(
        incident.is_none(),
        has_error,
        "an incident is returned exactly when there is no error"
    );
}

pub(super) const HEAD: &str = "+++\ntitle = \"Storage\"\ncomponents = [\"web-hosting\", \"mail\"]\nseverity = \"major\"\n+++\n";

pub(super) fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}
