//! The [`Vault`]: secrets as users manage them — validated, encrypted to the controller key
//! before they reach the store, and read back only where a value is really needed.

use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{validate_secret_value, SecretBox, SecretError, SecretKind, SecretProcessing};
use crate::store::{NewSecret, SecretRecord, SecretUpdate, SecretValue, Store, StoreError};

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

/// A secret to create.
#[derive(Debug)]
pub struct SecretInput {
    /// Name shown to users.
    pub display_name: String,
    /// Kind.
    pub kind: SecretKind,
    /// The value.
    pub value: Vec<u8>,
    /// File name (file secrets).
    pub filename: Option<String>,
    /// Whether images embed it.
    pub include_in_image: bool,
    /// Transformation at delivery.
    pub processing: SecretProcessing,
}

/// Changes to a secret; `None` keeps a field.
#[derive(Debug, Default)]
pub struct SecretChanges {
    /// New name.
    pub display_name: Option<String>,
    /// New kind (the value is checked against it).
    pub kind: Option<SecretKind>,
    /// New value.
    pub value: Option<Vec<u8>>,
    /// New file name.
    pub filename: Option<String>,
    /// New image flag.
    pub include_in_image: Option<bool>,
    /// New processing.
    pub processing: Option<SecretProcessing>,
}

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The input is not acceptable; the message names the problem (never the value).
    #[error("{0}")]
    Invalid(String),
    /// No such (live) secret.
    #[error("secret {0} not found")]
    NotFound(Uuid),
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] SecretError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for VaultError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { id, .. } => match Uuid::parse_str(&id) {
                Ok(id) => VaultError::NotFound(id),
                Err(_) => VaultError::Invalid(format!("secret {id} not found")),
            },
            other => VaultError::Store(other),
        }
    }
}

fn check_display_name(name: &str) -> Result<String, VaultError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_DISPLAY_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(VaultError::Invalid(format!(
            "a secret's name must be 1–{MAX_DISPLAY_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

fn check_filename(name: &str) -> Result<String, VaultError> {
    crate::repository::check_artifact_name(name)
        .map(|()| name.to_owned())
        .map_err(|_| VaultError::Invalid(format!("`{name}` is not a valid file name")))
}

/// Secrets, encrypted at rest to the controller key.
pub struct Vault {
    store: Arc<dyn Store>,
    secret_box: SecretBox,
    /// Serialises updates: a type change checks the stored value, which no other update may
    /// replace in between.
    updates: Mutex<()>,
}

impl Vault {
    /// A vault over the store, encrypting with the controller key's box.
    pub fn new(store: Arc<dyn Store>, secret_box: SecretBox) -> Self {
        Vault {
            store,
            secret_box,
            updates: Mutex::new(()),
        }
    }

    fn seal(&self, kind: SecretKind, value: &[u8]) -> Result<SecretValue, VaultError> {
        validate_secret_value(kind, value).map_err(|err| VaultError::Invalid(err.to_string()))?;
        Ok(SecretValue {
            value_enc: self.secret_box.encrypt(value)?,
            value_size: value.len() as u64,
        })
    }

    /// Creates a secret.
    pub fn create(&self, input: SecretInput) -> Result<SecretRecord, VaultError> {
        let display_name = check_display_name(&input.display_name)?;
        let filename = input.filename.as_deref().map(check_filename).transpose()?;
        let value = self.seal(input.kind, &input.value)?;
        Ok(self.store.insert_secret(&NewSecret {
            display_name,
            secret_type: input.kind,
            value,
            filename,
            include_in_image: input.include_in_image,
            processing_type: input.processing,
        })?)
    }

    /// Changes a secret. Changing only the kind re-checks the stored value against it.
    pub fn update(&self, id: Uuid, changes: SecretChanges) -> Result<SecretRecord, VaultError> {
        let _serialised = self
            .updates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.store.get_secret(id)?.ok_or(VaultError::NotFound(id))?;
        let kind = changes.kind.unwrap_or(current.secret_type);
        let value = match (&changes.value, changes.kind) {
            (Some(value), _) => Some(self.seal(kind, value)?),
            (None, Some(new_kind)) if new_kind != current.secret_type => {
                let plaintext = self.secret_box.decrypt(&current.value_enc)?;
                validate_secret_value(new_kind, &plaintext)
                    .map_err(|err| VaultError::Invalid(err.to_string()))?;
                None
            }
            (None, _) => None,
        };
        let update = SecretUpdate {
            display_name: changes
                .display_name
                .as_deref()
                .map(check_display_name)
                .transpose()?,
            secret_type: changes.kind,
            value,
            filename: changes
                .filename
                .as_deref()
                .map(check_filename)
                .transpose()?
                .map(Some),
            include_in_image: changes.include_in_image,
            processing_type: changes.processing,
        };
        if update.is_empty() {
            return Ok(current);
        }
        Ok(self.store.update_secret(id, &update)?)
    }

    /// Every live secret, without values.
    pub fn list(&self) -> Result<Vec<SecretRecord>, VaultError> {
        Ok(self.store.list_secrets()?)
    }

    /// Deletes a secret (it stays recoverable in the database until purged).
    pub fn delete(&self, id: Uuid) -> Result<(), VaultError> {
        if self.store.soft_delete_secret(id)? {
            Ok(())
        } else {
            Err(VaultError::NotFound(id))
        }
    }

    /// A secret with its decrypted value, for delivery or download.
    pub fn reveal(&self, id: Uuid) -> Result<(SecretRecord, Vec<u8>), VaultError> {
        let record = self.store.get_secret(id)?.ok_or(VaultError::NotFound(id))?;
        let value = self.secret_box.decrypt(&record.value_enc)?;
        Ok((record, value))
    }
}
