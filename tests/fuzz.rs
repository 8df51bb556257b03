//! The fuzz targets' checks (`fuzz/src/checks.rs`, included here) as
//! ordinary tests, without cargo-fuzz or a nightly toolchain: on the
//! committed seed corpora (`fuzz/corpus/TARGET/`), and on every input that
//! once crashed a target (`tests/fuzz/TARGET/`), so that a crash fixed
//! stays fixed. `scripts/fuzz` runs the targets themselves.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::panic;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs each target's check on every file of `root/TARGET/`; fails with
/// the files that panicked. Returns how many files ran.
fn replay(root: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    let mut ran = 0;
    let mut failed = Vec::new();
    for (target, check) in checks::TARGETS {
        for file in files(&root.join(target)) {
            let data = std::fs::read(&file).unwrap();
            ran += 1;
            if panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert_eq!(failed, Vec::<String>::new(), "inputs that fail their check");
    ran
}

#[test]
fn seed_corpora_pass_their_checks() {
    assert!(replay("fuzz/corpus") >= 4);
}

#[test]
fn every_crash_found_stays_fixed() {
    replay("tests/fuzz");
}

/// The render seeds are incidents that parse, so that the render target
/// starts from pages rather than from parse errors.
#[test]
fn render_seeds_parse_cleanly() {
    let config =
        herald::config::parse(Path::new("herald.toml"), include_str!("../herald.toml")).unwrap();
    let context = herald::parse::Context {
        timezone: config.site.timezone,
        components: &config.components,
        languages: &config.site.languages,
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/render");
    let seeds = files(&dir);
    assert!(!seeds.is_empty());
    for file in seeds {
        let text = std::fs::read_to_string(&file).unwrap();
        for part in text.split('\0') {
            let (incident, diagnostics) =
                herald::parse::parse_incident(Path::new("seed.md"), part, &context);
            assert!(
                incident.is_some() && !diagnostics.iter().any(|d| d.is_error()),
                "{}: {diagnostics:?}",
                file.display()
            );
        }
    }
}
