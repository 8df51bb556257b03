//! The `herald` binary: parses the command line, sets up logging and hands
//! over to `herald::cmd`. Only this file exits the process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Publish status feeds, pages and alerts from a directory of incident files"
)]
struct Cli {
    /// Configuration file [default: $HERALD_CONFIG, ./herald.toml, /etc/herald/herald.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, then watch the incidents and rebuild on every change
    Run,
    /// Build every output once; exit 1 if any file has errors
    Build,
    /// Validate the configuration and incident files
    Check {
        /// Files or directories to report on (default: all incident files)
        paths: Vec<PathBuf>,
    },
    /// Create an incident file with a first `investigating` update now
    New {
        id: String,
        #[arg(long)]
        title: String,
        /// Comma-separated component ids
        #[arg(long, value_delimiter = ',', required = true)]
        components: Vec<String>,
        #[arg(long, default_value = "major")]
        severity: String,
        /// Text of the first update
        text: Option<String>,
    },
    /// Append an update at the current time (TEXT from stdin when omitted)
    Post {
        id: String,
        status: String,
        text: Option<String>,
    },
    /// Manage email subscribers
    #[command(subcommand)]
    Subscribers(Subscribers),
    /// Show pending, retrying and failed email
    Outbox,
    /// Send one test message through the configured transport
    SendTest {
        /// Recipient address
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum Subscribers {
    /// Add a subscriber, or change the components and language of one
    Add {
        email: String,
        /// Comma-separated component ids [default: all components]
        #[arg(long, value_delimiter = ',')]
        components: Vec<String>,
        /// `sv` or `en` [default: the site's language]
        #[arg(long)]
        lang: Option<String>,
    },
    /// Remove a subscriber and their queued email
    Remove { email: String },
    /// List subscribers: address, language, components (`*` for all)
    List,
    /// Import `email,components` rows; nothing is imported unless every row is valid
    Import { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    #[allow(clippy::disallowed_methods)]
    let from_env = std::env::var_os("HERALD_CONFIG").map(PathBuf::from);
    let config = cmd::config_path(cli.config.as_deref(), from_env);
    let result = match cli.command {
        Command::Run => cmd::run(cmd::RunOptions { config }),
        Command::Build => cmd::build(cmd::BuildOptions { config }),
        Command::Check { paths } => cmd::check(cmd::CheckOptions { config, paths }),
        Command::New {
            id,
            title,
            components,
            severity,
            text,
        } => cmd::new(cmd::NewOptions {
            config,
            id,
            title,
            components,
            severity,
            text,
        }),
        Command::Post { id, status, text } => cmd::post(cmd::PostOptions {
            config,
            id,
            status,
            text,
        }),
        Command::Subscribers(Subscribers::Add {
            email,
            components,
            lang,
        }) => cmd::subscribers_add(cmd::SubscribeOptions {
            config,
            address: email,
            components,
            language: lang,
        }),
        Command::Subscribers(Subscribers::Remove { email }) => {
            cmd::subscribers_remove(config, email)
        }
        Command::Subscribers(Subscribers::List) => cmd::subscribers_list(config),
        Command::Subscribers(Subscribers::Import { file }) => cmd::subscribers_import(config, file),
        Command::Outbox => cmd::outbox(config),
        Command::SendTest { email } => cmd::send_test(config, email),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let invalid = error.downcast_ref::<cmd::InvalidInput>().is_some();
            eprintln!("herald: {}", chain(&error));
            ExitCode::from(if invalid { 1 } else { 3 })
        }
    }
}

/// `outer: inner: innermost`, each cause once.
fn chain(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Logs to stderr, filtered by `HERALD_LOG` (default `info`). Under
/// systemd (`JOURNAL_STREAM` set) journald adds time stamps itself.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    #[allow(clippy::disallowed_methods)]
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if journald {
        builder.without_time().with_ansi(false).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
