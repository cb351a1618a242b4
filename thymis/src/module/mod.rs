//! Modules: the unit users add to configs and tags. A module has a settings schema (shown as a
//! form in the dashboard) and renders a NixOS module from the values a user set.

pub mod builtin;
mod registry;
mod setting;
pub mod timer_check;
mod values;

use serde_json::{json, Map, Value as Json};

use crate::nix::{mk_override, module_function, AttrSet, Expr, NixSyntaxError};

pub use registry::{is_valid_type_name, ModuleRegistry, RegistryError};
pub use setting::{
    list_of, select_labelled, select_values, OnDevice, SecretKind, SecretProcessing, SecretSetting,
    Setting, SettingType, Text, TimerDefaults,
};
pub use values::{check_value, SettingValues};

/// Everything about a module that does not depend on a particular instance.
#[derive(Debug, Clone)]
pub struct ModuleInfo {
    /// The stable type string stored in `state.json`.
    pub type_name: String,
    /// Name shown to users.
    pub display_name: Text,
    /// One-line description.
    pub description: Option<Text>,
    /// Category in the Add Module dialog; `None` groups it under "Other".
    pub category: Option<Text>,
    /// Icon as a data URL.
    pub icon: Option<String>,
    /// Icon for dark themes as a data URL.
    pub icon_dark: Option<String>,
    /// The settings schema, in editor order.
    pub settings: Vec<Setting>,
}

impl ModuleInfo {
    /// The setting with this key.
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// The upstream wire model of `/api/available_modules`.
    pub fn to_wire(&self, locale: &str) -> Json {
        json!({
            "type": self.type_name,
            "displayName": self.display_name.localize(locale),
            "description": self.description.as_ref().map(|d| d.localize(locale)),
            "category": self.category.as_ref().map(|c| c.localize(locale)),
            "icon": self.icon,
            "iconDark": self.icon_dark,
            "settings": setting::settings_to_wire(&self.settings, locale),
        })
    }

    /// Adds `<nix_attr_name> = lib.mkOverride <priority> <value>;` for every set setting that
    /// names a NixOS option (upstream's default behaviour).
    pub fn emit_nix_attrs(&self, settings: &Map<String, Json>, priority: i64, body: &mut AttrSet) {
        for setting in &self.settings {
            let (Some(attr), Some(value)) = (&setting.nix_attr_name, settings.get(&setting.key))
            else {
                continue;
            };
            body.set(attr, mk_override(priority, Expr::from_json(value)));
        }
    }
}

/// Whether a module instance belongs to a config or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// A device configuration (`hosts/<id>`).
    Config,
    /// A tag (`tags/<id>`).
    Tag,
}

impl TargetKind {
    /// The repository folder of this kind: `hosts` or `tags`.
    pub fn folder(self) -> &'static str {
        match self {
            TargetKind::Config => "hosts",
            TargetKind::Tag => "tags",
        }
    }
}

/// Controller-wide values that some modules put into the generated Nix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderEnv {
    /// URL devices use to reach the controller, when it differs from `base_url`.
    pub agent_access_url: Option<String>,
    /// The controller's public URL.
    pub base_url: Option<String>,
}

/// Where a module instance is rendered.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// Config or tag.
    pub kind: TargetKind,
    /// The config's or tag's identifier.
    pub identifier: &'a str,
    /// mkOverride priority: 80 for configs, the tag's priority for tags.
    pub priority: i64,
    /// 0 for the first instance of this module type in the config or tag, 1 for the second, …
    pub instance: usize,
    /// Controller-wide values.
    pub env: &'a RenderEnv,
}

/// The Nix file a module instance renders to.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleOutput {
    /// A generated expression, printed by [`crate::nix`].
    Expr(Expr),
    /// Text written by the user (Custom Nix), already syntax-checked.
    Verbatim(String),
}

impl ModuleOutput {
    /// The standard module function `{ pkgs, lib, inputs, config, ... }: { body }`.
    pub fn module(body: AttrSet) -> Self {
        ModuleOutput::Expr(module_function(body))
    }

