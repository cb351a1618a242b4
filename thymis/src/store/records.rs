//! Record types read from and written to the store. Their `Serialize` output is safe to send to
//! a browser: token hashes are not part of any record and secret ciphertext is skipped.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::module::{SecretKind, SecretProcessing};

/// A web session as stored. The session secret's hash is deliberately not part of it: only
/// [`Store::find_session`](super::Store::find_session) needs it, and it takes the hash itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// Session id, sent to the browser in the `session-id` cookie.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Given name from the identity provider, if any.
    pub given_name: Option<String>,
    /// Family name from the identity provider, if any.
    pub family_name: Option<String>,
    /// E-mail address, if known (used as commit author).
    pub email: Option<String>,
    /// When the session was created.
    pub created_at: DateTime<Utc>,
    /// When the session stops being valid.
    pub expires_at: DateTime<Utc>,
}

/// What is needed to create a session.
#[derive(Clone)]
pub struct NewSession {
    /// [`hash_token`](super::hash_token) of the session secret given to the browser.
    pub token_hash: String,
    /// Login name.
    pub username: String,
    /// Given name, if known.
    pub given_name: Option<String>,
    /// Family name, if known.
    pub family_name: Option<String>,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// When the session stops being valid.
    pub expires_at: DateTime<Utc>,
}

// Hand-written so that the hash never lands in a log line through `{:?}`.
impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("token_hash", &"<redacted>")
            .field("username", &self.username)
            .field("given_name", &self.given_name)
            .field("family_name", &self.family_name)
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// An API token for automation. The token's hash is not part of the record, so serialising a
/// list of tokens can never expose what would be needed to look one up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenRecord {
    /// Token id, used to revoke it.
    pub id: Uuid,
    /// Name given by its creator (e.g. "CI").
    pub name: String,
    /// User who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A secret's value as stored: encrypted (age, to the controller key) plus the plaintext length.
/// They travel together so they cannot disagree.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The ciphertext.
    pub value_enc: Vec<u8>,
    /// Length of the plaintext in bytes.
    pub value_size: u64,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field(
                "value_enc",
                &format_args!("<{} bytes>", self.value_enc.len()),
            )
            .field("value_size", &self.value_size)
            .finish()
    }
}

/// A secret to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// Name shown in the UI.
    pub display_name: String,
    /// Kind of secret.
    pub secret_type: SecretKind,
    /// The encrypted value.
    pub value: SecretValue,
    /// Original file name (file secrets).
    pub filename: Option<String>,
    /// Whether the secret is embedded in device images.
    pub include_in_image: bool,
    /// Transformation at delivery.
    pub processing_type: SecretProcessing,
}

/// Fields to change on a secret; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New kind.
    pub secret_type: Option<SecretKind>,
    /// New encrypted value.
    pub value: Option<SecretValue>,
    /// New file name; `Some(None)` clears it.
    pub filename: Option<Option<String>>,
    /// New image inclusion flag.
    pub include_in_image: Option<bool>,
    /// New processing.
    pub processing_type: Option<SecretProcessing>,
}

impl SecretUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &SecretUpdate::default()
    }
}

/// A stored secret. Serialising it never includes the ciphertext; the HTTP layer decides
/// separately whether a decrypted value may be shown.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SecretRecord {
    /// Secret id, referenced from `state.json`.
    pub id: Uuid,
    /// Name shown in the UI.
    pub display_name: String,
    /// Kind of secret.
    #[serde(rename = "type")]
    pub secret_type: SecretKind,
    /// The ciphertext (not serialised).
    #[serde(skip)]
    pub value_enc: Vec<u8>,
    /// Length of the plaintext in bytes.
    pub value_size: u64,
    /// Original file name (file secrets).
    pub filename: Option<String>,
    /// Whether the secret is embedded in device images.
    pub include_in_image: bool,
    /// Transformation at delivery.
    pub processing_type: SecretProcessing,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft delete); `None` while live.
    pub delete_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for SecretRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRecord")
            .field("id", &self.id)
            .field("display_name", &self.display_name)
            .field("secret_type", &self.secret_type)
            .field(
                "value_enc",
                &format_args!("<{} bytes>", self.value_enc.len()),
            )
            .field("value_size", &self.value_size)
            .field("filename", &self.filename)
            .field("include_in_image", &self.include_in_image)
            .field("processing_type", &self.processing_type)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("delete_at", &self.delete_at)
            .finish()
    }
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Position in the log; increases with every entry.
    pub id: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it (user name, `token:<name>`, `system`, …).
    pub actor: String,
    /// What was done, e.g. `secret.create`.
    pub action: String,
    /// What it was done to, e.g. a secret id.
    pub target: Option<String>,
    /// Further details; `null` when there are none.
    pub detail: serde_json::Value,
}
