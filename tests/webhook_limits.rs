//! The webhook client's limits against real sockets on 127.0.0.1: a
//! receiver that never answers is retried after `[webhooks] timeout`; a
//! connection that never completes gives up after `connect_timeout`; a
//! reply longer than the cap is cut and judged by its status; a fan-out
//! to more hosts than the idle cap keeps at most that many sockets open.
//! Timeouts are asserted to happen, never how fast anything is.

#[path = "support/hooks.rs"]
mod hooks;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald::endpoint::{Endpoint, Policy};
use herald::mailer::{SendError, classify};
use herald::model::Format;
use herald::webhook::{Client, Failure, Limits, Reply, Request, Trust};
use hooks::{add_hook, config, write_steady_storage};
use receiver::{Answer, Receiver};
use site::Site;

/// `config()` with these webhook timeouts (its `[webhooks]` table is the
/// last one).
fn config_with(connect_timeout: &str, timeout: &str) -> String {
    format!(
        "{}connect_timeout = \"{connect_timeout}\"\ntimeout = \"{timeout}\"\n",
        config()
    )
}

/// The `herald outbox` line for `url`, once it has a reply.
fn outbox_line(site: &Site, url: &str) -> String {
    let line = || {
        site.ok(&["outbox"])
            .lines()
            .find(|line| line.contains(url) && line.starts_with("retrying"))
            .map(str::to_owned)
    };
    site.wait_for("an attempt's reply in the outbox", || line().is_some());
    line().unwrap_or_default()
}

#[test]
fn a_receiver_that_never_answers_is_retried_after_the_timeout() {
    // Accepts every connection and holds it, reading nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted: Arc<Mutex<Vec<(Instant, TcpStream)>>> = Arc::default();
    let held = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            held.lock().unwrap().push((Instant::now(), stream));
        }
    });
    let mut site = Site::new(&config_with("1s", "2s"));
    let url = format!("http://127.0.0.1:{port}/silent");
    add_hook(&site, &url, "json", "mail");
    site.start();
    write_steady_storage(&site);
    site.wait_for("a second attempt", || accepted.lock().unwrap().len() >= 2);
    let line = outbox_line(&site, &url);
    assert!(line.ends_with("timed out: no reply within 2s"), "{line}");
    // The retry came only after the first attempt timed out.
    let times: Vec<Instant> = accepted.lock().unwrap().iter().map(|(at, _)| *at).collect();
    assert!(
        times[1] - times[0] >= Duration::from_secs(2),
        "retried after {:?}",
        times[1] - times[0]
    );
    site.stop();
}

/// A listening socket whose accept queue is full: nothing accepts from
/// it, and Linux drops further SYNs, so a connect to it neither succeeds
/// nor fails until the client gives up. That is the connect timeout on
/// loopback, with nothing off the machine (a non-routable address would
/// need a route and an allowed range outside 127.0.0.0/8). Returns the
/// listener and the connections that fill its queue (both kept open).
fn full_backlog() -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Listening again sets the backlog: one connection waits, no more.
    // SAFETY: a valid socket descriptor, owned by `listener`.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(500)) {
            Ok(stream) => fillers.push(stream),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                return (listener, fillers);
            }
            Err(error) => panic!("connecting to the backlog: {error}"),
        }
    }
    panic!("the accept queue of {address} never filled");
}

