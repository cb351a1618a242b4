//! Helpers shared by the integration tests: a device root with real files and real keys, and
//! ciphertexts made the way the controller makes them (age to the SSH host key; age scrypt
//! with the token as passphrase, work factor 10, base64).

#![allow(dead_code)]

use std::io::Write;
use std::iter;
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use base64::Engine as _;
use thymis_agent::device::Device;
use thymis_agent::identity;

/// A token in the format the controller generates.
pub const TOKEN: &str = "thymis-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A fresh device root with a data dir (`boot`), a token and an ed25519 host key.
pub struct TestDevice {
    pub dir: tempfile::TempDir,
    pub device: Device,
}

impl TestDevice {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::new(dir.path());
        std::fs::create_dir_all(device.path("boot")).unwrap();
        std::fs::write(device.path("boot/thymis-token.txt"), format!("{TOKEN}\n")).unwrap();
        identity::generate_host_key(&device).unwrap();
        TestDevice { dir, device }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.device.path(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// The host public key line.
    pub fn host_public_key(&self) -> String {
        std::fs::read_to_string(self.path(identity::HOST_KEY).with_extension("pub")).unwrap()
    }
}

fn encrypt(recipient: &dyn age::Recipient, plaintext: &[u8]) -> String {
    let encryptor = age::Encryptor::with_recipients(iter::once(recipient)).unwrap();
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    writer.write_all(plaintext).unwrap();
    writer.finish().unwrap();
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// base64 of an age file encrypted to an SSH public key line, as in `send_secrets`.
pub fn encrypt_for_device(host_key_line: &str, plaintext: &[u8]) -> String {
    let recipient: age::ssh::Recipient = host_key_line.trim().parse().unwrap();
    encrypt(&recipient, plaintext)
}

/// base64 of an age file encrypted with a passphrase, as in `thymis-secrets-initial.json`.
pub fn encrypt_for_image(token: &str, plaintext: &[u8]) -> String {
    let mut recipient = age::scrypt::Recipient::new(SecretString::from(token.to_owned()));
    recipient.set_work_factor(10);
    encrypt(&recipient, plaintext)
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

pub fn is_root() -> bool {
    // SAFETY: no arguments, no side effects.
    unsafe { libc::geteuid() == 0 }
}

pub fn my_ids() -> (u32, u32) {
    // SAFETY: no arguments, no side effects.
    unsafe { (libc::getuid(), libc::getgid()) }
}
