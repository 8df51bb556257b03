//! herald turns a directory of incident files into feeds, status pages and
//! email. See `ARCHITECTURE.md` for the map.

pub mod config;
pub mod corpus;
pub mod diag;
pub mod model;
pub mod parse;
pub mod render;
