//! `[publish]` to object storage: `herald run` syncing its outputs with
//! rclone (Debian's package) to an S3-compatible server on 127.0.0.1
//! (moto in server mode, from PyPI), the recipe of `docs/publish-s3.md`.
//! What the store holds is read back through the S3 API with boto3, not
//! with rclone: after an edit it serves the new feed, with the cache and
//! type headers the recipe sets; a deleted incident's pages are deleted
//! there; and while the server is down the upload fails, is logged, and
//! is retried within a minute without any change, as SPEC §6 says.
//!
//! `scripts/test` installs rclone (apt) and `moto[server]` (pip) when
//! missing.

#[path = "support/feed_reader.rs"]
mod feed_reader;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use site::{Site, incident, recent};

const BUCKET: &str = "status-pages";
const KEY_ID: &str = "herald-test";
const SECRET: &str = "not-a-secret";

/// moto's server (`python3 -m moto.server`) on 127.0.0.1: an S3 API that
/// keeps objects in memory.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on `port` (any free one when `None`) and waits until it
    /// answers.
    fn start(port: Option<u16>) -> Moto {
        let port = port.unwrap_or_else(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        });
        // The same Python as the boto3 reader below; its log (a request
        // per line) goes to a file, read only if it fails to start.
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut moto = Moto { child, port };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = moto.child.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < wait::PATIENCE,
                "moto's server did not start ({exited:?}); scripts/test installs it with `pip install 'moto[server]'`:\n{}",
                fs::read_to_string(log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        wait::until(
            "moto to stop listening",
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            String::new,
        );
        port
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the bucket through the S3 API with boto3: `list` prints one JSON
/// object (key → its Content-Type and Cache-Control), `get KEY` the
/// object's bytes. No bucket yet lists as `{}`.
const READER: &str = r#"
import json, sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
bucket, action = sys.argv[4], sys.argv[5]
if action == "list":
    names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    listing = {}
    if bucket in names:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                head = s3.head_object(Bucket=bucket, Key=item["Key"])
                listing[item["Key"]] = [head.get("ContentType"), head.get("CacheControl")]
    print(json.dumps(listing))
else:
    sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=sys.argv[6])["Body"].read())
"#;

