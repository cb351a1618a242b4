//! Migrations of upstream Thymis's project `state.json` from every older schema
//! version (`0.0.1` … `0.0.8`) up to [`LATEST_VERSION`].
//!
//! The steps work on untyped JSON because older documents do not fit the
//! current typed model. Each step mirrors one upstream `to_0_0_N` migration,
//! including its lossy-but-harmless quirks, but reports malformed input as a
//! [`MigrationError`] carrying a JSON path instead of failing halfway.
//! Renamed keys keep their position and removals keep the order of the other
//! keys, so a migrated file diffs cleanly against the original.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

/// The schema version this library reads and writes.
pub const LATEST_VERSION: &str = "0.0.9";

/// Every version `migrate` accepts, oldest first.
pub const KNOWN_VERSIONS: [&str; 9] = [
    "0.0.1", "0.0.2", "0.0.3", "0.0.4", "0.0.5", "0.0.6", "0.0.7", "0.0.8", "0.0.9",
];

/// Why a state document could not be migrated.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MigrationError {
    /// The document's top level is not a JSON object.
    #[error("state document is not a JSON object")]
    NotAnObject,
    /// The document has no top-level `version` field.
    #[error("state document has no `version` field")]
    MissingVersion,
    /// The document's `version` is not one of [`KNOWN_VERSIONS`].
    #[error("unknown state version `{0}` (known versions: {known})", known = KNOWN_VERSIONS.join(", "))]
    UnknownVersion(String),
    /// A value inside a document of a known version does not have the shape
    /// that version prescribes.
    #[error("malformed state document at `{path}`: expected {expected}, found {found}")]
    Malformed {
        /// Where the offending value is, e.g. `$.devices[2].tags`.
        path: String,
        /// What the migration needed there, e.g. `a list`.
        expected: &'static str,
        /// What was there instead, e.g. `an object` or that the field is missing.
        found: &'static str,
    },
}

/// Brings a state document of any known version up to [`LATEST_VERSION`].
/// Returns the migrated document and the version it started at.
///
/// A document already at [`LATEST_VERSION`] is returned unchanged.
pub fn migrate(doc: Value) -> Result<(Value, String), MigrationError> {
    let Value::Object(mut state) = doc else {
        return Err(MigrationError::NotAnObject);
    };
    let from = match state.get("version") {
        None => return Err(MigrationError::MissingVersion),
        Some(Value::String(version)) => version.clone(),
        Some(other) => {
            return Err(malformed(
                &JsonPath::Root.key("version"),
                "a version string",
                Some(other),
            ))
        }
    };
    let start = KNOWN_VERSIONS
        .iter()
        .position(|known| *known == from)
        .ok_or_else(|| MigrationError::UnknownVersion(from.clone()))?;

    for (step, target) in STEPS.iter().zip(KNOWN_VERSIONS.iter().skip(1)).skip(start) {
        step(&mut state)?;
        state.insert("version".to_owned(), Value::String((*target).to_owned()));
    }
    Ok((Value::Object(state), from))
}

type Object = Map<String, Value>;
type Step = fn(&mut Object) -> Result<(), MigrationError>;

/// `STEPS[i]` migrates a document from `KNOWN_VERSIONS[i]` to
/// `KNOWN_VERSIONS[i + 1]`; `migrate` sets the new version afterwards.
const STEPS: [Step; 8] = [
    to_0_0_2, to_0_0_3, to_0_0_4, to_0_0_5, to_0_0_6, to_0_0_7, to_0_0_8, to_0_0_9,
];

const THYMIS_DEVICE: &str = "thymis_controller.modules.thymis.ThymisDevice";
const NETWORKING: &str = "thymis_controller.modules.networking.NetworkingModule";
const LOCALIZATION: &str = "thymis_controller.modules.localization.LocalizationModule";
const SECURITY: &str = "thymis_controller.modules.security.SecurityAccessModule";
const FILES: &str = "thymis_controller.modules.files.FilesModule";

/// Settings that 0.0.9 moved off the old monolithic `ThymisDevice` module,
/// with the module type each one moved to.
const MOVED_DEVICE_SETTINGS: [(&str, &str); 13] = [
    ("wifi_ssid", NETWORKING),
    ("wifi_password", NETWORKING),
    ("wifi_auth", NETWORKING),
    ("wifi_auth_protocols", NETWORKING),
    ("static_networks", NETWORKING),
    ("nameservers", NETWORKING),
    ("timezone", LOCALIZATION),
    ("time_servers", LOCALIZATION),
    ("password_secret", SECURITY),
    ("authorized_keys", SECURITY),
    ("security_pki_certificates", SECURITY),
    ("secrets", FILES),
    ("artifacts", FILES),
];

