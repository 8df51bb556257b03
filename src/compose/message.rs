//! The messages and their headers: an alert from its variant's rendering
//! (threading, List-Unsubscribe, one-click unsubscribing), the `herald
//! send-test` message, and the pieces every email shares: the sender, the
//! recipient, header-safe text and the text + HTML body. Pure.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::{Composer, Error, Rendered, Variant};
use crate::announce::Announcement;
use crate::config::Config;
use crate::model::one_line;
use crate::model::{IncidentId, Subscriber};

impl Composer {
    /// The email announcing `announcement` to `subscriber`, dated `now`.
    pub fn compose(
        &self,
        config: &Config,
        announcement: &Announcement,
        subscriber: &Subscriber,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let rendered = self.render(config, announcement, &Variant::of(announcement, subscriber))?;
        self.alert(config, announcement, &rendered, subscriber, now)
    }

    /// The email announcing `announcement` to `subscriber`, from what
    /// [`Composer::render`] made for the subscriber's variant.
    pub fn alert(
        &self,
        config: &Config,
        announcement: &Announcement,
        rendered: &Rendered,
        subscriber: &Subscriber,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let language = subscriber.language;
        let site = &config.site;
        let host = site.host();
        let subject = super::variant::subject(&self.strings, config, language, announcement);
        let from = rendered.from.clone();
        let unsubscribe_url = format!("{}unsubscribe/{}", site.base_url, subscriber.token);
        let (text, html) = self.parts_for(config, announcement, rendered, subscriber)?;
        // A notice may share its instant with an update: its kind keeps
        // the two apart.
        let notice = announcement
            .notice
            .map_or_else(String::new, |notice| format!("{}.", notice.kind.code()));
        let message_id = format!(
            "<{}.{}.{notice}{}@{host}>",
            id_atom(&announcement.incident),
            announcement.instant.format("%Y%m%dT%H%M%SZ"),
            subscriber.id
        );
        let root = thread_root(&announcement.incident, host);
        let list_unsubscribe = format!(
            "<{unsubscribe_url}>, <mailto:{}?subject=unsubscribe%20{}>",
            from.email, subscriber.token
        );
        let to = recipient(&subscriber.address)?;
        // Given, so that lettre does not parse it back from the headers.
        let envelope = Envelope::new(Some(from.email.clone()), vec![to.email.clone()])
            .map_err(Error::Build)?;
        let builder = Message::builder()
            .envelope(envelope)
            .from(from)
            .to(to)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id.clone()))
            .in_reply_to(root.clone())
            .references(root)
            .raw_header(header("List-Unsubscribe", list_unsubscribe))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ))
            .raw_header(header("Auto-Submitted", "auto-generated".into()));
        builder
            .multipart(alternative(&message_id, text, html))
            .map_err(Error::Build)
    }

    /// `herald send-test`: one short message to `address`, dated `now`.
    pub fn test_message(
        &self,
        config: &Config,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Message, Error> {
        let language = config.site.language();
        let site_title = one_line(&config.site.title);
        let subject = format!(
            "[{site_title}] {}",
            self.strings.string(language, "test_subject", &site_title)
        );
        let message_id = format!(
            "<test.{}@{}>",
            now.format("%Y%m%dT%H%M%S%.3fZ"),
            config.site.host()
        );
        Message::builder()
            .from(sender(config))
            .to(recipient(address)?)
            .subject(subject)
            .date(SystemTime::from(now))
            .message_id(Some(message_id))
            .raw_header(header("Auto-Submitted", "auto-generated".into()))
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::QuotedPrintable)
                    .body(format!(
                        "{}\n",
                        self.strings.string(language, "test_body", &site_title)
                    )),
            )
            .map_err(Error::Build)
    }
}

/// The Message-ID every email of an incident refers to.
pub fn thread_root(incident: &IncidentId, host: &str) -> String {
    format!("<incident-{}@{host}>", id_atom(incident))
}

/// An incident id as a Message-ID part: ids may hold `..` or end in `.`,
/// which a Message-ID may not, so dots become `=2E` (`=` never occurs in
/// an id, so this stays one-to-one).
fn id_atom(id: &IncidentId) -> String {
    id.as_str().replace('.', "=2E")
}

pub(super) fn sender(config: &Config) -> Mailbox {
    config.email_or_default().from
}

pub(super) fn recipient(address: &str) -> Result<Mailbox, Error> {
    address
        .parse::<lettre::Address>()
        .map(|address| Mailbox::new(None, address))
        .map_err(|source| Error::Recipient {
            address: address.to_owned(),
            source,
        })
}

