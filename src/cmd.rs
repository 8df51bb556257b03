//! One function per subcommand: typed options in, an exit code out. Glues
//! the pure middle (parse, corpus, render) to the edges (files, clock).
//!
//! Invalid input (a bad config, an incident with errors) is printed as
//! diagnostics and reported as [`InvalidInput`], which `main` turns into
//! exit code 1; any other error is a runtime failure (exit 3).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::offset::LocalResult;
use chrono::{DateTime, SubsecRound as _, TimeZone, Utc};

use std::io::Write as _;

use crate::clock;
use crate::compose::Composer;
use crate::config::{self, Config, Language};
use crate::corpus::{Corpus, Files};
use crate::diag::{Diagnostic, LineIndex};
use crate::fsio::{self, OutputDir};
use crate::mailer;
use crate::model::{Follows, Incident, IncidentId, Kind, Severity, Status};
use crate::parse::{self, Context};
use crate::render::{self, Plan, Revisions, Site, Templates};
use crate::store::{NewSubscriber, OutboxState, Store};

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
    }
}

/// Reads one incident file into `files`, reporting bytes that are not
/// UTF-8 at their line and column.
pub fn read_incident(files: &mut Files, path: &Path, context: &Context) -> Result<(), fsio::Error> {
    match fsio::read_if_exists(path)? {
        None => {
            files.remove(path);
        }
        Some(bytes) => match String::from_utf8(bytes) {
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
        },
    }
    Ok(())
}

/// Reads every incident file of the configured directory.
pub fn load_files(config: &Config) -> anyhow::Result<Files> {
    let context = parse_context(config);
    let mut files = Files::default();
    let paths = fsio::find_incident_files(&config.paths.incidents).with_context(|| {
        format!(
            "cannot read the incidents directory {}",
            config.paths.incidents.display()
        )
    })?;
    for path in paths {
        read_incident(&mut files, &path, &context)?;
    }
    Ok(files)
}

pub fn print_diagnostics(diagnostics: &[Diagnostic], out: &mut dyn std::io::Write) {
    for diagnostic in diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
}

/// Every diagnostic of the tree: per file, then cross-file.
pub fn all_diagnostics(files: &Files) -> (Corpus, Vec<Diagnostic>) {
    let (corpus, cross) = files.corpus();
    let mut diagnostics: Vec<Diagnostic> = files.diagnostics().cloned().collect();
    diagnostics.extend(cross);
    (corpus, diagnostics)
}

pub struct BuildOptions {
    pub config: PathBuf,
}

/// `herald build`: one build of every output, then the `[publish]`
/// command if an output changed; exit 1 if any file has errors (the good
/// ones are still published), 3 if publishing failed.
pub fn build(options: BuildOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let files = load_files(&config)?;
    let (corpus, diagnostics) = all_diagnostics(&files);
    print_diagnostics(&diagnostics, &mut std::io::stderr());
    let templates = load_templates(&config)?;
    let now = clock::now();
    let revisions = observe_revisions(&config, &corpus, now);
    let site = Site {
        config: &config,
        templates: &templates,
        revisions: &revisions,
        now: clock::now(),
    };
    let mut output = OutputDir::new(config.paths.output.clone());
    let (outputs, changed) = publish_everything(&site, &corpus, &mut output)?;
    tracing::info!(incidents = corpus.len(), outputs, changed, "built");
    // Like `herald run`, a build that changed an output runs `[publish]`.
    if let Some(job) = crate::publish::Job::from_config(&config)
        && changed > 0
    {
        crate::publish::run_blocking(&job)
            .with_context(|| format!("publish command `{}` failed", job.display()))?;
        tracing::info!(command = %job.display(), "publish command finished");
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(InvalidInput(
            "some incident files have errors; their last good versions were not published".into(),
        )
        .into());
    }
    Ok(ExitCode::SUCCESS)
}

/// Renders and writes every output, incident pages [`render::PAGE_CHUNK`]
/// at a time, then removes outputs that no longer belong. Returns how many
/// outputs there are and how many changed on disk.
pub fn publish_everything(
    site: &Site,
    corpus: &Corpus,
    output: &mut OutputDir,
) -> anyhow::Result<(usize, usize)> {
    let root = output.root().display().to_string();
    let write_context = || format!("cannot write outputs to {root}");
    let published: Vec<&crate::model::Incident> = corpus.published().map(AsRef::as_ref).collect();
    let mut current: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut changed = 0;
    for chunk in published.chunks(render::PAGE_CHUNK) {
        let pages = render::incident_pages(site, chunk)?;
        changed += output.write(&pages, &[]).with_context(write_context)?;
        current.extend(pages.into_iter().map(|page| page.path));
    }
    let rendered = render::render(site, corpus, &Plan::Full)?;
    current.extend(rendered.outputs.iter().map(|o| o.path.clone()));
    let stale = output
        .stale(&current)
        .with_context(|| format!("cannot list outputs in {root}"))?;
    changed += output
        .write(&rendered.outputs, &stale)
        .with_context(write_context)?;
    Ok((current.len(), changed))
}

