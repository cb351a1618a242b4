//! Rendering a [`State`] into the project's files (`state.json`, `flake.nix`, `hosts/…`,
//! `tags/…`), remembering what each config and tag produced so that a save re-renders only the
//! configs and tags that changed.

use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;
use std::sync::Arc;

use crate::module::{ModuleRegistry, RenderContext, RenderEnv, TargetKind};
use crate::nix::flake::{project_inputs, render_flake, FlakeError, DEFAULT_THYMIS_URL};
use crate::state::{ModuleSettings, Problem, Repo, State, CONFIG_PRIORITY};

/// Project-wide inputs of rendering besides the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// URL of the `thymis` flake input.
    pub thymis_url: String,
    /// Controller URLs some modules embed.
    pub env: RenderEnv,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            thymis_url: DEFAULT_THYMIS_URL.to_owned(),
            env: RenderEnv::default(),
        }
    }
}

/// The rendered project: repository-relative paths and contents, each path once. Both are
/// reference counted because unchanged configs reuse those of the previous render.
#[derive(Debug, Clone, Default)]
pub struct ProjectFiles {
    entries: Vec<(Arc<str>, Arc<str>)>,
}

impl ProjectFiles {
    fn push(&mut self, path: Arc<str>, text: Arc<str>) {
        self.entries.push((path, text));
    }

    /// Every `(path, content)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &(Arc<str>, Arc<str>)> {
        self.entries.iter()
    }

    /// The content of `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _)| &**p == path)
            .map(|(_, text)| &**text)
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(Arc<str>, Arc<str>)> for ProjectFiles {
    /// Later entries for the same path replace earlier ones.
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Arc<str>)>>(iter: I) -> Self {
        let unique: BTreeMap<Arc<str>, Arc<str>> = iter.into_iter().collect();
        ProjectFiles {
            entries: unique.into_iter().collect(),
        }
    }
}

/// Why the project could not be rendered. Nothing is written in that case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderFailure {
    /// The flake's inputs are invalid.
    #[error(transparent)]
    Flake(#[from] FlakeError),
    /// Modules could not render; every failing instance is listed.
    #[error("{} module(s) could not be rendered: {}", .0.len(), join_problems(.0))]
    Modules(Vec<Problem>),
    /// An identifier is unusable as a folder name.
    #[error("{path}: {message}")]
    Identifier {
        /// JSON path of the identifier.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn join_problems(problems: &[Problem]) -> String {
    let texts: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    texts.join("; ")
}

#[derive(Clone)]
struct CachedTarget {
    priority: i64,
    modules: Vec<ModuleSettings>,
    files: Vec<(Arc<str>, Arc<str>)>,
}

/// Renders projects, reusing the output of configs and tags whose modules did not change.
#[derive(Default)]
pub struct ProjectRenderer {
    cache: HashMap<(TargetKind, String), CachedTarget>,
    /// The options and registry version the cache was rendered with.
    cached_for: Option<(RenderOptions, u64)>,
    /// The last flake and the inputs it was rendered from: most saves leave them alone.
    cached_flake: Option<(IndexMap<String, Repo>, Arc<str>)>,
    /// Size of the last `state.json`, to allocate the next one at once.
    state_json_len: usize,
}

impl ProjectRenderer {
    /// A renderer with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renders every file of the project. Unknown module types are skipped (they may come from a
    /// repository that is not loaded), as upstream does; any other failure renders nothing.
    pub fn render(
        &mut self,
        state: &State,
        registry: &ModuleRegistry,
        options: &RenderOptions,
    ) -> Result<ProjectFiles, RenderFailure> {
        let inputs_of_cache = (options.clone(), registry.version());
        if self.cached_for.as_ref() != Some(&inputs_of_cache) {
            self.cache.clear();
            self.cached_flake = None;
            self.cached_for = Some(inputs_of_cache);
        }
        let mut files = ProjectFiles::default();
        let inputs = project_inputs(&options.thymis_url, &state.repositories);
        let flake = match &self.cached_flake {
            Some((cached_inputs, text)) if *cached_inputs == inputs => text.clone(),
            _ => {
                let text: Arc<str> = render_flake(&inputs)?.into();
                self.cached_flake = Some((inputs, text.clone()));
                text
            }
        };
        files.push("flake.nix".into(), flake);
        let state_json = state.to_json_pretty_with_capacity(self.state_json_len);
        self.state_json_len = state_json.len() + state_json.len() / 16;
        files.push("state.json".into(), state_json.into());

        let targets = state
            .configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    TargetKind::Config,
                    i,
                    &c.identifier,
                    CONFIG_PRIORITY,
                    &c.modules,
                )
            })
            .chain(
                state
                    .tags
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (TargetKind::Tag, i, &t.identifier, t.priority, &t.modules)),
            );
        // Reuse what did not change; collect the rest to render.
        let mut order = Vec::new();
        let mut live = HashMap::with_capacity(self.cache.len());
        let mut misses = Vec::new();
        let mut seen = HashSet::with_capacity(self.cache.len());
        for (kind, index, identifier, priority, modules) in targets {
            // Upstream skips configs with an empty identifier.
            if identifier.is_empty() {
                continue;
            }
            let list = match kind {
                TargetKind::Config => "configs",
                TargetKind::Tag => "tags",
            };
            if let Some(message) = crate::state::folder_name_problem(identifier) {
                return Err(RenderFailure::Identifier {
                    path: format!("$.{list}[{index}].identifier"),
                    message,
                });
            }
            let key = (kind, identifier.clone());
            if !seen.insert(key.clone()) {
                return Err(RenderFailure::Identifier {
                    path: format!("$.{list}[{index}].identifier"),
                    message: format!("identifier `{identifier}` is used twice"),
                });
            }
            let hit = self
                .cache
                .remove(&key)
                .filter(|c| c.priority == priority && &c.modules == modules);
            match hit {
                Some(target) => {
                    live.insert(key.clone(), target);
                }
                None => misses.push(Miss {
                    key: key.clone(),
                    json_path: format!("$.{list}[{index}]"),
                    priority,
                    modules,
                }),
            }
            order.push(key);
        }

        let mut problems = Vec::new();
        for (key, target, target_problems) in render_misses(misses, registry, &options.env) {
            problems.extend(target_problems);
            live.insert(key, target);
        }
        if !problems.is_empty() {
            // Forget the failed targets so a fixed state renders them again.
            self.cache = HashMap::new();
            return Err(RenderFailure::Modules(problems));
        }
        for key in &order {
            if let Some(target) = live.get(key) {
                for (path, text) in &target.files {
                    files.push(path.clone(), text.clone());
                }
            }
        }
        self.cache = live;
        Ok(files)
    }
}

