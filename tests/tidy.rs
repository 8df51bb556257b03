//! Architecture checks: the pure middle of the pipeline does no I/O.

use std::fs;
use std::path::Path;

const PURE: &[&str] = &[
    "model",
    "endpoint",
    "diag",
    "address",
    "config",
    "parse",
    "alerts",
    "corpus",
    "render",
    "announce",
    "maintenance",
    "compose",
    "http/forms",
    "http/limits",
];
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "fs::",
    "tokio::",
    "rusqlite::",
    "notify::",
    "lettre::transport",
    "SystemTime::now",
    "Instant::now",
    "Utc::now",
    "Local::now",
    "env::var",
    "std::net::TcpStream",
    "std::process",
];

fn sources(path: &Path, found: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            sources(&entry.unwrap().path(), found);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        found.push(path.to_owned());
    }
}

#[test]
fn pure_modules_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    for module in PURE {
        let mut files = Vec::new();
        sources(&src.join(format!("{module}.rs")), &mut files);
        sources(&src.join(module), &mut files);
        assert!(!files.is_empty(), "module {module} not found");
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            // Unit tests may build fixtures on disk.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for needle in FORBIDDEN {
                if code.contains(needle) {
                    offenders.push(format!("{}: {needle}", file.display()));
                }
            }
        }
    }
    assert_eq!(offenders, Vec::<String>::new());
}

/// The modules of `src/`, bottom floor first. A module may use only
/// modules of lower floors: data and calls flow one way, and no module
/// imports one that imports it back.
const FLOORS: &[&[&str]] = &[
    &[
        "model", "diag", "clock", "address", "health", "token", "service", "watch", "endpoint",
    ],
    &["config", "parse"],
    &["corpus", "alerts"],
    &["render"],
    &["announce", "fsio", "maintenance"],
    &["compose", "store"],
    &["driver", "webhook"],
    &["mailer", "http", "publish"],
    &["daemon"],
    &["cmd"],
];

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|floor| floor.contains(&module))
}

/// The `crate::NAME` modules that `code` refers to.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found: Vec<String> = code
        .match_indices("crate::")
        .map(|(at, needle)| {
            code[at + needle.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn imports_point_down_the_floors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: Vec<String> = fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension().is_some_and(|e| e == "rs")).then_some(name)
        })
        .filter(|name| name != "lib" && name != "main")
        .collect();
    modules.sort();
    let unplaced: Vec<&String> = modules.iter().filter(|m| floor_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "give these modules a floor in FLOORS: {unplaced:?}"
    );
    let mut climbing = Vec::new();
    for module in &modules {
        let floor = floor_of(module).unwrap();
        let mut files = Vec::new();
        sources(&src.join(format!("{module}.rs")), &mut files);
        sources(&src.join(module), &mut files);
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            // Doc links may name any module; only code imports.
            let code: String = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for used in crate_modules(&code) {
                if used == *module {
                    continue;
                }
                match floor_of(&used) {
                    Some(used_floor) if used_floor < floor => {}
                    _ => climbing.push(format!(
                        "{} (floor {floor}) uses crate::{used} (floor {:?})",
                        file.strip_prefix(&src).unwrap().display(),
                        floor_of(&used)
                    )),
                }
            }
        }
    }
    assert_eq!(climbing, Vec::<String>::new());
}

#[test]
fn the_floor_check_sees_an_import_that_climbs() {
    assert_eq!(
        crate_modules("use crate::store::Store;\nfn f() { crate::clock::now(); }"),
        ["clock", "store"]
    );
    assert!(floor_of("store") > floor_of("render"));
    assert!(floor_of("render") < floor_of("compose"));
}

#[test]
fn no_source_file_is_over_1000_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("tests"), &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(file).unwrap().lines().count();
            let name = file.strip_prefix(root).unwrap_or(file).display();
            (lines > 1000).then(|| format!("{name}: {lines} lines"))
        })
        .collect();
    long.sort();
    assert_eq!(long, Vec::<String>::new());
}
