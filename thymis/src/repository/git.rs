//! [`GitRepository`]: the project as a git working tree, driven through libgit2.

use std::fs;
use std::path::{Path, PathBuf};

use git2::{DiffOptions, IndexAddOption, Oid, Signature, Tree};

use super::render::{ProjectRenderer, RenderOptions};
use super::sync::{DiskMirror, TEMP_PREFIX, TEMP_SUFFIX};
use super::{
    Author, ChangeKind, CommitInfo, FileChange, Repository, RepositoryError, SaveReport,
    CONTROLLER_EMAIL, CONTROLLER_NAME,
};
use crate::module::ModuleRegistry;
use crate::state::State;

const BRANCH: &str = "master";

/// Files bigger than this get a note instead of a diff in status and history answers.
const MAX_DIFF_FILE_BYTES: u64 = 1024 * 1024;

/// The project repository on a git working tree.
pub struct GitRepository {
    root: PathBuf,
    repo: git2::Repository,
    renderer: ProjectRenderer,
    mirror: DiskMirror,
    options: RenderOptions,
}

impl GitRepository {
    /// Opens the project at `root`, creating it when needed: `git init` on branch `master`,
    /// the controller's commit identity unless git already has one, an empty state when there
    /// is no `state.json`, every file rendered, and an `Initial commit` when there is none.
    /// An existing `state.json` of an older version is migrated; the result stays uncommitted.
    pub fn open_or_init(
        root: &Path,
        registry: &ModuleRegistry,
        options: RenderOptions,
    ) -> Result<Self, RepositoryError> {
        fs::create_dir_all(root)?;
        let repo = match git2::Repository::open(root) {
            Ok(repo) => repo,
            Err(err) if err.code() == git2::ErrorCode::NotFound => {
                let mut init = git2::RepositoryInitOptions::new();
                init.initial_head(BRANCH);
                git2::Repository::init_opts(root, &init)?
            }
            Err(err) => return Err(err.into()),
        };
        ensure_identity(&repo)?;
        ignore_temp_files(&repo)?;
        let mut project = GitRepository {
            root: root.to_path_buf(),
            repo,
            renderer: ProjectRenderer::new(),
            mirror: DiskMirror::default(),
            options,
        };
        let state = if project.root.join("state.json").exists() {
            project.load_state()?
        } else {
            State::default()
        };
        project.save_state(&state, registry)?;
        if project.repo.head().is_err() {
            project.commit("Initial commit", None)?;
        }
        Ok(project)
    }

    /// The working tree's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes git track new files and forget removed ones (paths relative to the root), so that
    /// Nix sees the working tree as it is.
    pub fn track(&mut self, added: &[String], removed: &[String]) -> Result<(), RepositoryError> {
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let mut index = self.repo.index()?;
        for path in added {
            index.add_path(Path::new(path))?;
        }
        for path in removed {
            index.remove_path(Path::new(path))?;
        }
        index.write()?;
        Ok(())
    }

    /// Forgets what this repository believes is on disk. Saves compare rendered files with
    /// their last written content in memory; call this after anything else changed the working
    /// tree (a `git checkout`, a hand edit), and the next save reads the files back and repairs
    /// what differs.
    pub fn forget_disk_contents(&mut self) {
        self.mirror.invalidate();
    }

    fn head_tree(&self) -> Result<Option<Tree<'_>>, RepositoryError> {
        match self.repo.head() {
            Ok(head) => Ok(Some(head.peel_to_tree()?)),
            Err(err)
                if matches!(
                    err.code(),
                    git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }

    fn resolve(&self, spec: &str) -> Result<git2::Commit<'_>, RepositoryError> {
        let unknown = || RepositoryError::UnknownCommit(spec.to_owned());
        // Refuse option-like or range specs: only single revisions are meaningful here.
        if spec.is_empty() || spec.starts_with('-') || spec.contains("..") {
            return Err(unknown());
        }
        self.repo
            .revparse_single(spec)
            .and_then(|object| object.peel_to_commit())
            .map_err(|_| unknown())
    }

