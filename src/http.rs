//! `[http]`: the subscription endpoints of SPEC §7, served by `herald run`
//! behind the operator's web server. Does I/O (a socket, the state
//! database).
//!
//! | request | answer |
//! |---|---|
//! | `POST /subscribe` (`email`, `components`…) | 200, the same page whatever the address's state; queues one confirmation email (double opt-in) |
//! | `GET /confirm/TOKEN` | 200 "confirmed" (again on a repeat), 404 if unknown or expired |
//! | `GET /unsubscribe/TOKEN` | a page with one button; changes nothing, since mail scanners follow links |
//! | `POST /unsubscribe/TOKEN` | RFC 8058 one-click: body `List-Unsubscribe=One-Click`, form-urlencoded (what the page's button sends, as a hidden field) or multipart/form-data; 200 at once and on every repeat |
//! | `GET /healthz` | 200 while the watcher and the mailer are alive (asked through the daemon's loop), else 503 |
//!
//! Pages come from `notice.html` in the site's language.
//!
//! **Privacy.** Whether an address is new, pending or subscribed, a
//! subscribe request gets the same answer, and the same thing happens
//! outwardly: a confirmation email to that address (at most one an hour
//! for a pending one) and nothing else until its link is followed. The
//! request is queued to one writer task that stores a batch per
//! transaction; the handler waits for the commit, so a database failure is
//! a 503 rather than a lie.
//!
//! **Abuse.** Token buckets in memory: per client address (10 at once,
//! one more a minute) for every `POST /subscribe`, counted before the body
//! is read, and per email address (3 at once, one more every 20 minutes);
//! over either, 429 with `Retry-After`. IPv6 clients count per /64. Each
//! table holds at most [`MAX_KEYS`] keys; when full, idle ones are dropped,
//! and if none are idle new keys are refused, so memory stays bounded
//! under a flood. Bodies are at most [`BODY_LIMIT`] bytes; forms must be
//! `application/x-www-form-urlencoded` in UTF-8 with exactly the expected
//! fields; the address must be one plain `user@domain.tld` with no space
//! or control character (so nothing can reach a header).
//!
//! **Client address.** The peer address, except that a peer on loopback is
//! taken to be the operator's reverse proxy, and then the last entry of
//! `X-Forwarded-For` (the one that proxy added) is the client. Without
//! that, every client behind the proxy would share one bucket. A proxy on
//! another host is not trusted: listen on loopback behind a local proxy.
//!
//! **Reload.** On SIGHUP the running server takes the new configuration
//! and templates; it is restarted only when `listen` or the state
//! directory changed, and removed when `[http]` is.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock;
use crate::config::Config;
use crate::health::{Health, HealthProbe};
use crate::model::Follows;
use crate::render::Templates;
use crate::render::notice::{Notice, notice};
use crate::store::{Confirmed, NewRequest, Store, Unsubscribed};
use crate::token;

/// The largest request body read.
pub const BODY_LIMIT: usize = 4 * 1024;
/// Keys per rate-limit table.
pub const MAX_KEYS: usize = 100_000;
/// Subscribe requests waiting for the writer; more are answered 503.
const QUEUE: usize = 4096;
/// Requests stored per transaction, at most.
const BATCH: usize = 256;
/// Expired requests are deleted at most this often (when requests come).
const EXPIRY_SWEEP: Duration = Duration::from_secs(600);
/// `/healthz` waits this long for the daemon's loop to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// In-flight requests get this long when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read from the configuration; replaced on reload.
struct Site {
    config: Config,
    templates: Templates,
}

struct Shared {
    site: watch::Receiver<Arc<Site>>,
    store: Arc<Mutex<Store>>,
    requests: mpsc::Sender<Pending>,
    per_client: Limiter,
    per_address: Limiter,
    probe: HealthProbe,
}

