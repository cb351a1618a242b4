//! Checks that a stored setting value fits its setting type.

use serde_json::Value as Json;

use super::{Setting, SettingType};
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
        (SettingType::SystemdTimer(_), Json::Null) => {}
        // Upstream's editor stores numbers typed into int fields as strings, and leaves
        // untouched bool fields as ""; both render, so they are only worth a warning.
        (SettingType::Int, Json::String(text)) if text.trim().parse::<i64>().is_ok() => problems
            .push(Problem::warning(
                path,
                format!("the integer is stored as the string {text:?}"),
            )),
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
