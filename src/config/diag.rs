//! Config diagnostics: `file:line:col: key: what is wrong`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a config file, located to the byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics against one source text.
pub(super) struct Sink<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset where each line starts, for O(log n) positions: a config
    /// with thousands of records must not rescan the file per record.
    line_starts: Vec<usize>,
    pub found: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(super) fn new(file: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            file,
            text,
            line_starts,
            found: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |t| t.chars().count() + 1);
        (line, col)
    }

    /// An error at a position already turned into (line, column).
    pub(super) fn error_at(
        &mut self,
        (line, col): (usize, usize),
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.found.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn error(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, col) = self.line_col(span.start);
        self.found.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Sink;
    use std::path::Path;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        let sink = Sink::new(Path::new("k.toml"), text);
        let line_col = |_: &str, offset| sink.line_col(offset);
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
        assert_eq!(line_col(text, 999), (3, 1));
    }
}
