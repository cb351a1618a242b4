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

mod engine;
pub mod jobs;
mod process;
mod submission;

pub use engine::{TaskEngine, TaskEngineConfig, TaskError, TaskHandler, TaskRun};
pub use process::{
    CommandOutcome, CommandRunner, CommandSpec, DirectRunner, RunError, DEFAULT_KILL_GRACE,
};
pub use submission::TaskSubmission;
