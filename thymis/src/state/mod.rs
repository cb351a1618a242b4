//! The project state: the `state.json` model shared with upstream Thymis, its loading with
//! migrations, and validation.
//!
//! Unknown fields are kept in `extra` maps, so a file written by a newer or patched controller
//! survives a round trip through this library unchanged.

mod migrate;
mod validate;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

pub use migrate::{migrate, MigrationError, KNOWN_VERSIONS, LATEST_VERSION};
pub use validate::{folder_name_problem, render_error_problem, Problem, Severity};

/// The type string of the mandatory Device module.
pub const DEVICE_MODULE_TYPE: &str = "thymis_controller.modules.thymis.ThymisDevice";

/// The mkOverride priority of a config's own module settings (upstream `HOST_PRIORITY`).
pub const CONFIG_PRIORITY: i64 = 80;

/// The priority the dashboard gives a new tag.
pub const DEFAULT_TAG_PRIORITY: i64 = 90;

/// The whole declarative state of a project (`repository/state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Schema version; always [`LATEST_VERSION`] after loading.
    #[serde(default = "latest_version")]
    pub version: String,
    /// External flake inputs by input name.
    #[serde(default)]
    pub repositories: IndexMap<String, Repo>,
    /// Tags: module sets shared by several configs.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Device configurations.
    #[serde(default)]
    pub configs: Vec<Config>,
    /// Fields this library does not know, kept for the round trip.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

fn latest_version() -> String {
    LATEST_VERSION.to_owned()
}

impl Default for State {
    fn default() -> Self {
        State {
            version: latest_version(),
            repositories: IndexMap::new(),
            tags: Vec::new(),
            configs: Vec::new(),
            extra: Map::new(),
        }
    }
}

/// An external flake input, usually a repository of Thymis modules.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Repo {
    /// Flake URL such as `github:owner/repo`.
    #[serde(default)]
    pub url: Option<String>,
    /// `inputs.<name>.follows`.
    #[serde(default)]
    pub follows: Option<String>,
    /// `inputs.<name>.inputs.<key>.follows = <value>`.
    #[serde(default)]
    pub inputs_follows: IndexMap<String, String>,
    /// Id of the secret holding an access token for this repository.
    #[serde(default)]
    pub api_key_secret: Option<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// A tag: modules applied to every config that lists it, at the tag's priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Name shown to users.
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// Folder name `tags/<identifier>`, referenced from [`Config::tags`].
    pub identifier: String,
    /// `lib.mkOverride` priority of the tag's settings; the lower number wins.
    pub priority: i64,
    /// Module instances.
    #[serde(default)]
    pub modules: Vec<ModuleSettings>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// A device configuration: becomes `nixosConfigurations.<identifier>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Name shown to users.
    #[serde(rename = "displayName")]
    pub display_name: String,
    /// Flake attribute and folder name `hosts/<identifier>`.
    pub identifier: String,
    /// Module instances; exactly one is the Device module.
    #[serde(default)]
    pub modules: Vec<ModuleSettings>,
    /// Identifiers of the tags applied to this config.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

/// One module instance: its type string and the settings the user set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleSettings {
    /// The module's type string, e.g. `thymis_controller.modules.kiosk.Kiosk`.
    #[serde(rename = "type")]
    pub module_type: String,
    /// Only the keys the user set; a missing key means the module default.
    #[serde(default)]
    pub settings: Map<String, Json>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Json>,
}

impl ModuleSettings {
    /// A module instance with no settings set.
    pub fn new(module_type: &str) -> Self {
        ModuleSettings {
            module_type: module_type.to_owned(),
            settings: Map::new(),
            extra: Map::new(),
        }
    }

    /// Builder: sets one setting.
    pub fn with(mut self, key: &str, value: Json) -> Self {
        self.settings.insert(key.to_owned(), value);
        self
    }
}

impl Config {
    /// The `device_type` setting of the config's Device module, if set.
    pub fn device_type(&self) -> Option<&str> {
        self.modules
            .iter()
            .find(|m| m.module_type == DEVICE_MODULE_TYPE)
            .and_then(|m| m.settings.get("device_type"))
            .and_then(Json::as_str)
    }
}

