//! Device images: the boot files an image carries (agent token, metadata, controller key,
//! initial secrets; agent-protocol.md §2.2), where built images are kept, and their clean-up.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::module::{ModuleRegistry, SecretRequirement};
use crate::secrets::{encrypt_for_image, process_value, SecretError, Vault, VaultError};
use crate::state::{State, DEVICE_MODULE_TYPE};
use thymis_protocol::{SecretInfo, SecretsMessage};

/// File extensions of built images, as upstream's download looks for them.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["img", "qcow2", "iso", "nixos-vm"];
/// Files beside an image that belong to it (the VM starter of `nixos-vm`).
const COMPANION_EXTENSIONS: [&str; 1] = ["start-vm"];

/// The built image of `config_id`, if there is one.
pub fn find_image(images_dir: &Path, config_id: &str) -> Option<PathBuf> {
    IMAGE_EXTENSIONS
        .iter()
        .map(|ext| images_dir.join(format!("{config_id}.{ext}")))
        .find(|path| path.is_file())
}

/// Removes every image (and companion file) of `config_id`, before a new one is built.
pub fn remove_images(images_dir: &Path, config_id: &str) -> io::Result<()> {
    for ext in IMAGE_EXTENSIONS.iter().chain(&COMPANION_EXTENSIONS) {
        match std::fs::remove_file(images_dir.join(format!("{config_id}.{ext}"))) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

/// Marks an image as just used, so clean-up keeps it for another retention period.
pub fn touch(path: &Path) -> io::Result<()> {
    let now = SystemTime::now();
    std::fs::File::options().write(true).open(path)?.set_times(
        std::fs::FileTimes::new()
            .set_accessed(now)
            .set_modified(now),
    )
}

/// Deletes images (and companion files) not built or downloaded within `retention`; returns
/// the deleted paths. Images are large and carry an agent token, so they do not linger.
pub fn remove_expired(images_dir: &Path, retention: Duration) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(images_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|ext| {
                IMAGE_EXTENSIONS.contains(&ext) || COMPANION_EXTENSIONS.contains(&ext)
            });
        let metadata = entry.metadata()?;
        if !is_image || !metadata.is_file() {
            continue;
        }
        let last_used = metadata.modified()?;
        if now.duration_since(last_used).unwrap_or_default() > retention {
            std::fs::remove_file(&path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// The image format of a config: its Device module's `image_format`.
pub fn image_format(state: &State, config_id: &str) -> Option<String> {
    let config = state.configs.iter().find(|c| c.identifier == config_id)?;
    let device = config
        .modules
        .iter()
        .find(|m| m.module_type == DEVICE_MODULE_TYPE)?;
    let format = device.settings.get("image_format").and_then(Json::as_str);
    let device_type = device.settings.get("device_type").and_then(Json::as_str);
    match format.filter(|f| !f.is_empty()) {
        Some(format) => Some(format.to_owned()),
        None => crate::module::builtin::default_image_format(device_type?).map(str::to_owned),
    }
}

/// The secrets a config needs on its device, from its own modules and its tags' modules; for
/// the same path the config's own module wins, then tags by priority.
pub fn secret_requirements(
    state: &State,
    registry: &ModuleRegistry,
    config_id: &str,
) -> Vec<SecretRequirement> {
    let Some(config) = state.configs.iter().find(|c| c.identifier == config_id) else {
        return Vec::new();
    };
    let mut tags: Vec<_> = state
        .tags
        .iter()
        .filter(|tag| config.tags.contains(&tag.identifier))
        .collect();
    tags.sort_by_key(|tag| tag.priority);
    let modules = config
        .modules
        .iter()
        .chain(tags.iter().flat_map(|tag| tag.modules.iter()));
    let mut found: Vec<SecretRequirement> = Vec::new();
    for module in modules {
        let Some(implementation) = registry.get(&module.module_type) else {
            continue;
        };
        for requirement in implementation.secrets(&module.settings) {
            if !found.iter().any(|r| r.path == requirement.path) {
                found.push(requirement);
            }
        }
    }
    found
}

/// The boot files of an image (agent-protocol.md §2.2), written into the directory the image
/// assembler copies onto the boot partition.
pub struct BootFiles {
    /// `thymis-token.txt`: the agent token.
    pub token: String,
    /// `thymis-metadata.json`.
    pub metadata: Json,
    /// `thymis-controller-ssh-pubkey.txt`.
    pub controller_public_key: String,
    /// `thymis-secrets-initial.json`.
    pub initial_secrets: Json,
}

/// The metadata of an image built from `commit` of `config_id`.
pub fn metadata(config_id: &str, commit: &str) -> Json {
    json!({
        "configuration_id": config_id,
        "configuration_commit": commit,
        "datetime": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
    })
}

/// The secrets of `requirements` as agents receive them (`send_secrets`, or the image's
/// `thymis-secrets-initial.json`): each value revealed, processed as its secret says (e.g.
/// password hashing) and sealed with `seal`. With `only_in_image`, secrets not marked *include
/// in image* are left out. A secret deleted meanwhile, or whose processing fails, is left out
/// (and logged) so the others still arrive.
pub fn seal_secrets(
    vault: &Vault,
    requirements: &[SecretRequirement],
    only_in_image: bool,
    seal: impl Fn(&[u8]) -> Result<String, SecretError>,
) -> Result<SecretsMessage, VaultError> {
    let mut message = SecretsMessage::default();
    for requirement in requirements {
        let Ok(id) = Uuid::parse_str(&requirement.secret_id) else {
            continue;
        };
        if !message.secrets.contains_key(&requirement.secret_id) {
            let (record, value) = match vault.reveal(id) {
                Ok(found) => found,
                // A deleted secret is reported by validation; the others still go out.
                Err(VaultError::NotFound(_)) => continue,
                Err(err) => return Err(err),
            };
            if only_in_image && !record.include_in_image {
                continue;
            }
            let value = match process_value(record.processing_type, &value) {
                Ok(value) => value,
                Err(err) => {
                    tracing::warn!(secret_id = %id, error = %err,
                        "secret left out of the delivery: processing failed");
                    continue;
                }
            };
            message
                .secrets
                .insert(requirement.secret_id.clone(), seal(&value)?);
        }
        message.secret_infos.push(SecretInfo {
            secret_id: requirement.secret_id.clone(),
            path: requirement.path.clone(),
            owner: requirement.owner.clone(),
            group: requirement.group.clone(),
            mode: requirement.mode.clone(),
        });
    }
    Ok(message)
}

/// `thymis-secrets-initial.json`: the *include in image* secrets among `requirements`,
/// processed and encrypted with the agent token as age passphrase.
pub fn initial_secrets(
    vault: &Vault,
    token: &str,
    requirements: &[SecretRequirement],
) -> Result<Json, VaultError> {
    let message = seal_secrets(vault, requirements, true, |value| {
        encrypt_for_image(token, value)
    })?;
    Ok(serde_json::to_value(message).unwrap_or(Json::Null))
}

impl BootFiles {
    /// Writes the files into `dir` (created private: it holds the token).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let files: [(&str, Vec<u8>); 4] = [
            ("thymis-token.txt", self.token.as_bytes().to_vec()),
            (
                "thymis-metadata.json",
                self.metadata.to_string().into_bytes(),
            ),
            (
                "thymis-controller-ssh-pubkey.txt",
                format!("{}\n", self.controller_public_key.trim_end()).into_bytes(),
            ),
            (
                "thymis-secrets-initial.json",
                self.initial_secrets.to_string().into_bytes(),
            ),
        ];
        for (name, content) in files {
            let mut file = std::fs::File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join(name))?;
            io::Write::write_all(&mut file, &content)?;
        }
        Ok(())
    }
}
