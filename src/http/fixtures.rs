//! Test-only values shared by the HTTP modules' unit tests. No I/O.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// A header map of `(name, value)` pairs, in order, repeats kept.
pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}
