//! The subscriber and outbox commands: `subscribers add|remove|list|import`,
//! `outbox`, `send-test` and `rekey`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::address::Address;
use crate::announce::{self, Announced, Policy};
use crate::clock;
use crate::compose::Composer;
use crate::config::Config;
use crate::diag::{Diagnostic, LineIndex};
use crate::driver::{self, InvalidInput, load_config, print_diagnostics};
use crate::endpoint::Endpoint;
use crate::fsio;
use crate::mailer;
use crate::model::{Channel, Format, Language};
use crate::model::{Follows, IncidentId};
use crate::store::{NewSubscriber, OutboxState, Store};

/// `--components` as given: empty, `*` or `all` mean every component.
/// Unknown ids are an error naming them.
fn follows(config: &Config, components: &[String]) -> Result<Follows, String> {
    let mut ids: Vec<String> = components
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if ids.is_empty() || ids.iter().any(|c| c == "*" || c == "all") {
        return Ok(Follows::All);
    }
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| config.component(id).is_none())
        .map(|id| format!("`{id}`"))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.components.iter().map(|c| c.id.as_str()).collect();
        return Err(format!(
            "unknown component {}, expected one of {}",
            unknown.join(", "),
            known.join(", ")
        ));
    }
    ids.sort();
    ids.dedup();
    Ok(Follows::Components(ids))
}

/// Whether `address` is one email address (`name@domain`, no display
/// name).
fn valid_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.paths.state)?)
}