/// Why a `state.json` could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The text is not JSON.
    #[error("state.json is not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// The document's version is unknown or an old document is malformed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// Fields have the wrong type or required fields are missing: one problem per broken
    /// repository, tag or config (never empty).
    #[error("state.json: {}", describe_shape_problems(.0))]
    Shape(Vec<Problem>),
}

fn describe_shape_problems(problems: &[Problem]) -> String {
    match problems {
        [] => "malformed".to_owned(),
        [only] => format!("{}: {}", only.path, only.message),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more problems)",
            first.path,
            first.message,
            rest.len()
        ),
    }
}

impl State {
    /// Parses a `state.json` of any upstream version (0.0.1–0.0.9), migrating it to the current
    /// shape. Returns the state and the version the text was written in.
    ///
    /// ```
    /// let (state, from) = thymis::state::State::from_json_str(r#"{"version":"0.0.9","configs":[]}"#).unwrap();
    /// assert_eq!(from, "0.0.9");
    /// assert!(state.configs.is_empty());
    /// ```
    pub fn from_json_str(text: &str) -> Result<(State, String), StateError> {
        let doc: Json = serde_json::from_str(text).map_err(StateError::Syntax)?;
        Self::from_json_value(doc)
    }

    /// Like [`State::from_json_str`] for an already parsed document.
    pub fn from_json_value(doc: Json) -> Result<(State, String), StateError> {
        let (doc, from_version) = migrate(doc)?;
        match serde_path_to_error::deserialize::<_, State>(&doc) {
            Ok(state) => Ok((state, from_version)),
            Err(first) => {
                let mut problems = shape_problems(&doc);
                if problems.is_empty() {
                    problems.push(shape_problem("", &first));
                }
                Err(StateError::Shape(problems))
            }
        }
    }

    /// The `state.json` text: two-space indentation like upstream, every field written.
    pub fn to_json_pretty(&self) -> String {
        self.to_json_pretty_with_capacity(0)
    }

