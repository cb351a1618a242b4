//! Records of tasks, the commands they ran and their output.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a task is in its life (http-api.md §6.2, plus a real `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for a free slot.
    Pending,
    /// Its work (or one of its children) is running.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished with an error (see `exception`).
    Failed,
    /// Stopped by a user before it finished.
    Cancelled,
}

impl TaskState {
    /// Every state, in life order.
    pub const ALL: [TaskState; 5] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// The name used in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    /// Whether the task has ended and will not change state again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task state name that is not one of [`TaskState::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown task state `{0}` (expected pending, running, completed, failed or cancelled)")]
pub struct UnknownTaskState(pub String);

impl FromStr for TaskState {
    type Err = UnknownTaskState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownTaskState(s.to_owned()))
    }
}

/// What is needed to create a task.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The task's type (`build_project_task`, …).
    pub kind: String,
    /// The full submission, replayed on retry and after a restart.
    pub submission_data: serde_json::Value,
    /// Who submitted it.
    pub submitted_by: Option<String>,
    /// The composite task this one belongs to.
    pub parent_id: Option<Uuid>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRecord {
    /// Its id.
    pub id: Uuid,
    /// The task's type.
    pub kind: String,
    /// Its state.
    pub state: TaskState,
    /// The submission.
    pub submission_data: serde_json::Value,
    /// Who submitted it.
    pub submitted_by: Option<String>,
    /// The composite task it belongs to.
    pub parent_id: Option<Uuid>,
    /// Its children, oldest first.
    pub children: Vec<Uuid>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed (messages separated by newlines).
    pub exception: Option<String>,
    /// The progress of its current command (a `NixProgress` for Nix commands).
    pub progress: Option<serde_json::Value>,
    /// Output bytes kept.
    pub output_bytes: u64,
    /// Output bytes dropped from the front to stay within the limit.
    pub output_dropped_bytes: u64,
}

/// A change to a task's record; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TaskUpdate {
    /// The new state. Entering `running` sets `started_at`; a finished state sets `ended_at`.
    pub state: Option<TaskState>,
    /// Appended to `exception` on a new line.
    pub append_exception: Option<String>,
    /// Replaces the progress.
    pub progress: Option<serde_json::Value>,
}

/// Which tasks a list returns.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks in this state.
    pub state: Option<TaskState>,
    /// Only tasks of this type.
    pub kind: Option<String>,
    /// Only children of this task.
    pub parent_id: Option<Uuid>,
}

/// A command a task ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskProcessRecord {
    /// Its position among the task's commands, from 0.
    pub index: u32,
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Its exit code (`None` while running or when killed by a signal).
    pub exit_code: Option<i32>,
    /// Its Nix progress.
    pub progress: Option<serde_json::Value>,
    /// Its Nix errors (a JSON list).
    pub errors: serde_json::Value,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error (for Nix: its readable log).
    Stderr,
}

impl OutputStream {
    /// The name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

impl FromStr for OutputStream {
    type Err = UnknownTaskState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stdout" => Ok(OutputStream::Stdout),
            "stderr" => Ok(OutputStream::Stderr),
            other => Err(UnknownTaskState(other.to_owned())),
        }
    }
}

/// A piece of output to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutput {
    /// The command it came from.
    pub process_index: u32,
    /// The stream.
    pub stream: OutputStream,
    /// The bytes.
    pub data: Vec<u8>,
}

/// A stored piece of output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Its sequence number within the task (increasing).
    pub seq: i64,
    /// The command it came from.
    pub process_index: u32,
    /// The stream.
    pub stream: OutputStream,
    /// The bytes.
    pub data: Vec<u8>,
}
