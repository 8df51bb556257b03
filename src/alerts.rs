//! Alerts in: Alertmanager's webhook payload (version 4) → a change to one
//! draft incident file. Pure: the caller reads the existing file and
//! writes the result (`http::alertmanager`).
//!
//! A firing group becomes one draft (`draft = true`) whose id comes from
//! the group key, titled from the first alert's `annotations.summary`, its
//! components from the configured label (unknown ones ignored, with a
//! warning), its severity the worst of the alerts' `labels.severity`
//! (mapped by `[alertmanager.severity]`), and the alerts' descriptions its
//! first `investigating` update, at the earliest `startsAt`. A repeat
//! changes nothing; new alerts in the group add their components to the
//! draft. A resolved group removes its draft; once published (the
//! operator ran `herald publish`), nothing changes unless
//! `[alertmanager] resolve = true`, which appends one `resolved` update.
//! A group that fires again once its published incident is resolved gets
//! a new draft under the next id (`ID-2`, `ID-3`…).
//!
//! Text from Alertmanager is a stranger's: [`escape`] backslash-escapes
//! what could make it a heading, a `components:` line, a link or markup,
//! and titles are TOML strings on one line.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, SubsecRound as _, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Alertmanager, Config};
use crate::model::{Incident, IncidentId, Severity};

/// The largest body read from Alertmanager: a group of a few hundred
/// alerts.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Titles longer than this are cut.
const TITLE_LIMIT: usize = 200;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    version: String,
    group_key: String,
    status: String,
    #[allow(dead_code, reason = "required by the format, not used")]
    receiver: String,
    #[allow(dead_code, reason = "required by the format, not used")]
    group_labels: BTreeMap<String, String>,
    #[allow(dead_code, reason = "required by the format, not used")]
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    alerts: Vec<RawAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    status: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
}

/// Whether a group, or an alert, is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Firing,
    Resolved,
}

impl State {
    fn parse(text: &str) -> Option<State> {
        match text {
            "firing" => Some(State::Firing),
            "resolved" => Some(State::Resolved),
            _ => None,
        }
    }
}

/// One notification, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub group_key: String,
    pub state: State,
    pub alerts: Vec<Alert>,
    pub common_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub state: State,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
}

/// Why a body is not a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads Alertmanager's webhook body: JSON with every field of version 4
/// present and typed (others, which newer versions may add, are ignored),
/// `version` `"4"`, statuses `firing` or `resolved`, times RFC 3339, a
/// group key and at least one alert.
pub fn parse(body: &[u8]) -> Result<Notification, Malformed> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| Malformed(error.to_string()))?;
    // serde reads a struct from an array too; the format has objects only.
    let objects = value.is_object()
        && value
            .get("alerts")
            .and_then(serde_json::Value::as_array)
            .is_none_or(|alerts| alerts.iter().all(serde_json::Value::is_object));
    if !objects {
        return Err(Malformed(
            "expected an object with an `alerts` array of objects".into(),
        ));
    }
    let raw: RawPayload =
        serde_json::from_value(value).map_err(|error| Malformed(error.to_string()))?;
    if raw.version != "4" {
        return Err(Malformed(format!(
            "unsupported payload version `{}`, expected `4`",
            raw.version
        )));
    }
    if raw.group_key.is_empty() {
        return Err(Malformed("`groupKey` is empty".into()));
    }
    let status = |text: &str| {
        State::parse(text).ok_or_else(|| {
            Malformed(format!(
                "unknown status `{text}`, expected `firing` or `resolved`"
            ))
        })
    };
    let state = status(&raw.status)?;
    if raw.alerts.is_empty() {
        return Err(Malformed("`alerts` is empty".into()));
    }
    let alerts = raw
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, alert)| {
            let starts_at = DateTime::parse_from_rfc3339(&alert.starts_at)
                .map_err(|error| {
                    Malformed(format!(
                        "alerts[{index}].startsAt `{}` is not an RFC 3339 time: {error}",
                        alert.starts_at
                    ))
                })?
                .with_timezone(&Utc);
            Ok(Alert {
                state: status(&alert.status)?,
                labels: alert.labels,
                annotations: alert.annotations,
                starts_at,
            })
        })
        .collect::<Result<Vec<_>, Malformed>>()?;
    Ok(Notification {
        group_key: raw.group_key,
        state,
        alerts,
        common_annotations: raw.common_annotations,
    })
}

