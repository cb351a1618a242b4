//! Secrets: age encryption at rest to the controller key, delivery encrypted to a device's SSH
//! host key or to an image's token passphrase, and validation of values by kind.
//!
//! - At rest: [`SecretBox`] encrypts to and decrypts with the controller key (`id_thymis`).
//! - To a device: [`encrypt_to_ssh_recipient`] / [`encrypt_for_device`] with the device's
//!   `ssh-ed25519 …` host key; the device decrypts with its host private key
//!   ([`decrypt_with_ssh_identity`]).
//! - In an image: [`encrypt_with_passphrase`] / [`encrypt_for_image`] with the image's agent
//!   token as the passphrase.
//! - Values: [`validate_secret_value`] checks a value against its [`SecretKind`] and size limits.
//!   [`SecretKind`] and [`SecretProcessing`] (from [`crate::module`]) get `FromStr` and serde here.
//!
//! Ciphertexts are binary age files, readable by the `age` command line tool. No error of this
//! module contains a secret value, a passphrase or key material.

mod crypto;
mod kind;
mod process;
mod validate;
mod vault;

pub use crate::module::{SecretKind, SecretProcessing};
pub use crypto::{
    decrypt_with_controller_key, decrypt_with_passphrase, decrypt_with_ssh_identity,
    encrypt_for_device, encrypt_for_image, encrypt_to_ssh_recipient, encrypt_with_passphrase,
    SecretBox, MAX_PASSPHRASE_WORK_FACTOR, TOKEN_PASSPHRASE_MIN_LEN, TOKEN_PASSPHRASE_WORK_FACTOR,
    USER_PASSPHRASE_WORK_FACTOR,
};
pub use process::process_value;
pub use validate::{
    is_valid_env_name, max_secret_size, validate_secret_value, MAX_FILE_SECRET_BYTES,
    MAX_TEXT_SECRET_BYTES,
};
pub use vault::{SecretChanges, SecretInput, Vault, VaultError, MAX_DISPLAY_NAME_CHARS};

/// Why a secret could not be encrypted, decrypted, parsed or accepted. Messages never contain
/// the secret value, a passphrase or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The recipient is not a supported SSH public key line.
    #[error("invalid age recipient: {reason}")]
    InvalidRecipient {
        /// What is wrong with it.
        reason: String,
    },
    /// The private key cannot be used as an age identity.
    #[error("invalid SSH identity: {reason}")]
    InvalidIdentity {
        /// What is wrong with it.
        reason: String,
    },
    /// A passphrase was empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Encryption failed.
    #[error("encryption failed: {reason}")]
    Encrypt {
        /// The underlying error.
        reason: String,
    },
    /// The ciphertext was not encrypted to this key.
    #[error("the secret is not encrypted to this key")]
    NoMatchingKey,
    /// The passphrase does not decrypt the ciphertext.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The ciphertext is encrypted to keys, not to a passphrase.
    #[error("the secret is not encrypted with a passphrase")]
    NotPassphraseEncrypted,
    /// The ciphertext is damaged, truncated or not an age file, or decryption failed otherwise.
    #[error("decryption failed: {reason}")]
    Decrypt {
        /// The underlying error.
        reason: String,
    },
    /// A secret value exceeds the size limit of its kind.
    #[error("the {kind} secret is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The kind's wire name.
        kind: &'static str,
        /// The value's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A text secret is not UTF-8.
    #[error("the {kind} secret is not valid UTF-8 text")]
    NotText {
        /// The kind's wire name.
        kind: &'static str,
    },
    /// A `single_line` secret contains a line break.
    #[error("a single_line secret must not contain a line break")]
    LineBreak,
    /// A line of an `env_list` secret is not `NAME=value`.
    #[error("env_list line {line}: {problem}")]
    EnvList {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line (never its content).
        problem: &'static str,
    },
    /// An unknown secret type name.
    #[error("unknown secret type `{0}` (expected single_line, multi_line, env_list or file)")]
    UnknownKind(String),
    /// An unknown processing name.
    #[error("unknown secret processing `{0}` (expected none or mkpasswd-yescrypt)")]
    UnknownProcessing(String),
    /// Processing the value (e.g. hashing a password) failed.
    #[error("processing the secret failed: {reason}")]
    Processing {
        /// What went wrong (never the value).
        reason: String,
    },
}
