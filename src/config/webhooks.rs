//! `[webhooks]`: which addresses webhooks may reach beyond public ones,
//! and how long a post may take. Pure, like the rest of `config`.

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::endpoint::{Policy, Range as AddressRange};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    pub allow: Option<Vec<Spanned<String>>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// `[webhooks]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhooks {
    /// `allow`: the ranges webhooks may reach beyond public addresses.
    pub policy: Policy,
    /// `connect_timeout` (default 10 s): for resolving, connecting and
    /// the TLS handshake, each.
    pub connect_timeout: Duration,
    /// `timeout` (default 30 s): for a whole post, connecting included,
    /// until the reply is read.
    pub timeout: Duration,
}

impl Default for Webhooks {
    fn default() -> Webhooks {
        Webhooks {
            policy: Policy::default(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

/// `[webhooks]` (the defaults without one); problems go to `report`.
pub fn validate(
    raw: Option<&RawWebhooks>,
    report: &mut impl FnMut(Range<usize>, String),
) -> Webhooks {
    let mut webhooks = Webhooks::default();
    let Some(raw) = raw else {
        return webhooks;
    };
    let mut duration = |value: &Option<Spanned<String>>, default: Duration| {
        let Some(text) = value else {
            return default;
        };
        match humantime::parse_duration(text.get_ref()) {
            Ok(duration) if duration.is_zero() => {
                report(
                    text.span(),
                    "a webhook timeout must be longer than 0s".into(),
                );
                default
            }
            Ok(duration) => duration,
            Err(error) => {
                report(
                    text.span(),
                    format!("invalid duration `{}`: {error}", text.get_ref()),
                );
                default
            }
        }
    };
    webhooks.connect_timeout = duration(&raw.connect_timeout, webhooks.connect_timeout);
    webhooks.timeout = duration(&raw.timeout, webhooks.timeout);
    for range in raw.allow.iter().flatten() {
        match range.get_ref().parse::<AddressRange>() {
            Ok(parsed) => webhooks.policy.allow.push(parsed),
            Err(problem) => report(range.span(), problem),
        }
    }
    webhooks
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SITE: &str = "[site]\ntitle = \"x\"\nbase_url = \"https://x/\"\n";

    fn parse(text: &str) -> Result<Webhooks, String> {
        crate::config::parse(Path::new("conf/herald.toml"), text)
            .map(|config| config.webhooks)
            .map_err(|errors| {
                let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
                shown.join("\n")
            })
    }

    #[test]
    fn webhook_timeouts_are_durations_longer_than_zero() {
        let defaults = parse(SITE).unwrap();
        assert_eq!(defaults, Webhooks::default());
        assert_eq!(defaults.connect_timeout, Duration::from_secs(10));
        assert_eq!(defaults.timeout, Duration::from_secs(30));
        let webhooks = parse(&format!(
            "{SITE}[webhooks]\nconnect_timeout = \"2s\"\ntimeout = \"1m\"\nallow = [\"10.1.0.0/16\"]\n"
        ))
        .unwrap();
        assert_eq!(webhooks.connect_timeout, Duration::from_secs(2));
        assert_eq!(webhooks.timeout, Duration::from_secs(60));
        assert_eq!(webhooks.policy.allow.len(), 1);
        assert_eq!(
            parse(&format!(
                "{SITE}[webhooks]\nconnect_timeout = \"soon\"\ntimeout = \"0s\"\n"
            )),
            Err(
                "conf/herald.toml:5:19: error: invalid duration `soon`: expected number at 0\n\
                 conf/herald.toml:6:11: error: a webhook timeout must be longer than 0s"
                    .into()
            )
        );
    }
}
