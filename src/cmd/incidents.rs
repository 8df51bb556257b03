//! `herald new` and `herald post`: an incident file written from the
//! command line, checked before it is written, under a lock.

use std::io::{IsTerminal, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::offset::LocalResult;
use chrono::{DateTime, SubsecRound as _, TimeZone, Utc};

use crate::announce::Announcement;
use crate::clock;
use crate::config::Config;
use crate::driver::{
    InvalidInput, load_config, load_email_templates, parse_context, print_diagnostics,
};
use crate::fsio;
use crate::model::{Incident, IncidentId, Kind, Severity, Status};
use crate::parse;
use crate::store;

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
    /// `COMPONENT=STATUS` pairs for the update's `components:` line.
    pub set: Vec<String>,
    /// Writes `notify: no`: published, emailed to nobody.
    pub quiet: bool,
    /// Prints what would be written and mailed; writes nothing.
    pub dry_run: bool,
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
    let path = incident_path(&config, &options.id)?;
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
    if text.trim().is_empty() {
        return Err(InvalidInput(
            "the update has no text; say what changed (TEXT, or on stdin)".to_owned(),
        )
        .into());
    }
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
    if status == Status::Update
        && let Some(closed) = incident.closed_at()
    {
        let reopen = match incident.kind {
            Kind::Incident => "`investigating`, `identified` or `monitoring`",
            Kind::Maintenance => "`scheduled` or `in-progress`",
        };
        return Err(InvalidInput(format!(
            "`{}` was {} at {}; an `update` would not reopen it: post {reopen} to reopen it",
            incident.id,
            incident.latest_update().status.as_str(),
            heading_time(closed, config.site.timezone),
        ))
        .into());
    }
    let now = free_second(&incident);
    let mut added = format!(
        "\n## {} {}\n",
        heading_time(now, config.site.timezone),
        status.as_str()
    );
    if !options.set.is_empty() {
        let pairs: Vec<&str> = options.set.iter().map(|pair| pair.trim()).collect();
        added.push_str(&format!("components: {}\n", pairs.join(", ")));
    }
    if options.quiet {
        added.push_str("notify: no\n");
    }
    added.push_str(text.trim_end());
    added.push('\n');
    let mut content = current.clone();
    if !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str(&added);
    let posted = checked(&config, &path, &content)?;
    if options.dry_run {
        return dry_run(&config, &path, &added, &posted, now);
    }
    write_checked(
        &config,
        &path,
        fsio::Expected::Bytes(current.as_bytes()),
        &content,
    )?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// `herald post --dry-run`: the lines that would be appended, then per
/// language the email's subject and text and how many subscribers would
/// get it. Writes no file and no database row.
fn dry_run(
    config: &Config,
    path: &Path,
    added: &str,
    incident: &Incident,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "would append to {}:\n{added}", path.display())?;
    let second = now.trunc_subsecs(0);
    let Some(update) = incident.updates.iter().find(|u| u.instant == second) else {
        return Ok(ExitCode::SUCCESS);
    };
    if incident.draft {
        writeln!(out, "no email: the incident is a draft")?;
        return Ok(ExitCode::SUCCESS);
    }
    if !update.notify {
        writeln!(out, "no email: a quiet update (notify: no)")?;
        return Ok(ExitCode::SUCCESS);
    }
    let announcement = Announcement::new(incident, update);
    let counts = store::count_recipients(&config.paths.state, &announcement)?;
    // Every language of the site, then any other a subscriber reads.
    let mut languages = config.site.languages.all().to_vec();
    for (language, _) in &counts {
        if !languages.contains(language) {
            languages.push(*language);
        }
    }
    let composer = load_email_templates(config);
    for language in languages {
        let count = counts
            .iter()
            .find(|(counted, _)| *counted == language)
            .map_or(0, |(_, count)| *count);
        let (subject, text) = composer
            .preview(config, &announcement, language)
            .map_err(|error| anyhow::Error::from(error).context("cannot compose the email"))?;
        let plural = if count == 1 { "" } else { "s" };
        writeln!(
            out,
            "email in {} to {count} subscriber{plural}:\nSubject: {subject}\n\n{}\n",
            language.code(),
            text.trim_end()
        )?;
    }
    writeln!(out, "nothing was written")?;
    Ok(ExitCode::SUCCESS)
}

