//! RSS 2.0 and Atom 1.0 feeds, one entry per update. Pure.
//!
//! Entry ids and dates come from the data only, so an unchanged corpus
//! gives byte-identical feeds.

use crate::model::Component;

use super::{Entry, Site};

/// Title and addresses of one feed.
pub struct FeedMeta {
    pub title: String,
    /// Absolute URL of the feed document itself (`atom:link rel=self`).
    pub self_url_rss: String,
    pub self_url_atom: String,
    /// The HTML page the feed is about.
    pub page_url: String,
}

impl FeedMeta {
    pub fn site(site: &Site) -> FeedMeta {
        let base = site.base_url();
        FeedMeta {
            title: site.config.site.title.clone(),
            self_url_rss: format!("{base}feed.rss"),
            self_url_atom: format!("{base}feed.atom"),
            page_url: base.to_owned(),
        }
    }

    pub fn component(site: &Site, component: &Component) -> FeedMeta {
        let base = site.base_url();
        FeedMeta {
            title: format!("{}: {}", site.config.site.title, component.name),
            self_url_rss: format!("{base}components/{}.rss", component.id),
            self_url_atom: format!("{base}components/{}.atom", component.id),
            page_url: base.to_owned(),
        }
    }
}

pub fn rss(_site: &Site, _meta: &FeedMeta, _entries: &[Entry]) -> Vec<u8> {
    todo!("rss")
}

pub fn atom(_site: &Site, _meta: &FeedMeta, _entries: &[Entry]) -> Vec<u8> {
    todo!("atom")
}
