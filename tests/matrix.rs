//! The Matrix channel against a real homeserver: Synapse started on
//! loopback with SQLite (tests/support/synapse.rs, once for this binary),
//! a bot user for herald and a reader, rooms made through its API.
//! herald's account joins a room it was invited to by its alias, posts
//! an update, and the reader reads it back (`/messages`): the body and
//! the HTML as composed, `@room` in the incident's text mentioning nobody
//! (where a moderator's plain `@room` does), the same transaction sent
//! twice making one event, and a bot kicked out of the room, or posting
//! to a room that does not exist, told that the room is gone. Then the
//! channel end to end with the real binary: `herald subscribers add
//! --matrix '#alias:localhost'` joins, `herald run` posts an update of a
//! followed component to the room, and a bot kicked out of the room has
//! its subscription removed and logged; a message sent again after a
//! crash stays one event; a token file others can read holds deliveries
//! until fixed and reloaded; the command's refusals; and Synapse's own
//! 429 (a second Synapse whose `rc_message` it enforces) waited out for
//! its `retry_after_ms`. A loopback server in the homeserver's place
//! answers what Synapse does not (502 and 503 from a proxy, 400) for the
//! retries and the parking, and one over TLS with a test CA for the
//! verified https path.
//! `scripts/test` installs Synapse (PyPI `matrix-synapse`) when missing.

#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/synapse.rs"]
mod synapse;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/wait.rs"]
mod wait;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use herald::announce::Announcement;
use herald::compose::{Composer, MatrixMessage};
use herald::config::{self, Config};
use herald::mailer::matrix::{Client, Failure, RoomRef};
use herald::model::Language;
use herald::parse::{Context, parse_incident};
use serde_json::json;

use receiver::{Answer, Receiver};
use site::{Site, incident, recent};
use synapse::User;

const INCIDENT: &str = "+++
title = \"Storage failure @room\"
components = [\"mail\", \"web\"]
severity = \"major\"
+++
## 2026-11-20 08:20 identified
components: mail=major-outage
Cause found: a <b>disk</b> & its *controller*. Hello @room, @Room!
";

/// A site whose `[matrix]` account is `bot`'s on the shared Synapse,
/// the token in a 0600 file under `dir`.
fn config(dir: &Path, bot: &User) -> Config {
    let token = dir.join("matrix-token");
    std::fs::write(&token, format!("{}\n", bot.token)).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[site]
title = \"Example status\"
base_url = \"https://status.example.com/\"

[[components]]
id = \"mail\"
name = \"Mail\"

[[components]]
id = \"web\"
name = \"Web hosting\"

[matrix]
homeserver = \"{}\"
access_token_file = \"matrix-token\"
",
        synapse::shared().url()
    );
    config::parse(&dir.join("herald.toml"), &text).unwrap()
}

fn announcement(config: &Config) -> Announcement {
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let (incident, diagnostics) = parse_incident(Path::new("storage.md"), INCIDENT, &context);
    let incident = incident.unwrap_or_else(|| panic!("{diagnostics:?}"));
    Announcement::new(&incident, &incident.updates[0])
}

/// The HTTP client herald's Matrix account goes through, with the
/// default `[webhooks]` (Synapse on loopback is the operator's
/// configuration, not held to the rule for subscribers' URLs).
fn http() -> std::sync::Arc<herald::webhook::Client> {
    std::sync::Arc::new(herald::webhook::Client::new(&config::Webhooks::default()))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// herald's client for `bot`, a reader, and a room the reader made with
/// the alias `alias`, inviting the bot as a moderator; the bot has joined
/// it by its alias.
struct Room {
    client: Client,
    config: Config,
    bot: User,
    reader: User,
    id: String,
    _dir: tempfile::TempDir,
}

fn joined_room(alias: &str) -> Room {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &bot);
    let client = Client::new(config.matrix.as_ref().unwrap(), http()).unwrap();
    let id = reader.create_room(alias, &bot, 50);
    let runtime = runtime();
    let alias = RoomRef::parse(&format!("#{alias}:{}", synapse::SERVER_NAME)).unwrap();
    let joined = runtime.block_on(client.join(&alias));
    assert_eq!(joined, Ok(id.clone()), "{}", synapse.log());
    assert_eq!(runtime.block_on(client.whoami()), Ok(bot.id.clone()));
    Room {
        client,
        config,
        bot,
        reader,
        id,
        _dir: dir,
    }
}

