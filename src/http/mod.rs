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
//! table holds at most [`MAX_KEYS`] keys, so memory stays bounded under a
//! flood; the [`limits`] module says how, and who counts as the client
//! behind a reverse proxy. Bodies are at most [`BODY_LIMIT`] bytes and
//! are read strictly by [`forms`]: `application/x-www-form-urlencoded` in
//! UTF-8 with exactly the expected fields, and the address one plain
//! `user@domain.tld` with no space or control character (so nothing can
//! reach a header).
//!
//! **Reload.** On SIGHUP the running server takes the new configuration
//! and templates; it is restarted only when `listen` or the state
//! directory changed, and removed when `[http]` is.

pub mod forms;
pub mod limits;

use std::net::SocketAddr;
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
use crate::render::Templates;
use crate::render::html::{Notice, notice};
use crate::store::{Confirmed, NewRequest, Store, Unsubscribed};
use crate::token;
use forms::BodyKind;
use limits::{Limiter, client_key};

pub use limits::MAX_KEYS;

/// The largest request body read.
pub const BODY_LIMIT: usize = 4 * 1024;
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
    let form = forms::parse_form(&body)
        .and_then(|fields| forms::subscription(fields, |id| site.config.component(id).is_some()));
    let request = match form {
        Ok(form) => NewRequest {
            address: form.address,
            follows: form.follows,
            language: site.config.site.language,
        },
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
    // The two encodings RFC 8058 allows for the one-click body.
    let kind = declared_kind(&headers);
    let body = match read_body(&site, kind.is_some(), &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let one_click = kind.is_some_and(|kind| forms::is_one_click(&kind, &body));
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

/// What the `Content-Type` header declares, if it is one of the two
/// encodings [`forms`] reads.
fn declared_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    forms::body_kind(value)
}

/// Whether the body is declared `application/x-www-form-urlencoded`,
/// UTF-8 if a charset is named: the one encoding `/subscribe` reads.
fn is_form(headers: &HeaderMap) -> bool {
    matches!(declared_kind(headers), Some(BodyKind::Form))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
