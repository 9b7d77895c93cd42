//! Validation diagnostics: every error of a pipeline file, each with its line, column and a hint.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Pos;

/// One error of a pipeline file: where it is, what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// `None` for errors in command-line overrides (`--set`).
    pub pos: Option<Pos>,
    /// What is wrong, printed after `error: `.
    pub message: String,
    /// How to fix it, printed as `= hint: ...`, when there is advice to give.
    pub hint: Option<String>,
}

/// All errors found in one pipeline file, in file order.
#[derive(Debug)]
pub struct Diagnostics {
    /// The pipeline file, as given (shown in each error's `-->` line).
    pub file: PathBuf,
    /// The file's text, quoted under each error that has a position.
    pub source: String,
    /// The errors, each once, in the order found; [`Diagnostics::sort`] puts them in file order.
    pub items: Vec<Diagnostic>,
    /// The same error from many nodes (one bad `--set` over a grid) is reported once.
    seen: std::collections::HashSet<Diagnostic>,
}

impl Diagnostics {
    /// An empty list for `file`, whose text is `source`.
    pub fn new(file: PathBuf, source: String) -> Self {
        Diagnostics { file, source, items: Vec::new(), seen: Default::default() }
    }

    /// Adds an error at `pos` in the file, with an optional hint.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.push(Diagnostic { pos: Some(pos), message: message.into(), hint });
    }

    /// Adds `d`, unless an identical diagnostic (position, message and hint) was already added.
    pub fn push(&mut self, d: Diagnostic) {
        if self.seen.insert(d.clone()) {
            self.items.push(d);
        }
    }

    /// Whether no error was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Orders the errors by position (command-line errors, which have none, first), then message.
    pub fn sort(&mut self) {
        self.items.sort();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {}", d.message)?;
            match d.pos {
                Some(pos) => {
                    writeln!(f, "  --> {}:{}:{}", self.file.display(), pos.line, pos.col)?;
                    if let Some(text) = lines.get(pos.line.wrapping_sub(1)) {
                        let gutter = pos.line.to_string().len();
                        let (shown, caret) = window(text, pos.col);
                        writeln!(f, "{:gutter$} |", "")?;
                        writeln!(f, "{} | {shown}", pos.line)?;
                        writeln!(f, "{:gutter$} | {}^", "", " ".repeat(caret))?;
                    }
                }
                None => writeln!(f, "  --> command line (--set)")?,
            }
            if let Some(h) = &d.hint {
                writeln!(f, "  = hint: {h}")?;
            }
        }
        let n = self.items.len();
        write!(f, "{n} error{} in {}", if n == 1 { "" } else { "s" }, self.file.display())
    }
}

impl std::error::Error for Diagnostics {}

/// At most 100 characters of `line` around 1-based column `col` (`…` where cut), and the caret's
/// offset in them: long lines (minified YAML, an error at column 70,000) stay readable.
fn window(line: &str, col: usize) -> (String, usize) {
    const WIDTH: usize = 100;
    let chars: Vec<char> = line.chars().collect();
    let at = col.saturating_sub(1).min(chars.len());
    if chars.len() <= WIDTH {
        return (line.to_string(), at);
    }
    let start = at.saturating_sub(WIDTH / 2).min(chars.len().saturating_sub(WIDTH));
    let end = (start + WIDTH).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut caret = at - start;
    if start > 0 {
        shown.insert(0, '…');
        caret += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret)
}

/// "did you mean `x`?" for the closest candidate within a small edit distance (optimal string
/// alignment: a swapped pair of letters, `tarin`, counts as one edit).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("tarin", ["train", "ingest"]), Some("did you mean `train`?".into()));
        assert_eq!(did_you_mean("zzzzzz", ["train", "ingest"]), None);
    }
}
