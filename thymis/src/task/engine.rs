//! The task engine: a durable queue in the store, run with a global concurrency limit and
//! per-group exclusivity, with cancellation, retry, composite parents and recovery after a
//! restart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::process::{
    blocking, run_command, CommandOutcome, CommandRunner, CommandSpec, OutputRecorder, RunError,
    DEFAULT_KILL_GRACE,
};
use super::TaskSubmission;
use crate::events::{Event, EventBus};
use crate::store::{
    NewTask, Store, StoreError, TaskFilter, TaskProcessRecord, TaskRecord, TaskState, TaskUpdate,
};

/// What a task was asked to do, carried out. The controller's implementation drives Nix
/// ([`crate::task::jobs`]); embedders may bring their own.
#[async_trait::async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// Does the work of `task`. An `Err` is the reason it failed, shown to the user.
    async fn run(
        &self,
        task: &TaskRecord,
        submission: &TaskSubmission,
        run: &TaskRun,
    ) -> Result<(), String>;
}

/// Limits and timings of the engine.
#[derive(Debug, Clone)]
pub struct TaskEngineConfig {
    /// Tasks running at once (default: the number of CPUs).
    pub concurrency: usize,
    /// Output kept per task; older output is dropped beyond it.
    pub max_output_bytes: u64,
    /// Between SIGTERM and SIGKILL of a cancelled command.
    pub kill_grace: Duration,
    /// How often running commands' output and progress are written and announced.
    pub flush_interval: Duration,
}

impl Default for TaskEngineConfig {
    fn default() -> Self {
        TaskEngineConfig {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_output_bytes: 16 << 20,
            kill_grace: DEFAULT_KILL_GRACE,
            flush_interval: Duration::from_millis(200),
        }
    }
}

/// Why the engine refused a request.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No such task.
    #[error("task {0} not found")]
    NotFound(Uuid),
    /// Cancel of a task that has ended.
    #[error("task {0} has already finished")]
    AlreadyFinished(Uuid),
    /// Retry of a task that has not ended.
    #[error("task {0} has not finished yet")]
    NotFinished(Uuid),
    /// The stored submission no longer parses.
    #[error("task {id} cannot be retried: its submission is not understood ({reason})")]
    BadSubmission {
        /// The task.
        id: Uuid,
        /// What did not parse.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The task engine; cloning gives another handle to the same engine.
#[derive(Clone)]
pub struct TaskEngine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    events: EventBus,
    handler: Arc<dyn TaskHandler>,
    config: TaskEngineConfig,
    schedule: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    queue: VecDeque<Queued>,
    running: HashMap<Uuid, Running>,
    /// Parents whose own work is done, waiting for their children.
    awaiting_children: HashSet<Uuid>,
}

struct Queued {
    id: Uuid,
    group: Option<&'static str>,
}

struct Running {
    cancel: CancellationToken,
    group: Option<&'static str>,
}

impl Schedule {
    fn busy_groups(&self) -> HashSet<&'static str> {
        self.running.values().filter_map(|r| r.group).collect()
    }
}

const CANCELLED: &str = "Task was cancelled";
const INTERRUPTED: &str = "Task was interrupted by a restart of the controller";

impl TaskEngine {
    /// An engine over `store`, announcing changes on `events` and doing work with `handler`.
    /// Call [`TaskEngine::start`] to recover stored tasks and begin running.
    pub fn new(
        store: Arc<dyn Store>,
        events: EventBus,
        handler: Arc<dyn TaskHandler>,
        config: TaskEngineConfig,
    ) -> Self {
        TaskEngine {
            inner: Arc::new(Inner {
                store,
                events,
                handler,
                config: TaskEngineConfig {
                    concurrency: config.concurrency.max(1),
                    ..config
                },
                schedule: Mutex::new(Schedule::default()),
            }),
        }
    }

    /// The engine's limits.
    pub fn config(&self) -> &TaskEngineConfig {
        &self.inner.config
    }

