//! Feeds read back the way a reader sees them: feed-rs, with content
//! left as herald wrote it.

#![allow(dead_code, reason = "each test binary uses a part of the support code")]

pub fn read(bytes: &[u8]) -> feed_rs::model::Feed {
    feed_rs::parser::Builder::new()
        .sanitize_content(false)
        .build()
        .parse(bytes)
        .expect("feed-rs reads the feed")
}
