//! The reconciler: alerts in, incidents out. One flow, one file per stage, each stage's state
//! owned by one type that unit tests drive without a runtime:
//!
//! ```text
//! intake ──▶ book ──▶ trigger ──▶ analysis ──▶ approval ──▶ actions
//!  (gates,    (incidents,  (policies,  (fan-out under   (resolve,     (fence, run once,
//!   dedup)     groups,      cooldowns,  the deadline,    roles,        finish once,
//!              eviction)    windows)    merge, notify)   breaker)      notify in order)
//!                      recovery (restore, adopt, deadline sweep) · journal (the store's view)
//! ```
//!
//! [`Reconciler::accept`] only parses, deduplicates and enqueues (bounded queue; full → 503): it
//! never waits for a recipe. One worker task applies alert batches in order and owns the
//! wait-for-more timers (one `DelayQueue`); runs and actions are tasks of one `TaskTracker`,
//! which shutdown waits on.

mod actions;
mod analysis;
pub mod approval;
pub mod book;
mod fence;
pub mod intake;
pub mod journal;
mod preview;
mod recovery;
mod shared;
pub mod trigger;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tokio_util::time::{DelayQueue, delay_queue};

pub use self::approval::{Approval, Approvals, ApproveError, Caller};
use self::book::IncidentBook;
pub use self::fence::ActionFence;
use self::intake::Intake;
pub use self::intake::{Accepted, AlertBatch, IntakeError};
use self::journal::Journal;
use self::shared::SharedBook;
use self::trigger::{Decision, Trigger, TriggerPolicy};
use crate::catalog::{Catalog, Dangling, RecipeErrorInfo, RecipeInfo};
use crate::executor::Executor;
use crate::incident::{ActionRun, IncidentRecord, IncidentState};
use crate::matcher::Matchers;
use crate::metrics::Metrics;
use crate::model::now_rfc3339;
use crate::notify::Notifier;

/// What the reconciler is told by its configuration (see `ServeConfig::reconciler_settings`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Alert batches waiting; beyond, `/webhook` answers 503.
    pub queue_capacity: usize,
    /// Alert notifications remembered for deduplication.
    pub dedup_capacity: usize,
    /// Labels that group generic alerts.
    pub group_by: Vec<String>,
    /// Incidents kept.
    pub max_incidents: usize,
    /// An analysis is complete when every debugger reported or this passes.
    pub incident_deadline: Duration,
    /// On shutdown, let runs finish for up to this long.
    pub shutdown_grace: Duration,
    /// At most this many runs of one action on one target…
    pub breaker_max: u32,
    /// …per this window.
    pub breaker_window: Duration,
    /// The default trigger policy.
    pub trigger: TriggerPolicy,
    /// Per-route policies, parsed; the first match wins.
    pub routes: Vec<(Matchers, TriggerPolicy)>,
}

/// Counts and lists for `/api/status`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    /// Incidents by state.
    pub incidents: std::collections::BTreeMap<String, usize>,
    /// Runs executing now.
    pub runs_in_flight: u64,
    /// Alert batches queued.
    pub queue_depth: usize,
    /// Loaded recipes.
    pub recipes: Vec<RecipeInfo>,
    /// Recipes that did not load, with why.
    pub recipe_errors: Vec<RecipeErrorInfo>,
    /// Actions a debugger may suggest that no loaded actor implements.
    pub dangling_actions: Vec<Dangling>,
}

enum Msg {
    Alerts(AlertBatch, oneshot::Sender<()>),
    /// Analyse `incident` once `after` passes (a restored incident's wait-for-more window).
    Window {
        incident: String,
        after: Duration,
    },
}

/// The host loop: the stages' state, and the tasks that move incidents between them.
pub struct Reconciler {
    me: Weak<Reconciler>,
    settings: Settings,
    catalog: Arc<Catalog>,
    executor: Arc<dyn Executor>,
    notifiers: Vec<Arc<dyn Notifier>>,
    metrics: Arc<Metrics>,
    intake: Intake,
    book: Arc<SharedBook>,
    trigger: Mutex<Trigger>,
    breaker: Mutex<approval::Breaker>,
    journal: Arc<Journal>,
    queue: mpsc::Sender<Msg>,
    control: mpsc::UnboundedSender<Msg>,
    tasks: TaskTracker,
    fence: OnceLock<Arc<dyn ActionFence>>,
}