/// A config or tag that must be rendered.
struct Miss<'a> {
    key: (TargetKind, String),
    json_path: String,
    priority: i64,
    modules: &'a Vec<ModuleSettings>,
}

type Rendered = ((TargetKind, String), CachedTarget, Vec<Problem>);

/// Renders the targets, spread over the machine's cores when there are many (a full render of a
/// large fleet).
fn render_misses(misses: Vec<Miss>, registry: &ModuleRegistry, env: &RenderEnv) -> Vec<Rendered> {
    const PER_THREAD_MINIMUM: usize = 64;
    let render_one = |miss: Miss| {
        let ((kind, identifier), json_path) = (miss.key, miss.json_path);
        let ctx = RenderContext {
            kind,
            identifier: &identifier,
            priority: miss.priority,
            instance: 0,
            env,
        };
        let mut problems = Vec::new();
        let files = render_target(&ctx, miss.modules, registry, &json_path, &mut problems);
        let target = CachedTarget {
            priority: miss.priority,
            modules: miss.modules.clone(),
            files,
        };
        ((kind, identifier), target, problems)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(misses.len() / PER_THREAD_MINIMUM)
        .max(1);
    if threads == 1 {
        return misses.into_iter().map(render_one).collect();
    }
    let chunk_size = misses.len().div_ceil(threads);
    let mut chunks: Vec<Vec<Miss>> = Vec::with_capacity(threads);
    let mut misses = misses.into_iter().peekable();
    while misses.peek().is_some() {
        chunks.push(misses.by_ref().take(chunk_size).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(render_one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// File name of the `n`th (0-based) instance of a module type: the first keeps upstream's
/// `<type>.nix`, later ones get `<type>-<n+1>.nix` instead of overwriting it (`-` never occurs in
/// a type string, so these names cannot collide with another type's).
fn module_file_name(module_type: &str, instance: usize) -> String {
    if instance == 0 {
        format!("{module_type}.nix")
    } else {
        format!("{module_type}-{}.nix", instance + 1)
    }
}

/// The files of one config or tag, with repository-relative paths.
fn render_target(
    ctx: &RenderContext,
    modules: &[ModuleSettings],
    registry: &ModuleRegistry,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(Arc<str>, Arc<str>)> {
    let folder = format!("{}/{}", ctx.kind.folder(), ctx.identifier);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut files = Vec::with_capacity(modules.len() + 1);
    // Git keeps no empty folders, and the flake reads every listed tag's folder.
    files.push((Arc::from(format!("{folder}/.gitkeep")), Arc::from("")));
    for (i, instance) in modules.iter().enumerate() {
        let Some(module) = registry.get(&instance.module_type) else {
            tracing::warn!(module_type = %instance.module_type, target = ctx.identifier, "unknown module type skipped");
            continue;
        };
        // Registered type strings are dotted paths (see `ModuleRegistry::register`), so they
        // are safe file names.
        let count = seen.entry(instance.module_type.as_str()).or_insert(0);
        let name = module_file_name(&instance.module_type, *count);
        let ctx = RenderContext {
            instance: *count,
            ..*ctx
        };
        *count += 1;
        match module.render(&ctx, &instance.settings) {
            Ok(output) => files.push((
                Arc::from(format!("{folder}/{name}")),
                Arc::from(output.to_text()),
            )),
            Err(err) => problems.push(crate::state::render_error_problem(
                &format!("{path}.modules[{i}]"),
                err,
            )),
        }
    }
    files
}
