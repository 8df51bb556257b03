//! The binary on temporary sites: exit codes, messages and files written
//! by `check`, `new`, `post` and `build`.

#[path = "support/site_toml.rs"]
mod site_toml;
#[path = "support/wait.rs"]
mod wait;

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

const COMPONENTS: [(&str, &str); 2] = [("mail", "Mail"), ("web", "Web")];

fn config() -> String {
    site_toml::site("Test status") + &site_toml::components(&COMPONENTS)
}

/// `config()` with the templates directory `templates`.
fn config_with_templates(templates: &str) -> String {
    // `[paths]` must come before the components array of tables.
    site_toml::site("Test status")
        + &format!("\n[paths]\ntemplates = \"{templates}\"\n")
        + &site_toml::components(&COMPONENTS)
}

const GOOD: &str = "+++\ntitle = \"Mail slow\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\nLooking.\n";

/// A site in a temporary directory.
struct Site {
    dir: TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("herald.toml"), config()).unwrap();
        fs::create_dir_all(dir.path().join("incidents")).unwrap();
        Site { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap()
    }

    fn herald(&self) -> Command {
        let mut command = Command::cargo_bin("herald").unwrap();
        command
            .current_dir(self.dir.path())
            .env_remove("HERALD_CONFIG")
            .env("HERALD_LOG", "warn");
        command
    }

    /// Runs `herald args`, which must exit 0.
    fn succeeds(&self, args: &[&str]) -> Output {
        let output = self.herald().args(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
        output
    }

    /// Runs `herald args`, which must exit with `code` and say `message`
    /// on stderr; returns the stderr.
    fn fails(&self, args: &[&str], code: i32, message: &str) -> String {
        let output = self.herald().args(args).output().unwrap();
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        stderr
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_clean_site_exits_0() {
    let site = Site::new();
    site.write("incidents/a/b/mail-slow.md", GOOD);
    let output = site.succeeds(&["check"]);
    assert_eq!(stdout(&output), "");
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let site = Site::new();
    site.write("incidents/good.md", GOOD);
    site.write(
        "incidents/deep/er/bad.md",
        &GOOD.replace("08:00 investigating", "08:00 investigatin"),
    );
    let output = site.herald().arg("check").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "incidents/deep/er/bad.md:7:21: error: unknown status `investigatin`, expected one of investigating, identified, monitoring, update, resolved, scheduled, in-progress, completed, cancelled\n"
    );
}

#[test]
fn check_given_paths_reports_only_those() {
    let site = Site::new();
    site.write("incidents/one.md", &GOOD.replace("minor", "tiny"));
    site.write(
        "incidents/two.md",
        &GOOD.replace("[\"mail\"]", "[\"mali\"]"),
    );
    let output = site
        .herald()
        .args(["check", "incidents/two.md"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "incidents/two.md:3:15: error: unknown component `mali`, expected one of `mail`, `web`\n"
    );
    site.fails(
        &["check", "incidents/missing.md"],
        1,
        "incidents/missing.md: no such file",
    );
}

#[test]
fn check_reports_duplicate_ids_across_the_tree() {
    let site = Site::new();
    site.write("incidents/2019/same.md", GOOD);
    site.write("incidents/2020/same.md", GOOD);
    let output = site.herald().arg("check").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "incidents/2020/same.md:1:1: error: duplicate incident id `same`, already used by incidents/2019/same.md\n"
    );
}

#[test]
fn check_reports_invalid_utf8_and_ignores_debris() {
    let site = Site::new();
    site.write("incidents/ok.md", GOOD);
    fs::write(
        site.path("incidents/latin1.md"),
        b"+++\ntitle = \"caf\xe9\"\n",
    )
    .unwrap();
    for debris in [
        ".ok.md.swp",
        "ok.md~",
        ".hidden.md",
        "ok.md.tmp",
        "x.md.part",
        "notes.txt",
        "4913",
    ] {
        site.write(&format!("incidents/{debris}"), "garbage +++ ##");
    }
    site.write("incidents/.git/x.md", "garbage");
    let output = site.herald().arg("check").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "incidents/latin1.md:1:1: error: not valid UTF-8 (at 2:13); save the file as UTF-8\n"
    );
}