    fn signature(author: Option<&Author>) -> Result<Signature<'static>, git2::Error> {
        match author {
            Some(a) => Signature::now(
                &clean_identity_part(&a.name, "Thymis user"),
                &clean_identity_part(&a.email, "user@thymis.local"),
            ),
            None => Signature::now(CONTROLLER_NAME, CONTROLLER_EMAIL),
        }
    }

    /// The identity configured in git (the service user's global one wins, as upstream).
    fn committer(&self) -> Result<Signature<'static>, git2::Error> {
        self.repo
            .signature()
            .map(|s| s.to_owned())
            .or_else(|_| Signature::now(CONTROLLER_NAME, CONTROLLER_EMAIL))
    }

    fn commit_tree(
        &mut self,
        tree_id: Oid,
        message: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError> {
        let tree = self.repo.find_tree(tree_id)?;
        let parent = match self.repo.head() {
            Ok(head) => Some(head.peel_to_commit()?),
            Err(_) => None,
        };
        if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
            return Err(RepositoryError::NothingToCommit);
        }
        let author_sig = match author {
            Some(_) => Self::signature(author)?,
            None => self.committer()?,
        };
        let committer = self.committer()?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = self.repo.commit(
            Some("HEAD"),
            &author_sig,
            &committer,
            message,
            &tree,
            &parents,
        )?;
        let commit = self.repo.find_commit(oid)?;
        Ok(commit_info(&commit))
    }

    fn changes(&self, diff: &git2::Diff) -> Result<Vec<FileChange>, RepositoryError> {
        let mut changes = Vec::new();
        for (index, delta) in diff.deltas().enumerate() {
            let kind = match delta.status() {
                git2::Delta::Added | git2::Delta::Untracked => ChangeKind::Added,
                git2::Delta::Deleted => ChangeKind::Deleted,
                _ => ChangeKind::Modified,
            };
            let file = match kind {
                ChangeKind::Deleted => delta.old_file(),
                _ => delta.new_file(),
            };
            let path = file
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let large = delta.old_file().size().max(delta.new_file().size()) > MAX_DIFF_FILE_BYTES;
            let text = match git2::Patch::from_diff(diff, index)? {
                // A huge artifact would make every status answer huge; say so instead.
                _ if large => {
                    format!("(file larger than {MAX_DIFF_FILE_BYTES} bytes; no diff shown)\n")
                }
                Some(mut patch) => {
                    let buf = patch.to_buf()?;
                    String::from_utf8_lossy(&buf).into_owned()
                }
                None => String::new(),
            };
            changes.push(FileChange {
                path,
                kind,
                diff: text,
            });
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }
}

impl Repository for GitRepository {
    fn load_state(&self) -> Result<State, RepositoryError> {
        let text = fs::read_to_string(self.root.join("state.json"))?;
        let (state, _) = State::from_json_str(&text)?;
        Ok(state)
    }

    fn save_state(
        &mut self,
        state: &State,
        registry: &ModuleRegistry,
    ) -> Result<SaveReport, RepositoryError> {
        let files = self.renderer.render(state, registry, &self.options)?;
        let report = self.mirror.sync(&self.root, &files)?;
        // Nix reads a git flake's tracked files from the working tree, so only new and removed
        // files need the index; changed ones are staged by the next commit.
        self.track(&report.created, &report.deleted)?;
        let flake_changed = report.written.iter().any(|p| p == "flake.nix");
        Ok(SaveReport {
            files: report,
            flake_changed,
        })
    }

    fn status(&self) -> Result<Vec<FileChange>, RepositoryError> {
        let head = self.head_tree()?;
        let mut options = DiffOptions::new();
        // update_index: files whose stat data is stale but content unchanged get their index
        // entry refreshed, so the next status does not hash them again (what `git status` does).
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .show_untracked_content(true)
            .update_index(true);
        let diff = self
            .repo
            .diff_tree_to_workdir_with_index(head.as_ref(), Some(&mut options))?;
        self.changes(&diff)
    }

    fn commit(
        &mut self,
        message: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError> {
        if message.trim().is_empty() {
            return Err(RepositoryError::EmptyMessage);
        }
        let mut index = self.repo.index()?;
        index.add_all(["*"], IndexAddOption::DEFAULT, None)?;
        index.update_all(["*"], None)?;
        index.write()?;
        let tree_id = index.write_tree()?;
        self.commit_tree(tree_id, message, author)
    }

    fn history(&self, limit: usize) -> Result<Vec<CommitInfo>, RepositoryError> {
        if self.head_tree()?.is_none() {
            return Ok(Vec::new());
        }
        let mut walk = self.repo.revwalk()?;
        walk.push_head()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        let mut commits = Vec::new();
        for oid in walk.take(limit) {
            commits.push(commit_info(&self.repo.find_commit(oid?)?));
        }
        Ok(commits)
    }

    fn diff(
        &self,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<FileChange>, RepositoryError> {
        let old_tree = match from {
            Some(spec) => Some(self.resolve(spec)?.tree()?),
            None => None,
        };
        let new_tree = match to {
            Some(spec) => self.resolve(spec)?.tree()?,
            None => self
                .head_tree()?
                .ok_or_else(|| RepositoryError::UnknownCommit("HEAD".to_owned()))?,
        };
        let diff = self
            .repo
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), None)?;
        self.changes(&diff)
    }

