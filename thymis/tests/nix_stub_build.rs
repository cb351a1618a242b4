//! The generated project locks, evaluates and builds with the real `nix`, offline, against the
//! stub `nixpkgs` and `thymis` flakes (`tests/fixtures/nix-stub/`), overridden with
//! `--override-input` so that `flake.nix` stays as in production.

mod common;

use std::path::{Path, PathBuf};

use common::nix_stub::{host_arch, run, run_ok, unique_nonce_definition, NixStub};
use common::{git, isolate_git_config};
use serde_json::{json, Value as Json};
use thymis::module::{ModuleRegistry, RenderEnv};
use thymis::repository::{GitRepository, RenderOptions, Repository};
use thymis::state::{Config, ModuleSettings, State, Tag, DEVICE_MODULE_TYPE};

const CUSTOM_NIX: &str = "thymis_controller.modules.whatever.WhateverModule";
const CUSTOM_NIX_FILE: &str = "thymis_controller.modules.whatever.WhateverModule.nix";

/// A rendered, committed project and the stub inputs to build it with.
struct Project {
    dir: tempfile::TempDir,
    repo: GitRepository,
    stub: NixStub,
}

impl Project {
    fn root(&self) -> &Path {
        self.repo.root()
    }

    /// `git+file:<root>?rev=<HEAD>#<attr>`, as the controller builds configs and images.
    fn at_head(&self, attr: &str) -> String {
        let rev = git(self.root(), &["rev-parse", "HEAD"]);
        format!("git+file:{}?rev={rev}#{attr}", self.root().display())
    }

