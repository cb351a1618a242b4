//! Stored setting values: [`check_value`] checks them against their setting types for
//! validation, and [`SettingValues`] reads them typed for rendering.

use serde_json::{Map, Value as Json};

use super::{ModuleInfo, RenderError, Setting, SettingType};
use crate::state::Problem;

/// Checks `value` against `setting`'s type, appending a problem (with `path`) for every
/// mismatch, including inside lists.
pub fn check_value(setting: &Setting, value: &Json, path: &str, problems: &mut Vec<Problem>) {
    if value.as_str().is_some_and(|s| s.contains('\0')) {
        problems.push(Problem::error(
            path,
            "contains a NUL character, which Nix strings cannot hold".to_owned(),
        ));
        return;
    }
    let mut fail = |message: String| problems.push(Problem::error(path, message));
    match (&setting.ty, value) {
        // `null` means "not set": the module default applies.
        (_, Json::Null) => {}
        (
            SettingType::String
            | SettingType::Textarea
            | SettingType::Path
            | SettingType::Package
            | SettingType::TextareaCode { .. },
            Json::String(_),
        ) => {}
        (SettingType::Bool, Json::Bool(_)) => {}
        (SettingType::Int, Json::Number(n)) if n.is_i64() || n.is_u64() => {}
        (SettingType::Number, Json::Number(_)) => {}
        (SettingType::SelectOne { options, .. }, Json::String(v)) => {
            if !options.iter().any(|(_, allowed)| allowed == v) {
                let allowed: Vec<&str> = options.iter().map(|(_, v)| v.as_str()).collect();
                fail(format!(
                    "`{v}` is not one of the allowed values: {}",
                    allowed.join(", ")
                ));
            }
        }
        // An empty reference means "none chosen" (the modules' own default).
        (SettingType::Secret(_) | SettingType::Artifact, Json::String(text)) if text.is_empty() => {
        }
        (SettingType::Secret(_), Json::String(id)) => {
            if uuid::Uuid::parse_str(id).is_err() {
                fail(format!("secret reference `{id}` is not a UUID"));
            }
        }
        (SettingType::Artifact, Json::String(name)) => {
            if let Err(message) = crate::repository::check_artifact_name(name) {
                fail(message);
            }
        }
        (SettingType::List { settings, .. }, Json::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let Some(object) = item.as_object() else {
                    problems.push(Problem::error(&item_path, "expected an object".to_owned()));
                    continue;
                };
                for (key, sub_value) in object {
                    let sub_path = format!("{item_path}.{key}");
                    match settings.iter().find(|s| &s.key == key) {
                        // An unset element field means "default".
                        Some(_) if sub_value.is_null() => {}
                        Some(sub) => check_value(sub, sub_value, &sub_path, problems),
                        None => problems
                            .push(Problem::error(&sub_path, format!("unknown field `{key}`"))),
                    }
                }
            }
        }
        (SettingType::SystemdTimer(_), Json::Object(timer)) => check_timer(timer, path, problems),
        // Upstream's editor stores numbers typed into int fields as strings, and leaves
        // untouched bool fields as ""; both render, so they are only worth a warning.
        (SettingType::Int, Json::String(text)) if text.trim().parse::<i64>().is_ok() => problems
            .push(Problem::warning(
                path,
                format!("the integer is stored as the string {text:?}"),
            )),
        (SettingType::Int, Json::String(text)) if text.trim().is_empty() => problems.push(
            Problem::warning(path, "an empty value counts as not set".to_owned()),
        ),
        (SettingType::Bool, Json::String(text)) if text.is_empty() => problems.push(
            Problem::warning(path, "an empty string stands for false".to_owned()),
        ),
        (ty, other) => fail(format!(
            "expected {}, found {}",
            expected_name(ty),
            json_kind(other)
        )),
    }
}

