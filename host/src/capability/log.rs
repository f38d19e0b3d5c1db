//! Recipe logs: kept in the run's result up to the output limit, mirrored to `tracing` at debug
//! as an escaped field (`?`), never raw.
//!
//! Every record counts by what the host keeps and publishes: its JSON-encoded size plus
//! [`LogSink::RECORD_OVERHEAD`] bytes, so two million empty lines cost as much as the bytes they
//! make the host hold, and the number of records is bounded by the same budget.

use serde::{Deserialize, Serialize};

/// One line a recipe logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `trace` … `error`.
    pub level: String,
    /// The message.
    pub message: String,
}

/// The bounded log of one run.
#[derive(Debug, Default)]
pub struct LogSink {
    lines: Vec<LogLine>,
    bytes: usize,
    cap: usize,
    dropped: u64,
}

impl LogSink {
    /// Bytes each record costs beyond its encoded message: the `Vec` slot, the two `String`
    /// headers and the JSON punctuation (`{"level":"…","message":"…"},`).
    pub const RECORD_OVERHEAD: usize = 32;

    /// A sink keeping at most `cap` bytes of records.
    pub fn new(cap: usize) -> Self {
        LogSink {
            cap,
            ..Default::default()
        }
    }

    /// Record a line; past the cap lines are dropped and counted.
    pub fn push(&mut self, level: &'static str, message: String) {
        tracing::debug!(recipe_log_level = level, message = ?message, "recipe log");
        let cost = json_len(&message) + level.len() + Self::RECORD_OVERHEAD;
        if self.bytes + cost > self.cap {
            self.dropped += 1;
            return;
        }
        self.bytes += cost;
        self.lines.push(LogLine {
            level: level.into(),
            message,
        });
    }

    /// Lines dropped past the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept lines.
    pub fn take(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }
}

/// The length of `s` as a JSON string body (escapes included).
fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lines_cost_their_overhead() {
        let mut sink = LogSink::new(1000);
        for _ in 0..1000 {
            sink.push("info", String::new());
        }
        let kept = sink.take().len();
        assert_eq!(kept, 1000 / (4 + LogSink::RECORD_OVERHEAD));
        assert_eq!(sink.dropped(), 1000 - kept as u64);
    }

    #[test]
    fn escapes_count() {
        assert_eq!(json_len("a\"\n\u{1}"), 1 + 2 + 2 + 6);
    }
}