    /// The file content, ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = match self {
            ModuleOutput::Expr(expr) => expr.to_nix(),
            ModuleOutput::Verbatim(text) => text.clone(),
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    }
}

/// Why a module instance could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// A setting's value does not fit its type.
    #[error("setting `{key}`: {message}")]
    InvalidSetting {
        /// The setting key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// User-written Nix does not parse.
    #[error("setting `{key}` is not valid Nix: {error}")]
    NixSyntax {
        /// The setting key.
        key: String,
        /// Position and message.
        error: NixSyntaxError,
    },
}

/// A secret a module instance needs on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRequirement {
    /// The secret's id (UUID) from the state.
    pub secret_id: String,
    /// Where to write it.
    pub path: String,
    /// Owner user.
    pub owner: Option<String>,
    /// Owner group.
    pub group: Option<String>,
    /// Octal mode.
    pub mode: Option<String>,
}

/// A module: a settings schema and a renderer to a NixOS module.
///
/// Implement this to add your own modules, then register them with
/// [`ModuleRegistry::register`]:
///
/// ```
/// use serde_json::{json, Map, Value};
/// use thymis::module::*;
/// use thymis::nix::{mk_override, AttrSet, Expr};
///
/// struct Motd(ModuleInfo);
/// impl Module for Motd {
///     fn info(&self) -> &ModuleInfo { &self.0 }
///     fn render(&self, ctx: &RenderContext, settings: &Map<String, Value>) -> Result<ModuleOutput, RenderError> {
///         let text = self.0.values(settings).str("text")?;
///         let mut body = AttrSet::new();
///         body.set("users.motd", mk_override(ctx.priority, text));
///         Ok(ModuleOutput::module(body))
///     }
/// }
///
/// let mut registry = ModuleRegistry::with_builtins();
/// registry.register(Motd(ModuleInfo {
///     type_name: "acme.motd.Motd".into(),
///     display_name: Text::en_de("Message of the day", "Tagesnachricht"),
///     description: None, category: Some(Text::plain("System")), icon: None, icon_dark: None,
///     settings: vec![Setting::new("text", Text::plain("Text"), SettingType::String).default_value(json!("Hello"))],
/// })).unwrap();
/// assert!(registry.get("acme.motd.Motd").is_some());
/// ```
pub trait Module: Send + Sync + 'static {
    /// Type string, names, icons and settings schema.
    fn info(&self) -> &ModuleInfo;

    /// Renders one instance. The default emits only the settings that name a NixOS option.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let mut body = AttrSet::new();
        self.info()
            .emit_nix_attrs(settings, ctx.priority, &mut body);
        Ok(ModuleOutput::module(body))
    }

    /// The secrets this instance needs on the device: by default every set secret setting that
    /// has an on-device path, including secret settings inside lists.
    fn secrets(&self, settings: &Map<String, Json>) -> Vec<SecretRequirement> {
        let mut found = Vec::new();
        collect_secrets(&self.info().settings, settings, &mut found);
        found
    }
}

fn collect_secrets(
    schema: &[Setting],
    values: &Map<String, Json>,
    found: &mut Vec<SecretRequirement>,
) {
    for setting in schema {
        let Some(value) = values.get(&setting.key) else {
            continue;
        };
        match (&setting.ty, value) {
            (SettingType::Secret(secret), Json::String(id)) if !id.is_empty() => {
                if let Some(on_device) = &secret.on_device {
                    found.push(SecretRequirement {
                        secret_id: id.clone(),
                        path: on_device.path.clone(),
                        owner: on_device.owner.clone(),
                        group: on_device.group.clone(),
                        mode: on_device.mode.clone(),
                    });
                }
            }
            (SettingType::List { settings, .. }, Json::Array(items)) => {
                for item in items.iter().filter_map(Json::as_object) {
                    collect_secrets(settings, item, found);
                }
            }
            _ => {}
        }
    }
}
