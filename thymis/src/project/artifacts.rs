//! Artifacts: files users upload into the project (`repository/artifacts/`, flat, tracked by git
//! so the flake can copy them onto devices).

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Project, ProjectError};
use crate::events::Event;
use crate::module::{ModuleRegistry, Setting, SettingType};
use crate::repository::check_artifact_name;
use crate::state::State;

/// The artifacts folder inside the repository.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// One artifact as listed.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactInfo {
    /// File name.
    pub name: String,
    /// Media type guessed from the name.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// When the file was created (or last replaced).
    pub created_at: Option<DateTime<Utc>>,
    /// When its content last changed.
    pub modified_at: Option<DateTime<Utc>>,
}

/// Why an artifact operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The name is not a plain file name inside `artifacts/`.
    #[error("{0}")]
    InvalidName(String),
    /// No such artifact.
    #[error("artifact `{0}` not found")]
    NotFound(String),
    /// An artifact of the new name exists already.
    #[error("artifact `{0}` exists already")]
    Exists(String),
    /// Files could not be read or written.
    #[error("artifacts: {0}")]
    Io(#[from] std::io::Error),
    /// Updating the state or git failed.
    #[error(transparent)]
    Project(#[from] ProjectError),
}

fn valid_name(name: &str) -> Result<&str, ArtifactError> {
    check_artifact_name(name).map_err(ArtifactError::InvalidName)?;
    Ok(name)
}

fn to_utc(time: std::io::Result<std::time::SystemTime>) -> Option<DateTime<Utc>> {
    time.ok().map(DateTime::<Utc>::from)
}

/// A small table is enough: artifacts are mostly images, archives and configuration files.
fn media_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        Some("txt" | "conf" | "cfg" | "ini" | "nix" | "sh" | "py" | "yaml" | "yml" | "toml") => {
            "text/plain"
        }
        Some("html" | "htm") => "text/html",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        _ => "application/octet-stream",
    }
}

impl Project {
    /// The artifacts folder.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join(ARTIFACTS_DIR)
    }

    /// The path of an existing artifact.
    pub fn artifact_path(&self, name: &str) -> Result<PathBuf, ArtifactError> {
        let path = self.artifacts_dir().join(valid_name(name)?);
        // A symbolic link could point anywhere on the controller; artifacts are plain files.
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => Ok(path),
            _ => Err(ArtifactError::NotFound(name.to_owned())),
        }
    }

    /// Every artifact, by name.
    pub fn list_artifacts(&self) -> Result<Vec<ArtifactInfo>, ArtifactError> {
        let dir = self.artifacts_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err.into()),
        };
        let mut artifacts = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let metadata = entry.metadata()?;
            if !metadata.is_file() || check_artifact_name(&name).is_err() {
                continue;
            }
            artifacts.push(ArtifactInfo {
                media_type: media_type(&name).to_owned(),
                size: metadata.len(),
                created_at: to_utc(metadata.created()),
                modified_at: to_utc(metadata.modified()),
                name,
            });
        }
        artifacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(artifacts)
    }

    /// A temporary file inside the artifacts folder to receive an upload; pass it to
    /// [`Project::store_artifact`]. It is deleted when dropped unstored.
    pub fn artifact_upload(&self) -> Result<tempfile::NamedTempFile, ArtifactError> {
        let dir = self.artifacts_dir();
        fs::create_dir_all(&dir)?;
        Ok(tempfile::Builder::new()
            .prefix(crate::repository::TEMP_FILE_PREFIX)
            .suffix(crate::repository::TEMP_FILE_SUFFIX)
            .tempfile_in(dir)?)
    }

    /// Moves an upload into place under `name`, replacing an artifact of that name, and makes
    /// git track it.
    pub fn store_artifact(
        &self,
        name: &str,
        upload: tempfile::NamedTempFile,
    ) -> Result<(), ArtifactError> {
        let name = valid_name(name)?;
        upload.as_file().sync_all()?;
        let target = self.artifacts_dir().join(name);
        let mut repo = self.repo();
        upload.persist(&target).map_err(|err| err.error)?;
        repo.track(&[format!("{ARTIFACTS_DIR}/{name}")], &[])
            .map_err(ProjectError::from)?;
        drop(repo);
        self.events.publish(Event::ArtifactsChanged);
        Ok(())
    }

    /// Deletes an artifact.
    pub fn delete_artifact(&self, name: &str) -> Result<(), ArtifactError> {
        let mut repo = self.repo();
        let path = self.artifact_path(name)?;
        fs::remove_file(path)?;
        repo.track(&[], &[format!("{ARTIFACTS_DIR}/{name}")])
            .map_err(ProjectError::from)?;
        drop(repo);
        self.events.publish(Event::ArtifactsChanged);
        Ok(())
    }

    /// Renames an artifact and every reference to it in the state; returns how many settings
    /// were updated.
    pub fn rename_artifact(&self, old: &str, new: &str) -> Result<usize, ArtifactError> {
        // One step under the repository lock: no upload, rename or state change interleaves.
        let mut repo = self.repo();
        let from = self.artifact_path(old)?;
        let to = self.artifacts_dir().join(valid_name(new)?);
        if fs::symlink_metadata(&to).is_ok() {
            return Err(ArtifactError::Exists(new.to_owned()));
        }
        let current = self.snapshot();
        let mut state = current.state.clone();
        let registry = self.registry();
        let updated = rename_references(&mut state, &registry, old, new);
        let (old_path, new_path) = (
            format!("{ARTIFACTS_DIR}/{old}"),
            format!("{ARTIFACTS_DIR}/{new}"),
        );
        fs::rename(&from, &to)?;
        let result = repo
            .track(
                std::slice::from_ref(&new_path),
                std::slice::from_ref(&old_path),
            )
            .map_err(ProjectError::from)
            .and_then(|()| {
                if updated > 0 {
                    self.save_locked(&mut repo, state, Some(&current.revision), &registry)?;
                }
                Ok(())
            });
        if let Err(err) = result {
            // Keep files, git and state consistent: put the file back.
            let _ = fs::rename(&to, &from);
            let _ = repo.track(&[old_path], &[new_path]);
            return Err(err.into());
        }
        drop(repo);
        self.events.publish(Event::ArtifactsChanged);
        Ok(updated)
    }
}

