//! What a task was asked to do: the submission stored with it, replayed on retry and after a
//! restart. The JSON shapes keep upstream's `type` names (http-api.md §6.3); fields upstream
//! stored but we look up when the task runs (project path, access tokens) are ignored when
//! reading old records, so no secret ever lands in the task table.

use serde::{Deserialize, Serialize};

/// A task's submission, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TaskSubmission {
    /// `nix flake update` of the project.
    #[serde(rename = "project_flake_update_task")]
    ProjectFlakeUpdate {},
    /// `nix flake lock` of the project after its `flake.nix` changed.
    #[serde(rename = "project_flake_lock_task")]
    ProjectFlakeLock {},
    /// Builds every config of the working tree (`.#thymis`).
    #[serde(rename = "build_project_task")]
    BuildProject {},
    /// Builds the disk or SD-card image of one config at a commit.
    #[serde(rename = "build_device_image_task")]
    BuildDeviceImage {
        /// The config.
        configuration_id: String,
        /// The commit it is built from.
        commit: String,
        /// The image format of its Device module at that commit.
        image_format: String,
    },
}

impl TaskSubmission {
    /// The task type name.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskSubmission::ProjectFlakeUpdate {} => "project_flake_update_task",
            TaskSubmission::ProjectFlakeLock {} => "project_flake_lock_task",
            TaskSubmission::BuildProject {} => "build_project_task",
            TaskSubmission::BuildDeviceImage { .. } => "build_device_image_task",
        }
    }

    /// Tasks of the same group never run at the same time: both flake tasks write `flake.lock`.
    pub fn exclusive_group(&self) -> Option<&'static str> {
        match self {
            TaskSubmission::ProjectFlakeUpdate {} | TaskSubmission::ProjectFlakeLock {} => {
                Some("flake.lock")
            }
            _ => None,
        }
    }

    /// The submission as stored.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
