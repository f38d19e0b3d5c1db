//! The reconciler: alerts in, incidents out. It groups alerts into incidents, deduplicates
//! retries, applies the trigger limiter (min occurrences, wait-for-more window, cooldown), fans
//! out every matching debugger in parallel, merges their analyses, notifies, and runs approved
//! actions through the actor recipes — once per approval, under a circuit breaker.
//!
//! The webhook only parses, deduplicates and enqueues (bounded queue; full → 503): it never
//! waits for a recipe. One worker task applies alert batches in order; runs are their own tasks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::alert::Payload;
use crate::config::{Role, ServeConfig};
use crate::executor::Executor;
use crate::incident::{ActionRun, ActionStatus, IncidentRecord, IncidentState, RunRecord, action_id, merge};
use crate::metrics::Metrics;
use crate::model::{ActionRequest, Alert, now_rfc3339};
use crate::notify::Notifier;
use crate::recipe::Recipe;
use crate::sandbox::{RunInput, RunResult, RunStatus};

/// A batch of new alert notifications for one group.
#[derive(Debug, Clone)]
pub struct AlertBatch {
    group_key: String,
    source: String,
    alerts: Vec<Alert>,
}

enum Msg {
    Alerts(AlertBatch, Option<tokio::sync::oneshot::Sender<()>>),
    WindowElapsed { incident: String, generation: u64 },
}

/// What `/webhook` answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// Alerts queued.
    pub accepted: usize,
    /// Alerts dropped as retries of ones already accepted.
    pub duplicates: usize,
}

/// Why an alert body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Bad payload (400).
    #[error(transparent)]
    Invalid(#[from] crate::Error),
    /// The queue is full (503 with Retry-After).
    #[error("the alert queue is full ({0} batches); retry later")]
    QueueFull(usize),
    /// Shutting down (503).
    #[error("the host is shutting down; retry against another replica")]
    ShuttingDown,
    /// Redis is unreachable, so nothing could be stored (503).
    #[error("the incident store (Redis) is unreachable; retry later")]
    StoreUnavailable,
}

/// A caller of the approval API.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token name.
    pub token: String,
    /// Role.
    pub role: Role,
    /// Channel (`api`, `web`, `webex`, `slack`).
    pub channel: String,
}

/// An approval request (the native body of `POST /api/actions`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Incident id.
    pub incident: String,
    /// Action name, or a suggestion id (`act-…`).
    pub action: String,
    /// Parameters; omit to take the suggestion's.
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// Who approves (a person).
    pub approver: String,
}

/// Why an approval was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    /// 404.
    #[error("unknown incident `{0}`")]
    UnknownIncident(String),
    /// 422.
    #[error("{0}")]
    Unprocessable(String),
    /// 429.
    #[error("{0}")]
    Breaker(String),
}

/// Counts and lists for `/api/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// One loaded recipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipeInfo {
    /// Name.
    pub name: String,
    /// `debug` or `action`.
    pub kind: String,
    /// Version.
    pub version: String,
    /// Pinned digest.
    pub digest: String,
    /// Matchers (debug) or action names (action).
    pub handles: Vec<String>,
}

/// A recipe that did not load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipeErrorInfo {
    /// File or ConfigMap.
    pub origin: String,
    /// Why.
    pub error: String,
}

/// A bounded memory of accepted alert notifications.
struct Dedup {
    seen: HashSet<(String, String, bool)>,
    order: VecDeque<(String, String, bool)>,
    cap: usize,
}