    /// `nix <args> <overrides>` in the project's working tree.
    fn nix(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.stub.nix(args);
        command.current_dir(self.root());
        command
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// Builds `installable` with an out-link and returns the link's target.
    fn build(&self, installable: &str, link: &str) -> PathBuf {
        let out = self.out(link);
        run_ok(&mut self.nix(&["build", installable, "--out-link", out.to_str().unwrap()]));
        out.canonicalize().unwrap()
    }

    /// Builds and expects failure; returns nix's stderr.
    fn build_fails(&self, installable: &str) -> String {
        let output = run(&mut self.nix(&["build", installable, "--no-link"]));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(!output.status.success(), "{installable} built:\n{stderr}");
        stderr
    }

    fn lock_and_commit(&mut self) {
        run_ok(&mut self.nix(&["flake", "lock"]));
        self.repo.commit("Lock the flake", None).unwrap();
    }
}

fn device(device_type: &str, image_format: &str, device_name: &str) -> ModuleSettings {
    let mut module = ModuleSettings::new(DEVICE_MODULE_TYPE)
        .with("device_type", json!(device_type))
        .with("image_format", json!(image_format));
    if !device_name.is_empty() {
        module = module.with("device_name", json!(device_name));
    }
    module
}

fn custom_nix(text: &str) -> ModuleSettings {
    ModuleSettings::new(CUSTOM_NIX).with("settings", json!(text))
}

fn config(id: &str, modules: Vec<ModuleSettings>, tags: &[&str]) -> Config {
    Config {
        display_name: id.to_uppercase(),
        identifier: id.to_owned(),
        modules,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        extra: Default::default(),
    }
}

/// Two configs (a Raspberry Pi 4 with an SD image, an x86 VM) sharing the tag `lobby`, which sets
/// a hostname at priority 90 and the time zone.
fn two_config_state() -> State {
    let mut state = State::default();
    state.tags.push(Tag {
        display_name: "Lobby".into(),
        identifier: "lobby".into(),
        priority: 90,
        modules: vec![
            ModuleSettings::new(DEVICE_MODULE_TYPE).with("device_name", json!("lobby-screen")),
            ModuleSettings::new("thymis_controller.modules.localization.LocalizationModule")
                .with("timezone", json!("Europe/Berlin")),
        ],
        extra: Default::default(),
    });
    state.configs.push(config(
        "pi-screen",
        vec![device("raspberry-pi-4", "sd-card-image", "")],
        &["lobby"],
    ));
    state.configs.push(config(
        "kiosk-vm",
        vec![device("generic-x86_64", "nixos-vm", "kiosk-vm")],
        &["lobby"],
    ));
    state
}

/// Renders `state` into a new git repository and commits it.
fn project(state: &State) -> Project {
    isolate_git_config();
    let dir = tempfile::tempdir().unwrap();
    let registry = ModuleRegistry::with_builtins();
    let problems = state.validate(&registry);
    assert!(
        problems
            .iter()
            .all(|p| p.severity != thymis::state::Severity::Error),
        "{problems:#?}"
    );
    let options = RenderOptions {
        env: RenderEnv {
            base_url: Some("https://thymis.example.com".into()),
            agent_access_url: None,
        },
        ..RenderOptions::default()
    };
    let mut repo =
        GitRepository::open_or_init(&dir.path().join("repository"), &registry, options).unwrap();
    repo.save_state(state, &registry).unwrap();
    repo.commit("Add configs", None).unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    Project { dir, repo, stub }
}

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn toplevel(id: &str) -> String {
    format!("nixosConfigurations.\"{id}\".config.system.build.toplevel")
}

#[test]
fn lock_update_build_project_and_config_at_commit() {
    let mut project = project(&two_config_state());
    let flake = std::fs::read_to_string(project.root().join("flake.nix")).unwrap();
    assert!(flake.contains("thymis.url = \"github:thymis-io/thymis/v0.9\";"));
    assert!(flake.contains("nixpkgs.follows = \"thymis/nixpkgs\";"));

    // Lock: both inputs resolve to the stubs, nixpkgs directly (the override replaces follows).
    run_ok(&mut project.nix(&["flake", "lock"]));
    let lock = read_json(&project.root().join("flake.lock"));
    let nodes = &lock["nodes"];
    assert_eq!(
        nodes["root"]["inputs"],
        json!({"nixpkgs": "nixpkgs", "thymis": "thymis"})
    );
    assert_eq!(nodes["thymis"]["locked"]["type"], "path");
    assert_eq!(
        nodes["thymis"]["locked"]["path"],
        project.stub.thymis_dir().to_str().unwrap()
    );
    assert_eq!(nodes["thymis"]["original"]["type"], "github");
    assert_eq!(
        nodes["nixpkgs"]["locked"]["path"],
        project.stub.nixpkgs_dir().to_str().unwrap()
    );
    // Update rewrites the lock to the same content: the stub copy has fixed mtimes.
    let before = std::fs::read_to_string(project.root().join("flake.lock")).unwrap();
    run_ok(&mut project.nix(&["flake", "update"]));
    let after = std::fs::read_to_string(project.root().join("flake.lock")).unwrap();
    assert_eq!(before, after);

    // "Build project": the working tree's `.#thymis` builds every config.
    let thymis_json = project.build(".#thymis", "thymis");
    let systems = read_json(&thymis_json);
    let systems = systems.as_object().unwrap();
    assert_eq!(
        systems.keys().collect::<Vec<_>>(),
        vec!["kiosk-vm", "pi-screen"]
    );
    let pi = PathBuf::from(systems["pi-screen"].as_str().unwrap());
    assert!(
        pi.to_str().unwrap().ends_with("-nixos-system-lobby-screen"),
        "{pi:?}"
    );
    // Priorities: the tag's hostname (90) applies where the config sets none, the config's
    // (80) wins otherwise; the Device module's settings and the device module defaults merge.
    let pi_config = read_json(&pi.join("thymis-config.json"));
    assert_eq!(pi_config["device-name"], "lobby-screen");
    assert_eq!(pi_config["device-type"], "raspberry-pi-4");
    assert_eq!(pi_config["image-format"], "sd-card-image");
    assert_eq!(pi_config["agent"]["enable"], true);
    assert_eq!(
        pi_config["agent"]["controller-url"],
        "https://thymis.example.com"
    );
    assert_eq!(
        std::fs::read_to_string(pi.join("system")).unwrap(),
        "aarch64-linux\n"
    );

    // Deploy step 1: one config's toplevel at the commit.
    project.repo.commit("Lock the flake", None).unwrap();
    let vm = project.build(&project.at_head(&toplevel("kiosk-vm")), "kiosk-vm");
    assert!(
        vm.to_str().unwrap().ends_with("-nixos-system-kiosk-vm"),
        "{vm:?}"
    );
    assert_eq!(vm, PathBuf::from(systems["kiosk-vm"].as_str().unwrap()));
    assert_eq!(
        read_json(&vm.join("thymis-config.json"))["device-name"],
        "kiosk-vm"
    );
    let modules = std::fs::read_to_string(vm.join("modules")).unwrap();
    for expected in [
        "hosts/kiosk-vm/thymis_controller.modules.thymis.ThymisDevice.nix",
        "tags/lobby/thymis_controller.modules.localization.LocalizationModule.nix",
        "thymis-stub#thymis-device",
        "thymis-stub#thymis-device-generic-x86_64",
        "thymis-stub#thymis-image-nixos-vm",
    ] {
        assert!(
            modules.lines().any(|l| l == expected),
            "{expected}:\n{modules}"
        );
    }
    let switch =
        run(std::process::Command::new(vm.join("bin/switch-to-configuration")).arg("switch"));
    assert!(switch.status.success());
    assert!(String::from_utf8_lossy(&switch.stderr).contains("activating the configuration..."));
}

#[test]
fn image_builder_writes_image_with_secrets() {
    let mut project = project(&two_config_state());
    project.lock_and_commit();
    let builder_attr = |id: &str| {
        format!(
            "nixosConfigurations.\"{id}\".config.system.build.thymis-image-with-secrets-builder-{}",
            host_arch()
        )
    };
    let secrets = project.dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let files = [
        ("thymis-token.txt", "thymis-0123"),
        (
            "thymis-metadata.json",
            "{\"configuration_id\":\"pi-screen\"}",
        ),
        (
            "thymis-controller-ssh-pubkey.txt",
            "ssh-ed25519 AAAA controller",
        ),
        (
            "thymis-secrets-initial.json",
            "{\"secrets\":{},\"secret_infos\":[]}",
        ),
    ];
    for (name, text) in files {
        std::fs::write(secrets.join(name), text).unwrap();
    }
    let images = project.dir.path().join("images");

    for (id, extension) in [("pi-screen", "img"), ("kiosk-vm", "qcow2")] {
        let builder = project.build(
            &project.at_head(&builder_attr(id)),
            &format!("{id}.builder"),
        );
        assert!(builder.is_file(), "{builder:?}");
        let toplevel = project.build(&project.at_head(&toplevel(id)), id);

        // Run outside nix, as the controller does.
        let base = images.join(id);
        run_ok(
            std::process::Command::new(&builder)
                .arg(&secrets)
                .arg(&base),
        );
        let image = images.join(format!("{id}.{extension}"));
        let listing = run_ok(std::process::Command::new("tar").arg("-tf").arg(&image));
        let mut names: Vec<String> = String::from_utf8_lossy(&listing.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "thymis-controller-ssh-pubkey.txt",
                "thymis-metadata.json",
                "thymis-secrets-initial.json",
                "thymis-system-path",
                "thymis-token.txt",
            ]
        );
        let system_path = run_ok(
            std::process::Command::new("tar")
                .arg("-xOf")
                .arg(&image)
                .arg("thymis-system-path"),
        );
        assert_eq!(
            String::from_utf8_lossy(&system_path.stdout).trim_end(),
            toplevel.to_str().unwrap()
        );
        let token = run_ok(
            std::process::Command::new("tar")
                .arg("-xOf")
                .arg(&image)
                .arg("thymis-token.txt"),
        );
        assert_eq!(token.stdout, b"thymis-0123");

        // The archive is deterministic.
        let first = std::fs::read(&image).unwrap();
        run_ok(
            std::process::Command::new(&builder)
                .arg(&secrets)
                .arg(&base),
        );
        assert_eq!(first, std::fs::read(&image).unwrap(), "{id}");
    }
    assert!(images.join("kiosk-vm.start-vm").is_file());
    assert!(!images.join("pi-screen.start-vm").exists());

