//! The live project of a controller: the repository, the current state and its revision.
//!
//! Readers get an immutable [`StateSnapshot`] without waiting for a save in progress; writers
//! go through [`Project`], which checks revisions so that two editors never silently overwrite
//! each other.

mod artifacts;

use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::events::{Event, EventBus};
use crate::module::ModuleRegistry;
use crate::repository::{
    Author, CommitInfo, FileChange, GitRepository, RenderFailure, RenderOptions, Repository,
    RepositoryError,
};
use crate::state::{Problem, Severity, State};

pub use artifacts::{rename_references, ArtifactError, ArtifactInfo, ARTIFACTS_DIR};

/// The current state as served to readers.
#[derive(Debug)]
pub struct StateSnapshot {
    /// The state.
    pub state: State,
    /// Its `state.json` text.
    pub json: Arc<str>,
    /// A revision naming exactly this content (a SHA-256 prefix of `json`).
    pub revision: String,
}

impl StateSnapshot {
    fn new(state: State, json: Arc<str>) -> Self {
        let revision = revision_of(&json);
        StateSnapshot {
            state,
            json,
            revision,
        }
    }
}

/// The revision of a `state.json` text.
pub fn revision_of(json: &str) -> String {
    let digest = Sha256::digest(json.as_bytes());
    hex::encode(&digest[..10])
}

/// Why a change to the project was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The change was based on an older revision; `current` is the state it would overwrite.
    #[error("the state was changed by someone else (now at revision {})", .current.revision)]
    Conflict {
        /// The current state.
        current: Arc<StateSnapshot>,
    },
    /// The new state has errors.
    #[error("the state has {} error(s)", .0.iter().filter(|p| p.severity == Severity::Error).count())]
    Invalid(Vec<Problem>),
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// The project: repository plus current state. Methods block (git, files); call them off
/// async threads.
pub struct Project {
    root: std::path::PathBuf,
    repo: Mutex<GitRepository>,
    registry: RwLock<ModuleRegistry>,
    snapshot: RwLock<Arc<StateSnapshot>>,
    events: EventBus,
}

impl Project {
    /// Opens (or creates) the project repository, migrating and rendering its state.
    pub fn open(
        repo_path: &std::path::Path,
        registry: ModuleRegistry,
        options: RenderOptions,
        events: EventBus,
    ) -> Result<Self, RepositoryError> {
        let repo = GitRepository::open_or_init(repo_path, &registry, options)?;
        let state = repo.load_state()?;
        let json: Arc<str> = state.to_json_pretty().into();
        Ok(Project {
            root: repo.root().to_path_buf(),
            repo: Mutex::new(repo),
            registry: RwLock::new(registry),
            snapshot: RwLock::new(Arc::new(StateSnapshot::new(state, json))),
            events,
        })
    }

    /// The current state; never waits for a save in progress.
    pub fn snapshot(&self) -> Arc<StateSnapshot> {
        self.snapshot
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The module registry.
    pub fn registry(&self) -> ModuleRegistry {
        self.registry
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn repo(&self) -> std::sync::MutexGuard<'_, GitRepository> {
        // A panic while holding the lock leaves the repository usable: every operation
        // re-reads what it needs from disk or git.
        self.repo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish_snapshot(&self, state: State) -> Arc<StateSnapshot> {
        let json: Arc<str> = state.to_json_pretty().into();
        let snapshot = Arc::new(StateSnapshot::new(state, json));
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot.clone(),
            Err(poisoned) => *poisoned.into_inner() = snapshot.clone(),
        }
        snapshot
    }

    /// Replaces the whole state. With `expected_revision`, the change is refused when the state
    /// is no longer at that revision. States with errors are refused with every problem.
    /// Returns the new snapshot and the warnings.
    pub fn replace_state(
        &self,
        state: State,
        expected_revision: Option<&str>,
    ) -> Result<(Arc<StateSnapshot>, Vec<Problem>), ProjectError> {
        let registry = self.registry();
        let problems = state.validate_without_rendering(&registry);
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(ProjectError::Invalid(problems));
        }
        let mut repo = self.repo();
        let snapshot = self.save_locked(&mut repo, state, expected_revision, &registry)?;
        Ok((snapshot, problems))
    }

    /// Saves `state` while the caller holds the repository lock: the revision check, the write
    /// and the new snapshot happen as one step, so concurrent saves cannot overwrite each other
    /// or publish out of order.
    fn save_locked(
        &self,
        repo: &mut GitRepository,
        state: State,
        expected_revision: Option<&str>,
        registry: &ModuleRegistry,
    ) -> Result<Arc<StateSnapshot>, ProjectError> {
        let current = self.snapshot();
        if expected_revision.is_some_and(|expected| expected != current.revision) {
            return Err(ProjectError::Conflict { current });
        }
        // Rendering reports what only modules find (e.g. Custom Nix syntax) and writes nothing
        // then.
        let report = repo.save_state(&state, registry).map_err(|err| match err {
            RepositoryError::Render(RenderFailure::Modules(problems)) => {
                ProjectError::Invalid(problems)
            }
            other => ProjectError::Repository(other),
        })?;
        let snapshot = self.publish_snapshot(state);
        self.events.publish(Event::StateChanged);
        self.events.publish(Event::RepoStatusChanged);
        if report.flake_changed {
            self.events.publish(Event::FlakeChanged);
        }
        Ok(snapshot)
    }

    /// The project's directory (the git repository).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The full hash of the newest commit, if there is one.
    pub fn head_commit(&self) -> Result<Option<String>, RepositoryError> {
        Ok(self.repo().history(1)?.into_iter().next().map(|c| c.sha))
    }

    /// Uncommitted changes with their diffs.
    pub fn status(&self) -> Result<Vec<FileChange>, RepositoryError> {
        self.repo().status()
    }

    /// Commits every change.
    pub fn commit(
        &self,
        message: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError> {
        let commit = self.repo().commit(message, author)?;
        self.events.publish(Event::RepoStatusChanged);
        Ok(commit)
    }

    /// Commits, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<CommitInfo>, RepositoryError> {
        self.repo().history(limit)
    }

    /// Changes between two commits.
    pub fn diff(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<FileChange>, RepositoryError> {
        self.repo().diff(from, to)
    }

    /// Restores the project of `commit` as a new commit and makes its state current.
    pub fn revert_to(
        &self,
        commit: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError> {
        let registry = self.registry();
        let mut repo = self.repo();
        let info = repo.revert_to(commit, author)?;
        let state = repo.load_state()?;
        // The old commit may have been rendered by an older version; bring it up to date.
        repo.save_state(&state, &registry)?;
        self.publish_snapshot(state);
        drop(repo);
        self.events.publish(Event::StateChanged);
        self.events.publish(Event::RepoStatusChanged);
        Ok(info)
    }
}