impl Dedup {
    fn key(a: &Alert) -> (String, String, bool) {
        (
            a.fingerprint.clone(),
            a.starts_at.clone(),
            a.status == crate::model::AlertStatus::Firing,
        )
    }
    fn insert(&mut self, k: (String, String, bool)) {
        if self.seen.insert(k.clone()) {
            self.order.push_back(k);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }
}

#[derive(Default)]
struct Inner {
    incidents: HashMap<String, IncidentRecord>,
    order: VecDeque<String>,
    open_by_group: HashMap<String, String>,
    last_analysis: HashMap<String, Instant>,
    /// Insertion order of `last_analysis`, to bound it (oldest groups forget their cooldown first).
    analysis_order: VecDeque<(String, Instant)>,
    actions: HashMap<String, ActionRun>,
    breaker: HashMap<String, VecDeque<Instant>>,
    window_gen: HashMap<String, u64>,
}

/// The host loop.
pub struct Reconciler {
    config: ServeConfig,
    recipes: RwLock<Arc<Vec<Recipe>>>,
    recipe_errors: RwLock<Vec<RecipeErrorInfo>>,
    executor: Arc<dyn Executor>,
    notifiers: Vec<Arc<dyn Notifier>>,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
    dedup: Mutex<Dedup>,
    intake: mpsc::Sender<Msg>,
    timers: mpsc::UnboundedSender<Msg>,
    shutting_down: AtomicBool,
    store_down: AtomicBool,
    tasks: tokio_util_tasks::Tracker,
    fence: std::sync::OnceLock<Arc<dyn ActionFence>>,
    durability: Durability,
}

/// With a store attached (Redis mode): what the write-behind has persisted, so a webhook answers
/// 2xx only once its alerts are stored, and a run or action starts only once it is on record.
#[derive(Default)]
struct Durability {
    enabled: AtomicBool,
    /// Persist points asked for so far.
    requested: std::sync::atomic::AtomicU64,
    /// The last persist point the store reached.
    persisted: std::sync::OnceLock<tokio::sync::watch::Sender<u64>>,
    flush: tokio::sync::Notify,
}

/// Several replicas: an action starts only once its id was claimed across them, fenced by the
/// leader lease (see [`crate::lease`]).
#[async_trait::async_trait]
pub trait ActionFence: Send + Sync {
    /// `Ok(true)` the first time `action` is claimed, `Ok(false)` after; `Err` when this
    /// replica may not start it (no longer the leader, or the store is unreachable).
    async fn claim(&self, action: &str) -> Result<bool, String>;
}

/// A minimal task tracker: count of spawned run tasks still alive, for graceful shutdown.
mod tokio_util_tasks {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default, Clone)]
    pub struct Tracker(Arc<AtomicUsize>);

    pub struct Guard(Arc<AtomicUsize>);

    impl Tracker {
        pub fn enter(&self) -> Guard {
            self.0.fetch_add(1, Ordering::SeqCst);
            Guard(self.0.clone())
        }
        pub fn active(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Reconciler {
    /// Build the reconciler and start its worker. `recipes` are the loaded recipes; `errors`
    /// the ones that did not load (shown on `/api/status`).
    pub fn start(
        config: ServeConfig,
        recipes: Vec<Recipe>,
        errors: Vec<RecipeErrorInfo>,
        executor: Arc<dyn Executor>,
        notifiers: Vec<Arc<dyn Notifier>>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let (timers, timer_rx) = mpsc::unbounded_channel();
        let dedup = Dedup {
            seen: HashSet::new(),
            order: VecDeque::new(),
            cap: config.dedup_capacity,
        };
        let r = Arc::new(Reconciler {
            config,
            recipes: RwLock::new(Arc::new(recipes)),
            recipe_errors: RwLock::new(errors),
            executor,
            notifiers,
            metrics,
            inner: Mutex::new(Inner::default()),
            dedup: Mutex::new(dedup),
            intake: tx,
            timers,
            shutting_down: AtomicBool::new(false),
            store_down: AtomicBool::new(false),
            tasks: Default::default(),
            fence: Default::default(),
            durability: Default::default(),
        });
        tokio::spawn(r.clone().work(rx, timer_rx));
        r
    }

    /// A store now keeps what this reconciler changes: from here on [`Reconciler::persist_point`]
    /// waits for it.
    pub fn enable_durability(&self) {
        let _ = self.durability.persisted.set(tokio::sync::watch::channel(0).0);
        self.durability.enabled.store(true, Ordering::SeqCst);
    }

    /// Is a store attached?
    pub fn durable(&self) -> bool {
        self.durability.enabled.load(Ordering::SeqCst)
    }

    /// Wait (at most `within`) until everything changed before this call is in the store;
    /// `true` at once without a store. `false`: the store did not take it in time.
    pub async fn persist_point(&self, within: Duration) -> bool {
        let Some(persisted) = self.durability.persisted.get().filter(|_| self.durable()) else {
            return true;
        };
        let want = self.durability.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut rx = persisted.subscribe();
        self.durability.flush.notify_one();
        matches!(
            tokio::time::timeout(within, rx.wait_for(|v| *v >= want)).await,
            Ok(Ok(_))
        )
    }

    /// For the write-behind: the persist point a pass starting now will reach.
    pub fn persist_target(&self) -> u64 {
        self.durability.requested.load(Ordering::SeqCst)
    }

    /// For the write-behind: a pass that started at `target` has been stored.
    pub fn persisted(&self, target: u64) {
        if let Some(p) = self.durability.persisted.get() {
            p.send_if_modified(|v| {
                let newer = target > *v;
                if newer {
                    *v = target;
                }
                newer
            });
        }
    }

    /// For the write-behind: resolves when someone waits on a persist point.
    pub async fn flush_requested(&self) {
        self.durability.flush.notified().await
    }

    /// Replace the recipes (the cluster registry saw ConfigMaps change). Runs already started
    /// keep the digest they were pinned to.
    pub fn set_recipes(&self, recipes: Vec<Recipe>, errors: Vec<RecipeErrorInfo>) {
        *self.recipes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(recipes);
        *self.recipe_errors.write().unwrap_or_else(|e| e.into_inner()) = errors;
    }

    /// Claim every action through `fence` before starting it (several replicas).
    pub fn set_action_fence(&self, fence: Arc<dyn ActionFence>) {
        let _ = self.fence.set(fence);
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The loaded recipes.
    pub fn recipes(&self) -> Arc<Vec<Recipe>> {
        self.recipes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Is the host accepting alerts? (Not while shutting down, nor while Redis is away.)
    pub fn ready(&self) -> bool {
        !self.shutting_down.load(Ordering::SeqCst) && !self.store_down.load(Ordering::SeqCst)
    }

    /// Tell the reconciler whether its store (Redis) answers; while it does not, `/webhook`
    /// answers 503 rather than accept what it cannot store, and `/readyz` is not ready.
    pub fn set_store_up(&self, up: bool) {
        let was_down = self.store_down.swap(!up, Ordering::SeqCst);
        // A change: it was down and is up now, or the other way round.
        if was_down == up {
            if up {
                tracing::info!("Redis is back");
            } else {
                tracing::warn!("Redis is unreachable: refusing alerts until it is back");
            }
        }
    }

    /// Alert batches waiting.
    pub fn queue_depth(&self) -> usize {
        self.intake.max_capacity() - self.intake.capacity()
    }

    // ---------------------------------------------------------------- intake

    /// Accept a webhook body: parse, drop retries, enqueue. Never waits for recipes.
    pub fn accept(&self, body: &[u8]) -> Result<Accepted, IntakeError> {
        self.accept_tracked(body).map(|(a, _)| a)
    }

    /// [`Reconciler::accept`], plus a receiver that fires once the worker has taken the alerts
    /// into their incident (`None` when nothing was queued).
    pub fn accept_tracked(
        &self,
        body: &[u8],
    ) -> Result<(Accepted, Option<tokio::sync::oneshot::Receiver<()>>), IntakeError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(IntakeError::ShuttingDown);
        }
        if self.store_down.load(Ordering::SeqCst) {
            return Err(IntakeError::StoreUnavailable);
        }
        let Payload {
            group_key,
            source,
            alerts,
            common_labels,
        } = crate::alert::parse(body, &now_rfc3339())?;
        let total = alerts.len();
        let group_key = group_key.unwrap_or_else(|| {
            let parts: Vec<String> = self
                .config
                .group_by
                .iter()
                .map(|l| format!("{l}={:?}", common_labels.get(l).map(String::as_str).unwrap_or("")))
                .collect();
            format!("{source}:{{{}}}", parts.join(","))
        });
        let fresh: Vec<Alert> = {
            let dedup = lock(&self.dedup);
            let mut in_body = HashSet::new();
            alerts
                .into_iter()
                .filter(|a| {
                    let k = Dedup::key(a);
                    !dedup.seen.contains(&k) && in_body.insert(k)
                })
                .collect()
        };
        let duplicates = total - fresh.len();
        self.metrics.alerts_received.fetch_add(total as u64, Ordering::Relaxed);
        self.metrics
            .alerts_deduplicated
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        if fresh.is_empty() {
            return Ok((
                Accepted {
                    accepted: 0,
                    duplicates,
                },
                None,
            ));
        }
        let (ingested, ingested_rx) = tokio::sync::oneshot::channel();
        let keys: Vec<_> = fresh.iter().map(Dedup::key).collect();
        let accepted = fresh.len();
        let batch = AlertBatch {
            group_key,
            source,
            alerts: fresh,
        };
        match self.intake.try_send(Msg::Alerts(batch, Some(ingested))) {
            Ok(()) => {
                // Only what was queued counts as seen: a refused batch is retried and accepted then.
                let mut dedup = lock(&self.dedup);
                for k in keys {
                    dedup.insert(k);
                }
                Ok((Accepted { accepted, duplicates }, Some(ingested_rx)))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(IntakeError::QueueFull(self.config.queue_capacity)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(IntakeError::ShuttingDown),
        }
    }

    async fn work(self: Arc<Self>, mut rx: mpsc::Receiver<Msg>, mut timers: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                m = timers.recv() => m,
            };
            match msg {
                Some(Msg::Alerts(batch, ingested)) => {
                    self.ingest(batch);
                    if let Some(tx) = ingested {
                        let _ = tx.send(());
                    }
                }
                Some(Msg::WindowElapsed { incident, generation }) => self.window_elapsed(&incident, generation),
                None => break,
            }
        }
    }

    fn ingest(self: &Arc<Self>, batch: AlertBatch) {
        let now = now_rfc3339();
        let mut inner = lock(&self.inner);
        // The group's open incident, or a new one (also when the open one was evicted).
        let open = inner
            .open_by_group
            .get(&batch.group_key)
            .filter(|id| inner.incidents.contains_key(*id))
            .cloned();
        let id = match open {
            Some(id) => id,
            None => {
                let id = format!("inc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
                let rec = IncidentRecord::new(id.clone(), batch.group_key.clone(), batch.source.clone(), &now);
                inner.incidents.insert(id.clone(), rec);
                inner.order.push_back(id.clone());
                inner.open_by_group.insert(batch.group_key.clone(), id.clone());
                self.evict(&mut inner);
                id
            }
        };
        let Some(rec) = inner.incidents.get_mut(&id) else {
            return;
        };
        let mut news = false;
        for alert in batch.alerts {
            let what = format!(
                "{} {}",
                alert.labels.get("alertname").map(String::as_str).unwrap_or("alert"),
                alert.fingerprint
            );
            let firing = rec.upsert_alert(alert);
            rec.log(
                &now,
                if firing { "alert-received" } else { "alert-resolved" },
                what,
                None,
                None,
            );
            news |= firing;
        }
        if rec.all_resolved() {
            rec.state = IncidentState::Resolved;
            rec.log(&now, "resolved", "every alert resolved", None, None);
            inner.open_by_group.remove(&batch.group_key);
            tracing::info!(incident_id = %id, "incident resolved");
            return;
        }
        if !news || rec.state == IncidentState::Analyzing {
            return;
        }
        let policy = self.config.policy_for(&rec.model().common_labels);
        if rec.occurrences < policy.min_occurrences {
            let detail = format!(
                "{} of {} occurrences needed before reacting",
                rec.occurrences, policy.min_occurrences
            );
            rec.log(&now, "waiting", detail, None, None);
            return;
        }
        if let Some(last) = inner.last_analysis.get(&batch.group_key)
            && last.elapsed() < Duration::from_millis(policy.cooldown_ms)
        {
            let detail = format!(
                "analysed {}s ago; cooldown is {}s",
                last.elapsed().as_secs(),
                policy.cooldown_ms / 1000
            );
            if let Some(rec) = inner.incidents.get_mut(&id) {
                rec.log(&now, "suppressed", detail, None, None);
            }
            return;
        }
        if policy.wait_for_more_ms > 0 {
            self.open_window(&mut inner, &id, policy.wait_for_more_ms);
            return;
        }
        self.start_analysis(&mut inner, &id, &now);
    }

    /// (Re)start the incident's wait-for-more window: analysis starts when it passes, unless a
    /// newer alert restarts it first.
    fn open_window(&self, inner: &mut Inner, id: &str, wait_ms: u64) {
        let generation = {
            let g = inner.window_gen.entry(id.to_string()).or_insert(0);
            *g += 1;
            *g
        };
        let timers = self.timers.clone();
        let incident = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            let _ = timers.send(Msg::WindowElapsed { incident, generation });
        });
    }

    fn window_elapsed(self: &Arc<Self>, incident: &str, generation: u64) {
        let now = now_rfc3339();
        let mut inner = lock(&self.inner);
        if inner.window_gen.get(incident) != Some(&generation) {
            return; // a newer alert restarted the window
        }
        let collecting = inner
            .incidents
            .get(incident)
            .is_some_and(|r| r.state == IncidentState::Collecting || r.state == IncidentState::Analyzed);
        if collecting {
            self.start_analysis(&mut inner, incident, &now);
        }
    }

    /// Drop the oldest incidents that are no longer open, past `max_incidents`.
    fn evict(&self, inner: &mut Inner) {
        while inner.incidents.len() > self.config.max_incidents {
            let Some(pos) = inner.order.iter().position(|id| {
                inner
                    .incidents
                    .get(id)
                    .is_none_or(|r| matches!(r.state, IncidentState::Resolved | IncidentState::Analyzed))
            }) else {
                break; // everything kept is still open: keep it rather than lose alerts
            };
            if let Some(id) = inner.order.remove(pos)
                && let Some(rec) = inner.incidents.remove(&id)
            {
                for a in rec.actions {
                    inner.actions.remove(&a);
                }
                if inner.open_by_group.get(&rec.group_key) == Some(&id) {
                    inner.open_by_group.remove(&rec.group_key);
                }
                inner.window_gen.remove(&id);
            }
        }
    }

    fn start_analysis(self: &Arc<Self>, inner: &mut Inner, id: &str, now: &str) {
        let recipes = self.recipes();
        let Some(rec) = inner.incidents.get_mut(id) else { return };
        let model = rec.model();
        let selected: Vec<&Recipe> = recipes
            .iter()
            .filter(|r| {
                model
                    .alerts
                    .iter()
                    .any(|a| a.status == crate::model::AlertStatus::Firing && r.selects(&a.labels))
            })
            .collect();
        rec.state = IncidentState::Analyzing;
        let mut jobs = Vec::new();
        for r in selected {
            let run_id = format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
            rec.runs.push(RunRecord {
                run_id: run_id.clone(),
                recipe: r.name().into(),
                digest: r.digest.to_string(),
                status: "pending".into(),
                result: None,
            });
            rec.log(
                now,
                "run-started",
                format!("{} {} pinned {}", r.name(), run_id, r.digest),
                None,
                None,
            );
            jobs.push(r.job(run_id, RunInput::Debug(model.clone())));
        }
        let group = rec.group_key.clone();
        let now_i = Instant::now();
        inner.last_analysis.insert(group.clone(), now_i);
        inner.analysis_order.push_back((group, now_i));
        // Remember cooldowns for at most this many groups: bounded memory under any traffic.
        let cap = (4 * self.config.max_incidents).max(1_000);
        while inner.analysis_order.len() > cap {
            if let Some((g, t)) = inner.analysis_order.pop_front()
                && inner.last_analysis.get(&g) == Some(&t)
            {
                inner.last_analysis.remove(&g);
            }
        }
        tracing::info!(incident_id = %id, runs = jobs.len(), "fan-out");
        let this = self.clone();
        let id = id.to_string();
        let guard = self.tasks.enter();
        tokio::spawn(async move {
            let _guard = guard;
            this.analyze(id, jobs).await;
        });
    }

    async fn analyze(self: Arc<Self>, id: String, jobs: Vec<crate::sandbox::RunJob>) {
        // The runs are on record before any starts: a host that dies now is succeeded by one
        // that knows them and adopts their results.
        if !self.persist_point(Duration::from_secs(5)).await {
            tracing::warn!(incident_id = %id, "the store did not take the runs within 5 s; starting them anyway");
        }
        let mut set = tokio::task::JoinSet::new();
        let pending = jobs.clone();
        for job in jobs {
            let this = self.clone();
            set.spawn(async move { this.run_job(job).await });
        }
        let deadline = tokio::time::Instant::now() + self.config.incident_deadline();
        loop {
            match tokio::time::timeout_at(deadline, set.join_next()).await {
                Ok(Some(Ok(result))) => self.record_run(&id, result),
                Ok(Some(Err(e))) => tracing::error!(incident_id = %id, "a run task failed: {e}"),
                Ok(None) => break,
                Err(_) => {
                    set.abort_all();
                    break;
                }
            }
        }
        // Whatever did not report by now is closed, never left pending.
        for job in pending {
            let msg = format!(
                "did not report within the incident deadline ({} ms)",
                self.config.incident_deadline_ms
            );
            self.record_run(&id, RunResult::closed(&job, RunStatus::TimedOut, msg));
        }
        self.finish_analysis(&id).await;
    }

    /// Merge the runs into the analysis, mark the incident analysed, and notify.
    async fn finish_analysis(self: &Arc<Self>, id: &str) {
        let id = id.to_string();
        let now = now_rfc3339();
        let snapshot = {
            let mut inner = lock(&self.inner);
            let Some(rec) = inner.incidents.get_mut(&id) else {
                return;
            };
            let analysis = merge(&id, &rec.runs);
            let detail = format!(
                "{:?}: {} ({} suggested actions)",
                analysis.verdict,
                analysis.summary,
                analysis.actions.len()
            );
            rec.analysis = Some(analysis);
            if rec.state == IncidentState::Analyzing {
                rec.state = IncidentState::Analyzed;
            }
            rec.log(&now, "analysis-complete", detail, None, None);
            rec.clone()
        };
        for n in &self.notifiers {
            let (kind, detail) = match n.analysis(&snapshot).await {
                Ok(()) => ("analysis-sent", format!("sent to {}", n.name())),
                Err(e) => ("notify-failed", format!("{}: {e}", n.name())),
            };
            if let Some(rec) = lock(&self.inner).incidents.get_mut(&id) {
                rec.log(&now_rfc3339(), kind, detail, None, Some(n.name()));
            }
        }
    }

    /// Run a job on the executor, with the in-flight gauge and the run metrics.
    async fn run_job(&self, job: crate::sandbox::RunJob) -> RunResult {
        self.metrics.runs_in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let recipe = job.recipe.clone();
        let result = self.executor.run(job).await;
        self.metrics.runs_in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .run_finished(&recipe, result.status.as_str(), started.elapsed().as_secs_f64());
        result
    }

    /// Record a run's result, exactly once per run id (later duplicates are ignored).
    fn record_run(&self, id: &str, result: RunResult) {
        let now = now_rfc3339();
        let mut inner = lock(&self.inner);
        let Some(rec) = inner.incidents.get_mut(id) else { return };
        let Some(run) = rec.runs.iter_mut().find(|r| r.run_id == result.run_id) else {
            return;
        };
        if run.result.is_some() {
            return;
        }
        run.status = result.status.as_str().into();
        let detail = format!(
            "{} {} {}{}",
            run.recipe,
            run.run_id,
            result.status,
            if result.message.is_empty() {
                String::new()
            } else {
                format!(": {}", result.message)
            }
        );
        tracing::info!(incident_id = %id, run_id = %result.run_id, recipe = %result.recipe, status = %result.status, "run recorded");
        run.result = Some(result);
        rec.log(&now, "run-finished", detail, None, None);
    }

    // ---------------------------------------------------------------- actions

    /// Approve an action. Returns the action run and whether it is new (false: approved before,
    /// nothing runs again).
    pub fn approve(self: &Arc<Self>, req: Approval, caller: &Caller) -> Result<(ActionRun, bool), ApproveError> {
        let now = now_rfc3339();
        let who = format!("{} (token {})", req.approver, caller.token);
        let mut inner = lock(&self.inner);
        let rec = inner
            .incidents
            .get_mut(&req.incident)
            .ok_or_else(|| ApproveError::UnknownIncident(req.incident.clone()))?;
        let suggestions = rec.analysis.as_ref().map(|a| a.actions.clone()).unwrap_or_default();
        let by_id = suggestions.iter().find(|s| s.id == req.action);
        let (action, params, suggested) = match (by_id, &req.params) {
            (Some(s), _) => (s.action.clone(), s.parameters.clone(), true),
            (None, Some(p)) => {
                let hit = suggestions.iter().any(|s| s.action == req.action && &s.parameters == p);
                (req.action.clone(), p.clone(), hit)
            }
            (None, None) => {
                let same: Vec<_> = suggestions.iter().filter(|s| s.action == req.action).collect();
                match same.as_slice() {
                    [one] => (one.action.clone(), one.parameters.clone(), true),
                    [] => (req.action.clone(), serde_json::json!({}), false),
                    many => {
                        let ids: Vec<&str> = many.iter().map(|s| s.id.as_str()).collect();
                        return Err(ApproveError::Unprocessable(format!(
                            "`{}` was suggested {} times with different parameters; approve one by id ({}) or give `params`",
                            req.action,
                            many.len(),
                            ids.join(", ")
                        )));
                    }
                }
            }
        };
        if !crate::manifest::is_dns_label(&action) {
            return Err(ApproveError::Unprocessable(format!("`{action}` is not an action name")));
        }
        if !suggested && caller.role < Role::Operator {
            let msg = format!(
                "`{action}` with {params} was not suggested for this incident; only an operator token may run an unsuggested action"
            );
            rec.log(&now, "action-refused", msg.clone(), Some(who), Some(&caller.channel));
            return Err(ApproveError::Unprocessable(msg));
        }
        let id = action_id(&req.incident, &action, &params);
        if let Some(existing) = inner.actions.get(&id) {
            let existing = existing.clone();
            if let Some(rec) = inner.incidents.get_mut(&req.incident) {
                rec.log(
                    &now,
                    "action-duplicate",
                    format!("{id} approved again; it runs once"),
                    Some(who),
                    Some(&caller.channel),
                );
            }
            return Ok((existing, false));
        }
        let target = format!("{action} {params}");
        let window = Duration::from_millis(self.config.breaker_window_ms);
        let history = inner.breaker.entry(target.clone()).or_default();
        while history.front().is_some_and(|t| t.elapsed() > window) {
            history.pop_front();
        }
        if history.len() >= self.config.breaker_max as usize {
            let msg = format!(
                "circuit breaker: `{target}` already ran {} times in the last {} s; refusing",
                history.len(),
                window.as_secs()
            );
            if let Some(rec) = inner.incidents.get_mut(&req.incident) {
                rec.log(&now, "action-refused", msg.clone(), Some(who), Some(&caller.channel));
            }
            return Err(ApproveError::Breaker(msg));
        }
        history.push_back(Instant::now());
        if inner.breaker.len() > 10_000 {
            inner
                .breaker
                .retain(|_, h| h.back().is_some_and(|t| t.elapsed() < window));
        }
        let recipes = self.recipes();
        let actor = recipes.iter().find(|r| r.implements(&action));
        let mut run = ActionRun {
            id: id.clone(),
            incident: req.incident.clone(),
            action: action.clone(),
            parameters: params.clone(),
            suggested,
            approved_by: req.approver.clone(),
            token: caller.token.clone(),
            channel: caller.channel.clone(),
            status: ActionStatus::Pending,
            recipe: actor.map(|r| r.name().to_string()),
            error: None,
            run_id: None,
            result: None,
            created_at: now.clone(),
        };
        let rec = inner
            .incidents
            .get_mut(&req.incident)
            .ok_or_else(|| ApproveError::UnknownIncident(req.incident.clone()))?;
        rec.actions.push(id.clone());
        rec.log(
            &now,
            "action-approved",
            format!(
                "{id} {action} {params}{}",
                if suggested { "" } else { " (not suggested; operator)" }
            ),
            Some(who),
            Some(&caller.channel),
        );
        let Some(actor) = actor else {
            let names: Vec<String> = recipes.iter().flat_map(|r| r.manifest.actions.clone()).collect();
            let msg = format!(
                "no action recipe implements `{action}` (actions available: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            );
            run.status = ActionStatus::Failed;
            run.error = Some(msg.clone());
            rec.log(&now, "action-finished", format!("{id} failed: {msg}"), None, None);
            let snapshot = rec.clone();
            inner.actions.insert(id, run.clone());
            self.metrics.action_finished(&action, "failed");
            let this = self.clone();
            let done = run.clone();
            tokio::spawn(async move { this.notify_outcome(snapshot, done).await });
            return Ok((run, true));
        };
        let job = actor.job(
            format!("run-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            RunInput::Action(ActionRequest {
                incident: rec.model(),
                action: action.clone(),
                parameters: params,
                approved_by: req.approver.clone(),
            }),
        );
        inner.actions.insert(id.clone(), run.clone());
        drop(inner);
        let this = self.clone();
        let guard = self.tasks.enter();
        tokio::spawn(async move {
            let _guard = guard;
            this.run_action(id, job).await;
        });
        Ok((run, true))
    }

    async fn run_action(self: Arc<Self>, id: String, job: crate::sandbox::RunJob) {
        let incident = {
            let mut inner = lock(&self.inner);
            let incident = inner.actions.get_mut(&id).map(|a| {
                a.status = ActionStatus::Running;
                a.run_id = Some(job.run_id.clone());
                a.incident.clone()
            });
            // Bump the incident so the write-behind stores the action's run id.
            if let Some(rec) = incident.as_ref().and_then(|i| inner.incidents.get_mut(i)) {
                rec.log(
                    &now_rfc3339(),
                    "action-started",
                    format!("{id} {}", job.run_id),
                    None,
                    None,
                );
            }
            incident
        };
        if incident.is_some() && !self.persist_point(Duration::from_secs(5)).await {
            tracing::warn!(action_id = %id, "the store did not take the action's run within 5 s; starting it anyway");
        }
        // Once across replicas, fenced by the leader lease; after it is on record.
        if let Some(fence) = self.fence.get() {
            let refused = match fence.claim(&id).await {
                Ok(true) => None,
                Ok(false) => Some("it was claimed before (by this or another replica); it runs once".to_string()),
                Err(e) => Some(format!("it could not be claimed: {e}")),
            };
            if let Some(why) = refused {
                tracing::warn!(action_id = %id, "action not started: {why}");
                let refused = RunResult::closed(&job, RunStatus::Denied, format!("not started: {why}"));
                self.finish_action(&id, refused).await;
                return;
            }
        }
        let result = self.run_job(job).await;
        self.finish_action(&id, result).await;
    }

    /// Record an action's result (once) and notify.
    async fn finish_action(&self, id: &str, result: RunResult) {
        let id = id.to_string();
        let now = now_rfc3339();
        let (snapshot, run) = {
            let mut inner = lock(&self.inner);
            let Some(a) = inner.actions.get_mut(&id) else { return };
            if a.result.is_some() {
                return; // recorded already: a duplicate delivery
            }
            let ok = result.status == RunStatus::Ok && result.outcome.as_ref().is_some_and(|o| o.success);
            a.status = if ok {
                ActionStatus::Succeeded
            } else {
                ActionStatus::Failed
            };
            let detail = match &result.outcome {
                Some(o) => format!("{id} {}: {}", if o.success { "succeeded" } else { "failed" }, o.summary),
                None => format!("{id} failed: {} {}", result.status, result.message),
            };
            if !ok && result.outcome.is_none() {
                a.error = Some(format!("{}: {}", result.status, result.message));
            }
            a.result = Some(result);
            let run = a.clone();
            self.metrics
                .action_finished(&run.action, if ok { "succeeded" } else { "failed" });
            let incident = run.incident.clone();
            let Some(rec) = inner.incidents.get_mut(&incident) else {
                return;
            };
            rec.log(&now, "action-finished", detail, None, None);
            (rec.clone(), run)
        };
        self.notify_outcome(snapshot, run).await;
    }

    async fn notify_outcome(&self, incident: IncidentRecord, run: ActionRun) {
        for n in &self.notifiers {
            let (kind, detail) = match n.outcome(&incident, &run).await {
                Ok(()) => ("outcome-sent", format!("{} sent to {}", run.id, n.name())),
                Err(e) => ("notify-failed", format!("{}: {e}", n.name())),
            };
            if let Some(rec) = lock(&self.inner).incidents.get_mut(&incident.id) {
                rec.log(&now_rfc3339(), kind, detail, None, Some(n.name()));
            }
        }
    }

    /// Append an event to an incident's log (chat integrations record refusals and rejections).
    pub fn note(&self, incident: &str, kind: &str, detail: &str, by: Option<String>, channel: &str) {
        if let Some(rec) = lock(&self.inner).incidents.get_mut(incident) {
            rec.log(&now_rfc3339(), kind, detail, by, Some(channel));
        }
    }

    // ---------------------------------------------------------------- restart (Redis mode)

    /// Incidents whose version differs from `written`, with their approved actions.
    pub fn changed_since(&self, written: &HashMap<String, u64>) -> (Vec<IncidentRecord>, Vec<ActionRun>) {
        let inner = lock(&self.inner);
        let incidents: Vec<IncidentRecord> = inner
            .incidents
            .values()
            .filter(|r| written.get(&r.id) != Some(&r.version))
            .cloned()
            .collect();
        let actions = incidents
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter_map(|a| inner.actions.get(a).cloned())
            .collect();
        (incidents, actions)
    }

    /// How many incidents are kept.
    pub fn max_incidents(&self) -> usize {
        self.config.max_incidents
    }

    /// Ids of the incidents kept.
    pub fn incident_ids(&self) -> Vec<String> {
        lock(&self.inner).incidents.keys().cloned().collect()
    }

    /// Take back incidents and actions a previous host left (oldest first). Analyses that were
    /// running get their results as they arrive (see [`Reconciler::adopt`]) and are closed at the
    /// incident deadline otherwise, never left pending.
    pub fn restore(self: &Arc<Self>, incidents: Vec<IncidentRecord>, actions: Vec<ActionRun>) {
        let now = now_rfc3339();
        let mut resume = Vec::new();
        let mut running = Vec::new();
        {
            let mut inner = lock(&self.inner);
            for mut rec in incidents {
                if rec.state != IncidentState::Resolved {
                    inner.open_by_group.insert(rec.group_key.clone(), rec.id.clone());
                }
                if rec.state == IncidentState::Analyzing {
                    rec.log(&now, "resumed", "a restarted host took the analysis over", None, None);
                    resume.push(rec.id.clone());
                }
                // Collecting, and due for analysis once its wait-for-more window passes: the
                // window's timer died with the previous host, so start it again.
                let policy = self.config.policy_for(&rec.model().common_labels);
                if rec.state == IncidentState::Collecting
                    && rec.occurrences >= policy.min_occurrences
                    && rec.alerts.iter().any(|a| a.status == crate::model::AlertStatus::Firing)
                {
                    self.open_window(&mut inner, &rec.id, policy.wait_for_more_ms);
                }
                inner.order.push_back(rec.id.clone());
                inner.incidents.insert(rec.id.clone(), rec);
            }
            for mut a in actions {
                if a.status == ActionStatus::Pending && a.run_id.is_none() {
                    // Approved, but its host died before starting it: say so rather than leave
                    // it pending for ever.
                    a.status = ActionStatus::Failed;
                    a.error = Some("its host stopped before starting it; nothing ran".into());
                }
                if a.status == ActionStatus::Running && a.result.is_none() {
                    running.push(a.id.clone());
                }
                inner.actions.insert(a.id.clone(), a);
            }
        }
        // Retries of alerts the previous host accepted are still duplicates here.
        let mut dedup = lock(&self.dedup);
        for rec in lock(&self.inner).incidents.values() {
            for a in &rec.alerts {
                dedup.insert(Dedup::key(a));
            }
        }
        drop(dedup);
        if resume.is_empty() && running.is_empty() {
            return;
        }
        // Runs and actions that were in flight: their results are adopted as they arrive; what
        // has not reported by the incident deadline is closed then, never left pending.
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.config.incident_deadline()).await;
            for id in resume {
                let pending = this.pending_runs(&id);
                if pending.is_empty() {
                    continue; // adopt() finished it
                }
                for (run_id, recipe, digest) in pending {
                    let result = RunResult::lost(
                        &run_id,
                        &recipe,
                        &digest,
                        "its host restarted and the run did not report before the incident deadline",
                    );
                    this.record_run(&id, result);
                }
                this.finish_analysis(&id).await;
            }
            for id in running {
                let job = lock(&this.inner).actions.get(&id).and_then(|a| {
                    a.result.is_none().then(|| {
                        (
                            a.run_id.clone().unwrap_or_default(),
                            a.recipe.clone().unwrap_or_default(),
                        )
                    })
                });
                if let Some((run_id, recipe)) = job {
                    let lost = RunResult::lost(
                        &run_id,
                        &recipe,
                        "",
                        "its host stopped and no result arrived before the incident deadline",
                    );
                    this.finish_action(&id, lost).await;
                }
            }
        });
    }

    fn pending_runs(&self, id: &str) -> Vec<(String, String, String)> {
        let inner = lock(&self.inner);
        inner
            .incidents
            .get(id)
            .map(|r| {
                r.runs
                    .iter()
                    .filter(|run| run.result.is_none())
                    .map(|run| (run.run_id.clone(), run.recipe.clone(), run.digest.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adopt every result arriving on `orphans`.
    pub fn adopt_from(self: &Arc<Self>, mut orphans: mpsc::UnboundedReceiver<RunResult>) {
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(r) = orphans.recv().await {
                this.adopt(r).await;
            }
        });
    }

    /// Take a result nobody in this process was waiting for (its run started before a restart):
    /// record it on its incident or action, once, and finish what it completes.
    pub async fn adopt(self: &Arc<Self>, result: RunResult) {
        let (incident, action) = {
            let inner = lock(&self.inner);
            let incident = inner
                .incidents
                .values()
                .find(|r| r.runs.iter().any(|run| run.run_id == result.run_id))
                .map(|r| r.id.clone());
            let action = inner
                .actions
                .values()
                .find(|a| a.run_id.as_deref() == Some(result.run_id.as_str()))
                .map(|a| a.id.clone());
            (incident, action)
        };
        match (incident, action) {
            (Some(id), _) => {
                self.record_run(&id, result);
                let analyzing = lock(&self.inner)
                    .incidents
                    .get(&id)
                    .is_some_and(|r| r.state == IncidentState::Analyzing);
                if analyzing && self.pending_runs(&id).is_empty() {
                    self.finish_analysis(&id).await;
                }
            }
            (None, Some(action)) => self.finish_action(&action, result).await,
            (None, None) => tracing::warn!(run_id = ?result.run_id, "a result for a run no incident knows; dropped"),
        }
    }

    // ---------------------------------------------------------------- reads

    /// `/api/status`.
    pub fn status(&self) -> Status {
        let inner = lock(&self.inner);
        let mut incidents: std::collections::BTreeMap<String, usize> =
            IncidentState::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
        for r in inner.incidents.values() {
            *incidents.entry(r.state.as_str().into()).or_insert(0) += 1;
        }
        drop(inner);
        let recipes = self
            .recipes()
            .iter()
            .map(|r| RecipeInfo {
                name: r.name().into(),
                kind: r.manifest.kind.to_string(),
                version: r.manifest.version.clone(),
                digest: r.digest.to_string(),
                handles: if r.manifest.kind == crate::manifest::Kind::Debug {
                    r.manifest.matchers.clone()
                } else {
                    r.manifest.actions.clone()
                },
            })
            .collect();
        Status {
            incidents,
            runs_in_flight: self.metrics.runs_in_flight.load(Ordering::Relaxed),
            queue_depth: self.queue_depth(),
            recipes,
            recipe_errors: self.recipe_errors.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Incidents, newest first, optionally filtered by state and by one `label=value`.
    pub fn incidents(&self, state: Option<IncidentState>, label: Option<(&str, &str)>) -> Vec<IncidentRecord> {
        let inner = lock(&self.inner);
        let mut out: Vec<IncidentRecord> = inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.incidents.get(id))
            .filter(|r| state.is_none_or(|s| r.state == s))
            .filter(|r| label.is_none_or(|(k, v)| r.has_label(k, v)))
            .cloned()
            .collect();
        for r in &mut out {
            r.events.clear(); // the list is a summary; the full log is at /api/incidents/{id}
            for run in &mut r.runs {
                run.result = None;
            }
        }
        out
    }

    /// One incident, with its runs, analysis, actions and event log.
    pub fn incident(&self, id: &str) -> Option<(IncidentRecord, Vec<ActionRun>)> {
        let inner = lock(&self.inner);
        let rec = inner.incidents.get(id)?.clone();
        let actions = rec
            .actions
            .iter()
            .filter_map(|a| inner.actions.get(a).cloned())
            .collect();
        Some((rec, actions))
    }

    /// One approved action.
    pub fn action(&self, id: &str) -> Option<ActionRun> {
        lock(&self.inner).actions.get(id).cloned()
    }

    /// Incidents per state, for metrics.
    pub fn incidents_by_state(&self) -> Vec<(&'static str, usize)> {
        let inner = lock(&self.inner);
        IncidentState::ALL
            .iter()
            .map(|s| (s.as_str(), inner.incidents.values().filter(|r| r.state == *s).count()))
            .collect()
    }

    // ---------------------------------------------------------------- shutdown

    /// Refuse new alerts from now on (`/webhook` answers 503, `/readyz` is not ready).
    pub fn shutdown_intake(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Stop accepting alerts, then wait (up to the grace period) for runs to finish.
    pub async fn shutdown(&self) {
        self.shutdown_intake();
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        let started = Instant::now();
        while self.tasks.active() > 0 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.tasks.active();
        if left > 0 {
            tracing::warn!(left, "shutdown grace period over; abandoning runs still in flight");
        }
    }
}
