//! The webhook transport: POSTs over HTTP/1.1 (hyper) with TLS
//! (rustls, the platform's verifier), and whether a URL may be a webhook
//! ([`admit`], for the command line and the subscribe form). Does I/O.
//!
//! Every new connection resolves the host itself and connects only to an
//! address [`Policy`] allows, so a name that resolves to a private
//! address, now or after a change of its DNS answer, is never reached.
//! Connections are kept alive and reused per host (at most
//! [`Limits::max_idle`] idle ones in all); at most [`PER_HOST`] requests
//! go to one host at a time. Resolving, connecting and the TLS handshake
//! each time out after [`Limits::connect_timeout`], a whole request after
//! [`Limits::timeout`] (both `[webhooks]` settings); at most
//! [`Limits::reply_cap`] bytes of a reply are read; redirects are not
//! followed (a 3xx is a failure like a 4xx).
//!
//! herald's Matrix account (`crate::mailer::matrix`) talks to its
//! homeserver through the same client: that address is the operator's
//! configuration, so it is [`Trust::Operator`] and not held to the
//! subscriber rule (it may be on the operator's own network), on
//! connections of its own that no subscriber's request ever reuses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::config::Webhooks;
use crate::endpoint::{Endpoint, Host, Policy, Refusal};

/// Requests in flight to one host (scheme, name, port) at most.
pub const PER_HOST: usize = 16;
/// Idle connections kept, all hosts together: a fan-out to thousands of
/// hosts keeps no more sockets open than this.
pub const MAX_IDLE: usize = 256;
/// Hosts remembered (their permits and idle connections); past this,
/// the idle ones are forgotten.
const MAX_HOSTS: usize = 4096;
/// The most of a reply's body read (and kept when it is a failure's).
pub const REPLY_CAP: usize = 16 * 1024;
/// The longest `Retry-After` honoured.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// How long a post may take, and what it may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// For resolving a name, connecting and the TLS handshake, each.
    pub connect_timeout: Duration,
    /// For a whole post, from waiting for the host's permit to the end of
    /// the reply.
    pub timeout: Duration,
    /// Idle connections kept, all hosts together.
    pub max_idle: usize,
    /// The most of a reply's body read.
    pub reply_cap: usize,
}

impl Limits {
    /// The configured timeouts, [`MAX_IDLE`] and [`REPLY_CAP`].
    pub fn of(webhooks: &Webhooks) -> Limits {
        Limits {
            connect_timeout: webhooks.connect_timeout,
            timeout: webhooks.timeout,
            max_idle: MAX_IDLE,
            reply_cap: REPLY_CAP,
        }
    }
}

/// Whether `url` may be a webhook now: it parses, and its host resolves
/// to addresses `policy` allows. Returns it as herald stores it.
pub async fn admit(webhooks: &Webhooks, url: &str) -> Result<Endpoint, Failure> {
    let policy = &webhooks.policy;
    let endpoint = Endpoint::parse(url)?;
    if !endpoint.secure && policy.allow.is_empty() {
        return Err(Refusal::PlainHttp(endpoint.to_string()).into());
    }
    match &endpoint.host {
        Host::Ip(ip) => policy.check(&endpoint, *ip)?,
        Host::Name(name) => {
            let resolved = resolve(name, endpoint.port, webhooks.connect_timeout).await?;
            policy.filter(&endpoint, resolved)?;
        }
    }
    Ok(endpoint)
}

