//! Bringing the files on disk in line with a rendered project, safely: only changed files are
//! written, each through a temporary file and a rename; all temporary files are written before
//! the first rename, so a failure while writing leaves the previous project untouched.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::render::ProjectFiles;

/// Folders whose content is entirely generated; files there that the render did not produce
/// are deleted. Everything else (`artifacts/`, `flake.lock`, `.git`) is left alone.
const GENERATED_FOLDERS: [&str; 2] = ["hosts", "tags"];

/// The file that is fsynced before it replaces the old one: it is the source of truth.
const STATE_FILE: &str = "state.json";

/// Temporary files are named `.thymis-<random>.tmp`; git is told to ignore them and a scan
/// removes those a crash left behind.
pub const TEMP_PREFIX: &str = ".thymis-";
/// See [`TEMP_PREFIX`].
pub const TEMP_SUFFIX: &str = ".tmp";

fn is_temp_file(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// What a sync changed, as repository-relative paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files created or rewritten.
    pub written: Vec<String>,
    /// The files among `written` that did not exist before.
    pub created: Vec<String>,
    /// Files deleted.
    pub deleted: Vec<String>,
}

/// Remembers the content of every generated file as last written, so later syncs compare in
/// memory instead of reading the project back. The texts are shared with the renderer's cache,
/// so a file of an unchanged config is recognised by pointer without comparing its bytes.
#[derive(Debug, Default)]
pub struct DiskMirror {
    known: Option<HashMap<Arc<str>, Arc<str>>>,
}

impl DiskMirror {
    /// Forgets what is on disk (after something else changed the working tree).
    pub fn invalidate(&mut self) {
        self.known = None;
    }

    /// The generated files currently on disk.
    fn current(&mut self, root: &Path) -> io::Result<&mut HashMap<Arc<str>, Arc<str>>> {
        if self.known.is_none() {
            self.known = Some(scan(root)?);
        }
        Ok(self.known.get_or_insert_with(HashMap::new))
    }

    /// Writes what changed and deletes generated files that are no longer produced.
    pub fn sync(&mut self, root: &Path, files: &ProjectFiles) -> io::Result<SyncReport> {
        let current = self.current(root)?;
        let mut changed: Vec<(&Arc<str>, &Arc<str>)> = Vec::new();
        // Equal texts held twice (e.g. read from disk): keep the renderer's copy afterwards,
        // so the next comparison is a pointer check.
        let mut relink: Vec<(&Arc<str>, &Arc<str>)> = Vec::new();
        let mut created = Vec::new();
        for (path, text) in files.iter() {
            match current.get(&**path) {
                Some(old) if Arc::ptr_eq(old, text) => {}
                Some(old) if old == text => relink.push((path, text)),
                Some(_) => changed.push((path, text)),
                None => {
                    created.push(path.to_string());
                    changed.push((path, text));
                }
            }
        }
        // Every file on disk is rendered again unless the disk holds more than the render
        // minus the new files; only then look for stale ones.
        let stale: Vec<Arc<str>> = if current.len() + created.len() == files.len() {
            Vec::new()
        } else {
            let rendered: HashSet<&str> = files.iter().map(|(path, _)| &**path).collect();
            current
                .keys()
                .filter(|path| !rendered.contains(&***path) && is_generated(path))
                .cloned()
                .collect()
        };

        let staged = match stage_all(root, &changed) {
            Ok(staged) => staged,
            Err(err) => {
                // The mirror may no longer match what a half-failed stage left behind.
                self.invalidate();
                return Err(err);
            }
        };
        let result = commit_all(root, staged, &stale);
        let current = self.known.get_or_insert_with(HashMap::new);
        for (path, text) in changed.iter().chain(&relink) {
            current.insert((*path).clone(), (*text).clone());
        }
        for path in &stale {
            current.remove(path);
        }
        if result.is_err() {
            self.invalidate();
        }
        result?;
        let sorted = |mut paths: Vec<String>| {
            paths.sort();
            paths
        };
        Ok(SyncReport {
            written: sorted(changed.into_iter().map(|(p, _)| p.to_string()).collect()),
            created: sorted(created),
            deleted: sorted(stale.iter().map(|p| p.to_string()).collect()),
        })
    }
}