    fn revert_to(
        &mut self,
        commit: &str,
        author: Option<&Author>,
    ) -> Result<CommitInfo, RepositoryError> {
        if !self.status()?.is_empty() {
            return Err(RepositoryError::Dirty);
        }
        let (tree_id, message) = {
            let target = self.resolve(commit)?;
            let tree = target.tree()?;
            let mut index = self.repo.index()?;
            index.read_tree(&tree)?;
            let mut checkout = git2::build::CheckoutBuilder::new();
            checkout.force().remove_untracked(true);
            self.repo
                .checkout_index(Some(&mut index), Some(&mut checkout))?;
            index.write()?;
            let message = format!(
                "Revert to {}: {}",
                short_sha(target.id()),
                target.summary().unwrap_or_default()
            );
            (tree.id(), message)
        };
        // The working tree changed under the renderer's feet.
        self.mirror.invalidate();
        self.commit_tree(tree_id, &message, author)
    }
}

/// Gives the repository the controller's identity where git has none (a global identity of the
/// service user wins, as upstream).
fn ensure_identity(repo: &git2::Repository) -> Result<(), git2::Error> {
    let config = repo.config()?;
    let mut local = config.open_level(git2::ConfigLevel::Local)?;
    for (key, value) in [
        ("user.name", CONTROLLER_NAME),
        ("user.email", CONTROLLER_EMAIL),
    ] {
        if config.get_string(key).is_err() {
            local.set_str(key, value)?;
        }
    }
    Ok(())
}

/// Keeps temporary files of an interrupted write out of commits.
fn ignore_temp_files(repo: &git2::Repository) -> Result<(), RepositoryError> {
    let pattern = format!("{TEMP_PREFIX}*{TEMP_SUFFIX}");
    let exclude = repo.path().join("info/exclude");
    let current = fs::read_to_string(&exclude).unwrap_or_default();
    if !current.lines().any(|line| line == pattern) {
        fs::create_dir_all(repo.path().join("info"))?;
        let mut text = current;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&pattern);
        text.push('\n');
        super::write_atomic(&exclude, text.as_bytes())?;
    }
    Ok(())
}

/// Git refuses names and addresses containing `<`, `>` or line breaks; drop those characters
/// rather than fail a user's commit.
fn clean_identity_part(text: &str, fallback: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '<' | '>') && !c.is_control())
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned.to_owned()
    }
}

fn short_sha(oid: Oid) -> String {
    oid.to_string().chars().take(7).collect()
}

fn commit_info(commit: &git2::Commit) -> CommitInfo {
    CommitInfo {
        sha: commit.id().to_string(),
        short_sha: short_sha(commit.id()),
        message: commit.summary().unwrap_or_default().to_owned(),
        date: format_git_time(commit.time()),
        author: commit.author().name().unwrap_or_default().to_owned(),
    }
}

/// `YYYY-MM-DD HH:MM:SS ±hhmm` in the commit's own time zone, like `git log --format=%ci`.
fn format_git_time(time: git2::Time) -> String {
    let offset_minutes = i64::from(time.offset_minutes());
    let local = time.seconds() + offset_minutes * 60;
    let days = local.div_euclid(86_400);
    let seconds_of_day = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let offset = offset_minutes.abs();
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60,
        seconds_of_day % 60,
        offset / 60,
        offset % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_time_format() {
        assert_eq!(
            format_git_time(git2::Time::new(0, 0)),
            "1970-01-01 00:00:00 +0000"
        );
        assert_eq!(
            format_git_time(git2::Time::new(1_700_000_000, 60)),
            "2023-11-14 23:13:20 +0100"
        );
        assert_eq!(
            format_git_time(git2::Time::new(951_782_400, -330)),
            "2000-02-28 18:30:00 -0530"
        );
    }
}