    // Missing arguments: a clear message and a non-zero exit.
    let builder = project.out("pi-screen.builder");
    let output = run(&mut std::process::Command::new(&builder));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("usage:") && stderr.contains("<secrets_dir> <destination_base>"),
        "{stderr}"
    );
    let output = run(std::process::Command::new(&builder)
        .arg(project.dir.path().join("no-such-dir"))
        .arg(images.join("x")));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[test]
fn custom_nix_with_undefined_variable_fails_naming_file_and_line() {
    let mut state = two_config_state();
    state.configs[1].modules.push(custom_nix(
        "services.foo.enable = true;\nthymis.config.x = undefinedThing;",
    ));
    let mut project = project(&state);
    project.lock_and_commit();
    let attr = project.at_head(&toplevel("kiosk-vm"));
    // Twice: a failure must not turn into a bare "cached failure" on the second build.
    for _ in 0..2 {
        let stderr = project.build_fails(&attr);
        assert!(
            stderr.contains("undefined variable 'undefinedThing'"),
            "{stderr}"
        );
        let location = format!("/hosts/kiosk-vm/{CUSTOM_NIX_FILE}:4:");
        assert!(stderr.contains(&location), "{location} in:\n{stderr}");
    }
    // The other config still builds.
    project.build(&project.at_head(&toplevel("pi-screen")), "pi-screen");
}

