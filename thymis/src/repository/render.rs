//! Rendering a [`State`] into the project's files (`state.json`, `flake.nix`, `hosts/…`,
//! `tags/…`), remembering what each config and tag produced so that a save re-renders only the
//! configs and tags that changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::module::{ModuleRegistry, RenderContext, RenderEnv, TargetKind};
use crate::nix::flake::{project_inputs, render_flake, FlakeError, DEFAULT_THYMIS_URL};
use crate::state::{ModuleSettings, Problem, State, CONFIG_PRIORITY};

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

/// The rendered project: repository-relative path → content. Shared contents are reference
/// counted because unchanged configs reuse the text of the previous render.
pub type ProjectFiles = BTreeMap<String, Arc<str>>;

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
    files: Vec<(String, Arc<str>)>,
}

/// Renders projects, reusing the output of configs and tags whose modules did not change.
#[derive(Default)]
pub struct ProjectRenderer {
    cache: HashMap<(TargetKind, String), CachedTarget>,
    cached_options: Option<RenderOptions>,
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
        if self.cached_options.as_ref() != Some(options) {
            self.cache.clear();
            self.cached_options = Some(options.clone());
        }
        let mut files = ProjectFiles::new();
        let inputs = project_inputs(&options.thymis_url, &state.repositories);
        files.insert("flake.nix".into(), render_flake(&inputs)?.into());
        files.insert("state.json".into(), state.to_json_pretty().into());

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
        let mut problems = Vec::new();
        let mut live = HashMap::with_capacity(self.cache.len());
        for (kind, index, identifier, priority, modules) in targets {
            // Upstream skips configs with an empty identifier.
            if identifier.is_empty() {
                continue;
            }
            let list = match kind {
                TargetKind::Config => "configs",
                TargetKind::Tag => "tags",
            };
            let path = format!("$.{list}[{index}]");
            if let Some(message) = crate::state::folder_name_problem(identifier) {
                return Err(RenderFailure::Identifier {
                    path: format!("{path}.identifier"),
                    message,
                });
            }
            let key = (kind, identifier.clone());
            let cached = self
                .cache
                .remove(&key)
                .filter(|c| c.priority == priority && &c.modules == modules);
            let target = match cached {
                Some(hit) => hit,
                None => {
                    let ctx = RenderContext {
                        kind,
                        identifier,
                        priority,
                        instance: 0,
                        env: &options.env,
                    };
                    CachedTarget {
                        priority,
                        modules: modules.clone(),
                        files: render_target(&ctx, modules, registry, &path, &mut problems),
                    }
                }
            };
            let folder = format!("{}/{identifier}", kind.folder());
            files.insert(format!("{folder}/.gitkeep"), Arc::from(""));
            for (name, text) in &target.files {
                files.insert(format!("{folder}/{name}"), text.clone());
            }
            live.insert(key, target);
        }
        self.cache = live;
        if problems.is_empty() {
            Ok(files)
        } else {
            // Forget the failed targets' cache entries so a fixed state re-renders them.
            self.cache.clear();
            Err(RenderFailure::Modules(problems))
        }
    }
}

/// File name of the `n`th (0-based) instance of a module type: the first keeps upstream's
/// `<type>.nix`, later ones get `<type>.<n+1>.nix` instead of overwriting it.
fn module_file_name(module_type: &str, instance: usize) -> String {
    if instance == 0 {
        format!("{module_type}.nix")
    } else {
        format!("{module_type}.{}.nix", instance + 1)
    }
}

fn render_target(
    ctx: &RenderContext,
    modules: &[ModuleSettings],
    registry: &ModuleRegistry,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(String, Arc<str>)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut files = Vec::with_capacity(modules.len());
    for (i, instance) in modules.iter().enumerate() {
        let Some(module) = registry.get(&instance.module_type) else {
            tracing::warn!(module_type = %instance.module_type, target = ctx.identifier, "unknown module type skipped");
            continue;
        };
        if !is_safe_file_stem(&instance.module_type) {
            problems.push(Problem::error(
                &format!("{path}.modules[{i}].type"),
                format!(
                    "module type `{}` cannot be a file name",
                    instance.module_type
                ),
            ));
            continue;
        }
        let count = seen.entry(instance.module_type.as_str()).or_insert(0);
        let name = module_file_name(&instance.module_type, *count);
        let ctx = RenderContext {
            instance: *count,
            ..*ctx
        };
        *count += 1;
        match module.render(&ctx, &instance.settings) {
            Ok(output) => files.push((name, Arc::from(output.to_text()))),
            Err(err) => problems.push(Problem::error(
                &format!("{path}.modules[{i}]"),
                err.to_string(),
            )),
        }
    }
    files
}

fn is_safe_file_stem(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
