//! Settings: the typed schema of a module's options, and its upstream-compatible wire JSON
//! (`GET /api/available_modules`).

use serde_json::{json, Map, Value as Json};

/// A display string in English with an optional German translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// English text; also the fallback for every other locale.
    pub en: String,
    /// German text.
    pub de: Option<String>,
}

impl Text {
    /// The same text in every locale.
    pub fn plain(en: &str) -> Self {
        Text {
            en: en.to_owned(),
            de: None,
        }
    }

    /// English and German text.
    pub fn en_de(en: &str, de: &str) -> Self {
        Text {
            en: en.to_owned(),
            de: Some(de.to_owned()),
        }
    }

    /// The text for `locale` (`en`, `de`), falling back to English.
    pub fn localize(&self, locale: &str) -> &str {
        match (locale, &self.de) {
            ("de", Some(de)) => de,
            _ => &self.en,
        }
    }
}

/// Kinds of secret a secret setting accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// One line of text.
    SingleLine,
    /// Several lines of text.
    MultiLine,
    /// `KEY=value` lines.
    EnvList,
    /// An uploaded file.
    File,
}

impl SecretKind {
    /// Every kind, in upstream's order.
    pub const ALL: [SecretKind; 4] = [
        SecretKind::SingleLine,
        SecretKind::MultiLine,
        SecretKind::EnvList,
        SecretKind::File,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::SingleLine => "single_line",
            SecretKind::MultiLine => "multi_line",
            SecretKind::EnvList => "env_list",
            SecretKind::File => "file",
        }
    }
}

/// How a secret value is transformed before it reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretProcessing {
    /// The value as stored.
    None,
    /// A yescrypt password hash of the value (`mkpasswd --method=yescrypt`).
    MkpasswdYescrypt,
}

impl SecretProcessing {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretProcessing::None => "none",
            SecretProcessing::MkpasswdYescrypt => "mkpasswd-yescrypt",
        }
    }
}

/// Where a secret setting's value is written on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnDevice {
    /// Absolute file path.
    pub path: String,
    /// Owner user name.
    pub owner: Option<String>,
    /// Owner group name.
    pub group: Option<String>,
    /// Octal mode such as `0400`.
    pub mode: Option<String>,
}

/// The schema of a secret setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSetting {
    /// Which secret kinds may be picked.
    pub allowed_types: Vec<SecretKind>,
    /// Processing proposed when a secret is created from this setting.
    pub default_processing: SecretProcessing,
    /// Whether a secret created from this setting is embedded in images by default.
    pub default_save_to_image: bool,
    /// Server-side only: where the agent writes the value.
    pub on_device: Option<OnDevice>,
}

/// Defaults of a systemd timer setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerDefaults {
    /// `realtime`, `monotonic` or `continuous`.
    pub timer_type: Option<String>,
    /// `OnBootSec`.
    pub on_boot_sec: Option<String>,
    /// `OnUnitActiveSec`.
    pub on_unit_active_sec: Option<String>,
    /// `AccuracySec`.
    pub accuracy_sec: Option<String>,
    /// `OnCalendar` entries.
    pub on_calendar: Option<Vec<String>>,
    /// `Persistent`.
    pub persistent: Option<bool>,
    /// `RandomizedDelaySec`.
    pub randomized_delay_sec: Option<String>,
}

/// The type of a setting, which decides its form field and the JSON it stores.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingType {
    /// A single-line string.
    String,
    /// `true` / `false`.
    Bool,
    /// An integer.
    Int,
    /// Any number.
    Number,
    /// Multi-line text.
    Textarea,
    /// A file system path.
    Path,
    /// A Nix package attribute name.
    Package,
    /// One of fixed values, each `(label, value)`.
    SelectOne {
        /// The options.
        options: Vec<(Text, String)>,
        /// Hints for the editor: `only_editable_on_target_type`, `restrict_values_on_other_key`.
        extra_data: Option<Json>,
    },
    /// A list of objects with the given sub-settings.
    List {
        /// The sub-settings of each element.
        settings: Vec<Setting>,
        /// How one element is called in the editor.
        element_name: Option<Text>,
    },
    /// A reference (UUID) to a secret.
    Secret(SecretSetting),
    /// A file name in the project's `artifacts/`.
    Artifact,
    /// Source code edited with highlighting.
    TextareaCode {
        /// `nix`, `bash`, `python`, …
        language: Option<String>,
    },
    /// A systemd timer definition.
    SystemdTimer(TimerDefaults),
}

/// One setting of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// The key under which the value is stored in `state.json`.
    pub key: String,
    /// Label.
    pub display_name: Text,
    /// Type.
    pub ty: SettingType,
    /// Help text.
    pub description: Option<Text>,
    /// Value used when the user set none.
    pub default: Option<Json>,
    /// An example value shown as a hint.
    pub example: Option<String>,
    /// Position in the editor.
    pub order: i64,
    /// When set, the value is emitted as `<nix_attr_name> = lib.mkOverride <priority> <value>;`.
    pub nix_attr_name: Option<String>,
}

