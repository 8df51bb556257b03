//! Chat messages for incoming webhooks: Slack (Block Kit, `mrkdwn`),
//! Mattermost (Slack-compatible, Markdown), Discord (an embed) and
//! Microsoft Teams (an Adaptive Card). Pure.
//!
//! Each shows the title linked to the incident page, the status, the
//! affected components, the text in the client's markup, and a leave
//! link. Incident text never becomes markup nor a mention: it is escaped
//! for each client, every `@` is followed by a zero-width space (no
//! `@channel`, `@here`, `@everyone`, `@all`), Slack's `<!channel>` cannot
//! be written since `<` is escaped, and Discord is told to allow no
//! mentions at all (`allowed_mentions`). Links in the text keep only
//! `http`, `https` and `mailto` targets.

use chrono::{DateTime, SecondsFormat, Utc};
use pulldown_cmark::{Event, Parser, Tag, TagEnd};
use serde_json::{Value, json};

use crate::model::Format;

/// What every chat format shows.
#[derive(Debug, Clone)]
pub(super) struct Message {
    pub(super) site_title: String,
    pub(super) site_url: String,
    pub(super) title: String,
    /// Where the title links to.
    pub(super) url: String,
    pub(super) status: String,
    pub(super) components_label: String,
    /// Name and status word; the word may be empty.
    pub(super) components: Vec<(String, String)>,
    /// Markdown written by the operator (or herald's own sentence).
    pub(super) body: String,
    /// Label and URL, shown last (the leave link among them).
    pub(super) links: Vec<(String, String)>,
    pub(super) timestamp: DateTime<Utc>,
    pub(super) color: u32,
}

/// Slack's section text holds at most 3,000 characters, Discord's embed
/// description 4,096, Teams' card about 28 KB: bodies are cut to this.
const BODY_CHARS: usize = 2800;

/// The JSON body of `message` for `format` (not [`Format::Json`]).
pub(super) fn render(format: Format, message: &Message) -> Value {
    match format {
        Format::Slack => slack(message),
        Format::Mattermost => mattermost(message),
        Format::Discord => discord(message),
        Format::Teams | Format::Json => teams(message),
    }
}

/// How a client writes emphasis and links, and escapes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// Slack's `mrkdwn`: `*bold*`, `_italic_`, `<url|text>`; only `&`,
    /// `<` and `>` are escaped (as entities).
    Mrkdwn,
    /// CommonMark as Discord, Mattermost and Teams read it: backslash
    /// escapes.
    Markdown,
}

impl Markup {
    fn escape(self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match (self, c) {
                (_, '@') => out.push_str("@\u{200b}"),
                (Markup::Mrkdwn, '&') => out.push_str("&amp;"),
                (Markup::Mrkdwn, '<') => out.push_str("&lt;"),
                (Markup::Mrkdwn, '>') => out.push_str("&gt;"),
                (
                    Markup::Markdown,
                    '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-'
                    | '!' | '|' | '<' | '>' | '~' | ':',
                ) => {
                    out.push('\\');
                    out.push(c);
                }
                (_, c) if c.is_control() && c != '\n' => out.push(' '),
                (_, c) => out.push(c),
            }
        }
        out
    }

    fn bold(self, text: &str) -> String {
        match self {
            Markup::Mrkdwn => format!("*{text}*"),
            Markup::Markdown => format!("**{text}**"),
        }
    }

    fn italic(self, text: &str) -> String {
        format!("_{text}_")
    }

    /// A link to `url` reading `text` (already escaped); only web and
    /// mail targets, others leave the text alone.
    fn link(self, url: &str, text: &str) -> String {
        let Some(url) = safe_url(url) else {
            return text.to_owned();
        };
        match self {
            Markup::Mrkdwn => format!("<{url}|{text}>"),
            Markup::Markdown => format!("[{text}]({url})"),
        }
    }
}