fn message(room: &Room) -> MatrixMessage {
    Composer::new().matrix(
        &room.config,
        &announcement(&room.config),
        &room.id,
        Language::En,
        "0123456789abcdef0123456789abcdef",
    )
}

#[test]
fn an_update_reaches_the_room_as_composed_and_mentions_nobody() {
    let room = joined_room("status");
    // By default nobody is notified of a notice (`m.notice`) at all; a
    // reader who wants to hear from bots turns that rule off, and then
    // only `m.mentions` and the body decide.
    room.reader.notify_of_notices();
    let message = message(&room);
    let runtime = runtime();
    let event = runtime
        .block_on(room.client.send(&room.id, &message))
        .unwrap();
    // A moderator's plain `@room`, for comparison: this one does ping.
    let control = room.bot.say(
        &room.id,
        "control",
        &json!({"msgtype": "m.notice", "body": "Everyone look: @room"}),
    );

    let messages = room.reader.messages(&room.id);
    let ours: Vec<_> = messages
        .iter()
        .filter(|event| event["sender"] == room.bot.id.as_str())
        .collect();
    assert_eq!(ours.len(), 2, "{messages:#?}");
    assert_eq!(ours[0]["event_id"], event.as_str());
    let content = &ours[0]["content"];
    assert_eq!(content, &message.content);
    let body = content["body"].as_str().unwrap();
    assert_eq!(
        body,
        "Identified: Storage failure @\u{2060}room\n\
         https://status.example.com/incidents/storage.html#u-20261120T082000Z\n\
         Affected components: Mail (Major outage), Web hosting (Partial outage)\n\
         \n\
         Cause found: a <b>disk</b> & its *controller*. Hello @\u{2060}room, @\u{2060}Room!\n\
         \n\
         Unsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef"
    );
    let html = content["formatted_body"].as_str().unwrap();
    assert_eq!(content["format"], "org.matrix.custom.html");
    assert!(
        html.starts_with("<p><strong>Identified</strong>: <a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;incidents&#x2f;storage.html#u-20261120T082000Z\">Storage failure @\u{2060}room</a></p>"),
        "{html}"
    );
    assert!(
        html.contains("<p>Cause found: a &lt;b&gt;disk&lt;/b&gt; &amp; its <em>controller</em>. Hello @\u{2060}room, @\u{2060}Room!</p>"),
        "{html}"
    );
    assert!(html.ends_with("\">Unsubscribe</a></p>"), "{html}");
    assert_eq!(content["msgtype"], "m.notice");
    assert_eq!(content["m.mentions"], json!({}));

    // The homeserver's push rules: the control highlights the reader,
    // herald's message, sent before it, does not.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let highlights = loop {
        let highlights = room.reader.highlights();
        if highlights.contains(&control) {
            break highlights;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the control never highlighted: {highlights:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!highlights.contains(&event), "{highlights:?}");
}

#[test]
fn a_transaction_sent_again_is_one_event() {
    let room = joined_room("retries");
    let message = message(&room);
    let runtime = runtime();
    let first = runtime
        .block_on(room.client.send(&room.id, &message))
        .unwrap();
    // As after a crash between the homeserver's 200 and herald's record:
    // a new connection, the same transaction.
    let client = Client::new(room.config.matrix.as_ref().unwrap(), http()).unwrap();
    let again = runtime.block_on(client.send(&room.id, &message)).unwrap();
    assert_eq!(first, again);
    let messages = room.reader.messages(&room.id);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    // Another update is another transaction.
    let mut later = message.clone();
    later.txn_id.push('2');
    let other = runtime.block_on(client.send(&room.id, &later)).unwrap();
    assert_ne!(first, other);
    assert_eq!(room.reader.messages(&room.id).len(), 2);
}

#[test]
fn a_kicked_bot_finds_the_room_gone() {
    let room = joined_room("kicks");
    let message = message(&room);
    let runtime = runtime();
    runtime
        .block_on(room.client.send(&room.id, &message))
        .unwrap();
    room.reader.kick(&room.id, &room.bot);
    let mut later = message.clone();
    later.txn_id.push('2');
    let failure = runtime
        .block_on(room.client.send(&room.id, &later))
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Gone(reply) if reply.starts_with("403 ") && reply.contains("M_FORBIDDEN")),
        "{failure:?}"
    );
    // So does one posting to a room that never existed.
    let nowhere = format!("!nosuchroom:{}", synapse::SERVER_NAME);
    let failure = runtime
        .block_on(room.client.send(&nowhere, &later))
        .unwrap_err();
    assert!(matches!(&failure, Failure::Gone(_)), "{failure:?}");
}