impl Reconciler {
    /// Build the reconciler over `catalog` and start its worker.
    pub fn start(
        mut settings: Settings,
        catalog: Arc<Catalog>,
        executor: Arc<dyn Executor>,
        notifiers: Vec<Arc<dyn Notifier>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(settings.queue_capacity);
        let (control, control_rx) = mpsc::unbounded_channel();
        let book = Arc::new(SharedBook::new(IncidentBook::new(settings.max_incidents)));
        // Remember cooldowns for this many groups: bounded memory under any traffic.
        let cooldowns = (4 * settings.max_incidents).max(1_000);
        // The trigger owns the routes; the reconciler keeps the rest of its settings.
        let routes = std::mem::take(&mut settings.routes);
        let r = Arc::new_cyclic(|me| Reconciler {
            me: me.clone(),
            intake: Intake::new(settings.group_by.clone(), settings.dedup_capacity),
            trigger: Mutex::new(Trigger::new(settings.trigger, routes, cooldowns)),
            breaker: Mutex::new(approval::Breaker::new(settings.breaker_max, settings.breaker_window)),
            journal: Arc::new(Journal::new(book.clone())),
            book,
            settings,
            catalog,
            executor,
            notifiers,
            metrics,
            queue,
            control,
            tasks: TaskTracker::new(),
            fence: OnceLock::new(),
        });
        tokio::spawn(r.clone().work(rx, control_rx));
        r
    }

