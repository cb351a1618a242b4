//! The controller's ed25519 key pair on disk: loaded if present, created once otherwise.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// File name of the private key in the data directory.
pub const PRIVATE_KEY_FILE: &str = "id_thymis";
/// File name of the public key in the data directory.
pub const PUBLIC_KEY_FILE: &str = "id_thymis.pub";
/// Comment written into a newly generated key.
pub const CONTROLLER_KEY_COMMENT: &str = "thymis-controller";

const PRIVATE_KEY_MODE: u32 = 0o600;
const PUBLIC_KEY_MODE: u32 = 0o644;
const OPENSSH_PEM_HEADER: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";

/// Why the controller key could not be loaded or created. Messages name the file; they never
/// contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The private key file is not an OpenSSH private key.
    #[error("{} is not a valid OpenSSH private key: {reason}", path.display())]
    Garbled {
        /// The private key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key file is protected by a passphrase.
    #[error(
        "{} is protected by a passphrase, but the controller needs an unencrypted key \
         (remove the passphrase with `ssh-keygen -p -N '' -f {}`)",
        path.display(),
        path.display()
    )]
    Encrypted {
        /// The private key file.
        path: PathBuf,
    },
    /// The private key is not an ed25519 key.
    #[error(
        "{} holds a key of type {algorithm}, but the controller key must be ssh-ed25519",
        path.display()
    )]
    UnsupportedAlgorithm {
        /// The private key file.
        path: PathBuf,
        /// The key's algorithm name.
        algorithm: String,
    },
    /// The public key file is not an OpenSSH public key line.
    #[error("{} is not a valid OpenSSH public key: {reason}", path.display())]
    GarbledPublicKey {
        /// The public key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The public key file holds a different key than the private key file.
    #[error(
        "{} does not belong to the private key {} (delete it to have it rewritten from the \
         private key)",
        public.display(),
        private.display()
    )]
    PublicKeyMismatch {
        /// The public key file.
        public: PathBuf,
        /// The private key file.
        private: PathBuf,
    },
    /// Generating or serialising a key failed.
    #[error("cannot {action} the controller key: {reason}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        reason: String,
    },
}

impl KeyError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyError {
        let path = path.to_owned();
        move |source| KeyError::Io {
            action,
            path,
            source,
        }
    }

    fn crypto(action: &'static str) -> impl FnOnce(ssh_key::Error) -> KeyError {
        move |e| KeyError::Crypto {
            action,
            reason: e.to_string(),
        }
    }
}

/// The controller's ed25519 key pair: it authenticates the controller to devices over SSH and is
/// the age identity secrets are encrypted to at rest.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let key = thymis::ssh::ControllerKey::load_or_create(dir.path())?;
/// assert!(key.public_key_openssh().starts_with("ssh-ed25519 "));
/// let again = thymis::ssh::ControllerKey::load_or_create(dir.path())?;
/// assert_eq!(key.fingerprint(), again.fingerprint());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ControllerKey {
    private_path: PathBuf,
    public_path: PathBuf,
    key: PrivateKey,
    public_line: String,
}

