//! `NixBuilder` with the real nix, offline, on a generated project whose `thymis` and `nixpkgs`
//! inputs are the stub flakes (`--override-input` as a builder setting): lock, update, build the
//! project, a config's system and image assembler at a commit, evaluate; failures, cancellation,
//! refused references; and what every nix call is given (caches, builders, access tokens).

mod common;

use std::path::Path;
use std::time::Duration;

use common::isolate_git_config;
use common::nix_stub::{host_arch, unique_nonce_definition, NixStub};
use serde_json::json;
use thymis::build::{BuildError, Builder, FlakeProject, NixBuilder, NixSettings};
use thymis::module::ModuleRegistry;
use thymis::repository::{GitRepository, RenderOptions, Repository};
use thymis::state::{Config, ModuleSettings, State, DEVICE_MODULE_TYPE};
use thymis::task::{CommandOutcome, CommandRunner, CommandSpec, DirectRunner, RunError};

struct Fixture {
    dir: tempfile::TempDir,
    repo: GitRepository,
    builder: NixBuilder,
    project: FlakeProject,
}

/// A committed project with one Raspberry Pi config whose Custom Nix module says `nix`.
fn fixture(nix: &str) -> Fixture {
    isolate_git_config();
    let dir = tempfile::tempdir().unwrap();
    let registry = ModuleRegistry::with_builtins();
    let mut state = State::default();
    state.configs.push(Config {
        display_name: "Pi".into(),
        identifier: "pi".into(),
        modules: vec![
            ModuleSettings::new(DEVICE_MODULE_TYPE)
                .with("device_type", json!("raspberry-pi-4"))
                .with("device_name", json!("pi")),
            ModuleSettings::new("thymis_controller.modules.whatever.WhateverModule")
                .with("settings", json!(nix)),
        ],
        tags: vec![],
        extra: Default::default(),
    });
    let mut repo = GitRepository::open_or_init(
        &dir.path().join("repository"),
        &registry,
        RenderOptions::default(),
    )
    .unwrap();
    repo.save_state(&state, &registry).unwrap();
    repo.commit("Add pi", None).unwrap();
    let stub = NixStub::new_in(dir.path()).unwrap();
    let builder = NixBuilder::new(NixSettings {
        substituters: Some(vec![]),
        override_inputs: stub.input_overrides(),
        ..NixSettings::default()
    });
    let project = FlakeProject {
        repo_path: repo.root().to_path_buf(),
        access_tokens: None,
    };
    Fixture {
        dir,
        repo,
        builder,
        project,
    }
}