/// The incident id of a group: `alert-` and the first 12 hex digits of
/// the SHA-256 of its key (group keys hold label sets, quotes and braces).
/// A group that fires again after its incident was resolved gets the next
/// of `ID-2`, `ID-3`… ([`nth_id`]).
pub fn incident_id(group_key: &str) -> IncidentId {
    let digest = Sha256::digest(group_key.as_bytes());
    let hex = data_encoding::HEXLOWER.encode(&digest[..6]);
    IncidentId::new(&format!("alert-{hex}")).expect("`alert-` and hex digits are a slug")
}

/// The `n`th incident id of a group: [`incident_id`] for 1, then with
/// `-n` appended.
pub fn nth_id(group_key: &str, n: u32) -> IncidentId {
    let first = incident_id(group_key);
    if n <= 1 {
        return first;
    }
    IncidentId::new(&format!("{first}-{n}")).expect("a slug, `-` and digits are a slug")
}

/// Which of a group's ids `stem` is (1 for [`incident_id`], `n` for
/// `ID-n`), if any.
pub fn id_number(group_key: &str, stem: &str) -> Option<u32> {
    let first = incident_id(group_key);
    let rest = stem.strip_prefix(first.as_str())?;
    if rest.is_empty() {
        return Some(1);
    }
    let n: u32 = rest.strip_prefix('-')?.parse().ok()?;
    (n >= 2 && nth_id(group_key, n).as_str() == stem).then_some(n)
}

/// What to do with the group's incident file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write this text as a new file: the group's first, or, if its latest
    /// incident is resolved, its next.
    Create(String),
    /// Replace the file's text with this.
    Replace(String),
    /// Remove the file.
    Remove,
    Nothing,
}

/// What a notification does, and the warnings to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub change: Change,
    pub warnings: Vec<String>,
}

/// Why a notification cannot become an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable(pub String);

/// Decides what `notification` does to the group's incident, which is
/// `existing` (its file's text and the incident parsed from it) if there
/// is one. `now` dates a `resolved` update.
pub fn apply(
    config: &Config,
    settings: &Alertmanager,
    notification: &Notification,
    existing: Option<(&str, &Incident)>,
    now: DateTime<Utc>,
) -> Result<Outcome, Unusable> {
    let mut warnings = Vec::new();
    let change = match (notification.state, existing) {
        (State::Firing, None) => {
            let components = components(config, settings, notification, &mut warnings);
            if components.is_empty() {
                let mut reason = format!(
                    "no alert names a configured component in its `{}` label",
                    settings.component_label
                );
                for warning in &warnings {
                    reason = format!("{reason}; {warning}");
                }
                return Err(Unusable(reason));
            }
            Change::Create(draft(settings, notification, &components))
        }
        (State::Firing, Some((text, incident))) if incident.draft => {
            // The front matter's list grows; components that joined in a
            // `components:` line keep joining where they do.
            let front = incident.front_components();
            let mut all = front.clone();
            for id in components(config, settings, notification, &mut warnings) {
                if !all.contains(&id) {
                    all.push(id);
                }
            }
            if all == front {
                Change::Nothing
            } else {
                Change::Replace(with_components(text, &all))
            }
        }
        // The group fires again after its incident was published and
        // resolved: a new outage, a new draft (the caller gives it the
        // next id).
        (State::Firing, Some((_, incident))) if incident.latest_update().status.is_closing() => {
            let components = components(config, settings, notification, &mut warnings);
            if components.is_empty() {
                return Ok(Outcome {
                    change: Change::Nothing,
                    warnings,
                });
            }
            Change::Create(draft(settings, notification, &components))
        }
        (State::Firing, Some(_)) => Change::Nothing,
        (State::Resolved, None) => Change::Nothing,
        (State::Resolved, Some((_, incident))) if incident.draft => Change::Remove,
        (State::Resolved, Some((text, incident))) => {
            if settings.resolve && !incident.latest_update().status.is_closing() {
                Change::Replace(with_resolved(text, incident, now))
            } else {
                Change::Nothing
            }
        }
    };
    Ok(Outcome { change, warnings })
}

