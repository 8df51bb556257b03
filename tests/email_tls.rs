//! Email over TLS, end to end: `herald run` and `herald send-test` against
//! the test SMTP server (tests/support/smtp.rs) speaking TLS from the
//! first byte (`smtps://`) or after STARTTLS (`?tls=starttls`), with AUTH
//! and the password from `smtp_password_file`.
//!
//! Certificates are verified for real: each test makes a throwaway CA
//! (tests/support/tls.rs) and points herald's verifier at it with
//! `SSL_CERT_FILE`, which rustls-native-certs reads instead of the
//! system's roots; a server whose certificate that CA did not issue, or
//! that names another host, gets no mail. So does a server that does not
//! offer STARTTLS when it is required, and a wrong password: those
//! messages wait (retrying, with the reason in `herald outbox`) rather
//! than fail.

#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/smtp.rs"]
mod smtp;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/wait.rs"]
mod wait;

use std::fs;

use site::{Site, incident, recent};
use smtp::{Encryption, Login, Said, Setup, SmtpServer};
use tls::TestCa;

const USER: &str = "herald@example.com";
const PASSWORD: &str = "correct horse: battery staple";
const FOLLOWER: &str = "anna@example.org";

fn config(smtp: &str) -> String {
    let site = site_toml::site("Test status") + &site_toml::components(&[("web", "Web hosting")]);
    format!(
        r#"{site}
[email]
from = "Test status <status@example.com>"
smtp = "{smtp}"
smtp_user = "{USER}"
smtp_password_file = "secrets/smtp-password"
grace = "0s"
retry_base = "100ms"
"#
    )
}

/// The URL herald mails through for a server on `port` with
/// `encryption`: `smtps://` for TLS from the first byte, else STARTTLS
/// required.
fn url(encryption: &Encryption, port: u16) -> String {
    match encryption {
        Encryption::Implicit(_) => format!("smtps://localhost:{port}"),
        _ => format!("smtp://localhost:{port}?tls=starttls"),
    }
}

/// A server with `encryption` that requires AUTH with [`USER`] and
/// [`PASSWORD`] through one of `mechanisms`, and a site with one
/// subscriber that mails through it with `password_file` as its password
/// file, whose herald trusts `ca` and nothing else.
fn mailing(
    encryption: Encryption,
    mechanisms: &[&'static str],
    ca: &TestCa,
    password_file: &str,
) -> (SmtpServer, Site) {
    let smtp = |port| url(&encryption, port);
    let setup = Setup {
        encryption: encryption.clone(),
        login: Some((USER.to_owned(), PASSWORD.to_owned())),
        mechanisms: mechanisms.to_vec(),
        require_auth: true,
        ..Setup::default()
    };
    let server = SmtpServer::start_with(0, setup);
    let mut site = Site::new(&config(&smtp(server.port())));
    fs::write(site.path("ca.pem"), ca.pem()).unwrap();
    fs::create_dir_all(site.path("secrets")).unwrap();
    fs::write(site.path("secrets/smtp-password"), password_file).unwrap();
    site.set_env("SSL_CERT_FILE", site.path("ca.pem"));
    site.set_env("SSL_CERT_DIR", "");
    site.ok(&["subscribers", "add", FOLLOWER]);
    (server, site)
}

/// Starts herald (after the first start, which sends nothing) and
/// publishes an update that [`FOLLOWER`] follows.
fn publish(site: &mut Site) {
    site.start();
    site.write(
        "outage.md",
        &incident(
            "Outage",
            "\"web\"",
            &[(&format!("{} investigating", recent(0)), "Down.")],
        ),
    );
}

/// Waits until `herald outbox` shows the one message retrying, and
/// returns its row's last column (the reason).
fn retrying_reason(site: &Site) -> String {
    site.wait_for("the message to be retrying with a reason", || {
        let outbox = site.ok(&["outbox"]);
        outbox.starts_with("pending 0, retrying 1, failed 0, sent 0\n")
            && outbox.lines().nth(1).is_some_and(|row| !row.ends_with("-"))
    });
    let outbox = site.ok(&["outbox"]);
    let row = outbox.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&format!("retrying\t{FOLLOWER}\toutage@")),
        "{outbox}"
    );
    row.rsplit('\t').next().unwrap().to_owned()
}

fn accepted(mechanism: &str) -> Login {
    Login {
        mechanism: mechanism.to_owned(),
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
        accepted: true,
    }
}

