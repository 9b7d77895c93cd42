//! A node's log: every line a stage wrote (a `command` stage's stdout and stderr, a kind's own
//! lines), kept whole up to a bound, then as its head and its tail with a line saying what was cut
//! (like CI systems that truncate a job log in the middle). The end of stderr is kept apart, so a
//! failure can show the traceback a script wrote last even when its stdout printed later.

use std::collections::VecDeque;

/// Bytes of a log kept from its start before lines are dropped from the middle (2 MiB).
pub const HEAD_BYTES: usize = 2 << 20;
/// Bytes of a log kept from its end (2 MiB).
pub const TAIL_BYTES: usize = 2 << 20;
/// Lines of stderr kept apart for a failure's message.
pub const STDERR_LINES: usize = 30;

/// Which stream of the stage a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output, or a line the stage kind logged itself.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A node's log while it runs: head and tail bounded by [`HEAD_BYTES`] and [`TAIL_BYTES`].
#[derive(Debug, Default)]
pub struct NodeLog {
    head: String,
    tail: VecDeque<String>,
    tail_bytes: usize,
    cut_lines: u64,
    cut_bytes: u64,
    stderr: VecDeque<String>,
    stderr_seen: bool,
}

impl NodeLog {
    /// Appends one line (without its newline) from `stream`.
    pub fn push(&mut self, stream: Stream, line: &str) {
        if stream == Stream::Stderr {
            self.stderr_seen = true;
            if self.stderr.len() == STDERR_LINES {
                self.stderr.pop_front();
            }
            self.stderr.push_back(line.to_string());
        }
        if self.tail.is_empty() && self.head.len() + line.len() < HEAD_BYTES {
            self.head.push_str(line);
            self.head.push('\n');
            return;
        }
        self.tail_bytes += line.len() + 1;
        self.tail.push_back(line.to_string());
        while self.tail_bytes > TAIL_BYTES && self.tail.len() > 1 {
            let old = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= old.len() + 1;
            self.cut_lines += 1;
            self.cut_bytes += old.len() as u64 + 1;
        }
    }

    /// The last lines written to stderr (at most [`STDERR_LINES`]); empty when the stage wrote none.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr.iter().cloned().collect()
    }

    /// The last `n` lines of the whole log.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let mut out: Vec<String> = self.tail.iter().rev().take(n).cloned().collect();
        if out.len() < n {
            out.extend(self.head.lines().rev().take(n - out.len()).map(str::to_string));
        }
        out.reverse();
        out
    }

    /// The log as stored: newline-terminated lines, with one line where the middle was cut.
    pub fn text(&self) -> String {
        let mut s = self.head.clone();
        if self.cut_lines > 0 {
            s.push_str(&format!(
                "[... {} lines ({} bytes) cut here: the log keeps its first {} MiB and its last {} MiB ...]\n",
                self.cut_lines,
                self.cut_bytes,
                HEAD_BYTES >> 20,
                TAIL_BYTES >> 20
            ));
        }
        for l in &self.tail {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// `error` followed by the end of stderr (when the stage wrote any), else the end of the log:
    /// what a failure shows on the terminal and in the run record.
    pub fn failure_message(&self, error: &str) -> String {
        let (what, lines) = if self.stderr_seen { ("stderr", self.stderr_tail()) } else { ("the stage log", self.last_lines(20)) };
        if lines.is_empty() {
            return error.to_string();
        }
        format!("{error}\n--- end of {what} ---\n{}", printable(&lines.join("\n")))
    }
}

/// `text` safe to print on a terminal: control characters other than newline and tab (escape
/// sequences that clear the screen or set the window title, NUL, DEL) are shown as `\xNN`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c);
    if !text.contains(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().map(|c| if bad(c) { format!("\\x{:02x}", c as u32) } else { c.to_string() }).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(super::printable("ab\0\x1b[2J\x1b]0;pwned\x07\tok\n"), "ab\\x00\\x1b[2J\\x1b]0;pwned\\x07\tok\n");
        assert!(matches!(super::printable("plain ünïcødé\n"), std::borrow::Cow::Borrowed(_)));
    }

    use super::*;

    #[test]
    fn stderr_is_kept_apart_from_later_stdout() {
        let mut log = NodeLog::default();
        log.push(Stream::Stderr, "Traceback (most recent call last):");
        log.push(Stream::Stderr, "ValueError: bad");
        for i in 0..200 {
            log.push(Stream::Stdout, &format!("progress {i}"));
        }
        let m = log.failure_message("command exited with status 1");
        assert_eq!(m, "command exited with status 1\n--- end of stderr ---\nTraceback (most recent call last):\nValueError: bad");
        assert_eq!(log.text().lines().count(), 202);
    }

    #[test]
    fn a_huge_log_keeps_head_and_tail_and_says_what_was_cut() {
        let mut log = NodeLog::default();
        let line = "x".repeat(1023);
        for _ in 0..6 * 1024 {
            log.push(Stream::Stdout, &line);
        }
        log.push(Stream::Stdout, "the last line");
        let text = log.text();
        assert!(text.len() <= HEAD_BYTES + TAIL_BYTES + 200, "{}", text.len());
        assert!(text.ends_with("the last line\n"));
        let cut = text.lines().find(|l| l.starts_with("[... ")).expect("a cut marker");
        // 6144 lines of 1 KiB and one short: the head keeps 2048 (2 MiB), the tail 2047 and the
        // short one (at most 2 MiB); the 2049 between are cut.
        assert_eq!(cut, "[... 2049 lines (2098176 bytes) cut here: the log keeps its first 2 MiB and its last 2 MiB ...]");
        assert_eq!(log.failure_message("e").lines().last(), Some("the last line"));
    }
}
