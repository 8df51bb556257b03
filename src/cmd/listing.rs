//! `herald list` and `herald show`: what is open, and one incident, read
//! from the incident files as the next build would publish them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::incidents::did_you_mean;
use crate::clock;
use crate::corpus::Corpus;
use crate::driver::{self, InvalidInput, load_config};
use crate::model::{Incident, IncidentId, Kind, MaintenancePhase};

pub struct ListOptions {
    pub config: PathBuf,
    /// Every incident, not only the open ones and upcoming maintenance.
    pub all: bool,
}

/// `herald list`: open incidents and upcoming or ongoing maintenance (all
/// with `--all`), most recently updated first: id, title, status, the
/// components' statuses now, and the age of the last update.
pub fn list(options: ListOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let corpus = load_corpus(&config)?;
    let now = clock::now();
    let mut out = std::io::stdout().lock();
    let shown: Vec<&Incident> = corpus
        .by_latest_update()
        .iter()
        .map(AsRef::as_ref)
        .filter(|incident| options.all || current(incident, now))
        .collect();
    if shown.is_empty() {
        writeln!(
            out,
            "nothing open{}",
            if options.all {
                ""
            } else {
                " (--all lists every incident)"
            }
        )?;
    }
    for incident in shown {
        let draft = if incident.draft { " (draft)" } else { "" };
        writeln!(
            out,
            "{}\t{}{draft}\t{}\t{}\t{} ago",
            incident.id,
            super::subscribers::printable(&incident.title),
            incident.latest_update().status.as_str(),
            component_statuses(incident, now),
            age(now.signed_duration_since(incident.latest_update().instant))
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `herald show ID`: one incident, its components now and every update,
/// oldest first, with times in the site's zone.
pub fn show(config: PathBuf, id: String) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let corpus = load_corpus(&config)?;
    let now = clock::now();
    let found = IncidentId::new(&id).and_then(|id| corpus.get(&id).cloned());
    let Some(incident) = found else {
        let known = corpus.by_latest_update().iter().map(|i| i.id.as_str());
        let hint = match did_you_mean(&id, known) {
            Some(close) => format!("did you mean `{close}`?"),
            None => "`herald list --all` lists them".to_owned(),
        };
        return Err(InvalidInput(format!("no incident `{id}`; {hint}")).into());
    };
    let timezone = config.site.timezone;
    let mut out = std::io::stdout().lock();
    let printable = super::subscribers::printable;
    writeln!(out, "{}: {}", incident.id, printable(&incident.title))?;
    writeln!(
        out,
        "{} ({}), {}{}, file {}",
        incident.kind.as_str(),
        incident.severity.as_str(),
        incident.latest_update().status.as_str(),
        if incident.draft { ", draft" } else { "" },
        incident.path.display()
    )?;
    if let Some(window) = incident.window {
        writeln!(
            out,
            "window {} to {}",
            local(window.starts, timezone),
            local(window.ends, timezone)
        )?;
    }
    writeln!(
        out,
        "components now: {}",
        component_statuses(&incident, now)
    )?;
    for (component, joined) in &incident.joins {
        writeln!(out, "{component} joined at {}", local(*joined, timezone))?;
    }
    for update in &incident.updates {
        writeln!(
            out,
            "\n{} {}{}",
            local(update.instant, timezone),
            update.status.as_str(),
            if update.notify { "" } else { " (quiet)" }
        )?;
        if !update.component_statuses.is_empty() {
            let set: Vec<String> = update
                .component_statuses
                .iter()
                .map(|(id, status)| format!("{id}={}", status.as_str()))
                .collect();
            writeln!(out, "components: {}", set.join(", "))?;
        }
        writeln!(out, "{}", printable_text(&update.body_markdown))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Every incident file as the next build reads it (a broken file as its
/// last good version: none, for a command that just started).
fn load_corpus(config: &crate::config::Config) -> anyhow::Result<Corpus> {
    let (files, _) = driver::load_files(config)?;
    Ok(files.corpus().0)
}

/// Open, or maintenance not over yet.
fn current(incident: &Incident, now: DateTime<Utc>) -> bool {
    match incident.kind {
        Kind::Incident => incident.is_open(),
        Kind::Maintenance => !matches!(
            incident.maintenance_phase(now),
            Some(MaintenancePhase::Over) | None
        ),
    }
}

/// `mail=partial-outage, web=operational`: the statuses the incident holds
/// its components at now (those that have joined by now).
fn component_statuses(incident: &Incident, now: DateTime<Utc>) -> String {
    incident
        .affected_at(now)
        .map(|id| format!("{id}={}", incident.component_status_at(id, now).as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An instant in the site's zone, to the minute, with its offset.
fn local(instant: DateTime<Utc>, timezone: Tz) -> String {
    instant
        .with_timezone(&timezone)
        .format("%Y-%m-%d %H:%M%:z")
        .to_string()
}

/// Text for the terminal: lines kept, other control characters escaped.
fn printable_text(text: &str) -> String {
    text.lines()
        .map(super::subscribers::printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `2d 3h`, `5h 12m`, `4m`, `0m`: how long ago, in its two largest units.
fn age(elapsed: chrono::TimeDelta) -> String {
    let minutes = elapsed.num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m"),
        (0, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::age;
    use chrono::TimeDelta;

    #[test]
    fn ages_in_their_two_largest_units() {
        assert_eq!(age(TimeDelta::seconds(59)), "0m");
        assert_eq!(age(TimeDelta::minutes(4)), "4m");
        assert_eq!(age(TimeDelta::minutes(5 * 60 + 12)), "5h 12m");
        assert_eq!(age(TimeDelta::minutes(2 * 1440 + 3 * 60 + 59)), "2d 3h");
        // A time in the future (a clock set back) is no age at all.
        assert_eq!(age(TimeDelta::minutes(-5)), "0m");
    }
}