/// `url` if it is `http`, `https` or `mailto`, with the characters that
/// could end a link in any client percent-encoded.
fn safe_url(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    if !["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
    {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.trim().chars() {
        match c {
            '<' | '>' | '|' | '(' | ')' | '[' | ']' | '"' | '\\' | '`' | ' ' => {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

/// The incident text, Markdown, in `markup`: paragraphs, emphasis, links,
/// lists and code kept, everything else as escaped text.
fn convert(markdown: &str, markup: Markup) -> String {
    let mut out = String::new();
    // Text of the open links, innermost last, with their targets.
    let mut links: Vec<(String, String)> = Vec::new();
    let mut emphasis: Vec<String> = Vec::new();
    let push = |out: &mut String,
                links: &mut Vec<(String, String)>,
                emphasis: &mut Vec<String>,
                text: &str| {
        if let Some(open) = emphasis.last_mut() {
            open.push_str(text);
        } else if let Some((_, open)) = links.last_mut() {
            open.push_str(text);
        } else {
            out.push_str(text);
        }
    };
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Emphasis | Tag::Strong) => emphasis.push(String::new()),
            Event::End(end @ (TagEnd::Emphasis | TagEnd::Strong)) => {
                let inner = emphasis.pop().unwrap_or_default();
                let text = if end == TagEnd::Strong {
                    markup.bold(&inner)
                } else {
                    markup.italic(&inner)
                };
                push(&mut out, &mut links, &mut emphasis, &text);
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                links.push((dest_url.to_string(), String::new()))
            }
            Event::End(TagEnd::Link) => {
                if let Some((url, text)) = links.pop() {
                    let link = markup.link(&url, &text);
                    push(&mut out, &mut links, &mut emphasis, &link);
                }
            }
            Event::Start(Tag::Item) => push(&mut out, &mut links, &mut emphasis, "• "),
            Event::End(TagEnd::Item) => out.push('\n'),
            Event::End(
                TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::CodeBlock | TagEnd::BlockQuote(_),
            ) => {
                out.push_str("\n\n");
            }
            Event::End(TagEnd::List(_)) => out.push('\n'),
            Event::Text(text) | Event::Html(text) | Event::InlineHtml(text) => {
                push(&mut out, &mut links, &mut emphasis, &markup.escape(&text));
            }
            Event::Code(text) => {
                let escaped = markup.escape(&text);
                push(&mut out, &mut links, &mut emphasis, &escaped);
            }
            Event::SoftBreak => push(&mut out, &mut links, &mut emphasis, " "),
            Event::HardBreak => push(&mut out, &mut links, &mut emphasis, "\n"),
            _ => {}
        }
    }
    cut(out.trim_end())
}

/// At most [`BODY_CHARS`] characters, an ellipsis marking a cut.
fn cut(text: &str) -> String {
    match text.char_indices().nth(BODY_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// `Status · Components: a (status), b (status)` in `markup`.
fn summary_line(message: &Message, markup: Markup) -> String {
    let mut line = String::new();
    if !message.status.is_empty() {
        line.push_str(&markup.bold(&markup.escape(&message.status)));
    }
    let components: Vec<String> = message
        .components
        .iter()
        .map(|(name, status)| {
            if status.is_empty() {
                markup.escape(name)
            } else {
                format!("{} ({})", markup.escape(name), markup.escape(status))
            }
        })
        .collect();
    if !components.is_empty() {
        if !line.is_empty() {
            line.push_str(" · ");
        }
        line.push_str(&format!(
            "{}: {}",
            markup.escape(&message.components_label),
            components.join(", ")
        ));
    }
    line
}

fn links_line(message: &Message, markup: Markup) -> String {
    let mut links: Vec<String> =
        vec![markup.link(&message.site_url, &markup.escape(&message.site_title))];
    links.extend(
        message
            .links
            .iter()
            .map(|(label, url)| markup.link(url, &markup.escape(label))),
    );
    links.join(" · ")
}

/// Slack: a fallback `text` (notifications) and Block Kit blocks.
fn slack(message: &Message) -> Value {
    let markup = Markup::Mrkdwn;
    let title = markup.link(&message.url, &markup.escape(&message.title));
    let mut blocks = vec![json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": format!("{}\n{}", markup.bold(&title), summary_line(message, markup)).trim_end(),
        },
    })];
    let body = convert(&message.body, markup);
    if !body.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": body } }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": links_line(message, markup) }],
    }));
    json!({
        "text": markup.escape(&fallback(message)),
        "blocks": blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    })
}

/// The one-line text notifications show.
fn fallback(message: &Message) -> String {
    if message.status.is_empty() {
        format!("[{}] {}", message.site_title, message.title)
    } else {
        format!(
            "[{}] {}: {}",
            message.site_title, message.status, message.title
        )
    }
}

/// Mattermost: Slack-compatible `text`, in Markdown.
fn mattermost(message: &Message) -> Value {
    let markup = Markup::Markdown;
    let title = markup.link(&message.url, &markup.escape(&message.title));
    let mut text = format!("#### {title}\n{}", summary_line(message, markup));
    let body = convert(&message.body, markup);
    if !body.is_empty() {
        text.push_str(&format!("\n\n{body}"));
    }
    text.push_str(&format!("\n\n{}", links_line(message, markup)));
    json!({ "text": text.trim_start() })
}

/// Discord: an embed, and no mention allowed whatever the text says.
fn discord(message: &Message) -> Value {
    let markup = Markup::Markdown;
    let mut fields = Vec::new();
    if !message.status.is_empty() {
        fields.push(
            json!({ "name": "Status", "value": markup.escape(&message.status), "inline": true }),
        );
    }
    if !message.components.is_empty() {
        let value: Vec<String> = message
            .components
            .iter()
            .map(|(name, status)| {
                if status.is_empty() {
                    markup.escape(name)
                } else {
                    format!("{}: {}", markup.escape(name), markup.escape(status))
                }
            })
            .collect();
        fields.push(json!({
            "name": markup.escape(&message.components_label),
            "value": value.join("\n"),
            "inline": true,
        }));
    }
    let body = convert(&message.body, markup);
    let description = format!("{body}\n\n{}", links_line(message, markup));
    json!({
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            // Embed titles are plain text, shown as they are.
            "title": message.title.chars().take(256).collect::<String>(),
            "url": safe_url(&message.url),
            "description": description.trim_start(),
            "color": message.color,
            "fields": fields,
            "footer": { "text": message.site_title.chars().take(2048).collect::<String>() },
            "timestamp": message.timestamp.to_rfc3339_opts(SecondsFormat::Secs, true),
        }],
    })
}

