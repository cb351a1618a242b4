//! The controller's [`TaskHandler`]: what each task type does, with a [`Builder`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::build::{host_arch, BuildError, Builder, FlakeProject};
use crate::events::{Event, EventBus};
use crate::external::nix_access_tokens;
use crate::image::{self, BootFiles};
use crate::project::Project;
use crate::secrets::Vault;
use crate::store::{hash_token, new_agent_token, NewAgentToken, Store, TaskRecord};
use crate::task::{CommandRunner, CommandSpec, TaskHandler, TaskRun, TaskSubmission};

/// What the controller's tasks work with.
pub struct ControllerJobs {
    /// Runs Nix.
    pub builder: Arc<dyn Builder>,
    /// The project.
    pub project: Arc<Project>,
    /// Secrets (access tokens, image secrets).
    pub vault: Arc<Vault>,
    /// The database (agent tokens).
    pub store: Arc<dyn Store>,
    /// The event bus.
    pub events: EventBus,
    /// Where images are kept.
    pub images_dir: PathBuf,
    /// Where tasks keep their temporary files (out-links, boot files).
    pub work_dir: PathBuf,
    /// The controller's OpenSSH public key, authorised on devices.
    pub controller_public_key: String,
}

fn reason(step: &str, err: BuildError) -> String {
    match err {
        BuildError::Cancelled => "Task was cancelled".to_owned(),
        err => format!("{step}: {err}"),
    }
}

/// A task's private scratch directory, removed when dropped (it may hold an agent token).
struct Scratch(PathBuf);

impl Scratch {
    fn new(work_dir: &Path, task: &TaskRecord) -> Result<Self, String> {
        let dir = work_dir.join(task.id.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ControllerJobs {
    fn flake_project(&self) -> FlakeProject {
        let snapshot = self.project.snapshot();
        FlakeProject {
            repo_path: self.project.root().to_path_buf(),
            access_tokens: nix_access_tokens(&snapshot.state, &self.vault),
        }
    }

    async fn build_image(
        &self,
        task: &TaskRecord,
        run: &TaskRun,
        config_id: &str,
        commit: &str,
    ) -> Result<(), String> {
        let arch = host_arch().ok_or("Unsupported build host architecture")?;
        let scratch = Scratch::new(&self.work_dir, task)?;
        let project = self.flake_project();
        let assembler = self
            .builder
            .build_image_builder(
                run,
                &project,
                config_id,
                commit,
                arch,
                &scratch.0.join("image-builder"),
            )
            .await
            .map_err(|err| reason("Build failed", err))?;

        let token = new_agent_token();
        let state = self.project.snapshot();
        let registry = self.project.registry();
        let requirements = image::secret_requirements(&state.state, &registry, config_id);
        let vault = self.vault.clone();
        let sealing_token = token.clone();
        // Passphrase encryption (scrypt) takes a while per secret: off the async threads.
        let initial_secrets = tokio::task::spawn_blocking(move || {
            image::initial_secrets(&vault, &sealing_token, &requirements)
        })
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("Cannot prepare the image's secrets: {err}"))?;
        let boot_dir = scratch.0.join("boot-files");
        BootFiles {
            token: token.clone(),
            metadata: image::metadata(config_id, commit),
            controller_public_key: self.controller_public_key.clone(),
            initial_secrets,
        }
        .write(&boot_dir)
        .map_err(|err| format!("Cannot write the boot files: {err}"))?;

        std::fs::create_dir_all(&self.images_dir)
            .and_then(|()| image::remove_images(&self.images_dir, config_id))
            .map_err(|err| format!("Cannot prepare {}: {err}", self.images_dir.display()))?;
        let destination = self.images_dir.join(config_id);
        let outcome = run
            .run(CommandSpec::new(
                assembler,
                vec![
                    boot_dir.display().to_string(),
                    destination.display().to_string(),
                ],
            ))
            .await
            .map_err(|err| err.to_string())?;
        if outcome.cancelled {
            let _ = image::remove_images(&self.images_dir, config_id);
            return Err("Task was cancelled".to_owned());
        }
        if !outcome.success() {
            let _ = image::remove_images(&self.images_dir, config_id);
            return Err(format!(
                "Image secrets builder failed: {}",
                outcome.failure_reason()
            ));
        }
        if image::find_image(&self.images_dir, config_id).is_none() {
            return Err("Image build failed, no image found at destination".to_owned());
        }
        // Only an image that exists gets a token that devices can use.
        let store = self.store.clone();
        let new_token = NewAgentToken {
            token_hash: hash_token(&token),
            name: format!("Image of {config_id}"),
            config_id: Some(config_id.to_owned()),
            config_commit: Some(commit.to_owned()),
        };
        tokio::task::spawn_blocking(move || store.create_agent_token(&new_token))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| format!("Cannot store the image's agent token: {err}"))?;
        self.events.publish(Event::AgentTokensChanged);
        Ok(())
    }
}

#[async_trait::async_trait]
impl TaskHandler for ControllerJobs {
    async fn run(
        &self,
        task: &TaskRecord,
        submission: &TaskSubmission,
        run: &TaskRun,
    ) -> Result<(), String> {
        match submission {
            TaskSubmission::ProjectFlakeLock {} => {
                let result = self.builder.lock(run, &self.flake_project()).await;
                self.events.publish(Event::RepoStatusChanged);
                result.map_err(|err| reason("Flake lock failed", err))
            }
            TaskSubmission::ProjectFlakeUpdate {} => {
                let result = self.builder.update(run, &self.flake_project()).await;
                self.events.publish(Event::RepoStatusChanged);
                result.map_err(|err| reason("Flake update failed", err))
            }
            TaskSubmission::BuildProject {} => {
                let scratch = Scratch::new(&self.work_dir, task)?;
                self.builder
                    .build_project(run, &self.flake_project(), &scratch.0.join("result"))
                    .await
                    .map(|_| ())
                    .map_err(|err| reason("Build failed", err))
            }
            TaskSubmission::BuildDeviceImage {
                configuration_id,
                commit,
                ..
            } => self.build_image(task, run, configuration_id, commit).await,
        }
    }
}
