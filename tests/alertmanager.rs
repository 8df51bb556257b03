//! Alerts in, end to end: Debian's `prometheus-alertmanager` started on
//! loopback with a webhook receiver pointing at `herald run`'s `[http]`
//! listener, an alert posted to Alertmanager's API, mail to the test SMTP
//! server (tests/support/smtp.rs). One draft file, nothing published or
//! mailed, repeats change nothing, a group resolved before publishing
//! loses its draft, `herald publish` publishes and mails, and the group
//! resolving after that changes nothing;
//! and, straight to the hook, 401 without or with a wrong token, 400 with
//! nothing written for a malformed body. `scripts/test` installs
//! Alertmanager when missing.

#[path = "support/http.rs"]
mod http;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use site::{Site, email_config};
use smtp::{SmtpServer, free_port};

const TOKEN: &str = "s3cret-hook-token";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A site mailing to `smtp_port`, serving `[http]` on `http_port` with
/// the hook on, and one subscriber.
fn site(smtp_port: u16, http_port: u16) -> Site {
    let config = email_config(smtp_port, "1s")
        + &format!(
            "\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[alertmanager]\ntoken_file = \"hook-token\"\n"
        );
    let mut site = Site::new(&config);
    let token = site.path("hook-token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&token, fs::Permissions::from_mode(0o600)).unwrap();
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.start();
    site
}

/// The incident files under `incidents/`.
fn incident_files(site: &Site) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(site.path("incidents"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

fn notifications(site: &Site) -> usize {
    site.log().matches("Alertmanager notification, ").count()
}

struct Alertmanager {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Alertmanager {
    /// Starts Alertmanager on loopback with one webhook receiver for
    /// herald's hook, grouping by `alertname` with short waits.
    fn start(dir: &Path, hook_port: u16, token_file: &Path) -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} is missing: run scripts/test, or `apt-get install prometheus-alertmanager`"
        );
        let port = free_port();
        let config = dir.join("alertmanager.yml");
        fs::write(
            &config,
            format!(
                r#"route:
  receiver: herald
  group_by: ["alertname"]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: herald
    webhook_configs:
      - url: "http://127.0.0.1:{hook_port}/hooks/alertmanager"
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: "{}"
"#,
                token_file.display()
            ),
        )
        .unwrap();
        let log = dir.join("alertmanager.log");
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let alertmanager = Alertmanager { child, port, log };
        wait::until(
            "Alertmanager to be ready",
            || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && http::get(port, "/-/ready").status == 200
            },
            || alertmanager.log(),
        );
        alertmanager
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts alerts to Alertmanager's API (v2).
    fn post(&self, alerts: &serde_json::Value) {
        let answer = http::send(
            self.port,
            "POST /api/v2/alerts HTTP/1.1\r\nContent-Type: application/json",
            &serde_json::to_vec(alerts).unwrap(),
        );
        assert_eq!(answer.status, 200, "{answer:?}\n{}", self.log());
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alert(component: &str) -> serde_json::Value {
    named_alert("WebDown", component)
}

fn named_alert(name: &str, component: &str) -> serde_json::Value {
    let ends = herald::clock::now() + chrono::Duration::hours(1);
    serde_json::json!({
        "labels": {"alertname": name, "component": component, "severity": "critical"},
        "annotations": {
            "summary": "Web servers unreachable",
            "description": "Probe *http_2xx* fails on <web-1>."
        },
        "endsAt": ends.to_rfc3339(),
        "generatorURL": "http://prometheus.invalid/graph"
    })
}

#[test]
fn an_alert_becomes_one_draft_that_herald_publish_publishes_and_mails() {
    let server = SmtpServer::start();
    let http_port = free_port();
    let site = site(server.port(), http_port);
    let dir = tempfile::tempdir().unwrap();
    let alertmanager = Alertmanager::start(dir.path(), http_port, &site.path("hook-token"));
    let log = || {
        format!(
            "herald:\n{}\nAlertmanager:\n{}",
            site.log(),
            alertmanager.log()
        )
    };

    alertmanager.post(&serde_json::json!([alert("web")]));
    wait::until(
        "a draft from the alert",
        || !incident_files(&site).is_empty(),
        log,
    );
    let files = incident_files(&site);
    assert_eq!(files.len(), 1, "{files:?}");
    let path = &files[0];
    let draft = fs::read_to_string(path).unwrap();
    assert!(draft.contains("draft = true\n"), "{draft}");
    assert!(
        draft.contains("title = \"Web servers unreachable\"\n"),
        "{draft}"
    );
    assert!(draft.contains("components = [\"web\"]\n"), "{draft}");
    assert!(draft.contains("severity = \"critical\"\n"), "{draft}");
    assert!(
        draft.contains(" investigating\n\nProbe \\*http\\_2xx\\* fails on \\<web-1\\>."),
        "{draft}"
    );
    let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
    assert!(id.starts_with("alert-"), "{id}");

    // Alertmanager repeats the group (repeat_interval 2s): nothing changes.
    let seen = notifications(&site);
    wait::until(
        "two more notifications of the group",
        || notifications(&site) >= seen + 2,
        log,
    );
    assert!(
        site.log().contains(&format!(
            "Alertmanager notification, firing: unchanged {id}"
        )),
        "{}",
        log()
    );
    assert_eq!(fs::read_to_string(path).unwrap(), draft);
    assert_eq!(incident_files(&site).len(), 1);
    // Nothing published or mailed.
    let feed = fs::read_to_string(site.path("public/feed.atom")).unwrap();
    assert!(!feed.contains("Web servers unreachable"), "{feed}");
    assert!(
        !site.path(&format!("public/incidents/{id}.html")).exists(),
        "a draft's page was written"
    );
    assert_eq!(server.count(), 0);

    // A new alert in the group adds its component to the draft.
    alertmanager.post(&serde_json::json!([alert("web"), alert("mail")]));
    wait::until(
        "the second alert's component in the draft",
        || {
            fs::read_to_string(path)
                .unwrap_or_default()
                .contains("components = [\"web\", \"mail\"]\n")
        },
        log,
    );

    // Another group fires, then resolves before anyone published its
    // draft: the draft goes.
    alertmanager.post(&serde_json::json!([named_alert("DnsSlow", "dns")]));
    wait::until(
        "the second group's draft",
        || incident_files(&site).len() == 2,
        log,
    );
    let mut ended = named_alert("DnsSlow", "dns");
    ended["endsAt"] = herald::clock::now().to_rfc3339().into();
    alertmanager.post(&serde_json::json!([ended]));
    wait::until(
        "the second draft removed",
        || incident_files(&site).len() == 1,
        log,
    );
    assert_eq!(incident_files(&site), std::slice::from_ref(path));
    // The file goes before the line saying so is logged.
    wait::until(
        "the removal in the log",
        || {
            site.log()
                .contains("Alertmanager notification, resolved: removed alert-")
        },
        log,
    );

    let published = site.ok(&["publish", &id]);
    assert!(
        published.trim_end().ends_with(&format!("{id}.md")),
        "{published}"
    );
    site.wait_for_page("Web servers unreachable");
    wait::until("the announcement mail", || server.count() >= 1, log);
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let mail = String::from_utf8_lossy(&received[0].data).into_owned();
    assert!(mail.contains("Web servers unreachable"), "{mail}");
    // Publishing again changes nothing.
    let again = site.ok(&["publish", &id]);
    assert!(again.contains("already published"), "{again}");

    // The alerts end: Alertmanager says the group is resolved, and the
    // published incident stays as it is (`resolve` is off).
    let published = fs::read_to_string(path).unwrap();
    let now = herald::clock::now().to_rfc3339();
    let mut ended = vec![alert("web"), alert("mail")];
    for alert in &mut ended {
        alert["endsAt"] = now.clone().into();
    }
    alertmanager.post(&serde_json::Value::Array(ended));
    wait::until(
        "the resolved notification",
        || {
            site.log().contains(&format!(
                "Alertmanager notification, resolved: unchanged {id}"
            ))
        },
        log,
    );
    assert_eq!(fs::read_to_string(path).unwrap(), published);
    assert_eq!(incident_files(&site).len(), 1);
}

#[test]
fn the_hook_wants_the_token_and_a_well_formed_body() {
    let server = SmtpServer::start();
    let http_port = free_port();
    let site = site(server.port(), http_port);
    let body = serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"WebDown\"}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "herald",
        "groupLabels": {"alertname": "WebDown"},
        "commonLabels": {"alertname": "WebDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "WebDown", "component": "web"},
            "annotations": {"summary": "Web down"},
            "startsAt": (herald::clock::now() - chrono::Duration::hours(1)).to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "1"
        }]
    }))
    .unwrap();
    let post = |authorization: &str, body: &[u8]| {
        http::send(
            http_port,
            &format!(
                "POST /hooks/alertmanager HTTP/1.1\r\nContent-Type: application/json{authorization}"
            ),
            body,
        )
    };
    let missing = post("", &body);
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    let wrong = post("\r\nAuthorization: Bearer not-the-token", &body);
    assert_eq!(wrong.status, 401, "{wrong:?}");
    let right = format!("\r\nAuthorization: Bearer {TOKEN}");
    let text = http::send(
        http_port,
        &format!("POST /hooks/alertmanager HTTP/1.1\r\nContent-Type: text/plain{right}"),
        &body,
    );
    assert_eq!(text.status, 415, "{text:?}");
    let large = post(&right, &vec![b' '; 300 * 1024]);
    assert_eq!(large.status, 413, "{large:?}");
    for malformed in [
        &b"{\"version\": \"4\", "[..],
        &b"[]"[..],
        &body[..body.len() - 1],
        &serde_json::to_vec(&{
            let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            value["alerts"][0]["startsAt"] = "soon".into();
            value
        })
        .unwrap(),
    ] {
        let answer = post(&right, malformed);
        assert_eq!(answer.status, 400, "{answer:?}");
        assert!(answer.body.starts_with("malformed body: "), "{answer:?}");
    }
    let unknown = post(
        &right,
        &String::from_utf8(body.clone())
            .unwrap()
            .replace("\"component\":\"web\"", "\"component\":\"db\"")
            .into_bytes(),
    );
    assert_eq!(unknown.status, 422, "{unknown:?}");
    assert!(
        incident_files(&site).is_empty(),
        "{:?}",
        incident_files(&site)
    );
    assert!(
        site.log().contains("unknown component `db`"),
        "{}",
        site.log()
    );

    // The same body with the token: one draft.
    let answer = post(&right, &body);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.starts_with("created alert-"), "{answer:?}");
    assert_eq!(incident_files(&site).len(), 1);
    let answer = post(&right, &body);
    assert!(answer.body.starts_with("unchanged alert-"), "{answer:?}");
    assert_eq!(server.count(), 0);
    let id = answer
        .body
        .trim()
        .trim_start_matches("unchanged ")
        .to_owned();

    // Resolved before anyone published it: the draft goes.
    let resolved = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"firing\"", "\"resolved\"")
        .into_bytes();
    let answer = post(&right, &resolved);
    assert_eq!(answer.body, format!("removed {id}\n"), "{answer:?}");
    assert!(incident_files(&site).is_empty());

    // Published and resolved, the group fires again: a second draft.
    assert!(post(&right, &body).body.starts_with("created "));
    site.ok(&["publish", &id]);
    site.ok(&["post", &id, "resolved", "Fixed."]);
    let answer = post(&right, &body);
    assert_eq!(answer.body, format!("created {id}-2\n"), "{answer:?}");
    assert_eq!(incident_files(&site).len(), 2);
    let answer = post(&right, &body);
    assert_eq!(answer.body, format!("unchanged {id}-2\n"), "{answer:?}");
}