impl Setting {
    /// A setting with no description, default, example or Nix attribute.
    pub fn new(key: &str, display_name: Text, ty: SettingType) -> Self {
        Setting {
            key: key.to_owned(),
            display_name,
            ty,
            description: None,
            default: None,
            example: None,
            order: 0,
            nix_attr_name: None,
        }
    }

    /// Builder: help text.
    pub fn description(mut self, text: Text) -> Self {
        self.description = Some(text);
        self
    }

    /// Builder: default value.
    pub fn default_value(mut self, value: Json) -> Self {
        self.default = Some(value);
        self
    }

    /// Builder: example.
    pub fn example(mut self, example: &str) -> Self {
        self.example = Some(example.to_owned());
        self
    }

    /// Builder: editor position.
    pub fn order(mut self, order: i64) -> Self {
        self.order = order;
        self
    }

    /// Builder: emit the value as this NixOS option.
    pub fn nix_attr(mut self, name: &str) -> Self {
        self.nix_attr_name = Some(name.to_owned());
        self
    }

    /// The upstream wire model `{displayName, type, description, default, example, order}`.
    pub fn to_wire(&self, locale: &str) -> Json {
        json!({
            "displayName": self.display_name.localize(locale),
            "type": self.ty.to_wire(locale),
            "description": self.description.as_ref().map(|d| d.localize(locale)),
            "default": self.default.clone(),
            "example": self.example.clone(),
            "order": self.order,
        })
    }
}

/// Settings keyed by name in upstream's order (Python's `dir()` sorts alphabetically).
pub(crate) fn settings_to_wire(settings: &[Setting], locale: &str) -> Json {
    let mut sorted: Vec<&Setting> = settings.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let map: Map<String, Json> = sorted
        .into_iter()
        .map(|s| (s.key.clone(), s.to_wire(locale)))
        .collect();
    Json::Object(map)
}

impl SettingType {
    /// The upstream wire form: a bare string for simple types, an object otherwise.
    pub fn to_wire(&self, locale: &str) -> Json {
        match self {
            SettingType::String => json!("string"),
            SettingType::Bool => json!("bool"),
            SettingType::Int => json!("int"),
            SettingType::Number => json!("number"),
            SettingType::Textarea => json!("textarea"),
            SettingType::Path => json!("path"),
            SettingType::Package => json!("package"),
            SettingType::SelectOne {
                options,
                extra_data,
            } => json!({
                "type": "select-one",
                "select-one": options
                    .iter()
                    .map(|(label, value)| json!([label.localize(locale), value]))
                    .collect::<Vec<_>>(),
                "extra_data": extra_data.clone(),
            }),
            SettingType::List {
                settings,
                element_name,
            } => json!({
                "type": "list",
                "list-of": settings_to_wire(settings, locale),
                "element-name": element_name.as_ref().map(|e| e.localize(locale)),
            }),
            SettingType::Secret(secret) => json!({
                "type": "secret",
                "allowed-types": secret.allowed_types.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "default-processing-type": secret.default_processing.as_str(),
                "default-save-to-image": secret.default_save_to_image,
            }),
            SettingType::Artifact => json!({"type": "artifact"}),
            SettingType::TextareaCode { language } => {
                json!({"type": "textarea-code", "language": language})
            }
            SettingType::SystemdTimer(t) => json!({
                "type": "systemd-timer",
                "timer_type": t.timer_type.clone().unwrap_or_else(|| "realtime".to_owned()),
                "on_boot_sec": t.on_boot_sec,
                "on_unit_active_sec": t.on_unit_active_sec,
                "accuracy_sec": t.accuracy_sec,
                "on_calendar": t.on_calendar,
                "persistent": t.persistent,
                "randomized_delay_sec": t.randomized_delay_sec,
            }),
        }
    }
}

/// Builds a select-one type whose labels equal their values.
pub fn select_values(values: &[&str]) -> SettingType {
    SettingType::SelectOne {
        options: values
            .iter()
            .map(|v| (Text::plain(v), (*v).to_owned()))
            .collect(),
        extra_data: None,
    }
}

/// Builds a select-one type from `(label, value)` pairs.
pub fn select_labelled(options: &[(&str, &str)], extra_data: Option<Json>) -> SettingType {
    SettingType::SelectOne {
        options: options
            .iter()
            .map(|(label, value)| (Text::plain(label), (*value).to_owned()))
            .collect(),
        extra_data,
    }
}

/// A list type of the given sub-settings.
pub fn list_of(settings: Vec<Setting>, element_name: Option<Text>) -> SettingType {
    SettingType::List {
        settings,
        element_name,
    }
}
