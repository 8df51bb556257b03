//! `herald new` and `herald post`: an incident file written from the
//! command line, checked before it is written, under a lock.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::offset::LocalResult;
use chrono::{DateTime, SubsecRound as _, TimeZone, Utc};

use crate::clock;
use crate::config::Config;
use crate::driver::{InvalidInput, load_config, parse_context, print_diagnostics};
use crate::fsio;
use crate::model::{Incident, IncidentId, Kind, Severity, Status};
use crate::parse;

/// The current time as `new` and `post` write it: local, with seconds, and
/// with the offset only when the local time is ambiguous (clocks going
/// back), so the file says exactly which instant is meant.
pub fn heading_time(now: DateTime<Utc>, timezone: chrono_tz::Tz) -> String {
    let local = now.with_timezone(&timezone);
    let text = local.format("%Y-%m-%d %H:%M:%S").to_string();
    match timezone.from_local_datetime(&local.naive_local()) {
        LocalResult::Single(_) => text,
        _ => format!("{text}{}", local.format("%:z")),
    }
}

pub struct NewOptions {
    pub config: PathBuf,
    pub id: String,
    pub title: String,
    pub components: Vec<String>,
    pub severity: String,
    pub text: Option<String>,
}

/// `herald new`: creates `incidents/ID.md` with a first `investigating`
/// update at the current time.
pub fn new(options: NewOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let Some(id) = IncidentId::new(&options.id) else {
        return Err(InvalidInput(format!(
            "invalid incident id `{}`, expected lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            options.id
        ))
        .into());
    };
    if Severity::parse(&options.severity).is_none() {
        return Err(InvalidInput(format!(
            "unknown severity `{}`, expected `minor`, `major` or `critical`",
            options.severity
        ))
        .into());
    }
    let _lock = fsio::lock_dir(&config.paths.incidents)?;
    if let Some(existing) = find_incident(&config, &id)? {
        return Err(InvalidInput(format!(
            "incident `{id}` already exists: {}",
            existing.display()
        ))
        .into());
    }
    let components: Vec<String> = options.components.iter().map(|c| toml_string(c)).collect();
    let text = options.text.unwrap_or_default();
    let content = format!(
        "+++\ntitle = {}\ncomponents = [{}]\nseverity = {}\n+++\n\n## {} investigating\n{}\n",
        toml_string(&options.title),
        components.join(", "),
        toml_string(&options.severity),
        heading_time(clock::now(), config.site.timezone),
        text.trim_end(),
    );
    let path = config.paths.incidents.join(format!("{id}.md"));
    write_checked(&config, &path, fsio::Expected::Absent, &content)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub struct PostOptions {
    pub config: PathBuf,
    pub id: String,
    pub status: String,
    /// Read from stdin when `None`.
    pub text: Option<String>,
}

/// `herald post`: appends an update at the current time.
pub fn post(options: PostOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let Some(status) = Status::parse(&options.status) else {
        return Err(InvalidInput(format!(
            "unknown status `{}`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed, cancelled",
            options.status
        ))
        .into());
    };
    let id = IncidentId::new(&options.id);
    let path = match &id {
        Some(id) => find_incident(&config, id)?,
        None => None,
    };
    let Some(path) = path else {
        return Err(InvalidInput(format!(
            "no incident `{}` in {}; create it with `herald new`",
            options.id,
            config.paths.incidents.display()
        ))
        .into());
    };
    // The text first: while someone types it, others may post.
    let text = match options.text {
        Some(text) => text,
        None => {
            let mut text = String::new();
            if std::io::stdin().is_terminal() {
                eprintln!("Type the update, then Ctrl-D:");
            }
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the update text from stdin")?;
            text
        }
    };
    let _lock = fsio::lock_dir(&config.paths.incidents)?;
    let current = fsio::read_to_string(&path)?;
    let context = parse_context(&config);
    let (incident, diagnostics) = parse::parse_incident(&path, &current, &context);
    let Some(incident) = incident else {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        return Err(InvalidInput(format!(
            "{} has errors; fix them before posting",
            path.display()
        ))
        .into());
    };
    if status.is_maintenance_only() && incident.kind != Kind::Maintenance {
        return Err(InvalidInput(format!(
            "status `{}` is only for maintenance, and `{}` is an incident",
            status.as_str(),
            incident.id
        ))
        .into());
    }
    let now = free_second(&incident);
    let mut content = current.clone();
    if !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str(&format!(
        "\n## {} {}\n{}\n",
        heading_time(now, config.site.timezone),
        status.as_str(),
        text.trim_end()
    ));
    write_checked(
        &config,
        &path,
        fsio::Expected::Bytes(current.as_bytes()),
        &content,
    )?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The current time, once it is in a second that holds no update of
/// `incident` (headings are written to the second, and two updates at one
/// instant are an error): at most a second's wait, never a time that is
/// not now.
/// `herald publish ID`: removes `draft = true` from the incident's front
/// matter, so that the next build publishes it and its updates are
/// emailed as any new incident's. An incident already published is left
/// as it is.
pub fn publish(config: &Path, id: &str) -> anyhow::Result<ExitCode> {
    let config = load_config(config)?;
    let path = match IncidentId::new(id) {
        Some(id) => find_incident(&config, &id)?,
        None => None,
    };
    let Some(path) = path else {
        return Err(InvalidInput(format!(
            "no incident `{id}` in {}",
            config.paths.incidents.display()
        ))
        .into());
    };
    let _lock = fsio::lock_dir(&config.paths.incidents)?;
    let current = fsio::read_to_string(&path)?;
    let (incident, diagnostics) = parse::parse_incident(&path, &current, &parse_context(&config));
    let Some(incident) = incident else {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        return Err(InvalidInput(format!(
            "{} has errors; fix them before publishing",
            path.display()
        ))
        .into());
    };
    if !incident.draft {
        println!("{} is already published", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let content = undrafted(&current);
    write_checked(
        &config,
        &path,
        fsio::Expected::Bytes(current.as_bytes()),
        &content,
    )?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `text` without the `draft` line of its front matter.
fn undrafted(text: &str) -> String {
    let mut fences = 0;
    text.split_inclusive('\n')
        .filter(|line| {
            let trimmed = line.trim();
            if trimmed == "+++" {
                fences += 1;
            }
            let key = trimmed.split('=').next().unwrap_or_default().trim();
            !(fences == 1 && key == "draft" && trimmed.contains('='))
        })
        .collect()
}

fn free_second(incident: &Incident) -> DateTime<Utc> {
    loop {
        let now = clock::now();
        let second = now.trunc_subsecs(0);
        if !incident.updates.iter().any(|u| u.instant == second) {
            return now;
        }
        let next = second + chrono::Duration::seconds(1);
        std::thread::sleep((next - now).to_std().unwrap_or_default());
    }
}

/// Parses `content` before writing it, so `new` and `post` never leave a
/// file that herald would reject.
fn write_checked(
    config: &Config,
    path: &Path,
    expected: fsio::Expected<'_>,
    content: &str,
) -> anyhow::Result<()> {
    let (incident, diagnostics) = parse::parse_incident(path, content, &parse_context(config));
    if incident.is_none() {
        print_diagnostics(&diagnostics, &mut std::io::stderr());
        return Err(InvalidInput(format!(
            "not writing {}: the result would have errors",
            path.display()
        ))
        .into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fsio::replace_file_if(path, expected, content.as_bytes())?;
    Ok(())
}

fn find_incident(config: &Config, id: &IncidentId) -> anyhow::Result<Option<PathBuf>> {
    let files = fsio::find_incident_files(&config.paths.incidents).with_context(|| {
        format!(
            "cannot read the incidents directory {}",
            config.paths.incidents.display()
        )
    })?;
    Ok(files
        .into_iter()
        .find(|path| path.file_stem().is_some_and(|stem| stem == id.as_str())))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