#[test]
fn without_its_token_file_the_hook_answers_503_and_a_broken_draft_is_left_alone() {
    let server = SmtpServer::start();
    let http_port = free_port();
    let mut site = {
        let config = email_config(server.port(), "1s")
            + &format!(
                "\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[alertmanager]\ntoken_file = \"hook-token\"\n"
            );
        Site::new(&config)
    };
    site.start();
    let body = serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"MailDown\"}",
        "status": "firing",
        "receiver": "herald",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [{
            "status": "firing",
            "labels": {"component": "mail"},
            "annotations": {},
            "startsAt": (herald::clock::now() - chrono::Duration::hours(1)).to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "2"
        }]
    }))
    .unwrap();
    let post = || {
        http::send(
            http_port,
            &format!(
                "POST /hooks/alertmanager HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}"
            ),
            &body,
        )
    };
    let answer = post();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        site.log().contains("cannot read [alertmanager] token_file"),
        "{}",
        site.log()
    );
    // An empty file holds no token either.
    fs::write(site.path("hook-token"), "\n").unwrap();
    site.reload();
    assert_eq!(post().status, 503);
    // The token in a file others can read is refused: still 503, and
    // the log says how to fix it.
    fs::write(site.path("hook-token"), TOKEN).unwrap();
    fs::set_permissions(site.path("hook-token"), fs::Permissions::from_mode(0o644)).unwrap();
    site.reload();
    assert_eq!(post().status, 503);
    // (The path as the configuration names it, relative to its file.)
    let refusal = "[alertmanager] token_file hook-token can be read by other users (mode 644); run `chmod 600 hook-token`";
    site.wait_for("the refusal in the log", || site.log().contains(refusal));
    // Private, after a reload: a draft, titled from the alert name when
    // there is no summary.
    fs::set_permissions(site.path("hook-token"), fs::Permissions::from_mode(0o600)).unwrap();
    site.reload();
    let answer = post();
    assert_eq!(answer.status, 200, "{answer:?}");
    let files = incident_files(&site);
    assert_eq!(files.len(), 1, "{files:?}");
    let draft = fs::read_to_string(&files[0]).unwrap();
    assert!(draft.contains("title = \"Alert\"\n"), "{draft}");
    assert!(
        draft.contains("Alertmanager reported this alert."),
        "{draft}"
    );
    // An operator broke the draft: the hook changes nothing and answers
    // 500, so that Alertmanager tries again.
    let broken = draft.replace("severity = \"major\"", "severity = \"huge\"");
    fs::write(&files[0], &broken).unwrap();
    let answer = post();
    assert_eq!(answer.status, 500, "{answer:?}");
    assert!(
        answer.body.contains("has errors; not changed"),
        "{answer:?}"
    );
    assert_eq!(fs::read_to_string(&files[0]).unwrap(), broken);
    site.stop();
}