#[test]
fn joining_a_private_room_needs_an_invitation() {
    let synapse = synapse::shared();
    let room = joined_room("invites");
    let stranger = synapse.register("stranger");
    let private = room.reader.create_room("private", &stranger, 0);
    let runtime = runtime();
    let failure = runtime
        .block_on(room.client.join(&RoomRef::Id(private.clone())))
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Gone(reply) if reply.contains("M_FORBIDDEN")),
        "{failure:?}"
    );
    room.reader.invite(&private, &room.bot);
    assert_eq!(
        runtime.block_on(room.client.join(&RoomRef::Id(private.clone()))),
        Ok(private.clone())
    );
    // An alias nobody made.
    let failure = runtime
        .block_on(room.client.join(&RoomRef::Alias(format!(
            "#nothing:{}",
            synapse::SERVER_NAME
        ))))
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Gone(reply) if reply.starts_with("404 ")),
        "{failure:?}"
    );
    assert!(synapse.startup.as_secs() < 120);
}

/// A site with `[matrix]` for `bot` on the shared Synapse (the token
/// file 0600, or `mode`), email to files, a grace of one second.
fn matrix_site(bot: &User, mode: u32) -> Site {
    matrix_site_at(&synapse::shared().url(), &bot.token, mode)
}

/// A site with `[matrix]` on `homeserver` with `token`.
fn matrix_site_at(homeserver: &str, token: &str, mode: u32) -> Site {
    let config = site_toml::site("Test status")
        + &site_toml::components(&[("mail", "Mail"), ("web", "Web hosting")])
        + &format!(
            "\n[email]\nfrom = \"status@example.com\"\nsmtp = \"file\"\ngrace = \"1s\"\nretry_base = \"100ms\"\n\n[matrix]\nhomeserver = \"{homeserver}\"\naccess_token_file = \"matrix-token\"\n"
        );
    let site = Site::new(&config);
    let path = site.path("matrix-token");
    std::fs::write(&path, token).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    site
}

/// `herald ARGS` that fails with `code`; its standard error.
fn fails(site: &Site, args: &[&str], code: i32) -> String {
    let output = site.herald(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "herald {args:?}: {stderr}"
    );
    stderr
}