#[test]
fn stub_knobs_fail_log_lines_and_build_seconds() {
    let mut state = two_config_state();
    state.configs[0]
        .modules
        .push(custom_nix("thymis.stub.fail = true;"));
    // A nonce: an identical system from an earlier run would not be built again.
    state.configs[1].modules.push(custom_nix(&format!(
        "thymis.stub.logLines = 3;\nthymis.stub.buildSeconds = 1;\n{}",
        unique_nonce_definition()
    )));
    let mut project = project(&state);
    project.lock_and_commit();

    let stderr = project.build_fails(&project.at_head(&toplevel("pi-screen")));
    assert!(stderr.contains("thymis.stub.fail is set"), "{stderr}");
    assert!(stderr.contains("nixos-system-lobby-screen"), "{stderr}");

    // Log lines arrive as internal-json buildLogLine results (type 101).
    let started = std::time::Instant::now();
    let output = run_ok(&mut project.nix(&[
        "build",
        &project.at_head(&toplevel("kiosk-vm")),
        "--no-link",
        "--log-format",
        "internal-json",
    ]));
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let lines: Vec<String> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| line.strip_prefix("@nix "))
        .filter_map(|json| serde_json::from_str::<Json>(json).ok())
        .filter(|event| event["action"] == "result" && event["type"] == 101)
        .map(|event| event["fields"][0].as_str().unwrap_or_default().to_owned())
        .collect();
    for i in 1..=3 {
        let expected = format!("stub build log line {i} of 3");
        assert!(lines.contains(&expected), "{expected} in {lines:#?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l == "stub nixos: still building... 1s"),
        "{lines:#?}"
    );
}

/// The stub's module system merges like NixOS where tests depend on it.
#[test]
fn stub_module_system_merges_like_nixos() {
    let module = r#"{ config, lib, pkgs, inputs, options, modulesPath, greeting, ... }:
{
  options.thymis.test.declared = lib.mkOption { type = lib.types.str; default = "from option default"; };
  config = lib.mkMerge [
    {
      _module.args.greeting = "hello";
      thymis.config.list = lib.mkAfter [ "last" ];
      thymis.config.conditional = lib.mkIf (config.thymis.config.device-type == "generic-x86_64") "x86";
      thymis.config.skipped = lib.mkIf false "never";
      thymis.config.greeting = greeting;
      thymis.config.system = pkgs.stdenv.system;
      thymis.config.forced = lib.mkForce "forced";
      thymis.config.declared = config.thymis.test.declared;
      thymis.config.nested = lib.mkOverride 90 { a = 1; };
    }
    (lib.mkIf true {
      thymis.config.list = lib.mkBefore [ "first" ];
      thymis.config.forced = "plain";
      thymis.config.nested.b = 2;
    })
  ];
}"#;
    let mut state = two_config_state();
    state.configs[1].modules.push(custom_nix(module));
    state.configs[1]
        .modules
        .push(custom_nix("thymis.config.list = [ \"middle\" ];"));
    state.configs[0].modules.push(custom_nix(
        "thymis.config.device-type = lib.mkOverride 80 \"clash\";",
    ));
    let project = project(&state);

    // What the toplevel writes to thymis-config.json.
    let output = run_ok(&mut project.nix(&[
        "eval",
        "--raw",
        ".#nixosConfigurations.\"kiosk-vm\".config.system.build.toplevel.thymisConfig",
    ]));
    let value: Json = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["list"], json!(["first", "middle", "last"]));
    assert_eq!(value["conditional"], "x86");
    assert!(value.get("skipped").is_none(), "{value}");
    assert_eq!(value["greeting"], "hello");
    assert_eq!(value["system"], "x86_64-linux");
    assert_eq!(value["forced"], "forced");
    assert_eq!(value["declared"], "from option default");
    assert_eq!(value["nested"], json!({"a": 1, "b": 2}));

    // Two definitions at the winning priority conflict, naming both files.
    let output = run(&mut project.nix(&[
        "eval",
        "--json",
        ".#nixosConfigurations.\"pi-screen\".config.thymis.config.device-type",
    ]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("The option `thymis.config.device-type' has conflicting definition values")
            && stderr.contains("hosts/pi-screen/thymis_controller.modules.thymis.ThymisDevice.nix")
            && stderr.contains(&format!("hosts/pi-screen/{CUSTOM_NIX_FILE}")),
        "{stderr}"
    );
}

/// The golden project (every built-in module) builds against the stubs: each generated module
/// is imported, called and has its top-level attributes forced.
#[test]
fn golden_project_builds_with_every_builtin_module() {
    let text = std::fs::read_to_string(common::tests_dir("fixtures/state/project.json")).unwrap();
    let mut state = State::from_json_str(&text).unwrap().0;
    // Its external repositories cannot be fetched offline.
    state.repositories.clear();
    let mut project = project(&state);
    project.lock_and_commit();
    let systems = read_json(&project.build(".#thymis", "thymis"));
    let ids: Vec<&String> = systems.as_object().unwrap().keys().collect();
    assert_eq!(ids, vec!["kitchen-vm", "lobby-pi-1", "warehouse-gate"]);
    let lobby = PathBuf::from(systems["lobby-pi-1"].as_str().unwrap());
    let modules = std::fs::read_to_string(lobby.join("modules")).unwrap();
    assert!(
        modules.contains("tags/lobby-screens/thymis_controller.modules.kiosk.Kiosk.nix"),
        "{modules}"
    );
}
