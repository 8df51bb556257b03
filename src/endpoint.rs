//! Webhook endpoints: a subscriber's URL parsed into its parts, and which
//! addresses herald may connect to for it, so that nobody can point
//! herald at a service inside the operator's network (server-side request
//! forgery). Pure: resolving a name and connecting are the transport's
//! (`crate::mailer`), which asks [`Policy::check`] about every address it
//! resolved, at every connection.
//!
//! A URL must be `https`, and each address its host resolves to must be
//! public: not loopback, private, shared (CGNAT), link-local, unique-local,
//! multicast, unspecified or reserved, also when written as an
//! IPv4-mapped or NAT64 IPv6 address. The operator may allow ranges
//! (`[webhooks] allow`); an address in one of them is allowed, over plain
//! `http` too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A parsed `http(s)://HOST[:PORT][/PATH][?QUERY]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https` rather than `http`.
    pub secure: bool,
    pub host: Host,
    pub port: u16,
    /// The path and query, starting with `/`.
    pub path: String,
}

/// A URL's host: a name to resolve, or an address written in the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Lowercase, without a trailing dot.
    Name(String),
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        let default = if self.secure { 443 } else { 80 };
        write!(f, "{scheme}://{}", self.host)?;
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        f.write_str(&self.path)
    }
}

/// Why a URL cannot be a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` is not a URL, expected https://HOST/PATH")]
    Malformed(String),
    #[error(
        "`{0}` is plain http; webhooks must use https (unless `[webhooks] allow` covers the address)"
    )]
    PlainHttp(String),
    #[error(
        "{host} is {kind} address {ip}; webhooks may only reach public addresses (unless `[webhooks] allow` covers it)"
    )]
    Address {
        host: String,
        kind: &'static str,
        ip: IpAddr,
    },
    #[error("{host} has no address")]
    NoAddress { host: String },
}

impl Endpoint {
    /// Parses `url`: scheme `http` or `https`, a host (a name, an IPv4
    /// address or a bracketed IPv6 one), an optional port, then the path
    /// and query. User info, fragments, spaces and control characters are
    /// refused.
    pub fn parse(url: &str) -> Result<Endpoint, Refusal> {
        let malformed = || Refusal::Malformed(url.to_owned());
        let url = url.trim();
        if url.is_empty()
            || url.len() > 2000
            || url
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '#' || !c.is_ascii())
        {
            return Err(malformed());
        }
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else {
            return Err(malformed());
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') || authority.is_empty() {
            return Err(malformed());
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (ip, after) = bracketed.split_once(']').ok_or_else(malformed)?;
            let ip = Ipv6Addr::from_str(ip).map_err(|_| malformed())?;
            (Host::Ip(IpAddr::V6(ip)), after.strip_prefix(':'))
        } else {
            let (name, port) = match authority.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (authority, None),
            };
            let host = match Ipv4Addr::from_str(name) {
                Ok(ip) => Host::Ip(IpAddr::V4(ip)),
                Err(_) => Host::Name(host_name(name).ok_or_else(malformed)?),
            };
            (host, port)
        };
        if authority.starts_with('[') && !authority.ends_with(']') && port.is_none() {
            return Err(malformed());
        }
        let port = match port {
            None => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(malformed)?,
        };
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Endpoint {
            secure,
            host,
            port,
            path,
        })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A DNS name: dot-separated labels of letters, digits and hyphens,
/// lowercased, a trailing dot dropped. A name made of digits and dots
/// only (an odd way to write an IPv4 address) is refused.
fn host_name(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let labels_ok = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    let numeric = name.chars().all(|c| c.is_ascii_digit() || c == '.');
    (labels_ok && !numeric && !name.starts_with("0x")).then_some(name)
}

