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
//! | `POST /hooks/alertmanager` | with `[alertmanager]`: Alertmanager's webhook, bearer token; draft incidents (`alertmanager`) |
//!
//! Pages come from `notice.html` in the site's language.
//!
//! **Layout.** Here: [`Server`] (start, stop), [`reload`], the router and
//! the state the handlers share. `handlers`: the endpoints, their pages,
//! and the writer task that stores subscribe requests a batch per
//! transaction; its doc holds the privacy rules (the same answer whatever
//! the address's state, given after the commit). [`forms`]: request
//! bodies, read strictly. [`limits`]: the token buckets and whom they
//! count. `forms` and `limits` are pure.
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
//! reach a header). Connections: at most [`MAX_CONNECTIONS`] at once, one
//! request each, headers within [`HEADER_TIMEOUT`], all within
//! [`CONNECTION_TIMEOUT`], so slow or idle clients hold nothing for long.
//!
//! **Reload.** On SIGHUP the running server takes the new configuration
//! and templates; it is restarted only when `listen` or the state
//! directory changed, and removed when `[http]` is.

mod alertmanager;
#[cfg(test)]
mod fixtures;
pub mod forms;
mod handlers;
pub mod limits;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Config;
use crate::health::HealthProbe;
use crate::model::{IncidentId, Language};
use crate::render::Templates;
use crate::render::notice::{Notice, notice};
use crate::store::Store;
use alertmanager::HookToken;
use handlers::{
    Pending, confirm, healthz, not_found, subscribe, unsubscribe, unsubscribe_page, write_requests,
};
use limits::Limiter;

pub use limits::MAX_KEYS;

/// The largest request body read.
pub const BODY_LIMIT: usize = 4 * 1024;
/// Subscribe requests waiting for the writer; more are answered 503.
const QUEUE: usize = 4096;
/// In-flight requests get this long when the server stops.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// A client must send a request's headers within this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection lasts at most this long, body and answer included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; more wait in the kernel's backlog. Well
/// below the unit's `LimitNOFILE`, so that idle clients cannot take the
/// descriptors the daemon needs for incident files and the database.
pub const MAX_CONNECTIONS: usize = 256;

/// What the handlers read from the configuration; replaced on reload.
struct Site {
    config: Config,
    templates: Templates,
    /// `[alertmanager] token_file`, read.
    hook_token: HookToken,
    /// The pages that answer an accepted subscribe request, rendered once
    /// per language: every such request gets the same page.
    answers: Vec<(Language, Notice, Bytes)>,
}

impl Site {
    fn new(config: &Config, templates: &Templates) -> Site {
        let mut answers = Vec::new();
        for language in config.site.languages.all() {
            for shown in [Notice::Requested, Notice::Posted] {
                // A template that fails is rendered (and its error logged)
                // per request instead.
                if let Ok(page) = notice(templates, config, *language, shown) {
                    answers.push((*language, shown, Bytes::from(page)));
                }
            }
        }
        Site {
            config: config.clone(),
            templates: templates.clone(),
            hook_token: HookToken::read(config),
            answers,
        }
    }

    /// The page of `shown` in `language` if it was rendered once for all.
    fn answer(&self, language: Language, shown: Notice) -> Option<Bytes> {
        self.answers
            .iter()
            .find(|(l, n, _)| *l == language && *n == shown)
            .map(|(_, _, page)| page.clone())
    }
}

/// The incidents that may be followed one by one (published and not
/// closed), as the daemon last published them.
pub type Followable = watch::Receiver<Arc<HashSet<IncidentId>>>;

/// What every handler reads.
struct Shared {
    site: watch::Receiver<Arc<Site>>,
    followable: Followable,
    store: Arc<Mutex<Store>>,
    requests: mpsc::Sender<Pending>,
    per_client: Limiter,
    per_address: Limiter,
    probe: HealthProbe,
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
        followable: Followable,
    ) -> anyhow::Result<Option<Server>> {
        let Some(http) = &config.http else {
            return Ok(None);
        };
        let listener = TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("cannot listen on {} ([http] listen)", http.listen))?;
        let (store, checkpointer) = tokio::task::block_in_place(|| {
            let store = Store::open(&config.paths.state)?;
            store.leave_checkpoints()?;
            anyhow::Ok((store, Store::open(&config.paths.state)?))
        })?;
        let store = Arc::new(Mutex::new(store));
        let (site, site_receiver) = watch::channel(Arc::new(Site::new(config, templates)));
        let (requests, receiver) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_requests(
            Arc::clone(&store),
            Arc::new(Mutex::new(checkpointer)),
            receiver,
            mail_wake,
        ));
        let shared = Arc::new(Shared {
            site: site_receiver,
            followable,
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
            serve(listener, app, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
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
    followable: Followable,
) -> Option<Server> {
    let start = |wake| Server::start(config, templates, probe.clone(), wake, followable.clone());
    match (server, &config.http) {
        (None, None) => None,
        (Some(server), None) => {
            server.stop().await;
            None
        }
        (Some(server), Some(http))
            if server.listen == http.listen && server.state == config.paths.state =>
        {
            server
                .site
                .send_replace(Arc::new(Site::new(config, templates)));
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

/// Accepts connections until `stop`, at most [`MAX_CONNECTIONS`] at once,
/// each one request (no keep-alive) whose headers must arrive within
/// [`HEADER_TIMEOUT`] and which ends within [`CONNECTION_TIMEOUT`]: a slow
/// or idle client holds a connection for seconds, not forever. At `stop`,
/// connections in flight finish (the caller bounds the wait).
async fn serve(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false);
    tokio::pin!(stop);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit,
            () = &mut stop => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: wait, do not spin.
                    tracing::warn!("cannot accept an HTTP connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(app.clone().layer(Extension(ConnectInfo(peer))));
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%peer, "HTTP connection: {error}"),
                Err(_) => tracing::debug!(%peer, "HTTP connection closed at its time limit"),
            }
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
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
        .route("/hooks/alertmanager", post(alertmanager::hook))
        .fallback(not_found)
        .with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accepted_request_is_answered_with_its_page_rendered_once() {
        let text = "[site]\ntitle = \"T\"\nbase_url = \"https://status.example.com/\"\n\
                    timezone = \"UTC\"\nlanguages = [\"sv\", \"en\"]\n";
        let config = crate::config::parse(std::path::Path::new("herald.toml"), text).unwrap();
        let templates = Templates::builtin();
        let site = Site::new(&config, &templates);
        for language in [Language::Sv, Language::En] {
            for shown in [Notice::Requested, Notice::Posted] {
                let page = notice(&templates, &config, language, shown).unwrap();
                assert_eq!(site.answer(language, shown).as_deref(), Some(&page[..]));
            }
        }
        // Other pages are rendered when asked for.
        assert_eq!(site.answer(Language::Sv, Notice::Confirmed), None);
    }
}