/// 0.0.2: tags and devices get identifiers, `hostname` becomes `targetHost`,
/// and module types lose the pre-rename `app.` package prefix.
fn to_0_0_2(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    for key in ["tags", "devices"] {
        state.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    }

    let tags_path = root.key("tags");
    for_each_object(
        list_field(state, "tags", &root)?,
        &tags_path,
        |tag, path| {
            if !rename_key(tag, "name", "displayName") {
                return Err(malformed(&path.key("name"), "the tag's name", None));
            }
            add_legacy_identifier(tag, path)?;
            rewrite_module_type_prefix(tag, path, "app.", "thymis_controller.")
        },
    )?;

    let devices_path = root.key("devices");
    for_each_object(
        list_field(state, "devices", &root)?,
        &devices_path,
        |device, path| {
            add_legacy_identifier(device, path)?;
            if !rename_key(device, "hostname", "targetHost") {
                return Err(malformed(
                    &path.key("hostname"),
                    "the device's hostname",
                    None,
                ));
            }
            rewrite_module_type_prefix(device, path, "app.", "thymis_controller.")
        },
    )
}

/// Derives `identifier` from `displayName` exactly as upstream's 0.0.2
/// migration did (lower-case, spaces to dashes, nothing else), so existing
/// `hosts/<identifier>` folders and tag references keep their names.
fn add_legacy_identifier(item: &mut Object, path: &JsonPath<'_>) -> Result<(), MigrationError> {
    let identifier = str_field(item, "displayName", path)?
        .to_lowercase()
        .replace(' ', "-");
    insert_after(item, "displayName", "identifier", Value::String(identifier));
    Ok(())
}

/// 0.0.3: introduces `repositories`. Upstream overwrites any existing value,
/// which loses nothing in practice because 0.0.2 had no repositories.
fn to_0_0_3(state: &mut Object) -> Result<(), MigrationError> {
    state.insert("repositories".to_owned(), Value::Object(Map::new()));
    Ok(())
}

/// 0.0.4: every repository gets an (empty) `inputs_follows` map.
fn to_0_0_4(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    let repos_path = root.key("repositories");
    for (name, repo) in object_field(state, "repositories", &root)?.iter_mut() {
        let repo = expect_object(repo, &repos_path.key(name))?;
        repo.insert("inputs_follows".to_owned(), Value::Object(Map::new()));
    }
    Ok(())
}

/// 0.0.5: devices refer to tags by identifier instead of display name.
/// Names without a matching tag are kept as they are.
fn to_0_0_5(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    // Later tags win on duplicate display names, as with upstream's dict.
    let mut identifier_by_name: HashMap<String, String> = HashMap::new();
    let tags_path = root.key("tags");
    for_each_object(
        list_field(state, "tags", &root)?,
        &tags_path,
        |tag, path| {
            let name = str_field(tag, "displayName", path)?.to_owned();
            let identifier = str_field(tag, "identifier", path)?.to_owned();
            identifier_by_name.insert(name, identifier);
            Ok(())
        },
    )?;

    let devices_path = root.key("devices");
    for_each_object(
        list_field(state, "devices", &root)?,
        &devices_path,
        |device, path| {
            let tags_path = path.key("tags");
            for (index, tag) in list_field(device, "tags", path)?.iter_mut().enumerate() {
                let Value::String(name) = tag else {
                    return Err(malformed(&tags_path.index(index), "a tag name", Some(tag)));
                };
                if let Some(identifier) = identifier_by_name.get(name.as_str()) {
                    *name = identifier.clone();
                }
            }
            Ok(())
        },
    )
}

/// 0.0.6: modules moved from `thymis_controller.models.modules` to
/// `thymis_controller.modules`, and setting values lose their
/// `{"value": …}` wrapper.
fn to_0_0_6(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    for key in ["tags", "devices"] {
        let items_path = root.key(key);
        for_each_object(list_field(state, key, &root)?, &items_path, |item, path| {
            rewrite_module_type_prefix(
                item,
                path,
                "thymis_controller.models.modules.",
                "thymis_controller.modules.",
            )?;
            for_each_module(item, path, |module, path| {
                let settings_path = path.key("settings");
                for (name, value) in object_field(module, "settings", path)?.iter_mut() {
                    let setting_path = settings_path.key(name);
                    let unwrapped = match value {
                        Value::Object(wrapper) => match wrapper.get_mut("value") {
                            Some(inner) => inner.take(),
                            None => {
                                return Err(malformed(
                                    &setting_path.key("value"),
                                    "the setting's value",
                                    None,
                                ))
                            }
                        },
                        other => {
                            return Err(malformed(
                                &setting_path,
                                "an object {\"value\": …}",
                                Some(other),
                            ))
                        }
                    };
                    *value = unwrapped;
                }
                Ok(())
            })
        })?;
    }
    Ok(())
}

