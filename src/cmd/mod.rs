//! One function per subcommand: typed options in, an exit code out. The
//! loading and building they share is [`crate::driver`]'s.
//!
//! Invalid input (a bad config, an incident with errors) is printed as
//! diagnostics and reported as [`InvalidInput`], which `main` turns into
//! exit code 1; any other error is a runtime failure (exit 3).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::diag::Diagnostic;
use crate::driver::{self, print_diagnostics, read_incident};
use crate::fsio;

mod incidents;
mod listing;
mod matrix;
mod subscribers;

pub use crate::driver::{InvalidInput, config_path};
pub use incidents::{NewOptions, PostOptions, heading_time, new, post, publish};
pub use listing::{ListOptions, list, show};
pub use subscribers::{
    SubscribeOptions, outbox, parse_subscribers_csv, rekey, send_test, send_test_matrix,
    send_test_webhook, subscribers_add, subscribers_import, subscribers_list, subscribers_remove,
};

pub struct BuildOptions {
    pub config: PathBuf,
}

/// `herald build`: one build of every output, then the `[publish]`
/// command if an output changed; exit 1 if any file has errors (the good
/// ones are still published), 3 if publishing failed.
pub fn build(options: BuildOptions) -> anyhow::Result<ExitCode> {
    let config = driver::load_config(&options.config)?;
    let built = driver::build(&config, crate::clock::now())?;
    print_diagnostics(&built.diagnostics, &mut std::io::stderr());
    tracing::info!(
        incidents = built.incidents,
        outputs = built.outputs,
        changed = built.changed,
        "built"
    );
    // Like `herald run`, a build that changed an output runs `[publish]`.
    if let Some(job) = crate::publish::Job::from_config(&config)
        && built.changed > 0
    {
        crate::publish::run_blocking(&job)
            .with_context(|| format!("publish command `{}` failed", job.display()))?;
        tracing::info!(command = %job.display(), "publish command finished");
    }
    if built.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(InvalidInput(
            "some incident files have errors; their last good versions were not published".into(),
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

pub struct CheckOptions {
    pub config: PathBuf,
    /// Files or directories to report on; all incident files if empty.
    pub paths: Vec<PathBuf>,
}

/// `herald check`: diagnostics on stdout, one per line.
pub fn check(options: CheckOptions) -> anyhow::Result<ExitCode> {
    let config = driver::load_config(&options.config)?;
    let context = driver::parse_context(&config);
    let (mut files, _) = driver::load_files(&config)?;
    // Paths outside the incidents directory are checked too.
    for path in &options.paths {
        if path.is_dir() {
            for found in fsio::find_incident_files(path)? {
                if !files.contains(&found) {
                    // A file that cannot be read is one of the diagnostics.
                    let _ = read_incident(&mut files, &found, &context);
                }
            }
        } else if !files.contains(path) {
            if !path.exists() {
                return Err(InvalidInput(format!("{}: no such file", path.display())).into());
            }
            let _ = read_incident(&mut files, path, &context);
        }
    }
    let (_, mut diagnostics) = driver::all_diagnostics(&files);
    if !options.paths.is_empty() {
        diagnostics.retain(|d| {
            options
                .paths
                .iter()
                .any(|p| d.path.starts_with(p) || same_file(&d.path, p))
        });
    }
    print_diagnostics(&diagnostics, &mut std::io::stdout());
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        return Err(InvalidInput(format!("{errors} error(s)")).into());
    }
    Ok(ExitCode::SUCCESS)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

pub struct RunOptions {
    pub config: PathBuf,
}

/// `herald run`: the daemon.
pub fn run(options: RunOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(crate::daemon::run(options.config))
}
