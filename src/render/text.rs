//! `index.txt`, the status for terminals: what the `index.txt` template
//! gives, made safe to print. Pure.

/// Text for a terminal: no control character but line breaks, so that
/// nothing written in an incident can move a cursor or change colours;
/// runs of blank lines cut to one; a final newline.
pub fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_and_blank_runs_shrink() {
        assert_eq!(
            plain_text("\n\nTitle\u{1b}[31m\n\n\n\nLine\tend \r\n\n\n"),
            "Title[31m\n\nLine\tend\n"
        );
        assert_eq!(plain_text(""), "");
    }
}
