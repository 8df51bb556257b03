//! [`Announcement`] × a Matrix room → the content of one `m.room.message`
//! event and the transaction id it is sent with. Pure.
//!
//! The event is an `m.notice` (what bots send: clients show it quieter
//! and bots do not answer it) with a plain `body` and an
//! `org.matrix.custom.html` `formatted_body`: the status and the title
//! linked to the incident page, the affected components with their
//! status, the text, and the leave link. Incident text cannot mention
//! anyone: the content carries an empty `m.mentions`, which tells
//! homeservers and clients that the event mentions nobody, and every
//! `@room` in what the incident, the configuration or a notice says gets
//! a word joiner (U+2060) after its `@`, so that clients which still match
//! the body against the legacy push rules see no `@room` either. The HTML
//! is herald's own or escaped: titles and component names are escaped,
//! and the body is the incident's HTML, whose raw HTML `parse` escaped.
//!
//! The transaction id derives from the delivery's identity (the update's
//! or notice's identity and the room), so a delivery sent again after a
//! crash, with the same access token, is the same transaction to the
//! homeserver, which keeps the first event rather than posting a second.

use chrono::{DateTime, Utc};
use minijinja::HtmlEscape;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Composer;
use super::variant::{notice_text, status_word};
use crate::announce::Announcement;
use crate::config::Config;
use crate::model::Language;
use crate::model::one_line;
use crate::render::{i18n, incident_url, update_url};

/// One message for one room.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixMessage {
    /// The `{txnId}` of `PUT /rooms/{roomId}/send/m.room.message/{txnId}`.
    pub txn_id: String,
    /// The event's content, as sent.
    pub content: Value,
}

impl Composer {
    /// The message announcing `announcement` to `room`, in `language`,
    /// with the leave link of `token`.
    pub fn matrix(
        &self,
        config: &Config,
        announcement: &Announcement,
        room: &str,
        language: Language,
        token: &str,
    ) -> MatrixMessage {
        let site = &config.site;
        let title = defuse_mentions(&one_line(&announcement.title));
        let status = status_word(&self.strings, language, announcement);
        let (body, body_html) = match &announcement.notice {
            None => (
                defuse_mentions(announcement.body_markdown.trim()),
                defuse_mentions(announcement.body_html.trim()),
            ),
            Some(notice) => {
                let text = defuse_mentions(&notice_text(&self.strings, config, language, notice));
                let html = format!("<p>{}</p>", HtmlEscape(&text));
                (text, html)
            }
        };
        let url = if announcement.notice.is_some() {
            incident_url(&site.base_url, &announcement.incident)
        } else {
            update_url(&site.base_url, &announcement.incident, announcement.instant)
        };
        let leave_url = format!("{}unsubscribe/{token}", site.base_url);
        let components: Vec<String> = announcement
            .components
            .iter()
            .map(|(id, component_status)| {
                let name = config.component_name(id, config.site.language());
                format!(
                    "{} ({})",
                    defuse_mentions(&one_line(name)),
                    i18n::component_status_label(language, *component_status)
                )
            })
            .collect();
        let components_label = self.strings.string(language, "components", "");
        let leave_label = self.strings.string(language, "unsubscribe", "");

        let mut plain = format!("{status}: {title}\n{url}\n");
        let mut html = format!(
            "<p><strong>{}</strong>: <a href=\"{}\">{}</a></p>\n",
            HtmlEscape(&status),
            HtmlEscape(&url),
            HtmlEscape(&title)
        );
        if !components.is_empty() {
            let list = components.join(", ");
            plain.push_str(&format!("{components_label}: {list}\n"));
            html.push_str(&format!(
                "<p>{}: {}</p>\n",
                HtmlEscape(&components_label),
                HtmlEscape(&list)
            ));
        }
        if !body.is_empty() {
            plain.push_str(&format!("\n{body}\n"));
            html.push_str(&body_html);
            html.push('\n');
        }
        plain.push_str(&format!("\n{leave_label}: {leave_url}"));
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            HtmlEscape(&leave_url),
            HtmlEscape(&leave_label)
        ));
        MatrixMessage {
            txn_id: txn_id(announcement, room),
            content: json!({
                "msgtype": "m.notice",
                "body": plain,
                "format": "org.matrix.custom.html",
                "formatted_body": html,
                "m.mentions": {},
            }),
        }
    }
}