/// Teams (a Workflows or incoming webhook): a message with one Adaptive
/// Card attachment.
fn teams(message: &Message) -> Value {
    let markup = Markup::Markdown;
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": markup.link(&message.url, &markup.escape(&message.title)),
        "weight": "Bolder",
        "size": "Medium",
        "wrap": true,
    })];
    let mut facts = Vec::new();
    if !message.status.is_empty() {
        facts.push(json!({ "title": "Status", "value": markup.escape(&message.status) }));
    }
    for (name, status) in &message.components {
        facts.push(json!({ "title": markup.escape(name), "value": markup.escape(status) }));
    }
    if !facts.is_empty() {
        body.push(json!({ "type": "FactSet", "facts": facts }));
    }
    let text = convert(&message.body, markup);
    if !text.is_empty() {
        body.push(json!({ "type": "TextBlock", "text": text, "wrap": true }));
    }
    body.push(json!({
        "type": "TextBlock",
        "text": links_line(message, markup),
        "wrap": true,
        "isSubtle": true,
        "size": "Small",
    }));
    let actions: Vec<Value> = message
        .links
        .iter()
        .filter_map(|(label, url)| {
            Some(json!({ "type": "Action.OpenUrl", "title": label, "url": safe_url(url)? }))
        })
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message(body: &str) -> Message {
        Message {
            site_title: "Example <Status>".into(),
            site_url: "https://status.example.com/".into(),
            title: "Mail @everyone down".into(),
            url: "https://status.example.com/incidents/x.html".into(),
            status: "Investigating".into(),
            components_label: "Affected components".into(),
            components: vec![("Mail".into(), "Major outage".into())],
            body: body.into(),
            links: vec![(
                "Unsubscribe".into(),
                "https://status.example.com/unsubscribe/t".into(),
            )],
            timestamp: Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap(),
            color: 0xcf222e,
        }
    }

    const HOSTILE: &str = "Hi @channel @here <!channel> <!here> @everyone **bold** _it_ [x](javascript:alert(1)) <b>b</b> [ok](https://ok.example/a(b)) `code`";

    #[test]
    fn slack_text_is_mrkdwn_with_entities_and_no_mentions() {
        let text = convert(HOSTILE, Markup::Mrkdwn);
        assert_eq!(
            text,
            "Hi @\u{200b}channel @\u{200b}here &lt;!channel&gt; &lt;!here&gt; @\u{200b}everyone *bold* _it_ x &lt;b&gt;b&lt;/b&gt; <https://ok.example/a%28b%29|ok> code"
        );
    }

    #[test]
    fn markdown_text_is_escaped_and_links_kept_safe() {
        let text = convert(HOSTILE, Markup::Markdown);
        assert_eq!(
            text,
            "Hi @\u{200b}channel @\u{200b}here \\<\\!channel\\> \\<\\!here\\> @\u{200b}everyone **bold** _it_ x \\<b\\>b\\</b\\> [ok](https://ok.example/a%28b%29) code"
        );
        assert_eq!(
            convert("- one\n- two\n\nPara _it_", Markup::Markdown),
            "• one\n• two\n\nPara _it_"
        );
    }

    #[test]
    fn slack_message_has_blocks_a_title_link_and_a_leave_link() {
        let value = slack(&message("Body"));
        let blocks = value["blocks"].as_array().unwrap();
        let head = blocks[0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            head,
            "*<https://status.example.com/incidents/x.html|Mail @\u{200b}everyone down>*\n*Investigating* · Affected components: Mail (Major outage)"
        );
        assert_eq!(blocks[1]["text"]["text"], "Body");
        let foot = blocks[2]["elements"][0]["text"].as_str().unwrap();
        assert!(
            foot.contains("<https://status.example.com/unsubscribe/t|Unsubscribe>"),
            "{foot}"
        );
        assert!(foot.contains("Example &lt;Status&gt;"), "{foot}");
    }

    #[test]
    fn discord_allows_no_mentions() {
        let value = discord(&message("@everyone"));
        assert_eq!(value["allowed_mentions"], json!({ "parse": [] }));
        let description = value["embeds"][0]["description"].as_str().unwrap();
        assert!(
            description.starts_with("@\u{200b}everyone"),
            "{description}"
        );
        assert!(
            description.contains("[Unsubscribe](https://status.example.com/unsubscribe/t)"),
            "{description}"
        );
    }
}