/// 0.0.7: devices no longer store a deployment target host.
fn to_0_0_7(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    let devices_path = root.key("devices");
    for_each_object(
        list_field(state, "devices", &root)?,
        &devices_path,
        |device, _| {
            device.shift_remove("targetHost");
            Ok(())
        },
    )
}

/// 0.0.8: `devices` is renamed to `configs`.
fn to_0_0_8(state: &mut Object) -> Result<(), MigrationError> {
    list_field(state, "devices", &JsonPath::Root)?;
    rename_key(state, "devices", "configs");
    Ok(())
}

/// 0.0.9: the monolithic `ThymisDevice` module is split; its networking,
/// localization, security and file settings move to dedicated modules, in
/// configs and in tags alike. Missing `configs`, `tags` or `modules` are
/// tolerated here, as upstream does.
fn to_0_0_9(state: &mut Object) -> Result<(), MigrationError> {
    let root = JsonPath::Root;
    for key in ["configs", "tags"] {
        let items_path = root.key(key);
        let Some(items) = optional_list_field(state, key, &root)? else {
            continue;
        };
        for_each_object(items, &items_path, |item, path| match optional_list_field(
            item, "modules", path,
        )? {
            Some(modules) => split_device_modules(modules, &path.key("modules")),
            None => Ok(()),
        })?;
    }
    Ok(())
}