    /// Recovers after a restart: tasks that were running fail as interrupted, pending ones are
    /// queued again in submission order. Then starts as many as the limits allow.
    pub async fn start(&self) -> Result<(), StoreError> {
        let store = self.inner.store.clone();
        let (interrupted, pending) = blocking(move || {
            let all = |state| {
                store
                    .list_tasks(
                        &TaskFilter {
                            state: Some(state),
                            ..TaskFilter::default()
                        },
                        usize::MAX,
                        0,
                    )
                    .map(|(tasks, _)| tasks)
            };
            let mut interrupted = Vec::new();
            for task in all(TaskState::Running)? {
                interrupted.push(store.update_task(
                    task.id,
                    &TaskUpdate {
                        state: Some(TaskState::Failed),
                        append_exception: Some(INTERRUPTED.to_owned()),
                        ..TaskUpdate::default()
                    },
                )?);
            }
            let mut pending = all(TaskState::Pending)?;
            pending.reverse();
            Ok((interrupted, pending))
        })
        .await?;
        for task in &interrupted {
            tracing::warn!(task = %task.id, kind = %task.kind, "task interrupted by a restart");
            self.inner.events.publish(Event::TaskChanged(task.id));
        }
        {
            let mut schedule = self.lock();
            for task in pending {
                let group = parse_submission(&task)
                    .ok()
                    .and_then(|s| s.exclusive_group());
                schedule.queue.push_back(Queued { id: task.id, group });
            }
        }
        self.schedule();
        Ok(())
    }

    /// Stores a new task and queues it; returns it as stored (`pending`).
    pub async fn submit(
        &self,
        submission: TaskSubmission,
        submitted_by: Option<String>,
    ) -> Result<TaskRecord, StoreError> {
        self.submit_with_parent(submission, submitted_by, None)
            .await
    }

    async fn submit_with_parent(
        &self,
        submission: TaskSubmission,
        submitted_by: Option<String>,
        parent_id: Option<Uuid>,
    ) -> Result<TaskRecord, StoreError> {
        let store = self.inner.store.clone();
        let new = NewTask {
            kind: submission.kind().to_owned(),
            submission_data: submission.to_json(),
            submitted_by,
            parent_id,
        };
        let task = blocking(move || store.insert_task(&new)).await?;
        self.inner.events.publish(Event::TaskSubmitted(task.id));
        self.lock().queue.push_back(Queued {
            id: task.id,
            group: submission.exclusive_group(),
        });
        self.schedule();
        Ok(task)
    }

    /// Cancels a task: a queued one ends at once, a running one has its command terminated
    /// (then killed), a parent waiting for children has them cancelled too.
    pub async fn cancel(&self, id: Uuid) -> Result<TaskRecord, TaskError> {
        let task = self.get(id).await?;
        if task.state.is_finished() {
            return Err(TaskError::AlreadyFinished(id));
        }
        let (was_queued, was_running) = {
            let mut schedule = self.lock();
            let before = schedule.queue.len();
            schedule.queue.retain(|q| q.id != id);
            let was_queued = schedule.queue.len() != before;
            let was_running = match schedule.running.get(&id) {
                Some(running) => {
                    running.cancel.cancel();
                    true
                }
                None => false,
            };
            (was_queued, was_running)
        };
        for child in &task.children {
            match Box::pin(self.cancel(*child)).await {
                Ok(_) | Err(TaskError::AlreadyFinished(_)) => {}
                Err(err) => return Err(err),
            }
        }
        if was_running {
            // The run loop records the end once the command is gone.
            return self.get(id).await;
        }
        let awaiting = self.lock().awaiting_children.remove(&id);
        if was_queued || awaiting || task.state == TaskState::Pending {
            let finished = self
                .finish(id, TaskState::Cancelled, Some(CANCELLED))
                .await?;
            self.schedule();
            return Ok(finished);
        }
        self.get(id).await
    }

    /// Submits a finished task's submission again as a new task.
    pub async fn retry(
        &self,
        id: Uuid,
        submitted_by: Option<String>,
    ) -> Result<TaskRecord, TaskError> {
        let task = self.get(id).await?;
        if !task.state.is_finished() {
            return Err(TaskError::NotFinished(id));
        }
        let submission =
            parse_submission(&task).map_err(|reason| TaskError::BadSubmission { id, reason })?;
        Ok(self
            .submit_with_parent(submission, submitted_by, None)
            .await?)
    }