#[test]
fn herald_run_posts_to_a_room_added_by_alias_until_it_is_kicked_out() {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    reader.notify_of_notices();
    let room = reader.create_room("ops", &bot, 50);
    let alias = format!("#ops:{}", synapse::SERVER_NAME);
    let mut site = matrix_site(&bot, 0o600);

    let added = site.ok(&[
        "subscribers",
        "add",
        "--matrix",
        &alias,
        "--components",
        "web",
    ]);
    assert_eq!(added, format!("added {room} (matrix, {alias})\n"));
    let list = site.ok(&["subscribers", "list"]);
    assert_eq!(list, format!("{room}\ten\tweb\tevery\tmatrix\n"));

    site.start();
    site.write(
        "db.md",
        &incident(
            "Web @room down",
            "\"web\"",
            &[(
                &format!("{} investigating", recent(0)),
                "Looking into it, @room.",
            )],
        ),
    );
    let from_bot = |messages: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        messages
            .into_iter()
            .filter(|event| event["sender"] == bot.id.as_str())
            .collect()
    };
    site.wait_for("herald's message in the room", || {
        !from_bot(reader.messages(&room)).is_empty()
    });
    let messages = from_bot(reader.messages(&room));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let content = &messages[0]["content"];
    let body = content["body"].as_str().unwrap();
    assert!(
        body.starts_with(
            "Investigating: Web @\u{2060}room down\nhttps://status.example.com/incidents/db.html#u-"
        ),
        "{body}"
    );
    assert!(
        body.contains("\nLooking into it, @\u{2060}room.\n"),
        "{body}"
    );
    assert!(
        body.contains("\nUnsubscribe: https://status.example.com/unsubscribe/"),
        "{body}"
    );
    assert_eq!(content["m.mentions"], json!({}));
    assert!(
        content["formatted_body"]
            .as_str()
            .unwrap()
            .contains("<p>Looking into it, @\u{2060}room.</p>"),
        "{content}"
    );

    // Kicked out: the next update finds the room gone, and the room's
    // subscription goes with it.
    reader.kick(&room, &bot);
    site.write(
        "db.md",
        &incident(
            "Web @room down",
            "\"web\"",
            &[
                (
                    &format!("{} investigating", recent(1)),
                    "Looking into it, @room.",
                ),
                (&format!("{} identified", recent(0)), "Found it."),
            ],
        ),
    );
    site.wait_for("the removal in the log", || {
        site.log().contains("herald cannot post to the Matrix room")
    });
    let log = site.log();
    assert!(log.contains(&room), "{log}");
    assert!(log.contains("M_FORBIDDEN"), "{log}");
    assert_eq!(site.ok(&["subscribers", "list"]), "");
    assert_eq!(from_bot(reader.messages(&room)).len(), 1);
    site.stop();
}

#[test]
fn adding_a_room_says_what_is_missing() {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let site = matrix_site(&bot, 0o600);

    let stderr = fails(&site, &["subscribers", "add", "--matrix", "ops"], 1);
    assert!(stderr.contains("`ops` is no Matrix room"), "{stderr}");
    // Not invited: herald's account cannot join, and says who to invite.
    let stranger = synapse.register("stranger");
    let private = reader.create_room("closed", &stranger, 0);
    let stderr = fails(&site, &["subscribers", "add", "--matrix", &private], 1);
    assert!(
        stderr.contains(&format!("{} cannot join {private}: 403 ", bot.id))
            && stderr.contains(&format!("invite {} to the room first", bot.id)),
        "{stderr}"
    );
    let stderr = fails(
        &site,
        &["subscribers", "add", "--matrix", "#nothing-here:localhost"],
        1,
    );
    assert!(
        stderr.contains("cannot join #nothing-here:localhost: 404 "),
        "{stderr}"
    );
    assert_eq!(site.ok(&["subscribers", "list"]), "");

    // Invited, it joins; `remove` takes the alias or the id.
    reader.invite(&private, &bot);
    site.ok(&["subscribers", "add", "--matrix", &private]);
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        format!("{private}\ten\t*\tevery\tmatrix\n")
    );
    assert_eq!(
        site.ok(&["subscribers", "remove", &private]),
        format!("removed {private}\n")
    );
    let room = reader.create_room("lobby", &bot, 0);
    site.ok(&["subscribers", "add", "--matrix", &room, "--only-changes"]);
    assert_eq!(
        site.ok(&["subscribers", "list"]),
        format!("{room}\ten\t*\tchanges\tmatrix\n")
    );
    assert_eq!(
        site.ok(&["subscribers", "remove", "#lobby:localhost"]),
        format!("removed {room}\n")
    );
    assert_eq!(site.ok(&["subscribers", "list"]), "");

    // A token file others can read is refused (exit 3), and so is a
    // room without `[matrix]` (exit 1).
    let exposed = matrix_site(&bot, 0o644);
    let stderr = fails(&exposed, &["subscribers", "add", "--matrix", &room], 3);
    assert!(
        stderr.contains("matrix-token can be read by other users (mode 644); run `chmod 600 "),
        "{stderr}"
    );
    let plain =
        Site::new(&(site_toml::site("Test status") + &site_toml::components(&[("web", "Web")])));
    let stderr = fails(&plain, &["subscribers", "add", "--matrix", &room], 1);
    assert!(
        stderr.contains("a Matrix room needs `[matrix]`"),
        "{stderr}"
    );
}

