//! Atomic file writes and paths under the device root.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who should own a written file (numeric ids; `None` keeps the writer's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ownership {
    /// User id.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory gets the
/// contents, `mode` and ownership first and is then renamed over `path`, so a reader sees the
/// old file or the complete new one with its final permissions, never anything in between.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, owner: Ownership) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_new(&tmp, contents, mode, owner).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32, owner: Ownership) -> io::Result<()> {
    // Created private, so the contents are never readable under a laxer mode.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(contents)?;
    if owner.uid.is_some() || owner.gid.is_some() {
        std::os::unix::fs::fchown(&file, owner.uid, owner.gid)?;
    }
    // After chown, which may clear set-id bits.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()
}

/// Creates `dir` and its parents; directories created here get `mode`.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
}

/// Reads a small text file, `Ok(None)` if it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a file for appending, creating it with `mode`.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
}

/// Why a device path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePathError {
    /// Not starting with `/`.
    NotAbsolute,
    /// Contains `..`.
    ParentComponent,
    /// Names the root itself or nothing.
    NoFileName,
}

impl std::fmt::Display for DevicePathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DevicePathError::NotAbsolute => "the path is not absolute",
            DevicePathError::ParentComponent => "the path contains '..'",
            DevicePathError::NoFileName => "the path names no file",
        })
    }
}

impl std::error::Error for DevicePathError {}

/// Maps an absolute device path (e.g. `/run/thymis/x`) to the same path under `root`, refusing
/// relative paths and `..` so that nothing lands outside the root.
pub fn under_root(root: &Path, device_path: &str) -> Result<PathBuf, DevicePathError> {
    let path = Path::new(device_path);
    if !path.is_absolute() {
        return Err(DevicePathError::NotAbsolute);
    }
    let mut out = root.to_path_buf();
    let mut named = false;
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(DevicePathError::ParentComponent),
            Component::Normal(part) => {
                out.push(part);
                named = true;
            }
            Component::Prefix(_) => return Err(DevicePathError::NotAbsolute),
        }
    }
    if !named {
        return Err(DevicePathError::NoFileName);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_root_maps_and_refuses() {
        let root = Path::new("/tmp/r");
        assert_eq!(
            under_root(root, "/run/thymis/x").unwrap(),
            Path::new("/tmp/r/run/thymis/x")
        );
        assert_eq!(
            under_root(root, "//etc/./a").unwrap(),
            Path::new("/tmp/r/etc/a")
        );
        assert_eq!(under_root(root, "run/x"), Err(DevicePathError::NotAbsolute));
        assert_eq!(
            under_root(root, "/run/../etc/shadow"),
            Err(DevicePathError::ParentComponent)
        );
        assert_eq!(under_root(root, "/"), Err(DevicePathError::NoFileName));
        assert_eq!(under_root(root, ""), Err(DevicePathError::NotAbsolute));
    }

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o640, Ownership::default()).unwrap();
        write_atomic(&path, b"two", 0o600, Ownership::default()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_atomic_write_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old", 0o600, Ownership::default()).unwrap();
        // Renaming over a non-empty directory fails after the temporary file was written.
        let blocker = dir.path().join("d");
        fs::create_dir(&blocker).unwrap();
        fs::write(blocker.join("x"), b"").unwrap();
        assert!(write_atomic(&blocker, b"new", 0o600, Ownership::default()).is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
