//! Fixtures shared by the store's unit tests (compiled only for tests):
//! instants on one day and subscribers to add. Does no I/O itself.

use chrono::{DateTime, TimeZone, Utc};

use super::NewSubscriber;
use crate::model::{Follows, Language};

/// 2019-04-04 at `hour`:00 UTC.
pub(super) fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2019, 4, 4, hour, 0, 0).unwrap()
}

/// A Swedish-speaking subscriber following `follows` (`["*"]`: all).
pub(super) fn subscriber(address: &str, follows: &[&str]) -> NewSubscriber {
    NewSubscriber {
        address: address.into(),
        channel: crate::model::Channel::Email,
        follows: if follows == ["*"] {
            Follows::All
        } else {
            Follows::Components(follows.iter().map(|c| (*c).to_owned()).collect())
        },
        language: Language::Sv,
        only_changes: false,
    }
}
