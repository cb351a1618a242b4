//! The project repository: the state rendered into a Nix flake and versioned in git.
//!
//! [`Repository`] is the interface the controller uses; [`GitRepository`] is the default
//! implementation on a git working tree (branch `master`, as upstream).

mod git;
mod render;
mod sync;

use serde::Serialize;

use crate::module::ModuleRegistry;
use crate::state::{State, StateError};

pub use git::GitRepository;
pub use render::{ProjectFiles, ProjectRenderer, RenderFailure, RenderOptions};
pub use sync::{
    write_atomic, DiskMirror, SyncReport, TEMP_PREFIX as TEMP_FILE_PREFIX,
    TEMP_SUFFIX as TEMP_FILE_SUFFIX,
};

/// The identity the controller commits with when nothing else is configured.
pub const CONTROLLER_NAME: &str = "Thymis Controller";
/// The e-mail address of [`CONTROLLER_NAME`].
pub const CONTROLLER_EMAIL: &str = "controller@noreply.thymis.io";

/// Who made a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// One commit of the project history (upstream's `/api/history` item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// Full hash.
    #[serde(rename = "SHA")]
    pub sha: String,
    /// Abbreviated hash (7 characters).
    #[serde(rename = "SHA1")]
    pub short_sha: String,
    /// First line of the message.
    pub message: String,
    /// Commit time as `YYYY-MM-DD HH:MM:SS ±hhmm` (git's `%ci`).
    pub date: String,
    /// Author name.
    pub author: String,
}

/// How a file differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New file.
    Added,
    /// Changed content.
    Modified,
    /// Removed file.
    Deleted,
}

/// A changed file with its unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Repository-relative path.
    pub path: String,
    /// Added, modified or deleted.
    pub kind: ChangeKind,
    /// Unified diff text (empty for binary files).
    pub diff: String,
}

/// What saving a state changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Files written and deleted.
    pub files: SyncReport,
    /// Whether `flake.nix` changed, which means the flake must be locked again.
    pub flake_changed: bool,
}

/// Errors of repository operations.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Reading or writing files failed.
    #[error("project files: {0}")]
    Io(#[from] std::io::Error),
    /// A git operation failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    /// `state.json` could not be loaded.
    #[error(transparent)]
    State(#[from] StateError),
    /// The state could not be rendered.
    #[error(transparent)]
    Render(#[from] RenderFailure),
    /// There is nothing to commit.
    #[error("there are no changes to commit")]
    NothingToCommit,
    /// The operation would discard uncommitted changes.
    #[error("the project has uncommitted changes; commit or discard them first")]
    Dirty,
    /// A commit reference does not name a commit.
    #[error("`{0}` does not name a commit of this project")]
    UnknownCommit(String),
    /// A commit message is empty.
    #[error("a commit message must not be empty")]
    EmptyMessage,
}

/// The project repository as the controller uses it. Methods block; call them off async threads.
pub trait Repository: Send {
    /// Reads and migrates `state.json`.
    fn load_state(&self) -> Result<State, RepositoryError>;

    /// Writes the state and everything rendered from it, touching only files whose content
    /// changed. New and removed files are staged in git (Nix sees only tracked files); changed
    /// files are staged by the next commit.
    fn save_state(
        &mut self,
        state: &State,
        registry: &ModuleRegistry,
    ) -> Result<SaveReport, RepositoryError>;

    /// Uncommitted changes, each with its diff against the last commit.
    fn status(&self) -> Result<Vec<FileChange>, RepositoryError>;

    /// Commits every change; `author` defaults to the controller's identity.
    fn commit(
        &mut self,
        message: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError>;

    /// Commits, newest first, at most `limit`.
    fn history(&self, limit: usize) -> Result<Vec<CommitInfo>, RepositoryError>;

    /// Changes from commit `from` (the empty tree when `None`) to `to` (HEAD when `None`).
    fn diff(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<FileChange>, RepositoryError>;

    /// Restores the whole project as it was at `commit`, recorded as a new commit.
    fn revert_to(
        &mut self,
        commit: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError>;
}

/// Why `name` cannot be an artifact file name: artifacts live flat in `artifacts/`.
pub fn check_artifact_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('.')
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(format!("`{name}` is not a valid artifact file name"));
    }
    Ok(())
}
