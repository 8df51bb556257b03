//! The endpoints behind the router in `http`: subscribe, confirm, the
//! unsubscribe page and one-click unsubscribe, `/healthz` and the 404
//! page; the pages they answer with; and the writer task that stores
//! subscribe requests. Does I/O: the state database (on tokio's blocking
//! pool) and the daemon's loop (for `/healthz`).
//!
//! **Privacy.** Whether an address is new, pending or subscribed, a
//! subscribe request gets the same answer, and the same thing happens
//! outwardly: a confirmation email to that address (at most one an hour
//! for a pending one) and nothing else until its link is followed. The
//! request is queued to one writer task that stores a batch per
//! transaction; the handler waits for the commit, so a database failure is
//! a 503 rather than a lie.
//!
//! **Order.** A subscribe request is counted against its client before
//! its body is read (429 when over); then a body not declared a UTF-8
//! form is a 415, one over [`BODY_LIMIT`] a 413, a form that [`forms`]
//! refuses a 400, an address over its own limit a 429, and a full queue
//! or a failed commit a 503.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::forms::{self, BodyKind};
use super::limits::client_key;
use super::{BODY_LIMIT, Shared, Site};
use crate::clock;
use crate::health::Health;
use crate::model::{Channel, Follows, Language};
use crate::render::notice::{Notice, notice};
use crate::store::{Confirmed, NewRequest, Store, Unsubscribed};
use crate::token;

/// Requests stored per transaction, at most.
const BATCH: usize = 256;
/// Requests stored between two checkpoints of the write-ahead log (each
/// request writes a few pages; SQLite's own rhythm is 1,000 pages).
const CHECKPOINT_AFTER: usize = 256;
/// Expired requests are deleted at most this often (when requests come).
const EXPIRY_SWEEP: Duration = Duration::from_secs(600);
/// `/healthz` waits this long for the daemon's loop to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// The writer.

/// A subscribe request on its way to the writer.
pub(super) struct Pending {
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

/// Stores subscribe requests a batch per transaction, and wakes the
/// mailer when that queued confirmation emails. `store` does not
/// checkpoint (a commit that did would keep its requests waiting for the
/// disk): every [`CHECKPOINT_AFTER`] requests, `checkpointer`, another
/// connection, does it beside the next commits.
pub(super) async fn write_requests(
    store: Arc<Mutex<Store>>,
    checkpointer: Arc<Mutex<Store>>,
    mut receiver: mpsc::Receiver<Pending>,
    mail_wake: Arc<Notify>,
) {
    let mut swept: Option<Instant> = None;
    let mut since_checkpoint = 0;
    let mut checkpointing: Option<tokio::task::JoinHandle<()>> = None;
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
        let stored = batch.len();
        for pending in batch {
            let _ = pending.stored.send(ok);
        }
        since_checkpoint += stored;
        if since_checkpoint >= CHECKPOINT_AFTER
            && checkpointing.as_ref().is_none_or(|task| task.is_finished())
        {
            since_checkpoint = 0;
            let checkpointer = Arc::clone(&checkpointer);
            checkpointing = Some(tokio::task::spawn_blocking(move || {
                match lock(&checkpointer).checkpoint() {
                    Ok((pages, copied)) => {
                        tracing::debug!(pages, copied, "checkpointed the write-ahead log");
                    }
                    Err(error) => tracing::warn!("{:#}", anyhow::Error::from(error)),
                }
            }));
        }
    }
    if let Some(task) = checkpointing {
        let _ = task.await;
    }
}

// ---------------------------------------------------------------------------
// Handlers.

pub(super) async fn subscribe(
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
        .and_then(|fields| {
            forms::subscription(
                fields,
                |id| site.config.component(id).is_some(),
                &site.config.site.languages,
            )
        })
        .and_then(|form| match &form.follows {
            // An incident to follow is published and not closed.
            Follows::Incident(id) if !shared.followable.borrow().contains(id) => {
                Err("incident_unknown")
            }
            _ => Ok(form),
        });
    // A webhook must reach an address webhooks may reach, checked now
    // (and again at every connection).
    let form = match form {
        Ok(form) if form.channel != Channel::Email => {
            match crate::webhook::admit(&site.config.webhooks, &form.address).await {
                Ok(_) => Ok(form),
                Err(refusal) => {
                    tracing::info!(url = %form.address, "webhook refused: {refusal}");
                    Err("webhook_invalid")
                }
            }
        }
        other => other,
    };
    let request = match form {
        Ok(form) => NewRequest {
            channel: form.channel,
            address: form.address,
            follows: form.follows,
            language: form.language.unwrap_or(site.config.site.language()),
            only_changes: form.only_changes,
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
    let language = request.language;
    let webhook = request.channel != Channel::Email;
    let (stored, done) = oneshot::channel();
    if shared
        .requests
        .try_send(Pending { request, stored })
        .is_err()
    {
        return unavailable(&site);
    }
    match done.await {
        Ok(true) => page_in(
            &site,
            StatusCode::OK,
            language,
            if webhook {
                Notice::Posted
            } else {
                Notice::Requested
            },
        ),
        _ => unavailable(&site),
    }
}

pub(super) async fn confirm(
    State(shared): State<Arc<Shared>>,
    link: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    let Some(link) = well_formed(link) else {
        return page(&site, StatusCode::NOT_FOUND, Notice::NotFound);
    };
    let open = Arc::clone(&shared.followable.borrow());
    let confirmed = with_store(&shared, move |store| {
        store.confirm_following(&link, clock::now(), |id| open.contains(id))
    });
    match confirmed.await {
        Ok(Confirmed::Now | Confirmed::Already) => page(&site, StatusCode::OK, Notice::Confirmed),
        Ok(Confirmed::Expired | Confirmed::Unknown) => {
            page(&site, StatusCode::NOT_FOUND, Notice::NotFound)
        }
        Err(error) => database_error(&site, error),
    }
}

pub(super) async fn unsubscribe_page(
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

pub(super) async fn unsubscribe(
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

pub(super) async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
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

pub(super) async fn not_found(State(shared): State<Arc<Shared>>) -> Response {
    let site = Arc::clone(&shared.site.borrow());
    page(&site, StatusCode::NOT_FOUND, Notice::NotFound)
}

// ---------------------------------------------------------------------------
// Responses.

/// A page from `notice.html`, with headers that keep it out of caches and
/// referrers (its URL may hold a token) and allow nothing but the site's
/// stylesheet.
fn page(site: &Site, status: StatusCode, shown: Notice) -> Response {
    page_in(site, status, site.config.site.language(), shown)
}

/// [`page`] in `language`, one of the site's.
fn page_in(site: &Site, status: StatusCode, language: Language, shown: Notice) -> Response {
    let rendered = match site.answer(language, shown) {
        Some(page) => Ok(page),
        None => notice(&site.templates, &site.config, language, shown).map(Bytes::from),
    };
    let bytes = match rendered {
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
    use crate::http::fixtures::headers;

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
