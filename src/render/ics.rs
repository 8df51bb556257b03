//! `maintenance.ics`: scheduled maintenance as an RFC 5545 calendar. Pure.

use crate::corpus::Corpus;

use super::Site;

pub fn calendar(_site: &Site, _corpus: &Corpus) -> Vec<u8> {
    todo!("ics")
}
