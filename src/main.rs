//! The `herald` binary: parses the command line, sets up logging and hands
//! over to `herald::cmd`. Only this file exits the process.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use herald::cmd;
use herald::model::{Channel, Format};

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
    ///
    /// Also emails subscribers and runs `[publish]` after each build that
    /// changed an output. SIGHUP reloads the configuration and templates
    /// (a configuration with errors is reported and the running one kept);
    /// SIGTERM or SIGINT stops it. Under systemd it reports readiness,
    /// reloads and a status line, and pings the watchdog (Type=notify).
    Run,
    /// Build every output once; exit 1 if any file has errors
    ///
    /// Runs the `[publish]` command afterwards if an output changed; exit 3
    /// if that fails.
    Build,
    /// Validate the configuration and incident files
    Check {
        /// Files or directories to report on (default: all incident files)
        paths: Vec<PathBuf>,
    },
    /// Create an incident file with a first `investigating` update now
    New {
        /// Incident id, also the file name: lowercase letters, digits, `.`, `_`, `-`
        id: String,
        /// Incident title
        #[arg(long)]
        title: String,
        /// Comma-separated component ids
        #[arg(long, value_delimiter = ',', required = true)]
        components: Vec<String>,
        /// `minor`, `major` or `critical`
        #[arg(long, default_value = "major")]
        severity: String,
        /// Text of the first update
        text: Option<String>,
    },
    /// Append an update at the current time (TEXT from stdin when omitted)
    ///
    /// `--set COMPONENT=STATUS` (repeatable) writes the update's
    /// `components:` line: operational, degraded, partial-outage,
    /// major-outage or maintenance. A component not yet affected joins the
    /// incident at this update. `--quiet` writes `notify: no`: the update
    /// is published but emailed to nobody. Refuses an empty text, and an
    /// `update` to a resolved incident (reopen it with investigating,
    /// identified or monitoring).
    Post {
        /// Id of an existing incident
        id: String,
        /// investigating, identified, monitoring, update, resolved; for
        /// maintenance: scheduled, in-progress, completed, cancelled
        status: String,
        /// Text of the update (Markdown)
        text: Option<String>,
        /// Set a component's status from this update on, e.g.
        /// `--set mail=major-outage` (repeatable; a component not yet
        /// affected joins the incident here)
        #[arg(long = "set", value_name = "COMPONENT=STATUS")]
        set: Vec<String>,
        /// Publish without emailing anyone (`notify: no`)
        #[arg(long)]
        quiet: bool,
        /// Print what would be appended and, per language, the email and
        /// how many subscribers would get it; write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List open incidents and upcoming maintenance: id, title, status,
    /// component statuses, age of the last update
    List {
        /// Every incident, resolved ones and drafts included
        #[arg(long)]
        all: bool,
    },
    /// Show one incident: its components now and every update
    Show {
        /// Id of an existing incident
        id: String,
    },
    /// Publish a draft incident (one made from an alert, or `draft = true`)
    Publish {
        /// Id of an existing incident
        id: String,
    },
    /// Manage subscribers: email addresses and webhooks
    #[command(subcommand)]
    Subscribers(Subscribers),
    /// Show pending, retrying and failed deliveries of every channel, and
    /// updates waiting out their grace period (with when they go)
    Outbox,
    /// Send one test message through the configured transport, or post
    /// one to a webhook
    SendTest {
        /// Recipient address
        #[arg(required_unless_present_any = ["webhook", "matrix"])]
        email: Option<String>,
        /// Post to this webhook instead
        #[arg(long, conflicts_with = "email")]
        webhook: Option<String>,
        /// Post to this Matrix room (id or alias) with the `[matrix]` account
        #[arg(long, conflicts_with_all = ["email", "webhook"])]
        matrix: Option<String>,
        /// The webhook's format: json, slack, discord, teams or mattermost
        #[arg(long, requires = "webhook", default_value = "json", value_parser = parse_format)]
        format: Format,
    },
    /// Make a new token key (state/token.key) when the old one is lost,
    /// and re-key every subscriber; unsubscribe links in mail already
    /// sent keep working, pending confirmation links stop
    Rekey,
}

