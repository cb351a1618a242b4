//! Secrets (spec §2.3 step 6, §6 `send_secrets`): age decryption with the SSH host key or the
//! token passphrase, and placing each secret under the root with its mode and owner.

use std::io::{self, Read, Write};
use std::iter;
use std::path::PathBuf;

use age::secrecy::SecretString;
use base64::Engine as _;
use thymis_protocol::{ControllerMessage, SecretInfo, SecretsMessage};

use crate::accounts::Accounts;
use crate::device::{Device, INITIAL_SECRETS_FILE, SECRETS_MESSAGE_FILE};
use crate::files::{self, DevicePathError, Ownership};

/// The device path whose secret is also applied as root's password hash.
pub const ROOT_PASSWORD_HASH_PATH: &str = "/run/thymis/root_password_hash";

/// Highest scrypt work factor accepted (2^22 needs 4 GiB), as in the reference age tools and
/// the controller; bounds the work an image file can demand.
const MAX_PASSPHRASE_WORK_FACTOR: u8 = 22;

/// Why one secret was not placed.
#[derive(Debug)]
pub enum SecretError {
    /// Its path is refused.
    BadPath(DevicePathError),
    /// Its mode is not an octal string.
    BadMode(String),
    /// Its owner does not exist on the device.
    UnknownUser(String),
    /// Its group does not exist on the device.
    UnknownGroup(String),
    /// The message has no ciphertext for it.
    Missing,
    /// The ciphertext is not base64.
    NotBase64,
    /// age could not decrypt it.
    Decrypt(String),
    /// Writing failed.
    Io(io::Error),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::BadPath(e) => write!(f, "refused path: {e}"),
            SecretError::BadMode(mode) => write!(f, "mode {mode:?} is not an octal mode"),
            SecretError::UnknownUser(user) => write!(f, "no user {user:?} on the device"),
            SecretError::UnknownGroup(group) => write!(f, "no group {group:?} on the device"),
            SecretError::Missing => f.write_str("the message carries no ciphertext for it"),
            SecretError::NotBase64 => f.write_str("the ciphertext is not base64"),
            SecretError::Decrypt(why) => write!(f, "cannot decrypt: {why}"),
            SecretError::Io(e) => write!(f, "cannot write: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

/// What decrypts a message's secrets.
pub enum Decryptor {
    /// The SSH host key (messages from the controller).
    HostKey(Box<age::ssh::Identity>),
    /// The token as age passphrase (secrets baked into the image).
    Passphrase(String),
}

impl Decryptor {
    /// The host key given as OpenSSH PEM text.
    pub fn host_key(pem: &[u8]) -> Result<Self, String> {
        // age's parse error text is generic and holds no key material.
        let identity = age::ssh::Identity::from_buffer(pem, None)
            .map_err(|_| "the host key is not an OpenSSH private key".to_owned())?;
        match identity {
            age::ssh::Identity::Unencrypted(_) => Ok(Decryptor::HostKey(Box::new(identity))),
            age::ssh::Identity::Encrypted(_) => {
                Err("the host key is protected by a passphrase".into())
            }
            age::ssh::Identity::Unsupported(_) => Err("the host key type is unsupported".into()),
        }
    }

    /// Decrypts the base64 of an age file.
    pub fn decrypt(&self, ciphertext_base64: &str) -> Result<Vec<u8>, SecretError> {
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(ciphertext_base64.trim())
            .map_err(|_| SecretError::NotBase64)?;
        let decryptor = age::Decryptor::new_buffered(&ciphertext[..]).map_err(decrypt_error)?;
        let reader = match self {
            Decryptor::HostKey(identity) => decryptor
                .decrypt(iter::once(identity.as_ref() as &dyn age::Identity))
                .map_err(decrypt_error)?,
            Decryptor::Passphrase(passphrase) => {
                let mut identity =
                    age::scrypt::Identity::new(SecretString::from(passphrase.clone()));
                identity.set_max_work_factor(MAX_PASSPHRASE_WORK_FACTOR);
                decryptor
                    .decrypt(iter::once(&identity as &dyn age::Identity))
                    .map_err(decrypt_error)?
            }
        };
        let mut plaintext = Vec::new();
        { reader }
            .read_to_end(&mut plaintext)
            .map_err(|e| SecretError::Decrypt(e.to_string()))?;
        Ok(plaintext)
    }
}

fn decrypt_error(e: age::DecryptError) -> SecretError {
    SecretError::Decrypt(match e {
        age::DecryptError::NoMatchingKeys => "encrypted to another key or passphrase".into(),
        age::DecryptError::DecryptionFailed => "wrong key or passphrase".into(),
        e => e.to_string(),
    })
}

/// The outcome of placing a message's secrets.
#[derive(Debug, Default)]
pub struct PlaceReport {
    /// Files written, on the device (without the root).
    pub placed: Vec<String>,
    /// Secrets that failed: secret id, device path, why.
    pub failed: Vec<(String, String, SecretError)>,
}

impl PlaceReport {
    /// Logs the outcome (paths and ids only, never contents).
    pub fn log(&self, source: &str) {
        for path in &self.placed {
            log::info!("placed secret {path} ({source})");
        }
        for (id, path, error) in &self.failed {
            log::error!("secret {id} for {path} ({source}) was not placed: {error}");
        }
    }
}

/// Decrypts and places every secret of `message`; a failing secret does not stop the others.
pub fn place_all(device: &Device, message: &SecretsMessage, decryptor: &Decryptor) -> PlaceReport {
    let mut report = PlaceReport::default();
    let accounts = match Accounts::of(device) {
        Ok(accounts) => accounts,
        Err(e) => {
            log::warn!("cannot read the device's passwd/group files: {e}");
            Accounts::Files {
                passwd: String::new(),
                group: String::new(),
            }
        }
    };
    for info in &message.secret_infos {
        let result = message
            .secrets
            .get(&info.secret_id)
            .ok_or(SecretError::Missing)
            .and_then(|ciphertext| decryptor.decrypt(ciphertext))
            .and_then(|plaintext| place(device, &accounts, info, &plaintext));
        match result {
            Ok(()) => report.placed.push(info.path.clone()),
            Err(e) => report
                .failed
                .push((info.secret_id.clone(), info.path.clone(), e)),
        }
    }
    report
}

/// Parses a mode given as an octal string (`0600`, `600`, `0o600`).
pub fn parse_mode(mode: &str) -> Result<u32, SecretError> {
    let digits = mode.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|&m| m <= 0o7777 && !digits.is_empty())
        .ok_or_else(|| SecretError::BadMode(mode.to_owned()))
}

/// Places one decrypted secret: path checked and mapped under the root, parents created,
/// written atomically with its mode (default 0600) and owner. On the real host the root
/// password hash secret is also applied with `chpasswd -e`.
pub fn place(
    device: &Device,
    accounts: &Accounts,
    info: &SecretInfo,
    plaintext: &[u8],
) -> Result<(), SecretError> {
    let target = files::under_root(device.root(), &info.path).map_err(SecretError::BadPath)?;
    let mode = match info.mode.as_deref() {
        Some(mode) => parse_mode(mode)?,
        None => 0o600,
    };
    let owner = Ownership {
        uid: match info.owner.as_deref().filter(|o| !o.is_empty()) {
            Some(user) => Some(
                accounts
                    .uid(user)
                    .ok_or_else(|| SecretError::UnknownUser(user.into()))?,
            ),
            None => None,
        },
        gid: match info.group.as_deref().filter(|g| !g.is_empty()) {
            Some(group) => Some(
                accounts
                    .gid(group)
                    .ok_or_else(|| SecretError::UnknownGroup(group.into()))?,
            ),
            None => None,
        },
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(SecretError::Io)?;
    }
    files::write_atomic(&target, plaintext, mode, owner).map_err(SecretError::Io)?;
    if device.is_host() && info.path == ROOT_PASSWORD_HASH_PATH {
        set_root_password_hash(plaintext).map_err(SecretError::Io)?;
    }
    Ok(())
}

fn set_root_password_hash(hash: &[u8]) -> io::Result<()> {
    let hash = String::from_utf8_lossy(hash);
    let mut child = std::process::Command::new("chpasswd")
        .arg("-e")
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("root:{}\n", hash.trim()).as_bytes())?;
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("chpasswd -e failed: {status}")));
    }
    Ok(())
}

