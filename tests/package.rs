//! The Debian package (`cargo deb`): what it installs where, which files
//! are conffiles, that the configuration it installs is one herald
//! accepts, and that the man page covers every command. How it runs
//! under systemd is tests/systemd.rs.

#[path = "support/deb.rs"]
mod deb;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use deb::run;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn installed(program: &str, arguments: &[&str]) -> bool {
    Command::new(program)
        .args(arguments)
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn package_installs_binary_unit_user_config_man_page_and_templates() {
    // A package test that passes without building a package proves
    // nothing: fail, saying what to install.
    assert!(
        installed("cargo", &["deb", "--version"]) && installed("dpkg-deb", &["--version"]),
        "cargo-deb or dpkg-deb is not installed (scripts/test installs cargo-deb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let deb = deb::build(dir.path());

    let listing =
        String::from_utf8(run(Command::new("dpkg-deb").arg("-c").arg(&deb)).stdout).unwrap();
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    for expected in [
        "./usr/bin/herald",
        "./usr/lib/systemd/system/herald.service",
        "./usr/lib/sysusers.d/herald.conf",
        "./etc/herald/herald.toml",
        "./usr/share/man/man1/herald.1.gz",
        "./usr/share/herald/templates/base.html",
        "./usr/share/herald/templates/style.css",
        "./usr/share/herald/templates/email/message.txt",
        "./usr/share/herald/templates/i18n/sv.toml",
        "./usr/share/doc/herald/copyright",
        "./usr/share/doc/herald/publish-s3.md",
        "./usr/share/doc/herald/mail-relay.md",
    ] {
        assert!(files.contains(&expected), "{expected} missing:\n{listing}");
    }
    assert!(
        listing
            .lines()
            .any(|line| line.starts_with("-rwxr-xr-x") && line.ends_with("./usr/bin/herald")),
        "{listing}"
    );

    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/herald/herald.toml\n"
    );
    // The herald user exists before the service can start.
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers"), "{postinst}");
    assert!(postinst.contains("herald.conf"), "{postinst}");
    let fields =
        String::from_utf8(run(Command::new("dpkg-deb").arg("-I").arg(&deb)).stdout).unwrap();
    assert!(fields.contains(" Package: herald\n"), "{fields}");
    assert!(fields.contains(" Depends: libc6"), "{fields}");

    // The installed files are the repository's, and the binary runs.
    let tree = dir.path().join("tree");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
    let same = |installed: &str, source: &str| {
        assert_eq!(
            fs::read(tree.join(installed)).unwrap(),
            fs::read(root().join(source)).unwrap(),
            "{installed}"
        );
    };
    same(
        "usr/lib/systemd/system/herald.service",
        "systemd/herald.service",
    );
    same("usr/lib/sysusers.d/herald.conf", "systemd/herald.sysusers");
    same("etc/herald/herald.toml", "packaging/herald.toml");
    same(
        "usr/share/herald/templates/index.html",
        "templates/index.html",
    );
    let version = run(Command::new(tree.join("usr/bin/herald")).arg("--version"));
    assert_eq!(String::from_utf8_lossy(&version.stdout), "herald 0.1.0\n");
}

#[test]
fn unit_is_a_hardened_notify_service_as_the_herald_user() {
    let unit = fs::read_to_string(root().join("systemd/herald.service")).unwrap();
    let settings: Vec<&str> = unit
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains('='))
        .collect();
    for expected in [
        "Type=notify",
        "ExecStart=/usr/bin/herald --config /etc/herald/herald.toml run",
        "ExecReload=/bin/sh -c 'kill -HUP $MAINPID'",
        "Restart=on-failure",
        "WatchdogSec=30s",
        "User=herald",
        "StateDirectory=herald herald/incidents herald/public",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(settings.contains(&expected), "{expected} missing:\n{unit}");
    }
    let sysusers = fs::read_to_string(root().join("systemd/herald.sysusers")).unwrap();
    assert!(sysusers.contains("u herald - "), "{sysusers}");
}

#[test]
fn packaged_configuration_is_valid_and_uses_the_state_directory() {
    let text = fs::read_to_string(root().join("packaging/herald.toml")).unwrap();
    let config = herald::config::parse(Path::new("/etc/herald/herald.toml"), &text)
        .unwrap_or_else(|diagnostics| panic!("{diagnostics:?}"));
    assert_eq!(
        config.paths.incidents,
        Path::new("/var/lib/herald/incidents")
    );
    assert_eq!(config.paths.output, Path::new("/var/lib/herald/public"));
    assert_eq!(config.paths.state, Path::new("/var/lib/herald/state"));
    // The built-in templates, until the operator points at overrides.
    assert_eq!(config.paths.templates, None);
    assert!(config.publish.is_none() && config.email.is_none());

    // And the binary builds a site with it.
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().display().to_string();
    let config = dir.path().join("herald.toml");
    fs::write(&config, text.replace("/var/lib/herald", &here)).unwrap();
    fs::create_dir(dir.path().join("incidents")).unwrap();
    fs::write(
        dir.path().join("incidents/db.md"),
        "+++\ntitle = \"Database slow\"\ncomponents = [\"website\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\nLooking.\n",
    )
    .unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&config)
        .arg("build")
        .env("HERALD_LOG", "warn"));
    let feed = fs::read_to_string(dir.path().join("public/feed.atom")).unwrap();
    assert!(feed.contains("Database slow"), "{feed}");
}

/// The subcommands `herald [SUB] --help` lists.
fn subcommands(arguments: &[&str]) -> Vec<String> {
    let output = run(Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(arguments)
        .arg("--help"));
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn man_page_describes_every_command() {
    let page = fs::read_to_string(root().join("packaging/herald.1"))
        .unwrap()
        .replace("\\-", "-");
    let mut missing = Vec::new();
    let top = subcommands(&[]);
    assert!(top.len() >= 9, "{top:?}");
    for command in &top {
        let nested = if command == "help" {
            Vec::new()
        } else {
            subcommands(&[command])
        };
        if nested.is_empty() {
            if !page.contains(&format!("herald {command}")) {
                missing.push(command.clone());
            }
            continue;
        }
        for sub in nested.iter().filter(|sub| *sub != "help") {
            if !page.contains(&format!("herald {command} {sub}")) {
                missing.push(format!("{command} {sub}"));
            }
        }
    }
    assert_eq!(missing, Vec::<String>::new());
}
