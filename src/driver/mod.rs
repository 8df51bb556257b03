//! Loading and building, shared by every command and the daemon: the
//! configuration, the incident files, the templates with the operator's
//! overrides, one full build of the outputs, and the edit times recorded
//! for it. Does I/O (files, the state database); never reads the clock:
//! callers pass `now`.
//!
//! Invalid input (a bad configuration) is printed as diagnostics and
//! reported as [`InvalidInput`], which `main` turns into exit code 1.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::compose::Composer;
use crate::config::{self, Config};
use crate::corpus::{Corpus, Files};
use crate::diag::{Diagnostic, LineIndex};
use crate::fsio;
use crate::parse::Context;
use crate::render::Templates;

mod build;

pub use build::{Built, build, publish_everything};

/// The input was rejected; the details were already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

/// Where `--config` was not given: `$HERALD_CONFIG`, `./herald.toml`,
/// `/etc/herald/herald.toml`, in that order.
pub fn config_path(explicit: Option<&Path>, from_env: Option<PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_owned();
    }
    if let Some(path) = from_env.filter(|p| !p.as_os_str().is_empty()) {
        return path;
    }
    let local = PathBuf::from("herald.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/herald/herald.toml")
}

/// Reads and validates the configuration, printing its diagnostics.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(InvalidInput(format!(
                "configuration file {} not found (give --config PATH or set HERALD_CONFIG)",
                path.display()
            ))
            .into());
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read configuration {}", path.display()));
        }
    };
    config::parse(path, &text).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        InvalidInput(format!("{} has errors", path.display())).into()
    })
}

pub fn parse_context(config: &Config) -> Context<'_> {
    Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    }
}

/// Reads one incident file into `files`, reporting bytes that are not
/// UTF-8 at their line and column. A file that cannot be read is recorded
/// as an error of that path (its last good version stays published) and
/// the error returned, so a caller can read the others and try this one
/// again later if [`fsio::Error::is_transient`].
pub fn read_incident(files: &mut Files, path: &Path, context: &Context) -> Result<(), fsio::Error> {
    let bytes = match fsio::read_incident(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            files.remove(path);
            return Ok(());
        }
        Err(error) => {
            files.unreadable(path, error.reason());
            return Err(error);
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => files.update(path, &text, context),
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&error.as_bytes()[..valid]).into_owned();
            let (line, column) = LineIndex::new(&prefix).position(valid);
            files.unreadable(
                path,
                format!("not valid UTF-8 (at {line}:{column}); save the file as UTF-8"),
            );
        }
    }
    Ok(())
}

/// Reads every incident file of the configured directory. Files that
/// could not be read are recorded as errors; those worth reading again
/// later are returned beside the files. Two threads share the parsing,
/// each half the files.
pub fn load_files(config: &Config) -> anyhow::Result<(Files, Vec<PathBuf>)> {
    let context = parse_context(config);
    let paths = incident_paths(config)?;
    let (first, second) = paths.split_at(paths.len() / 2);
    let ((mut files, mut retry), (more, retry_more)) = std::thread::scope(|scope| {
        let other = scope.spawn(|| read_incidents(second, &context));
        let mine = read_incidents(first, &context);
        let theirs = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (mine, theirs)
    });
    files.append(more);
    retry.extend(retry_more);
    Ok((files, retry))
}

/// Every incident file of the configured directory, in path order.
fn incident_paths(config: &Config) -> anyhow::Result<Vec<PathBuf>> {
    fsio::find_incident_files(&config.paths.incidents).with_context(|| {
        format!(
            "cannot read the incidents directory {}",
            config.paths.incidents.display()
        )
    })
}

/// [`read_incident`] of each of `paths`: the files, and the paths worth
/// reading again later.
pub(crate) fn read_incidents(paths: &[PathBuf], context: &Context) -> (Files, Vec<PathBuf>) {
    let mut files = Files::default();
    let mut retry = Vec::new();
    for path in paths {
        if let Err(error) = read_incident(&mut files, path, context)
            && error.is_transient()
        {
            retry.push(path.clone());
        }
    }
    (files, retry)
}

pub fn print_diagnostics(diagnostics: &[Diagnostic], out: &mut dyn std::io::Write) {
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
}

/// Every diagnostic of the tree: per file, then cross-file.
pub fn all_diagnostics(files: &Files) -> (Corpus, Vec<Diagnostic>) {
    let (corpus, cross) = files.corpus();
    (corpus, with_cross(files, cross))
}

/// Every file's diagnostics, then the cross-file ones of its corpus.
fn with_cross(files: &Files, cross: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut diagnostics: Vec<Diagnostic> = files.diagnostics().cloned().collect();
    diagnostics.extend(cross);
    diagnostics
}

/// The built-in templates, with the operator's overrides from
/// `paths.templates` when set: each file there replaces the built-in
/// template of the same name. A broken override is reported and the
/// built-in keeps serving.
pub fn load_templates(config: &Config) -> anyhow::Result<Templates> {
    let Some(dir) = &config.paths.templates else {
        return Ok(Templates::builtin());
    };
    let (templates, diagnostics) = Templates::with_overrides(read_overrides(dir)?);
    log_template_diagnostics(&diagnostics);
    Ok(templates)
}

/// The built-in email templates, with the operator's overrides from the
/// `email/` directory of `paths.templates` when there is one. A broken
/// override is reported and the built-in is used; so are all of them when
/// the directory cannot be read: email is never stopped for a template.
pub fn load_email_templates(config: &Config) -> Composer {
    let Some(dir) = config.paths.templates.as_ref().map(|dir| dir.join("email")) else {
        return Composer::new();
    };
    if let Err(error) = std::fs::metadata(&dir)
        && error.kind() == std::io::ErrorKind::NotFound
    {
        return Composer::new();
    }
    match read_overrides(&dir) {
        Ok(overrides) => {
            let (composer, diagnostics) = Composer::with_overrides(config, overrides);
            log_template_diagnostics(&diagnostics);
            composer
        }
        Err(error) => {
            tracing::error!("{error:#}; using the built-in email templates");
            Composer::new()
        }
    }
}

/// The files directly in `dir` (not those of its subdirectories, nor
/// hidden ones), as `(name, path, text)` sorted by name.
fn read_overrides(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf, String)>> {
    let context = || format!("cannot read the templates directory {}", dir.display());
    let entries = std::fs::read_dir(dir).with_context(context)?;
    let mut overrides = Vec::new();
    for entry in entries {
        let path = entry.with_context(context)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let text = fsio::read_to_string(&path)?;
        overrides.push((name, path, text));
    }
    overrides.sort();
    Ok(overrides)
}

fn log_template_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        if diagnostic.is_error() {
            tracing::error!("{diagnostic}; using the built-in template");
        } else {
            tracing::warn!("{diagnostic}");
        }
    }
}