/// The addresses `name` resolves to, within `timeout`.
async fn resolve(
    name: &str,
    port: u16,
    timeout: Duration,
) -> Result<impl Iterator<Item = IpAddr>, Failure> {
    let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((name, port)))
        .await
        .map_err(|_| Failure::Network(format!("resolving {name} timed out")))?
        .map_err(|error| Failure::Network(format!("cannot resolve {name}: {error}")))?;
    Ok(resolved.map(|address| address.ip()))
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After`, in seconds or as a date, from now.
    pub retry_after: Option<Duration>,
    /// The start of the body, lossily as text.
    pub body: String,
}

impl Reply {
    /// `HTTP 400: first line of the body`, for the outbox.
    pub fn summary(&self) -> String {
        let body: String = self.body.trim().chars().take(300).collect();
        if body.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {body}", self.status)
        }
    }
}

/// Why no reply came.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The URL or every address of its host is refused: not retried.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Resolving, connecting, TLS, or the exchange failed or timed out:
    /// retried.
    #[error("{0}")]
    Network(String),
}

/// Who chose where a request goes, and so which addresses it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trust {
    /// A subscriber: only addresses the [`Policy`] allows.
    Subscriber,
    /// The operator's configuration (the Matrix homeserver): any address.
    Operator,
}

/// One request: how, where, what, and its headers (besides `Host`,
/// `Content-Type: application/json` and `User-Agent`).
pub struct Request<'a> {
    pub method: hyper::Method,
    pub endpoint: &'a Endpoint,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
}

type Sender = SendRequest<Full<Bytes>>;

/// A host as connections are kept for it: who chose it (a subscriber's
/// request never reuses the operator's connections), TLS or not, its
/// name or address, and its port.
type HostKey = (Trust, bool, String, u16);

/// What is kept per host: its permits and its idle connections.
struct HostState {
    permits: Semaphore,
    idle: Mutex<Vec<Sender>>,
}

/// The client, shared by every delivery.
pub struct Client {
    policy: Policy,
    limits: Limits,
    /// Made at the first https connection: a machine without CA
    /// certificates still sends email and plain-http webhooks, and says
    /// why its https webhooks wait.
    tls: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>>,
    hosts: Mutex<HashMap<HostKey, Arc<HostState>>>,
    /// Idle connections, all hosts together (at most [`MAX_IDLE`]).
    idle: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// The client for the `[webhooks]` settings.
    pub fn new(webhooks: &Webhooks) -> Client {
        Client::with_limits(webhooks.policy.clone(), Limits::of(webhooks))
    }

    pub fn with_limits(policy: Policy, limits: Limits) -> Client {
        Client {
            policy,
            limits,
            tls: std::sync::OnceLock::new(),
            hosts: Mutex::new(HashMap::new()),
            idle: AtomicUsize::new(0),
        }
    }

    /// rustls with the platform's verifier, made once.
    fn tls(&self) -> Result<&tokio_rustls::TlsConnector, Failure> {
        self.tls
            .get_or_init(|| {
                use rustls_platform_verifier::BuilderVerifierExt as _;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .and_then(|builder| builder.with_platform_verifier())
                    .map(|builder| {
                        tokio_rustls::TlsConnector::from(Arc::new(builder.with_no_client_auth()))
                    })
                    .map_err(|error| format!("cannot set up TLS for webhooks: {error}"))
            })
            .as_ref()
            .map_err(|reason| Failure::Network(reason.clone()))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn host(&self, endpoint: &Endpoint, trust: Trust) -> Arc<HostState> {
        let key = (
            trust,
            endpoint.secure,
            endpoint.host.to_string(),
            endpoint.port,
        );
        let mut hosts = self
            .hosts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if hosts.len() >= MAX_HOSTS && !hosts.contains_key(&key) {
            // Forget hosts nobody is posting to (their idle connections
            // close as they are dropped).
            hosts.retain(|_, state| {
                Arc::strong_count(state) > 1 || state.permits.available_permits() < PER_HOST
            });
            self.idle.store(
                hosts.values().map(|state| idle_count(state)).sum(),
                Ordering::Relaxed,
            );
        }
        Arc::clone(hosts.entry(key).or_insert_with(|| {
            Arc::new(HostState {
                permits: Semaphore::new(PER_HOST),
                idle: Mutex::new(Vec::new()),
            })
        }))
    }

    /// The addresses `endpoint` may connect to, resolved now.
    async fn addresses(&self, endpoint: &Endpoint, trust: Trust) -> Result<Vec<IpAddr>, Failure> {
        match (&endpoint.host, trust) {
            (Host::Ip(ip), Trust::Subscriber) => {
                self.policy.check(endpoint, *ip)?;
                Ok(vec![*ip])
            }
            (Host::Ip(ip), Trust::Operator) => Ok(vec![*ip]),
            (Host::Name(name), Trust::Subscriber) => {
                let resolved = resolve(name, endpoint.port, self.limits.connect_timeout).await?;
                Ok(self.policy.filter(endpoint, resolved)?)
            }
            (Host::Name(name), Trust::Operator) => {
                Ok(resolve(name, endpoint.port, self.limits.connect_timeout)
                    .await?
                    .collect())
            }
        }
    }

    /// Sends a subscriber's `request`; a reply of any status is `Ok`.
    pub async fn post(&self, request: &Request<'_>) -> Result<Reply, Failure> {
        self.send(request, Trust::Subscriber).await
    }

    /// Sends `request` to an address `trust` admits; a reply of any status
    /// is `Ok`.
    pub async fn send(&self, request: &Request<'_>, trust: Trust) -> Result<Reply, Failure> {
        let host = self.host(request.endpoint, trust);
        let Ok(_permit) = host.permits.acquire().await else {
            return Err(Failure::Network("the client is shutting down".into()));
        };
        let timeout = self.limits.timeout;
        tokio::time::timeout(timeout, self.exchange(&host, request, trust))
            .await
            .map_err(|_| {
                Failure::Network(format!(
                    "timed out: no reply within {}",
                    humantime::format_duration(timeout)
                ))
            })?
    }

    async fn exchange(
        &self,
        host: &HostState,
        request: &Request<'_>,
        trust: Trust,
    ) -> Result<Reply, Failure> {
        // An idle connection the server closed meanwhile fails before
        // anything is sent: then once more on a new one.
        loop {
            let reused = take_idle(host, &self.idle);
            let fresh = reused.is_none();
            let mut sender = match reused {
                Some(sender) => sender,
                None => self.connect(request.endpoint, trust).await?,
            };
            if sender.ready().await.is_err() {
                if fresh {
                    return Err(Failure::Network("the connection closed at once".into()));
                }
                continue;
            }
            let mut builder = hyper::Request::builder()
                .method(request.method.clone())
                .uri(request.endpoint.path.as_str())
                .header(hyper::header::HOST, authority(request.endpoint))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(
                    hyper::header::USER_AGENT,
                    concat!("herald/", env!("CARGO_PKG_VERSION")),
                );
            for (name, value) in &request.headers {
                builder = builder.header(*name, value.as_str());
            }
            let built = builder
                .body(Full::new(request.body.clone()))
                .map_err(|error| Failure::Network(format!("cannot build the request: {error}")))?;
            let response = match sender.send_request(built).await {
                Ok(response) => response,
                Err(error) if !fresh && error.is_canceled() => continue,
                Err(error) => return Err(Failure::Network(format!("request failed: {error}"))),
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| retry_after(value, crate::clock::now()));
            let close = response
                .headers()
                .get(hyper::header::CONNECTION)
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"close"));
            let (body, whole) = read_capped(response.into_body(), self.limits.reply_cap).await;
            if whole && !close {
                give_back(host, sender, &self.idle, self.limits.max_idle);
            }
            return Ok(Reply {
                status,
                retry_after,
                body,
            });
        }
    }

    /// A new connection to an allowed address of `endpoint`'s host.
    async fn connect(&self, endpoint: &Endpoint, trust: Trust) -> Result<Sender, Failure> {
        let addresses = self.addresses(endpoint, trust).await?;
        let mut last = String::new();
        for ip in addresses {
            let address = SocketAddr::new(ip, endpoint.port);
            match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(address))
                .await
            {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return self.handshake(endpoint, stream).await;
                }
                Ok(Err(error)) => last = format!("cannot connect to {address}: {error}"),
                Err(_) => last = format!("connecting to {address} timed out"),
            }
        }
        Err(Failure::Network(last))
    }

    async fn handshake(&self, endpoint: &Endpoint, stream: TcpStream) -> Result<Sender, Failure> {
        let failed =
            |error: hyper::Error| Failure::Network(format!("HTTP handshake failed: {error}"));
        if !endpoint.secure {
            let (sender, connection) = builder()
                .handshake(TokioIo::new(stream))
                .await
                .map_err(failed)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return Ok(sender);
        }
        let name = match &endpoint.host {
            Host::Name(name) => rustls::pki_types::ServerName::try_from(name.clone()),
            Host::Ip(ip) => Ok(rustls::pki_types::ServerName::IpAddress((*ip).into())),
        }
        .map_err(|error| Failure::Network(format!("invalid TLS name: {error}")))?;
        let tls = tokio::time::timeout(
            self.limits.connect_timeout,
            self.tls()?.connect(name, stream),
        )
        .await
        .map_err(|_| Failure::Network(format!("TLS with {} timed out", endpoint.host)))?
        .map_err(|error| Failure::Network(format!("TLS with {} failed: {error}", endpoint.host)))?;
        let (sender, connection) = builder()
            .handshake(TokioIo::new(tls))
            .await
            .map_err(failed)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// HTTP/1.1 with the head and the body in one write: one segment per
/// request, which receivers read in one go.
fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.writev(false);
    builder
}

fn authority(endpoint: &Endpoint) -> String {
    let default = if endpoint.secure { 443 } else { 80 };
    if endpoint.port == default {
        endpoint.host.to_string()
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    }
}

fn take_idle(host: &HostState, total: &AtomicUsize) -> Option<Sender> {
    let mut idle = host
        .idle
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while let Some(sender) = idle.pop() {
        total.fetch_sub(1, Ordering::Relaxed);
        if !sender.is_closed() {
            return Some(sender);
        }
    }
    None
}

/// Keeps `sender` for the next post to its host, unless the host or all
/// hosts together keep enough.
fn give_back(host: &HostState, sender: Sender, total: &AtomicUsize, max_idle: usize) {
    let mut idle = host
        .idle
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if idle.len() < PER_HOST && total.load(Ordering::Relaxed) < max_idle {
        total.fetch_add(1, Ordering::Relaxed);
        idle.push(sender);
    }
}

fn idle_count(host: &HostState) -> usize {
    host.idle
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .len()
}

/// The body as text, at most `cap` bytes; `true` if it was read to its
/// end (so the connection can carry another request).
async fn read_capped(mut body: hyper::body::Incoming, cap: usize) -> (String, bool) {
    let mut read = Vec::new();
    loop {
        match body.frame().await {
            None => return (String::from_utf8_lossy(&read).into_owned(), true),
            Some(Err(_)) => return (String::from_utf8_lossy(&read).into_owned(), false),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = cap - read.len();
                    read.extend_from_slice(&data[..data.len().min(room)]);
                    if data.len() > room {
                        return (String::from_utf8_lossy(&read).into_owned(), false);
                    }
                }
            }
        }
    }
}

/// `Retry-After` as a delay from `now`: seconds, or an HTTP date.
pub fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.with_timezone(&chrono::Utc) - now)
                .to_std()
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Mon, 30 Nov 2026 08:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            retry_after("Mon, 30 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("9999999", now), Some(RETRY_AFTER_CAP));
        assert_eq!(retry_after("soon", now), None);
    }
}
