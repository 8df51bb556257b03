//! `POST /hooks/alertmanager`: Alertmanager's webhook (version 4) in,
//! draft incidents out (see [`crate::alerts`] for what a notification
//! does). Does I/O: reads the token file and the group's incident file,
//! writes or removes it atomically under the incidents directory's lock.
//!
//! | request | answer |
//! |---|---|
//! | no `[alertmanager]` | 404 |
//! | no `Authorization: Bearer TOKEN`, or another token | 401, `WWW-Authenticate: Bearer` |
//! | the token file could not be read | 503 (logged with the reason) |
//! | not `application/json` | 415 |
//! | more than [`alerts::BODY_LIMIT`] bytes | 413 |
//! | not a version 4 payload | 400, the reason; nothing written |
//! | no alert names a configured component | 422, the reason; nothing written |
//! | the group's file has errors, or cannot be read or written | 500 (Alertmanager retries) |
//! | otherwise | 200, `created`, `updated`, `removed` or `unchanged` and the id |
//!
//! The token is compared in constant time, as SHA-256 digests, so neither
//! its content nor its length shows in the time taken.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;
use crate::alerts::{self, Change};
use crate::clock;
use crate::config::Config;
use crate::driver::parse_context;
use crate::fsio;
use crate::parse;
use crate::token::secret;

/// The hook's token, as read when the server started or reloaded.
#[derive(Clone)]
pub(super) enum HookToken {
    /// No `[alertmanager]`.
    Off,
    /// The SHA-256 of the token.
    Digest([u8; 32]),
    /// The file could not be read, or holds no token.
    Unreadable,
}

impl HookToken {
    /// Reads `[alertmanager] token_file`: its content, without the
    /// surrounding white space.
    pub(super) fn read(config: &Config) -> HookToken {
        let Some(settings) = &config.alertmanager else {
            return HookToken::Off;
        };
        let kind = secret::Kind {
            what: "[alertmanager] token_file",
            replace: "a new token (here and in Alertmanager's configuration)",
        };
        match secret::read(&settings.token_file, kind) {
            Ok(bytes) if !bytes.trim_ascii().is_empty() => {
                HookToken::Digest(Sha256::digest(bytes.trim_ascii()).into())
            }
            Ok(_) => {
                tracing::error!(
                    path = %settings.token_file.display(),
                    "[alertmanager] token_file is empty; the hook answers 503"
                );
                HookToken::Unreadable
            }
            Err(error) => {
                tracing::error!(
                    "{:#}; the hook answers 503 until it is fixed and herald reloaded",
                    anyhow::Error::from(error)
                );
                HookToken::Unreadable
            }
        }
    }
}

