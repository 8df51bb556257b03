//! herald's chat payloads, as `herald run` posts them to a real receiver
//! on 127.0.0.1 for an update full of hostile text (mentions, markup,
//! links of every scheme), checked by libraries the chat services' own
//! people publish (`tests/statuspage-client/check-chat.js`): Slack's
//! blocks against `@slack/types`' Block Kit types and Discord's body
//! against `discord-api-types`' `RESTPostAPIWebhookWithTokenJSONBody`,
//! both with the TypeScript compiler, and the Teams card parsed by
//! Microsoft's `adaptivecards`. Needs Node.js and those packages in
//! `tests/statuspage-client/node_modules`; `scripts/test` installs them
//! when missing (`npm ci --prefix tests/statuspage-client`).

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

use std::path::Path;
use std::process::Command;

use hooks::{add_hook, config, incident_posts};
use receiver::Receiver;
use site::{Site, incident, recent};

const HOSTILE_TITLE: &str =
    "Storage @everyone <!channel> *down* | <@U123> [x](javascript:alert(1))";
const HOSTILE_BODY: &str = "@here <b>bold</b> <script>alert(1)</script> **failing** \
    [details](https://example.com/a_(b)?c=1&d=<e>) [evil](javascript:alert(1)) \
    <https://example.com|spoof> `code` > quote\n\n- one\n- two @channel\n\n| a | b |\n|---|---|\n| 1 | 2 |";

fn client_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/statuspage-client"
    ))
}

/// Runs the checker on the payloads in `dir`: its output and whether it
/// passed.
fn check(dir: &Path) -> (String, bool) {
    let modules = client_dir().join("node_modules");
    assert!(
        [
            "@slack/types",
            "discord-api-types",
            "adaptivecards",
            "typescript"
        ]
        .iter()
        .all(|name| modules.join(name).is_dir()),
        "the chat type packages are missing: run scripts/test, or \
         `npm ci --prefix tests/statuspage-client` (needs Node.js and npm)"
    );
    let output = Command::new("node")
        .arg("check-chat.js")
        .arg(dir)
        .current_dir(client_dir())
        .output()
        .expect("Node.js (`node`) runs; scripts/test installs it when missing");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (text, output.status.success())
}

#[test]
fn slack_discord_and_teams_payloads_pass_their_services_validators() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    for format in ["slack", "discord", "teams"] {
        add_hook(&site, &receiver.url(&format!("/{format}")), format, "mail");
    }
    site.start();
    site.write(
        "storage.md",
        &incident(
            HOSTILE_TITLE,
            "\"mail\", \"web\"",
            &[(&format!("{} investigating", recent(1)), HOSTILE_BODY)],
        ),
    );
    site.wait_for("a post in each format", || {
        ["/slack", "/discord", "/teams"]
            .iter()
            .all(|path| !incident_posts(&receiver, path).is_empty())
    });
    let dir = tempfile::tempdir().unwrap();
    for format in ["slack", "discord", "teams"] {
        let post = &incident_posts(&receiver, &format!("/{format}"))[0];
        std::fs::write(dir.path().join(format!("{format}.json")), &post.body).unwrap();
    }
    site.stop();
    let (output, passed) = check(dir.path());
    assert!(passed, "{output}");
    assert_eq!(output, "ok\n");

    // The checker fails what does not fit: a Block Kit text type Slack
    // does not know, a Discord embed field it does not have, an Adaptive
    // Card element that does not exist.
    let edit = |name: &str, from: &str, to: &str| {
        let path = dir.path().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit("slack.json", "\"mrkdwn\"", "\"markdown\"");
    edit("discord.json", "\"color\"", "\"colour\"");
    edit("teams.json", "\"FactSet\"", "\"FactList\"");
    let (output, passed) = check(dir.path());
    assert!(!passed, "{output}");
    for expected in [
        "Type '\"markdown\"' is not assignable",
        "'\"colour\"' does not exist in type 'APIEmbed'",
        "Unknown element type \"FactList\"",
    ] {
        assert!(output.contains(expected), "{expected} not in {output}");
    }
}
