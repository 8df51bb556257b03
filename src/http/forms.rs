//! Request bodies: strict `application/x-www-form-urlencoded` and
//! `multipart/form-data` parsing, the two forms the endpoints expect (the
//! subscribe form and the RFC 8058 one-click body), and the email-address
//! check. Pure: no I/O, no clock.
//!
//! A refusal is a problem key of `notice.bad_request` in the templates'
//! i18n files, shown on the 400 or 415 page: `content_type` (a media type
//! not read), `form` (a malformed body, or fields other than the expected
//! ones), `encoding` (bytes or escapes that are not UTF-8 text),
//! `email_missing`, `email_invalid`, `component_unknown` and
//! `incident_unknown`.
//!
//! **Strict.** A form body is ASCII, every pair has `=`, every `%` is
//! followed by two hex digits, and the decoded bytes are UTF-8. A multipart
//! body is UTF-8, every part sits between CRLFs and has a blank line after
//! its headers, and the closing delimiter is there. The subscribe form is
//! `email` once, then `components` any number of times or `incident`
//! once (an incident page's form: follow that incident only), `volume`
//! (`every` or `changes`) at most once, `lang` at most once (one of the
//! site's languages: the page's, on a translated site), and nothing else.
//! The
//! address must be one plain `user@domain.tld` with no space or control
//! character, so nothing can reach a header.

use crate::address::{Address, Refused};
use crate::endpoint::Endpoint;
use crate::model::{Channel, Follows, Format, IncidentId, Language, Languages};

/// How a body is encoded: the two media types the forms are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded` in UTF-8.
    Form,
    /// multipart/form-data with this boundary.
    Multipart(String),
}

/// The subscribe form, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// One plain address, its domain lowercased; or a webhook's URL as
    /// herald stores it.
    pub address: String,
    pub channel: Channel,
    /// The components ticked; none ticked means all.
    pub follows: Follows,
    /// The language of the page the form was on, if it said.
    pub language: Option<Language>,
    /// `volume=changes`: only the updates that change a status.
    pub only_changes: bool,
}

/// What a `Content-Type` value declares, if it is one of the two
/// encodings read: `application/x-www-form-urlencoded`, UTF-8 if a
/// charset is named, or `multipart/form-data` with a boundary of 1 to 70
/// characters.
pub fn body_kind(content_type: &str) -> Option<BodyKind> {
    let (media, parameters) = media_type(content_type);
    match media.as_str() {
        "application/x-www-form-urlencoded" => parameters
            .iter()
            .all(|(name, value)| name != "charset" || value.eq_ignore_ascii_case("utf-8"))
            .then_some(BodyKind::Form),
        "multipart/form-data" => parameters
            .into_iter()
            .find(|(name, value)| name == "boundary" && !value.is_empty() && value.len() <= 70)
            .map(|(_, boundary)| BodyKind::Multipart(boundary)),
        _ => None,
    }
}

