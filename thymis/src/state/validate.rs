//! Validation of a [`State`]: every problem is reported at once, each with the JSON path of the
//! value it concerns, so a user (or the dashboard) can fix them all in one go.

use std::collections::HashMap;

use serde::Serialize;

use super::{ModuleSettings, State, CONFIG_PRIORITY, DEVICE_MODULE_TYPE};
use crate::module::{
    check_value, ModuleRegistry, RenderContext, RenderEnv, RenderError, SettingType, TargetKind,
};
use crate::nix::is_identifier;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The project cannot be rendered or would not evaluate.
    Error,
    /// Worth a look, but the project renders (e.g. a module from a repository not loaded).
    Warning,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// JSON path such as `$.configs[0].modules[1].settings.volume`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Problem {
    /// An error at `path`.
    pub fn error(path: &str, message: String) -> Self {
        Problem {
            path: path.to_owned(),
            message,
            severity: Severity::Error,
        }
    }

    /// A warning at `path`.
    pub fn warning(path: &str, message: String) -> Self {
        Problem {
            path: path.to_owned(),
            message,
            severity: Severity::Warning,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}: {}", self.path, self.message)
    }
}

/// Why an identifier cannot be a folder under `hosts/` or `tags/`: rendering refuses these.
pub fn folder_name_problem(identifier: &str) -> Option<String> {
    let unsafe_name = identifier.is_empty()
        || identifier.starts_with('.')
        || identifier
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    unsafe_name.then(|| format!("identifier `{identifier}` cannot be used as a folder name"))
}

/// A config or tag identifier should be a Nix attribute name and a host label (RFC 1123) at
/// once, as the dashboard derives them. Upstream's early migrations produced other names;
/// those still render, so they only earn a warning.
fn identifier_problem(identifier: &str) -> Option<Problem> {
    if let Some(message) = folder_name_problem(identifier) {
        return Some(Problem::error("", message));
    }
    let starts_with_letter = identifier.starts_with(|c: char| c.is_ascii_alphabetic());
    let label_chars = identifier
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !starts_with_letter || !label_chars || identifier.ends_with('-') || identifier.len() > 63 {
        return Some(Problem::warning(
            "",
            format!(
                "identifier `{identifier}` should start with a letter, contain only letters, digits and `-` (not at the end) and be at most 63 characters"
            ),
        ));
    }
    None
}

impl State {
    /// Every problem of this state, errors and warnings, in document order.
    pub fn validate(&self, registry: &ModuleRegistry) -> Vec<Problem> {
        self.check(registry, true)
    }

    /// Like [`State::validate`] without rendering each module instance: what only a module's
    /// renderer finds (e.g. Custom Nix syntax) is left to the render that follows, which reports
    /// it with the same paths (see [`render_error_problem`]). Saves use this; it is much cheaper.
    pub fn validate_without_rendering(&self, registry: &ModuleRegistry) -> Vec<Problem> {
        self.check(registry, false)
    }

    fn check(&self, registry: &ModuleRegistry, render: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        self.validate_repositories(&mut problems);
        check_identifiers(
            self.tags.iter().map(|t| t.identifier.as_str()),
            "tags",
            &mut problems,
        );
        check_identifiers(
            self.configs.iter().map(|c| c.identifier.as_str()),
            "configs",
            &mut problems,
        );
        for (i, tag) in self.tags.iter().enumerate() {
            let path = format!("$.tags[{i}]");
            check_modules(
                &tag.modules,
                (TargetKind::Tag, &tag.identifier, tag.priority),
                &path,
                (registry, render),
                &mut problems,
            );
        }
        for (i, config) in self.configs.iter().enumerate() {
            let path = format!("$.configs[{i}]");
            let devices = config
                .modules
                .iter()
                .filter(|m| m.module_type == DEVICE_MODULE_TYPE)
                .count();
            if devices != 1 {
                problems.push(Problem::error(
                    &format!("{path}.modules"),
                    format!("a config needs exactly one Device module, found {devices}"),
                ));
            }
            for (j, tag) in config.tags.iter().enumerate() {
                if self.tag(tag).is_none() {
                    problems.push(Problem::error(
                        &format!("{path}.tags[{j}]"),
                        format!("tag `{tag}` does not exist"),
                    ));
                }
            }
            check_modules(
                &config.modules,
                (TargetKind::Config, &config.identifier, CONFIG_PRIORITY),
                &path,
                (registry, render),
                &mut problems,
            );
        }
        problems
    }

    fn validate_repositories(&self, problems: &mut Vec<Problem>) {
        for (name, repo) in &self.repositories {
            let path = format!("$.repositories.{}", crate::nix::attr_name(name));
            if let Some(problem) = crate::nix::flake::input_name_problem(name) {
                problems.push(Problem::error(&path, problem.to_string()));
            }
            if let Some(url) = &repo.url {
                if let Err(err) = url.parse::<crate::nix::flake_ref::FlakeRef>() {
                    problems.push(Problem::error(&format!("{path}.url"), err.to_string()));
                }
            }
            if let Some(follows) = &repo.follows {
                if follows.is_empty() {
                    problems.push(Problem::error(
                        &format!("{path}.follows"),
                        "follows must name an input path such as `thymis/nixpkgs`".to_owned(),
                    ));
                }
            }
            if !crate::nix::flake::is_flake_input(repo) {
                problems.push(Problem::warning(
                    &path,
                    "repository has neither a url nor follows; it is left out of flake.nix"
                        .to_owned(),
                ));
            }
            for key in repo.inputs_follows.keys() {
                if !is_identifier(key) {
                    problems.push(Problem::error(
                        &format!("{path}.inputs_follows"),
                        format!("`{key}` is not a Nix identifier"),
                    ));
                }
            }
            if let Some(secret) = &repo.api_key_secret {
                if uuid::Uuid::parse_str(secret).is_err() {
                    problems.push(Problem::error(
                        &format!("{path}.api_key_secret"),
                        format!("secret reference `{secret}` is not a UUID"),
                    ));
                }
            }
        }
    }
}