#[test]
fn bad_config_is_reported_with_position_and_exit_1() {
    let site = Site::new();
    site.write(
        "herald.toml",
        &config().replace("language = \"en\"", "langauge = \"en\""),
    );
    site.fails(
        &["check"],
        1,
        "herald.toml:6:1: error: unknown field `langauge`",
    );
}

#[test]
fn missing_config_is_exit_1_and_names_the_path() {
    let site = Site::new();
    site.fails(
        &["--config", "nope.toml", "check"],
        1,
        "configuration file nope.toml not found",
    );
    // $HERALD_CONFIG is honoured when --config is absent.
    let output = site
        .herald()
        .env("HERALD_CONFIG", "elsewhere.toml")
        .arg("check")
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("configuration file elsewhere.toml not found"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn usage_error_is_exit_2() {
    let site = Site::new();
    let output = site.herald().arg("frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = site.herald().args(["new", "x"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn missing_incidents_directory_is_a_runtime_failure() {
    let site = Site::new();
    fs::remove_dir(site.path("incidents")).unwrap();
    site.fails(
        &["check"],
        3,
        "cannot read the incidents directory incidents",
    );
}

fn heading_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| line.starts_with("## "))
        .collect()
}

fn assert_heading_now(line: &str, status: &str) {
    // `## 2026-11-24 14:05:31 update`: a local time with seconds.
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 4, "{line}");
    assert_eq!(parts[1].len(), 10, "{line}");
    assert!(
        parts[2].len() == 8 || parts[2].len() == 14,
        "time with seconds (and offset when ambiguous): {line}"
    );
    assert_eq!(parts[3], status, "{line}");
}

#[test]
fn new_then_post_write_files_that_check_clean() {
    let site = Site::new();
    let output = site.succeeds(&[
        "new",
        "mail-down",
        "--title",
        "Mail \"down\"",
        "--components",
        "mail,web",
        "--severity",
        "critical",
        "Looking into it.",
    ]);
    assert_eq!(stdout(&output), "incidents/mail-down.md\n");
    let text = site.read("incidents/mail-down.md");
    assert!(text.starts_with("+++\ntitle = 'Mail \"down\"'\ncomponents = [\"mail\", \"web\"]\nseverity = \"critical\"\n+++\n"), "{text}");
    assert_heading_now(heading_lines(&text)[0], "investigating");
    assert!(
        text.ends_with("investigating\nLooking into it.\n"),
        "{text}"
    );

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let output = site
        .herald()
        .args(["post", "mail-down", "identified"])
        .write_stdin("Found it.\n")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = site.read("incidents/mail-down.md");
    let headings = heading_lines(&text);
    assert_eq!(headings.len(), 2);
    assert_heading_now(headings[1], "identified");
    assert!(text.ends_with("identified\nFound it.\n"), "{text}");
    let output = site.herald().arg("check").output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn new_refuses_bad_input_and_writes_nothing() {
    let site = Site::new();
    site.write("incidents/old/taken.md", GOOD);
    let cases: [(&[&str], &str); 5] = [
        (
            &["new", "Bad Id", "--title", "t", "--components", "mail"],
            "invalid incident id `Bad Id`",
        ),
        (
            &[
                "new",
                "x",
                "--title",
                "t",
                "--components",
                "mail",
                "--severity",
                "huge",
            ],
            "unknown severity `huge`",
        ),
        (
            &["new", "x", "--title", "t", "--components", "mial"],
            "unknown component `mial`",
        ),
        (
            &["new", "x", "--title", "", "--components", "mail"],
            "`title` is empty",
        ),
        (
            &["new", "taken", "--title", "t", "--components", "mail"],
            "incident `taken` already exists: incidents/old/taken.md",
        ),
    ];
    for (args, message) in cases {
        site.fails(args, 1, message);
    }
    assert!(!site.path("incidents/x.md").exists());
}

#[test]
fn post_refuses_unknown_id_status_or_broken_file_and_changes_nothing() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    let broken = GOOD.replace("minor", "tiny");
    site.write("incidents/broken.md", &broken);
    let cases: [(&[&str], &str); 4] = [
        (
            &["post", "nope", "resolved", "x"],
            "no incident `nope` in incidents; create it with `herald new`",
        ),
        (
            &["post", "mail-slow", "fixed", "x"],
            "unknown status `fixed`",
        ),
        (
            &["post", "mail-slow", "completed", "x"],
            "status `completed` is only for maintenance",
        ),
        (
            &["post", "broken", "resolved", "x"],
            "incidents/broken.md has errors; fix them before posting",
        ),
    ];
    for (args, message) in cases {
        site.fails(args, 1, message);
    }
    assert_eq!(site.read("incidents/mail-slow.md"), GOOD);
    assert_eq!(site.read("incidents/broken.md"), broken);
}