/// A subscribe request on its way to the writer.
struct Pending {
    request: NewRequest,
    stored: oneshot::Sender<bool>,
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // Each store call is its own statement or transaction, so a panic
    // while holding the lock leaves the database consistent.
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running server.
pub struct Server {
    listen: SocketAddr,
    state: PathBuf,
    site: watch::Sender<Arc<Site>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `[http] listen` and serves; `None` without `[http]`.
    pub async fn start(
        config: &Config,
        templates: &Templates,
        probe: HealthProbe,
        mail_wake: Arc<Notify>,
    ) -> anyhow::Result<Option<Server>> {
        let Some(http) = &config.http else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("cannot listen on {} ([http] listen)", http.listen))?;
        let store = tokio::task::block_in_place(|| Store::open(&config.paths.state))?;
        let store = Arc::new(Mutex::new(store));
        let (site, site_receiver) = watch::channel(Arc::new(Site {
            config: config.clone(),
            templates: templates.clone(),
        }));
        let (requests, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_requests(Arc::clone(&store), receiver, mail_wake));
        let shared = Arc::new(Shared {
            site: site_receiver,
            store,
            requests,
            per_client: Limiter::new(10.0, Duration::from_secs(60)),
            per_address: Limiter::new(3.0, Duration::from_secs(20 * 60)),
            probe,
        });
        let app = router(shared);
        let (stop, mut stopped) = watch::channel(false);
        let listen = listener.local_addr().unwrap_or(http.listen);
        let task = tokio::spawn(async move {
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
            if let Err(error) = served {
                tracing::error!("the HTTP server stopped: {error}");
            }
            // The router is gone, so the queue's senders are too: the
            // writer stores what is left and ends.
            let _ = writer.await;
        });
        tracing::info!(%listen, "serving the subscription endpoints");
        Ok(Some(Server {
            listen: http.listen,
            state: config.paths.state.clone(),
            site,
            stop,
            task,
        }))
    }

    /// Stops accepting, lets requests in flight finish (within a
    /// deadline) and stores the subscribe requests already accepted.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            tracing::warn!("HTTP requests still in flight at shutdown were dropped");
            task.abort();
        }
    }
}

/// SIGHUP: applies `config` to `server` (see the module doc). A new
/// address that cannot be bound is logged and the old server kept.
pub async fn reload(
    server: Option<Server>,
    config: &Config,
    templates: &Templates,
    probe: &HealthProbe,
    mail_wake: Arc<Notify>,
) -> Option<Server> {
    let start = |wake| Server::start(config, templates, probe.clone(), wake);
    match (server, &config.http) {
        (None, None) => None,
        (Some(server), None) => {
            server.stop().await;
            None
        }
        (Some(server), Some(http))
            if server.listen == http.listen && server.state == config.paths.state =>
        {
            server.site.send_replace(Arc::new(Site {
                config: config.clone(),
                templates: templates.clone(),
            }));
            Some(server)
        }
        (Some(server), Some(http)) if server.listen == http.listen => {
            // The same address: the old one must let go first.
            server.stop().await;
            start(mail_wake).await.unwrap_or_else(|error| {
                tracing::error!("subscription endpoints stopped: {error:#}");
                None
            })
        }
        (server, Some(_)) => match start(mail_wake).await {
            Ok(started) => {
                if let Some(server) = server {
                    server.stop().await;
                }
                started
            }
            Err(error) => {
                tracing::error!("keeping the running subscription endpoints: {error:#}");
                server
            }
        },
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/subscribe", post(subscribe))
        .route("/confirm/{token}", get(confirm))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe_page).post(unsubscribe),
        )
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(shared)
}

/// Stores subscribe requests a batch per transaction, and wakes the
/// mailer when that queued confirmation emails.
async fn write_requests(
    store: Arc<Mutex<Store>>,
    mut receiver: mpsc::Receiver<Pending>,
    mail_wake: Arc<Notify>,
) {
    let mut swept: Option<Instant> = None;
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let sweep = swept.is_none_or(|at| at.elapsed() >= EXPIRY_SWEEP);
        if sweep {
            swept = Some(Instant::now());
        }
        let requests: Vec<NewRequest> = batch.iter().map(|p| p.request.clone()).collect();
        let store = Arc::clone(&store);
        let stored = tokio::task::spawn_blocking(move || {
            let mut store = lock(&store);
            let now = clock::now();
            if sweep {
                match store.expire_requests(now) {
                    Ok(0) => {}
                    Ok(expired) => tracing::info!(expired, "forgot unconfirmed requests"),
                    Err(error) => tracing::warn!("{:#}", anyhow::Error::from(error)),
                }
            }
            store.request_subscriptions(&requests, now)
        })
        .await;
        let ok = match stored {
            Ok(Ok(queued)) => {
                if queued > 0 {
                    mail_wake.notify_one();
                }
                true
            }
            Ok(Err(error)) => {
                tracing::error!(
                    "cannot store subscription requests: {:#}",
                    anyhow::Error::from(error)
                );
                false
            }
            Err(error) => {
                tracing::error!("cannot store subscription requests: {error}");
                false
            }
        };
        for pending in batch {
            let _ = pending.stored.send(ok);
        }
    }
}

