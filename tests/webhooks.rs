//! Webhooks end to end: `herald run` posting to a real HTTP receiver on
//! 127.0.0.1 (tests/support/receiver.rs), allowed by `[webhooks] allow`.
//! Statuspage's JSON and the chat formats' shapes, signatures checked by
//! Python's `hmac` (not herald's code), idempotency keys, one post per
//! follower and none to others, retries after 503 and after 429 with
//! `Retry-After`, parking on 400, removal on 410, `kill -9` in a fan-out
//! to 2,000 webhooks; and the refusals of `subscribers add --webhook`.

#[path = "support/hooks.rs"]
mod hooks;
#[path = "support/http.rs"]
mod http;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/site.rs"]
mod site;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use hooks::{
    add_changes_hook, add_hook, config, incident_posts, is_component_update, same_shape,
    verify_with_python, write_steady_storage, write_storage,
};
use receiver::{Answer, Receiver};
use serde_json::Value;
use site::{Site, incident, recent};

/// Percent-encodes `text` for a form body.
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Statuspage's incident webhook example (its documentation's, as
/// published), against which herald's JSON is compared field by field.
const STATUSPAGE_EXAMPLE: &str = include_str!("webhooks/statuspage-incident-example.json");

#[test]
fn one_signed_post_per_follower_in_each_format_and_none_to_others() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    let json_secret = add_hook(&site, &receiver.url("/json"), "json", "mail");
    add_hook(&site, &receiver.url("/slack"), "slack", "*");
    add_hook(&site, &receiver.url("/discord"), "discord", "web");
    add_hook(&site, &receiver.url("/teams"), "teams", "mail");
    add_hook(&site, &receiver.url("/mattermost"), "mattermost", "mail");
    add_hook(&site, &receiver.url("/dns"), "json", "dns");
    let listed = site.ok(&["subscribers", "list"]);
    assert!(
        listed.contains(&format!(
            "{}\ten\tmail\tevery\twebhook\n",
            receiver.url("/json")
        )) && listed.contains(&format!(
            "{}\ten\t*\tevery\tslack\n",
            receiver.url("/slack")
        )),
        "{listed}"
    );
    site.start();
    let first = recent(1);
    site.write(
        "storage.md",
        &incident(
            "Storage @everyone <!channel>",
            "\"mail\", \"web\"",
            &[(
                &format!("{first} investigating"),
                "Disks are **failing**. @here see [details](https://example.com/x).",
            )],
        ),
    );
    // Five incident posts, and the JSON follower of mail a component
    // update for it.
    site.wait_for("six posts", || receiver.count() >= 6);
    // Give a stray seventh post the time to arrive.
    std::thread::sleep(Duration::from_millis(500));
    let (updates, received): (Vec<_>, Vec<_>) = receiver
        .received()
        .into_iter()
        .partition(is_component_update);
    let updates: Vec<&str> = updates.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(updates, ["/json"]);
    let mut by_path: BTreeMap<String, usize> = BTreeMap::new();
    for request in &received {
        assert_eq!(request.method, "POST");
        *by_path.entry(request.path.clone()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> =
        ["/discord", "/json", "/mattermost", "/slack", "/teams"]
            .iter()
            .map(|path| ((*path).to_owned(), 1))
            .collect();
    assert_eq!(by_path, expected);

    let keys: Vec<String> = received
        .iter()
        .map(|r| r.header("idempotency-key").to_owned())
        .collect();
    assert!(keys.iter().all(|key| key == &keys[0]), "{keys:?}");
    assert!(keys[0].starts_with("storage/"), "{keys:?}");

    // Statuspage's webhook: meta, page, incident with its update.
    let json = &incident_posts(&receiver, "/json")[0];
    assert_eq!(json.header("content-type"), "application/json");
    verify_with_python(&json_secret, json.header("herald-signature"), &json.body);
    let body = json.json();
    let mut differences = Vec::new();
    let example: Value = serde_json::from_str(STATUSPAGE_EXAMPLE).unwrap();
    same_shape(&example, &body, "", &mut differences);
    assert_eq!(differences, Vec::<String>::new(), "{body}");
    let object = body.as_object().unwrap();
    let mut top: Vec<&str> = object.keys().map(String::as_str).collect();
    top.sort_unstable();
    assert_eq!(top, ["incident", "meta", "page"]);
    let unsubscribe = body["meta"]["unsubscribe"].as_str().unwrap();
    assert!(
        unsubscribe.starts_with("https://status.example.com/unsubscribe/"),
        "{body}"
    );
    assert!(body["meta"]["documentation"].is_string(), "{body}");
    assert_eq!(body["page"]["id"], "status.example.com");
    assert_eq!(body["page"]["status_indicator"], "major");
    assert_eq!(body["page"]["status_description"], "Partial System Outage");
    let incident = &body["incident"];
    assert_eq!(incident["id"], "storage");
    assert_eq!(incident["name"], "Storage @everyone <!channel>");
    assert_eq!(incident["status"], "investigating");
    assert_eq!(
        incident["shortlink"],
        "https://status.example.com/incidents/storage.html"
    );
    let update = &incident["incident_updates"][0];
    assert_eq!(update["status"], "investigating");
    assert_eq!(update["incident_id"], "storage");
    assert!(
        update["body"]
            .as_str()
            .unwrap()
            .starts_with("Disks are **failing**."),
        "{body}"
    );
    let components: Vec<&str> = incident["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(components, ["mail", "web"]);
    for field in ["created_at", "updated_at", "display_at"] {
        assert!(update[field].is_string(), "{field}: {body}");
    }

    // Slack: Block Kit, no mention, a leave link.
    let slack = receiver.to("/slack")[0].json();
    assert!(slack["text"].is_string(), "{slack}");
    let blocks = slack["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    let all = slack.to_string();
    for mention in ["@everyone", "<!channel>", "@here"] {
        assert!(!all.contains(mention), "{mention} in {all}");
    }
    let head = blocks[0]["text"]["text"].as_str().unwrap();
    assert!(
        head.starts_with("*<https://status.example.com/incidents/storage.html#"),
        "{head}"
    );
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("*failing*"),
        "{slack}"
    );
    assert!(all.contains("|Unsubscribe>"), "{all}");

    // Discord: an embed and no mentions allowed.
    let discord = receiver.to("/discord")[0].json();
    assert_eq!(
        discord["allowed_mentions"]["parse"],
        Value::Array(Vec::new())
    );
    let embed = &discord["embeds"][0];
    assert!(
        embed["title"].is_string() && embed["url"].is_string(),
        "{discord}"
    );
    assert!(embed["color"].is_u64(), "{discord}");
    let description = embed["description"].as_str().unwrap();
    assert!(description.contains("**failing**"), "{description}");
    assert!(
        description.contains("[Unsubscribe](https://status.example.com/unsubscribe/"),
        "{description}"
    );

    // Teams: a message with an Adaptive Card attachment.
    let teams = receiver.to("/teams")[0].json();
    assert_eq!(teams["type"], "message");
    let attachment = &teams["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    assert!(
        attachment["content"]["body"].as_array().unwrap().len() >= 3,
        "{teams}"
    );
    let actions = attachment["content"]["actions"].as_array().unwrap();
    assert!(
        actions.iter().all(|a| a["type"] == "Action.OpenUrl"),
        "{teams}"
    );

    // Mattermost: Slack-compatible text, in Markdown.
    let mattermost = receiver.to("/mattermost")[0].json();
    let text = mattermost["text"].as_str().unwrap();
    assert!(
        text.contains("[Unsubscribe](https://status.example.com/unsubscribe/"),
        "{text}"
    );
    assert!(
        !text.contains("@here") && !text.contains("@everyone"),
        "{text}"
    );
    site.stop();
}

#[test]
fn retried_after_503_and_429_parked_on_400_removed_on_410() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    receiver.script("/flaky", vec![Answer::status(503, "busy")]);
    receiver.script(
        "/limited",
        vec![Answer::status(429, "slow down").with("retry-after", "2")],
    );
    receiver.script("/bad", vec![Answer::status(400, "bad payload")]);
    receiver.script("/gone", vec![Answer::status(410, "no such hook")]);
    receiver.script(
        "/moved",
        vec![Answer::status(302, "").with("location", &receiver.url("/elsewhere"))],
    );
    receiver.script("/huge", vec![Answer::status(422, &"x".repeat(100_000))]);
    for path in ["/flaky", "/limited", "/bad", "/moved", "/huge"] {
        add_hook(&site, &receiver.url(path), "json", "mail");
    }
    add_hook(&site, &receiver.url("/gone"), "slack", "mail");
    site.start();
    write_steady_storage(&site);
    site.wait_for("the retries", || {
        receiver.to("/flaky").len() >= 2 && receiver.to("/limited").len() >= 2
    });
    let flaky = receiver.to("/flaky");
    assert_eq!(flaky.len(), 2);
    assert_eq!(
        flaky[0].header("idempotency-key"),
        flaky[1].header("idempotency-key")
    );
    let limited = receiver.to("/limited");
    let waited = limited[1].at - limited[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert_eq!(receiver.to("/bad").len(), 1);
    site.wait_for("the parked post in the outbox", || {
        String::from_utf8_lossy(&site.herald(&["outbox"]).stdout).contains("HTTP 400: bad payload")
    });
    let outbox = site.ok(&["outbox"]);
    assert!(
        outbox.contains(&format!("failed\t{}\tstorage@", receiver.url("/bad"))),
        "{outbox}"
    );
    // The revoked chat webhook is gone, and the log says so.
    site.wait_for("the revoked subscription removed", || {
        !site.ok(&["subscribers", "list"]).contains("/gone")
    });
    assert_eq!(receiver.to("/gone").len(), 1);
    assert!(
        site.log().contains("the chat webhook is gone"),
        "{}",
        site.log()
    );
    // A redirect is not followed but parked; a huge reply is cut.
    site.wait_for("the redirect and the huge reply parked", || {
        site.ok(&["outbox"])
            .starts_with("pending 0, retrying 0, failed 3, sent 2")
    });
    let outbox = site.ok(&["outbox"]);
    assert!(outbox.contains("\tHTTP 302\n"), "{outbox}");
    assert!(receiver.to("/elsewhere").is_empty());
    let huge = outbox.lines().find(|line| line.contains("/huge")).unwrap();
    assert!(
        huge.ends_with(&format!("HTTP 422: {}", "x".repeat(300))),
        "{huge}"
    );
    site.stop();
}

#[test]
fn refused_urls_exit_1_with_the_reason() {
    // No `[webhooks] allow`: only public addresses over https.
    let site =
        Site::new(&(site_toml::site("Test status") + &site_toml::components(&[("mail", "Mail")])));
    for (url, reason) in [
        (
            "https://127.0.0.1/hook",
            "127.0.0.1 is a loopback address 127.0.0.1",
        ),
        (
            "https://10.1.2.3/hook",
            "10.1.2.3 is a private address 10.1.2.3",
        ),
        (
            "https://169.254.169.254/latest",
            "169.254.169.254 is a link-local address",
        ),
        ("https://[::1]:8443/hook", "[::1] is a loopback address ::1"),
        (
            "https://[fc00::1]/hook",
            "[fc00::1] is a unique-local address fc00::1",
        ),
        ("https://localhost/hook", "localhost is a loopback address"),
        (
            "http://hooks.example.com/hook",
            "`http://hooks.example.com/hook` is plain http",
        ),
        ("ftp://example.com/", "is not a URL"),
    ] {
        let output = site.herald(&["subscribers", "add", "--webhook", url]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains("refused webhook: "), "{url}: {stderr}");
        assert!(stderr.contains(reason), "{url}: {stderr}");
    }
    assert_eq!(site.ok(&["subscribers", "list"]), "");
    let output = site.herald(&["send-test", "--webhook", "https://127.0.0.1/x"]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn send_test_posts_to_a_webhook_and_remove_takes_the_url() {
    let receiver = Receiver::start();
    let site = Site::new(&config());
    let out = site.ok(&[
        "send-test",
        "--webhook",
        &receiver.url("/t"),
        "--format",
        "slack",
    ]);
    assert_eq!(out, format!("posted to {}\n", receiver.url("/t")));
    let test = receiver.to("/t")[0].json();
    assert!(test["blocks"].is_array(), "{test}");
    receiver.script("/down", vec![Answer::status(500, "oops")]);
    let failed = site.herald(&["send-test", "--webhook", &receiver.url("/down")]);
    assert_eq!(failed.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("HTTP 500: oops"));

    add_hook(&site, &receiver.url("/r"), "json", "*");
    assert_eq!(
        site.ok(&["subscribers", "remove", &receiver.url("/r")]),
        format!("removed {}\n", receiver.url("/r"))
    );
    assert_eq!(site.ok(&["subscribers", "list"]), "");
}

#[test]
fn kill_9_in_a_fan_out_to_2000_webhooks_loses_nothing() {
    const FOLLOWERS: usize = 2000;
    let receiver = Receiver::start();
    receiver.set_delay(Duration::from_millis(2));
    let mut site = Site::new(&config());
    let mut csv = String::from("email,components\n");
    for n in 0..FOLLOWERS {
        csv.push_str(&format!("{},mail\n", receiver.url(&format!("/h/{n}"))));
    }
    csv.push_str(&format!("{},dns\n", receiver.url("/nobody")));
    fs::write(site.path("subscribers.csv"), csv).unwrap();
    site.ok(&["subscribers", "import", "subscribers.csv"]);
    site.start();
    site.write(
        "big.md",
        &incident(
            "Big outage",
            "\"mail\"",
            &[(&format!("{} investigating", recent(0)), "Everyone hears.")],
        ),
    );
    site.wait_for("a quarter of the fan-out", || {
        receiver.count() >= FOLLOWERS / 4
    });
    let status = site.signal("-KILL");
    assert_eq!(status.code(), None, "killed by a signal");
    let at_kill = receiver.count();
    assert!(
        at_kill < FOLLOWERS,
        "the kill came too late to test anything"
    );
    site.start();
    // Each follower gets the incident's post and mail's component update.
    site.wait_for("every follower's posts", || {
        let mut posts: Vec<String> = receiver
            .received()
            .into_iter()
            .map(|r| format!("{} {}", r.path, r.header("idempotency-key")))
            .collect();
        posts.sort();
        posts.dedup();
        posts.len() >= 2 * FOLLOWERS
    });
    site.wait_for("an empty outbox", || {
        site.ok(&["outbox"])
            .starts_with("pending 0, retrying 0, failed 0")
    });
    let received = receiver.received();
    assert!(received.iter().all(|r| r.path != "/nobody"));
    let duplicates = received.len() - 2 * FOLLOWERS;
    // One host: at most herald's per-host limit at once.
    assert!(
        receiver.most_in_flight() <= 16,
        "{}",
        receiver.most_in_flight()
    );
    // Only those in flight at the kill may come twice.
    assert!(
        duplicates <= herald::mailer::IN_FLIGHT,
        "{duplicates} duplicates, more than the {} in flight",
        herald::mailer::IN_FLIGHT
    );
    site.stop();
}

#[test]
fn subscribing_a_webhook_over_http_posts_a_confirmation_and_nothing_else_until_confirmed() {
    let receiver = Receiver::start();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut site = Site::new(&format!(
        "{}\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
        config()
    ));
    add_hook(&site, &receiver.url("/witness"), "json", "mail");
    site.start();

    // Refused: an address outside the allowed ranges, a malformed URL,
    // an unknown format.
    for (body, problem) in [
        (
            "webhook=https%3A%2F%2F10.0.0.1%2Fx".to_owned(),
            "The webhook URL is not a valid https URL",
        ),
        (
            "webhook=nonsense".to_owned(),
            "The webhook URL is not a valid https URL",
        ),
        (
            format!("webhook={}&format=irc", encoded(&receiver.url("/x"))),
            "The webhook format is not one of",
        ),
    ] {
        let refused = http::post_form(port, "/subscribe", "192.0.2.1", &body);
        assert_eq!(refused.status, 400, "{body}: {}", refused.body);
        assert!(refused.body.contains(problem), "{body}: {}", refused.body);
    }

    let body = format!(
        "webhook={}&format=json&components=mail",
        encoded(&receiver.url("/self"))
    );
    let asked = http::post_form(port, "/subscribe", "192.0.2.2", &body);
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(
        asked.body.contains("Confirm in the channel"),
        "{}",
        asked.body
    );
    site.wait_for("the confirmation post", || !receiver.to("/self").is_empty());
    let confirmation = receiver.to("/self")[0].json();
    let confirm_url = confirmation["confirmation"]["confirm_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = confirmation["confirmation"]["signing_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        confirm_url.starts_with("https://status.example.com/confirm/"),
        "{confirmation}"
    );
    assert!(secret.starts_with("whsec_"), "{confirmation}");
    let first = receiver.to("/self")[0].clone();
    verify_with_python(&secret, first.header("herald-signature"), &first.body);
    assert_eq!(
        confirmation["confirmation"]["follows"],
        serde_json::json!(["Mail"])
    );

    // An update before the confirmation reaches the witness, not /self.
    let first = format!("{} investigating", recent(2));
    site.write(
        "storage.md",
        &incident("Storage failure", "\"mail\"", &[(&first, "One.")]),
    );
    site.wait_for("the witness's post", || {
        incident_posts(&receiver, "/witness").len() == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.to("/self").len(),
        1,
        "posted before the confirmation"
    );

    let path = confirm_url.trim_start_matches("https://status.example.com");
    let confirmed = http::get(port, path);
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let listed = site.ok(&["subscribers", "list"]);
    assert!(
        listed.contains(&format!(
            "{}\ten\tmail\tevery\twebhook",
            receiver.url("/self")
        )),
        "{listed}"
    );

    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[
                (&first, "One."),
                (&format!("{} identified", recent(1)), "Two."),
            ],
        ),
    );
    site.wait_for("the update after the confirmation", || {
        receiver.to("/self").len() == 2
    });
    let update = &receiver.to("/self")[1];
    verify_with_python(&secret, update.header("herald-signature"), &update.body);
    assert_eq!(update.json()["incident"]["status"], "identified");
    site.stop();
}

#[test]
fn rekey_gives_webhooks_new_secrets_and_says_so() {
    let receiver = Receiver::start();
    let site = Site::new(&config());
    let before = add_hook(&site, &receiver.url("/k"), "json", "*");
    assert_eq!(before.len(), "whsec_".len() + 32, "{before}");
    let again = site.ok(&["subscribers", "add", "--webhook", &receiver.url("/k")]);
    assert!(
        again.contains(&before),
        "the same URL keeps its secret: {again}"
    );
    let rekeyed = site.ok(&["rekey"]);
    assert!(
        rekeyed.contains("1 webhook(s) now sign with new secrets"),
        "{rekeyed}"
    );
    let after = site.ok(&["subscribers", "add", "--webhook", &receiver.url("/k")]);
    assert!(
        after.starts_with(&format!("updated {} (webhook)", receiver.url("/k"))),
        "{after}"
    );
    assert!(!after.contains(&before), "{after}");
}

#[test]
fn an_import_with_a_refused_or_malformed_url_imports_nothing() {
    let receiver = Receiver::start();
    let site = Site::new(&config());
    fs::write(
        site.path("refused.csv"),
        format!(
            "email,components\n{},mail\nhttps://10.0.0.1/x,mail\n",
            receiver.url("/a")
        ),
    )
    .unwrap();
    let refused = site.herald(&["subscribers", "import", "refused.csv"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused webhook: 10.0.0.1 is a private address 10.0.0.1")
            && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    fs::write(
        site.path("malformed.csv"),
        "a@example.org,mail\n  https://exa mple/,web\n",
    )
    .unwrap();
    let malformed = site.herald(&["subscribers", "import", "malformed.csv"]);
    let stderr = String::from_utf8_lossy(&malformed.stderr);
    assert_eq!(malformed.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("malformed.csv:2:3"), "{stderr}");
    assert!(stderr.contains("is not a URL"), "{stderr}");
    assert_eq!(site.ok(&["subscribers", "list"]), "");
}

#[test]
fn a_webhook_following_one_incident_gets_its_updates_until_the_resolution() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    let first = format!("{} investigating", recent(3));
    let second = format!("{} identified", recent(2));
    let third = format!("{} resolved", recent(1));
    let storage = |updates: &[(&str, &str)]| incident("Storage failure", "\"mail\"", updates);
    site.write("storage.md", &storage(&[(&first, "One.")]));
    let follow = receiver.url("/follow");
    let out = site.ok(&[
        "subscribers",
        "add",
        "--webhook",
        &follow,
        "--incident",
        "storage",
    ]);
    assert!(
        out.starts_with(&format!("added {follow} (webhook)")),
        "{out}"
    );
    add_hook(&site, &receiver.url("/witness"), "json", "*");
    site.start();
    site.write(
        "storage.md",
        &storage(&[(&first, "One."), (&second, "Two.")]),
    );
    site.wait_for("the follower's post", || receiver.to("/follow").len() == 1);
    site.write(
        "other.md",
        &incident(
            "Other",
            "\"mail\"",
            &[(&format!("{} investigating", recent(1)), "Else.")],
        ),
    );
    site.wait_for("the witness's two posts", || {
        incident_posts(&receiver, "/witness").len() == 2
    });
    site.write(
        "storage.md",
        &storage(&[(&first, "One."), (&second, "Two."), (&third, "Fixed.")]),
    );
    site.wait_for("the resolution", || receiver.to("/follow").len() == 2);
    let statuses: Vec<Value> = receiver
        .to("/follow")
        .iter()
        .map(|request| request.json()["incident"]["status"].clone())
        .collect();
    assert_eq!(statuses, ["identified", "resolved"]);
    // The follow ended and nothing else was followed: the webhook is gone.
    site.wait_for("the follower removed", || {
        !site.ok(&["subscribers", "list"]).contains("/follow")
    });
    site.stop();
}

#[test]
fn https_receivers_are_verified_against_the_trusted_roots() {
    let trusted = tls::TestCa::new("herald test CA");
    let stranger = tls::TestCa::new("someone else's CA");
    let good = Receiver::start_tls(trusted.server_config(&["127.0.0.1"]));
    let forged = Receiver::start_tls(stranger.server_config(&["127.0.0.1"]));
    let mut site = Site::new(&config());
    fs::write(site.path("ca.pem"), trusted.pem()).unwrap();
    site.set_env("SSL_CERT_FILE", site.path("ca.pem"));
    site.set_env("SSL_CERT_DIR", "");
    let secret = add_hook(&site, &good.url("/tls"), "json", "mail");
    add_hook(&site, &forged.url("/forged"), "json", "mail");
    site.start();
    site.write(
        "storage.md",
        &incident(
            "Storage failure",
            "\"mail\"",
            &[(&format!("{} investigating", recent(1)), "Disks.")],
        ),
    );
    site.wait_for("the post over TLS", || !good.to("/tls").is_empty());
    let post = &good.to("/tls")[0];
    verify_with_python(&secret, post.header("herald-signature"), &post.body);
    // The other certificate is not trusted: nothing reaches it, and the
    // post waits with the reason.
    site.wait_for("the untrusted receiver's reason in the outbox", || {
        String::from_utf8_lossy(&site.herald(&["outbox"]).stdout)
            .contains("TLS with 127.0.0.1 failed")
    });
    assert!(forged.received().is_empty());
    let outbox = site.ok(&["outbox"]);
    assert!(
        outbox.contains(&format!("retrying\t{}", forged.url("/forged"))),
        "{outbox}"
    );
    site.stop();
}

#[test]
fn only_changes_and_quiet_updates_hold_for_webhooks() {
    let receiver = Receiver::start();
    let mut site = Site::new(&config());
    add_hook(&site, &receiver.url("/every"), "json", "mail");
    add_changes_hook(&site, &receiver.url("/changes"), "mail");
    site.start();
    let updates = [
        (format!("{} investigating", recent(4)), "Disks.".to_owned()),
        (format!("{} update", recent(3)), "Still disks.".to_owned()),
        (
            format!("{} identified", recent(2)),
            "notify: no\nQuietly found.".to_owned(),
        ),
        (
            format!("{} monitoring", recent(1)),
            "Fixed, watching.".to_owned(),
        ),
    ];
    let write = |count: usize| write_storage(&site, "\"mail\"", &updates, count);
    write(1);
    site.wait_for("the first update", || {
        incident_posts(&receiver, "/every").len() == 1
    });
    write(2);
    site.wait_for("the second update", || {
        incident_posts(&receiver, "/every").len() == 2
    });
    write(4);
    site.wait_for("the fourth update", || {
        incident_posts(&receiver, "/every").len() == 3
    });
    site.wait_for("the change", || {
        incident_posts(&receiver, "/changes").len() == 2
    });
    std::thread::sleep(Duration::from_millis(300));
    let statuses = |path: &str| -> Vec<String> {
        incident_posts(&receiver, path)
            .iter()
            .map(|r| r.json()["incident"]["status"].as_str().unwrap().to_owned())
            .collect()
    };
    // The quiet update reaches nobody; a repeat reaches only who wants
    // every update.
    assert_eq!(
        statuses("/every"),
        ["investigating", "investigating", "monitoring"]
    );
    assert_eq!(statuses("/changes"), ["investigating", "monitoring"]);
    site.stop();
}