/// Replaces artifact setting values `old` by `new` in every module instance (top-level and
/// inside lists), guided by each module's schema; returns how many values changed.
pub fn rename_references(
    state: &mut State,
    registry: &ModuleRegistry,
    old: &str,
    new: &str,
) -> usize {
    let mut count = 0;
    let instances = state
        .configs
        .iter_mut()
        .flat_map(|c| c.modules.iter_mut())
        .chain(state.tags.iter_mut().flat_map(|t| t.modules.iter_mut()));
    for instance in instances {
        let Some(module) = registry.get(&instance.module_type) else {
            continue;
        };
        count += rename_in(&module.info().settings, &mut instance.settings, old, new);
    }
    count
}

fn rename_in(
    schema: &[Setting],
    values: &mut serde_json::Map<String, Value>,
    old: &str,
    new: &str,
) -> usize {
    let mut count = 0;
    for setting in schema {
        let Some(value) = values.get_mut(&setting.key) else {
            continue;
        };
        match (&setting.ty, value) {
            (SettingType::Artifact, Value::String(name)) if name == old => {
                *name = new.to_owned();
                count += 1;
            }
            (SettingType::List { settings, .. }, Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    count += rename_in(settings, item, old, new);
                }
            }
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_renamed_by_schema_not_by_text() {
        let (mut state, _) = State::from_json_value(serde_json::json!({
            "version": "0.0.9",
            "configs": [{"displayName": "A", "identifier": "a", "tags": [], "modules": [
                {"type": "thymis_controller.modules.files.FilesModule", "settings": {
                    "artifacts": [{"artifact": "logo.png", "path": "/etc/logo.png"},
                                  {"artifact": "other.png", "path": "/etc/logo.png"}]}},
                {"type": "thymis_controller.modules.whatever.WhateverModule",
                 "settings": {"settings": "# \"artifact\":\"logo.png\""}}
            ]}]
        }))
        .unwrap();
        let count = rename_references(
            &mut state,
            &ModuleRegistry::with_builtins(),
            "logo.png",
            "brand.png",
        );
        assert_eq!(count, 1);
        let files = &state.configs[0].modules[0].settings["artifacts"];
        assert_eq!(files[0]["artifact"], "brand.png");
        assert_eq!(files[1]["artifact"], "other.png");
        assert_eq!(
            state.configs[0].modules[1].settings["settings"], "# \"artifact\":\"logo.png\"",
            "text that merely looks like a reference is left alone"
        );
        assert_eq!(media_type("Logo.PNG"), "image/png");
        assert_eq!(media_type("blob"), "application/octet-stream");
    }
}