/// The verbs a client sent in plain text.
fn said_in_clear(server: &SmtpServer) -> Vec<String> {
    server
        .said()
        .into_iter()
        .filter(|said| !said.tls)
        .map(|said| said.verb)
        .collect()
}

fn said(verb: &str, tls: bool) -> Said {
    Said {
        verb: verb.to_owned(),
        tls,
    }
}

/// Publishes an update that cannot be delivered and returns the reason
/// `herald outbox` gives for it while it waits; the server got nothing.
fn undelivered(site: &mut Site, server: &SmtpServer) -> String {
    publish(site);
    let reason = retrying_reason(site);
    site.stop();
    assert_eq!(server.count(), 0);
    reason
}

#[test]
fn smtps_delivers_over_tls_with_auth_plain_and_the_password_file() {
    let ca = TestCa::new("herald test CA");
    // The file's trailing newline is not part of the password.
    let (server, mut site) = mailing(
        Encryption::Implicit(ca.server_config(&["localhost", "127.0.0.1"])),
        &["PLAIN", "LOGIN"],
        &ca,
        &format!("{PASSWORD}\n"),
    );
    publish(&mut site);
    site.wait_for("the email", || server.count() == 1);
    site.wait_for("the email to be marked sent", || {
        site.ok(&["outbox"]) == "pending 0, retrying 0, failed 0, sent 1\n"
    });
    site.stop();

    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, [FOLLOWER]);
    assert!(received[0].tls, "sent over TLS");
    assert_eq!(received[0].user.as_deref(), Some(USER));
    assert_eq!(server.logins(), [accepted("PLAIN")]);
    assert_eq!(said_in_clear(&server), Vec::<String>::new());
    assert_eq!(server.handshake_failures(), Vec::<String>::new());
}

#[test]
fn starttls_delivers_with_auth_login_after_the_upgrade() {
    let ca = TestCa::new("herald test CA");
    let (server, mut site) = mailing(
        Encryption::StartTls(ca.server_config(&["localhost"])),
        &["LOGIN"],
        &ca,
        &format!("{PASSWORD}\r\n"),
    );
    publish(&mut site);
    site.wait_for("the email", || server.count() == 1);
    site.stop();

    let received = server.received();
    assert_eq!(received[0].to, [FOLLOWER]);
    assert!(received[0].tls, "sent over TLS");
    assert_eq!(received[0].user.as_deref(), Some(USER));
    assert_eq!(server.logins(), [accepted("LOGIN")]);
    // Nothing but the greeting and the upgrade in clear; the password and
    // the message went over TLS. herald's own EHLO after lettre's learns
    // whether the server pipelines.
    let commands = server.said();
    assert_eq!(
        commands[..6],
        [
            said("EHLO", false),
            said("STARTTLS", false),
            said("EHLO", true),
            said("EHLO", true),
            said("AUTH", true),
            said("MAIL", true),
        ],
        "{commands:?}"
    );
    assert_eq!(said_in_clear(&server), ["EHLO", "STARTTLS"]);
}

#[test]
fn send_test_over_starttls_with_auth_exits_0() {
    let ca = TestCa::new("herald test CA");
    let encryption = Encryption::StartTls(ca.server_config(&["localhost"]));
    let (server, site) = mailing(
        encryption.clone(),
        &["PLAIN", "LOGIN"],
        &ca,
        &format!("{PASSWORD}\n"),
    );
    let output = site.ok(&["send-test", "ops@example.org"]);
    assert_eq!(
        output,
        format!(
            "sent to ops@example.org via {}\n",
            url(&encryption, server.port())
        )
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["ops@example.org"]);
    assert!(received[0].tls, "sent over TLS");
    assert_eq!(server.logins(), [accepted("PLAIN")]);
    assert_eq!(said_in_clear(&server), ["EHLO", "STARTTLS"]);
}

#[test]
fn wrong_password_is_retried_with_the_servers_reply_until_it_is_fixed() {
    let ca = TestCa::new("herald test CA");
    let (server, mut site) = mailing(
        Encryption::Implicit(ca.server_config(&["localhost"])),
        &["PLAIN"],
        &ca,
        "not the password\n",
    );
    let reason = undelivered(&mut site, &server);
    assert_eq!(reason, "permanent error (535): 5.7.8 authentication failed");
    let logins = server.logins();
    assert!(!logins.is_empty());
    for login in &logins {
        assert_eq!(
            *login,
            Login {
                mechanism: "PLAIN".into(),
                user: USER.into(),
                password: "not the password".into(),
                accepted: false,
            }
        );
    }

    // Once the password is right, the message that waited is sent.
    fs::write(site.path("secrets/smtp-password"), PASSWORD).unwrap();
    site.start();
    site.wait_for("the email", || server.count() == 1);
    site.stop();
    assert_eq!(server.received()[0].to, [FOLLOWER]);
    assert_eq!(server.logins().last(), Some(&accepted("PLAIN")));
    assert_eq!(
        site.ok(&["outbox"]),
        "pending 0, retrying 0, failed 0, sent 1\n"
    );
}

