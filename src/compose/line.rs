//! Text made safe for one line: a header, a subject, a chat title.

/// Text safe for one header line: control characters (CR and LF above
/// all) become spaces, runs of white space one space.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
