//! Building: the [`Builder`] trait and [`NixBuilder`], which drives `nix` with
//! `--log-format internal-json` (spec/repository-and-nix.md §7–8) so tasks show progress and
//! Nix errors with their position.
//!
//! Every method takes the [`CommandRunner`] to run commands with: a task's
//! [`TaskRun`](crate::task::TaskRun) records them with the task; a
//! [`DirectRunner`](crate::task::DirectRunner) just runs them.

mod nix;

use std::path::{Path, PathBuf};

pub use nix::{NixBuilder, NixSettings, THYMIS_CACHE, THYMIS_CACHE_KEY};

use crate::nix::log::NixErrorInfo;
use crate::task::{CommandRunner, RunError};

/// The project flake a build works on.
#[derive(Clone)]
pub struct FlakeProject {
    /// The project's git repository.
    pub repo_path: PathBuf,
    /// The `NIX_CONFIG` line with access tokens of external repositories, if any.
    pub access_tokens: Option<String>,
}

// Hand-written: the access tokens must never reach a log line.
impl std::fmt::Debug for FlakeProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlakeProject")
            .field("repo_path", &self.repo_path)
            .field(
                "access_tokens",
                &self.access_tokens.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a build step failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Nix ran and failed.
    #[error("{reason}")]
    Failed {
        /// What went wrong (the first Nix error, or the end of the log).
        reason: String,
        /// Nix's errors with their positions.
        errors: Vec<NixErrorInfo>,
    },
    /// The task was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A config id or commit that cannot be put into a flake reference.
    #[error("invalid {what} `{value}`")]
    Invalid {
        /// What it is.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Nix succeeded but its result is missing or unreadable.
    #[error("unexpected result from nix: {0}")]
    Result(String),
    /// Nix could not be run.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// What builds and evaluates the project.
#[async_trait::async_trait]
pub trait Builder: Send + Sync {
    /// Writes `flake.lock` for the working tree's `flake.nix` (after it changed).
    async fn lock(&self, run: &dyn CommandRunner, project: &FlakeProject)
        -> Result<(), BuildError>;

    /// Updates every input in `flake.lock` to its newest version.
    async fn update(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
    ) -> Result<(), BuildError>;

    /// Builds every config of the working tree (`.#thymis`); returns the result's store path,
    /// kept alive by `out_link`.
    async fn build_project(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError>;

    /// Builds one config's system (`toplevel`) at a commit.
    async fn build_system(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        config_id: &str,
        commit: &str,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError>;

    /// Builds one config's image assembler at a commit for the build host's architecture
    /// (`x86_64` or `aarch64`): a program taking `<boot files dir> <image path without
    /// extension>`.
    async fn build_image_builder(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        config_id: &str,
        commit: &str,
        arch: &str,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError>;

    /// Evaluates an attribute of the project flake (at `commit`, or the working tree) to JSON.
    async fn evaluate(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        commit: Option<&str>,
        attribute: &str,
    ) -> Result<serde_json::Value, BuildError>;
}

/// The build host's architecture as Nix names it in `<arch>-linux`, if images can be built
/// for it.
pub fn host_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64"),
        "aarch64" => Some("aarch64"),
        _ => None,
    }
}
