//! `status.json` / `api/v2/summary.json` in the shape of Atlassian
//! Statuspage's public summary. Pure.

use crate::corpus::Corpus;

use super::Site;

pub fn summary(_site: &Site, _corpus: &Corpus) -> Vec<u8> {
    todo!("summary")
}