fn check_timer(timer: &serde_json::Map<String, Json>, path: &str, problems: &mut Vec<Problem>) {
    for (key, value) in timer {
        let ok = match key.as_str() {
            "timer_type" => {
                matches!(
                    value.as_str(),
                    Some("realtime" | "monotonic" | "continuous")
                ) || value.is_null()
            }
            "on_boot_sec" | "on_unit_active_sec" | "accuracy_sec" | "randomized_delay_sec" => {
                value.is_string() || value.is_null()
            }
            "persistent" => value.is_boolean() || value.is_null(),
            "on_calendar" => {
                value.is_null()
                    || value
                        .as_array()
                        .is_some_and(|entries| entries.iter().all(Json::is_string))
            }
            // The wire form carries its own `type` tag.
            "type" => true,
            _ => {
                problems.push(Problem::error(
                    &format!("{path}.{key}"),
                    format!("unknown timer field `{key}`"),
                ));
                continue;
            }
        };
        if !ok {
            problems.push(Problem::error(
                &format!("{path}.{key}"),
                format!("invalid value {value} for timer field `{key}`"),
            ));
        }
    }
}

fn expected_name(ty: &SettingType) -> &'static str {
    match ty {
        SettingType::String | SettingType::Textarea | SettingType::TextareaCode { .. } => {
            "a string"
        }
        SettingType::Path => "a path string",
        SettingType::Package => "a package name string",
        SettingType::Bool => "true or false",
        SettingType::Int => "an integer",
        SettingType::Number => "a number",
        SettingType::SelectOne { .. } => "one of the listed values (a string)",
        SettingType::List { .. } => "a list",
        SettingType::Secret(_) => "a secret id (UUID string)",
        SettingType::Artifact => "an artifact file name",
        SettingType::SystemdTimer(_) => "a timer object",
    }
}

/// How a value is described in "expected …, found …" messages.
fn json_kind(value: &Json) -> String {
    match value {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string {s:?}"),
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "an object".to_owned(),
    }
}

impl ModuleInfo {
    /// Typed access to an instance's values with this module's defaults filled in.
    pub fn values<'a>(&'a self, settings: &'a Map<String, Json>) -> SettingValues<'a> {
        SettingValues {
            path: String::new(),
            values: settings,
            schema: &self.settings,
        }
    }
}

/// Typed reads of one object of setting values: an instance's settings, one element of a list
/// setting, or an object value such as a timer. Unset and `null` values fall back to the
/// schema's default and otherwise read as empty; upstream's editor stores integers as decimal
/// strings and leaves untouched fields as `""`, so both are accepted. A value of any other JSON
/// type is a [`RenderError::InvalidSetting`] naming it as `key`, `key[i].field` or
/// `key.field`, so it is reported instead of becoming a panic or broken Nix.
#[derive(Debug, Clone)]
pub struct SettingValues<'a> {
    /// Where these values sit, for error keys: empty for an instance's settings, `key[i]` for a
    /// list element, `key` for an object value.
    path: String,
    values: &'a Map<String, Json>,
    /// The settings whose defaults fill unset values (none for an object value).
    schema: &'a [Setting],
}

impl<'a> SettingValues<'a> {
    /// The key naming `field` in errors, such as `static_networks[0].ipv4prefixLength`.
    pub fn key(&self, field: &str) -> String {
        match self.path.as_str() {
            "" => field.to_owned(),
            path => format!("{path}.{field}"),
        }
    }

    /// A [`RenderError::InvalidSetting`] for `field`.
    pub fn invalid(&self, field: &str, message: impl Into<String>) -> RenderError {
        RenderError::InvalidSetting {
            key: self.key(field),
            message: message.into(),
        }
    }

    fn mismatch(&self, field: &str, expected: &str, found: &Json) -> RenderError {
        self.invalid(
            field,
            format!("expected {expected}, found {}", json_kind(found)),
        )
    }

    /// Whether the user set `field` to something other than `null` (defaults do not count).
    pub fn is_set(&self, field: &str) -> bool {
        self.values.get(field).is_some_and(|v| !v.is_null())
    }