    /// A task as stored.
    pub async fn get(&self, id: Uuid) -> Result<TaskRecord, TaskError> {
        let store = self.inner.store.clone();
        blocking(move || store.get_task(id))
            .await?
            .ok_or(TaskError::NotFound(id))
    }

    /// How many tasks are running and queued now.
    pub fn load(&self) -> (usize, usize) {
        let schedule = self.lock();
        (schedule.running.len(), schedule.queue.len())
    }

    fn lock(&self) -> MutexGuard<'_, Schedule> {
        self.inner
            .schedule
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts queued tasks, oldest first, while slots are free; a task whose group is busy
    /// waits without holding back the tasks behind it.
    fn schedule(&self) {
        let mut schedule = self.lock();
        let mut busy = schedule.busy_groups();
        let mut index = 0;
        while schedule.running.len() < self.inner.config.concurrency && index < schedule.queue.len()
        {
            let group = schedule.queue[index].group;
            if group.is_some_and(|g| busy.contains(g)) {
                index += 1;
                continue;
            }
            let Some(queued) = schedule.queue.remove(index) else {
                break;
            };
            if let Some(group) = group {
                busy.insert(group);
            }
            let cancel = CancellationToken::new();
            schedule.running.insert(
                queued.id,
                Running {
                    cancel: cancel.clone(),
                    group,
                },
            );
            let engine = self.clone();
            tokio::spawn(async move { engine.execute(queued.id, cancel).await });
        }
    }

    async fn execute(&self, id: Uuid, cancel: CancellationToken) {
        let outcome = self.execute_inner(id, cancel.clone()).await;
        let (state, reason) = match outcome {
            _ if cancel.is_cancelled() => (TaskState::Cancelled, Some(CANCELLED.to_owned())),
            Ok(()) => (TaskState::Completed, None),
            Err(reason) => (TaskState::Failed, Some(reason)),
        };
        self.lock().running.remove(&id);
        if let Err(err) = self.end_own_work(id, state, reason).await {
            tracing::error!(task = %id, error = %err, "cannot record the end of a task");
        }
        self.schedule();
    }

    async fn execute_inner(&self, id: Uuid, cancel: CancellationToken) -> Result<(), String> {
        if cancel.is_cancelled() {
            return Err(CANCELLED.to_owned());
        }
        let store = self.inner.store.clone();
        let task = blocking(move || {
            store.update_task(
                id,
                &TaskUpdate {
                    state: Some(TaskState::Running),
                    ..TaskUpdate::default()
                },
            )
        })
        .await
        .map_err(|err| err.to_string())?;
        self.inner.events.publish(Event::TaskChanged(id));
        let submission = parse_submission(&task).map_err(|reason| {
            format!("Task rejected: its submission is not understood ({reason})")
        })?;
        let run = TaskRun {
            engine: self.clone(),
            task_id: id,
            cancel,
            next_process: AtomicU32::new(0),
        };
        self.inner.handler.run(&task, &submission, &run).await
    }

    /// Records the end of a task's own work: a parent with unfinished children keeps running
    /// until they end.
    async fn end_own_work(
        &self,
        id: Uuid,
        state: TaskState,
        reason: Option<String>,
    ) -> Result<(), TaskError> {
        let task = self.get(id).await?;
        if state == TaskState::Completed && !task.children.is_empty() {
            self.lock().awaiting_children.insert(id);
            return self.resolve_parent(id).await;
        }
        self.finish(id, state, reason.as_deref()).await?;
        if let Some(parent) = task.parent_id {
            Box::pin(self.child_ended(parent, id, state)).await?;
        }
        Ok(())
    }

    async fn child_ended(
        &self,
        parent: Uuid,
        child: Uuid,
        state: TaskState,
    ) -> Result<(), TaskError> {
        if state != TaskState::Completed {
            let store = self.inner.store.clone();
            let message = format!("Child task {child} {state}");
            blocking(move || {
                store.update_task(
                    parent,
                    &TaskUpdate {
                        append_exception: Some(message),
                        ..TaskUpdate::default()
                    },
                )
            })
            .await?;
            self.inner.events.publish(Event::TaskChanged(parent));
        }
        self.resolve_parent(parent).await
    }