/// The configured components the firing alerts name, in order, once each.
fn components(
    config: &Config,
    settings: &Alertmanager,
    notification: &Notification,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for alert in firing(notification) {
        let Some(value) = alert.labels.get(&settings.component_label) else {
            continue;
        };
        if config.component(value).is_none() {
            let warning = format!(
                "alert label `{}` names unknown component `{}`; ignored",
                settings.component_label,
                value.escape_debug()
            );
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
            continue;
        }
        if !found.contains(value) {
            found.push(value.clone());
        }
    }
    found
}

/// The firing alerts, or all of them if none is marked firing.
fn firing(notification: &Notification) -> impl Iterator<Item = &Alert> {
    let any = notification.alerts.iter().any(|a| a.state == State::Firing);
    notification
        .alerts
        .iter()
        .filter(move |alert| !any || alert.state == State::Firing)
}

fn draft(settings: &Alertmanager, notification: &Notification, components: &[String]) -> String {
    let alerts: Vec<&Alert> = firing(notification).collect();
    let annotation = |name: &str| {
        alerts
            .iter()
            .find_map(|alert| alert.annotations.get(name))
            .or_else(|| notification.common_annotations.get(name))
    };
    let title = annotation("summary")
        .or_else(|| {
            alerts
                .iter()
                .find_map(|alert| alert.labels.get("alertname"))
        })
        .map_or("Alert", String::as_str);
    let severity = alerts
        .iter()
        .map(|alert| {
            alert
                .labels
                .get("severity")
                .and_then(|label| settings.severity.get(label))
                .copied()
                .unwrap_or(Severity::Major)
        })
        .max()
        .unwrap_or(Severity::Major);
    let mut descriptions: Vec<&str> = Vec::new();
    for alert in &alerts {
        if let Some(text) = alert
            .annotations
            .get("description")
            .or_else(|| alert.annotations.get("summary"))
            && !descriptions.contains(&text.as_str())
        {
            descriptions.push(text);
        }
    }
    let body: Vec<String> = descriptions.iter().map(|text| escape(text)).collect();
    let starts = alerts
        .iter()
        .map(|alert| alert.starts_at)
        .min()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .trunc_subsecs(0);
    format!(
        "+++\ntitle = {}\ncomponents = {}\nseverity = \"{}\"\ndraft = true\n+++\n\n## {} investigating\n\n{}\n",
        toml_string(&one_line(title)),
        toml_list(components),
        severity.as_str(),
        starts.format("%Y-%m-%d %H:%M:%SZ"),
        if body.is_empty() {
            "Alertmanager reported this alert.".to_owned()
        } else {
            body.join("\n\n")
        },
    )
}

/// `text` with its front matter's `components` replaced by `components`.
fn with_components(text: &str, components: &[String]) -> String {
    let line = format!("components = {}", toml_list(components));
    let mut out = String::with_capacity(text.len() + line.len());
    let mut fences = 0;
    let mut in_list = false;
    let mut replaced = false;
    for piece in text.split_inclusive('\n') {
        let trimmed = piece.trim();
        if trimmed == "+++" {
            fences += 1;
            if fences == 2 && !replaced {
                out.push_str(&line);
                out.push('\n');
                replaced = true;
            }
        } else if fences == 1 {
            if in_list {
                in_list = !trimmed.contains(']');
                continue;
            }
            if trimmed.starts_with("components") && trimmed[10..].trim_start().starts_with('=') {
                in_list = !trimmed.contains(']');
                if !replaced {
                    out.push_str(&line);
                    out.push('\n');
                    replaced = true;
                }
                continue;
            }
        }
        out.push_str(piece);
    }
    out
}