/// Moves the settings listed in [`MOVED_DEVICE_SETTINGS`] out of every
/// `ThymisDevice` module in `modules`. They are merged into the first module
/// of the target type when there is one; otherwise new modules are appended,
/// in the order their first setting was encountered.
fn split_device_modules(
    modules: &mut Vec<Value>,
    path: &JsonPath<'_>,
) -> Result<(), MigrationError> {
    let mut moved: Vec<(&'static str, String, Value)> = Vec::new();
    for (index, module) in modules.iter_mut().enumerate() {
        let module_path = path.index(index);
        let module = expect_object(module, &module_path)?;
        if str_field(module, "type", &module_path)? != THYMIS_DEVICE {
            continue;
        }
        let Some(settings) = optional_object_field(module, "settings", &module_path)? else {
            continue;
        };
        let to_move: Vec<(String, &'static str)> = settings
            .keys()
            .filter_map(|key| moved_setting_target(key).map(|target| (key.clone(), target)))
            .collect();
        for (key, target) in to_move {
            if let Some(value) = settings.shift_remove(&key) {
                moved.push((target, key, value));
            }
        }
    }

    let mut created: Vec<(&'static str, Object)> = Vec::new();
    for (target, key, value) in moved {
        // Like upstream, only the first module of the target type receives settings.
        let existing = modules
            .iter_mut()
            .enumerate()
            .find_map(|(index, module)| match module {
                Value::Object(module)
                    if module.get("type").and_then(Value::as_str) == Some(target) =>
                {
                    Some((index, module))
                }
                _ => None,
            });
        match existing {
            Some((index, module)) => {
                let settings = module
                    .entry("settings")
                    .or_insert_with(|| Value::Object(Map::new()));
                let module_path = path.index(index);
                expect_object(settings, &module_path.key("settings"))?.insert(key, value);
            }
            None => match created.iter_mut().find(|(t, _)| *t == target) {
                Some((_, settings)) => {
                    settings.insert(key, value);
                }
                None => {
                    let mut settings = Map::new();
                    settings.insert(key, value);
                    created.push((target, settings));
                }
            },
        }
    }

    for (target, settings) in created {
        let mut module = Map::new();
        module.insert("type".to_owned(), Value::String(target.to_owned()));
        module.insert("settings".to_owned(), Value::Object(settings));
        modules.push(Value::Object(module));
    }
    Ok(())
}

fn moved_setting_target(key: &str) -> Option<&'static str> {
    MOVED_DEVICE_SETTINGS
        .iter()
        .find(|(moved, _)| *moved == key)
        .map(|(_, target)| *target)
}

/// Replaces `old_prefix` by `new_prefix` at the start of the `type` of every
/// module of `owner` (a tag or device); other types are left alone.
fn rewrite_module_type_prefix(
    owner: &mut Object,
    path: &JsonPath<'_>,
    old_prefix: &str,
    new_prefix: &str,
) -> Result<(), MigrationError> {
    for_each_module(owner, path, |module, path| {
        let renamed = str_field(module, "type", path)?
            .strip_prefix(old_prefix)
            .map(|rest| format!("{new_prefix}{rest}"));
        if let Some(renamed) = renamed {
            module.insert("type".to_owned(), Value::String(renamed));
        }
        Ok(())
    })
}

/// Calls `f` on every module object in the required `modules` list of `owner`.
fn for_each_module<F>(owner: &mut Object, path: &JsonPath<'_>, f: F) -> Result<(), MigrationError>
where
    F: FnMut(&mut Object, &JsonPath<'_>) -> Result<(), MigrationError>,
{
    let modules_path = path.key("modules");
    for_each_object(list_field(owner, "modules", path)?, &modules_path, f)
}

/// Calls `f` on every element of `items`, each of which must be an object.
fn for_each_object<F>(
    items: &mut [Value],
    path: &JsonPath<'_>,
    mut f: F,
) -> Result<(), MigrationError>
where
    F: FnMut(&mut Object, &JsonPath<'_>) -> Result<(), MigrationError>,
{
    for (index, item) in items.iter_mut().enumerate() {
        let item_path = path.index(index);
        f(expect_object(item, &item_path)?, &item_path)?;
    }
    Ok(())
}

/// Renames `old` to `new` in place, keeping the entry's position; an existing
/// `new` entry is replaced. Returns whether `old` was present.
fn rename_key(map: &mut Object, old: &str, new: &str) -> bool {
    if !map.contains_key(old) {
        return false;
    }
    if old != new {
        for (key, value) in std::mem::take(map) {
            if key == old {
                map.insert(new.to_owned(), value);
            } else if key != new {
                map.insert(key, value);
            }
        }
    }
    true
}

/// Sets `key` to `value`, placing a new entry right after `anchor` (or at the
/// end when `anchor` is absent); an existing entry keeps its position.
fn insert_after(map: &mut Object, anchor: &str, key: &str, value: Value) {
    if map.contains_key(key) || !map.contains_key(anchor) {
        map.insert(key.to_owned(), value);
        return;
    }
    let mut pending = Some(value);
    for (existing, existing_value) in std::mem::take(map) {
        let is_anchor = existing == anchor;
        map.insert(existing, existing_value);
        if is_anchor {
            if let Some(value) = pending.take() {
                map.insert(key.to_owned(), value);
            }
        }
    }
}

fn expect_object<'v>(
    value: &'v mut Value,
    path: &JsonPath<'_>,
) -> Result<&'v mut Object, MigrationError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(malformed(path, "an object", Some(other))),
    }
}

fn str_field<'v>(
    map: &'v Object,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<&'v str, MigrationError> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s),
        other => Err(malformed(&path.key(key), "a string", other)),
    }
}

fn list_field<'v>(
    map: &'v mut Object,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<&'v mut Vec<Value>, MigrationError> {
    match map.get_mut(key) {
        Some(Value::Array(items)) => Ok(items),
        other => Err(malformed(&path.key(key), "a list", other.as_deref())),
    }
}

fn object_field<'v>(
    map: &'v mut Object,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<&'v mut Object, MigrationError> {
    match map.get_mut(key) {
        Some(Value::Object(object)) => Ok(object),
        other => Err(malformed(&path.key(key), "an object", other.as_deref())),
    }
}

fn optional_list_field<'v>(
    map: &'v mut Object,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<Option<&'v mut Vec<Value>>, MigrationError> {
    match map.get_mut(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(malformed(&path.key(key), "a list", Some(other))),
    }
}

fn optional_object_field<'v>(
    map: &'v mut Object,
    key: &str,
    path: &JsonPath<'_>,
) -> Result<Option<&'v mut Object>, MigrationError> {
    match map.get_mut(key) {
        None => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(other) => Err(malformed(&path.key(key), "an object", Some(other))),
    }
}

/// Builds a [`MigrationError::Malformed`]; `found` is `None` for a missing field.
fn malformed(path: &JsonPath<'_>, expected: &'static str, found: Option<&Value>) -> MigrationError {
    let found = match found {
        None => "nothing (the field is missing)",
        Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "a list",
        Some(Value::Object(_)) => "an object",
    };
    MigrationError::Malformed {
        path: path.to_string(),
        expected,
        found,
    }
}

