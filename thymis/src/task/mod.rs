//! Tasks: long work (builds, flake updates, images) that users can watch, cancel and retry.
//!
//! - [`TaskEngine`]: the durable queue in the [`Store`](crate::store::Store), the concurrency
//!   limit (default: one task per CPU) and per-group exclusivity (one `flake.lock` writer at a
//!   time), cancellation, retry, composite parents and recovery after a restart.
//! - [`TaskRun`]: what a running task's handler uses to run commands; their output and Nix
//!   progress are stored incrementally (bounded per task) and announced on the event bus.
//! - [`TaskSubmission`]: the stored description of a task.
//! - [`jobs`]: the controller's [`TaskHandler`], carrying out each task type with a
//!   [`Builder`](crate::build::Builder).
//!
//! ```
//! use std::sync::Arc;
//! use thymis::events::EventBus;
//! use thymis::store::{SqliteStore, TaskRecord, TaskState};
//! use thymis::task::*;
//!
//! /// Runs `echo` for every task.
//! struct Echo;
//!
//! #[async_trait::async_trait]
//! impl TaskHandler for Echo {
//!     async fn run(&self, _: &TaskRecord, _: &TaskSubmission, run: &TaskRun) -> Result<(), String> {
//!         let outcome = run
//!             .run(CommandSpec::new("echo", vec!["hello".into()]))
//!             .await
//!             .map_err(|e| e.to_string())?;
//!         if outcome.success() { Ok(()) } else { Err(outcome.failure_reason()) }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let store = Arc::new(SqliteStore::open_in_memory()?);
//! let engine = TaskEngine::new(store.clone(), EventBus::new(), Arc::new(Echo), TaskEngineConfig::default());
//! engine.start().await?;
//! let task = engine.submit(TaskSubmission::BuildProject {}, Some("admin".into())).await?;
//! while !engine.get(task.id).await?.state.is_finished() {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! assert_eq!(engine.get(task.id).await?.state, TaskState::Completed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
pub mod jobs;
mod process;
mod submission;

pub use engine::{TaskEngine, TaskEngineConfig, TaskError, TaskHandler, TaskRun};
pub use process::{
    CommandOutcome, CommandRunner, CommandSpec, DirectRunner, RunError, DEFAULT_KILL_GRACE,
};
pub use submission::TaskSubmission;