impl Composer {
    /// The message of `herald send-test --matrix`, in the site's
    /// language; its transaction id comes from `now`, so each test is a
    /// new event.
    pub fn matrix_test(&self, config: &Config, now: DateTime<Utc>) -> MatrixMessage {
        let language = config.site.language();
        let site_title = one_line(&config.site.title);
        let subject = self.strings.string(language, "test_subject", &site_title);
        let text = defuse_mentions(&self.strings.string(language, "hook_test_body", &site_title));
        MatrixMessage {
            txn_id: format!(
                "herald-test-{}",
                now.timestamp_nanos_opt().unwrap_or_default()
            ),
            content: json!({
                "msgtype": "m.notice",
                "body": format!("{subject}: {text}"),
                "format": "org.matrix.custom.html",
                "formatted_body": format!(
                    "<p><strong>{}</strong>: {}</p>",
                    HtmlEscape(&subject),
                    HtmlEscape(&text)
                ),
                "m.mentions": {},
            }),
        }
    }
}

/// The transaction id of `announcement`'s message to `room`: `herald-`
/// and 32 hex digits of a SHA-256 over the delivery's identity.
pub fn txn_id(announcement: &Announcement, room: &str) -> String {
    let notice = announcement
        .notice
        .map_or_else(String::new, |notice| notice.kind.code());
    let identity = format!(
        "{}\n{}\n{notice}\n{room}",
        announcement.incident.as_str(),
        announcement.instant.format("%Y%m%dT%H%M%SZ"),
    );
    let digest = Sha256::digest(identity.as_bytes());
    let hex = data_encoding::HEXLOWER.encode(&digest[..16]);
    format!("herald-{hex}")
}

