//! Finding out whether each external repository of the state can be fetched and is a Thymis
//! module repository: its `README.md` must say it `contains thymis modules` (upstream's marker).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use indexmap::IndexMap;
use serde::Serialize;

use crate::events::{Event, EventBus};
use crate::nix::flake_ref::FlakeRef;
use crate::nix::prefetch::fetch_store_path;
use crate::state::Repo;

/// The phrase a module repository's README must contain (case-sensitive, as upstream).
pub const MAGIC_STRING: &str = "contains thymis modules";
/// How much of a README is read.
const README_LIMIT: u64 = 1024 * 1024;

/// Where the discovery of one repository stands (upstream's wire names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveryState {
    /// Being fetched.
    Loading,
    /// The repository has no URL yet.
    NoUrl,
    /// Nix could not fetch it (`details` has Nix's message).
    NoPath,
    /// It has no `README.md`.
    NoReadme,
    /// Its README does not say it contains Thymis modules.
    NoMagicString,
    /// Fetched and recognised.
    Loaded,
}

/// The status of one repository, as `GET /api/external-repositories/status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryStatus {
    /// Where discovery stands.
    pub status: DiscoveryState,
    /// Type strings of the modules the repository provides.
    pub modules: Vec<String>,
    /// Error text or a note for the user.
    pub details: Option<String>,
}

impl RepositoryStatus {
    fn new(status: DiscoveryState, details: Option<String>) -> Self {
        RepositoryStatus {
            status,
            modules: Vec::new(),
            details,
        }
    }
}

/// The discovery status of every repository of the state, kept up to date by
/// [`RepositoryDiscovery::discover`].
pub struct RepositoryDiscovery {
    statuses: RwLock<BTreeMap<String, RepositoryStatus>>,
    /// Bumped by every discovery, so a slow earlier one never overwrites a later one.
    generation: AtomicU64,
    events: EventBus,
}

impl RepositoryDiscovery {
    /// No repositories known yet; changes are announced on `events`.
    pub fn new(events: EventBus) -> Self {
        RepositoryDiscovery {
            statuses: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            events,
        }
    }

    /// The current status of every repository, by input name.
    pub fn statuses(&self) -> BTreeMap<String, RepositoryStatus> {
        self.statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fetches and inspects every repository (blocking; Nix may take long). Each one is
    /// `loading` until its result is in; `token` gives a repository's access token.
    pub fn discover(
        &self,
        repositories: &IndexMap<String, Repo>,
        token: &dyn Fn(&Repo) -> Option<String>,
    ) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let loading = repositories
            .keys()
            .map(|name| {
                let status = RepositoryStatus::new(DiscoveryState::Loading, None);
                (name.clone(), status)
            })
            .collect();
        self.replace_if_current(generation, |statuses| *statuses = loading);
        for (name, repo) in repositories {
            if self.generation.load(Ordering::SeqCst) != generation {
                return; // superseded: the newer discovery covers every repository
            }
            let status = inspect(repo, token);
            self.replace_if_current(generation, |statuses| {
                statuses.insert(name.clone(), status);
            });
        }
    }

    fn replace_if_current(
        &self,
        generation: u64,
        change: impl FnOnce(&mut BTreeMap<String, RepositoryStatus>),
    ) {
        let mut statuses = self.statuses.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            change(&mut statuses);
            drop(statuses);
            self.events.publish(Event::ExternalRepositoriesChanged);
        }
    }
}

/// Fetches one repository and checks its README.
fn inspect(repo: &Repo, token: &dyn Fn(&Repo) -> Option<String>) -> RepositoryStatus {
    let Some(url) = repo.url.as_deref().filter(|url| !url.trim().is_empty()) else {
        return RepositoryStatus::new(DiscoveryState::NoUrl, None);
    };
    if let Err(problem) = check_local_flake(url) {
        return RepositoryStatus::new(DiscoveryState::NoPath, Some(problem));
    }
    let path = match fetch_store_path(url, token(repo).as_deref()) {
        Ok(path) => path,
        Err(error) => return RepositoryStatus::new(DiscoveryState::NoPath, Some(error)),
    };
    match readme_has_marker(&path) {
        None => RepositoryStatus::new(DiscoveryState::NoReadme, None),
        Some(false) => RepositoryStatus::new(DiscoveryState::NoMagicString, None),
        Some(true) => RepositoryStatus::new(
            DiscoveryState::Loaded,
            Some(
                "Its flake outputs are available to Nix modules as inputs.<name>; this \
                 controller does not load Python modules from repositories."
                    .into(),
            ),
        ),
    }
}

/// Nix copies a `path:` reference into the store before it looks for a flake, so a mistyped
/// `/` would copy the whole file system: a local path must be absolute and hold a `flake.nix`.
fn check_local_flake(url: &str) -> Result<(), String> {
    let Ok(FlakeRef::Path(reference)) = url.parse::<FlakeRef>() else {
        return Ok(());
    };
    let dir = Path::new(&reference.path);
    if !dir.is_absolute() {
        return Err(format!("{url}: a local path must be absolute"));
    }
    if !dir.join("flake.nix").is_file() {
        return Err(format!("{url}: no flake.nix in {}", dir.display()));
    }
    Ok(())
}

/// `None` without a readable `README.md`, else whether it contains [`MAGIC_STRING`].
fn readme_has_marker(root: &Path) -> Option<bool> {
    let file = std::fs::File::open(root.join("README.md")).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = Vec::new();
    file.take(README_LIMIT).read_to_end(&mut text).ok()?;
    Some(String::from_utf8_lossy(&text).contains(MAGIC_STRING))
}