#[derive(Debug, Subcommand)]
enum Subscribers {
    /// Add a subscriber, or change the components, language and volume of one
    Add {
        /// Subscriber's email address
        #[arg(required_unless_present_any = ["webhook", "matrix"])]
        email: Option<String>,
        /// Post to this https URL instead of emailing
        #[arg(long, conflicts_with = "email")]
        webhook: Option<String>,
        /// Post to this Matrix room (`!id:server` or `#alias:server`)
        /// with the `[matrix]` account, which joins it (invite it first)
        #[arg(long, conflicts_with_all = ["email", "webhook"])]
        matrix: Option<String>,
        /// The webhook's format: json (Statuspage's webhook), slack,
        /// discord, teams or mattermost
        #[arg(long, requires = "webhook", default_value = "json", value_parser = parse_format)]
        format: Format,
        /// Comma-separated component ids [default: all components]
        #[arg(long, value_delimiter = ',')]
        components: Vec<String>,
        /// `sv` or `en` [default: the site's language]
        #[arg(long)]
        lang: Option<String>,
        /// Only the updates that change something: the first, a change of
        /// the incident's or a component's status, the resolution
        /// [default: every update]
        #[arg(long)]
        only_changes: bool,
        /// Follow this one published incident until its resolution,
        /// besides what the address follows already
        #[arg(long, conflicts_with = "components")]
        incident: Option<String>,
    },
    /// Remove a subscriber and their queued deliveries
    Remove {
        /// Subscriber's email address, webhook URL or Matrix room
        email: String,
    },
    /// List subscribers: address, language, components (`*` for all),
    /// `every` update or only `changes`, channel
    List,
    /// Import `email,components` rows; nothing is imported unless every row is valid
    Import {
        /// CSV file of `email,components` rows
        file: PathBuf,
    },
}

/// `--format`: one of the webhook formats.
fn parse_format(text: &str) -> Result<Format, String> {
    Format::parse(text).ok_or_else(|| {
        format!("unknown format `{text}`, expected json, slack, discord, teams or mattermost")
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[allow(clippy::disallowed_methods)]
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    init_logging(journald);
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
        Command::Post {
            id,
            status,
            text,
            set,
            quiet,
            dry_run,
        } => cmd::post(cmd::PostOptions {
            config,
            id,
            status,
            text,
            set,
            quiet,
            dry_run,
        }),
        Command::List { all } => cmd::list(cmd::ListOptions { config, all }),
        Command::Show { id } => cmd::show(config, id),
        Command::Publish { id } => cmd::publish(&config, &id),
        Command::Subscribers(Subscribers::Add {
            email,
            webhook,
            matrix,
            format,
            components,
            lang,
            only_changes,
            incident,
        }) => cmd::subscribers_add(cmd::SubscribeOptions {
            config,
            channel: if webhook.is_some() {
                Channel::Webhook(format)
            } else if matrix.is_some() {
                Channel::Matrix
            } else {
                Channel::Email
            },
            address: webhook.or(matrix).or(email).unwrap_or_default(),
            components,
            language: lang,
            only_changes,
            incident,
        }),
        Command::Subscribers(Subscribers::Remove { email }) => {
            cmd::subscribers_remove(config, email)
        }
        Command::Subscribers(Subscribers::List) => cmd::subscribers_list(config),
        Command::Subscribers(Subscribers::Import { file }) => cmd::subscribers_import(config, file),
        Command::Outbox => cmd::outbox(config),
        Command::SendTest {
            matrix: Some(room), ..
        } => cmd::send_test_matrix(config, room),
        Command::SendTest {
            webhook: Some(url),
            format,
            ..
        } => cmd::send_test_webhook(config, url, format),
        Command::SendTest { email, .. } => cmd::send_test(config, email.unwrap_or_default()),
        Command::Rekey => cmd::rekey(config),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`herald outbox | head`): nothing to say.
        Err(error) if broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let invalid = error.downcast_ref::<cmd::InvalidInput>().is_some();
            // Under journald, `<3>` marks the line as an error.
            let priority = if journald { "<3>" } else { "" };
            eprintln!("{priority}herald: {}", chain(&error));
            ExitCode::from(if invalid { 1 } else { 3 })
        }
    }
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
/// systemd (`JOURNAL_STREAM` set) journald adds time stamps itself, and
/// reads each line's priority from a `<N>` prefix.
fn init_logging(journald: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if journald {
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_target(false);
        builder
            .with_ansi(false)
            .event_format(Priority(format))
            .init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// Puts sd-daemon(3)'s syslog priority in front of each event: `<3>`
/// error, `<4>` warning, `<6>` info, `<7>` debug and trace.
struct Priority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Priority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        context: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(context, writer, event)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    /// `--help` explains every command and every argument.
    #[test]
    fn every_command_and_argument_has_help() {
        fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for argument in command.get_arguments() {
                let builtin = matches!(argument.get_id().as_str(), "help" | "version");
                if !builtin && argument.get_help().is_none() {
                    missing.push(format!("{path} <{}>", argument.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &path, missing);
            }
        }
        let mut command = <super::Cli as clap::CommandFactory>::command();
        command.build();
        let mut missing = Vec::new();
        undocumented(&command, "", &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }
}
