//! An analysis built up object by object, for debuggers that examine several objects.
//!
//! Each object examined adds a line (the summary joins them with "; "), findings as evidence,
//! and actions — each action with the same parameters suggested once, however many objects call
//! for it. A line added with [`Report::cause`] names a cause and makes the verdict `identified`;
//! one added with [`Report::line`] only reports (a healthy object, one that is gone).
//!
//! ```
//! use recipe_sdk::prelude::*;
//! use recipe_sdk::report::Report;
//!
//! let mut r = Report::default();
//! for node in ["worker-1", "worker-2"] {
//!     r.cause(format!("node {node}: DiskPressure"));
//!     r.suggest("cordon-node", serde_json::json!({"node": node}), format!("{node} is under pressure"));
//!     r.suggest("cordon-node", serde_json::json!({"node": node}), "asked twice, suggested once");
//! }
//! r.line("node worker-3 is not registered any more");
//! let a = r.into_analysis([]);
//! assert_eq!(a.verdict, Verdict::Identified);
//! assert_eq!(a.summary, "node worker-1: DiskPressure; node worker-2: DiskPressure; node worker-3 is not registered any more");
//! assert_eq!(a.actions.len(), 2);
//! ```

use serde_json::Value;

use crate::pod::Remedy;
use crate::{Analysis, Finding, SuggestedAction};

/// Lines, findings and actions, gathered object by object.
#[derive(Debug, Default)]
pub struct Report {
    /// One line per cause or per object; joined into the summary.
    pub lines: Vec<String>,
    /// The evidence.
    pub findings: Vec<Finding>,
    /// The suggestions, each `(action, parameters)` once.
    pub actions: Vec<SuggestedAction>,
    /// Whether some line names a cause.
    pub identified: bool,
}

impl Report {
    /// A line that names a cause: the verdict becomes `identified`.
    pub fn cause(&mut self, line: impl Into<String>) {
        self.identified = true;
        self.lines.push(line.into());
    }

    /// A line that names no cause (a healthy object, one that no longer exists).
    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Evidence.
    pub fn finding(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Suggest `action` with `parameters`, unless it is already suggested with the same ones.
    pub fn suggest(&mut self, action: &str, parameters: Value, reason: impl Into<String>) {
        if !self
            .actions
            .iter()
            .any(|a| a.action == action && a.parameters == parameters)
        {
            self.actions.push(SuggestedAction {
                action: action.to_string(),
                parameters,
                reason: reason.into(),
            });
        }
    }

    /// Suggest `action` first: before everything else, replacing any earlier suggestion of it.
    pub fn suggest_first(&mut self, action: &str, parameters: Value, reason: impl Into<String>) {
        self.actions.retain(|a| a.action != action);
        self.actions.insert(
            0,
            SuggestedAction {
                action: action.to_string(),
                parameters,
                reason: reason.into(),
            },
        );
    }

    /// A remedy's actions, or a finding that says why none applies to `subject`.
    pub fn remedy(&mut self, subject: &str, remedy: Remedy) {
        match remedy {
            Remedy::Actions(list) => {
                for (action, parameters, reason) in list {
                    self.suggest(&action, parameters, reason);
                }
            }
            Remedy::None(why) => self.finding(Finding::info("No automatic remedy", format!("{subject}: {why}"))),
        }
    }

    /// The analysis: the lines joined, identified if a line names a cause, the findings
    /// followed by `notes` (the bound and missing labels, say).
    pub fn into_analysis(self, notes: impl IntoIterator<Item = Finding>) -> Analysis {
        let summary = self.lines.join("; ");
        let mut a = if self.identified {
            Analysis::identified(summary)
        } else {
            Analysis::inconclusive(summary)
        };
        a.findings = self.findings.into_iter().chain(notes).collect();
        a.actions = self.actions;
        a
    }
}
