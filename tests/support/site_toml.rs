//! `herald.toml` text for test sites: the `[site]` table and the
//! `[[components]]` entries most tests share. Tests add their own tables
//! (`[paths]`, `[email]`, `[http]` …) with `format!` or `+`.

#![allow(dead_code, reason = "each test binary uses a part of it")]

/// The test site's `[site]` table titled `title`: English, at
/// status.example.com, in Stockholm's zone. It starts with a blank line,
/// so `language` is on line 6 (tests that misspell it expect that).
pub fn site(title: &str) -> String {
    table(title, "https://status.example.com/", "en")
}

/// The `[site]` table of the Swedish sample site (as in the repository's
/// `herald.toml`): "Exempelhosting driftstatus" at status.example.se.
pub fn swedish_site() -> String {
    table(
        "Exempelhosting driftstatus",
        "https://status.example.se/",
        "sv",
    )
}

fn table(title: &str, base_url: &str, language: &str) -> String {
    format!(
        r#"
[site]
title = "{title}"
base_url = "{base_url}"
timezone = "Europe/Stockholm"
language = "{language}"
"#
    )
}

/// One `[[components]]` entry per `(id, name)`, in order, each after a
/// blank line.
pub fn components(list: &[(&str, &str)]) -> String {
    list.iter()
        .map(|(id, name)| format!("\n[[components]]\nid = \"{id}\"\nname = \"{name}\"\n"))
        .collect()
}