fn is_generated(path: &str) -> bool {
    path == "flake.nix"
        || path == STATE_FILE
        || GENERATED_FOLDERS.iter().any(|folder| {
            path.strip_prefix(folder)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Reads a generated file; text that is not UTF-8 differs from anything we render.
fn read_text(path: &Path) -> io::Result<Option<Arc<str>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(
            String::from_utf8(bytes).map_or_else(|_| Arc::from("\u{fffd}"), Arc::from),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Reads the generated files on disk (first sync after opening a project) and removes
/// temporary files an interrupted write left behind.
fn scan(root: &Path) -> io::Result<HashMap<Arc<str>, Arc<str>>> {
    remove_temp_files(root)?;
    let mut known = HashMap::new();
    for top in ["flake.nix", STATE_FILE] {
        if let Some(text) = read_text(&root.join(top))? {
            known.insert(Arc::from(top), text);
        }
    }
    for folder in GENERATED_FOLDERS {
        scan_dir(root, Path::new(folder), &mut known)?;
    }
    Ok(known)
}

fn scan_dir(
    root: &Path,
    relative: &Path,
    known: &mut HashMap<Arc<str>, Arc<str>>,
) -> io::Result<()> {
    let entries = match fs::read_dir(root.join(relative)) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(is_temp_file) {
            fs::remove_file(entry.path())?;
            continue;
        }
        let path = relative.join(entry.file_name());
        let Some(key) = path.to_str().map(Arc::from) else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            scan_dir(root, &path, known)?;
        } else if let Some(text) = read_text(&root.join(&path))? {
            known.insert(key, text);
        }
    }
    Ok(())
}

fn remove_temp_files(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(is_temp_file) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

struct Staged {
    temp: PathBuf,
    target: PathBuf,
}

/// Phase one: every changed file is written to a temporary file beside its target.
fn stage_all(root: &Path, changed: &[(&Arc<str>, &Arc<str>)]) -> io::Result<Vec<Staged>> {
    let mut staged = Vec::with_capacity(changed.len());
    for (path, text) in changed {
        match stage_one(root, path, text) {
            Ok(entry) => staged.push(entry),
            Err(err) => {
                discard(&staged);
                return Err(err);
            }
        }
    }
    #[cfg(test)]
    if let Some(err) = tests::injected_failure() {
        discard(&staged);
        return Err(err);
    }
    Ok(staged)
}

fn stage_one(root: &Path, path: &str, text: &str) -> io::Result<Staged> {
    let target = root.join(path);
    let dir = target.parent().unwrap_or(root);
    fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    temp.write_all(text.as_bytes())?;
    if path == STATE_FILE {
        temp.as_file().sync_all()?;
    }
    let (_, temp) = temp.keep().map_err(|err| err.error)?;
    Ok(Staged { temp, target })
}

fn discard(staged: &[Staged]) {
    for entry in staged {
        let _ = fs::remove_file(&entry.temp);
    }
}

/// Phase two: renames (state.json last, so the source of truth changes only once every derived
/// file is in place), then deletions and the removal of folders left empty.
fn commit_all(root: &Path, mut staged: Vec<Staged>, stale: &[Arc<str>]) -> io::Result<()> {
    staged.sort_by_key(|s| s.target.ends_with(STATE_FILE));
    for (i, entry) in staged.iter().enumerate() {
        if let Err(err) = fs::rename(&entry.temp, &entry.target) {
            discard(&staged[i..]);
            return Err(err);
        }
    }
    if staged.iter().any(|s| s.target.ends_with(STATE_FILE)) {
        // Make the rename itself durable.
        fs::File::open(root)?.sync_all()?;
    }
    let mut parents = BTreeSet::new();
    for path in stale {
        match fs::remove_file(root.join(&**path)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        if let Some(parent) = Path::new(&**path).parent() {
            parents.insert(parent.to_path_buf());
        }
    }
    // Deepest first; a folder that is not empty simply stays.
    for parent in parents.iter().rev() {
        if GENERATED_FOLDERS.iter().any(|f| Path::new(f) == parent) {
            continue;
        }
        let _ = fs::remove_dir(root.join(parent));
    }
    Ok(())
}

/// Writes one file atomically (temporary file, fsync, rename), e.g. an uploaded artifact.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;

    thread_local! {
        static FAIL_AFTER_STAGING: Cell<bool> = const { Cell::new(false) };
    }

    /// Simulates a crash or full disk right after the temporary files were written.
    pub(crate) fn injected_failure() -> Option<io::Error> {
        FAIL_AFTER_STAGING
            .with(|f| f.replace(false))
            .then(|| io::Error::other("injected failure after staging"))
    }

    fn files(entries: &[(&str, &str)]) -> ProjectFiles {
        entries
            .iter()
            .map(|(p, t)| (Arc::from(*p), Arc::from(*t)))
            .collect()
    }

    fn read_tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    out.push((rel, fs::read_to_string(&path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn writes_only_changes_and_deletes_stale_generated_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("artifacts")).unwrap();
        fs::write(root.join("artifacts/logo.png"), "png").unwrap();
        fs::write(root.join("flake.lock"), "{}").unwrap();
        let mut mirror = DiskMirror::default();
        let first = files(&[
            ("state.json", "{}"),
            ("hosts/a/x.nix", "1"),
            ("hosts/b/x.nix", "2"),
        ]);
        let report = mirror.sync(root, &first).unwrap();
        assert_eq!(report.written.len(), 3);

        let second = files(&[("state.json", "{}"), ("hosts/a/x.nix", "changed")]);
        let report = mirror.sync(root, &second).unwrap();
        assert_eq!(report.written, vec!["hosts/a/x.nix".to_owned()]);
        assert_eq!(report.deleted, vec!["hosts/b/x.nix".to_owned()]);
        assert!(!root.join("hosts/b").exists(), "empty folder removed");
        assert_eq!(
            fs::read_to_string(root.join("artifacts/logo.png")).unwrap(),
            "png"
        );
        assert_eq!(fs::read_to_string(root.join("flake.lock")).unwrap(), "{}");

        // A fresh mirror (a restarted controller) finds the same state on disk.
        let mut fresh = DiskMirror::default();
        assert_eq!(fresh.sync(root, &second).unwrap(), SyncReport::default());
    }

    #[test]
    fn interrupted_write_leaves_previous_project_intact() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut mirror = DiskMirror::default();
        let before = files(&[("state.json", "{\"v\":1}"), ("hosts/a/x.nix", "old")]);
        mirror.sync(root, &before).unwrap();
        let snapshot = read_tree(root);

        FAIL_AFTER_STAGING.with(|f| f.set(true));
        let after = files(&[
            ("state.json", "{\"v\":2}"),
            ("hosts/a/x.nix", "new"),
            ("hosts/c/y.nix", "added"),
        ]);
        assert!(mirror.sync(root, &after).is_err());
        assert_eq!(
            read_tree(root),
            snapshot,
            "no file changed, no temporary file left"
        );

        // The next save goes through completely.
        mirror.sync(root, &after).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("state.json")).unwrap(),
            "{\"v\":2}"
        );
        assert_eq!(
            fs::read_to_string(root.join("hosts/c/y.nix")).unwrap(),
            "added"
        );
    }

    #[test]
    fn a_failed_rename_leaves_state_json_and_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut mirror = DiskMirror::default();
        mirror
            .sync(root, &files(&[("state.json", "{\"v\":1}")]))
            .unwrap();
        // A folder where a file must go makes its rename fail.
        fs::create_dir_all(root.join("hosts/a/x.nix/blocker")).unwrap();
        let next = files(&[("state.json", "{\"v\":2}"), ("hosts/a/x.nix", "new")]);
        assert!(mirror.sync(root, &next).is_err());
        // state.json is renamed last, so the source of truth still describes the old project.
        assert_eq!(
            fs::read_to_string(root.join("state.json")).unwrap(),
            "{\"v\":1}"
        );
        let leftovers: Vec<_> = fs::read_dir(root.join("hosts/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(TEMP_SUFFIX))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(!fs::read_dir(root).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(TEMP_SUFFIX)));

        fs::remove_dir_all(root.join("hosts/a/x.nix")).unwrap();
        mirror.sync(root, &next).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("hosts/a/x.nix")).unwrap(),
            "new"
        );
        assert_eq!(
            fs::read_to_string(root.join("state.json")).unwrap(),
            "{\"v\":2}"
        );
    }

    #[test]
    fn temporary_files_left_by_a_crash_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("hosts/a")).unwrap();
        fs::write(root.join(".thymis-abc.tmp"), "half").unwrap();
        fs::write(root.join("hosts/a/.thymis-def.tmp"), "half").unwrap();
        fs::write(root.join("notes.tmp"), "mine").unwrap();
        DiskMirror::default()
            .sync(root, &files(&[("state.json", "{}")]))
            .unwrap();
        assert!(!root.join(".thymis-abc.tmp").exists());
        assert!(!root.join("hosts/a/.thymis-def.tmp").exists());
        assert!(root.join("notes.tmp").exists(), "other files stay");
    }

    #[test]
    fn write_atomic_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
