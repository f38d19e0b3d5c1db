//! Step 6 of a run: what happened, as one [`RunStatus`] with a message that says what and why —
//! the guest's own result, a limit (memory, output, a host-side cap), the deadline, an exit, a
//! trap with the guest's panic line — then the denials it ran into and the cap on its result.

use wasmtime::Trap;

use super::run::{RunJob, RunResult, RunStatus};
use super::state::RunState;
use crate::capability::log::{LogLine, LogSink};
use crate::model::{Analysis, Outcome};

/// What a call returned: the guest's analysis or outcome.
pub(super) enum Done {
    Analysis(Analysis),
    Outcome(Outcome),
}

/// Bytes of a failed run's message (a trap's text and the guest's panic line).
const MAX_MESSAGE_BYTES: usize = 1024;

/// What the call returned: instantiate and run microseconds and the guest's result, a wasmtime
/// error, or the wall-clock timeout.
pub(super) type Called = Result<Result<(u64, u64, Result<Done, String>), wasmtime::Error>, tokio::time::error::Elapsed>;

/// Classify a finished call. `total_us` is the time since the store was built.
pub(super) fn classify(
    mut result: RunResult,
    job: &RunJob,
    state: &mut RunState,
    called: Called,
    total_us: u64,
) -> RunResult {
    let output_full = collect(&mut result, job, state);
    let host_limit = state.limit.get();
    let limit_hit = state.limiter.hit.clone().or_else(|| host_limit.clone());
    match called {
        Err(_elapsed) => {
            result.timings.run_us = total_us;
            let msg = format!(
                "recipe `{}` did not finish within limits.timeout_ms = {} (a host call was still pending)",
                job.recipe, job.limits.timeout_ms
            );
            result = result.fail(RunStatus::TimedOut, msg);
        }
        Ok(Err(e)) => {
            result.timings.run_us = total_us;
            let (status, msg) = failure(&e, job, &result.stderr, limit_hit, output_full);
            result = result.fail(status, msg);
        }
        Ok(Ok((inst_us, run_us, r))) => {
            result.timings.instantiate_us = inst_us;
            result.timings.run_us = run_us;
            match r {
                Ok(Done::Analysis(a)) => result.analysis = Some(a),
                Ok(Done::Outcome(o)) => result.outcome = Some(o),
                Err(message) => result = result.fail(RunStatus::RecipeError, message),
            }
        }
    }
    finish(result, job, host_limit)
}

/// The run's denials, peak memory, logs (with a line saying how many were dropped) and output;
/// `true` when stdout or stderr reached the output limit.
fn collect(result: &mut RunResult, job: &RunJob, state: &mut RunState) -> bool {
    result.denials = state.denials.list();
    result.writes = std::mem::take(&mut *state.kube.writes().lock());
    result.memory_peak_bytes = state.limiter.true_peak() as u64;
    result.logs = state.logs.take();
    if state.logs.dropped() > 0 {
        result.logs.push(LogLine {
            level: "warn".into(),
            message: format!(
                "{} more log records dropped: the run's log is capped at limits.output_bytes = {} bytes (each record counts its encoded size + {} bytes)",
                state.logs.dropped(),
                job.limits.output_bytes,
                LogSink::RECORD_OVERHEAD
            ),
        });
    }
    let (stdout, stderr) = (state.stdout.contents(), state.stderr.contents());
    result.stdout = String::from_utf8_lossy(&stdout).into_owned();
    result.stderr = String::from_utf8_lossy(&stderr).into_owned();
    let cap = job.limits.output_bytes as usize;
    stdout.len() >= cap || stderr.len() >= cap
}

/// Why a call failed: a limit first (it is the cause of the trap it provokes), then the
/// deadline, an exit, a stack overflow, full output, else the trap with the guest's panic line.
fn failure(
    e: &wasmtime::Error,
    job: &RunJob,
    stderr: &str,
    limit_hit: Option<String>,
    output_full: bool,
) -> (RunStatus, String) {
    let recipe = &job.recipe;
    let trap = e.downcast_ref::<Trap>().copied();
    if let Some(limit) = limit_hit {
        return (RunStatus::LimitExceeded, format!("recipe `{recipe}`: {limit}"));
    }
    if trap == Some(Trap::Interrupt) {
        let msg = format!(
            "recipe `{recipe}` ran past limits.timeout_ms = {} and was interrupted",
            job.limits.timeout_ms
        );
        return (RunStatus::TimedOut, msg);
    }
    if let Some(code) = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0) {
        let msg = format!("recipe `{recipe}` exited with status {code} instead of returning a result");
        return (RunStatus::Trapped, msg);
    }
    if trap == Some(Trap::StackOverflow) {
        let msg = format!("recipe `{recipe}`: wasm stack overflow (stack limit 1 MiB)");
        return (RunStatus::LimitExceeded, msg);
    }
    if output_full || format!("{e:#}").contains("beyond capacity") {
        let msg = format!(
            "recipe `{recipe}`: output limit: wrote more than limits.output_bytes = {} bytes to stdout/stderr",
            job.limits.output_bytes
        );
        return (RunStatus::LimitExceeded, msg);
    }
    // A Rust guest's panic message: the `panicked at` line and the message after it.
    let panic_line = stderr
        .lines()
        .skip_while(|l| !l.contains("panicked"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let panic_line = if panic_line.is_empty() {
        panic_line
    } else {
        format!(" — {panic_line}")
    };
    let what = trap.map(|t| t.to_string()).unwrap_or_else(|| format!("{e:#}"));
    let msg = format!("recipe `{recipe}` trapped: {what}{panic_line}");
    (RunStatus::Trapped, crate::capability::truncate(msg, MAX_MESSAGE_BYTES))
}

/// A host-side limit or a denial names the run's end even when the guest carried on and
/// returned; and the result itself is capped before anyone publishes it.
fn finish(mut result: RunResult, job: &RunJob, host_limit: Option<String>) -> RunResult {
    let returned = |r: &RunResult| matches!(r.status, RunStatus::Ok | RunStatus::RecipeError);
    if let Some(limit) = host_limit
        && returned(&result)
    {
        result = result.fail(RunStatus::LimitExceeded, format!("recipe `{}`: {limit}", job.recipe));
    }
    if !result.denials.is_empty() && returned(&result) {
        let why = result.denials.join("; ");
        let msg = if result.message.is_empty() {
            why
        } else {
            format!("{why} (recipe said: {})", result.message)
        };
        result = result.fail(RunStatus::Denied, msg);
    }
    let out_cap = job.limits.output_bytes as usize;
    let size = serde_json::to_vec(&(&result.analysis, &result.outcome, &result.message))
        .map(|v| v.len())
        .unwrap_or(0);
    if size > out_cap {
        result.analysis = None;
        result.outcome = None;
        let msg = format!(
            "recipe `{}`: result is {size} bytes, over limits.output_bytes = {out_cap}",
            job.recipe
        );
        result = result.fail(RunStatus::LimitExceeded, msg);
    }
    result
}