/// Saves a `send_secrets` message as `thymis-secrets-message.json` (0600) in the data dir,
/// so it is placed again on every boot. Returns the file, or `None` without a data dir.
pub fn persist_message(device: &Device, message: &SecretsMessage) -> io::Result<Option<PathBuf>> {
    let Some(dir) = device.data_dir() else {
        return Ok(None);
    };
    let path = dir.join(SECRETS_MESSAGE_FILE);
    // Stored as the whole message, `kind` included, as upstream agents store it.
    let json = serde_json::to_vec(&ControllerMessage::SendSecrets(message.clone()))
        .map_err(io::Error::other)?;
    files::write_atomic(&path, &json, 0o600, Ownership::default())?;
    Ok(Some(path))
}

/// Why secrets could not be placed at start.
#[derive(Debug)]
pub enum StartError {
    /// A secrets file could not be read or parsed.
    File(PathBuf, String),
    /// The needed key is missing or unusable.
    Key(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::File(path, why) => write!(f, "{}: {why}", path.display()),
            StartError::Key(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

/// Places secrets at start (spec §2.3 step 6): the saved `send_secrets` message (host key)
/// if there is one, else the image's initial secrets (token passphrase). `Ok(None)` when
/// there is neither.
pub fn place_on_start(
    device: &Device,
    token: Option<&str>,
) -> Result<Option<(&'static str, PlaceReport)>, StartError> {
    let (path, source) = if let Some(path) = device.find_boot_file(SECRETS_MESSAGE_FILE) {
        (path, SECRETS_MESSAGE_FILE)
    } else if let Some(path) = device.find_boot_file(INITIAL_SECRETS_FILE) {
        (path, INITIAL_SECRETS_FILE)
    } else {
        return Ok(None);
    };
    let text = std::fs::read(&path).map_err(|e| StartError::File(path.clone(), e.to_string()))?;
    let message: SecretsMessage = serde_json::from_slice(&text)
        .map_err(|e| StartError::File(path.clone(), format!("not a secrets file: {e}")))?;
    let decryptor = if source == SECRETS_MESSAGE_FILE {
        let key =
            crate::identity::HostKey::load(device).map_err(|e| StartError::Key(e.to_string()))?;
        Decryptor::host_key(key.pem()).map_err(StartError::Key)?
    } else {
        let token = token.ok_or_else(|| {
            StartError::Key(format!(
                "{} needs the agent token, but there is no {}",
                path.display(),
                crate::device::TOKEN_FILE
            ))
        })?;
        Decryptor::Passphrase(token.to_owned())
    };
    Ok(Some((source, place_all(device, &message, &decryptor))))
}