#[test]
fn publish_removes_the_draft_line_and_refuses_unknown_or_broken_incidents() {
    let site = Site::new();
    let draft = GOOD.replace("severity", "draft = true\nseverity");
    site.write("incidents/alerts/mail-slow.md", &draft);
    let broken = draft.replace("minor", "tiny");
    site.write("incidents/broken.md", &broken);
    site.fails(&["publish", "nope"], 1, "no incident `nope` in incidents");
    site.fails(
        &["publish", "Bad Id"],
        1,
        "no incident `Bad Id` in incidents",
    );
    site.fails(
        &["publish", "broken"],
        1,
        "incidents/broken.md has errors; fix them before publishing",
    );
    assert_eq!(site.read("incidents/broken.md"), broken);
    let output = site.succeeds(&["publish", "mail-slow"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("incidents/alerts/mail-slow.md"),
        "{output:?}"
    );
    assert_eq!(site.read("incidents/alerts/mail-slow.md"), GOOD);
    let output = site.succeeds(&["publish", "mail-slow"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("is already published"), "{stdout}");
    assert_eq!(site.read("incidents/alerts/mail-slow.md"), GOOD);
}

#[test]
fn post_appends_to_a_file_without_final_newline() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD.trim_end());
    site.succeeds(&["post", "mail-slow", "resolved", "Fixed."]);
    let text = site.read("incidents/mail-slow.md");
    assert!(text.contains("Looking.\n\n## "), "{text}");
    assert!(text.ends_with(" resolved\nFixed.\n"), "{text}");
    let leftovers: Vec<_> = fs::read_dir(site.path("incidents"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temp file left behind: {leftovers:?}"
    );
}

#[test]
fn concurrent_posts_all_land() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    let posts: Vec<(String, std::process::Child)> = (0..6)
        .map(|n| {
            let text = format!("Concurrent update number {n}.");
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
                .current_dir(site.path(""))
                .env_remove("HERALD_CONFIG")
                .env("HERALD_LOG", "warn")
                .args(["post", "mail-slow", "update", &text])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (text, child)
        })
        .collect();
    for (text, child) in posts {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{text}: {}", stderr(&output));
    }
    let file = site.read("incidents/mail-slow.md");
    for n in 0..6 {
        let text = format!("Concurrent update number {n}.");
        assert_eq!(file.matches(&text).count(), 1, "{text} once in:\n{file}");
    }
    assert_eq!(heading_lines(&file).len(), 7, "{file}");
    site.succeeds(&["check"]);
    let leftovers: Vec<_> = fs::read_dir(site.path("incidents"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
}

#[test]
fn post_reads_its_text_before_the_file() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    // The first operator is still typing when the second posts.
    let mut typing = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .current_dir(site.path(""))
        .env_remove("HERALD_CONFIG")
        .env("HERALD_LOG", "warn")
        .args(["post", "mail-slow", "identified"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = typing.stdin.take().unwrap();
    stdin.write_all(b"Typed slowly").unwrap();
    site.succeeds(&["post", "mail-slow", "update", "Posted meanwhile."]);
    stdin.write_all(b", then sent.\n").unwrap();
    drop(stdin);
    let output = typing.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let file = site.read("incidents/mail-slow.md");
    assert!(file.contains("Posted meanwhile."), "{file}");
    assert!(file.contains("Typed slowly, then sent."), "{file}");
    site.succeeds(&["check"]);
}

#[test]
fn post_writes_through_a_symlink_and_keeps_the_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Site::new();
    site.write("shared/mail-slow.md", GOOD);
    let real = site.path("shared/mail-slow.md");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink(&real, site.path("incidents/mail-slow.md")).unwrap();
    site.succeeds(&["post", "mail-slow", "resolved", "Fixed."]);
    let link = fs::symlink_metadata(site.path("incidents/mail-slow.md")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let text = site.read("shared/mail-slow.md");
    assert!(text.ends_with(" resolved\nFixed.\n"), "{text}");
    let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn build_writes_every_output_and_is_byte_identical_when_rerun() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    site.write(
        "incidents/maint.md",
        "+++\ntitle = \"Web upgrade\"\ncomponents = [\"web\"]\nkind = \"maintenance\"\nstarts = \"2026-12-10 22:00\"\nends = \"2026-12-11 02:00\"\n+++\n## 2026-11-20 10:00\nPlanned.\n",
    );
    site.succeeds(&["build"]);
    let files = [
        "feed.rss",
        "feed.atom",
        "components/mail.rss",
        "components/mail.atom",
        "components/web.rss",
        "components/web.atom",
        "index.html",
        "style.css",
        "incidents/mail-slow.html",
        "incidents/maint.html",
        "history/2019-04.html",
        "history/2026-11.html",
        "status.json",
        "api/v2/summary.json",
        "maintenance.ics",
    ];
    let first: Vec<String> = files
        .iter()
        .map(|f| site.read(&format!("public/{f}")))
        .collect();
    site.succeeds(&["build"]);
    for (file, before) in files.iter().zip(&first) {
        let after = site.read(&format!("public/{file}"));
        assert_eq!(&after, before, "{file} must be byte-identical");
    }
    assert!(site.path("state/herald.db").exists());
}

#[test]
fn build_with_a_broken_file_publishes_the_others_and_exits_1() {
    let site = Site::new();
    site.write("incidents/good.md", GOOD);
    site.write(
        "incidents/bad.md",
        &GOOD
            .replace("minor", "tiny")
            .replace("Mail slow", "Bad one"),
    );
    site.fails(
        &["build"],
        1,
        "incidents/bad.md:4:12: error: unknown severity `tiny`",
    );
    let feed = site.read("public/feed.atom");
    assert!(feed.contains("Mail slow"));
    assert!(!feed.contains("Bad one"));
}

#[test]
fn build_refuses_years_no_feed_can_carry_and_publishes_the_rest() {
    let site = Site::new();
    site.write("incidents/good.md", GOOD);
    for (name, heading) in [
        ("zero", "0000-01-01 00:30"),
        ("negative", "-019-04-08 19:26"),
        ("late", "9999-12-31 23:59-14:00"),
    ] {
        site.write(
            &format!("incidents/{name}.md"),
            &GOOD
                .replace("2019-04-04 08:00", heading)
                .replace("Mail slow", name),
        );
    }
    let output = site.herald().arg("build").output().unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        "incidents/zero.md:7:4: error: `0000-01-01 00:30` is outside the years herald can publish, 1970 to 9998",
        "incidents/negative.md:7:4: error: `-019-04-08 19:26` is outside",
        "incidents/late.md:7:4: error: `9999-12-31 23:59-14:00` is outside",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    let feed = site.read("public/feed.rss");
    assert!(feed.contains("Mail slow"), "{feed}");
    let check = site.herald().arg("check").output().unwrap();
    let report = stdout(&check);
    assert_eq!(check.status.code(), Some(1), "{report}");
    for name in ["zero", "negative", "late"] {
        assert!(
            report.contains(&format!("incidents/{name}.md:7:4: error:")),
            "{report}"
        );
    }
}

#[test]
fn control_characters_never_reach_the_pages() {
    let site = Site::new();
    site.write(
        "incidents/ctl.md",
        "+++\ntitle = \"Disk\\u0001 failure\"\ncomponents = [\"mail\"]\nseverity = \"minor\"\n+++\n\n## 2019-04-04 08:00 investigating\nNUL\u{0} BEL\u{7} DEL\u{7f} NEL\u{85} end.\n",
    );
    site.succeeds(&["build"]);
    for page in [
        "public/index.html",
        "public/incidents/ctl.html",
        "public/history/2019-04.html",
    ] {
        let html = site.read(page);
        let found: Vec<char> = html
            .chars()
            .filter(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
            .collect();
        assert_eq!(found, Vec::<char>::new(), "{page}:\n{html}");
        assert!(html.contains("Disk failure"), "{page}:\n{html}");
    }
    let page = site.read("public/incidents/ctl.html");
    assert!(page.contains("NUL BEL DEL NEL end."), "{page}");
}

#[test]
fn unwritable_output_is_a_runtime_failure_naming_the_path() {
    let site = Site::new();
    site.write("incidents/good.md", GOOD);
    // The output directory's place is taken by a file.
    site.write("public", "not a directory");
    let message = site.fails(&["build"], 3, "cannot write outputs to public");
    assert!(message.contains("Not a directory"), "{message}");
}

#[test]
fn template_override_is_used_and_a_broken_one_falls_back() {
    let site = Site::new();
    site.write("herald.toml", &config_with_templates("templates"));
    site.write("incidents/good.md", GOOD);
    site.write("templates/style.css", "body { color: rebeccapurple }\n");
    site.write("templates/month.html", "{% if %}broken\n");
    let output = site.succeeds(&["build"]);
    assert_eq!(
        site.read("public/style.css"),
        "body { color: rebeccapurple }\n"
    );
    assert!(
        stderr(&output).contains("templates/month.html:1:"),
        "{}",
        stderr(&output)
    );
    assert!(
        site.read("public/history/2019-04.html")
            .contains("Mail slow")
    );
}

#[test]
fn build_removes_pages_of_deleted_incidents_and_keeps_foreign_files() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    site.write("incidents/gone.md", &GOOD.replace("Mail slow", "Soon gone"));
    site.succeeds(&["build"]);
    assert!(site.path("public/incidents/gone.html").exists());
    assert!(site.path("public/incidents/gone.atom").exists());
    site.write("public/incidents/README.txt", "the operator's own file");
    site.write("public/robots.txt", "User-agent: *");
    fs::remove_file(site.path("incidents/gone.md")).unwrap();
    site.succeeds(&["build"]);
    assert!(!site.path("public/incidents/gone.html").exists());
    assert!(!site.path("public/incidents/gone.atom").exists());
    assert!(site.path("public/incidents/mail-slow.html").exists());
    assert!(site.path("public/incidents/README.txt").exists());
    assert!(site.path("public/robots.txt").exists());
    assert!(!site.read("public/feed.atom").contains("Soon gone"));
}

#[test]
fn build_removes_the_feeds_and_badge_of_a_removed_component() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    site.succeeds(&["build"]);
    for output in ["web.svg", "web.atom", "web.rss", "web.ics"] {
        assert!(site.path(&format!("public/components/{output}")).exists());
    }
    let config = site.read("herald.toml");
    let without_web = config.replace("\n[[components]]\nid = \"web\"\nname = \"Web\"\n", "");
    assert_ne!(config, without_web);
    site.write("herald.toml", &without_web);
    site.succeeds(&["build"]);
    for output in ["web.svg", "web.atom", "web.rss", "web.ics"] {
        assert!(!site.path(&format!("public/components/{output}")).exists());
    }
    assert!(site.path("public/components/mail.svg").exists());
}

#[test]
fn missing_templates_directory_is_a_runtime_failure_naming_it() {
    let site = Site::new();
    site.write("herald.toml", &config_with_templates("my-templates"));
    site.write("incidents/good.md", GOOD);
    site.fails(
        &["build"],
        3,
        "cannot read the templates directory my-templates",
    );
    assert!(
        !site.path("public/index.html").exists(),
        "nothing is published with the wrong templates"
    );
}

/// `herald build` and `herald run` on a site broken by `breakage`: exit 3
/// and exactly one line on stderr, `expected`, never a panic.
fn fails_with_one_line(breakage: impl Fn(&Site), expected: &str) {
    for command in ["build", "run"] {
        let site = Site::new();
        site.write("incidents/good.md", GOOD);
        breakage(&site);
        let output = site
            .herald()
            .arg(command)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(3),
            "{command}: {}",
            stderr(&output)
        );
        assert_eq!(
            stderr(&output),
            format!("herald: {expected}\n"),
            "{command}"
        );
    }
}

#[test]
fn unreadable_config_is_one_line_naming_it_and_exit_3() {
    fails_with_one_line(
        |site| {
            fs::remove_file(site.path("herald.toml")).unwrap();
            fs::create_dir(site.path("herald.toml")).unwrap();
        },
        "cannot read configuration herald.toml: Is a directory (os error 21)",
    );
}

#[test]
fn missing_incidents_directory_is_one_line_naming_it_and_exit_3() {
    fails_with_one_line(
        |site| fs::remove_dir_all(site.path("incidents")).unwrap(),
        "cannot read the incidents directory incidents: \
         cannot list directory incidents: No such file or directory (os error 2)",
    );
}

#[test]
fn unwritable_output_directory_is_one_line_naming_it_and_exit_3() {
    fails_with_one_line(
        |site| site.write("public", "not a directory"),
        "cannot write outputs to public: \
         cannot write public/incidents: Not a directory (os error 20)",
    );
}

#[test]
fn output_cut_short_by_its_reader_is_not_an_error() {
    let site = Site::new();
    let mut csv = String::from("email,components\n");
    for n in 0..20_000 {
        csv.push_str(&format!("user{n}@example.org,mail\n"));
    }
    site.write("subscribers.csv", &csv);
    site.herald()
        .args(["subscribers", "import", "subscribers.csv"])
        .assert()
        .success();
    // Like `herald subscribers list | head -1`: far more than a pipe
    // holds, to a reader that takes one line and leaves.
    let mut list = std::process::Command::new(assert_cmd::cargo::cargo_bin("herald"))
        .args(["subscribers", "list"])
        .current_dir(site.dir.path())
        .env_remove("HERALD_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(list.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut reader, &mut first).unwrap();
    drop(reader);
    let output = list.wait_with_output().unwrap();
    assert!(first.starts_with("user0@example.org"), "{first}");
    assert_eq!(stderr(&output), "");
    assert!(output.status.success(), "{:?}", output.status);
}

/// Every file under `dir` whose name marks it as a temp file of herald's.
fn temp_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if path.to_string_lossy().ends_with(".herald-tmp") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_write_failing_after_pages_were_written_out_keeps_every_old_output() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    site.succeeds(&["build"]);
    site.write(
        "incidents/mail-slow.md",
        &GOOD.replace("Looking.", "Looking harder."),
    );
    // The month pages come after the incident pages, which the writer
    // has already staged when it fails on them.
    fs::remove_dir_all(site.path("public/history")).unwrap();
    site.write("public/history", "not a directory");
    let message = site.fails(&["build"], 3, "cannot write outputs to public");
    assert!(message.contains("public/history"), "{message}");
    let page = site.read("public/incidents/mail-slow.html");
    assert!(
        page.contains("Looking.") && !page.contains("Looking harder."),
        "{page}"
    );
    assert_eq!(temp_files(&site.path("public")), Vec::<PathBuf>::new());
}

#[test]
fn a_page_failing_to_render_after_others_were_written_out_keeps_every_old_output() {
    let site = Site::new();
    site.write("herald.toml", &config_with_templates("templates"));
    site.write("templates/style.css", "body { color: rebeccapurple }\n");
    site.write("incidents/mail-slow.md", GOOD);
    site.succeeds(&["build"]);
    site.write(
        "incidents/mail-slow.md",
        &GOOD.replace("Looking.", "Looking harder."),
    );
    // Compiles, fails when rendered: after the incident pages.
    site.write("templates/month.html", "{{ 1 // 0 }}\n");
    let message = site.fails(&["build"], 3, "rendering template month.html");
    let page = site.read("public/incidents/mail-slow.html");
    assert!(
        page.contains("Looking.") && !page.contains("Looking harder."),
        "{message}\n{page}"
    );
    assert_eq!(temp_files(&site.path("public")), Vec::<PathBuf>::new());
}

/// A build records the updates chunk by chunk beside the rendering: an
/// edit in a later chunk than the first is still dated in its pages and
/// feeds, and an unedited update is not.
#[test]
fn an_edit_is_dated_in_every_chunk_of_a_build() {
    let site = Site::new();
    // More incidents than one chunk of pages holds.
    let incident = |n: usize, text: &str| {
        GOOD.replace("Mail slow", &format!("Mail slow {n}"))
            .replace("Looking.", text)
    };
    for n in 0..300 {
        site.write(&format!("incidents/i{n:03}.md"), &incident(n, "Looking."));
    }
    site.succeeds(&["build"]);
    site.write("incidents/i299.md", &incident(299, "Looking again."));
    site.succeeds(&["build"]);
    let updated = |feed: &str| -> String {
        let atom = site.read(feed);
        let entry = atom
            .split("<entry>")
            .nth(1)
            .unwrap_or_else(|| panic!("{atom}"));
        let between = |open: &str, close: &str| {
            entry
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map(|(inner, _)| inner.to_owned())
                .unwrap_or_else(|| panic!("{open} in {entry}"))
        };
        assert_eq!(
            between("<published>", "<"),
            "2019-04-04T06:00:00+00:00",
            "{atom}"
        );
        between("<updated>", "<")
    };
    let edited = updated("public/incidents/i299.atom");
    assert!(
        edited.as_str() > "2026",
        "edited at the build's instant: {edited}"
    );
    assert_eq!(
        updated("public/incidents/i000.atom"),
        "2019-04-04T06:00:00+00:00"
    );
    let page = site.read("public/incidents/i299.html");
    assert!(page.contains("Looking again."), "{page}");
}

/// The state database cannot be opened: the build publishes everything
/// all the same, with no edit times, and says why.
#[test]
fn a_build_without_its_state_directory_publishes_and_warns() {
    let site = Site::new();
    site.write("incidents/mail-slow.md", GOOD);
    site.write("state", "not a directory");
    let output = site.herald().args(["build"]).output().unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("state"), "{stderr}");
    let page = site.read("public/incidents/mail-slow.html");
    assert!(page.contains("Looking."), "{page}");
    let feed = site.read("public/incidents/mail-slow.atom");
    assert!(
        feed.contains("<updated>2019-04-04T06:00:00+00:00</updated>"),
        "{feed}"
    );
}
