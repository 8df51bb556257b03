//! `[matrix]`: herald's account on a Matrix homeserver, through which it
//! posts to the rooms that subscribed. Pure, like the rest of `config`.

use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatrix {
    pub homeserver: Spanned<String>,
    pub access_token_file: String,
}

/// `[matrix]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    pub homeserver: Homeserver,
    /// Holds herald's access token (read at start and on reload; it must
    /// not be readable by other users).
    pub access_token_file: PathBuf,
}

/// Where the client-server API is: `homeserver`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Homeserver {
    /// `https://` (TLS) rather than `http://` (only for a loopback host).
    pub tls: bool,
    /// A name or an IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// The path before `/_matrix/…`, without a trailing `/`: empty unless
    /// the homeserver is served below a path.
    pub prefix: String,
    /// `homeserver` as written, to name it in messages.
    pub url: String,
}

impl Homeserver {
    /// Parses `https://HOST[:PORT][/PREFIX]`, or `http://` for a loopback
    /// host (the access token must not cross a network in clear text).
    pub fn parse(url: &str) -> Result<Homeserver, String> {
        let (rest, tls, port) = if let Some(rest) = url.strip_prefix("https://") {
            (rest, true, 443)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (rest, false, 80)
        } else {
            return Err(format!(
                "expected an https:// URL such as `https://matrix.example.org`, found `{url}`"
            ));
        };
        if rest.contains(['?', '#', '@', ' ', '\t', '\n', '\r']) {
            return Err(format!(
                "expected only a scheme, a host, a port and a path in `{url}`"
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, digits)) if !digits.contains(']') => {
                let port = digits
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| format!("invalid port `{digits}` in `{url}`"))?;
                (host, port)
            }
            _ => (authority, port),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['[', ']', '/']) {
            return Err(format!("invalid host in `{url}`"));
        }
        if !tls && !is_loopback(host) {
            return Err(format!(
                "`{url}` would send the access token unencrypted; use https:// (plain http:// only to a loopback host)"
            ));
        }
        Ok(Homeserver {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            prefix: path.trim_end_matches('/').to_owned(),
            url: url.to_owned(),
        })
    }

    /// The `Host` header's value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Validates `[matrix]`; problems go to `report` with their place.
pub fn validate(
    raw: &RawMatrix,
    base: &Path,
    report: &mut impl FnMut(Range<usize>, String),
) -> Option<Matrix> {
    match Homeserver::parse(raw.homeserver.get_ref()) {
        Ok(homeserver) => Some(Matrix {
            homeserver,
            access_token_file: base.join(&raw.access_token_file),
        }),
        Err(problem) => {
            report(raw.homeserver.span(), problem);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Homeserver {
        Homeserver::parse(url).unwrap_or_else(|problem| panic!("{url}: {problem}"))
    }

    #[test]
    fn homeservers() {
        let server = parsed("https://matrix.example.org");
        assert_eq!(
            server,
            Homeserver {
                tls: true,
                host: "matrix.example.org".into(),
                port: 443,
                prefix: String::new(),
                url: "https://matrix.example.org".into(),
            }
        );
        assert_eq!(server.authority(), "matrix.example.org");
        let server = parsed("https://Example.org:8448/matrix/");
        assert_eq!(
            (server.host.as_str(), server.port, server.prefix.as_str()),
            ("example.org", 8448, "/matrix")
        );
        assert_eq!(server.authority(), "example.org:8448");
        let server = parsed("http://127.0.0.1:8008");
        assert!(!server.tls);
        assert_eq!(server.authority(), "127.0.0.1:8008");
        let server = parsed("http://[::1]:8008/");
        assert_eq!((server.host.as_str(), server.prefix.as_str()), ("::1", ""));
        assert_eq!(server.authority(), "[::1]:8008");
        assert_eq!(parsed("http://localhost").port, 80);
    }

    #[test]
    fn bad_homeservers_say_why() {
        let problem = |url: &str| Homeserver::parse(url).expect_err(url);
        assert_eq!(
            problem("matrix.example.org"),
            "expected an https:// URL such as `https://matrix.example.org`, found `matrix.example.org`"
        );
        assert_eq!(
            problem("http://matrix.example.org"),
            "`http://matrix.example.org` would send the access token unencrypted; use https:// (plain http:// only to a loopback host)"
        );
        assert_eq!(
            problem("http://10.0.0.1:8008"),
            "`http://10.0.0.1:8008` would send the access token unencrypted; use https:// (plain http:// only to a loopback host)"
        );
        assert_eq!(
            problem("https://m.example.org:99999"),
            "invalid port `99999` in `https://m.example.org:99999`"
        );
        assert_eq!(problem("https://:443"), "invalid host in `https://:443`");
        assert_eq!(
            problem("https://user@m.example.org"),
            "expected only a scheme, a host, a port and a path in `https://user@m.example.org`"
        );
    }
}