#[test]
fn without_alertmanager_configured_there_is_no_hook() {
    let server = SmtpServer::start();
    let http_port = free_port();
    let mut site = Site::new(
        &(email_config(server.port(), "1s")
            + &format!("\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n")),
    );
    site.start();
    let answer = http::send(
        http_port,
        &format!(
            "POST /hooks/alertmanager HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}"
        ),
        b"{}",
    );
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(incident_files(&site).is_empty());
    site.stop();
}

#[test]
fn a_draft_published_after_max_age_is_still_emailed() {
    // An alert's first update is dated when the alert began; the draft
    // counts as seen when it was written, so publishing it later than
    // `max_age` (2 s here) still emails it.
    let server = SmtpServer::start();
    let http_port = free_port();
    let config = email_config(server.port(), "1s")
        .replace("grace = \"1s\"\n", "grace = \"1s\"\nmax_age = \"2s\"\n")
        + &format!(
            "\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n[alertmanager]\ntoken_file = \"hook-token\"\n"
        );
    assert!(config.contains("max_age = \"2s\""), "{config}");
    let mut site = Site::new(&config);
    fs::write(site.path("hook-token"), TOKEN).unwrap();
    fs::set_permissions(site.path("hook-token"), fs::Permissions::from_mode(0o600)).unwrap();
    site.ok(&["subscribers", "add", "anna@example.org"]);
    site.start();
    let body = serde_json::to_vec(&serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"Late\"}",
        "status": "firing",
        "receiver": "herald",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [{
            "status": "firing",
            "labels": {"component": "web"},
            "annotations": {"summary": "Published late"},
            "startsAt": herald::clock::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "3"
        }]
    }))
    .unwrap();
    let answer = http::send(
        http_port,
        &format!(
            "POST /hooks/alertmanager HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}"
        ),
        &body,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let id = answer.body.trim().trim_start_matches("created ").to_owned();
    // Past max_age.
    let written = std::time::Instant::now();
    wait::until(
        "max_age to pass",
        || written.elapsed() > std::time::Duration::from_secs(3),
        String::new,
    );
    site.ok(&["publish", &id]);
    site.wait_for_page("Published late");
    wait::until("the mail", || server.count() >= 1, || site.log());
    let mail = String::from_utf8_lossy(&server.received()[0].data).into_owned();
    assert!(mail.contains("Published late"), "{mail}");
    site.stop();
}