fn boto3(endpoint: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new("python3")
        .args(["-c", READER, endpoint, KEY_ID, SECRET, BUCKET])
        .args(args)
        .env("AWS_CA_BUNDLE", "")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "boto3 {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Every object in the bucket: key → (Content-Type, Cache-Control).
fn listing(endpoint: &str) -> BTreeMap<String, (Option<String>, Option<String>)> {
    serde_json::from_slice(&boto3(endpoint, &["list"])).unwrap()
}

/// The Atom feed as the store serves it, if it holds one, read by
/// feed-rs: the text of every entry.
fn stored_feed(endpoint: &str) -> Option<String> {
    if !listing(endpoint).contains_key("feed.atom") {
        return None;
    }
    let feed = feed_reader::read(&boto3(endpoint, &["get", "feed.atom"]));
    Some(
        feed.entries
            .iter()
            .map(|entry| {
                let title = entry.title.as_ref().map(|t| t.content.clone());
                let content = entry.content.as_ref().and_then(|c| c.body.clone());
                let summary = entry.summary.as_ref().map(|s| s.content.clone());
                format!("{title:?} {content:?} {summary:?}\n")
            })
            .collect(),
    )
}

/// The rclone configuration of the recipe: one S3 remote, `store`.
fn rclone_config(path: &Path, endpoint: &str) {
    fs::write(
        path,
        format!(
            "[store]\ntype = s3\nprovider = Other\nendpoint = {endpoint}\nregion = us-east-1\naccess_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
}

/// A site with `[publish]` running the recipe's rclone command line.
fn publishing_site(endpoint: &str) -> Site {
    let mut site = Site::new("");
    let rclone = site.path("rclone.conf");
    rclone_config(&rclone, endpoint);
    let config = site_toml::site("Test status")
        + &site_toml::components(&[("mail", "Mail"), ("web", "Web hosting")])
        + &format!(
            r#"
[publish]
command = ["rclone", "--config", {rclone:?}, "sync", "--checksum", "--fast-list",
           "--retries", "1", "--low-level-retries", "2",
           "--header-upload", "Cache-Control: public, max-age=60",
           "{{output}}/", "store:{BUCKET}"]
timeout = "30s"
"#,
            rclone = rclone.display().to_string()
        );
    fs::write(site.path("herald.toml"), config).unwrap();
    // This machine's CA bundle for AWS tools is not what rclone's S3
    // client can load; a plain http endpoint needs none.
    site.set_env("AWS_CA_BUNDLE", "");
    site
}

/// Polls `condition` for up to `patience`, failing with herald's log.
fn wait_long(site: &Site, what: &str, patience: Duration, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < patience,
            "timed out waiting for {what}\nherald's log:\n{}",
            site.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The updates of `storage.md`, in order; the file holds a prefix of them.
const STORAGE: [(&str, &str, i64); 3] = [
    ("investigating", "Disks fail.", 30),
    ("identified", "Marker one: a controller.", 10),
    ("monitoring", "Marker two: replaced.", 1),
];

/// Writes `storage.md` with the first `count` updates of [`STORAGE`], at
/// the times in `times` (fixed once per test, so that an edit only adds).
fn write_storage(site: &Site, times: &[String], count: usize) {
    let headings: Vec<(String, &str)> = STORAGE[..count]
        .iter()
        .zip(times)
        .map(|((status, text, _), time)| (format!("{time} {status}"), *text))
        .collect();
    let updates: Vec<(&str, &str)> = headings.iter().map(|(h, t)| (h.as_str(), *t)).collect();
    site.write(
        "storage.md",
        &incident("Storage failure", "\"mail\"", &updates),
    );
}

fn storage_times() -> Vec<String> {
    STORAGE.iter().map(|(_, _, ago)| recent(*ago)).collect()
}

#[test]
fn rclone_syncs_edits_and_deletions_to_s3_and_a_failed_upload_is_retried() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    let mut site = publishing_site(&endpoint);
    let times = storage_times();
    write_storage(&site, &times, 1);
    site.write(
        "portal.md",
        &incident(
            "Portal slow",
            "\"web\"",
            &[(
                &format!("{} investigating", recent(20)),
                "Pages load slowly.",
            )],
        ),
    );
    site.start();

    // The first build is published in full, feeds and pages with the
    // recipe's cache header and their own types.
    site.wait_for("the first upload", || {
        stored_feed(&endpoint).is_some_and(|feed| feed.contains("Portal slow"))
    });
    let objects = listing(&endpoint);
    let cache = Some("public, max-age=60".to_owned());
    for (key, kind) in [
        ("feed.atom", "application/atom+xml"),
        ("feed.rss", "application/rss+xml"),
        ("index.html", "text/html; charset=utf-8"),
        ("incidents/portal.html", "text/html; charset=utf-8"),
        ("incidents/storage.html", "text/html; charset=utf-8"),
        ("components/mail.atom", "application/atom+xml"),
        ("api/v2/summary.json", "application/json"),
        ("maintenance.ics", "text/calendar; charset=utf-8"),
        ("badge.svg", "image/svg+xml"),
    ] {
        assert_eq!(
            objects.get(key),
            Some(&(Some(kind.to_owned()), cache.clone())),
            "{key} in {objects:#?}"
        );
    }
    let local: usize = walk(&site.path("public"));
    assert_eq!(objects.len(), local, "{objects:#?}");

    // An edit: the store serves the new feed.
    write_storage(&site, &times, 2);
    site.wait_for("the edit in the stored feed", || {
        stored_feed(&endpoint).is_some_and(|feed| feed.contains("Marker one"))
    });

    // A deleted incident: its page and feed are deleted from the store.
    fs::remove_file(site.path("incidents/portal.md")).unwrap();
    site.wait_for("the deleted incident's pages to go", || {
        let objects = listing(&endpoint);
        !objects.contains_key("incidents/portal.html")
            && !objects.contains_key("incidents/portal.atom")
    });
    let objects = listing(&endpoint);
    assert!(
        objects.contains_key("incidents/storage.html")
            && objects.contains_key("incidents/storage.atom"),
        "{objects:#?}"
    );
    assert_eq!(objects.len(), walk(&site.path("public")), "{objects:#?}");
    let feed = stored_feed(&endpoint).unwrap();
    assert!(!feed.contains("Portal slow"), "{feed}");

    // The server goes away; an edit's upload fails and is logged with the
    // command and rclone's reason.
    let port = moto.stop();
    let failures = || site.log().matches("publish command `rclone").count();
    write_storage(&site, &times, 3);
    site.wait_for("the failed upload in the log", || failures() > 0);
    let log = site.log();
    let failure = log
        .lines()
        .find(|line| line.contains("publish command `rclone"))
        .unwrap();
    assert!(
        failure.contains("failed: exited with status 1")
            && failure.contains("connection refused")
            && failure.contains("retrying after the next change or in 1m"),
        "{log}"
    );

    // The server is back, with an empty store (moto keeps nothing): with
    // no further change herald retries within a minute and the store
    // gets everything, the new feed included.
    let moto = Moto::start(Some(port));
    let finished_before = site.log().matches("publish command finished").count();
    wait_long(
        &site,
        "the retry within a minute",
        Duration::from_secs(90),
        || stored_feed(&moto.endpoint()).is_some_and(|feed| feed.contains("Marker two")),
    );
    site.wait_for("the retry to finish", || {
        site.log().matches("publish command finished").count() > finished_before
    });
    let objects = listing(&moto.endpoint());
    assert_eq!(objects.len(), walk(&site.path("public")), "{objects:#?}");
    assert_eq!(
        failures(),
        1,
        "one failure, then the retry succeeded:\n{}",
        site.log()
    );
    site.stop();
}

/// The number of files under `dir`, in every subdirectory.
fn walk(dir: &Path) -> usize {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn herald_build_publishes_with_rclone_and_exits_3_when_the_upload_fails() {
    let moto = Moto::start(None);
    let endpoint = moto.endpoint();
    let site = publishing_site(&endpoint);
    let storage = |text: &str| {
        site.write(
            "storage.md",
            &incident(
                "Storage failure",
                "\"mail\"",
                &[(&format!("{} investigating", recent(5)), text)],
            ),
        );
    };
    storage("Disks fail.");
    let output = site.herald(&["build"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let feed = stored_feed(&endpoint).unwrap();
    assert!(feed.contains("Disks fail."), "{feed}");
    assert_eq!(listing(&endpoint).len(), walk(&site.path("public")));

    // The server is gone: the build still writes the pages, and says
    // that publishing them failed, and why.
    moto.stop();
    storage("Marker: a controller.");
    let output = site.herald(&["build"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("publish command `rclone --config")
            && stderr.contains("connection refused"),
        "{stderr}"
    );
    let local = fs::read_to_string(site.path("public/feed.atom")).unwrap();
    assert!(local.contains("Marker: a controller."), "{local}");
}
