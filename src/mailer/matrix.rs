//! The Matrix transport: herald's account on the configured homeserver
//! (`[matrix]`), posting messages to rooms and joining them through the
//! client-server API. Does I/O (the token file, the network).
//!
//! The access token is read from `access_token_file` when the transport is
//! made (at start and on reload); a file other users can read is refused,
//! like the token key. Requests go through the webhooks' HTTP client
//! ([`crate::webhook::Client`]: kept-alive connections, TLS with the
//! platform's verifier, `[webhooks]`' timeouts, replies read up to its
//! cap, redirects not followed), the homeserver admitted as the
//! operator's configuration ([`Trust::Operator`]) rather than held to the
//! rule for subscribers' URLs.
//!
//! What a reply means ([`classify`]): 2xx is done; 429 (with the server's
//! `retry_after_ms` or `Retry-After`), 5xx, 401 (a token the operator
//! must fix; the message must not be lost meanwhile) and connection
//! failures are tried again later; 403 `M_FORBIDDEN` (herald is not in
//! the room: kicked, banned, or never joined) and 404 `M_NOT_FOUND` (no
//! such room) mean the room is gone for herald, so its subscription is
//! removed; any other 4xx is parked with the reply kept. A 404 without
//! Matrix's `M_NOT_FOUND` (a wrong `homeserver` path behind a proxy) is
//! parked, not taken for a room that went away.
//!
//! For the drain, `client` makes the account when the mailer starts or
//! reloads, and `compose` and `post` turn an outbox row into a message
//! and its outcome into the drain's [`SendError`] (a room gone is
//! `Revoked`: the subscription is removed). Without `[matrix]`, or with a
//! token file that cannot be used, Matrix deliveries are retried with the
//! reason, never dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use serde_json::Value;

use super::{Job, SendError, Shared};
use crate::compose::MatrixMessage;
use crate::config::{Config, Homeserver, Matrix as Settings};
use crate::endpoint::{Endpoint, Host};
use crate::token::secret;
use crate::webhook::{self, Reply, Trust};

/// The most of a reply kept with a parked or retried delivery.
const REPLY_KEPT: usize = 500;

/// Why the transport cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unreadable, or readable by others.
    #[error(transparent)]
    Secret(#[from] secret::Error),
    #[error("the Matrix access token file {} holds no token", path.display())]
    Empty { path: PathBuf },
}

/// What became of a request, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Try again later; `after` is how long the homeserver asked to wait.
    Retry {
        reply: String,
        after: Option<Duration>,
    },
    /// Give up on this message; the reply is kept.
    Park(String),
    /// herald cannot post to the room (not in it, or no such room): the
    /// subscription ends.
    Gone(String),
}

impl Failure {
    /// The homeserver's reply, or what went wrong on the way.
    pub fn reply(&self) -> &str {
        match self {
            Failure::Retry { reply, .. } | Failure::Park(reply) | Failure::Gone(reply) => reply,
        }
    }
}

/// A room as a subscriber names it: its id (`!opaque:server`) or an
/// alias (`#name:server`), which joining resolves to the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomRef {
    Id(String),
    Alias(String),
}

