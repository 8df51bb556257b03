//! Rate limits: token buckets in memory, keyed by client or by email
//! address, and whom "client" means. Pure: no I/O and no clock read; the
//! caller passes the instant each request is counted at.
//!
//! **Bounded.** Each table holds at most [`MAX_KEYS`] keys; when full, idle
//! ones are dropped, and if none are idle new keys are refused, so memory
//! stays bounded under a flood.
//!
//! **Client address.** The peer address, except that a peer on loopback is
//! taken to be the operator's reverse proxy, and then the last entry of
//! `X-Forwarded-For` (the one that proxy added) is the client. Without
//! that, every client behind the proxy would share one bucket. A proxy on
//! another host is not trusted: listen on loopback behind a local proxy.
//! IPv6 clients count per /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Keys per rate-limit table.
pub const MAX_KEYS: usize = 100_000;

/// Whom the per-client limit counts: see the module doc.
pub fn client_key(peer: SocketAddr, headers: &HeaderMap) -> String {
    let peer = peer.ip().to_canonical();
    let forwarded = peer
        .is_loopback()
        .then(|| {
            let value = headers.get_all("x-forwarded-for").iter().next_back()?;
            value
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    match forwarded.unwrap_or(peer).to_canonical() {
        IpAddr::V4(address) => address.to_string(),
        IpAddr::V6(address) => {
            let segments = address.segments();
            let prefix = Ipv6Addr::new(
                segments[0],
                segments[1],
                segments[2],
                segments[3],
                0,
                0,
                0,
                0,
            );
            format!("{prefix}/64")
        }
    }
}

/// Token buckets per key: `burst` requests at once, one more every
/// `every`.
pub struct Limiter {
    burst: f64,
    every: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Limiter {
    pub fn new(burst: f64, every: Duration) -> Limiter {
        Limiter {
            burst,
            every,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let earned =
            now.saturating_duration_since(bucket.at).as_secs_f64() / self.every.as_secs_f64();
        (bucket.tokens + earned).min(self.burst)
    }

    /// Takes one token for `key` at `now`, or says how long until one is
    /// there.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= MAX_KEYS {
            buckets.retain(|_, bucket| self.refilled(*bucket, now) < self.burst);
            if buckets.len() >= MAX_KEYS {
                return Err(self.every);
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(self.every.mul_f64(1.0 - tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fixtures::headers;

    #[test]
    fn clients_are_peers_unless_a_local_proxy_says_otherwise() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4")]);
        assert_eq!(client_key(local, &forwarded), "198.51.100.4");
        assert_eq!(client_key(remote, &forwarded), "192.0.2.7");
        assert_eq!(client_key(local, &headers(&[])), "127.0.0.1");
        assert_eq!(
            client_key(local, &headers(&[("x-forwarded-for", "not an address")])),
            "127.0.0.1"
        );
        let v6: SocketAddr = "[2001:db8:1:2:3:4:5:6]:443".parse().unwrap();
        assert_eq!(client_key(v6, &headers(&[])), "2001:db8:1:2::/64");
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:443".parse().unwrap();
        assert_eq!(client_key(mapped, &headers(&[])), "192.0.2.7");
    }

    #[test]
    fn buckets_allow_a_burst_then_one_per_interval() {
        let limiter = Limiter::new(3.0, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("a", start), Ok(()));
        }
        assert_eq!(limiter.check("a", start), Err(Duration::from_secs(60)));
        assert_eq!(limiter.check("b", start), Ok(()), "keys are separate");
        let later = start + Duration::from_secs(30);
        assert_eq!(limiter.check("a", later), Err(Duration::from_secs(30)));
        assert_eq!(limiter.check("a", start + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn a_full_table_drops_idle_keys_and_refuses_new_ones_while_busy() {
        let limiter = Limiter::new(1.0, Duration::from_secs(60));
        let start = Instant::now();
        for key in 0..MAX_KEYS {
            assert_eq!(limiter.check(&key.to_string(), start), Ok(()));
        }
        assert_eq!(limiter.check("new", start), Err(Duration::from_secs(60)));
        // A minute on, every key is idle again and is dropped.
        assert_eq!(
            limiter.check("new", start + Duration::from_secs(60)),
            Ok(())
        );
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