    /// Ends a parent waiting for its children once they have all ended.
    async fn resolve_parent(&self, parent: Uuid) -> Result<(), TaskError> {
        if !self.lock().awaiting_children.contains(&parent) {
            return Ok(());
        }
        let store = self.inner.store.clone();
        let children = blocking(move || {
            store
                .list_tasks(
                    &TaskFilter {
                        parent_id: Some(parent),
                        ..TaskFilter::default()
                    },
                    usize::MAX,
                    0,
                )
                .map(|(tasks, _)| tasks)
        })
        .await?;
        if children.iter().any(|c| !c.state.is_finished()) {
            return Ok(());
        }
        if !self.lock().awaiting_children.remove(&parent) {
            return Ok(());
        }
        let state = if children.iter().all(|c| c.state == TaskState::Completed) {
            TaskState::Completed
        } else if children.iter().any(|c| c.state == TaskState::Failed) {
            TaskState::Failed
        } else {
            TaskState::Cancelled
        };
        Box::pin(self.end_own_work_final(parent, state)).await
    }

    async fn end_own_work_final(&self, id: Uuid, state: TaskState) -> Result<(), TaskError> {
        let task = self.finish(id, state, None).await?;
        if let Some(grandparent) = task.parent_id {
            self.child_ended(grandparent, id, state).await?;
        }
        Ok(())
    }

    async fn finish(
        &self,
        id: Uuid,
        state: TaskState,
        reason: Option<&str>,
    ) -> Result<TaskRecord, StoreError> {
        let store = self.inner.store.clone();
        let reason = reason.map(str::to_owned);
        let task = blocking(move || {
            store.update_task(
                id,
                &TaskUpdate {
                    state: Some(state),
                    append_exception: reason,
                    ..TaskUpdate::default()
                },
            )
        })
        .await?;
        tracing::info!(task = %id, kind = %task.kind, %state, "task ended");
        self.inner.events.publish(Event::TaskChanged(id));
        Ok(task)
    }
}

fn parse_submission(task: &TaskRecord) -> Result<TaskSubmission, String> {
    serde_json::from_value(task.submission_data.clone()).map_err(|err| err.to_string())
}

/// One execution of a task, handed to its [`TaskHandler`]: runs commands whose output and
/// progress are recorded with the task, and knows whether the task was cancelled.
pub struct TaskRun {
    engine: TaskEngine,
    task_id: Uuid,
    cancel: CancellationToken,
    next_process: AtomicU32,
}

impl TaskRun {
    /// The task's id.
    pub fn task_id(&self) -> Uuid {
        self.task_id
    }

    /// Whether the task was cancelled; long steps between commands should check it.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Submits a child task; the task ends when its children have ended.
    pub async fn submit_child(
        &self,
        submission: TaskSubmission,
        submitted_by: Option<String>,
    ) -> Result<TaskRecord, StoreError> {
        self.engine
            .submit_with_parent(submission, submitted_by, Some(self.task_id))
            .await
    }
}

#[async_trait::async_trait]
impl CommandRunner for TaskRun {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutcome, RunError> {
        let inner = &self.engine.inner;
        let process = TaskProcessRecord {
            index: self.next_process.fetch_add(1, Ordering::Relaxed),
            program: spec.program.display().to_string(),
            args: spec.args.clone(),
            started_at: Utc::now(),
            ended_at: None,
            exit_code: None,
            progress: None,
            errors: serde_json::Value::Array(Vec::new()),
        };
        let store = inner.store.clone();
        let (task_id, record) = (self.task_id, process.clone());
        blocking(move || store.put_task_process(task_id, &record)).await?;
        inner.events.publish(Event::TaskOutput(self.task_id));
        let mut recorder = OutputRecorder {
            store: inner.store.clone(),
            events: inner.events.clone(),
            task_id: self.task_id,
            process,
            max_output_bytes: inner.config.max_output_bytes,
            flush_interval: inner.config.flush_interval,
        };
        run_command(
            &spec,
            &self.cancel,
            inner.config.kill_grace,
            Some(&mut recorder),
        )
        .await
    }
}
