//! The device identity: its SSH host key (spec §2.2), the admission proof, and re-keying.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::device::Device;
use crate::files::{self, Ownership};

/// The ed25519 host key, relative to the root.
pub const HOST_KEY: &str = "etc/ssh/ssh_host_ed25519_key";
/// The RSA host key, relative to the root (only renamed on re-key).
pub const RSA_HOST_KEY: &str = "etc/ssh/ssh_host_rsa_key";

/// Why the host key could not be used.
#[derive(Debug)]
pub enum IdentityError {
    /// The key file could not be read.
    Unreadable(PathBuf, io::Error),
    /// The file is not an unencrypted OpenSSH ed25519 private key.
    Invalid(PathBuf, String),
    /// Signing failed.
    Sign(String),
    /// The challenge nonce is not base64.
    BadNonce,
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityError::Unreadable(path, e) => {
                write!(f, "cannot read the SSH host key {}: {e}", path.display())
            }
            IdentityError::Invalid(path, why) => {
                write!(f, "the SSH host key {} is unusable: {why}", path.display())
            }
            IdentityError::Sign(why) => write!(f, "cannot sign the challenge: {why}"),
            IdentityError::BadNonce => {
                f.write_str("the controller's challenge nonce is not base64")
            }
        }
    }
}

impl std::error::Error for IdentityError {}

/// The loaded host key.
pub struct HostKey {
    key: PrivateKey,
    pem: Vec<u8>,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("public_key", &self.public_key_line())
            .finish_non_exhaustive()
    }
}

impl HostKey {
    /// Loads `<root>/etc/ssh/ssh_host_ed25519_key`.
    pub fn load(device: &Device) -> Result<Self, IdentityError> {
        let path = device.path(HOST_KEY);
        let pem = std::fs::read(&path).map_err(|e| IdentityError::Unreadable(path.clone(), e))?;
        Self::from_pem(pem).map_err(|why| IdentityError::Invalid(path, why))
    }

    /// Parses an OpenSSH private key (PEM text).
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, String> {
        let key = PrivateKey::from_openssh(&pem).map_err(|e| e.to_string())?;
        if key.is_encrypted() {
            return Err("it is protected by a passphrase".into());
        }
        if key.algorithm() != ssh_key::Algorithm::Ed25519 {
            return Err(format!("it is a {} key, not ed25519", key.algorithm()));
        }
        Ok(HostKey { key, pem })
    }

    /// `ssh-ed25519 <base64>`, without a comment: the device identity on the wire.
    pub fn public_key_line(&self) -> String {
        public_line(self.key.public_key())
    }

    /// The private key as OpenSSH PEM text (for age decryption).
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// The admission proof: the `sshsig` (PEM) of the base64-decoded challenge nonce.
    pub fn sign_challenge(&self, nonce_base64: &str) -> Result<String, IdentityError> {
        let nonce = base64::engine::general_purpose::STANDARD
            .decode(nonce_base64.trim())
            .map_err(|_| IdentityError::BadNonce)?;
        let signature = self
            .key
            .sign(thymis_protocol::PROOF_NAMESPACE, HashAlg::Sha512, &nonce)
            .map_err(|e| IdentityError::Sign(e.to_string()))?;
        signature
            .to_pem(LineEnding::LF)
            .map_err(|e| IdentityError::Sign(e.to_string()))
    }
}

/// `type base64` of a public key, comment dropped.
fn public_line(key: &PublicKey) -> String {
    PublicKey::new(key.key_data().clone(), "")
        .to_openssh()
        .unwrap_or_default()
}

/// Re-keys the device (`update_public_key`): renames the RSA and ed25519 host keys (and their
/// `.pub` files) to `<path>.old.N` with the first N free for all of them, then gets new keys:
/// on the real host by restarting sshd (which generates missing keys) and waiting up to
/// `wait` for the new ed25519 key; under another root by generating an ed25519 pair itself.
pub fn rekey(device: &Device, wait: Duration) -> io::Result<()> {
    let paths: Vec<PathBuf> = [RSA_HOST_KEY, HOST_KEY]
        .iter()
        .flat_map(|p| [device.path(p), device.path(&format!("{p}.pub"))])
        .collect();
    let old = |path: &Path, n: u32| PathBuf::from(format!("{}.old.{n}", path.display()));
    let n = (0u32..)
        .find(|&n| !paths.iter().any(|p| old(p, n).exists()))
        .unwrap_or(u32::MAX);
    for path in &paths {
        match std::fs::rename(path, old(path, n)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    if device.is_host() {
        let status = std::process::Command::new("systemctl")
            .args(["restart", "sshd"])
            .status()?;
        if !status.success() {
            log::warn!("systemctl restart sshd failed: {status}");
        }
        let key = device.path(HOST_KEY);
        let deadline = Instant::now() + wait;
        while !key.exists() {
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("sshd did not create a new {}", key.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    } else {
        generate_host_key(device)
    }
}

/// Writes a fresh ed25519 host key pair in OpenSSH format (private 0600, public 0644), as
/// `ssh-keygen -A` would.
pub fn generate_host_key(device: &Device) -> io::Result<()> {
    let other = |e: ssh_key::Error| io::Error::other(e.to_string());
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .map_err(other)?;
    let hostname = files::read_optional(&device.path("etc/hostname"))?
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    key.set_comment(format!("root@{hostname}"));
    let private = key.to_openssh(LineEnding::LF).map_err(other)?;
    let public = key.public_key().to_openssh().map_err(other)?;
    let path = device.path(HOST_KEY);
    if let Some(dir) = path.parent() {
        files::create_dir_all_mode(dir, 0o755)?;
    }
    files::write_atomic(&path, private.as_bytes(), 0o600, Ownership::default())?;
    let pub_path = device.path(&format!("{HOST_KEY}.pub"));
    files::write_atomic(
        &pub_path,
        format!("{public}\n").as_bytes(),
        0o644,
        Ownership::default(),
    )
}