fn head(repo: &Path) -> String {
    common::git(repo, &["rev-parse", "HEAD"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_update_build_and_evaluate_with_the_real_nix() {
    let f = fixture(&unique_nonce_definition());
    let run = DirectRunner::default();
    let lock = f.repo.root().join("flake.lock");

    f.builder.lock(&run, &f.project).await.unwrap();
    assert!(lock.exists());
    f.builder.update(&run, &f.project).await.unwrap();
    let locked: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(locked["nodes"]["nixpkgs"]["locked"]["type"], "path");

    let out = f.dir.path().join("project-result");
    let result = f
        .builder
        .build_project(&run, &f.project, &out)
        .await
        .unwrap();
    let systems: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert!(systems["pi"].as_str().unwrap().contains("nixos-system-pi"));

    let commit = head(f.repo.root());
    let system = f
        .builder
        .build_system(
            &run,
            &f.project,
            "pi",
            &commit,
            &f.dir.path().join("system"),
        )
        .await
        .unwrap();
    assert!(system.join("bin/switch-to-configuration").is_file());
    assert_eq!(system.to_str(), systems["pi"].as_str());

    let assembler = f
        .builder
        .build_image_builder(
            &run,
            &f.project,
            "pi",
            &commit,
            host_arch(),
            &f.dir.path().join("assembler"),
        )
        .await
        .unwrap();
    assert!(assembler.is_file(), "an executable script");

    let name = f
        .builder
        .evaluate(
            &run,
            &f.project,
            Some(&commit),
            "nixosConfigurations.pi.config.system.build.toplevel.name",
        )
        .await
        .unwrap();
    assert_eq!(name, json!("nixos-system-pi"));
    let names = f
        .builder
        .evaluate(&run, &f.project, None, "nixosConfigurations")
        .await;
    assert!(
        matches!(names, Err(BuildError::Failed { .. })),
        "configurations are not JSON: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_reports_nix_errors_and_cancellation_stops_nix() {
    let f = fixture("environment.etc.motd.text = missingThing;");
    let run = DirectRunner::default();
    let err = f
        .builder
        .build_project(&run, &f.project, &f.dir.path().join("r"))
        .await
        .unwrap_err();
    let BuildError::Failed { reason, errors } = err else {
        panic!("not a build failure: {err:?}");
    };
    assert!(
        reason.contains("undefined variable 'missingThing'"),
        "{reason}"
    );
    let error = &errors[0];
    assert!(
        error.file.as_deref().unwrap().contains("/hosts/pi/"),
        "{error:?}"
    );
    assert!(error.line.is_some() && error.column.is_some(), "{error:?}");

    // A `throw` names its position too (Nix 2.8 gives it only with --show-trace).
    let f = fixture("thymis.config.motd = throw \"no motd here\";");
    let err = f
        .builder
        .build_project(&run, &f.project, &f.dir.path().join("r"))
        .await
        .unwrap_err();
    let BuildError::Failed { reason, errors } = err else {
        panic!("not a build failure: {err:?}");
    };
    assert!(reason.contains("no motd here"), "{reason}");
    assert!(
        errors[0].file.as_deref().unwrap().contains("/hosts/pi/"),
        "{:?}",
        errors[0]
    );

    let slow = fixture(&format!(
        "thymis.stub.buildSeconds = 60; {}",
        unique_nonce_definition()
    ));
    let run = DirectRunner::default();
    let cancel = run.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let err = slow
        .builder
        .build_project(&run, &slow.project, &slow.dir.path().join("r"))
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Cancelled), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn references_that_would_change_the_flake_reference_are_refused() {
    let f = fixture("");
    let run = DirectRunner::default();
    let commit = head(f.repo.root());
    let out = f.dir.path().join("x");
    for (id, rev) in [
        ("pi\"; x", commit.as_str()),
        ("", commit.as_str()),
        ("pi", "HEAD"),
        ("pi", "0123"),
        ("pi", "zz23456789012345678901234567890123456789"),
    ] {
        let err = f
            .builder
            .build_system(&run, &f.project, id, rev, &out)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BuildError::Invalid { .. }),
            "{id} {rev}: {err:?}"
        );
    }
    let err = f
        .builder
        .build_image_builder(&run, &f.project, "pi", &commit, "mips", &out)
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Invalid { .. }));
}

/// Records the commands instead of running them.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<CommandSpec>>);

#[async_trait::async_trait]
impl CommandRunner for Recorder {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutcome, RunError> {
        self.0.lock().unwrap().push(spec);
        Ok(CommandOutcome {
            exit_code: Some(0),
            ..CommandOutcome::default()
        })
    }
}

#[tokio::test]
async fn every_nix_call_gets_the_settings_and_the_access_tokens() {
    let builder = NixBuilder::new(NixSettings {
        binary: "/opt/nix/bin/nix".into(),
        options: vec![("max-jobs".into(), "4".into())],
        substituters: None,
        builders: Some("ssh://builder aarch64-linux".into()),
        override_inputs: vec![("nixpkgs".into(), "path:/srv/nixpkgs".into())],
    });
    let project = FlakeProject {
        repo_path: "/srv/project".into(),
        access_tokens: Some("access-tokens = github.com=ghp_secret".into()),
    };
    let recorder = Recorder::default();
    builder.lock(&recorder, &project).await.unwrap();
    builder.update(&recorder, &project).await.unwrap();
    let _ = builder
        .evaluate(&recorder, &project, None, "nixosConfigurations")
        .await;
    let specs = recorder.0.lock().unwrap();
    assert_eq!(specs.len(), 3);
    for spec in specs.iter() {
        let args = spec.args.join(" ");
        assert_eq!(spec.program, Path::new("/opt/nix/bin/nix"));
        assert_eq!(spec.cwd.as_deref(), Some(Path::new("/srv/project")));
        assert!(spec.nix_log);
        assert!(args.contains("--log-format internal-json"), "{args}");
        assert!(
            args.contains("--option extra-substituters https://cache.thymis.io"),
            "{args}"
        );
        assert!(
            args.contains("--option builders ssh://builder aarch64-linux"),
            "{args}"
        );
        assert!(args.contains("--option max-jobs 4"), "{args}");
        assert!(
            args.contains("--override-input nixpkgs path:/srv/nixpkgs"),
            "{args}"
        );
        assert!(
            !args.contains("ghp_secret"),
            "tokens never appear in arguments"
        );
        let config = spec
            .env
            .iter()
            .find(|(name, _)| name == "NIX_CONFIG")
            .map(|(_, value)| value.as_str())
            .unwrap();
        assert!(config.ends_with("access-tokens = github.com=ghp_secret"));
        assert!(
            !format!("{spec:?}").contains("ghp_secret"),
            "nor in debug output"
        );
    }
}
