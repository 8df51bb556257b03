//! `herald run` keeps its corpus up to date file by file (only the files
//! an event names are read again, and their incidents replaced in place):
//! after a sequence of edits, new files, deletions, renames, a duplicate
//! id, a broken file mended and a draft, the daemon's output tree is
//! byte for byte what `herald build` makes of the same files and state.
//!
//! The harness waits for conditions (text in the feed, a line in the
//! log), never for fixed times.

#[path = "support/running.rs"]
mod running;
#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use running::Running;

fn config(output: &str) -> String {
    format!(
        "{}\n[paths]\nincidents = \"incidents\"\noutput = \"{output}\"\nstate = \"state\"\n{}",
        site_toml::site("Test status"),
        site_toml::components(&[("mail", "Mail"), ("web", "Web"), ("dns", "DNS")])
    )
}

/// An incident on `components` whose updates each say `words`, a day
/// apart from `day` (April 2019) on.
fn incident(title: &str, components: &str, day: u32, words: &[&str]) -> String {
    let mut text = format!(
        "+++\ntitle = \"{title}\"\ncomponents = [{components}]\nseverity = \"minor\"\n+++\n"
    );
    let statuses = ["investigating", "identified", "monitoring", "resolved"];
    for (n, words) in words.iter().enumerate() {
        let status = if n + 1 == words.len() && n > 0 {
            "resolved"
        } else {
            statuses[n.min(2)]
        };
        text += &format!(
            "\n## 2019-04-{:02} 08:00 {status}\n{words}\n",
            day + n as u32
        );
    }
    text
}

/// Every file under `root`, by path relative to it.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                files.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_incremental_tree_is_what_a_full_build_makes() {
    let dir = running::site(
        &config("public"),
        &[
            (
                "a.md",
                &incident("Mail slow", "\"mail\"", 1, &["Looking", "Found"]),
            ),
            ("b.md", &incident("Web down", "\"web\"", 3, &["Web gone"])),
            (
                "2019/c.md",
                &incident("DNS lag", "\"dns\", \"web\"", 5, &["Lagging", "Fixed"]),
            ),
            ("d.md", &incident("Old one", "\"mail\"", 7, &["Old news"])),
        ],
    );
    let mut harness = Running::run(dir);
    harness.wait_for("the daemon to be ready", || harness.log().contains("ready"));
    assert!(harness.feed().contains("Web gone"), "{}", harness.feed());

    // An update edited and one added.
    harness.write_incident(
        "a.md",
        &incident(
            "Mail slow",
            "\"mail\"",
            1,
            &["Looking again", "Found", "Done"],
        ),
    );
    harness.wait_for_feed("Looking again");
    // A new file, in a new directory.
    harness.write_incident(
        "2019/04/e.md",
        &incident("Portal", "\"web\", \"mail\"", 10, &["New one"]),
    );
    harness.wait_for_feed("New one");
    // A deletion.
    fs::remove_file(harness.path("incidents/b.md")).unwrap();
    harness.wait_for_feed_without("Web gone");
    // A rename to another id, across directories.
    fs::rename(
        harness.path("incidents/2019/c.md"),
        harness.path("incidents/f.md"),
    )
    .unwrap();
    harness.wait_for_feed("incidents/f.html");
    harness.wait_for_feed_without("incidents/c.html");
    // A second file with `a`'s id, later in path order: reported, and
    // `incidents/a.md` keeps the id.
    harness.write_incident(
        "zz/a.md",
        &incident("Mail twin", "\"dns\"", 12, &["Twin text"]),
    );
    harness.wait_for("the duplicate to be reported", || {
        harness.log().contains("duplicate incident id `a`")
    });
    assert!(!harness.feed().contains("Twin text"), "{}", harness.feed());
    // A broken save keeps the last good version; the mended one shows.
    harness.write_incident("a.md", "+++\ntitle = \"Mail slow\"\nbroken");
    harness.wait_for("the error to be logged", || harness.log().contains("a.md:"));
    assert!(
        harness.feed().contains("Looking again"),
        "{}",
        harness.feed()
    );
    harness.write_incident(
        "a.md",
        &incident("Mail slow", "\"mail\"", 1, &["Mended", "Found", "Done"]),
    );
    harness.wait_for_feed("Mended");
    // The owner of `a` deleted: the twin takes the id over.
    fs::remove_file(harness.path("incidents/a.md")).unwrap();
    harness.wait_for_feed("Twin text");
    harness.wait_for_feed_without("Mended");
    // A draft leaves the outputs.
    harness.write_incident(
        "d.md",
        &incident("Old one", "\"mail\"", 7, &["Old news"])
            .replace("+++\n\n", "draft = true\n+++\n\n"),
    );
    harness.wait_for_feed_without("Old news");
    // The last rebuild's summaries are written after its feed.
    harness.wait_for("the draft's page to be removed", || {
        harness.output("incidents/d.html").is_none()
    });
    let log = harness.log();
    assert_eq!(harness.terminate().code(), Some(0), "{log}");

    let site = harness.dir();
    fs::write(site.join("full.toml"), config("full")).unwrap();
    let built = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["build", "--config", "full.toml"])
        .current_dir(site)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let incremental = tree(&site.join("public"));
    let full = tree(&site.join("full"));
    let paths = |tree: &BTreeMap<String, Vec<u8>>| tree.keys().cloned().collect::<Vec<_>>();
    assert_eq!(paths(&incremental), paths(&full));
    for (path, bytes) in &incremental {
        assert!(
            full[path] == *bytes,
            "{path} differs:\nincremental:\n{}\nfull build:\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&full[path])
        );
    }
    assert!(
        incremental.contains_key("incidents/f.html"),
        "{incremental:?}"
    );
    assert!(!incremental.contains_key("incidents/c.html"));
}
