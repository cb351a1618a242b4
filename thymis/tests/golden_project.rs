//! A whole project (several configs and tags, external repositories, every kind of module)
//! rendered and compared with golden files; every generated Nix file must parse with rnix and
//! with Nix itself, and the flake's wiring is evaluated with stand-in inputs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{assert_golden, assert_nix_parses, tests_dir};
use thymis::module::{ModuleRegistry, RenderEnv};
use thymis::repository::{DiskMirror, ProjectRenderer, RenderOptions};
use thymis::state::State;

fn project_state() -> State {
    let text = std::fs::read_to_string(tests_dir("fixtures/state/project.json")).unwrap();
    State::from_json_str(&text).unwrap().0
}

fn options() -> RenderOptions {
    RenderOptions {
        thymis_url: "github:thymis-io/thymis/v0.9".into(),
        env: RenderEnv {
            base_url: Some("https://thymis.example.com".into()),
            agent_access_url: None,
        },
    }
}

fn files_under(root: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn project_matches_golden_files_and_parses() {
    let registry = ModuleRegistry::with_builtins();
    let state = project_state();
    let problems = state.validate(&registry);
    assert!(problems.is_empty(), "fixture is valid: {problems:#?}");

    let dir = tempfile::tempdir().unwrap();
    let files = ProjectRenderer::new()
        .render(&state, &registry, &options())
        .unwrap();
    DiskMirror::default().sync(dir.path(), &files).unwrap();

    let rendered = files_under(dir.path());
    let golden_root = tests_dir("golden/project");
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        let _ = std::fs::remove_dir_all(&golden_root);
    }
    for (path, text) in &rendered {
        assert_golden(&golden_root.join(path), text);
        if path.ends_with(".nix") {
            thymis::nix::check_syntax(text).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_nix_parses(&dir.path().join(path));
        }
    }
    let golden = files_under(&golden_root);
    assert_eq!(
        golden.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "the golden project has exactly the rendered files"
    );
    // Two Custom Nix instances in one config get two files.
    assert!(rendered
        .contains_key("hosts/lobby-pi-1/thymis_controller.modules.whatever.WhateverModule.nix"));
    assert!(rendered
        .contains_key("hosts/lobby-pi-1/thymis_controller.modules.whatever.WhateverModule-2.nix"));
    // A tag without modules still has its folder (the flake reads it).
    assert!(rendered.contains_key("tags/empty/.gitkeep"));
}

#[test]
fn flake_inputs_keep_every_inputs_follows_entry() {
    let files = ProjectRenderer::new()
        .render(
            &project_state(),
            &ModuleRegistry::with_builtins(),
            &options(),
        )
        .unwrap();
    let flake = files.get("flake.nix").unwrap();
    assert!(
        flake.contains("acme_modules.inputs.nixpkgs.follows = \"nixpkgs\";"),
        "{flake}"
    );
    assert!(
        flake.contains("acme_modules.inputs.thymis.follows = \"thymis\";"),
        "{flake}"
    );
    assert!(
        flake.contains("extra-tools.url = \"github:example/extra-tools/v1.2\";"),
        "{flake}"
    );
    assert!(
        flake.contains("inputs@{ self, thymis, nixpkgs, acme_modules, extra-tools, ... }:"),
        "{flake}"
    );
}

#[test]
fn input_names_that_are_not_identifiers_are_rejected_clearly() {
    let mut state = project_state();
    let repo = state.repositories["extra-tools"].clone();
    state.repositories.insert("2nd repo".into(), repo);
    let err = ProjectRenderer::new()
        .render(&state, &ModuleRegistry::with_builtins(), &options())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "flake input name `2nd repo` is not a Nix identifier (letters, digits, `_`, `-`, `'`; not starting with a digit)"
    );
    let problems = state.validate(&ModuleRegistry::with_builtins());
    assert!(
        problems
            .iter()
            .any(|p| p.path == "$.repositories.\"2nd repo\""),
        "{problems:#?}"
    );
}