#[test]
fn a_token_file_others_can_read_holds_deliveries_until_fixed_and_reloaded() {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let room = reader.create_room("held", &bot, 0);
    let mut site = matrix_site(&bot, 0o600);
    site.ok(&["subscribers", "add", "--matrix", &room]);
    let token = site.path("matrix-token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o640)).unwrap();

    site.start();
    site.wait_for("the refusal in the log", || {
        site.log()
            .contains("Matrix rooms get nothing until this is fixed and herald reloaded")
    });
    let log = site.log();
    assert!(
        log.contains("can be read by other users (mode 640)"),
        "{log}"
    );
    site.write(
        "web.md",
        &incident(
            "Web down",
            "\"web\"",
            &[(&format!("{} investigating", recent(0)), "Looking.")],
        ),
    );
    site.wait_for("the delivery to wait with the reason", || {
        site.ok(&["outbox"])
            .contains("can be read by other users (mode 640)")
    });
    assert!(reader.messages(&room).is_empty());

    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    site.reload();
    site.wait_for("the message after the reload", || {
        !reader.messages(&room).is_empty()
    });
    let messages = reader.messages(&room);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0]["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("Investigating: Web down\n"),
        "{messages:#?}"
    );
    site.stop();
}

/// The path herald PUTs the first update of `text` (written as
/// `incidents/NAME.md` on `site`) to `room` at.
fn send_path(site: &Site, name: &str, text: &str, room: &str) -> String {
    let config_path = site.path("herald.toml");
    let config = config::parse(
        &config_path,
        &std::fs::read_to_string(&config_path).unwrap(),
    )
    .unwrap();
    let context = Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let (incident, diagnostics) = parse_incident(Path::new(&format!("{name}.md")), text, &context);
    let incident = incident.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let announcement = Announcement::new(&incident, &incident.updates[0]);
    format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        synapse::encode(room),
        herald::compose::txn_id(&announcement, room)
    )
}

