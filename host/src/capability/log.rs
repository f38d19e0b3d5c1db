//! Recipe logs: kept in the run's result up to the output limit, mirrored to `tracing` at debug.

use serde::{Deserialize, Serialize};

/// One line a recipe logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    truncated: bool,
}

impl LogSink {
    /// A sink keeping at most `cap` bytes of messages.
    pub fn new(cap: usize) -> Self {
        LogSink {
            cap,
            ..Default::default()
        }
    }

    /// Record a line; past the cap lines are dropped and the log is marked truncated.
    pub fn push(&mut self, level: &str, message: String) {
        tracing::debug!(recipe_log_level = level, "{message}");
        if self.bytes + message.len() > self.cap {
            self.truncated = true;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level: level.into(),
            message,
        });
    }

    /// Did the recipe log more than the cap?
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The kept lines.
    pub fn take(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.lines)
    }
}