/// The incident file of `id`, or an error that suggests the closest id.
fn incident_path(config: &Config, id: &str) -> anyhow::Result<PathBuf> {
    let files = incident_files(config)?;
    if let Some(path) = IncidentId::new(id).and_then(|id| find_in(&files, &id)) {
        return Ok(path);
    }
    let stems: Vec<String> = files
        .iter()
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    let hint = match did_you_mean(id, stems.iter().map(String::as_str)) {
        Some(close) => format!("did you mean `{close}`?"),
        None => "create it with `herald new`".to_owned(),
    };
    Err(InvalidInput(format!(
        "no incident `{id}` in {}; {hint}",
        config.paths.incidents.display()
    ))
    .into())
}

/// The id among `known` closest to the mistyped `id`: at most a third of
/// its characters (and at least one, at most three) apart, or one that
/// starts with it.
pub(super) fn did_you_mean<'a>(id: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (id.chars().count() / 3).clamp(1, 3);
    known
        .filter_map(|candidate| {
            let distance = edit_distance(id, candidate);
            let prefix = id.len() >= 3 && candidate.starts_with(id);
            (distance <= limit || prefix).then_some((distance, candidate))
        })
        .min()
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
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

/// `content` parsed as `path`, or its diagnostics printed and an error:
/// `new` and `post` never leave a file that herald would reject.
fn checked(config: &Config, path: &Path, content: &str) -> anyhow::Result<Incident> {
    let (incident, diagnostics) = parse::parse_incident(path, content, &parse_context(config));
    match incident {
        Some(incident) => Ok(incident),
        None => {
            print_diagnostics(&diagnostics, &mut std::io::stderr());
            Err(InvalidInput(format!(
                "not writing {}: the result would have errors",
                path.display()
            ))
            .into())
        }
    }
}

/// Writes `content` once [`checked`].
fn write_checked(
    config: &Config,
    path: &Path,
    expected: fsio::Expected<'_>,
    content: &str,
) -> anyhow::Result<()> {
    checked(config, path, content)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fsio::replace_file_if(path, expected, content.as_bytes())?;
    Ok(())
}

fn find_incident(config: &Config, id: &IncidentId) -> anyhow::Result<Option<PathBuf>> {
    Ok(find_in(&incident_files(config)?, id))
}

/// Every incident file under the incidents directory.
fn incident_files(config: &Config) -> anyhow::Result<Vec<PathBuf>> {
    fsio::find_incident_files(&config.paths.incidents).with_context(|| {
        format!(
            "cannot read the incidents directory {}",
            config.paths.incidents.display()
        )
    })
}

/// The file among `files` whose name is `id`.
fn find_in(files: &[PathBuf], id: &IncidentId) -> Option<PathBuf> {
    files
        .iter()
        .find(|path| path.file_stem().is_some_and(|stem| stem == id.as_str()))
        .cloned()
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_id_finds_the_closest_one() {
        let known = ["lagring-2019-04", "dns-2019-12", "mail-slow"];
        let suggest = |id| did_you_mean(id, known.into_iter());
        assert_eq!(suggest("lagring-2019-4"), Some("lagring-2019-04"));
        assert_eq!(suggest("lagrign-2019-04"), Some("lagring-2019-04"));
        assert_eq!(suggest("mail"), Some("mail-slow"));
        assert_eq!(suggest("dns-2019-11"), Some("dns-2019-12"));
        assert_eq!(suggest("web-down"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