/// A location in the document, built up while descending and only rendered
/// (as `$.devices[2].tags`) when an error is reported.
#[derive(Clone, Copy)]
enum JsonPath<'a> {
    Root,
    Key(&'a JsonPath<'a>, &'a str),
    Index(&'a JsonPath<'a>, usize),
}

impl<'a> JsonPath<'a> {
    fn key<'b>(&'b self, key: &'b str) -> JsonPath<'b>
    where
        'a: 'b,
    {
        JsonPath::Key(self, key)
    }

    fn index<'b>(&'b self, index: usize) -> JsonPath<'b>
    where
        'a: 'b,
    {
        JsonPath::Index(self, index)
    }
}

impl fmt::Display for JsonPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonPath::Root => f.write_str("$"),
            JsonPath::Key(parent, key) => {
                let plain = key
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if plain {
                    write!(f, "{parent}.{key}")
                } else {
                    // Quote keys that would be ambiguous in dotted form.
                    write!(f, "{parent}[{}]", Value::String((*key).to_owned()))
                }
            }
            JsonPath::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: [(&str, &str, &str); 8] = [
        (
            "0.0.1",
            include_str!("../../tests/fixtures/migrations/state-0.0.1.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.1.expected.json"),
        ),
        (
            "0.0.2",
            include_str!("../../tests/fixtures/migrations/state-0.0.2.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.2.expected.json"),
        ),
        (
            "0.0.3",
            include_str!("../../tests/fixtures/migrations/state-0.0.3.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.3.expected.json"),
        ),
        (
            "0.0.4",
            include_str!("../../tests/fixtures/migrations/state-0.0.4.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.4.expected.json"),
        ),
        (
            "0.0.5",
            include_str!("../../tests/fixtures/migrations/state-0.0.5.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.5.expected.json"),
        ),
        (
            "0.0.6",
            include_str!("../../tests/fixtures/migrations/state-0.0.6.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.6.expected.json"),
        ),
        (
            "0.0.7",
            include_str!("../../tests/fixtures/migrations/state-0.0.7.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.7.expected.json"),
        ),
        (
            "0.0.8",
            include_str!("../../tests/fixtures/migrations/state-0.0.8.json"),
            include_str!("../../tests/fixtures/migrations/state-0.0.8.expected.json"),
        ),
    ];

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).expect("fixture is valid JSON")
    }

    fn malformed_at(path: &str, expected: &'static str, found: &'static str) -> MigrationError {
        MigrationError::Malformed {
            path: path.to_owned(),
            expected,
            found,
        }
    }

    const MISSING: &str = "nothing (the field is missing)";

    #[test]
    fn versions_are_consistent() {
        assert_eq!(KNOWN_VERSIONS.last(), Some(&LATEST_VERSION));
        assert_eq!(STEPS.len() + 1, KNOWN_VERSIONS.len());
    }

    #[test]
    fn every_fixture_migrates_to_its_expected_document() {
        for (version, input, expected) in FIXTURES {
            let input = parse(input);
            assert_eq!(input["version"], version, "fixture version");
            let expected = parse(expected);
            let (migrated, from) = migrate(input).unwrap_or_else(|e| panic!("{version}: {e}"));
            assert_eq!(from, version);
            assert_eq!(migrated, expected, "migrating {version}");
            // Value equality ignores key order, so compare the serialized text too.
            assert_eq!(
                serde_json::to_string_pretty(&migrated).unwrap(),
                serde_json::to_string_pretty(&expected).unwrap(),
                "key order after migrating {version}"
            );
        }
    }

    #[test]
    fn migrating_the_latest_version_is_the_identity() {
        for (_, _, expected) in FIXTURES {
            let doc = parse(expected);
            let (migrated, from) = migrate(doc.clone()).unwrap();
            assert_eq!(from, LATEST_VERSION);
            assert_eq!(
                serde_json::to_string(&migrated).unwrap(),
                serde_json::to_string(&doc).unwrap()
            );
        }
        // Even shapes older steps would reject are untouched at 0.0.9.
        let odd = json!({"version": "0.0.9", "devices": 3, "extra": [1, 2]});
        assert_eq!(migrate(odd.clone()).unwrap(), (odd, "0.0.9".to_owned()));
    }

    #[test]
    fn unknown_version_is_rejected() {
        for version in ["0.0.10", "0.1.0", "", "0.0.1 ", "v0.0.1"] {
            let doc = json!({"version": version, "tags": [], "devices": []});
            assert_eq!(
                migrate(doc),
                Err(MigrationError::UnknownVersion(version.to_owned()))
            );
        }
        let message = MigrationError::UnknownVersion("1.0".into()).to_string();
        assert!(
            message.contains("`1.0`") && message.contains("0.0.1, 0.0.2"),
            "{message}"
        );
    }

    #[test]
    fn missing_or_non_string_version_is_rejected() {
        assert_eq!(
            migrate(json!({"tags": [], "devices": []})),
            Err(MigrationError::MissingVersion)
        );
        assert_eq!(
            migrate(json!({"version": 1})),
            Err(malformed_at("$.version", "a version string", "a number"))
        );
        assert_eq!(
            migrate(json!({"version": null})),
            Err(malformed_at("$.version", "a version string", "null"))
        );
    }

    #[test]
    fn non_object_documents_are_rejected() {
        for doc in [
            json!(null),
            json!([]),
            json!("0.0.9"),
            json!(9),
            json!(true),
        ] {
            assert_eq!(migrate(doc), Err(MigrationError::NotAnObject));
        }
    }

    #[test]
    fn malformed_documents_name_the_offending_path() {
        let cases = [
            (
                json!({"version": "0.0.1", "tags": [], "devices": {}}),
                malformed_at("$.devices", "a list", "an object"),
            ),
            (
                json!({"version": "0.0.6", "tags": [], "devices": [
                    {"displayName": "a", "identifier": "a", "targetHost": "h", "modules": [], "tags": []},
                    {"displayName": "b", "identifier": "b", "targetHost": "h", "modules": [], "tags": []},
                    "not a device"
                ]}),
                malformed_at("$.devices[2]", "an object", "a string"),
            ),
            (
                json!({"version": "0.0.1", "tags": [{"priority": 1, "modules": []}]}),
                malformed_at("$.tags[0].name", "the tag's name", MISSING),
            ),
            (
                json!({"version": "0.0.1", "devices": [{"displayName": "a", "modules": [], "tags": []}]}),
                malformed_at("$.devices[0].hostname", "the device's hostname", MISSING),
            ),
            (
                json!({"version": "0.0.1", "devices": [{"hostname": "h", "displayName": 7, "modules": []}]}),
                malformed_at("$.devices[0].displayName", "a string", "a number"),
            ),
            (
                json!({"version": "0.0.8", "tags": [], "configs": [{"modules": [
                    {"type": THYMIS_DEVICE, "settings": {}},
                    {"settings": {"x": 1}}
                ]}]}),
                malformed_at("$.configs[0].modules[1].type", "a string", MISSING),
            ),
            (
                json!({"version": "0.0.1", "tags": [{"name": "t", "modules": [{"settings": {}}]}]}),
                malformed_at("$.tags[0].modules[0].type", "a string", MISSING),
            ),
            (
                json!({"version": "0.0.5", "tags": [], "devices": [{"modules": [
                    {"type": "x.Y", "settings": {"wifi-ssid": "bare"}}
                ], "tags": []}]}),
                malformed_at(
                    "$.devices[0].modules[0].settings[\"wifi-ssid\"]",
                    "an object {\"value\": …}",
                    "a string",
                ),
            ),
            (
                json!({"version": "0.0.5", "tags": [], "devices": [{"modules": [
                    {"type": "x.Y", "settings": {"a": {"val": 1}}}
                ], "tags": []}]}),
                malformed_at(
                    "$.devices[0].modules[0].settings.a.value",
                    "the setting's value",
                    MISSING,
                ),
            ),
            (
                json!({"version": "0.0.4", "tags": [], "devices": [{"tags": ["ok", ["no"]]}]}),
                malformed_at("$.devices[0].tags[1]", "a tag name", "a list"),
            ),
            (
                json!({"version": "0.0.3", "repositories": {"my repo": "github:a/b"}, "tags": [], "devices": []}),
                malformed_at("$.repositories[\"my repo\"]", "an object", "a string"),
            ),
            (
                json!({"version": "0.0.3", "tags": [], "devices": []}),
                malformed_at("$.repositories", "an object", MISSING),
            ),
            (
                json!({"version": "0.0.7", "tags": []}),
                malformed_at("$.devices", "a list", MISSING),
            ),
            (
                json!({"version": "0.0.8", "configs": [{"modules": [
                    {"type": THYMIS_DEVICE, "settings": [["timezone", "UTC"]]}
                ]}]}),
                malformed_at("$.configs[0].modules[0].settings", "an object", "a list"),
            ),
            (
                json!({"version": "0.0.8", "tags": [{"modules": [
                    {"type": LOCALIZATION, "settings": "none"},
                    {"type": THYMIS_DEVICE, "settings": {"timezone": "UTC"}}
                ]}]}),
                malformed_at("$.tags[0].modules[0].settings", "an object", "a string"),
            ),
            (
                json!({"version": "0.0.8", "configs": null}),
                malformed_at("$.configs", "a list", "null"),
            ),
        ];
        for (doc, expected) in cases {
            assert_eq!(migrate(doc.clone()), Err(expected), "migrating {doc}");
        }
    }

    #[test]
    fn malformed_error_message_is_readable() {
        let err = migrate(json!({"version": "0.0.2", "tags": [], "devices": [{"tags": {}}]}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed state document at `$.devices[0].tags`: expected a list, found an object"
        );
    }

    /// Replaces every value inside every fixture, one at a time, by values of
    /// each JSON kind, and drops every object key: `migrate` must return
    /// (either way) without panicking.
    #[test]
    fn arbitrary_corruption_never_panics() {
        fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, child) in map {
                        let child_at =
                            format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                        out.push(child_at.clone());
                        pointers(child, child_at, out);
                    }
                }
                Value::Array(items) => {
                    for (index, child) in items.iter().enumerate() {
                        let child_at = format!("{at}/{index}");
                        out.push(child_at.clone());
                        pointers(child, child_at, out);
                    }
                }
                _ => {}
            }
        }
        let replacements = [
            json!(null),
            json!(0),
            json!("x"),
            json!([]),
            json!({}),
            json!([{}]),
        ];
        let mut runs = 0;
        for (_, input, _) in FIXTURES {
            let original = parse(input);
            let mut all = Vec::new();
            pointers(&original, String::new(), &mut all);
            for pointer in &all {
                for replacement in &replacements {
                    let mut doc = original.clone();
                    if let Some(slot) = doc.pointer_mut(pointer) {
                        *slot = replacement.clone();
                    }
                    let _ = migrate(doc);
                    runs += 1;
                }
                let (parent, last) = pointer.rsplit_once('/').unwrap();
                let mut doc = original.clone();
                if let Some(Value::Object(map)) = doc.pointer_mut(parent) {
                    map.shift_remove(&last.replace("~1", "/").replace("~0", "~"));
                    let _ = migrate(doc);
                    runs += 1;
                }
            }
        }
        assert!(runs > 1000, "only {runs} corrupted documents were tried");
    }

    #[test]
    fn to_0_0_9_merges_into_existing_modules_in_configs_and_tags() {
        let doc = json!({
            "version": "0.0.8",
            "repositories": {},
            "tags": [{
                "displayName": "Field",
                "identifier": "field",
                "priority": 90,
                "modules": [
                    {"type": THYMIS_DEVICE, "settings": {"nameservers": [{"nameserver": "1.1.1.1"}], "timezone": "UTC"}},
                    {"type": NETWORKING, "settings": {"wifi_ssid": "tagnet"}},
                    {"type": NETWORKING, "settings": {"wifi_ssid": "second instance"}}
                ]
            }],
            "configs": [{
                "displayName": "Pi",
                "identifier": "pi",
                "modules": [
                    {"type": SECURITY},
                    {"type": LOCALIZATION, "settings": {"time_servers": [], "timezone": "Europe/Berlin"}},
                    {"type": THYMIS_DEVICE, "settings": {
                        "device_type": "raspberry-pi-4",
                        "timezone": "Europe/Paris",
                        "secrets": [{"secret": "c3d4e5f6-0000-4000-8000-000000000001", "path": "/run/token"}],
                        "authorized_keys": [{"key": "ssh-ed25519 AAAA"}],
                        "device_name": "pi"
                    }},
                    {"type": THYMIS_DEVICE, "settings": {"wifi_ssid": "from second device module", "artifacts": []}}
                ],
                "tags": ["field"]
            }]
        });
        let expected = json!({
            "version": "0.0.9",
            "repositories": {},
            "tags": [{
                "displayName": "Field",
                "identifier": "field",
                "priority": 90,
                "modules": [
                    {"type": THYMIS_DEVICE, "settings": {}},
                    {"type": NETWORKING, "settings": {"wifi_ssid": "tagnet", "nameservers": [{"nameserver": "1.1.1.1"}]}},
                    {"type": NETWORKING, "settings": {"wifi_ssid": "second instance"}},
                    {"type": LOCALIZATION, "settings": {"timezone": "UTC"}}
                ]
            }],
            "configs": [{
                "displayName": "Pi",
                "identifier": "pi",
                "modules": [
                    {"type": SECURITY, "settings": {"authorized_keys": [{"key": "ssh-ed25519 AAAA"}]}},
                    {"type": LOCALIZATION, "settings": {"time_servers": [], "timezone": "Europe/Paris"}},
                    {"type": THYMIS_DEVICE, "settings": {"device_type": "raspberry-pi-4", "device_name": "pi"}},
                    {"type": THYMIS_DEVICE, "settings": {}},
                    {"type": FILES, "settings": {
                        "secrets": [{"secret": "c3d4e5f6-0000-4000-8000-000000000001", "path": "/run/token"}],
                        "artifacts": []
                    }},
                    {"type": NETWORKING, "settings": {"wifi_ssid": "from second device module"}}
                ],
                "tags": ["field"]
            }]
        });
        let (migrated, from) = migrate(doc).unwrap();
        assert_eq!(from, "0.0.8");
        assert_eq!(
            serde_json::to_string_pretty(&migrated).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }

    #[test]
    fn to_0_0_9_tolerates_missing_lists_and_settings() {
        let doc = json!({"version": "0.0.8", "configs": [
            {"displayName": "No modules"},
            {"modules": [{"type": THYMIS_DEVICE}]}
        ]});
        let (migrated, _) = migrate(doc.clone()).unwrap();
        let mut expected = doc;
        expected["version"] = json!("0.0.9");
        assert_eq!(migrated, expected);
    }

    #[test]
    fn to_0_0_3_overwrites_repositories_and_to_0_0_4_overwrites_inputs_follows() {
        let doc = json!({
            "version": "0.0.2",
            "repositories": {"lost": {"url": "github:a/b"}},
            "tags": [],
            "devices": []
        });
        let (migrated, _) = migrate(doc).unwrap();
        assert_eq!(migrated["repositories"], json!({}));

        let doc = json!({
            "version": "0.0.3",
            "repositories": {"mods": {"url": "github:a/b", "inputs_follows": {"nixpkgs": "nixpkgs"}}},
            "tags": [],
            "devices": []
        });
        let (migrated, _) = migrate(doc).unwrap();
        assert_eq!(
            migrated["repositories"],
            json!({"mods": {"url": "github:a/b", "inputs_follows": {}}})
        );
    }

    #[test]
    fn to_0_0_2_derives_identifiers_like_upstream() {
        let doc = json!({
            "version": "0.0.1",
            "tags": [{"name": "Büro  Ost #1", "priority": 90, "modules": []}],
            "devices": [{"hostname": "h", "displayName": "Kiosk_A.Hall", "modules": [], "tags": []}]
        });
        let (migrated, _) = migrate(doc).unwrap();
        // Only lower-casing and space replacement: no collapsing or sanitising.
        assert_eq!(migrated["tags"][0]["identifier"], "büro--ost-#1");
        assert_eq!(migrated["configs"][0]["identifier"], "kiosk_a.hall");
    }

    #[test]
    fn type_prefixes_are_rewritten_only_at_the_start() {
        let doc = json!({
            "version": "0.0.1",
            "tags": [{"name": "t", "priority": 1, "modules": [
                {"type": "app.models.modules.kiosk.Kiosk", "settings": {}},
                {"type": "myapp.models.modules.x.X", "settings": {}},
                {"type": "app.app.Y", "settings": {}},
                {"type": "acme.thymis_controller.models.modules.Z", "settings": {}}
            ]}]
        });
        let (migrated, _) = migrate(doc).unwrap();
        let types: Vec<&str> = migrated["tags"][0]["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "thymis_controller.modules.kiosk.Kiosk",
                "myapp.models.modules.x.X",
                "thymis_controller.app.Y",
                "acme.thymis_controller.models.modules.Z"
            ]
        );
    }

    #[test]
    fn renames_keep_key_positions() {
        let mut map = Map::new();
        for (k, v) in [("a", 1), ("old", 2), ("new", 3), ("z", 4)] {
            map.insert(k.to_owned(), json!(v));
        }
        assert!(rename_key(&mut map, "old", "new"));
        assert_eq!(
            Value::Object(map.clone()).to_string(),
            r#"{"a":1,"new":2,"z":4}"#
        );
        assert!(!rename_key(&mut map, "missing", "b"));

        insert_after(&mut map, "a", "b", json!(5));
        assert_eq!(
            Value::Object(map.clone()).to_string(),
            r#"{"a":1,"b":5,"new":2,"z":4}"#
        );
        insert_after(&mut map, "a", "z", json!(6));
        assert_eq!(
            Value::Object(map).to_string(),
            r#"{"a":1,"b":5,"new":2,"z":6}"#
        );
    }
}