#[test]
fn failing_homeservers_are_retried_and_refusals_parked() {
    // A loopback server in the homeserver's place, answering as scripted:
    // Synapse itself does not answer 502 (a proxy in front of it does)
    // nor refuses herald's well-formed message with 400 `M_BAD_JSON`.
    // Its own 429 is tested against Synapse
    // (`synapse_s_own_rate_limit_is_waited_out`).
    let homeserver = Receiver::start();
    let mut site = matrix_site_at(&homeserver.url(""), "secret-token", 0o600);
    for room in ["!busy:example.org", "!picky:example.org"] {
        homeserver.script(
            &format!("/_matrix/client/v3/join/{}", synapse::encode(room)),
            vec![Answer::status(200, &json!({ "room_id": room }).to_string())],
        );
        site.ok(&["subscribers", "add", "--matrix", room]);
    }
    site.start();
    let text = incident(
        "Web down",
        "\"web\"",
        &[(&format!("{} investigating", recent(0)), "Looking.")],
    );
    let busy = send_path(&site, "web", &text, "!busy:example.org");
    let picky = send_path(&site, "web", &text, "!picky:example.org");
    homeserver.script(
        &busy,
        vec![
            Answer::status(502, "bad gateway"),
            Answer::status(503, "unavailable"),
            Answer::status(200, r#"{"event_id":"$sent"}"#),
        ],
    );
    homeserver.script(
        &picky,
        vec![Answer::status(
            400,
            r#"{"errcode":"M_BAD_JSON","error":"nope"}"#,
        )],
    );
    site.write("web.md", &text);

    site.wait_for("the third try to the busy room", || {
        homeserver.to(&busy).len() == 3
    });
    let tries = homeserver.to(&busy);
    for request in &tries {
        assert_eq!(request.method, "PUT");
        assert_eq!(request.header("authorization"), "Bearer secret-token");
        assert_eq!(request.body, tries[0].body, "each try is the same message");
    }
    assert_eq!(tries[0].json()["msgtype"], "m.notice");
    site.wait_for(
        "the refusal parked and the busy room's message sent",
        || {
            let outbox = site.ok(&["outbox"]);
            outbox.contains("M_BAD_JSON") && !outbox.contains("!busy:example.org")
        },
    );
    let outbox = site.ok(&["outbox"]);
    assert!(outbox.contains("!picky:example.org"), "{outbox}");
    assert!(outbox.contains("400 "), "{outbox}");
    assert_eq!(homeserver.to(&picky).len(), 1);
    // Parked, not removed: the room is still subscribed.
    let list = site.ok(&["subscribers", "list"]);
    assert!(list.contains("!picky:example.org"), "{list}");
    site.stop();
}

#[test]
fn a_message_sent_again_after_a_crash_is_one_event_in_the_room() {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let room = reader.create_room("again", &bot, 0);
    let mut site = matrix_site(&bot, 0o600);
    site.ok(&["subscribers", "add", "--matrix", &room]);
    site.start();
    site.write(
        "web.md",
        &incident(
            "Web down",
            "\"web\"",
            &[(&format!("{} investigating", recent(0)), "Looking.")],
        ),
    );
    site.wait_for("the message in the room", || {
        !reader.messages(&room).is_empty()
    });
    site.wait_for("the delivery recorded", || {
        !site.ok(&["outbox"]).contains(&room)
    });
    site.stop();
    // As if herald had been killed after the homeserver took the event
    // and before the outbox recorded it: the row is leased, not sent.
    let database = rusqlite::Connection::open(site.path("state/herald.db")).unwrap();
    let leased = database
        .execute(
            "UPDATE outbox SET status = 'pending', done_at = NULL, lease_until = 9999999999999",
            [],
        )
        .unwrap();
    assert_eq!(leased, 1);
    drop(database);

    site.start();
    site.wait_for("the lease released at start", || {
        site.log()
            .contains("messages left in flight by the last run go back to pending")
    });
    site.wait_for("the message sent again", || {
        let database = rusqlite::Connection::open(site.path("state/herald.db")).unwrap();
        database
            .query_row("SELECT status FROM outbox", [], |row| {
                row.get::<_, String>(0)
            })
            .unwrap()
            == "sent"
    });
    // Same transaction: the homeserver kept the first event only.
    let messages = reader.messages(&room);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    site.stop();
}

#[test]
fn send_test_posts_to_a_joined_room_and_fails_on_one_it_is_not_in() {
    let synapse = synapse::shared();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let room = reader.create_room("tested", &bot, 0);
    let site = matrix_site(&bot, 0o600);
    // Not joined yet (only invited): the homeserver refuses, exit 3.
    let stderr = fails(&site, &["send-test", "--matrix", "#tested:localhost"], 3);
    assert!(
        stderr.contains(&format!("cannot post the test message to {room}: 403 ")),
        "{stderr}"
    );
    site.ok(&["subscribers", "add", "--matrix", &room]);
    let posted = site.ok(&["send-test", "--matrix", "#tested:localhost"]);
    assert!(
        posted.starts_with(&format!("posted to {room} (event $")),
        "{posted}"
    );
    let messages = reader.messages(&room);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(
        messages[0]["content"]["body"],
        "Test message: This is a test message from herald: posts from Test status reach this address."
    );
    // Each test is a new event.
    site.ok(&["send-test", "--matrix", &room]);
    assert_eq!(reader.messages(&room).len(), 2);
}

/// A homeserver stand-in over TLS on 127.0.0.1 with a certificate for
/// `localhost`: answers every request with an event id and records the
/// request lines and `Authorization` headers. Its port.
fn tls_homeserver(
    config: std::sync::Arc<rustls::ServerConfig>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let connection = rustls::ServerConnection::new(std::sync::Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut reader = BufReader::new(&mut tls);
            let mut head = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push(line);
            }
            if head.is_empty() {
                continue; // the handshake failed: nothing to answer
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            record
                .lock()
                .unwrap()
                .extend(head.into_iter().filter(|line| {
                    line.starts_with("PUT ")
                        || line.starts_with("authorization:")
                        || line.starts_with("Authorization:")
                }));
            let answer = r#"{"event_id":"$tls"}"#;
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, seen)
}

#[test]
fn an_https_homeserver_is_reached_over_verified_tls() {
    let ca = tls::TestCa::new("herald test CA");
    let (port, seen) = tls_homeserver(ca.server_config(&["localhost"]));
    let homeserver = format!("https://localhost:{port}");
    let mut site = matrix_site_at(&homeserver, "tls-token", 0o600);
    std::fs::write(site.path("ca.pem"), ca.pem()).unwrap();
    site.set_env("SSL_CERT_FILE", site.path("ca.pem"));
    site.set_env("SSL_CERT_DIR", "");
    let posted = site.ok(&["send-test", "--matrix", "!r:localhost"]);
    assert_eq!(posted, "posted to !r:localhost (event $tls)\n");
    let lines = seen.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "PUT /_matrix/client/v3/rooms/%21r%3Alocalhost/send/m.room.message/herald-test-"
        ),
        "{lines:?}"
    );
    assert!(lines[1].ends_with(": Bearer tls-token"), "{lines:?}");

    // A certificate from a CA the system does not trust: no token sent.
    let mut stranger = matrix_site_at(&homeserver, "tls-token", 0o600);
    let other = tls::TestCa::new("another CA");
    std::fs::write(stranger.path("ca.pem"), other.pem()).unwrap();
    stranger.set_env("SSL_CERT_FILE", stranger.path("ca.pem"));
    stranger.set_env("SSL_CERT_DIR", "");
    let stderr = fails(&stranger, &["send-test", "--matrix", "!r:localhost"], 3);
    assert!(
        stderr.contains("TLS with localhost failed: invalid peer certificate")
            && stderr.contains(&format!("(the homeserver {homeserver})")),
        "{stderr}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "nothing more was received");
}