// ---------------------------------------------------------------------------
// Handlers.

async fn subscribe(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let now = Instant::now();
    if let Err(wait) = shared.per_client.check(&client_key(peer, &headers), now) {
        return too_many(&site, wait);
    }
    let body = match read_body(&site, is_form(&headers), &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match subscribe_request(&site.config, &body) {
        Ok(request) => request,
        Err(problem) => return page(&site, StatusCode::BAD_REQUEST, Notice::BadRequest(problem)),
    };
    if let Err(wait) = shared
        .per_address
        .check(&request.address.to_lowercase(), now)
    {
        return too_many(&site, wait);
    }
    tracing::debug!(address = %request.address, "subscription asked for");
    let (stored, done) = oneshot::channel();
    if shared
        .requests
        .try_send(Pending { request, stored })
        .is_err()
    {
        return unavailable(&site);
    }
    match done.await {
        Ok(true) => page(&site, StatusCode::OK, Notice::Requested),
        _ => unavailable(&site),
    }
}

async fn confirm(
    State(shared): State<Arc<Shared>>,
    link: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let Some(link) = well_formed(link) else {
        return page(&site, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    match with_store(&shared, move |store| store.confirm(&link, clock::now())).await {
        Ok(Confirmed::Now | Confirmed::Already) => page(&site, StatusCode::OK, Notice::Confirmed),
        Ok(Confirmed::Expired | Confirmed::Unknown) => {
            page(&site, StatusCode::NOT_FOUND, Notice::NotFound)
        }
        Err(error) => database_error(&site, error),
    }
}

async fn unsubscribe_page(
    State(shared): State<Arc<Shared>>,
    link: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let Some(link) = well_formed(link) else {
        return page(&site, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    let found = with_store(&shared, move |store| store.unsubscribe_lookup(&link)).await;
    unsubscribed_page(&site, found, Notice::Unsubscribe)
}

async fn unsubscribe(
    State(shared): State<Arc<Shared>>,
    link: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let Some(link) = well_formed(link) else {
        return page(&site, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    let kind = one_click_kind(&headers);
    let body = match read_body(&site, kind.is_some(), &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let one_click = match &kind {
        None => false,
        Some(BodyKind::Form) => parse_form(&body).is_ok_and(|fields| fields == [one_click_field()]),
        Some(BodyKind::Multipart(boundary)) => is_multipart_one_click(&body, boundary),
    };
    if !one_click {
        return page(
            &site,
            StatusCode::BAD_REQUEST,
            Notice::BadRequest("one_click"),
        );
    }
    let removed = with_store(&shared, move |store| store.unsubscribe(&link)).await;
    unsubscribed_page(&site, removed, Notice::Unsubscribed)
}

/// `known` for a subscriber still there, "unsubscribed" for one gone, 404
/// for a link never issued.
fn unsubscribed_page(site: &Site, result: anyhow::Result<Unsubscribed>, known: Notice) -> Response {
    match result {
        Ok(Unsubscribed::Now) => page(site, StatusCode::OK, known),
        Ok(Unsubscribed::Already) => page(site, StatusCode::OK, Notice::Unsubscribed),
        Ok(Unsubscribed::Unknown) => page(site, StatusCode::NOT_FOUND, Notice::NotFound),
        Err(error) => database_error(site, error),
    }
}

/// Runs `call` on the state database on tokio's blocking pool: SQLite
/// may wait on the disk or on the mailer's transactions.
async fn with_store<T: Send + 'static>(
    shared: &Shared,
    call: impl FnOnce(&mut Store) -> Result<T, crate::store::Error> + Send + 'static,
) -> anyhow::Result<T> {
    let store = Arc::clone(&shared.store);
    Ok(tokio::task::spawn_blocking(move || call(&mut lock(&store))).await??)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let asked = tokio::time::timeout(HEALTH_TIMEOUT, async {
        let (reply, answer) = oneshot::channel();
        shared.probe.send(reply).await.ok()?;
        answer.await.ok()
    })
    .await;
    let (status, text) = match asked {
        Ok(Some(health)) if health.is_healthy() => (StatusCode::OK, "ok\n".to_owned()),
        Ok(Some(Health {
            problem: Some(problem),
            ..
        })) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problem}\n")),
        Ok(Some(health)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "watcher {}, mailer {}\n",
                alive(health.watcher),
                alive(health.mailer)
            ),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon's loop does not answer\n".to_owned(),
        ),
    };
    let mut response = (status, text).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn alive(alive: bool) -> &'static str {
    if alive { "alive" } else { "stopped" }
}

async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    page(&site, StatusCode::NOT_FOUND, Notice::NotFound)
}

// ---------------------------------------------------------------------------
// Responses.

/// A page from `notice.html`, with headers that keep it out of caches and
/// referrers (its URL may hold a token) and allow nothing but the site's
/// stylesheet.
fn page(site: &Site, status: StatusCode, shown: Notice) -> Response {
    let bytes = match notice(&site.templates, &site.config, shown) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!("{:#}", anyhow::Error::from(error));
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the page template failed; see the server log\n",
            )
                .into_response();
        }
    };
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let policy = format!(
        "default-src 'none'; style-src 'self' {}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        site.config.site.base_url
    );
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

fn too_many(site: &Site, wait: Duration) -> Response {
    let mut response = page(site, StatusCode::TOO_MANY_REQUESTS, Notice::TooMany);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

fn unavailable(site: &Site) -> Response {
    let mut response = page(site, StatusCode::SERVICE_UNAVAILABLE, Notice::Unavailable);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    response
}

fn database_error(site: &Site, error: anyhow::Error) -> Response {
    tracing::error!("{error:#}");
    unavailable(site)
}

// ---------------------------------------------------------------------------
// Requests.

/// The token in a link, if it has a token's shape.
fn well_formed(
    link: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Option<String> {
    let Path(link) = link.ok()?;
    token::is_well_formed(&link).then_some(link)
}

/// The body of a request whose media type is `accepted`, at most
/// [`BODY_LIMIT`] bytes, or the 415 or 413 page to answer.
async fn read_body(
    site: &Site,
    accepted: bool,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Response> {
    if !accepted {
        return Err(page(
            site,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Notice::BadRequest("content_type"),
        ));
    }
    let too_large = || {
        page(
            site,
            StatusCode::PAYLOAD_TOO_LARGE,
            Notice::BadRequest("too_large"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map(|bytes| bytes.to_vec())
        .map_err(|_| too_large())
}

/// The media type of a `Content-Type` value, lowercase, and its
/// parameters.
fn media_type(headers: &HeaderMap) -> Option<(String, Vec<(String, String)>)> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut pieces = value.split(';');
    let media = pieces.next()?.trim().to_ascii_lowercase();
    let parameters = pieces
        .filter_map(|piece| {
            let (name, value) = piece.split_once('=')?;
            Some((
                name.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    Some((media, parameters))
}

/// Whether the body is declared `application/x-www-form-urlencoded`,
/// UTF-8 if a charset is named.
fn is_form(headers: &HeaderMap) -> bool {
    let Some((media, parameters)) = media_type(headers) else {
        return false;
    };
    media == "application/x-www-form-urlencoded"
        && parameters
            .iter()
            .all(|(name, value)| name != "charset" || value.eq_ignore_ascii_case("utf-8"))
}

enum BodyKind {
    Form,
    /// multipart/form-data with this boundary.
    Multipart(String),
}

/// The two encodings RFC 8058 allows for the one-click body.
fn one_click_kind(headers: &HeaderMap) -> Option<BodyKind> {
    if is_form(headers) {
        return Some(BodyKind::Form);
    }
    let (media, parameters) = media_type(headers)?;
    if media != "multipart/form-data" {
        return None;
    }
    parameters
        .into_iter()
        .find(|(name, value)| name == "boundary" && !value.is_empty() && value.len() <= 70)
        .map(|(_, boundary)| BodyKind::Multipart(boundary))
}

fn one_click_field() -> (String, String) {
    ("List-Unsubscribe".to_owned(), "One-Click".to_owned())
}

/// Whether a multipart/form-data body is exactly one field,
/// `List-Unsubscribe` = `One-Click`.
fn is_multipart_one_click(body: &[u8], boundary: &str) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let delimiter = format!("--{boundary}");
    let mut parts = text.split(delimiter.as_str());
    // Before the first delimiter: the preamble, ignored.
    parts.next();
    let mut fields = Vec::new();
    let mut closed = false;
    for part in parts {
        if part.starts_with("--") {
            closed = true;
            break;
        }
        let Some(part) = part
            .strip_prefix("\r\n")
            .and_then(|part| part.strip_suffix("\r\n"))
        else {
            return false;
        };
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            return false;
        };
        let name = head.split("\r\n").find_map(|line| {
            let (field, value) = line.split_once(':')?;
            if !field.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            value.split(';').find_map(|parameter| {
                let (key, value) = parameter.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
        });
        fields.push((name.unwrap_or_default(), content.to_owned()));
    }
    closed && fields == [one_click_field()]
}

/// An `application/x-www-form-urlencoded` body as (name, value) pairs.
/// Strict: ASCII only, every pair has `=`, every `%` is followed by two
/// hex digits, and the decoded bytes are UTF-8.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    if !body.is_ascii() {
        return Err("encoding");
    }
    let mut fields = Vec::new();
    for pair in body.split(|byte| *byte == b'&') {
        if pair.is_empty() {
            continue;
        }
        let at = pair.iter().position(|byte| *byte == b'=').ok_or("form")?;
        fields.push((decode(&pair[..at])?, decode(&pair[at + 1..])?));
    }
    Ok(fields)
}

fn decode(text: &[u8]) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = text.get(at + 1..at + 3).ok_or("encoding")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "encoding")?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("encoding");
                }
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| "encoding")?);
                at += 2;
            }
            byte => bytes.push(byte),
        }
        at += 1;
    }
    String::from_utf8(bytes).map_err(|_| "encoding")
}

/// The subscribe form (`email` once, `components` any number of times,
/// nothing else) as a request in the site's language. No component ticked
/// means every component, as the form says.
fn subscribe_request(config: &Config, body: &[u8]) -> Result<NewRequest, &'static str> {
    let mut email = None;
    let mut components = Vec::new();
    for (name, value) in parse_form(body)? {
        match name.as_str() {
            "email" if email.is_none() => email = Some(value),
            "components" => {
                if config.component(&value).is_none() {
                    return Err("component_unknown");
                }
                components.push(value);
            }
            _ => return Err("form"),
        }
    }
    let address = valid_address(&email.ok_or("email_missing")?)?;
    components.sort();
    components.dedup();
    Ok(NewRequest {
        address,
        follows: if components.is_empty() {
            Follows::All
        } else {
            Follows::Components(components)
        },
        language: config.site.language,
    })
}

