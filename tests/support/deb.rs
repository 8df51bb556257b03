//! The Debian package of the herald binary these tests run, for the
//! package test (tests/package.rs) and the systemd test
//! (tests/systemd.rs): `cargo deb --no-build` takes the binary cargo
//! already built for the tests, so packaging costs seconds, not a
//! release build of its own. Needs cargo-deb (scripts/test installs it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Builds `DIR/herald.deb` from the repository's packaging and the binary
/// these tests run; panics with cargo-deb's output if it fails.
pub fn build(dir: &Path) -> PathBuf {
    // `--no-build` takes the binary from TARGET/release.
    let target = dir.join("target");
    fs::create_dir_all(target.join("release")).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_herald"), target.join("release/herald")).unwrap();
    let deb = dir.join("herald.deb");
    let mut command = Command::new("cargo");
    command
        .args([
            "deb",
            "--no-build",
            "--fast",
            "--quiet",
            "--locked",
            "--output",
        ])
        .arg(&deb)
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target);
    run(&mut command);
    deb
}

/// Runs `command`, which must succeed; fails with what it printed.
pub fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