    /// The value set (other than `null`), else the default, else `null`.
    pub fn get(&self, field: &str) -> &'a Json {
        const NULL: Json = Json::Null;
        self.values
            .get(field)
            .filter(|v| !v.is_null())
            .or_else(|| self.setting(field).and_then(|s| s.default.as_ref()))
            .unwrap_or(&NULL)
    }

    fn setting(&self, field: &str) -> Option<&'a Setting> {
        self.schema.iter().find(|s| s.key == field)
    }

    /// A string value; `""` when unset.
    pub fn str(&self, field: &str) -> Result<&'a str, RenderError> {
        match self.get(field) {
            Json::Null => Ok(""),
            Json::String(s) => Ok(s),
            other => Err(self.mismatch(field, "a string", other)),
        }
    }

    /// An integer value; `None` when unset or blank. Decimal strings are accepted, and an
    /// integer beyond the `i64` range reads as `i64::MAX`.
    pub fn int(&self, field: &str) -> Result<Option<i64>, RenderError> {
        let value = self.get(field);
        let parsed = match value {
            Json::Null => return Ok(None),
            Json::String(s) if s.trim().is_empty() => return Ok(None),
            Json::String(s) => s.trim().parse().ok(),
            Json::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.mismatch(field, "an integer", value))
    }

    /// A boolean value; `false` when unset or `""`.
    pub fn bool(&self, field: &str) -> Result<bool, RenderError> {
        match self.get(field) {
            Json::Null => Ok(false),
            Json::Bool(b) => Ok(*b),
            Json::String(s) if s.is_empty() => Ok(false),
            other => Err(self.mismatch(field, "true or false", other)),
        }
    }

    /// The elements of a list of objects, each read with the list's sub-settings as its schema;
    /// empty when unset. `null` elements are skipped, as upstream's Nix encoder drops them.
    pub fn items(&self, field: &str) -> Result<Vec<SettingValues<'a>>, RenderError> {
        let elements = match self.get(field) {
            Json::Null => return Ok(Vec::new()),
            Json::Array(elements) => elements,
            other => return Err(self.mismatch(field, "a list", other)),
        };
        let schema = match self.setting(field).map(|s| &s.ty) {
            Some(SettingType::List { settings, .. }) => settings.as_slice(),
            _ => &[],
        };
        let key = self.key(field);
        let mut items = Vec::new();
        for (i, element) in elements.iter().enumerate() {
            match element {
                Json::Null => {}
                Json::Object(values) => items.push(SettingValues {
                    path: format!("{key}[{i}]"),
                    values,
                    schema,
                }),
                other => return Err(self.mismatch(&format!("{field}[{i}]"), "an object", other)),
            }
        }
        Ok(items)
    }

    /// The non-blank strings of a list of strings, untrimmed; empty when unset. `null` elements
    /// are skipped.
    pub fn strings(&self, field: &str) -> Result<Vec<&'a str>, RenderError> {
        let elements = match self.get(field) {
            Json::Null => return Ok(Vec::new()),
            Json::Array(elements) => elements,
            other => return Err(self.mismatch(field, "a list", other)),
        };
        let mut found = Vec::new();
        for (i, element) in elements.iter().enumerate() {
            match element {
                Json::String(s) if !s.trim().is_empty() => found.push(s.as_str()),
                Json::String(_) | Json::Null => {}
                other => return Err(self.mismatch(&format!("{field}[{i}]"), "a string", other)),
            }
        }
        Ok(found)
    }

    /// The non-blank `item_field` strings of the elements of list `field`, untrimmed.
    pub fn item_strings(&self, field: &str, item_field: &str) -> Result<Vec<&'a str>, RenderError> {
        let mut found = Vec::new();
        for item in self.items(field)? {
            let value = item.str(item_field)?;
            if !value.trim().is_empty() {
                found.push(value);
            }
        }
        Ok(found)
    }

    /// An object value such as a timer, read without defaults; `None` when unset.
    pub fn object(&self, field: &str) -> Result<Option<SettingValues<'a>>, RenderError> {
        match self.get(field) {
            Json::Null => Ok(None),
            Json::Object(values) => Ok(Some(SettingValues {
                path: self.key(field),
                values,
                schema: &[],
            })),
            other => Err(self.mismatch(field, "an object", other)),
        }
    }
}