/// Evaluates the generated flake's outputs function with stand-in `nixpkgs` and `thymis`
/// inputs: each config must get exactly its own module files plus those of its tags.
#[test]
fn flake_outputs_collect_host_and_tag_modules() {
    let dir = tempfile::tempdir().unwrap();
    let files = ProjectRenderer::new()
        .render(
            &project_state(),
            &ModuleRegistry::with_builtins(),
            &options(),
        )
        .unwrap();
    DiskMirror::default().sync(dir.path(), &files).unwrap();
    let expr = format!(
        r#"
        let
          flake = import {root}/flake.nix;
          lib = {{
            mapAttrsToList = f: attrs: map (n: f n attrs.${{n}}) (builtins.attrNames attrs);
            filterAttrs = pred: attrs: builtins.listToAttrs (builtins.concatMap (n: if pred n attrs.${{n}} then [ {{ name = n; value = attrs.${{n}}; }} ] else [ ]) (builtins.attrNames attrs));
            hasSuffix = suffix: s: let ls = builtins.stringLength s; lx = builtins.stringLength suffix; in ls >= lx && builtins.substring (ls - lx) lx s == suffix;
            genAttrs = names: f: builtins.listToAttrs (map (n: {{ name = n; value = f n; }}) names);
            nixosSystem = args: {{ modules = map (m: if builtins.isPath m then baseNameOf m else m) args.modules; }};
          }};
          nixpkgs = {{ inherit lib; legacyPackages = {{ }}; }};
          thymis = {{ nixosModules.thymis-device = "thymis-device"; }};
          outputs = flake.outputs {{ self = {{ }}; inherit nixpkgs thymis; acme_modules = {{ }}; extra-tools = {{ }}; }};
        in builtins.mapAttrs (name: c: c.modules) outputs.nixosConfigurations
        "#,
        root = dir.path().display()
    );
    let modules = common::nix_eval_json(&expr);
    let expected = serde_json::json!({
        "kitchen-vm": [
            "thymis_controller.modules.bash.BashModule.nix",
            "thymis_controller.modules.thymis.ThymisDevice.nix",
            "thymis_controller.modules.security.SecurityAccessModule.nix",
            "thymis_controller.modules.whatever.WhateverModule.nix",
            "thymis-device"
        ],
        "lobby-pi-1": [
            "thymis_controller.modules.files.FilesModule.nix",
            "thymis_controller.modules.networking.NetworkingModule.nix",
            "thymis_controller.modules.thymis.ThymisDevice.nix",
            "thymis_controller.modules.whatever.WhateverModule-2.nix",
            "thymis_controller.modules.whatever.WhateverModule.nix",
            "thymis_controller.modules.kiosk.Kiosk.nix",
            "thymis_controller.modules.localization.LocalizationModule.nix",
            "thymis_controller.modules.security.SecurityAccessModule.nix",
            "thymis_controller.modules.whatever.WhateverModule.nix",
            "thymis-device"
        ],
        "warehouse-gate": [
            "thymis_controller.modules.oci_container.OCIContainers.nix",
            "thymis_controller.modules.python.PythonModule.nix",
            "thymis_controller.modules.thymis.ThymisDevice.nix",
            "thymis-device"
        ]
    });
    assert_eq!(modules, expected);
}

/// Two instances of one module type get their own files and, for services, their own units.
#[test]
fn second_instances_get_their_own_file_and_service() {
    let mut state = project_state();
    let bash = state.configs[1].modules[1].clone();
    state.configs[1].modules.push(bash);
    let files = ProjectRenderer::new()
        .render(&state, &ModuleRegistry::with_builtins(), &options())
        .unwrap();
    let first = files
        .get("hosts/kitchen-vm/thymis_controller.modules.bash.BashModule.nix")
        .unwrap();
    let second = files
        .get("hosts/kitchen-vm/thymis_controller.modules.bash.BashModule-2.nix")
        .unwrap();
    assert!(
        first.contains("systemd.services.thymis-bash-service-hosts-kitchen-vm = {"),
        "{first}"
    );
    assert!(
        second.contains("systemd.services.thymis-bash-service-hosts-kitchen-vm-2 = {"),
        "{second}"
    );
    assert!(
        second.contains("systemd.timers.thymis-bash-service-hosts-kitchen-vm-2 = {"),
        "{second}"
    );
}

#[test]
fn reserved_and_unfinished_inputs() {
    let registry = ModuleRegistry::with_builtins();
    let mut state = project_state();
    let repo = state.repositories["extra-tools"].clone();
    state.repositories.insert("builtins".into(), repo);
    let err = ProjectRenderer::new()
        .render(&state, &registry, &options())
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("flake input name `builtins` is reserved"),
        "{err}"
    );
    let problems = state.validate(&registry);
    assert!(
        problems
            .iter()
            .any(|p| p.path == "$.repositories.builtins"
                && p.severity == thymis::state::Severity::Error),
        "{problems:#?}"
    );

    // An entry the user has not finished (no url, no follows) stays out of the flake.
    let mut state = project_state();
    state
        .repositories
        .insert("new-repo-1".into(), thymis::state::Repo::default());
    let files = ProjectRenderer::new()
        .render(&state, &registry, &options())
        .unwrap();
    let flake = files.get("flake.nix").unwrap();
    assert!(!flake.contains("new-repo-1"), "{flake}");
}
