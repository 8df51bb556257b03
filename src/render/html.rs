//! HTML pages from minijinja templates: built in, overridable from
//! `paths.templates`. Pure: override texts are passed in by the caller.

use crate::corpus::Corpus;
use crate::model::Incident;

use super::Site;

#[derive(Debug, thiserror::Error)]
#[error("rendering template {name}")]
pub struct RenderError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

pub struct Templates {}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {}
    }
}

pub fn index(_site: &Site, _corpus: &Corpus) -> Result<Vec<u8>, RenderError> {
    todo!("index")
}

pub fn incident(_site: &Site, _incident: &Incident) -> Result<Vec<u8>, RenderError> {
    todo!("incident")
}

pub fn month(
    _site: &Site,
    _corpus: &Corpus,
    _year: i32,
    _month: u32,
) -> Result<Vec<u8>, RenderError> {
    todo!("month")
}

pub fn stylesheet(_site: &Site) -> Vec<u8> {
    todo!("css")
}