/// The media type of a `Content-Type` value, lowercase, and its
/// parameters.
fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut pieces = value.split(';');
    let media = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let parameters = pieces
        .filter_map(|piece| {
            let (name, value) = piece.split_once('=')?;
            Some((
                name.trim().to_ascii_lowercase(),
                value.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    (media, parameters)
}

/// A body as its `Content-Type` value declares it, as (name, value) pairs
/// in order; `content_type` if neither encoding is declared. The whole
/// parser in one call, with no HTTP types: what a fuzz target calls.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    match body_kind(content_type).ok_or("content_type")? {
        BodyKind::Form => parse_form(body),
        BodyKind::Multipart(boundary) => parse_multipart(body, &boundary),
    }
}

fn one_click_field() -> (String, String) {
    ("List-Unsubscribe".to_owned(), "One-Click".to_owned())
}

/// Whether a body in `kind` is exactly one field, `List-Unsubscribe` =
/// `One-Click`: RFC 8058's one-click unsubscribe.
pub fn is_one_click(kind: &BodyKind, body: &[u8]) -> bool {
    match kind {
        BodyKind::Form => parse_form(body).is_ok_and(|fields| fields == [one_click_field()]),
        BodyKind::Multipart(boundary) => is_multipart_one_click(body, boundary),
    }
}

/// Whether a multipart/form-data body is exactly one field,
/// `List-Unsubscribe` = `One-Click`.
fn is_multipart_one_click(body: &[u8], boundary: &str) -> bool {
    parse_multipart(body, boundary).is_ok_and(|fields| fields == [one_click_field()])
}

/// A `multipart/form-data` body as (name, value) pairs: each part's
/// `name` from its `Content-Disposition` (empty without one) and its
/// content. Strict: UTF-8, every part between CRLFs with a blank line
/// after its headers, and closed; the preamble and what follows the
/// closing delimiter are ignored.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "encoding")?;
    let delimiter = format!("--{boundary}");
    let mut parts = text.split(delimiter.as_str());
    // Before the first delimiter: the preamble, ignored.
    parts.next();
    let mut fields = Vec::new();
    for part in parts {
        if part.starts_with("--") {
            return Ok(fields);
        }
        let part = part
            .strip_prefix("\r\n")
            .and_then(|part| part.strip_suffix("\r\n"))
            .ok_or("form")?;
        let (head, content) = part.split_once("\r\n\r\n").ok_or("form")?;
        let name = head.split("\r\n").find_map(|line| {
            let (field, value) = line.split_once(':')?;
            if !field.trim().eq_ignore_ascii_case("content-disposition") {
                return None;
            }
            value.split(';').find_map(|parameter| {
                let (key, value) = parameter.split_once('=')?;
                (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
            })
        });
        fields.push((name.unwrap_or_default(), content.to_owned()));
    }
    // No closing delimiter.
    Err("form")
}

/// An `application/x-www-form-urlencoded` body as (name, value) pairs.
/// Strict: ASCII only, every pair has `=`, every `%` is followed by two
/// hex digits, and the decoded bytes are UTF-8.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    if !body.is_ascii() {
        return Err("encoding");
    }
    let mut fields = Vec::new();
    for pair in body.split(|byte| *byte == b'&') {
        if pair.is_empty() {
            continue;
        }
        let at = pair.iter().position(|byte| *byte == b'=').ok_or("form")?;
        fields.push((decode(&pair[..at])?, decode(&pair[at + 1..])?));
    }
    Ok(fields)
}

fn decode(text: &[u8]) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = text.get(at + 1..at + 3).ok_or("encoding")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "encoding")?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("encoding");
                }
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| "encoding")?);
                at += 2;
            }
            byte => bytes.push(byte),
        }
        at += 1;
    }
    String::from_utf8(bytes).map_err(|_| "encoding")
}

/// The subscribe form's `fields` (`email` once, `components` any number of
/// times, each one that `is_component`, `lang` at most once and one of
/// `languages`, nothing else). No component ticked means every
/// component, as the form says.
pub fn subscription(
    fields: Vec<(String, String)>,
    is_component: impl Fn(&str) -> bool,
    languages: &Languages,
) -> Result<Subscription, &'static str> {
    let mut email = None;
    let mut language = None;
    let mut webhook = None;
    let mut format = None;
    let mut components = Vec::new();
    let mut incident = None;
    let mut volume = None;
    for (name, value) in fields {
        match name.as_str() {
            "email" if email.is_none() => email = Some(value),
            "lang" if language.is_none() => {
                let known = Language::parse(&value)
                    .filter(|parsed| languages.all().contains(parsed))
                    .ok_or("form")?;
                language = Some(known);
            }
            "webhook" if webhook.is_none() => webhook = Some(value),
            "format" if format.is_none() => {
                format = Some(Format::parse(value.trim()).ok_or("format_unknown")?);
            }
            "incident" if incident.is_none() => {
                incident = Some(IncidentId::new(&value).ok_or("incident_unknown")?);
            }
            "volume" if volume.is_none() => match value.as_str() {
                "every" => volume = Some(false),
                "changes" => volume = Some(true),
                _ => return Err("form"),
            },
            "components" => {
                if !is_component(&value) {
                    return Err("component_unknown");
                }
                components.push(value);
            }
            _ => return Err("form"),
        }
    }
    let (address, channel) = match (email, webhook, format) {
        (Some(email), None, None) => (valid_address(&email)?, Channel::Email),
        (None, Some(url), format) => (
            Endpoint::parse(&url)
                .map_err(|_| "webhook_invalid")?
                .to_string(),
            Channel::Webhook(format.unwrap_or(Format::Json)),
        ),
        (None, None, _) => return Err("email_missing"),
        _ => return Err("form"),
    };
    components.sort();
    components.dedup();
    let follows = match incident {
        // One incident, or components: not both.
        Some(_) if !components.is_empty() => return Err("form"),
        Some(id) => Follows::Incident(id),
        None if components.is_empty() => Follows::All,
        None => Follows::Components(components),
    };
    Ok(Subscription {
        address,
        channel,
        follows,
        language,
        only_changes: volume.unwrap_or(false),
    })
}

