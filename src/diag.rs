//! Diagnostics about input files, printed as `path:line:col: level: message`.
//!
//! Pure. `LineIndex` is the only place that turns byte offsets into
//! positions, so every producer of diagnostics agrees on what a column is:
//! 1-based, counted in characters.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    pub level: Level,
    pub message: String,
}

impl Diagnostic {
    pub fn error(
        path: &Path,
        index: &LineIndex,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic::at(path, index, offset, Level::Error, message)
    }

    pub fn warning(
        path: &Path,
        index: &LineIndex,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic::at(path, index, offset, Level::Warning, message)
    }

    pub fn at(
        path: &Path,
        index: &LineIndex,
        offset: usize,
        level: Level,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = index.position(offset);
        Diagnostic {
            path: path.to_owned(),
            line,
            column,
            level,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Maps byte offsets of one text to 1-based (line, column-in-chars).
#[derive(Debug, Clone)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset at which each line starts.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        LineIndex { text, starts }
    }

    /// Position of `offset`; offsets past the end, or inside a multi-byte
    /// character, are clamped to the nearest character boundary before them.
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let column = self.text[self.starts[line]..offset].chars().count() + 1;
        (saturate(line + 1), saturate(column))
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, offset: usize, expect: (u32, u32)) {
        assert_eq!(
            LineIndex::new(text).position(offset),
            expect,
            "offset {offset} in {text:?}"
        );
    }

    #[test]
    fn positions() {
        check("", 0, (1, 1));
        check("abc", 0, (1, 1));
        check("abc", 2, (1, 3));
        check("abc\ndef", 3, (1, 4));
        check("abc\ndef", 4, (2, 1));
        check("abc\ndef", 6, (2, 3));
        check("åäö\nx", 2, (1, 2));
        check("åäö\nx", 4, (1, 3));
        check("åäö\nx", 7, (2, 1));
        check("a\r\nb", 3, (2, 1));
        check("ab", 99, (1, 3));
    }

    #[test]
    fn display_is_file_line_col() {
        let index = LineIndex::new("one\ntwo");
        let diagnostic = Diagnostic::error(Path::new("incidents/x.md"), &index, 5, "bad thing");
        assert_eq!(
            diagnostic.to_string(),
            "incidents/x.md:2:2: error: bad thing"
        );
    }

    proptest! {
        #[test]
        fn position_agrees_with_naive_count(text in "(\\PC|\n){0,40}", offset in 0usize..200) {
            let (line, column) = LineIndex::new(&text).position(offset);
            let mut clamped = offset.min(text.len());
            while !text.is_char_boundary(clamped) { clamped -= 1; }
            let before = &text[..clamped];
            let naive_line = before.matches('\n').count() + 1;
            let naive_column = before.rsplit('\n').next().unwrap().chars().count() + 1;
            prop_assert_eq!((line as usize, column as usize), (naive_line, naive_column));
        }
    }
}