/// `herald rekey`: a new token key, and every subscriber's and pending
/// request's links made with it.
pub fn rekey(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let mut store = open_store(&config)?;
    let problem = store.key_problem().cloned();
    let count = store.rekey(&config.paths.state)?;
    let path = config.paths.state.join(crate::token::KEY_FILE);
    match problem {
        Some(problem) => println!("replaced the token key ({})", problem.summary()),
        None => println!("replaced a working token key"),
    }
    println!(
        "{}: new key, {count} subscriptions re-keyed; back it up with the database. A running herald resumes email within a minute, or at once on `systemctl reload herald`.",
        path.display()
    );
    let webhooks = store
        .subscribers()?
        .into_iter()
        .filter(|subscriber| subscriber.channel != crate::model::Channel::Email)
        .count();
    if webhooks > 0 {
        println!(
            "{webhooks} webhook(s) now sign with new secrets: `herald subscribers add --webhook URL` (with its options) shows each one; give them to their receivers"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub struct SubscribeOptions {
    pub config: PathBuf,
    /// An email address, or a webhook's URL ([`SubscribeOptions::channel`]).
    pub address: String,
    pub channel: Channel,
    pub components: Vec<String>,
    pub language: Option<String>,
    /// Only the updates that change a status.
    pub only_changes: bool,
    /// `--incident`: follow this incident only.
    pub incident: Option<String>,
}

/// `herald subscribers add`: adds a subscriber, or changes the components,
/// language and volume of one already there.
pub fn subscribers_add(options: SubscribeOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let address = match options.channel {
        Channel::Email => Address::parse(&options.address)
            .map_err(|_| {
                InvalidInput(format!(
                    "invalid email address `{}`",
                    options.address.trim()
                ))
            })?
            .to_string(),
        Channel::Webhook(_) => admit_webhook(&config, &options.address)?,
        Channel::Matrix => super::matrix::join(&config, &options.address)?,
    };
    let follows = match &options.incident {
        Some(id) => Follows::Incident(published_incident(&config, id)?),
        None => follows(&config, &options.components).map_err(InvalidInput)?,
    };
    let language = match &options.language {
        None => config.site.language(),
        Some(code) => Language::parse(code).ok_or_else(|| {
            InvalidInput(format!("unknown language `{code}`, expected `sv` or `en`"))
        })?,
    };
    let mut store = open_store(&config)?;
    let added = store.add_subscribers(
        &[NewSubscriber {
            address: address.clone(),
            channel: options.channel,
            follows,
            language,
            only_changes: options.only_changes,
        }],
        clock::now(),
    )?;
    let verb = if added.added > 0 { "added" } else { "updated" };
    match options.channel {
        Channel::Email => println!("{verb} {address}"),
        Channel::Matrix if address != options.address.trim() => {
            println!("{verb} {address} (matrix, {})", options.address.trim());
        }
        Channel::Matrix => println!("{verb} {address} (matrix)"),
        Channel::Webhook(_) => {
            println!("{verb} {address} ({})", options.channel.code());
            if let Some(secret) = store.subscriber(&address)?.and_then(|s| s.signing) {
                println!(
                    "signing secret: {secret}\n(give it to the receiver; every request carries Herald-Signature: t=TIMESTAMP,v1=HMAC-SHA256 of TIMESTAMP.BODY under it)"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `url` as herald stores it, once it is an https URL (or one the
/// operator allows) whose host resolves to addresses webhooks may reach;
/// a refusal is invalid input (exit 1).
fn admit_webhook(config: &Config, url: &str) -> anyhow::Result<String> {
    Ok(admit_webhooks(config, &[url])?.remove(0))
}

/// [`admit_webhook`] for several URLs, on one runtime.
fn admit_webhooks(config: &Config, urls: &[&str]) -> anyhow::Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut admitted = Vec::with_capacity(urls.len());
        for url in urls {
            match crate::webhook::admit(&config.webhooks, url).await {
                Ok(endpoint) => admitted.push(endpoint.to_string()),
                Err(failure) => {
                    return Err(InvalidInput(format!("refused webhook: {failure}")).into());
                }
            }
        }
        Ok(admitted)
    })
}

/// The published incident `id` names, or why it cannot be followed.
fn published_incident(config: &Config, id: &str) -> anyhow::Result<IncidentId> {
    let unknown = || InvalidInput(format!("no published incident `{id}`"));
    let id = IncidentId::new(id).ok_or_else(unknown)?;
    let (files, _) = driver::load_files(config)?;
    let (corpus, _) = files.corpus();
    match corpus.published_get(&id) {
        None => Err(unknown().into()),
        Some(incident) if incident.closed_at().is_some() => Err(InvalidInput(format!(
            "incident `{id}` is closed already; there is nothing more to follow"
        ))
        .into()),
        Some(_) => Ok(id),
    }
}

/// `herald subscribers remove`: exit 1 if there is no such subscriber.
pub fn subscribers_remove(config: PathBuf, address: String) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    // A room's alias names the room stored by its id.
    let address = if address.trim_start().starts_with('#') {
        super::matrix::stored_room(&config, &address)?
    } else {
        address
    };
    let mut store = open_store(&config)?;
    // Stored addresses are normalised; so is the one to remove.
    let stored = match Endpoint::parse(&address) {
        Ok(endpoint) => endpoint.to_string(),
        Err(_) => {
            Address::parse(&address).map_or_else(|_| address.trim().to_owned(), |a| a.to_string())
        }
    };
    if !store.remove_subscriber(&stored)? {
        return Err(InvalidInput(format!("no subscriber `{}`", address.trim())).into());
    }
    println!("removed {stored}");
    Ok(ExitCode::SUCCESS)
}

/// `herald subscribers list`: `ADDRESS LANGUAGE FOLLOWS VOLUME`, one per
/// line: the components (`*` for all), then `incident:ID` for each
/// incident followed until its resolution; `every` update or only
/// `changes`.
pub fn subscribers_list(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let store = open_store(&config)?;
    let mut incidents: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for (address, incident) in store.followed_incidents()? {
        incidents
            .entry(address)
            .or_default()
            .push(format!("incident:{incident}"));
    }
    let mut out = std::io::stdout().lock();
    let only_changes = store.only_changes()?;
    for subscriber in store.subscribers()? {
        let mut follows = match &subscriber.follows {
            Follows::All => vec!["*".to_owned()],
            Follows::Components(ids) => ids.clone(),
            Follows::Incident(id) => vec![format!("incident:{id}")],
        };
        follows.extend(incidents.remove(&subscriber.address).unwrap_or_default());
        let volume = if only_changes.contains(&subscriber.address) {
            "changes"
        } else {
            "every"
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{volume}\t{}",
            subscriber.address,
            subscriber.language.code(),
            follows.join(","),
            subscriber.channel.code()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `email,components` rows: components separated by `;`, spaces or
/// further commas; none, `*` or `all` for every component. Blank lines,
/// `#` comments and a first line starting with `email` are skipped. Every
/// problem is reported with its line.
pub fn parse_subscribers_csv(
    path: &Path,
    text: &str,
    config: &Config,
) -> Result<Vec<NewSubscriber>, Vec<Diagnostic>> {
    let index = LineIndex::new(text);
    let mut subscribers: Vec<NewSubscriber> = Vec::new();
    let mut positions: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut errors = Vec::new();
    let mut offset = 0;
    let mut first = true;
    for raw_line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (address_field, rest) = line.split_once(',').unwrap_or((line, ""));
        let address = address_field.trim().trim_matches('"').trim();
        if first && address.eq_ignore_ascii_case("email") {
            first = false;
            continue;
        }
        first = false;
        let address_at = line_start + (address_field.len() - address_field.trim_start().len());
        // A URL is a webhook taking Statuspage's JSON.
        let is_url = address
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("http"));
        let parsed = if is_url {
            Endpoint::parse(address)
                .map(|endpoint| endpoint.to_string())
                .map_err(|refusal| refusal.to_string())
        } else {
            Address::parse(address)
                .map(|address| address.to_string())
                .map_err(|_| format!("invalid email address `{address}`"))
        };
        if let Err(problem) = &parsed {
            errors.push(Diagnostic::error(path, &index, address_at, problem.clone()));
        }
        let rest_start = line_start + address_field.len() + 1;
        let mut components = Vec::new();
        let mut position = 0;
        for piece in rest.split_inclusive([',', ';', ' ', '\t', '"']) {
            let id = piece.trim_end_matches([',', ';', ' ', '\t', '"']);
            if !id.is_empty() {
                if id != "*" && id != "all" && config.component(id).is_none() {
                    errors.push(Diagnostic::error(
                        path,
                        &index,
                        rest_start + position,
                        format!("unknown component `{id}`"),
                    ));
                }
                components.push(id.to_owned());
            }
            position += piece.len();
        }
        let follows = follows(config, &components).unwrap_or(Follows::All);
        let subscriber = NewSubscriber {
            channel: if is_url {
                Channel::Webhook(Format::Json)
            } else {
                Channel::Email
            },
            // Only used when every row is valid.
            address: parsed.unwrap_or_else(|_| address.to_owned()),
            follows,
            language: config.site.language(),
            only_changes: false,
        };
        // A later row for the same address wins.
        match positions.get(&subscriber.address) {
            Some(&position) => subscribers[position] = subscriber,
            None => {
                positions.insert(subscriber.address.clone(), subscribers.len());
                subscribers.push(subscriber);
            }
        }
    }
    if errors.is_empty() {
        Ok(subscribers)
    } else {
        Err(errors)
    }
}

/// `herald subscribers import FILE.csv`: all rows or none.
pub fn subscribers_import(config: PathBuf, file: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let text = fsio::read_to_string(&file)?;
    let subscribers = parse_subscribers_csv(&file, &text, &config).map_err(|diagnostics| {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        InvalidInput(format!(
            "{} has {} error(s); nothing was imported",
            file.display(),
            diagnostics.len()
        ))
    })?;
    // Webhooks must reach allowed addresses, all of them, or none is
    // imported.
    let urls: Vec<&str> = subscribers
        .iter()
        .filter(|subscriber| subscriber.channel != Channel::Email)
        .map(|subscriber| subscriber.address.as_str())
        .collect();
    admit_webhooks(&config, &urls)
        .map_err(|error| InvalidInput(format!("{error:#}; nothing was imported")))?;
    let mut store = open_store(&config)?;
    let added = store.add_subscribers(&subscribers, clock::now())?;
    println!(
        "imported {} subscriber(s): {} new, {} updated",
        subscribers.len(),
        added.added,
        added.updated
    );
    Ok(ExitCode::SUCCESS)
}

/// An instant in the site's time zone, to the second, with its offset.
fn local_time(instant: chrono::DateTime<chrono::Utc>, timezone: chrono_tz::Tz) -> String {
    instant
        .with_timezone(&timezone)
        .format("%Y-%m-%d %H:%M:%S%:z")
        .to_string()
}

/// A server's reply as the terminal may show it: control characters
/// (escape sequences, carriage returns, C1 controls) written as Rust
/// escapes, so a hostile or broken server cannot drive the operator's
/// terminal.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .map(|character| {
            if character.is_control() {
                character.escape_default().to_string()
            } else {
                character.to_string()
            }
        })
        .collect()
}

/// At most this many undelivered messages are listed one by one.
const OUTBOX_LIST_LIMIT: usize = 100;

/// `herald outbox`: counts, then the failed, retrying and pending messages
/// with the server's last reply (control characters escaped), then the
/// updates not yet queued: due now, or waiting out their grace period,
/// with when they go, in the site's time zone.
pub fn outbox(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let store = open_store(&config)?;
    let counts = store.outbox_counts()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "pending {}, retrying {}, failed {}, sent {}",
        counts.pending, counts.retrying, counts.failed, counts.sent
    )?;
    let entries = store.outbox(OUTBOX_LIST_LIMIT)?;
    for entry in &entries {
        let detail = match entry.state {
            OutboxState::Failed => String::new(),
            _ => format!(
                "\tnext {}",
                entry
                    .next_attempt
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        };
        writeln!(
            out,
            "{}\t{}\t{}@{}\tattempts {}{detail}\t{}",
            entry.state.as_str(),
            entry.address,
            entry.incident,
            entry.instant,
            entry.attempts,
            entry.last_reply.as_deref().map_or("-".into(), printable)
        )?;
    }
    let undelivered = counts.pending + counts.retrying + counts.failed;
    if undelivered > entries.len() {
        writeln!(out, "… and {} more", undelivered - entries.len())?;
    }
    // Updates still in their grace period: queued once it is over.
    let (files, _) = driver::load_files(&config)?;
    let (corpus, _) = files.corpus();
    let email = config.email_or_default();
    let announced = Announced {
        seen: store.pending_seen()?,
        notified: Default::default(),
    };
    let policy = Policy {
        grace: email.grace,
        max_age: email.max_age,
    };
    let decision = announce::decide(&corpus, &announced, clock::now(), policy);
    let timezone = config.site.timezone;
    for announcement in &decision.due {
        writeln!(
            out,
            "due\t{}@{}\tqueued at the next pass of herald run",
            announcement.incident,
            local_time(announcement.instant, timezone)
        )?;
    }
    for ((id, instant), due) in &decision.waiting {
        let quiet = corpus
            .published_get(id)
            .and_then(|incident| incident.updates.iter().find(|u| u.instant == *instant))
            .is_some_and(|update| !update.notify);
        writeln!(
            out,
            "grace\t{id}@{}\t{} {}",
            local_time(*instant, timezone),
            if quiet {
                "quiet, emails nobody at"
            } else {
                "goes at"
            },
            local_time(*due, timezone)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald send-test --webhook URL`: one signed-less test post; exit 3
/// when the receiver does not answer 2xx.
pub fn send_test_webhook(config: PathBuf, url: String, format: Format) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let url = admit_webhook(&config, &url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let post = Composer::new().post_test(&config, format, clock::now());
    runtime.block_on(async {
        let client = crate::webhook::Client::new(&config.webhooks);
        match mailer::post(&client, &url, format, post, None).await {
            Ok(()) => {
                println!("posted to {url}");
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => Err(anyhow::anyhow!(
                "cannot post the test message to {url}: {}",
                error.reply()
            )),
        }
    })
}

/// `herald send-test --matrix ROOM`: one test message to the room.
pub fn send_test_matrix(config: PathBuf, room: String) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    println!("{}", super::matrix::send_test(&config, &room)?);
    Ok(ExitCode::SUCCESS)
}

/// `herald send-test EMAIL`: one message through the configured
/// transport; exit 3 when it cannot be delivered.
pub fn send_test(config: PathBuf, address: String) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let address = address.trim().to_owned();
    if !valid_address(&address) {
        return Err(InvalidInput(format!("invalid email address `{address}`")).into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let now = clock::now();
    let message = Composer::new()
        .test_message(&config, &address, now)
        .map_err(|error| InvalidInput(format!("{:#}", anyhow::Error::from(error))))?;
    let email = config.email_or_default();
    runtime.block_on(async {
        let sender = mailer::Sender::new(&config)?;
        let file_name = format!("test.{}.eml", now.format("%Y%m%dT%H%M%S%.3fZ"));
        match sender.send(&message, &file_name).await {
            Ok(()) => {
                match &sender {
                    mailer::Sender::Files(dir) => {
                        println!("wrote {}", dir.join(&file_name).display());
                    }
                    mailer::Sender::Smtp(_) => println!("sent to {address} via {}", email.smtp_url),
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => Err(anyhow::anyhow!(
                "cannot send the test message via {}: {}",
                email.smtp_url,
                error.reply()
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn a_servers_reply_cannot_reach_the_terminal_as_control_characters() {
        assert_eq!(
            printable("550 \u{1b}[2J\u{1b}]0;owned\u{7}no\r\nsuch user\u{9b}31m\u{7f}"),
            "550 \\u{1b}[2J\\u{1b}]0;owned\\u{7}no\\r\\nsuch user\\u{9b}31m\\u{7f}"
        );
        assert_eq!(printable("451 try later, ÅÄÖ"), "451 try later, ÅÄÖ");
    }
}
