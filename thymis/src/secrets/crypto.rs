//! age encryption: to SSH keys (at rest and for devices) and to passphrases (for images).

use std::fmt;
use std::io::{Read, Write};
use std::iter;

use age::secrecy::SecretString;
use base64::Engine as _;
use ssh_key::LineEnding;

use super::SecretError;
use crate::ssh::ControllerKey;

/// scrypt work factor (log2 N) for machine-generated passphrases such as the image token
/// `thymis-<128 hex>`.
///
/// scrypt only slows down guessing, and guessing a 512-bit random token is hopeless at any work
/// factor: even at one guess per nanosecond the search takes ~10^137 years. A high work factor
/// would buy nothing but slow image builds and first boots on small devices (age's default
/// targets about one second per secret on the encrypting machine and several on a Raspberry Pi),
/// so 2^10 (about 1 MiB of memory and a millisecond) is used.
pub const TOKEN_PASSPHRASE_WORK_FACTOR: u8 = 10;

/// scrypt work factor for passphrases shorter than [`TOKEN_PASSPHRASE_MIN_LEN`], which may have
/// been chosen by a person: age's usual strength (about a second per stanza), fixed rather than
/// measured so that output does not depend on the machine's speed.
pub const USER_PASSPHRASE_WORK_FACTOR: u8 = 18;

/// Passphrases at least this long (in bytes) are taken as random tokens and get
/// [`TOKEN_PASSPHRASE_WORK_FACTOR`]; 32 hex digits are 128 bits.
pub const TOKEN_PASSPHRASE_MIN_LEN: usize = 32;

/// Highest scrypt work factor accepted when decrypting (2^22 needs 4 GiB), as in the reference
/// age implementation; it bounds the work an untrusted file can demand. Files made by upstream
/// Thymis (age's time-targeted default, typically 18–20) stay within it.
pub const MAX_PASSPHRASE_WORK_FACTOR: u8 = 22;

/// Encrypts `plaintext` to an SSH public key line (`ssh-ed25519 AAAA… [comment]`; `ssh-rsa` is
/// accepted too), giving a binary age file. Used for a device's host key.
pub fn encrypt_to_ssh_recipient(
    recipient_line: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, SecretError> {
    let recipient = parse_ssh_recipient(recipient_line)?;
    encrypt(&recipient, plaintext)
}

/// [`encrypt_to_ssh_recipient`], base64-encoded as the `send_secrets` message carries it.
pub fn encrypt_for_device(host_key_line: &str, plaintext: &[u8]) -> Result<String, SecretError> {
    let ciphertext = encrypt_to_ssh_recipient(host_key_line, plaintext)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
}

/// Decrypts an age file encrypted to the controller key.
pub fn decrypt_with_controller_key(
    key: &ControllerKey,
    ciphertext: &[u8],
) -> Result<Vec<u8>, SecretError> {
    SecretBox::new(key)?.decrypt(ciphertext)
}

/// Decrypts an age file with an unencrypted OpenSSH private key (PEM text), as a device does
/// with `/etc/ssh/ssh_host_ed25519_key`.
pub fn decrypt_with_ssh_identity(
    private_key_pem: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, SecretError> {
    let identity = parse_ssh_identity(private_key_pem)?;
    decrypt(&identity, ciphertext)
}

/// Encrypts `plaintext` with an age passphrase (scrypt), giving a binary age file. The work
/// factor is [`TOKEN_PASSPHRASE_WORK_FACTOR`] for token-length passphrases and
/// [`USER_PASSPHRASE_WORK_FACTOR`] for shorter ones.
pub fn encrypt_with_passphrase(passphrase: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
    if passphrase.is_empty() {
        return Err(SecretError::EmptyPassphrase);
    }
    let work_factor = if passphrase.len() >= TOKEN_PASSPHRASE_MIN_LEN {
        TOKEN_PASSPHRASE_WORK_FACTOR
    } else {
        USER_PASSPHRASE_WORK_FACTOR
    };
    let mut recipient = age::scrypt::Recipient::new(SecretString::from(passphrase.to_owned()));
    recipient.set_work_factor(work_factor);
    encrypt(&recipient, plaintext)
}

/// [`encrypt_with_passphrase`], base64-encoded as `thymis-secrets-initial.json` carries it.
pub fn encrypt_for_image(token: &str, plaintext: &[u8]) -> Result<String, SecretError> {
    let ciphertext = encrypt_with_passphrase(token, plaintext)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
}

/// Decrypts an age file encrypted with a passphrase. A work factor above
/// [`MAX_PASSPHRASE_WORK_FACTOR`] is refused.
pub fn decrypt_with_passphrase(
    passphrase: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, SecretError> {
    if passphrase.is_empty() {
        return Err(SecretError::EmptyPassphrase);
    }
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(decrypt_error)?;
    if !decryptor.is_scrypt() {
        return Err(SecretError::NotPassphraseEncrypted);
    }
    let mut identity = age::scrypt::Identity::new(SecretString::from(passphrase.to_owned()));
    identity.set_max_work_factor(MAX_PASSPHRASE_WORK_FACTOR);
    let reader = decryptor
        .decrypt(iter::once(&identity as &dyn age::Identity))
        .map_err(|e| match e {
            // A wrong passphrase fails the file key's AEAD.
            age::DecryptError::DecryptionFailed | age::DecryptError::NoMatchingKeys => {
                SecretError::WrongPassphrase
            }
            e => decrypt_error(e),
        })?;
    read_plaintext(reader)
}

/// The controller key as an age recipient and identity: secrets at rest are encrypted and
/// decrypted with one call each. Cheap to share (`Send + Sync`); build it once at start-up.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let key = thymis::ssh::ControllerKey::load_or_create(dir.path())?;
/// let secrets = thymis::secrets::SecretBox::new(&key)?;
/// let stored = secrets.encrypt(b"hunter2")?;
/// assert_eq!(secrets.decrypt(&stored)?, b"hunter2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SecretBox {
    recipient: age::ssh::Recipient,
    identity: age::ssh::Identity,
    fingerprint: String,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// Uses `key` (its public key to encrypt, its private key to decrypt).
    pub fn new(key: &ControllerKey) -> Result<Self, SecretError> {
        let pem = key.private_key().to_openssh(LineEnding::LF).map_err(|e| {
            SecretError::InvalidIdentity {
                reason: e.to_string(),
            }
        })?;
        let identity = parse_ssh_identity(pem.as_bytes())?;
        let recipient = parse_ssh_recipient(&key.public_key_openssh())?;
        Ok(SecretBox {
            recipient,
            identity,
            fingerprint: key.fingerprint(),
        })
    }

    /// Encrypts `plaintext` to the controller key (binary age file).
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        encrypt(&self.recipient, plaintext)
    }

    /// Decrypts an age file encrypted to the controller key.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Vec<u8>, SecretError> {
        decrypt(&self.identity, ciphertext)
    }

    /// The controller key's SHA-256 fingerprint, `SHA256:…`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn parse_ssh_recipient(line: &str) -> Result<age::ssh::Recipient, SecretError> {
    use age::ssh::ParseRecipientKeyError as E;
    let line = line.trim();
    line.parse::<age::ssh::Recipient>().map_err(|e| {
        let reason = match e {
            E::Invalid(why) => format!("not an SSH public key line ({why})"),
            E::Unsupported(key_type) => format!("unsupported SSH key type {key_type}"),
            E::RsaModulusTooLarge => "RSA key too large".to_owned(),
            E::RsaModulusTooSmall => "RSA key too small (under 2048 bits)".to_owned(),
            E::Ignore => "unsupported SSH key".to_owned(),
        };
        SecretError::InvalidRecipient { reason }
    })
}