    /// [`State::to_json_pretty`] into a buffer of `capacity` bytes, which saves the copies of
    /// a growing buffer when the size is known from the last save.
    pub fn to_json_pretty_with_capacity(&self, capacity: usize) -> String {
        let mut buffer = Vec::with_capacity(capacity);
        // Serialising plain data into memory cannot fail, and serde_json writes UTF-8.
        let _ = serde_json::to_writer_pretty(&mut buffer, self);
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// The config with this identifier.
    pub fn config(&self, identifier: &str) -> Option<&Config> {
        self.configs.iter().find(|c| c.identifier == identifier)
    }

    /// The tag with this identifier.
    pub fn tag(&self, identifier: &str) -> Option<&Tag> {
        self.tags.iter().find(|t| t.identifier == identifier)
    }
}

fn shape_problem(prefix: &str, err: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = err.path().to_string();
    let raw = match (prefix.is_empty(), inner.as_str()) {
        (true, _) => inner.clone(),
        (false, ".") => prefix.to_owned(),
        (false, _) if inner.starts_with('[') => format!("{prefix}{inner}"),
        (false, _) => format!("{prefix}.{inner}"),
    };
    Problem::error(&json_path(&raw), err.inner().to_string())
}

/// Deserialises every repository, tag and config on its own, so that one broken entry does not
/// hide the problems of the others.
fn shape_problems(doc: &Json) -> Vec<Problem> {
    fn check<T: serde::de::DeserializeOwned>(prefix: &str, value: &Json, out: &mut Vec<Problem>) {
        if let Err(err) = serde_path_to_error::deserialize::<_, T>(value) {
            out.push(shape_problem(prefix, &err));
        }
    }
    let mut problems = Vec::new();
    let Some(top) = doc.as_object() else {
        return problems;
    };
    for (key, value) in top {
        match (key.as_str(), value) {
            ("repositories", Json::Object(repos)) => {
                for (name, repo) in repos {
                    let prefix = format!("repositories.{}", crate::nix::attr_name(name));
                    check::<Repo>(&prefix, repo, &mut problems);
                }
            }
            ("tags", Json::Array(tags)) => {
                for (i, tag) in tags.iter().enumerate() {
                    check::<Tag>(&format!("tags[{i}]"), tag, &mut problems);
                }
            }
            ("configs", Json::Array(configs)) => {
                for (i, config) in configs.iter().enumerate() {
                    check::<Config>(&format!("configs[{i}]"), config, &mut problems);
                }
            }
            ("version" | "repositories" | "tags" | "configs", _) => {
                let mut single = serde_json::Map::new();
                single.insert(key.clone(), value.clone());
                check::<State>("", &Json::Object(single), &mut problems);
            }
            _ => {}
        }
    }
    problems
}

/// serde_path_to_error writes `configs[0].identifier`; we report `$.configs[0].identifier`.
fn json_path(raw: &str) -> String {
    if raw == "." || raw.is_empty() {
        "$".to_owned()
    } else if raw.starts_with('[') {
        format!("${raw}")
    } else {
        format!("$.{raw}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/state/example-0.0.9.json");

    #[test]
    fn example_round_trips_byte_for_byte() {
        let (state, from) = State::from_json_str(EXAMPLE).unwrap();
        assert_eq!(from, "0.0.9");
        assert_eq!(state.to_json_pretty(), EXAMPLE.trim_end());
    }

    #[test]
    fn unknown_fields_survive() {
        let text = r#"{"version":"0.0.9","future":1,"configs":[{"displayName":"A","identifier":"a","modules":[{"type":"x","settings":{},"note":"n"}],"tags":[],"color":"red"}]}"#;
        let (state, _) = State::from_json_str(text).unwrap();
        let out: Json = serde_json::from_str(&state.to_json_pretty()).unwrap();
        assert_eq!(out["future"], 1);
        assert_eq!(out["configs"][0]["color"], "red");
        assert_eq!(out["configs"][0]["modules"][0]["note"], "n");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let text = r#"{"version":"0.0.9","tags":[{"displayName":"T","identifier":"t","priority":"high","modules":[]}]}"#;
        match State::from_json_str(text) {
            Err(StateError::Shape(problems)) => {
                assert_eq!(problems.len(), 1);
                assert_eq!(problems[0].path, "$.tags[0].priority");
                assert!(problems[0].message.contains("expected i64"), "{problems:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_field_names_its_parent() {
        let text = r#"{"version":"0.0.9","configs":[{"displayName":"A","modules":[],"tags":[]}]}"#;
        match State::from_json_str(text) {
            Err(StateError::Shape(problems)) => {
                assert_eq!(problems[0].path, "$.configs[0]");
                assert!(problems[0].message.contains("identifier"), "{problems:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn every_broken_entry_is_reported() {
        let text = r#"{"version":"0.0.9","repositories":{"r":{"url":5}},
            "tags":[{"displayName":"T","identifier":"t","priority":"high","modules":[]}],
            "configs":[{"displayName":"A","identifier":"a","modules":[],"tags":[]},
                       {"displayName":"B","identifier":7,"modules":[],"tags":[]},
                       {"displayName":"C","identifier":"c","modules":[{"type":"x","settings":[]}],"tags":[]}]}"#;
        let Err(StateError::Shape(problems)) = State::from_json_str(text) else {
            panic!("expected shape problems");
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "$.repositories.r.url",
                "$.tags[0].priority",
                "$.configs[1].identifier",
                "$.configs[2].modules[0].settings"
            ]
        );
        let text = State::from_json_str(r#"{"version":"0.0.9","configs":{}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "state.json: $.configs: invalid type: map, expected a sequence"
        );
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        let err = State::from_json_str("{\"version\": ").unwrap_err();
        assert!(matches!(err, StateError::Syntax(_)));
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn device_type_comes_from_the_device_module() {
        let (state, _) = State::from_json_str(EXAMPLE).unwrap();
        assert_eq!(state.configs[0].device_type(), Some("raspberry-pi-4"));
    }
}