impl fmt::Debug for ControllerKey {
    // Hand-written so that no key material can reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerKey")
            .field("path", &self.private_path)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl ControllerKey {
    /// Loads `dir/id_thymis` (OpenSSH format, unencrypted ed25519) and checks `dir/id_thymis.pub`
    /// against it, rewriting the public key file if it is missing or empty. If the private key
    /// does not exist, generates a new key from the OS random number generator and writes both
    /// files atomically (`dir` is created if needed).
    pub fn load_or_create(dir: &Path) -> Result<ControllerKey, KeyError> {
        let private_path = dir.join(PRIVATE_KEY_FILE);
        let public_path = dir.join(PUBLIC_KEY_FILE);
        match fs::read(&private_path) {
            Ok(pem) => Self::load(private_path, public_path, Zeroizing::new(pem)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Self::create(dir, private_path, public_path)
            }
            Err(e) => Err(KeyError::io("read", &private_path)(e)),
        }
    }

    /// The public key as an OpenSSH line, `ssh-ed25519 AAAA… comment` (no newline).
    pub fn public_key_openssh(&self) -> String {
        self.public_line.clone()
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The SHA-256 fingerprint as OpenSSH prints it, `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    /// The path of the private key file, `<dir>/id_thymis`.
    pub fn path(&self) -> &Path {
        &self.private_path
    }

    /// The path of the public key file, `<dir>/id_thymis.pub`.
    pub fn public_key_path(&self) -> &Path {
        &self.public_path
    }

    fn from_key(
        private_path: PathBuf,
        public_path: PathBuf,
        key: PrivateKey,
    ) -> Result<Self, KeyError> {
        let public_line = key
            .public_key()
            .to_openssh()
            .map_err(KeyError::crypto("encode"))?;
        Ok(ControllerKey {
            private_path,
            public_path,
            key,
            public_line,
        })
    }

    fn load(
        private_path: PathBuf,
        public_path: PathBuf,
        pem: Zeroizing<Vec<u8>>,
    ) -> Result<Self, KeyError> {
        let key = parse_private_key(&private_path, &pem)?;
        warn_if_readable_by_others(&private_path);
        let this = Self::from_key(private_path, public_path, key)?;
        this.check_or_write_public_key()?;
        Ok(this)
    }

    fn check_or_write_public_key(&self) -> Result<(), KeyError> {
        let text = match fs::read_to_string(&self.public_path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(KeyError::io("read", &self.public_path)(e)),
        };
        let text = text.trim();
        if text.is_empty() {
            tracing::warn!(
                path = %self.public_path.display(),
                "controller public key file missing or empty; rewriting it from the private key"
            );
            return self.write_public_key();
        }
        let on_disk = PublicKey::from_openssh(text).map_err(|e| KeyError::GarbledPublicKey {
            path: self.public_path.clone(),
            reason: e.to_string(),
        })?;
        // Compare the keys, not the lines: an edited comment is harmless.
        if on_disk.key_data() != self.key.public_key().key_data() {
            return Err(KeyError::PublicKeyMismatch {
                public: self.public_path.clone(),
                private: self.private_path.clone(),
            });
        }
        Ok(())
    }

    fn write_public_key(&self) -> Result<(), KeyError> {
        let dir = parent_dir(&self.public_path);
        let line = format!("{}\n", self.public_line);
        write_atomically(
            dir,
            &self.public_path,
            PUBLIC_KEY_MODE,
            line.as_bytes(),
            true,
        )?;
        Ok(())
    }

    fn create(dir: &Path, private_path: PathBuf, public_path: PathBuf) -> Result<Self, KeyError> {
        fs::create_dir_all(dir).map_err(KeyError::io("create directory", dir))?;
        let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(KeyError::crypto("generate"))?;
        key.set_comment(CONTROLLER_KEY_COMMENT);
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(KeyError::crypto("encode"))?;
        let created =
            write_atomically(dir, &private_path, PRIVATE_KEY_MODE, pem.as_bytes(), false)?;
        if !created {
            // Another process created the key between our read and our rename: use theirs, so
            // that both end up with the same key.
            let pem = fs::read(&private_path).map_err(KeyError::io("read", &private_path))?;
            return Self::load(private_path, public_path, Zeroizing::new(pem));
        }
        let this = Self::from_key(private_path, public_path, key)?;
        this.write_public_key()?;
        tracing::info!(
            path = %this.private_path.display(),
            fingerprint = %this.fingerprint(),
            "created controller SSH key"
        );
        Ok(this)
    }
}

fn parse_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKey, KeyError> {
    let garbled = |reason: String| KeyError::Garbled {
        path: path.to_owned(),
        reason,
    };
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Err(garbled("the file is empty".into()));
    }
    if !pem
        .windows(OPENSSH_PEM_HEADER.len())
        .any(|w| w == OPENSSH_PEM_HEADER.as_bytes())
    {
        return Err(garbled(format!(
            "no `{OPENSSH_PEM_HEADER}` line (only the OpenSSH key format is supported)"
        )));
    }
    let key = PrivateKey::from_openssh(pem).map_err(|e| match e {
        // Only ed25519 support is compiled in, so other algorithms fail to parse.
        ssh_key::Error::AlgorithmUnknown => KeyError::UnsupportedAlgorithm {
            path: path.to_owned(),
            algorithm: openssh_key_type(pem).unwrap_or_else(|| "unknown".to_owned()),
        },
        e => garbled(e.to_string()),
    })?;
    if key.is_encrypted() {
        return Err(KeyError::Encrypted {
            path: path.to_owned(),
        });
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(KeyError::UnsupportedAlgorithm {
            path: path.to_owned(),
            algorithm: key.algorithm().as_str().to_owned(),
        });
    }
    Ok(key)
}

/// The key type name (`ecdsa-sha2-nistp256`, `ssh-rsa`, …) of an OpenSSH private key, read from
/// its unencrypted public part, for error messages about keys ssh-key cannot parse.
fn openssh_key_type(pem: &[u8]) -> Option<String> {
    use base64::Engine as _;
    fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..len)?, rest.get(len..)?);
        *rest = tail;
        Some(head)
    }
    fn string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(take(rest, 4)?.try_into().ok()?);
        take(rest, usize::try_from(len).ok()?)
    }

    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .skip_while(|l| l.trim() != OPENSSH_PEM_HEADER)
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect();
    let blob = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?,
    );
    // "openssh-key-v1\0", strings ciphername, kdfname, kdfoptions, uint32 key count, then the
    // first public key as a string whose contents start with the key type string.
    let mut rest: &[u8] = blob.strip_prefix(b"openssh-key-v1\0".as_slice())?;
    for _ in 0..3 {
        string(&mut rest)?;
    }
    take(&mut rest, 4)?;
    let mut public = string(&mut rest)?;
    let key_type = std::str::from_utf8(string(&mut public)?).ok()?;
    let printable = !key_type.is_empty()
        && key_type.len() <= 64
        && key_type.bytes().all(|b| b.is_ascii_graphic());
    printable.then(|| key_type.to_owned())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `contents` to `target` through a temporary file in `dir` that gets `mode` before any
/// byte is written, then renames it into place and syncs the directory. With `overwrite` false an
/// existing `target` is kept and `Ok(false)` returned.
fn write_atomically(
    dir: &Path,
    target: &Path,
    mode: u32,
    contents: &[u8],
    overwrite: bool,
) -> Result<bool, KeyError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".thymis-key-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Created 0600 (umask can only remove bits), so the file is never readable by others.
        builder.permissions(fs::Permissions::from_mode(PRIVATE_KEY_MODE));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(KeyError::io("create a temporary file in", dir))?;
    set_mode(tmp.as_file(), mode).map_err(KeyError::io("set permissions of", tmp.path()))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(KeyError::io("write", tmp.path()))?;
    if overwrite {
        tmp.persist(target)
            .map_err(|e| KeyError::io("write", target)(e.error))?;
    } else {
        match tmp.persist_noclobber(target) {
            Ok(_) => {}
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(KeyError::io("write", target)(e.error)),
        }
    }
    // Make the rename durable; without it a crash could lose a key already in use.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(KeyError::io("sync directory", dir))?;
    Ok(true)
}

#[cfg(unix)]
fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // fchmod is not subject to the umask, so the mode is exact.
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:04o}"),
                "controller private key is accessible by other users; OpenSSH tools will refuse \
                 it (chmod 600 it)"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