fn parse_ssh_identity(pem: &[u8]) -> Result<age::ssh::Identity, SecretError> {
    let invalid = |reason: String| SecretError::InvalidIdentity { reason };
    // The error text of `from_buffer` is generic and contains no key bytes.
    let identity = age::ssh::Identity::from_buffer(pem, None)
        .map_err(|_| invalid("not an OpenSSH private key (ed25519 or RSA, unencrypted)".into()))?;
    match identity {
        age::ssh::Identity::Unencrypted(_) => Ok(identity),
        age::ssh::Identity::Encrypted(_) => Err(invalid(
            "the private key is protected by a passphrase".into(),
        )),
        age::ssh::Identity::Unsupported(_) => {
            Err(invalid("unsupported SSH private key type".into()))
        }
    }
}

fn encrypt(recipient: &dyn age::Recipient, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
    let encrypt_error = |e: &dyn fmt::Display| SecretError::Encrypt {
        reason: e.to_string(),
    };
    let encryptor =
        age::Encryptor::with_recipients(iter::once(recipient)).map_err(|e| encrypt_error(&e))?;
    // Header (~200 bytes) plus 16 bytes of tag per 64 KiB chunk.
    let mut out = Vec::with_capacity(plaintext.len() + 256 + plaintext.len() / 4096);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| encrypt_error(&e))?;
    writer
        .write_all(plaintext)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| encrypt_error(&e))?;
    Ok(out)
}

fn decrypt(identity: &dyn age::Identity, ciphertext: &[u8]) -> Result<Vec<u8>, SecretError> {
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(decrypt_error)?;
    let reader = decryptor
        .decrypt(iter::once(identity))
        .map_err(decrypt_error)?;
    read_plaintext(reader)
}

fn read_plaintext(mut reader: impl Read) -> Result<Vec<u8>, SecretError> {
    let mut plaintext = Vec::new();
    reader
        .read_to_end(&mut plaintext)
        .map_err(|e| SecretError::Decrypt {
            reason: e.to_string(),
        })?;
    Ok(plaintext)
}

fn decrypt_error(e: age::DecryptError) -> SecretError {
    match e {
        age::DecryptError::NoMatchingKeys => SecretError::NoMatchingKey,
        e => SecretError::Decrypt {
            reason: e.to_string(),
        },
    }
}
