//! The one place that reads the wall clock. Everything else takes `now` as
//! a parameter, so tests can fix it and outputs stay reproducible.

use chrono::{DateTime, Utc};

#[allow(clippy::disallowed_methods)]
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