impl RoomRef {
    /// Parses `!opaque:server` (or `!opaque`, as room version 12 makes
    /// them) or `#alias:server`.
    pub fn parse(text: &str) -> Result<RoomRef, String> {
        let text = text.trim();
        let clean = !text.is_empty()
            && text.len() <= 255
            && !text.chars().any(|c| c.is_whitespace() || c.is_control());
        let alias = |rest: &str| {
            rest.split_once(':')
                .is_some_and(|(local, server)| !local.is_empty() && !server.is_empty())
        };
        match text.split_at(text.chars().next().map_or(0, char::len_utf8)) {
            ("!", rest) if clean && !rest.is_empty() && !rest.starts_with(':') => {
                Ok(RoomRef::Id(text.to_owned()))
            }
            ("#", rest) if clean && alias(rest) => Ok(RoomRef::Alias(text.to_owned())),
            _ => Err(format!(
                "`{text}` is no Matrix room: expected a room id such as `!abcdef:example.org` or an alias such as `#status:example.org`"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            RoomRef::Id(text) | RoomRef::Alias(text) => text,
        }
    }
}

/// herald's account on the homeserver.
#[derive(Clone)]
pub struct Client {
    homeserver: Homeserver,
    token: Arc<str>,
    http: Arc<webhook::Client>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("homeserver", &self.homeserver.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Reads the access token; requests go through `http`.
    pub fn new(settings: &Settings, http: Arc<webhook::Client>) -> Result<Client, Error> {
        let token = read_token(&settings.access_token_file)?;
        Ok(Client::with_token(&settings.homeserver, &token, http))
    }

    fn with_token(homeserver: &Homeserver, token: &str, http: Arc<webhook::Client>) -> Client {
        Client {
            homeserver: homeserver.clone(),
            token: token.into(),
            http,
        }
    }

    /// Posts `message` to the room `room_id`; the event's id once the
    /// homeserver has it. Sent again with the same transaction id, the
    /// homeserver answers with the first event's id and posts nothing.
    pub async fn send(&self, room_id: &str, message: &MatrixMessage) -> Result<String, Failure> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            encode(room_id),
            encode(&message.txn_id)
        );
        let body = serde_json::to_vec(&message.content).unwrap_or_default();
        let reply = self.request(Method::PUT, &path, body).await?;
        field(&reply, "event_id")
    }

    /// Joins `room` (accepting an invitation, or entering a public room);
    /// the room's id, an alias resolved. Joining a room herald is in
    /// changes nothing.
    pub async fn join(&self, room: &RoomRef) -> Result<String, Failure> {
        let path = format!("/_matrix/client/v3/join/{}", encode(room.as_str()));
        let reply = self.request(Method::POST, &path, b"{}".to_vec()).await?;
        field(&reply, "room_id")
    }

    /// The id of the room `alias` (`#name:server`) names, from the room
    /// directory.
    pub async fn resolve(&self, alias: &str) -> Result<String, Failure> {
        let path = format!("/_matrix/client/v3/directory/room/{}", encode(alias));
        let reply = self.request(Method::GET, &path, Vec::new()).await?;
        field(&reply, "room_id")
    }

    /// Who herald is on the homeserver (`@user:server`).
    pub async fn whoami(&self) -> Result<String, Failure> {
        let reply = self
            .request(Method::GET, "/_matrix/client/v3/account/whoami", Vec::new())
            .await?;
        field(&reply, "user_id")
    }

    /// One request with herald's token; the reply's JSON on 2xx.
    async fn request(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Value, Failure> {
        let homeserver = &self.homeserver;
        let endpoint = Endpoint {
            secure: homeserver.tls,
            host: match homeserver.host.parse() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(homeserver.host.to_ascii_lowercase()),
            },
            port: homeserver.port,
            path: format!("{}{path}", homeserver.prefix),
        };
        let request = webhook::Request {
            method,
            endpoint: &endpoint,
            body: body.into(),
            headers: vec![("authorization", format!("Bearer {}", self.token))],
        };
        match self.http.send(&request, Trust::Operator).await {
            Ok(reply) => classify(&reply),
            Err(webhook::Failure::Network(reason)) => Err(retry(format!(
                "{reason} (the homeserver {})",
                homeserver.url
            ))),
            Err(webhook::Failure::Refused(refusal)) => Err(Failure::Park(refusal.to_string())),
        }
    }
}

// How the outbox drain (the parent module) uses the account.

/// herald's Matrix account as `[matrix]` configures it, its requests
/// going through `http`; without one, or with a token file that cannot be
/// used, why not (logged once here, and the reply of every Matrix
/// delivery, which waits for a reload).
pub(super) fn client(config: &Config, http: &Arc<webhook::Client>) -> Result<Client, String> {
    let Some(settings) = &config.matrix else {
        return Err("no [matrix] account is configured".into());
    };
    Client::new(settings, Arc::clone(http)).map_err(|error| {
        let reason = format!("{:#}", anyhow::Error::from(error));
        tracing::error!(
            "Matrix rooms get nothing until this is fixed and herald reloaded: {reason}"
        );
        reason
    })
}

/// The message of `job` to a Matrix room.
pub(super) fn compose(shared: &Shared, job: &Job) -> Result<MatrixMessage, SendError> {
    let Job::Alert(row) = job else {
        return Err(SendError::Park(
            "Matrix rooms are added with `herald subscribers add --matrix`, never confirmed".into(),
        ));
    };
    let announcement = shared
        .announcement(row.announcement)
        .map_err(|error| SendError::Retry(format!("{:#}", anyhow::Error::from(error))))?
        .ok_or_else(|| SendError::Park("the announcement is missing from the database".into()))?;
    Ok(shared.composer.matrix(
        &shared.config,
        &announcement,
        &row.subscriber.address,
        row.subscriber.language,
        &row.subscriber.token,
    ))
}

/// Posts `message` to the Matrix room `room`; `Ok` once the homeserver
/// has the event.
pub(super) async fn post(
    shared: &Shared,
    room: &str,
    message: &MatrixMessage,
) -> Result<(), SendError> {
    let client = shared
        .matrix
        .as_ref()
        .map_err(|reason| SendError::Retry(reason.clone()))?;
    match client.send(room, message).await {
        Ok(_event) => Ok(()),
        Err(Failure::Retry {
            reply,
            after: Some(after),
        }) => Err(SendError::RetryAfter(reply, after)),
        Err(Failure::Retry { reply, after: None }) => Err(SendError::Retry(reply)),
        Err(Failure::Park(reply)) => Err(SendError::Park(reply)),
        Err(Failure::Gone(reply)) => Err(SendError::Revoked(reply)),
    }
}

fn retry(reply: String) -> Failure {
    Failure::Retry { reply, after: None }
}

/// A string field of a 2xx reply.
fn field(reply: &Value, name: &str) -> Result<String, Failure> {
    reply[name].as_str().map(str::to_owned).ok_or_else(|| {
        Failure::Park(format!(
            "the homeserver's reply has no `{name}`: {}",
            kept(&reply.to_string())
        ))
    })
}

/// What a reply means: its JSON on 2xx, otherwise a [`Failure`].
pub fn classify(reply: &Reply) -> Result<Value, Failure> {
    let json: Option<Value> = serde_json::from_str(&reply.body).ok();
    if (200..300).contains(&reply.status) {
        return Ok(json.unwrap_or(Value::Null));
    }
    let errcode = json
        .as_ref()
        .and_then(|json| json["errcode"].as_str())
        .unwrap_or("");
    let status = reply.status;
    let after = reply.retry_after;
    let reply = format!("{status} {}", kept(&reply.body))
        .trim_end()
        .to_owned();
    match status {
        429 => {
            let from_body = json
                .as_ref()
                .and_then(|json| json["retry_after_ms"].as_u64())
                .map(Duration::from_millis);
            Err(Failure::Retry {
                reply,
                after: from_body.or(after),
            })
        }
        500..=599 | 401 => Err(Failure::Retry { reply, after: None }),
        403 if errcode == "M_FORBIDDEN" => Err(Failure::Gone(reply)),
        404 if errcode == "M_NOT_FOUND" => Err(Failure::Gone(reply)),
        _ => Err(Failure::Park(reply)),
    }
}

/// The start of a reply, on one line.
fn kept(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REPLY_KEPT)
        .collect();
    line.trim().to_owned()
}

/// `text` percent-encoded for one path segment.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The access token: the file's content without surrounding white space.
/// A file others can read, or an empty one, is refused.
fn read_token(path: &std::path::Path) -> Result<String, Error> {
    let bytes = secret::read(
        path,
        secret::Kind {
            what: "the Matrix access token file",
            replace: "making a new token",
        },
    )?;
    let token = String::from_utf8_lossy(&bytes).trim().to_owned();
    if token.is_empty() {
        return Err(Error::Empty {
            path: path.to_owned(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests;
