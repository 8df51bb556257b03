//! herald turns a directory of incident files into feeds, status pages and
//! email. See `ARCHITECTURE.md` for the map.

pub mod address;
pub mod alerts;
pub mod announce;
pub mod clock;
pub mod cmd;
pub mod compose;
pub mod config;
pub mod corpus;
pub mod daemon;
pub mod diag;
pub mod driver;
pub mod endpoint;
pub mod fsio;
pub mod health;
pub mod http;
pub mod mailer;
pub mod maintenance;
pub mod model;
pub mod parse;
pub mod publish;
pub mod render;
pub mod service;
pub mod store;
pub mod token;
pub mod watch;
pub mod webhook;