pub(super) fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// text/plain and text/html, quoted-printable, with a boundary derived
/// from the Message-ID. Quoted-printable writes `=` as `=3D`, so the
/// boundary, which starts with `=_`, cannot occur in either part.
pub(super) fn alternative(message_id: &str, text: String, html: String) -> MultiPart {
    let boundary = format!("=_herald_{:016x}", fnv1a(message_id.as_bytes()));
    MultiPart::alternative()
        .boundary(boundary)
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(text),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(html),
        )
}

/// 64-bit FNV-1a: a stable hash, the same on every machine and release.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::fixtures::{
        STORAGE, announcement, config, formatted, headers, now, part, subscriber,
    };
    use crate::model::Language;

    #[test]
    fn announcement_email_has_every_header() {
        let config = config();
        let announcement = announcement(&config, STORAGE);
        let message = Composer::new()
            .compose(&config, &announcement, &subscriber(Language::En), now())
            .unwrap();
        let text = formatted(&message);
        let headers = headers(&text);
        let expected = [
            "From: \"Example Hosting\" <status@example.com>",
            "To: anna@example.org",
            "Subject: [Example Hosting status] Identified: Storage failure",
            "Date: Thu, 04 Apr 2019 06:21:30 +0000",
            "Message-ID: <storage.20190404T062000Z.42@status.example.com>",
            "In-Reply-To: <incident-storage@status.example.com>",
            "References: <incident-storage@status.example.com>",
            "List-Unsubscribe: <https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef>, <mailto:status@example.com?subject=unsubscribe%200123456789abcdef0123456789abcdef>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Auto-Submitted: auto-generated",
            "MIME-Version: 1.0",
        ];
        for line in expected {
            assert!(
                headers.iter().any(|h| h == line),
                "{line}\nin\n{headers:#?}"
            );
        }
        assert!(
            headers.iter().any(|h| h.starts_with(
                "Content-Type: multipart/alternative; boundary=\"=_herald_"
            )),
            "{headers:#?}"
        );
        assert_eq!(
            part(&text, "Content-Type: text/plain"),
            "Storage failure
Identified - April 4, 2019 08:20 CEST

Cause found: a <b>disk</b> & its controller.

Affected components:
  - E-post: Partial outage
  * Webbhotell: Partial outage (you follow this)

Follow the incident: https://status.example.com/incidents/storage.html#u-20190404T062000Z

-- 
You get this email because you subscribed to updates from Example Hosting status.
Unsubscribe: https://status.example.com/unsubscribe/0123456789abcdef0123456789abcdef"
        );
        let html = part(&text, "Content-Type: text/html");
        assert!(
            html.contains("<p>Cause found: a &lt;b&gt;disk&lt;/b&gt; &amp; its controller.</p>"),
            "{html}"
        );
        assert!(html.contains("<li>E-post: Partial outage</li>"), "{html}");
        assert!(
            html.contains("<li><strong>Webbhotell</strong>: Partial outage (you follow this)</li>"),
            "{html}"
        );
        // Same inputs, same bytes.
        let again = Composer::new()
            .compose(&config, &announcement, &subscriber(Language::En), now())
            .unwrap();
        assert_eq!(formatted(&again), text);
    }

    #[test]
    fn titles_cannot_inject_headers() {
        let config = config();
        let mut announcement = announcement(&config, STORAGE);
        announcement.title = "Down\r\nBcc: victim@example.net\nX-Evil: 1".into();
        let text = formatted(
            &Composer::new()
                .compose(&config, &announcement, &subscriber(Language::En), now())
                .unwrap(),
        );
        let headers = headers(&text);
        assert!(
            headers.contains(
                &"Subject: [Example Hosting status] Identified: Down Bcc: victim@example.net X-Evil: 1"
                    .to_owned()
            ),
            "{headers:#?}"
        );
        assert!(
            !headers
                .iter()
                .any(|h| h.starts_with("Bcc:") || h.starts_with("X-Evil:"))
        );
        assert_eq!(one_line(" a\r\n\tb\u{7}c  "), "a b c");
    }

    #[test]
    fn thread_root_is_one_per_incident_and_dots_are_encoded() {
        let id = IncidentId::new("db..primary.").unwrap();
        assert_eq!(
            thread_root(&id, "status.example.com"),
            "<incident-db=2E=2Eprimary=2E@status.example.com>"
        );
    }

    #[test]
    fn test_message_is_plain_text_to_the_address() {
        let config = config();
        let text = formatted(
            &Composer::new()
                .test_message(&config, "ops@example.org", now())
                .unwrap(),
        );
        let headers = headers(&text);
        assert!(
            headers.contains(&"To: ops@example.org".to_owned()),
            "{headers:#?}"
        );
        assert!(
            headers
                .contains(&"Message-ID: <test.20190404T062130.000Z@status.example.com>".to_owned()),
            "{headers:#?}"
        );
        let error = Composer::new()
            .test_message(&config, "not an address", now())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid recipient address `not an address`"
        );
    }
}
