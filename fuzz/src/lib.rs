//! The fuzz targets' checks, one function per target in [`checks`]. The
//! main crate's `tests/fuzz.rs` includes the same module to replay the
//! seed corpora and every crash found as ordinary tests.

pub mod checks;