/// An address range, `ADDRESS/PREFIX` (a lone address is its own range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Range {
    type Err = String;

    fn from_str(text: &str) -> Result<Range, String> {
        let invalid = || format!("invalid address range `{text}`, expected such as `10.1.0.0/16`");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = IpAddr::from_str(address.trim()).map_err(|_| invalid())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(invalid)?,
        };
        Ok(Range { network, prefix })
    }
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => prefix_equal(
                u128::from(network.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                prefix_equal(network.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn prefix_equal(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

/// What kind of non-public address `ip` is, if it is one.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => special_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return special_v4(v4).or(Some("an IPv4-mapped"));
            }
            let bits = ip.to_bits();
            let within = |network: u128, prefix: u8| prefix_equal(network, bits, prefix);
            if ip.is_unspecified() {
                Some("an unspecified")
            } else if ip.is_loopback() {
                Some("a loopback")
            } else if within(0xfc00 << 112, 7) {
                Some("a unique-local")
            } else if within(0xfe80 << 112, 10) || within(0xfec0 << 112, 10) {
                Some("a link-local")
            } else if ip.is_multicast() {
                Some("a multicast")
            } else if within(0x0064_ff9b << 96, 96) {
                // NAT64: the IPv4 address in its last 32 bits.
                let v4 = Ipv4Addr::from_bits(bits as u32);
                special_v4(v4).map(|_| "a NAT64 (to a non-public IPv4)")
            } else if within(0x2001_0db8 << 96, 32) || within(0x0100 << 112, 64) {
                Some("a reserved")
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if a == 0 {
        Some("an unspecified")
    } else if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_private() {
        Some("a private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (CGNAT)")
    } else if ip.is_link_local() {
        Some("a link-local")
    } else if ip.is_multicast() {
        Some("a multicast")
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b & 0xfe) == 18) {
        Some("a reserved")
    } else {
        None
    }
}

/// Which addresses webhooks may reach: public ones over https, and those
/// in the operator's ranges over either scheme.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<Range>,
}

impl Policy {
    /// Whether `endpoint` may connect to `ip`, one of the addresses its
    /// host resolved to (or the address written in the URL).
    pub fn check(&self, endpoint: &Endpoint, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow.iter().any(|range| range.contains(ip)) {
            return Ok(());
        }
        if !endpoint.secure {
            return Err(Refusal::PlainHttp(endpoint.to_string()));
        }
        match special(ip) {
            Some(kind) => Err(Refusal::Address {
                host: endpoint.host.to_string(),
                kind,
                ip,
            }),
            None => Ok(()),
        }
    }

    /// The addresses of `resolved` that `endpoint` may connect to; an
    /// error (the first refusal) if there are none.
    pub fn filter(
        &self,
        endpoint: &Endpoint,
        resolved: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Vec<IpAddr>, Refusal> {
        let mut allowed = Vec::new();
        let mut refused = None;
        for ip in resolved {
            match self.check(endpoint, ip) {
                Ok(()) => allowed.push(ip),
                Err(refusal) => {
                    refused.get_or_insert(refusal);
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(refusal)) => Err(refusal),
            (true, None) => Err(Refusal::NoAddress {
                host: endpoint.host.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        let endpoint = Endpoint::parse(url).unwrap();
        let Host::Ip(ip) = endpoint.host else {
            panic!("{url} has no address")
        };
        Policy::default()
            .check(&endpoint, ip)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn urls_parse_into_scheme_host_port_and_path() {
        let endpoint = Endpoint::parse("HTTPS://Hooks.Example.COM./a/b?c=d").unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                secure: true,
                host: Host::Name("hooks.example.com".into()),
                port: 443,
                path: "/a/b?c=d".into()
            }
        );
        assert_eq!(endpoint.to_string(), "https://hooks.example.com/a/b?c=d");
        let v6 = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!(v6.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!((v6.port, v6.path.as_str()), (8080, "/"));
        assert_eq!(v6.to_string(), "http://[::1]:8080/");
        for bad in [
            "",
            "ftp://example.com/",
            "https://",
            "https://user:pw@example.com/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://exa mple.com/",
            "https://example.com/#frag",
            "https://[::1/",
            "https://-bad.example/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://exämple.com/",
            "example.com",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Refusal::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn non_public_addresses_are_refused_by_kind() {
        assert_eq!(
            refused("https://127.0.0.1/"),
            "127.0.0.1 is a loopback address 127.0.0.1; webhooks may only reach public addresses (unless `[webhooks] allow` covers it)"
        );
        for (url, kind) in [
            ("https://10.2.3.4/", "a private"),
            ("https://172.16.0.1/", "a private"),
            ("https://192.168.1.1/", "a private"),
            ("https://169.254.169.254/", "a link-local"),
            ("https://100.64.0.1/", "a shared (CGNAT)"),
            ("https://224.0.0.1/", "a multicast"),
            ("https://0.0.0.0/", "an unspecified"),
            ("https://255.255.255.255/", "a reserved"),
            ("https://[::1]/", "a loopback"),
            ("https://[::]/", "an unspecified"),
            ("https://[fc00::1]/", "a unique-local"),
            ("https://[fd12:3456::1]/", "a unique-local"),
            ("https://[fe80::1]/", "a link-local"),
            ("https://[ff02::1]/", "a multicast"),
            ("https://[::ffff:127.0.0.1]/", "a loopback"),
            ("https://[::ffff:10.0.0.1]/", "a private"),
            (
                "https://[64:ff9b::a00:1]/",
                "a NAT64 (to a non-public IPv4)",
            ),
        ] {
            let message = refused(url);
            assert!(
                message.contains(&format!(" is {kind} address")),
                "{url}: {message}"
            );
        }
        let public = Endpoint::parse("https://93.184.215.14/").unwrap();
        assert_eq!(
            Policy::default().check(&public, "93.184.215.14".parse().unwrap()),
            Ok(())
        );
        let v6 = Endpoint::parse("https://[2606:4700::1111]/").unwrap();
        assert_eq!(
            Policy::default().check(&v6, "2606:4700::1111".parse().unwrap()),
            Ok(())
        );
    }

    #[test]
    fn plain_http_is_refused_outside_the_allowed_ranges() {
        let endpoint = Endpoint::parse("http://93.184.215.14/hook").unwrap();
        let ip: IpAddr = "93.184.215.14".parse().unwrap();
        assert_eq!(
            Policy::default()
                .check(&endpoint, ip)
                .unwrap_err()
                .to_string(),
            "`http://93.184.215.14/hook` is plain http; webhooks must use https (unless `[webhooks] allow` covers the address)"
        );
        let policy = Policy {
            allow: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.1.0.0/16".parse().unwrap(),
            ],
        };
        let local = Endpoint::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(policy.check(&local, "127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(policy.check(&local, "10.1.200.3".parse().unwrap()), Ok(()));
        assert!(policy.check(&local, "10.2.0.1".parse().unwrap()).is_err());
        assert!(policy.check(&endpoint, ip).is_err());
    }

    #[test]
    fn a_name_is_allowed_only_the_addresses_it_may_reach() {
        let endpoint = Endpoint::parse("https://hooks.example.com/").unwrap();
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let policy = Policy::default();
        assert_eq!(
            policy.filter(&endpoint, [loopback, public]),
            Ok(vec![public])
        );
        assert_eq!(
            policy
                .filter(&endpoint, [loopback])
                .unwrap_err()
                .to_string(),
            "hooks.example.com is a loopback address 127.0.0.1; webhooks may only reach public addresses (unless `[webhooks] allow` covers it)"
        );
        assert_eq!(
            policy.filter(&endpoint, []).unwrap_err().to_string(),
            "hooks.example.com has no address"
        );
    }

    #[test]
    fn ranges_parse_and_contain() {
        let range: Range = "10.1.0.0/16".parse().unwrap();
        assert!(range.contains("10.1.255.255".parse().unwrap()));
        assert!(!range.contains("10.2.0.0".parse().unwrap()));
        assert!(!range.contains("::1".parse().unwrap()));
        let v6: Range = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let one: Range = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        let all: Range = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::/129"] {
            assert!(bad.parse::<Range>().is_err(), "{bad}");
        }
    }
}