/// The subscriber address of a form, by the one rule of
/// [`crate::address`] (the command line's too), as a problem key.
pub fn valid_address(text: &str) -> Result<String, &'static str> {
    match Address::parse(text) {
        Ok(address) => Ok(address.to_string()),
        Err(Refused::Missing) => Err("email_missing"),
        Err(Refused::Invalid) => Err("email_invalid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<(String, Follows), &'static str> {
        parse_form(body.as_bytes())
            .and_then(|fields| {
                subscription(
                    fields,
                    |id| ["mail", "web"].contains(&id),
                    &Languages::one(Language::En),
                )
            })
            .map(|subscription| (subscription.address, subscription.follows))
    }

    #[test]
    fn the_form_may_name_one_of_the_sites_languages() {
        let languages = Languages::new(Language::Sv, &[Language::En]).unwrap();
        let language = |body: &str| {
            parse_form(body.as_bytes())
                .and_then(|fields| subscription(fields, |_| true, &languages))
                .map(|subscription| subscription.language)
        };
        assert_eq!(language("email=a@example.org"), Ok(None));
        assert_eq!(
            language("email=a@example.org&lang=en"),
            Ok(Some(Language::En))
        );
        assert_eq!(
            language("lang=sv&email=a@example.org"),
            Ok(Some(Language::Sv))
        );
        for body in [
            "email=a@example.org&lang=de",
            "email=a@example.org&lang=en&lang=sv",
            "email=a@example.org&lang=",
        ] {
            assert_eq!(language(body), Err("form"), "{body}");
        }
    }

    #[test]
    fn subscribe_forms_parse_strictly() {
        let both = Follows::Components(vec!["mail".into(), "web".into()]);
        assert_eq!(
            check("email=anna%40Example.ORG&components=web&components=mail&components=web"),
            Ok(("anna@example.org".into(), both))
        );
        assert_eq!(
            check("email=a%2Bb@example.org"),
            Ok(("a+b@example.org".into(), Follows::All))
        );
        assert_eq!(
            check("incident=storage-2026&email=anna@example.org"),
            Ok((
                "anna@example.org".into(),
                Follows::Incident(IncidentId::new("storage-2026").unwrap())
            ))
        );
        for (body, problem) in [
            (
                "email=anna@example.org&incident=Bad%20Id",
                "incident_unknown",
            ),
            ("email=anna@example.org&incident=", "incident_unknown"),
            ("email=anna@example.org&incident=a&incident=b", "form"),
            ("email=anna@example.org&incident=a&components=web", "form"),
            ("", "email_missing"),
            ("components=web", "email_missing"),
            ("email=", "email_missing"),
            ("email=anna@example.org&components=dns", "component_unknown"),
            ("email=anna@example.org&email=b@example.org", "form"),
            // Only a language of the site (English here).
            ("email=anna@example.org&lang=sv", "form"),
            ("email", "form"),
            (
                "email=anna%40example.org%0D%0ABcc:x@example.org",
                "email_invalid",
            ),
            ("email=anna+smith@example.org", "email_invalid"),
            ("email=Anna <anna@example.org>", "email_invalid"),
            ("email=anna@localhost", "email_invalid"),
            ("email=anna@[127.0.0.1]", "email_invalid"),
            ("email=anna%4", "encoding"),
            ("email=anna%zz", "encoding"),
            ("email=%ff@example.org", "encoding"),
            ("email=ann\u{e4}@example.org", "encoding"),
        ] {
            assert_eq!(check(body), Err(problem), "{body:?}");
        }
        let long = format!("email={}@example.org", "a".repeat(250));
        assert_eq!(check(&long), Err("email_invalid"));
    }

    #[test]
    fn the_volume_is_every_update_unless_changes_are_asked_for() {
        let volume = |body: &str| {
            parse_form(body.as_bytes())
                .and_then(|fields| subscription(fields, |_| true, &Languages::one(Language::En)))
                .map(|subscription| subscription.only_changes)
        };
        assert_eq!(volume("email=a@example.org"), Ok(false));
        assert_eq!(volume("email=a@example.org&volume=every"), Ok(false));
        assert_eq!(volume("volume=changes&email=a@example.org"), Ok(true));
        assert_eq!(volume("email=a@example.org&volume=some"), Err("form"));
        assert_eq!(
            volume("email=a@example.org&volume=every&volume=changes"),
            Err("form")
        );
    }

    #[test]
    fn one_click_bodies_in_both_encodings() {
        let multipart = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
        assert!(is_multipart_one_click(multipart.as_bytes(), "XyZ"));
        assert!(!is_multipart_one_click(multipart.as_bytes(), "other"));
        let wrong = multipart.replace("One-Click", "Two-Clicks");
        assert!(!is_multipart_one_click(wrong.as_bytes(), "XyZ"));
        let unclosed = multipart.replace("--XyZ--\r\n", "");
        assert!(!is_multipart_one_click(unclosed.as_bytes(), "XyZ"));
        let kind = body_kind("multipart/form-data; boundary=\"XyZ\"");
        assert!(matches!(kind, Some(BodyKind::Multipart(boundary)) if boundary == "XyZ"));
        assert_eq!(
            parse_form(b"List-Unsubscribe=One-Click"),
            Ok(vec![one_click_field()])
        );
    }

    #[test]
    fn content_types_name_one_of_two_encodings() {
        let form = Some(BodyKind::Form);
        let multipart = |boundary: &str| Some(BodyKind::Multipart(boundary.to_owned()));
        let long = "b".repeat(70);
        for (value, kind) in [
            ("application/x-www-form-urlencoded", form.clone()),
            (
                " application/x-www-form-urlencoded ; charset=\"utf-8\"",
                form.clone(),
            ),
            ("application/x-www-form-urlencoded; charset=latin1", None),
            ("multipart/form-data; boundary=XyZ", multipart("XyZ")),
            ("Multipart/Form-Data; Boundary=\"a b\"", multipart("a b")),
            (
                "multipart/form-data; charset=utf-8; boundary=XyZ",
                multipart("XyZ"),
            ),
            (
                "multipart/form-data; boundary=; boundary=XyZ",
                multipart("XyZ"),
            ),
            (
                &format!("multipart/form-data; boundary={long}"),
                multipart(&long),
            ),
            (&format!("multipart/form-data; boundary={long}b"), None),
            ("multipart/form-data; boundary=\"\"", None),
            ("multipart/form-data", None),
            ("multipart/mixed; boundary=XyZ", None),
            ("text/plain", None),
            ("", None),
        ] {
            assert_eq!(body_kind(value), kind, "{value}");
        }
    }

    #[test]
    fn parse_reads_either_encoding_and_refuses_others() {
        let fields = vec![("a".to_owned(), "1".to_owned())];
        assert_eq!(
            parse("application/x-www-form-urlencoded", b"a=1"),
            Ok(fields.clone())
        );
        let multipart = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--";
        assert_eq!(
            parse("multipart/form-data; boundary=b", multipart.as_bytes()),
            Ok(fields)
        );
        for content_type in ["text/plain", "application/json", "multipart/form-data", ""] {
            assert_eq!(
                parse(content_type, b"a=1"),
                Err("content_type"),
                "{content_type}"
            );
        }
    }

    #[test]
    fn form_bodies_decode_or_say_why_not() {
        let pairs = |pairs: &[(&str, &str)]| -> Result<Vec<(String, String)>, &'static str> {
            Ok(pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect())
        };
        assert_eq!(parse_form(b""), pairs(&[]));
        assert_eq!(
            parse_form(b"&a=1&&b=x+y%2b%C3%A4&c=&"),
            pairs(&[("a", "1"), ("b", "x y+\u{e4}"), ("c", "")])
        );
        assert_eq!(parse_form(b"a=b=c"), pairs(&[("a", "b=c")]));
        for (body, problem) in [
            (&b"a=1&b"[..], "form"),
            (b"=1&b", "form"),
            (b"a=\xc3\xa4", "encoding"),
            (b"a=%", "encoding"),
            (b"a=%4", "encoding"),
            (b"a=%+4", "encoding"),
            (b"%zz=1", "encoding"),
            (b"a=%C3", "encoding"),
        ] {
            assert_eq!(
                parse_form(body),
                Err(problem),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn multipart_bodies_are_framed_and_closed_or_refused() {
        let part = |name: &str, value: &str| {
            format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let body = format!(
            "preamble\r\n{}{}--b\r\nContent-Type: text/plain\r\n\r\nno name\r\n--b--\r\nepilogue",
            part("a", "1"),
            part("b", "two\r\nlines"),
        );
        assert_eq!(
            parse_multipart(body.as_bytes(), "b"),
            Ok(vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "two\r\nlines".to_owned()),
                (String::new(), "no name".to_owned()),
            ])
        );
        assert_eq!(parse_multipart(b"--b--", "b"), Ok(vec![]));
        let closed = |parts: &str| format!("{parts}--b--\r\n");
        for body in [
            String::new(),
            "no delimiter at all".to_owned(),
            part("a", "1"),
            closed(&part("a", "1").replacen("\r\n", "", 1)),
            closed(&part("a", "1").replace("1\r\n", "1")),
            closed(&part("a", "1").replace("\r\n\r\n", "\r\n")),
        ] {
            assert_eq!(
                parse_multipart(body.as_bytes(), "b"),
                Err("form"),
                "{body:?}"
            );
        }
        let mut latin1 = closed(&part("a", "x")).into_bytes();
        let x = latin1.iter().position(|byte| *byte == b'x').unwrap();
        latin1[x] = 0xe4;
        assert_eq!(parse_multipart(&latin1, "b"), Err("encoding"));
    }

    #[test]
    fn one_click_is_exactly_one_field() {
        let form = BodyKind::Form;
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        for body in [
            &b""[..],
            b"List-Unsubscribe=One-Click&List-Unsubscribe=One-Click",
            b"List-Unsubscribe=One-Click&x=1",
            b"list-unsubscribe=one-click",
            b"List-Unsubscribe=One-Click&x",
            b"List-Unsubscribe=One-Click%",
        ] {
            assert!(
                !is_one_click(&form, body),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let multipart = BodyKind::Multipart("b".to_owned());
        let part =
            "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n";
        assert!(is_one_click(&multipart, format!("{part}--b--").as_bytes()));
        assert!(!is_one_click(
            &multipart,
            format!("{part}{part}--b--").as_bytes()
        ));
        let unnamed = part.replace("; name=\"List-Unsubscribe\"", "");
        assert!(!is_one_click(
            &multipart,
            format!("{unnamed}--b--").as_bytes()
        ));
    }

    #[test]
    fn subscribe_problems_come_in_field_order() {
        assert_eq!(check("components=dns"), Err("component_unknown"));
        assert_eq!(check("email=x&components=dns"), Err("component_unknown"));
        assert_eq!(check("email=a@b.org&email=x&components=dns"), Err("form"));
        assert_eq!(check("components=web&email=x"), Err("email_invalid"));
        assert_eq!(check("a=%zz&email=a@example.org"), Err("encoding"));
    }

    #[test]
    fn addresses_are_one_plain_user_at_domain() {
        assert_eq!(
            valid_address("Anna.B@Mail.Example.ORG"),
            Ok("Anna.B@mail.example.org".to_owned())
        );
        for (text, problem) in [
            ("", "email_missing"),
            ("anna", "email_invalid"),
            ("@example.org", "email_invalid"),
            ("anna@", "email_invalid"),
            ("anna@@example.org", "email_invalid"),
            ("anna@example.org.", "email_invalid"),
            ("anna@example", "email_invalid"),
            ("anna@[192.0.2.1]", "email_invalid"),
            ("anna\u{0}@example.org", "email_invalid"),
            ("anna\u{7f}@example.org", "email_invalid"),
            ("anna@example.org\u{85}", "email_invalid"),
            ("anna\t@example.org", "email_invalid"),
        ] {
            assert_eq!(valid_address(text), Err(problem), "{text:?}");
        }
        let long = |label: usize| {
            let labels = ["b".repeat(63), "c".repeat(63), "d".repeat(label)];
            format!("{}@{}.org", "a".repeat(64), labels.join("."))
        };
        assert_eq!(long(57).len(), 254);
        assert!(valid_address(&long(57)).is_ok());
        let too_long = long(58);
        assert_eq!(valid_address(&too_long), Err("email_invalid"));
    }
}
