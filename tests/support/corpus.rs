//! Builds a corpus from incident texts the way herald does, for tests of
//! the renderers. Every text must parse without a single diagnostic.

use std::path::Path;

use herald::config::Config;
use herald::corpus::Corpus;
use herald::parse::{Context, parse_incident};

/// Parses `(file name, text)` pairs against `config`'s zone and
/// components.
pub fn corpus(config: &Config, files: &[(&str, &str)]) -> Corpus {
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let incidents = files.iter().map(|(name, text)| {
        let (incident, diagnostics) = parse_incident(Path::new(name), text, &context);
        assert!(diagnostics.is_empty(), "{name}: {diagnostics:?}");
        incident.expect("test incident parses")
    });
    Corpus::from_incidents(incidents)
}