/// One plain address, `user@domain.tld`, with the domain lowercased; no
/// display name, comment, IP literal, space or control character.
fn valid_address(text: &str) -> Result<String, &'static str> {
    if text.is_empty() {
        return Err("email_missing");
    }
    if text.len() > 254 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("email_invalid");
    }
    let address: lettre::Address = text.parse().map_err(|_| "email_invalid")?;
    let domain = address.domain();
    if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
        return Err("email_invalid");
    }
    Ok(format!("{}@{}", address.user(), domain.to_lowercase()))
}

/// Whom the per-client limit counts: see the module doc.
fn client_key(peer: SocketAddr, headers: &HeaderMap) -> String {
    let peer = peer.ip().to_canonical();
    let forwarded = peer
        .is_loopback()
        .then(|| {
            let value = headers.get_all("x-forwarded-for").iter().next_back()?;
            value
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    match forwarded.unwrap_or(peer).to_canonical() {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => {
            let segments = address.segments();
            let prefix = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{prefix}/64")
        }
    }
}

// ---------------------------------------------------------------------------
// Rate limits.

/// Token buckets per key: `burst` requests at once, one more every
/// `every`.
struct Limiter {
    burst: f64,
    every: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    fn new(burst: f64, every: Duration) -> Limiter {
        Limiter {
            burst,
            every,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let earned =
            now.saturating_duration_since(bucket.at).as_secs_f64() / self.every.as_secs_f64();
        (bucket.tokens + earned).min(self.burst)
    }

    /// Takes one token for `key` at `now`, or says how long until one is
    /// there.
    fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= MAX_KEYS {
                return Err(self.every);
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(self.every.mul_f64(1.0 - tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            std::path::Path::new("herald.toml"),
            "[site]\ntitle = \"T\"\nbase_url = \"https://s.example/\"\ntimezone = \"UTC\"\nlanguage = \"en\"\n\n[[components]]\nid = \"mail\"\nname = \"Mail\"\n\n[[components]]\nid = \"web\"\nname = \"Web\"\n",
        )
        .unwrap()
    }

    fn check(body: &str) -> Result<(String, Follows), &'static str> {
        subscribe_request(&config(), body.as_bytes())
            .map(|request| (request.address, request.follows))
    }

    #[test]
    fn subscribe_forms_parse_strictly() {
        let both = Follows::Components(vec!["mail".into(), "web".into()]);
        assert_eq!(
            check("email=anna%40Example.ORG&components=web&components=mail&components=web"),
            Ok(("anna@example.org".into(), both))
        );
        assert_eq!(
            check("email=a%2Bb@example.org"),
            Ok(("a+b@example.org".into(), Follows::All))
        );
        for (body, problem) in [
            ("", "email_missing"),
            ("components=web", "email_missing"),
            ("email=", "email_missing"),
            ("email=anna@example.org&components=dns", "component_unknown"),
            ("email=anna@example.org&email=b@example.org", "form"),
            ("email=anna@example.org&lang=sv", "form"),
            ("email", "form"),
            (
                "email=anna%40example.org%0D%0ABcc:x@example.org",
                "email_invalid",
            ),
            ("email=anna+smith@example.org", "email_invalid"),
            ("email=Anna <anna@example.org>", "email_invalid"),
            ("email=anna@localhost", "email_invalid"),
            ("email=anna@[127.0.0.1]", "email_invalid"),
            ("email=anna%4", "encoding"),
            ("email=anna%zz", "encoding"),
            ("email=%ff@example.org", "encoding"),
            ("email=ann\u{e4}@example.org", "encoding"),
        ] {
            assert_eq!(check(body), Err(problem), "{body:?}");
        }
        let long = format!("email={}@example.org", "a".repeat(250));
        assert_eq!(check(&long), Err("email_invalid"));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_utf_8_form_bodies_are_forms() {
        for (value, form) in [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded; charset=UTF-8", true),
            (
                "application/x-www-form-urlencoded; charset=iso-8859-1",
                false,
            ),
            ("text/plain", false),
            ("multipart/form-data; boundary=x", false),
        ] {
            assert_eq!(
                is_form(&headers(&[("content-type", value)])),
                form,
                "{value}"
            );
        }
        assert!(!is_form(&headers(&[])));
    }

    #[test]
    fn one_click_bodies_in_both_encodings() {
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(is_multipart_one_click(multipart.as_bytes(), "XyZ"));
        assert!(!is_multipart_one_click(multipart.as_bytes(), "other"));
        let wrong = multipart.replace("One-Click", "Two-Clicks");
        assert!(!is_multipart_one_click(wrong.as_bytes(), "XyZ"));
        let unclosed = multipart.replace("--XyZ--\r\n", "");
        assert!(!is_multipart_one_click(unclosed.as_bytes(), "XyZ"));
        let kind = one_click_kind(&headers(&[(
            "content-type",
            "multipart/form-data; boundary=\"XyZ\"",
        )]));
        assert!(matches!(kind, Some(BodyKind::Multipart(boundary)) if boundary == "XyZ"));
        assert_eq!(
            parse_form(b"List-Unsubscribe=One-Click"),
            Ok(vec![one_click_field()])
        );
    }

    #[test]
    fn clients_are_peers_unless_a_local_proxy_says_otherwise() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]);
        assert_eq!(client_key(local, &forwarded), "198.51.100.4");
        assert_eq!(client_key(remote, &forwarded), "192.0.2.7");
        assert_eq!(client_key(local, &headers(&[])), "127.0.0.1");
        assert_eq!(
            client_key(local, &headers(&[("x-forwarded-for", "not an address")])),
            "127.0.0.1"
        );
        let v6: SocketAddr = "[2001:db8:1:2:3:4:5:6]:443".parse().unwrap();
        assert_eq!(client_key(v6, &headers(&[])), "2001:db8:1:2::/64");
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:443".parse().unwrap();
        assert_eq!(client_key(mapped, &headers(&[])), "192.0.2.7");
    }

    #[test]
    fn buckets_allow_a_burst_then_one_per_interval() {
        let limiter = Limiter::new(3.0, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", start), Ok(()));
        }
        assert_eq!(limiter.check("a", start), Err(Duration::from_secs(60)));
        assert_eq!(limiter.check("b", start), Ok(()), "keys are separate");
        let later = start + Duration::from_secs(30);
        assert_eq!(limiter.check("a", later), Err(Duration::from_secs(30)));
        assert_eq!(limiter.check("a", start + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn a_full_table_drops_idle_keys_and_refuses_new_ones_while_busy() {
        let limiter = Limiter::new(1.0, Duration::from_secs(60));
        let start = Instant::now();
        for key in 0..MAX_KEYS {
            assert_eq!(limiter.check(&key.to_string(), start), Ok(()));
        }
        assert_eq!(limiter.check("new", start), Err(Duration::from_secs(60)));
        // A minute on, every key is idle again and is dropped.
        assert_eq!(
            limiter.check("new", start + Duration::from_secs(60)),
            Ok(())
        );
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