pub struct CheckOptions {
    pub config: PathBuf,
    /// Files or directories to report on; all incident files if empty.
    pub paths: Vec<PathBuf>,
}

/// `herald check`: diagnostics on stdout, one per line.
pub fn check(options: CheckOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let context = parse_context(&config);
    let mut files = load_files(&config)?;
    // Paths outside the incidents directory are checked too.
    for path in &options.paths {
        if path.is_dir() {
            for found in fsio::find_incident_files(path)? {
                if !files.contains(&found) {
                    read_incident(&mut files, &found, &context)?;
                }
            }
        } else if !files.contains(path) {
            if !path.exists() {
                return Err(InvalidInput(format!("{}: no such file", path.display())).into());
            }
            read_incident(&mut files, path, &context)?;
        }
    }
    let (_, mut diagnostics) = all_diagnostics(&files);
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
            "unknown status `{}`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed",
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

/// Records the published updates in the state database and returns every
/// edit time it knows. A state directory that cannot be used costs only
/// the edit times, never the build.
pub fn observe_revisions(config: &Config, corpus: &Corpus, now: DateTime<Utc>) -> Revisions {
    let result = Store::open(&config.paths.state).and_then(|mut store| {
        let seen = store.observe(corpus.published().map(AsRef::as_ref), now)?;
        Ok(crate::announce::edit_times(&seen))
    });
    result.unwrap_or_else(|error| {
        tracing::warn!("{:#}", anyhow::Error::from(error));
        Revisions::new()
    })
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
    Ok(ExitCode::SUCCESS)
}

pub struct SubscribeOptions {
    pub config: PathBuf,
    pub address: String,
    pub components: Vec<String>,
    pub language: Option<String>,
}

/// `herald subscribers add`: adds a subscriber, or changes the components
/// and language of one already there.
pub fn subscribers_add(options: SubscribeOptions) -> anyhow::Result<ExitCode> {
    let config = load_config(&options.config)?;
    let address = options.address.trim();
    if !valid_address(address) {
        return Err(InvalidInput(format!("invalid email address `{address}`")).into());
    }
    let follows = follows(&config, &options.components).map_err(InvalidInput)?;
    let language = match &options.language {
        None => config.site.language,
        Some(code) => Language::parse(code).ok_or_else(|| {
            InvalidInput(format!("unknown language `{code}`, expected `sv` or `en`"))
        })?,
    };
    let mut store = open_store(&config)?;
    let added = store.add_subscribers(
        &[NewSubscriber {
            address: address.to_owned(),
            follows,
            language,
        }],
        clock::now(),
    )?;
    println!(
        "{} {address}",
        if added.added > 0 { "added" } else { "updated" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `herald subscribers remove`: exit 1 if there is no such subscriber.
pub fn subscribers_remove(config: PathBuf, address: String) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let mut store = open_store(&config)?;
    if !store.remove_subscriber(address.trim())? {
        return Err(InvalidInput(format!("no subscriber `{}`", address.trim())).into());
    }
    println!("removed {}", address.trim());
    Ok(ExitCode::SUCCESS)
}

/// `herald subscribers list`: `ADDRESS LANGUAGE COMPONENTS`, one per line
/// (`*` for all components).
pub fn subscribers_list(config: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load_config(&config)?;
    let store = open_store(&config)?;
    let mut out = std::io::stdout().lock();
    for subscriber in store.subscribers()? {
        let components = match &subscriber.follows {
            Follows::All => "*".to_owned(),
            Follows::Components(ids) => ids.join(","),
        };
        writeln!(
            out,
            "{}\t{}\t{components}",
            subscriber.address,
            subscriber.language.code()
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
        if !valid_address(address) {
            errors.push(Diagnostic::error(
                path,
                &index,
                address_at,
                format!("invalid email address `{address}`"),
            ));
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
            address: address.to_owned(),
            follows,
            language: config.site.language,
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

/// At most this many undelivered messages are listed one by one.
const OUTBOX_LIST_LIMIT: usize = 100;

/// `herald outbox`: counts, then the failed, retrying and pending messages
/// with the server's last reply.
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
            entry.last_reply.as_deref().unwrap_or("-")
        )?;
    }
    let undelivered = counts.pending + counts.retrying + counts.failed;
    if undelivered > entries.len() {
        writeln!(out, "… and {} more", undelivered - entries.len())?;
    }
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
                    mailer::Sender::Smtp(_) => println!("sent to {address} via {}", email.smtp),
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => Err(anyhow::anyhow!(
                "cannot send the test message via {}: {}",
                email.smtp,
                error.reply()
            )),
        }
    })
}