fn check_identifiers<'a>(
    identifiers: impl Iterator<Item = &'a str>,
    list: &str,
    problems: &mut Vec<Problem>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, identifier) in identifiers.enumerate() {
        let path = format!("$.{list}[{i}].identifier");
        if let Some(problem) = identifier_problem(identifier) {
            problems.push(Problem {
                path: path.clone(),
                ..problem
            });
        }
        if let Some(first) = seen.insert(identifier, i) {
            problems.push(Problem::error(
                &path,
                format!("identifier `{identifier}` is also used by {list}[{first}]"),
            ));
            seen.insert(identifier, first);
        }
    }
}

fn check_modules(
    modules: &[ModuleSettings],
    (kind, identifier, priority): (TargetKind, &str, i64),
    parent: &str,
    (registry, render): (&ModuleRegistry, bool),
    problems: &mut Vec<Problem>,
) {
    for (i, instance) in modules.iter().enumerate() {
        let path = format!("{parent}.modules[{i}]");
        let Some(module) = registry.get(&instance.module_type) else {
            problems.push(Problem::warning(
                &format!("{path}.type"),
                format!(
                    "unknown module type `{}` (is the repository that provides it loaded?); it is skipped",
                    instance.module_type
                ),
            ));
            continue;
        };
        let info = module.info();
        let errors_before = count_errors(problems);
        for (key, value) in &instance.settings {
            let setting_path = format!("{path}.settings.{key}");
            let Some(setting) = info.setting(key) else {
                // Upstream ignores such keys (old versions left some behind), and so does
                // rendering.
                problems.push(Problem::warning(
                    &setting_path,
                    format!(
                        "unknown setting `{key}` for module {}; it is ignored",
                        info.display_name.en
                    ),
                ));
                continue;
            };
            check_value(setting, value, &setting_path, problems);
            if let SettingType::SelectOne {
                extra_data: Some(extra),
                ..
            } = &setting.ty
            {
                check_select_extras(extra, instance, key, kind, &setting_path, problems);
            }
        }
        if !render || count_errors(problems) > errors_before {
            // Not asked for, or the module would only trip over the values reported already.
            continue;
        }
        // Rendering finds what only the module knows, such as Custom Nix syntax errors.
        let env = RenderEnv::default();
        let ctx = RenderContext {
            kind,
            identifier,
            priority,
            instance: 0,
            env: &env,
        };
        if let Err(err) = module.render(&ctx, &instance.settings) {
            problems.push(render_error_problem(&path, err));
        }
    }
}

/// The problem a module's render error stands for, at `module_path`
/// (`$.configs[0].modules[1]`): it points at the setting concerned.
pub fn render_error_problem(module_path: &str, err: RenderError) -> Problem {
    match err {
        RenderError::InvalidSetting { key, message } => {
            Problem::error(&format!("{module_path}.settings.{key}"), message)
        }
        RenderError::NixSyntax { key, error } => Problem::error(
            &format!("{module_path}.settings.{key}"),
            format!("Nix syntax error at {error}"),
        ),
    }
}

fn count_errors(problems: &[Problem]) -> usize {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count()
}

/// Upstream's editor hints, enforced: config-only settings and values restricted by another key.
fn check_select_extras(
    extra: &serde_json::Value,
    instance: &ModuleSettings,
    key: &str,
    kind: TargetKind,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let config_only = extra["only_editable_on_target_type"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().all(|k| k != "tag"));
    if config_only && kind == TargetKind::Tag {
        // The dashboard offers it on configs only; on a tag it still applies to every config
        // with the tag, which older projects rely on.
        problems.push(Problem::warning(
            path,
            format!("`{key}` is meant to be set on configs; on a tag it applies to every config with the tag"),
        ));
    }
    let Some(restrictions) = extra["restrict_values_on_other_key"].as_object() else {
        return;
    };
    let Some(value) = instance.settings.get(key).and_then(|v| v.as_str()) else {
        return;
    };
    for (other_key, by_value) in restrictions {
        let Some(other) = instance.settings.get(other_key).and_then(|v| v.as_str()) else {
            continue;
        };
        let Some(allowed) = by_value.get(other).and_then(|a| a.as_array()) else {
            continue;
        };
        if !allowed.iter().any(|a| a == value) {
            let allowed: Vec<&str> = allowed.iter().filter_map(|a| a.as_str()).collect();
            problems.push(Problem::error(
                path,
                format!(
                    "`{value}` is not allowed when {other_key} is `{other}`; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
}