#[test]
fn a_connect_that_never_completes_gives_up_after_the_connect_timeout() {
    let (listener, _fillers) = full_backlog();
    let address = listener.local_addr().unwrap();
    let mut site = Site::new(&config_with("1s", "20s"));
    let url = format!("http://{address}/queue");
    add_hook(&site, &url, "json", "mail");
    site.start();
    write_steady_storage(&site);
    let line = outbox_line(&site, &url);
    assert!(
        line.ends_with(&format!("connecting to {address} timed out")),
        "{line}"
    );
    site.stop();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(max_idle: usize, reply_cap: usize) -> Client {
    Client::with_limits(
        Policy {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        },
        Limits {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_idle,
            reply_cap,
        },
    )
}

async fn post(client: &Client, url: &str) -> Result<Reply, Failure> {
    let endpoint = Endpoint::parse(url).unwrap();
    client
        .post(&Request {
            method: hyper::Method::POST,
            endpoint: &endpoint,
            body: "{}".into(),
            headers: Vec::new(),
        })
        .await
}

#[test]
fn a_reply_longer_than_the_cap_is_cut_and_judged_by_its_status() {
    let receiver = Receiver::start();
    let long = "x".repeat(100_000);
    receiver.script(
        "/long",
        vec![Answer::status(200, &long), Answer::status(503, &long)],
    );
    let client = client(8, 1000);
    runtime().block_on(async {
        let url = receiver.url("/long");
        let sent = post(&client, &url).await.unwrap();
        assert_eq!((sent.status, sent.body.len()), (200, 1000));
        assert!(classify(&sent, Format::Json).is_ok());
        let busy = post(&client, &url).await.unwrap();
        assert_eq!((busy.status, busy.body.len()), (503, 1000));
        match classify(&busy, Format::Json) {
            Err(SendError::Retry(reply)) => {
                assert_eq!(reply, format!("HTTP 503: {}", "x".repeat(300)));
            }
            other => panic!("{other:?}"),
        }
    });
    // A reply not read to its end leaves its connection unusable: each
    // post came on a connection of its own.
    assert_eq!(receiver.count(), 2);
}

#[test]
fn a_fan_out_to_more_hosts_than_the_idle_cap_keeps_that_many_sockets_open() {
    const CAP: usize = 3;
    let receivers: Vec<Receiver> = (0..8).map(|_| Receiver::start()).collect();
    let client = client(CAP, 1000);
    let open = || -> usize { receivers.iter().map(Receiver::open_connections).sum() };
    runtime().block_on(async {
        for receiver in &receivers {
            let reply = post(&client, &receiver.url("/hook")).await.unwrap();
            assert_eq!(reply.status, 200);
        }
        // The connections not kept close once their tasks see it.
        let settled = || async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while open() > CAP && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Give a connection that should not close the time to do so.
            tokio::time::sleep(Duration::from_millis(200)).await;
            open()
        };
        assert_eq!(settled().await, CAP);
        // A second round reuses the kept ones and keeps no more.
        for receiver in &receivers {
            post(&client, &receiver.url("/hook")).await.unwrap();
        }
        assert_eq!(settled().await, CAP);
    });
}

#[test]
fn the_operators_host_is_trusted_but_its_connections_serve_no_subscriber() {
    let receiver = Receiver::start();
    receiver.script(
        "/moved",
        vec![Answer::status(302, "").with("location", &receiver.url("/elsewhere"))],
    );
    // No range allowed: a plain-http loopback URL is refused to
    // subscribers.
    let client = Client::with_limits(
        Policy::default(),
        Limits {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_idle: 8,
            reply_cap: 1000,
        },
    );
    runtime().block_on(async {
        let url = receiver.url("/hook");
        let endpoint = Endpoint::parse(&url).unwrap();
        let request = Request {
            method: hyper::Method::PUT,
            endpoint: &endpoint,
            body: "{}".into(),
            headers: vec![("authorization", "Bearer t".to_owned())],
        };
        let reply = client.send(&request, Trust::Operator).await.unwrap();
        assert_eq!(reply.status, 200);
        // The operator's connection is idle now; a subscriber's request
        // to the same host neither reuses it nor opens one.
        match client.post(&request).await {
            Err(Failure::Refused(refusal)) => {
                let refusal = refusal.to_string();
                assert!(refusal.contains("webhooks must use https"), "{refusal}");
            }
            other => panic!("{other:?}"),
        }
        // Trusted, yet a redirect is not followed.
        let moved = Endpoint::parse(&receiver.url("/moved")).unwrap();
        let reply = client
            .send(
                &Request {
                    endpoint: &moved,
                    ..request
                },
                Trust::Operator,
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 302);
    });
    let received = receiver.received();
    let paths: Vec<(&str, &str)> = received
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(paths, [("PUT", "/hook"), ("PUT", "/moved")]);
    assert_eq!(received[0].header("authorization"), "Bearer t");
}
