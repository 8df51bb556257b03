//! Status badges: `badge.svg` for the site and `components/ID.svg` per
//! component, in the flat style shields.io made familiar: a grey label on
//! the left, the status in words on a coloured field on the right. Pure.
//!
//! The status is written out, so the badge reads without colour; the SVG
//! has `role="img"`, an `aria-label` and a `<title>` for screen readers.
//! Names are escaped as XML text. Widths come from rough per-character
//! widths of Verdana at 11 px (the font the style asks for), so no font
//! is needed to lay a badge out. [`view`] gives the status page what it
//! shows of each badge: its path, its text and snippets to copy.

use serde::Serialize;

use crate::model::ComponentStatus;

use super::Site;

/// Horizontal padding on each side of a text, in pixels.
const PADDING: f64 = 6.0;

/// The field colour of a status: green, yellow, orange, red, blue, each
/// dark enough for its white text to have a contrast of at least 4.5:1.
fn colour(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Operational => "#2e7d32",
        ComponentStatus::Degraded => "#8a6d00",
        ComponentStatus::PartialOutage => "#c2410c",
        ComponentStatus::MajorOutage => "#b91c1c",
        ComponentStatus::Maintenance => "#1d4ed8",
    }
}

/// The width of `text` in Verdana at 11 px, approximately (to a pixel on
/// ordinary words), rounded up.
fn text_width(text: &str) -> f64 {
    let width: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '!' | '|' | 'I' => 3.5,
            'f' | 'r' | 't' | ' ' | '(' | ')' | '[' | ']' | '-' => 4.5,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.5,
            'A'..='Z' | 'Å' | 'Ä' | 'Ö' => 7.5,
            '0'..='9' => 7.0,
            _ => 6.6,
        })
        .sum();
    width.ceil()
}

/// `text` escaped as XML character data or an attribute value, with
/// control characters dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One badge: `label` on grey, `message` (the status in words) on the
/// status's colour.
pub fn badge(label: &str, message: &str, status: ComponentStatus) -> Vec<u8> {
    let label_width = text_width(label) + 2.0 * PADDING;
    let message_width = text_width(message) + 2.0 * PADDING;
    let width = label_width + message_width;
    let label_x = label_width / 2.0;
    let message_x = label_width + message_width / 2.0;
    let title = escape(&format!("{label}: {message}"));
    let label = escape(label);
    let message = escape(message);
    let fill = colour(status);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{title}">
<title>{title}</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="{label_width}" height="20" fill="#555"/><rect x="{label_width}" width="{message_width}" height="20" fill="{fill}"/><rect width="{width}" height="20" fill="url(#s)"/></g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">
<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">{label}</text><text x="{label_x}" y="14">{label}</text>
<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3" aria-hidden="true">{message}</text><text x="{message_x}" y="14">{message}</text>
</g>
</svg>
"##
    )
    .into_bytes()
}

#[derive(Serialize)]
pub struct BadgeView {
    /// The component's name, or the site's title.
    pub name: String,
    /// Relative to the output root.
    pub path: String,
    /// The badge's text, for the page's `<img alt>`.
    pub alt: String,
    /// Copy-paste snippets linking the badge to the page.
    pub markdown: String,
    pub html: String,
}

/// A badge's view: its path and snippets linking it to the status page.
pub fn view(site: &Site, name: &str, path: &str, status: &str) -> BadgeView {
    let base = site.base_url();
    // Plain words: nothing in the name can close the snippet's brackets
    // or quotes.
    let alt = name
        .replace(['[', ']', '(', ')', '"', '<', '>', '&'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    BadgeView {
        name: name.to_owned(),
        path: path.to_owned(),
        alt: format!("{name}: {status}"),
        markdown: format!("[![{alt}]({base}{path})]({base})"),
        html: format!("<a href=\"{base}\"><img src=\"{base}{path}\" alt=\"{alt}\"></a>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_names_its_status_in_words_and_escapes_names() {
        let svg = String::from_utf8(badge(
            "Mail & <DNS>",
            "Major outage",
            ComponentStatus::MajorOutage,
        ))
        .unwrap();
        assert!(
            svg.contains("<title>Mail &amp; &lt;DNS&gt;: Major outage</title>"),
            "{svg}"
        );
        assert!(
            svg.contains(r#"aria-label="Mail &amp; &lt;DNS&gt;: Major outage""#),
            "{svg}"
        );
        assert!(svg.contains(r##"fill="#b91c1c""##), "{svg}");
        assert!(!svg.contains("<DNS>"), "{svg}");
    }

    #[test]
    fn wider_texts_make_wider_badges() {
        let width = |svg: Vec<u8>| {
            let svg = String::from_utf8(svg).unwrap();
            let start = svg.find("width=\"").unwrap() + 7;
            let end = start + svg[start..].find('"').unwrap();
            svg[start..end].parse::<f64>().unwrap()
        };
        let short = width(badge("DNS", "OK", ComponentStatus::Operational));
        let long = width(badge(
            "Customer portal",
            "Partial outage",
            ComponentStatus::PartialOutage,
        ));
        assert!(long > short + 50.0, "{short} {long}");
    }
}
