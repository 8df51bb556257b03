//! Architecture checks: the pure middle of the pipeline does no I/O.

use std::fs;
use std::path::Path;

const PURE: &[&str] = &[
    "model",
    "diag",
    "config",
    "parse",
    "corpus",
    "render",
    "announce",
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
