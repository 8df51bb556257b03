//! Subscribers' email addresses: one rule for every way an address comes
//! in (`herald subscribers add`, `subscribers import`, `POST /subscribe`),
//! so that one person is one subscriber. Pure: no I/O.
//!
//! An address is one plain `user@domain.tld`: no display name, comment,
//! IP literal, space or control character (so nothing can reach a
//! header), at most 254 bytes, and a domain with a dot. The domain is
//! lowercased (domains are case-insensitive); the local part is kept as
//! written, since only the receiving server may interpret it.

use std::fmt;

/// A checked, normalised subscriber address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(String);

/// Why a text is not an [`Address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Nothing was given.
    Missing,
    /// Something was given, but not one plain address.
    Invalid,
}

/// The most bytes an address may have (RFC 5321's path limit, less the
/// angle brackets).
const MAX_LEN: usize = 254;

impl Address {
    /// Checks `text` (surrounding ASCII spaces ignored) and lowercases
    /// its domain.
    pub fn parse(text: &str) -> Result<Address, Refused> {
        let text = text.trim_matches(' ');
        if text.is_empty() {
            return Err(Refused::Missing);
        }
        if text.len() > MAX_LEN || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Refused::Invalid);
        }
        let parsed: lettre::Address = text.parse().map_err(|_| Refused::Invalid)?;
        let domain = parsed.domain();
        if domain.starts_with('[') || !domain.contains('.') || domain.ends_with('.') {
            return Err(Refused::Invalid);
        }
        let normal = format!("{}@{}", parsed.user(), domain.to_lowercase());
        // Lowercasing may lengthen the address (`İ`, two bytes, becomes
        // `i` and a combining dot, three): what is stored must pass as it
        // is (found by the forms fuzz target).
        if normal.len() > MAX_LEN || normal.parse::<lettre::Address>().is_err() {
            return Err(Refused::Invalid);
        }
        Ok(Address(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_is_lowercased_and_the_user_kept() {
        let parsed = Address::parse("  Anna.Svensson+status@Example.COM ").unwrap();
        assert_eq!(parsed.as_str(), "Anna.Svensson+status@example.com");
        assert_eq!(
            Address::parse("a@Example.COM"),
            Address::parse("a@example.com")
        );
        assert_eq!(
            Address::parse("a@BÜCHER.example").unwrap().as_str(),
            "a@bücher.example"
        );
    }

    #[test]
    fn what_is_stored_passes_as_it_is() {
        // 254 bytes, and one more once `İ` is lowercased.
        let label = "b".repeat(60);
        let last = "c".repeat(254 - "a@".len() - 4 * 61 - 'İ'.len_utf8());
        let text = format!("a@{label}.{label}.{label}.{label}.{last}\u{130}");
        assert_eq!(text.len(), 254);
        assert_eq!(Address::parse(&text), Err(Refused::Invalid));
        let short = Address::parse("a@example.se\u{130}").unwrap();
        assert_eq!(short.as_str(), "a@example.sei\u{307}");
        assert_eq!(Address::parse(short.as_str()), Ok(short.clone()));
    }

    #[test]
    fn everything_but_one_plain_address_is_refused() {
        assert_eq!(Address::parse(""), Err(Refused::Missing));
        assert_eq!(Address::parse("   "), Err(Refused::Missing));
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "no-at-sign",
            "two@@example.com",
            "a@localhost",
            "a@example.com.",
            "a@[192.0.2.1]",
            "Anna <a@example.com>",
            "a b@example.com",
            "a@example.com\r\nBcc: x@example.com",
            "a\u{0}@example.com",
            "a@example.com, b@example.com",
            &long,
        ] {
            assert_eq!(Address::parse(bad), Err(Refused::Invalid), "{bad:?}");
        }
    }
}