    /// Spawn `fut` as a tracked task (shutdown waits for it).
    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(fut);
    }

    /// This reconciler as an `Arc`, for tasks; `None` only while it is being dropped.
    fn this(&self) -> Option<Arc<Self>> {
        self.me.upgrade()
    }

    /// The durability view the store's write-behind uses.
    pub fn journal(&self) -> Arc<Journal> {
        self.journal.clone()
    }

    /// Claim every action through `fence` before starting it (several replicas).
    pub fn set_action_fence(&self, fence: Arc<dyn ActionFence>) {
        let _ = self.fence.set(fence);
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Is the host accepting alerts? (Not while shutting down, nor while Redis is away.)
    pub fn ready(&self) -> bool {
        self.intake.ready()
    }

    /// Whether the store (Redis) answers; while it does not, `/webhook` answers 503 rather than
    /// accept what it cannot store, and `/readyz` is not ready.
    pub fn set_store_up(&self, up: bool) {
        if self.intake.set_store_up(up) {
            if up {
                tracing::info!("Redis is back");
            } else {
                tracing::warn!("Redis is unreachable: refusing alerts until it is back");
            }
        }
    }

    /// Alert batches waiting.
    pub fn queue_depth(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Accept a webhook body: parse, drop retries, enqueue. Never waits for recipes.
    pub fn accept(&self, body: &[u8]) -> Result<Accepted, IntakeError> {
        self.accept_tracked(body).map(|(a, _)| a)
    }

    /// [`Reconciler::accept`], plus a receiver that fires once the worker has put the alerts in
    /// their incident (`None`: nothing was queued).
    pub fn accept_tracked(&self, body: &[u8]) -> Result<(Accepted, Option<oneshot::Receiver<()>>), IntakeError> {
        let admitted = self.intake.admit(body, &now_rfc3339())?;
        self.metrics
            .alerts(admitted.total as u64, admitted.accepted.duplicates as u64);
        let Some(batch) = admitted.batch else {
            return Ok((admitted.accepted, None));
        };
        let (ingested, ingested_rx) = oneshot::channel();
        match self.queue.try_send(Msg::Alerts(batch, ingested)) {
            Ok(()) => {
                self.intake.remember(admitted.seen);
                Ok((admitted.accepted, Some(ingested_rx)))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(IntakeError::QueueFull(self.settings.queue_capacity)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(IntakeError::ShuttingDown),
        }
    }

    async fn work(self: Arc<Self>, mut queue: mpsc::Receiver<Msg>, mut control: mpsc::UnboundedReceiver<Msg>) {
        let mut windows: DelayQueue<String> = DelayQueue::new();
        let mut keys: HashMap<String, delay_queue::Key> = HashMap::new();
        loop {
            let msg = tokio::select! {
                m = queue.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                Some(m) = control.recv() => m,
                Some(due) = windows.next(), if !windows.is_empty() => {
                    let incident = due.into_inner();
                    keys.remove(&incident);
                    self.window_elapsed(&incident);
                    continue;
                }
            };
            let (open, close) = match msg {
                Msg::Alerts(batch, ingested) => {
                    let timers = self.ingest(batch);
                    let _ = ingested.send(());
                    timers
                }
                Msg::Window { incident, after } => (Some((incident, after)), vec![]),
            };
            for id in close {
                if let Some(k) = keys.remove(&id) {
                    windows.remove(&k);
                }
            }
            if let Some((id, after)) = open {
                match keys.get(&id) {
                    Some(k) => windows.reset(k, after),
                    None => {
                        let k = windows.insert(id.clone(), after);
                        keys.insert(id, k);
                    }
                }
            }
        }
    }

    /// Put a batch in its incident and decide what follows. Returns the wait-for-more window to
    /// (re)start, and the evicted incidents whose windows go.
    fn ingest(&self, batch: AlertBatch) -> (Option<(String, Duration)>, Vec<String>) {
        let now = now_rfc3339();
        let new_id = || format!("inc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut book = self.book.lock();
        let ingested = book.ingest(batch, &now, new_id);
        if ingested.resolved {
            tracing::info!(incident_id = %ingested.id, "incident resolved");
        }
        let Some(rec) = book.get_mut(&ingested.id).filter(|_| ingested.news) else {
            return (None, ingested.evicted);
        };
        let decision = self.trigger.lock().decide(rec, Instant::now());
        if let Some((kind, detail)) = decision.explain() {
            rec.log(&now, kind, detail, None, None);
        }
        let window = match decision {
            Decision::Collect(after) => Some((ingested.id, after)),
            Decision::Analyze => {
                self.start_analysis(&mut book, &ingested.id, &now);
                None
            }
            _ => None,
        };
        (window, ingested.evicted)
    }

    fn window_elapsed(&self, incident: &str) {
        let mut book = self.book.lock();
        let due = book
            .get(incident)
            .is_some_and(|r| matches!(r.state, IncidentState::Collecting | IncidentState::Analyzed));
        if due {
            self.start_analysis(&mut book, incident, &now_rfc3339());
        }
    }

    /// Append an event to an incident's log.
    pub fn note(&self, incident: &str, kind: &str, detail: &str, by: Option<String>, channel: &str) {
        self.book
            .lock()
            .note(incident, &now_rfc3339(), kind, detail, by, Some(channel));
    }

    /// A receiver whose value moves after every change to the incidents or actions (the
    /// console's live updates wait on it).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.book.subscribe()
    }

    /// `/api/status`.
    pub fn status(&self) -> Status {
        let incidents = self
            .book
            .lock()
            .by_state()
            .into_iter()
            .map(|(s, n)| (s.as_str().to_string(), n))
            .collect();
        let (recipes, recipe_errors) = self.catalog.describe();
        Status {
            incidents,
            runs_in_flight: self.metrics.runs_in_flight(),
            queue_depth: self.queue_depth(),
            recipes,
            recipe_errors,
            dangling_actions: self.catalog.dangling(),
        }
    }

    /// Incidents, newest first, optionally filtered by state and by one `label=value`.
    pub fn incidents(&self, state: Option<IncidentState>, label: Option<(&str, &str)>) -> Vec<IncidentRecord> {
        self.book.lock().list(state, label)
    }

    /// One incident, with its runs, analysis, actions and event log.
    pub fn incident(&self, id: &str) -> Option<(IncidentRecord, Vec<ActionRun>)> {
        self.book.lock().incident(id)
    }

    /// One approved action.
    pub fn action(&self, id: &str) -> Option<ActionRun> {
        self.book.lock().action(id).cloned()
    }

    /// Incidents per state, for metrics.
    pub fn incidents_by_state(&self) -> Vec<(&'static str, usize)> {
        self.book
            .lock()
            .by_state()
            .into_iter()
            .map(|(s, n)| (s.as_str(), n))
            .collect()
    }

    /// Refuse new alerts from now on (`/webhook` answers 503, `/readyz` is not ready).
    pub fn shutdown_intake(&self) {
        self.intake.shut();
    }

    /// Stop accepting alerts, then wait (up to the grace period) for runs and actions to finish.
    pub async fn shutdown(&self) {
        self.shutdown_intake();
        self.tasks.close();
        if tokio::time::timeout(self.settings.shutdown_grace, self.tasks.wait())
            .await
            .is_err()
        {
            let left = self.tasks.len();
            tracing::warn!(left, "shutdown grace period over; abandoning runs still in flight");
        }
    }
}
