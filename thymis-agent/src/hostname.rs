//! `update_hostname`: validation, `<root>/etc/hostname`, and the kernel hostname on the host.

use std::io;

use crate::device::Device;
use crate::files::{self, Ownership};

/// Why a hostname was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostnameError {
    /// Empty.
    Empty,
    /// Longer than 63 characters.
    TooLong(usize),
    /// A character other than ASCII letters, digits and `-`.
    BadCharacter(char),
    /// Starts or ends with `-`.
    EdgeHyphen,
}

impl std::fmt::Display for HostnameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostnameError::Empty => f.write_str("the hostname is empty"),
            HostnameError::TooLong(n) => write!(f, "the hostname has {n} characters (at most 63)"),
            HostnameError::BadCharacter(c) => write!(f, "the hostname contains {c:?}"),
            HostnameError::EdgeHyphen => f.write_str("the hostname starts or ends with '-'"),
        }
    }
}

impl std::error::Error for HostnameError {}

/// Checks that `name` is one RFC 1123 label: 1–63 ASCII letters, digits or hyphens, not
/// starting or ending with a hyphen.
pub fn validate(name: &str) -> Result<(), HostnameError> {
    if name.is_empty() {
        return Err(HostnameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(HostnameError::BadCharacter(c));
    }
    if name.len() > 63 {
        return Err(HostnameError::TooLong(name.len()));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(HostnameError::EdgeHyphen);
    }
    Ok(())
}

/// Validates and applies a hostname: `<root>/etc/hostname` (0644, atomically; untouched if
/// already right) and, on the real host, the kernel hostname. Returns whether the file changed.
pub fn apply(device: &Device, name: &str) -> io::Result<bool> {
    validate(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let path = device.path("etc/hostname");
    let wanted = format!("{name}\n");
    let changed = files::read_optional(&path)?.as_deref() != Some(wanted.as_str());
    if changed {
        if let Some(dir) = path.parent() {
            files::create_dir_all_mode(dir, 0o755)?;
        }
        files::write_atomic(&path, wanted.as_bytes(), 0o644, Ownership::default())?;
    }
    if device.is_host() {
        // SAFETY: a valid pointer and length of the validated ASCII name.
        let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(changed)
}