/// `text` with a `resolved` update appended, at `now` or, if an update
/// holds that second, the first free second after it.
fn with_resolved(text: &str, incident: &Incident, now: DateTime<Utc>) -> String {
    let mut at = now.trunc_subsecs(0);
    while incident.updates.iter().any(|u| u.instant == at) {
        at += chrono::Duration::seconds(1);
    }
    let mut out = text.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "\n## {} resolved\n\nAlertmanager reports the alert resolved.\n",
        at.format("%Y-%m-%d %H:%M:%SZ")
    ));
    out
}

/// `text` as Markdown that shows it as written: a backslash before each
/// punctuation mark that could start markup (`\`, `` ` ``, `*`, `_`,
/// `[`, `]`, `<`, `>`, `!`, `~`, `|`, `&`), before the first character of
/// a line if it is punctuation (headings, lists, quotes, fences, `+++`)
/// or right after the digits it starts with (`1.`), and before the colon
/// of a line beginning `components:`. Line breaks
/// stay; other control characters go.
pub fn escape(text: &str) -> String {
    const MARKUP: &[char] = &['\\', '`', '*', '_', '[', ']', '<', '>', '!', '~', '|', '&'];
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.trim().lines() {
        let line = line.trim_end();
        let indent = line.len() - line.trim_start().len();
        let components = line.trim_start().starts_with("components:");
        // `1.` or `1)` would start an ordered list.
        let digits = line[indent..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let list_mark = (digits > 0).then_some(indent + digits);
        for (at, c) in line.char_indices() {
            let first = at == indent;
            let mark = Some(at) == list_mark && matches!(c, '.' | ')');
            let colon = components && at == indent + "components".len();
            if c.is_control() {
                continue;
            }
            if MARKUP.contains(&c) || (first && c.is_ascii_punctuation()) || mark || colon {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// `text` on one line, at most [`TITLE_LIMIT`] characters.
fn one_line(text: &str) -> String {
    let line = crate::model::one_line(text);
    let cut: String = line.chars().take(TITLE_LIMIT).collect();
    if cut.is_empty() { "Alert".into() } else { cut }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| toml_string(item)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::parse::{Context, parse_incident};

    const CONFIG: &str = r#"
[site]
title = "Status"
base_url = "https://status.example.com/"

[[components]]
id = "web"
name = "Web"

[[components]]
id = "mail"
name = "Mail"

[http]
listen = "127.0.0.1:8081"

[alertmanager]
token_file = "token"
severity = { page = "critical" }
"#;

    fn config(extra: &str) -> (Config, Alertmanager) {
        let config = crate::config::parse(Path::new("herald.toml"), &format!("{CONFIG}{extra}"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let settings = config.alertmanager.clone().unwrap();
        (config, settings)
    }

    fn payload(status: &str, alerts: &[(&str, &str, &str)]) -> Vec<u8> {
        let alerts: Vec<serde_json::Value> = alerts
            .iter()
            .map(|(status, component, severity)| {
                serde_json::json!({
                    "status": status,
                    "labels": {"alertname": "WebDown", "component": component, "severity": severity},
                    "annotations": {"summary": "Web is down", "description": "HTTP checks fail on [web-1](http://x).\n## 2020-01-01 00:00 resolved"},
                    "startsAt": "2026-11-30T01:02:03.456Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus/graph",
                    "fingerprint": "abc"
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "version": "4",
            "groupKey": "{}:{alertname=\"WebDown\"}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "herald",
            "groupLabels": {"alertname": "WebDown"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager",
            "alerts": alerts
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-30T02:00:00Z".parse().unwrap()
    }

    fn incident(config: &Config, text: &str) -> Incident {
        let context = Context {
            timezone: config.site.timezone,
            components: &config.components,
            languages: &config.site.languages,
        };
        let (incident, diagnostics) = parse_incident(Path::new("incidents/a.md"), text, &context);
        incident.unwrap_or_else(|| panic!("{text}\n{diagnostics:?}"))
    }

    fn created(config: &Config, settings: &Alertmanager, body: &[u8]) -> String {
        let notification = parse(body).unwrap();
        match apply(config, settings, &notification, None, now())
            .unwrap()
            .change
        {
            Change::Create(text) => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_firing_group_becomes_one_draft() {
        let (config, settings) = config("");
        let text = created(
            &config,
            &settings,
            &payload(
                "firing",
                &[("firing", "web", "page"), ("firing", "nope", "warning")],
            ),
        );
        assert_eq!(
            text,
            "+++\ntitle = \"Web is down\"\ncomponents = [\"web\"]\nseverity = \"critical\"\ndraft = true\n+++\n\n## 2026-11-30 01:02:03Z investigating\n\nHTTP checks fail on \\[web-1\\](http://x).\n\\## 2020-01-01 00:00 resolved\n"
        );
        let parsed = incident(&config, &text);
        assert!(parsed.draft);
        assert_eq!(parsed.updates.len(), 1, "{text}");
        assert!(
            !crate::parse::render_markdown(&parsed.updates[0].body_markdown).contains("<a"),
            "{text}"
        );
    }

    #[test]
    fn unknown_components_are_ignored_with_a_warning_and_none_known_is_unusable() {
        let (config, settings) = config("");
        let body = payload(
            "firing",
            &[("firing", "web", "warning"), ("firing", "db<1>", "warning")],
        );
        let outcome = apply(&config, &settings, &parse(&body).unwrap(), None, now()).unwrap();
        assert_eq!(
            outcome.warnings,
            ["alert label `component` names unknown component `db<1>`; ignored"]
        );
        let Change::Create(text) = outcome.change else {
            panic!()
        };
        assert!(text.contains("severity = \"minor\""), "{text}");
        let body = payload("firing", &[("firing", "db", "warning")]);
        let error = apply(&config, &settings, &parse(&body).unwrap(), None, now()).unwrap_err();
        assert_eq!(
            error.0,
            "no alert names a configured component in its `component` label; alert label `component` names unknown component `db`; ignored"
        );
    }

    #[test]
    fn repeats_change_nothing_and_new_alerts_add_components() {
        let (config, settings) = config("");
        let first = payload("firing", &[("firing", "web", "critical")]);
        let text = created(&config, &settings, &first);
        let draft = incident(&config, &text);
        let repeat = apply(
            &config,
            &settings,
            &parse(&first).unwrap(),
            Some((&text, &draft)),
            now(),
        );
        assert_eq!(repeat.unwrap().change, Change::Nothing);
        let more = payload(
            "firing",
            &[
                ("firing", "web", "critical"),
                ("firing", "mail", "critical"),
            ],
        );
        let outcome = apply(
            &config,
            &settings,
            &parse(&more).unwrap(),
            Some((&text, &draft)),
            now(),
        )
        .unwrap();
        let Change::Replace(grown) = outcome.change else {
            panic!("{outcome:?}")
        };
        assert_eq!(grown, text.replace("[\"web\"]", "[\"web\", \"mail\"]"));
        assert_eq!(incident(&config, &grown).components, ["web", "mail"]);
    }

    #[test]
    fn a_list_over_several_lines_is_replaced_whole() {
        let text = "+++\ntitle = \"x\"\ncomponents = [\n  \"web\",\n]\ndraft = true\n+++\n\n## 2026-11-30 01:00Z\n\nx\n";
        assert_eq!(
            with_components(text, &["web".into(), "mail".into()]),
            "+++\ntitle = \"x\"\ncomponents = [\"web\", \"mail\"]\ndraft = true\n+++\n\n## 2026-11-30 01:00Z\n\nx\n"
        );
    }

    #[test]
    fn resolved_removes_a_draft_and_leaves_a_published_incident_unless_resolve() {
        let (config, settings) = config("");
        let firing = payload("firing", &[("firing", "web", "critical")]);
        let resolved = parse(&payload("resolved", &[("resolved", "web", "critical")])).unwrap();
        let text = created(&config, &settings, &firing);
        let draft = incident(&config, &text);
        let outcome = apply(&config, &settings, &resolved, Some((&text, &draft)), now()).unwrap();
        assert_eq!(outcome.change, Change::Remove);
        assert_eq!(
            apply(&config, &settings, &resolved, None, now())
                .unwrap()
                .change,
            Change::Nothing
        );

        let published_text = text.replace("draft = true\n", "");
        let published = incident(&config, &published_text);
        let outcome = apply(
            &config,
            &settings,
            &resolved,
            Some((&published_text, &published)),
            now(),
        )
        .unwrap();
        assert_eq!(outcome.change, Change::Nothing);
        // Firing again after publishing changes nothing either.
        let outcome = apply(
            &config,
            &settings,
            &parse(&payload("firing", &[("firing", "mail", "critical")])).unwrap(),
            Some((&published_text, &published)),
            now(),
        )
        .unwrap();
        assert_eq!(outcome.change, Change::Nothing);

        let (config, settings) = super::tests::config("resolve = true\n");
        let outcome = apply(
            &config,
            &settings,
            &resolved,
            Some((&published_text, &published)),
            now(),
        )
        .unwrap();
        let Change::Replace(closed) = outcome.change else {
            panic!("{outcome:?}")
        };
        assert!(
            closed.ends_with(
                "\n## 2026-11-30 02:00:00Z resolved\n\nAlertmanager reports the alert resolved.\n"
            ),
            "{closed}"
        );
        let closed_incident = incident(&config, &closed);
        assert!(closed_incident.latest_update().status.is_closing());
        // A repeat of the resolved notification adds nothing more.
        let again = apply(
            &config,
            &settings,
            &resolved,
            Some((&closed, &closed_incident)),
            now(),
        );
        assert_eq!(again.unwrap().change, Change::Nothing);
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        let good = payload("firing", &[("firing", "web", "critical")]);
        assert!(parse(&good).is_ok());
        let mut value: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let with = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut copy = value.clone();
            change(&mut copy);
            parse(&serde_json::to_vec(&copy).unwrap()).unwrap_err().0
        };
        assert_eq!(
            with(&|v| v["version"] = "3".into()),
            "unsupported payload version `3`, expected `4`"
        );
        assert_eq!(
            with(&|v| v["status"] = "pending".into()),
            "unknown status `pending`, expected `firing` or `resolved`"
        );
        assert_eq!(
            with(&|v| v["alerts"] = serde_json::json!([])),
            "`alerts` is empty"
        );
        assert_eq!(with(&|v| v["groupKey"] = "".into()), "`groupKey` is empty");
        let missing = with(&|v| {
            v.as_object_mut().unwrap().remove("receiver");
        });
        assert!(missing.contains("missing field `receiver`"), "{missing}");
        let typed = with(&|v| v["alerts"][0]["labels"] = serde_json::json!([1]));
        assert!(typed.contains("invalid type"), "{typed}");
        let time = with(&|v| v["alerts"][0]["startsAt"] = "yesterday".into());
        assert!(
            time.starts_with("alerts[0].startsAt `yesterday` is not an RFC 3339 time"),
            "{time}"
        );
        let array = with(&|v| v["alerts"][0] = serde_json::json!(["firing", {}, {}, "x"]));
        assert_eq!(
            array,
            "expected an object with an `alerts` array of objects"
        );
        assert_eq!(
            parse(b"[]").unwrap_err().0,
            "expected an object with an `alerts` array of objects"
        );
        let syntax = parse(b"{\"version\": \"4\",").unwrap_err().0;
        assert!(syntax.contains("line 1 column"), "{syntax}");
        value["extra"] = "ignored".into();
        assert!(parse(&serde_json::to_vec(&value).unwrap()).is_ok());
    }

    #[test]
    fn firing_again_after_a_resolved_incident_makes_a_new_draft() {
        let (config, settings) = config("");
        let firing = parse(&payload("firing", &[("firing", "web", "critical")])).unwrap();
        let closed = "+++\ntitle = \"Web is down\"\ncomponents = [\"web\"]\nseverity = \"major\"\n+++\n\n## 2026-11-29 01:00Z investigating\n\nx\n\n## 2026-11-29 02:00Z resolved\n\ny\n";
        let incident = incident(&config, closed);
        let outcome = apply(
            &config,
            &settings,
            &firing,
            Some((closed, &incident)),
            now(),
        )
        .unwrap();
        assert!(matches!(outcome.change, Change::Create(_)), "{outcome:?}");
    }

    #[test]
    fn ids_come_from_the_group_key() {
        let key = "{}:{alertname=\"WebDown\"}";
        let first = incident_id(key);
        assert_eq!(nth_id(key, 1), first);
        assert_eq!(nth_id(key, 3).as_str(), format!("{first}-3"));
        assert_eq!(id_number(key, first.as_str()), Some(1));
        assert_eq!(id_number(key, &format!("{first}-3")), Some(3));
        assert_eq!(id_number(key, &format!("{first}-03")), None);
        assert_eq!(id_number(key, &format!("{first}-1")), None);
        assert_eq!(id_number(key, &format!("{first}x")), None);
        assert_eq!(id_number(key, "alert-000000000000"), None);
        assert_eq!(
            incident_id("{}:{alertname=\"WebDown\"}"),
            incident_id("{}:{alertname=\"WebDown\"}")
        );
        assert_ne!(incident_id("a"), incident_id("b"));
        assert!(incident_id("a").as_str().starts_with("alert-"));
        assert_eq!(incident_id("a").as_str().len(), "alert-".len() + 12);
    }

    proptest::proptest! {
        /// Whatever an alert says, its draft parses as one update that sets
        /// no component and holds no raw markup.
        #[test]
        fn any_description_stays_one_plain_update(
            text in "(\\PC|\n|## |\\+\\+\\+|components: |mail=major-outage|2026-11-30 01:00 resolved|1\\. |2\\) |<b>|\\[x\\]\\(y\\)|`|\\*|_|#|=|-|:)*",
            title in "\\PC*",
        ) {
            let (config, settings) = config("");
            let mut alert = serde_json::json!({
                "status": "firing",
                "labels": {"component": "web"},
                "annotations": {"summary": title, "description": text},
                "startsAt": "2026-11-30T01:02:03Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "f"
            });
            alert["labels"]["severity"] = "critical".into();
            let body = serde_json::to_vec(&serde_json::json!({
                "version": "4", "groupKey": "k", "status": "firing", "receiver": "r",
                "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                "externalURL": "", "alerts": [alert]
            }))
            .unwrap();
            let text = created(&config, &settings, &body);
            let parsed = incident(&config, &text);
            proptest::prop_assert_eq!(parsed.updates.len(), 1, "{}", text);
            proptest::prop_assert!(parsed.updates[0].component_statuses.is_empty(), "{}", text);
            let html = &crate::parse::render_markdown(&parsed.updates[0].body_markdown);
            for tag in ["<a", "<b>", "<h", "<em", "<strong", "<code", "<img", "<ul", "<ol", "<blockquote"] {
                proptest::prop_assert!(!html.contains(tag), "{} in {}", tag, html);
            }
        }
    }

    #[test]
    fn escaped_text_shows_as_written() {
        assert_eq!(
            escape("components: web=major-outage"),
            "components\\: web=major-outage"
        );
        assert_eq!(
            escape("+++\n# x\n- y\n95% of <b>db-1</b> & more"),
            "\\+++\n\\# x\n\\- y\n95% of \\<b\\>db-1\\</b\\> \\& more"
        );
        assert_eq!(
            escape("1. one\n 12) twelve\n2026 was"),
            "1\\. one\n 12\\) twelve\n2026 was"
        );
        assert_eq!(one_line("a\n\tb  c\u{7}"), "a b c");
        assert_eq!(one_line("\n"), "Alert");
    }
}