#[test]
fn a_certificate_from_an_untrusted_ca_gets_no_mail() {
    let trusted = TestCa::new("herald test CA");
    let other = TestCa::new("someone else's CA");
    let (server, mut site) = mailing(
        Encryption::Implicit(other.server_config(&["localhost"])),
        &["PLAIN"],
        &trusted,
        PASSWORD,
    );
    let reason = undelivered(&mut site, &server);
    assert!(
        reason.starts_with("Connection error: ")
            && reason.ends_with("invalid peer certificate: UnknownIssuer"),
        "{reason}"
    );
    assert_eq!(server.logins(), []);
    assert_eq!(server.said(), []);
    let failures = server.handshake_failures();
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|failure| failure.contains("UnknownCA")),
        "{failures:?}"
    );
}

#[test]
fn a_certificate_for_another_host_gets_no_mail() {
    let ca = TestCa::new("herald test CA");
    let (server, mut site) = mailing(
        Encryption::StartTls(ca.server_config(&["mail.example.org"])),
        &["PLAIN"],
        &ca,
        PASSWORD,
    );
    let reason = undelivered(&mut site, &server);
    assert!(
        reason.starts_with("Connection error: ")
            && reason.ends_with(
                "invalid peer certificate: certificate not valid for name \"localhost\"; \
                 certificate is only valid for DnsName(\"mail.example.org\")"
            ),
        "{reason}"
    );
    assert_eq!(server.logins(), []);
    let commands = server.said();
    assert!(!commands.is_empty());
    for said in commands {
        assert!(
            !said.tls && ["EHLO", "STARTTLS"].contains(&said.verb.as_str()),
            "{said:?}"
        );
    }
}

#[test]
fn starttls_required_but_not_offered_sends_nothing_in_clear() {
    let ca = TestCa::new("herald test CA");
    // A plain server: it offers neither STARTTLS nor (without TLS) AUTH.
    let (server, mut site) = mailing(Encryption::None, &["PLAIN", "LOGIN"], &ca, PASSWORD);
    let reason = undelivered(&mut site, &server);
    assert_eq!(
        reason,
        "internal client error: STARTTLS is not supported on this server"
    );
    assert_eq!(server.logins(), []);
    let in_clear = said_in_clear(&server);
    assert!(in_clear.contains(&"EHLO".to_owned()), "{in_clear:?}");
    for verb in in_clear {
        assert!(["EHLO", "QUIT"].contains(&verb.as_str()), "{verb}");
    }
}

#[test]
fn without_a_password_file_a_server_that_requires_auth_keeps_the_message() {
    let ca = TestCa::new("herald test CA");
    let encryption = Encryption::Implicit(ca.server_config(&["localhost"]));
    let (server, mut site) = mailing(encryption.clone(), &["PLAIN"], &ca, PASSWORD);
    let config = config(&url(&encryption, server.port()))
        .replace("smtp_password_file = \"secrets/smtp-password\"\n", "");
    fs::write(site.path("herald.toml"), config).unwrap();
    publish(&mut site);
    // A 530 to MAIL says the session lacks a login, not that this
    // recipient is refused: retried, with the reply kept, until the
    // admin adds the password.
    site.wait_for("the message to be deferred", || {
        site.ok(&["outbox"])
            .starts_with("pending 0, retrying 1, failed 0, sent 0\n")
    });
    site.stop();
    let outbox = site.ok(&["outbox"]);
    let row = outbox.lines().nth(1).unwrap();
    assert!(
        row.starts_with(&format!("retrying\t{FOLLOWER}\toutage@"))
            && row.ends_with("\tpermanent error (530): 5.7.0 authentication required"),
        "{outbox}"
    );
    assert_eq!(server.count(), 0);
    assert_eq!(server.logins(), []);
    let verbs: Vec<String> = server.said().into_iter().map(|said| said.verb).collect();
    assert_eq!(verbs[..3], ["EHLO", "EHLO", "MAIL"], "{verbs:?}");
}
