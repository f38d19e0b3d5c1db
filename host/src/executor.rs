//! Executors run recipe jobs. Today: in-process, in the host's own wasmtime engine, under a
//! global concurrency bound. (The Kubernetes Job executor is issue 5; it will sit beside this one
//! behind a trait when it exists.)

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::sandbox::{RunJob, RunResult, Sandbox};

/// Runs jobs in this process.
pub struct InProcess {
    sandbox: Arc<Sandbox>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl InProcess {
    /// An executor running at most `max_concurrent` jobs at once.
    pub fn new(sandbox: Arc<Sandbox>, max_concurrent: usize, metrics: Arc<Metrics>) -> Self {
        InProcess {
            sandbox,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            metrics,
        }
    }

    /// Run one job (waits for a slot first). The sandbox turns every failure into a status.
    pub async fn run(&self, job: RunJob) -> RunResult {
        let _slot = self.slots.acquire().await;
        self.metrics.runs_in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.sandbox.run(&job).await;
        self.metrics.runs_in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .run_finished(&job.recipe, result.status.as_str(), started.elapsed().as_secs_f64());
        result
    }
}