pub(super) async fn hook(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let Some(settings) = site.config.alertmanager.clone() else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    match &site.hook_token {
        HookToken::Off => return plain(StatusCode::NOT_FOUND, "not found"),
        HookToken::Unreadable => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hook's token file cannot be read",
            );
        }
        HookToken::Digest(expected) => {
            if !authorized(&headers, expected) {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a valid bearer token is required\n",
                )
                    .into_response();
            }
        }
    }
    if !is_json(&headers) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("bodies are at most {} bytes", alerts::BODY_LIMIT),
        )
    };
    if declared.is_some_and(|length| length > alerts::BODY_LIMIT as u64) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, alerts::BODY_LIMIT).await else {
        return too_large();
    };
    let notification = match alerts::parse(&body) {
        Ok(notification) => notification,
        Err(problem) => {
            tracing::warn!("Alertmanager hook: malformed body: {problem}");
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("malformed body: {problem}"),
            );
        }
    };
    let config = site.config.clone();
    let state = match notification.state {
        alerts::State::Firing => "firing",
        alerts::State::Resolved => "resolved",
    };
    let applied =
        tokio::task::spawn_blocking(move || apply(&config, &settings, &notification)).await;
    match applied {
        Ok(Ok(answer)) => {
            tracing::info!("Alertmanager notification, {state}: {answer}");
            plain(StatusCode::OK, &answer)
        }
        Ok(Err(Failure::Unusable(reason))) => {
            tracing::warn!("Alertmanager hook: {reason}; nothing written");
            plain(StatusCode::UNPROCESSABLE_ENTITY, &reason)
        }
        Ok(Err(Failure::Internal(error))) => {
            tracing::error!("Alertmanager hook: {error:#}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error:#}"))
        }
        Err(error) => {
            tracing::error!("Alertmanager hook: {error}");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

enum Failure {
    Unusable(String),
    Internal(anyhow::Error),
}

/// Reads the group's incident file, decides, writes: all under the
/// incidents directory's lock, which `herald new`, `post` and `publish`
/// take too.
fn apply(
    config: &Config,
    settings: &crate::config::Alertmanager,
    notification: &alerts::Notification,
) -> Result<String, Failure> {
    let internal = |error: fsio::Error| Failure::Internal(error.into());
    let incidents = &config.paths.incidents;
    std::fs::create_dir_all(incidents).map_err(|error| {
        Failure::Internal(anyhow::Error::new(error).context(format!(
            "cannot create the incidents directory {}",
            incidents.display()
        )))
    })?;
    let _lock = fsio::lock_dir(incidents).map_err(internal)?;
    // The group's latest incident: the highest of `ID`, `ID-2`, `ID-3`…
    let key = &notification.group_key;
    let latest = fsio::find_incident_files(incidents)
        .map_err(internal)?
        .into_iter()
        .filter_map(|path| {
            let n = alerts::id_number(key, path.file_stem()?.to_str()?)?;
            Some((n, path))
        })
        .max_by_key(|(n, _)| *n);
    let number = latest.as_ref().map_or(1, |(n, _)| *n);
    let id = alerts::nth_id(key, number);
    let path = latest.map_or_else(|| incidents.join(format!("{id}.md")), |(_, path)| path);
    let current = match fsio::read_incident(&path).map_err(internal)? {
        Some(bytes) => Some(String::from_utf8(bytes).map_err(|_| {
            Failure::Internal(anyhow::anyhow!(
                "{} is not UTF-8; not changed",
                path.display()
            ))
        })?),
        None => None,
    };
    let context = parse_context(config);
    let existing = match &current {
        Some(text) => match parse::parse_incident(&path, text, &context) {
            (Some(incident), _) => Some((text.as_str(), incident)),
            (None, diagnostics) => {
                let first = diagnostics
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                return Err(Failure::Internal(anyhow::anyhow!(
                    "{} has errors; not changed: {first}",
                    path.display()
                )));
            }
        },
        None => None,
    };
    let outcome = alerts::apply(
        config,
        settings,
        notification,
        existing.as_ref().map(|(text, incident)| (*text, incident)),
        clock::now(),
    )
    .map_err(|unusable| Failure::Unusable(unusable.0))?;
    for warning in &outcome.warnings {
        tracing::warn!(incident = %id, "Alertmanager hook: {warning}");
    }
    let checked = |text: &str| -> Result<(), Failure> {
        match parse::parse_incident(&path, text, &context) {
            (Some(_), _) => Ok(()),
            (None, diagnostics) => Err(Failure::Internal(anyhow::anyhow!(
                "not writing {}: the result would have errors: {}",
                path.display(),
                diagnostics
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))),
        }
    };
    let done = match (&outcome.change, &current) {
        (Change::Nothing, _) => "unchanged",
        (Change::Create(text), existing) => {
            // A new outage of a group whose incident is resolved: the next id.
            let (id, path) = match existing {
                None => (id.clone(), path.clone()),
                Some(_) => {
                    let next = alerts::nth_id(key, number + 1);
                    let path = incidents.join(format!("{next}.md"));
                    (next, path)
                }
            };
            checked(text)?;
            fsio::replace_file_if(&path, fsio::Expected::Absent, text.as_bytes())
                .map_err(internal)?;
            tracing::info!(incident = %id, path = %path.display(), "draft incident from Alertmanager");
            return Ok(format!("created {id}"));
        }
        (Change::Replace(text), Some(before)) => {
            checked(text)?;
            fsio::replace_file_if(
                &path,
                fsio::Expected::Bytes(before.as_bytes()),
                text.as_bytes(),
            )
            .map_err(internal)?;
            tracing::info!(incident = %id, path = %path.display(), "incident updated from Alertmanager");
            "updated"
        }
        (Change::Remove, Some(before)) => {
            fsio::remove_file_if(&path, before.as_bytes()).map_err(internal)?;
            tracing::info!(incident = %id, path = %path.display(), "draft removed: its alerts resolved");
            "removed"
        }
        (Change::Replace(_) | Change::Remove, None) => "unchanged",
    };
    Ok(format!("{done} {id}"))
}

/// Whether the request carries `Authorization: Bearer TOKEN` with the
/// token whose digest is `expected`.
fn authorized(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    let given: [u8; 32] = Sha256::digest(value[scheme.len()..].trim_ascii()).into();
    given.ct_eq(expected).into()
}

/// `application/json`, with or without a UTF-8 charset.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let kind = parts.next().unwrap_or_default();
    kind.eq_ignore_ascii_case("application/json")
        && parts.all(|parameter| {
            parameter.is_empty()
                || parameter.eq_ignore_ascii_case("charset=utf-8")
                || parameter.eq_ignore_ascii_case("charset=\"utf-8\"")
        })
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fixtures::headers;

    #[test]
    fn only_the_right_bearer_token_is_authorized() {
        let expected: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(authorized(
            &headers(&[("authorization", "Bearer s3cret")]),
            &expected
        ));
        assert!(authorized(
            &headers(&[("authorization", "bearer s3cret ")]),
            &expected
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer s3cre")]),
            &expected
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Basic s3cret")]),
            &expected
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer ")]),
            &expected
        ));
        assert!(!authorized(&headers(&[]), &expected));
    }

    #[test]
    fn only_json_bodies_are_read() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[(
            "content-type",
            "application/json; charset=latin1"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[])));
    }
}
