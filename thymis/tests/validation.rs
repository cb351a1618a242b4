//! Validation reports every problem at once, each with the JSON path it concerns.

use serde_json::json;
use thymis::module::ModuleRegistry;
use thymis::state::{Problem, Severity, State};

fn problems_of(doc: serde_json::Value) -> Vec<Problem> {
    let (state, _) = State::from_json_value(doc).unwrap();
    state.validate(&ModuleRegistry::with_builtins())
}

fn errors(problems: &[Problem]) -> Vec<(String, String)> {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect()
}

const DEVICE: &str = "thymis_controller.modules.thymis.ThymisDevice";

#[test]
fn a_broken_state_lists_every_problem_with_its_path() {
    let problems = problems_of(json!({
        "version": "0.0.9",
        "repositories": {
            "good": {"url": "github:acme/mods", "api_key_secret": "not-a-uuid"},
            "bad url": {"url": "nonsense:://", "inputs_follows": {"1x": "nixpkgs"}}
        },
        "tags": [
            {"displayName": "T", "identifier": "screens", "priority": 90, "modules": [
                {"type": DEVICE, "settings": {"device_type": "raspberry-pi-4"}}
            ]},
            {"displayName": "T2", "identifier": "screens", "priority": 90, "modules": []}
        ],
        "configs": [
            {"displayName": "A", "identifier": "a/../b", "tags": ["screens", "missing"], "modules": [
                {"type": DEVICE, "settings": {"device_type": "raspberry-pi-4", "image_format": "nixos-vm", "colour": "red"}},
                {"type": "thymis_controller.modules.kiosk.Kiosk", "settings": {"volume": "loud", "enable_vnc": 1}},
                {"type": "thymis_controller.modules.security.SecurityAccessModule", "settings": {"password_secret": "123"}},
                {"type": "thymis_controller.modules.whatever.WhateverModule", "settings": {"settings": "a = 1;\nb = ;"}}
            ]},
            {"displayName": "B", "identifier": "b", "tags": [], "modules": []},
            {"displayName": "C", "identifier": "b", "tags": [], "modules": [
                {"type": DEVICE, "settings": {}}, {"type": DEVICE, "settings": {}}
            ]}
        ]
    }));
    let found = errors(&problems);
    let expected: Vec<(&str, &str)> = vec![
        ("$.repositories.good.api_key_secret", "secret reference `not-a-uuid` is not a UUID"),
        ("$.repositories.\"bad url\"", "flake input name `bad url` is not a Nix identifier"),
        ("$.repositories.\"bad url\".url", ""),
        ("$.repositories.\"bad url\".inputs_follows", "`1x` is not a Nix identifier"),
        ("$.tags[1].identifier", "identifier `screens` is also used by tags[0]"),
        ("$.configs[0].identifier", "identifier `a/../b` cannot be used as a folder name"),
        ("$.configs[2].identifier", "identifier `b` is also used by configs[1]"),
        ("$.configs[0].tags[1]", "tag `missing` does not exist"),
        ("$.configs[0].modules[0].settings.image_format", "`nixos-vm` is not allowed when device_type is `raspberry-pi-4`; allowed: sd-card-image"),
        ("$.configs[0].modules[1].settings.volume", "expected an integer, found the string \"loud\""),
        ("$.configs[0].modules[1].settings.enable_vnc", "expected true or false, found the number 1"),
        ("$.configs[0].modules[2].settings.password_secret", "secret reference `123` is not a UUID"),
        ("$.configs[0].modules[3].settings.settings", "Nix syntax error at line 2, column 5"),
        ("$.configs[1].modules", "a config needs exactly one Device module, found 0"),
        ("$.configs[2].modules", "a config needs exactly one Device module, found 2"),
    ];
    for (path, message) in &expected {
        assert!(
            found
                .iter()
                .any(|(p, m)| p == path && m.starts_with(message)),
            "missing {path}: {message}\nfound: {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "no other errors: {found:#?}");
    let warnings: Vec<(&str, &str)> = problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        vec![
            (
                "$.tags[0].modules[0].settings.device_type",
                "`device_type` is meant to be set on configs; on a tag it applies to every config with the tag"
            ),
            (
                "$.configs[0].modules[0].settings.colour",
                "unknown setting `colour` for module Device; it is ignored"
            ),
        ]
    );
}

#[test]
fn the_upstream_example_is_valid() {
    let text = include_str!("fixtures/state/example-0.0.9.json");
    let (state, _) = State::from_json_str(text).unwrap();
    let problems = state.validate(&ModuleRegistry::with_builtins());
    // Only the extension module from the external repository is unknown here.
    assert_eq!(
        problems,
        vec![Problem::warning(
            "$.configs[0].modules[4].type",
            "unknown module type `acme_modules_py.sensor.SensorModule` (is the repository that provides it loaded?); it is skipped".into()
        )]
    );
}

#[test]
fn upstream_editor_quirks_are_warnings_not_errors() {
    let problems = problems_of(json!({
        "version": "0.0.9",
        "configs": [{"displayName": "A", "identifier": "Büro-1", "tags": [], "modules": [
            {"type": DEVICE, "settings": {}},
            {"type": "thymis_controller.modules.kiosk.Kiosk", "settings": {"volume": "40", "enable_vnc": ""}}
        ]}]
    }));
    assert!(errors(&problems).is_empty(), "{problems:#?}");
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "$.configs[0].identifier",
            "$.configs[0].modules[1].settings.volume",
            "$.configs[0].modules[1].settings.enable_vnc"
        ]
    );
}

/// Old upstream projects load; what validation still finds in them is what the old data
/// really contains (each checked against the fixture by hand).
#[test]
fn every_migration_fixture_loads_and_validates() {
    let expected_errors: [&[&str]; 8] = [
        &["$.configs[1].tags[0]"], // a tag that was deleted in 0.0.1
        &[],
        &[],
        &[],
        &[],
        &[],
        &["$.configs[1].modules"], // a device without its Device module
        &[],
    ];
    for (i, expected) in expected_errors.iter().enumerate() {
        let version = i + 1;
        let path = format!(
            "{}/tests/fixtures/migrations/state-0.0.{version}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let (state, from) = State::from_json_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(from, format!("0.0.{version}"));
        let problems = state.validate(&ModuleRegistry::with_builtins());
        let errors: Vec<&str> = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(&errors, expected, "0.0.{version}: {problems:#?}");
    }
}