#[test]
fn synapse_s_own_rate_limit_is_waited_out() {
    // Synapse with `rc_message` at one message, then one per 5 s: the
    // second of two updates due at once is refused with 429 and
    // `retry_after_ms` by Synapse itself, and herald waits that long.
    let synapse = synapse::rate_limited();
    let bot = synapse.register("herald");
    let reader = synapse.register("reader");
    let room = reader.create_room("limited", &bot, 0);
    let mut site = matrix_site_at(&synapse.url(), &bot.token, 0o600);
    site.ok(&["subscribers", "add", "--matrix", &room]);
    site.start();
    site.write(
        "web.md",
        &incident(
            "Web down",
            "\"web\"",
            &[
                (&format!("{} investigating", recent(2)), "Looking."),
                (&format!("{} identified", recent(1)), "Found it."),
            ],
        ),
    );
    let refusal = || {
        site.ok(&["outbox"])
            .lines()
            .find(|line| line.contains(&room) && line.contains("M_LIMIT_EXCEEDED"))
            .map(str::to_owned)
    };
    site.wait_for("Synapse's 429 in the outbox", || refusal().is_some());
    let refusal = refusal().unwrap_or_default();
    assert!(refusal.contains("\t429 {"), "{refusal}");
    let asked: u64 = refusal
        .split("\"retry_after_ms\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no retry_after_ms in {refusal}"));
    site.wait_for("both messages in the room", || {
        reader.messages(&room).len() == 2
    });
    site.wait_for("the outbox empty", || !site.ok(&["outbox"]).contains(&room));
    let messages = reader.messages(&room);
    let times: Vec<u64> = messages
        .iter()
        .map(|event| event["origin_server_ts"].as_u64().unwrap())
        .collect();
    // The retry came no sooner than Synapse asked.
    assert!(times[1] - times[0] >= asked, "{times:?}, asked {asked} ms");
    let bodies: Vec<&str> = messages
        .iter()
        .map(|event| event["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert_ne!(bodies[0], bodies[1]);
    site.stop();
}