/// `text` with a word joiner after the `@` of every `@room` (in any
/// case), so that it mentions no room.
pub fn defuse_mentions(text: &str) -> String {
    const MENTION: &str = "@room";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        let is_mention = candidate
            .get(..MENTION.len())
            .is_some_and(|word| word.eq_ignore_ascii_case(MENTION));
        out.push('@');
        if is_mention {
            out.push('\u{2060}');
        }
        rest = &candidate[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{STORAGE, announcement, config};
    use crate::model::{Notice, NoticeKind, Window};
    use chrono::{TimeZone, Utc};

    const ROOM: &str = "!abc:example.org";
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_message_links_the_title_lists_the_components_and_the_leave_link() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let message = Composer::new().matrix(&config, &announcement, ROOM, Language::En, TOKEN);
        assert_eq!(
            message.content,
            json!({
                "msgtype": "m.notice",
                "body": "Identified: Storage failure\n\
                    https://status.example.com/incidents/storage.html#u-20190404T062000Z\n\
                    Affected components: E-post (Partial outage), Webbhotell (Partial outage)\n\
                    \n\
                    Cause found: a <b>disk</b> & its controller.\n\
                    \n\
                    Unsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p><strong>Identified</strong>: <a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;incidents&#x2f;storage.html#u-20190404T062000Z\">Storage failure</a></p>\n\
                    <p>Affected components: E-post (Partial outage), Webbhotell (Partial outage)</p>\n\
                    <p>Cause found: a &lt;b&gt;disk&lt;/b&gt; &amp; its controller.</p>\n\
                    <p><a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;unsubscribe&#x2f;0123456789abcdef0123456789abcdef\">Unsubscribe</a></p>",
                "m.mentions": {},
            })
        );
        assert_eq!(message.txn_id, txn_id(&announcement, ROOM));
    }

    #[test]
    fn incident_text_mentions_no_room_and_becomes_no_markup() {
        let config = config();
        let text = "+++\ntitle = \"Down @room <i>now</i>\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n## 2019-04-04 08:20 investigating\nHey @room, @ROOM and @roomy! <script>x</script> [me](https://matrix.to/#/@room) [x](javascript:alert(1))\n";
        let announcement = announcement(&config, text);
        let message = Composer::new().matrix(&config, &announcement, ROOM, Language::Sv, TOKEN);
        let body = message.content["body"].as_str().unwrap();
        let html = message.content["formatted_body"].as_str().unwrap();
        for shown in [body, html] {
            assert!(!shown.to_ascii_lowercase().contains("@room"), "{shown}");
        }
        assert!(
            !html.contains("<script>") && !html.contains("<i>"),
            "{html}"
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            body.starts_with("Felsökning pågår: Down @\u{2060}room <i>now</i>\n"),
            "{body}"
        );
        assert!(
            body.contains("Hey @\u{2060}room, @\u{2060}ROOM and @\u{2060}roomy!"),
            "{body}"
        );
        assert!(
            html.contains("<a href=\"https:&#x2f;&#x2f;status.example.com&#x2f;incidents&#x2f;storage.html#u-20190404T062000Z\">Down @\u{2060}room &lt;i&gt;now&lt;&#x2f;i&gt;</a>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert_eq!(message.content["m.mentions"], json!({}));
    }

    proptest::proptest! {
        #[test]
        fn no_text_keeps_a_room_mention(text in "(@|room|RoOm|@rOOM|\u{2060}|é| |x){0,12}") {
            let defused = defuse_mentions(&text);
            proptest::prop_assert!(!defused.to_ascii_lowercase().contains("@room"), "{:?}", defused);
            // Only word joiners are added.
            proptest::prop_assert_eq!(defused.replace('\u{2060}', ""), text.replace('\u{2060}', ""));
        }
    }

    #[test]
    fn mentions_are_defused_in_any_case_and_nothing_else_changes() {
        assert_eq!(defuse_mentions("@room"), "@\u{2060}room");
        assert_eq!(defuse_mentions("a@Room b"), "a@\u{2060}Room b");
        assert_eq!(defuse_mentions("@@room"), "@@\u{2060}room");
        assert_eq!(defuse_mentions("@roo"), "@roo");
        assert_eq!(defuse_mentions("ops@example.org é@"), "ops@example.org é@");
        assert_eq!(defuse_mentions(""), "");
    }

    #[test]
    fn a_notice_is_worded_for_the_room() {
        let config = config();
        let mut announcement = announcement(&config, STORAGE);
        let window = Window {
            starts: Utc.with_ymd_and_hms(2019, 4, 10, 20, 0, 0).unwrap(),
            ends: Utc.with_ymd_and_hms(2019, 4, 10, 22, 0, 0).unwrap(),
        };
        announcement.notice = Some(Notice {
            kind: NoticeKind::Started,
            window,
            previous: None,
        });
        let message = Composer::new().matrix(&config, &announcement, ROOM, Language::En, TOKEN);
        let body = message.content["body"].as_str().unwrap();
        assert!(
            body.contains("https://status.example.com/incidents/storage.html\n"),
            "{body}"
        );
        assert!(body.contains("\nThe maintenance window began "), "{body}");
        // A notice is another delivery than the update it is about.
        assert_ne!(
            message.txn_id,
            txn_id(
                &super::super::fixtures::announcement(&config, STORAGE),
                ROOM
            )
        );
    }

    #[test]
    fn a_test_message_is_a_new_transaction_each_time() {
        let config = config();
        let now = Utc.with_ymd_and_hms(2019, 4, 4, 6, 21, 30).unwrap();
        let message = Composer::new().matrix_test(&config, now);
        assert_eq!(
            message.content,
            json!({
                "msgtype": "m.notice",
                "body": "Testmeddelande: Detta är ett testmeddelande från herald: inlägg från Example Hosting status når fram hit.",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p><strong>Testmeddelande</strong>: Detta är ett testmeddelande från herald: inlägg från Example Hosting status når fram hit.</p>",
                "m.mentions": {},
            })
        );
        assert_eq!(message.txn_id, "herald-test-1554358890000000000");
        let later = Composer::new().matrix_test(&config, now + chrono::Duration::nanoseconds(1));
        assert_ne!(later.txn_id, message.txn_id);
    }

    #[test]
    fn transaction_ids_follow_the_delivery() {
        let config = config();
        let first = announcement(&config, STORAGE);
        let id = txn_id(&first, ROOM);
        assert!(id.starts_with("herald-") && id.len() == 7 + 32, "{id}");
        assert_eq!(id, txn_id(&first.clone(), ROOM));
        assert_ne!(id, txn_id(&first, "!other:example.org"));
        let mut later = first.clone();
        later.instant += chrono::Duration::minutes(1);
        assert_ne!(id, txn_id(&later, ROOM));
    }
}
