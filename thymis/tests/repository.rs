//! `GitRepository` against real git: every effect is checked with the `git` CLI.

mod common;

use std::fs;

use common::{git, tests_dir};
use serde_json::json;
use thymis::module::ModuleRegistry;
use thymis::repository::{
    Author, ChangeKind, GitRepository, RenderOptions, Repository, RepositoryError,
};
use thymis::state::{Config, ModuleSettings, State, DEVICE_MODULE_TYPE};

fn config(id: &str) -> Config {
    Config {
        display_name: id.to_uppercase(),
        identifier: id.to_owned(),
        modules: vec![ModuleSettings::new(DEVICE_MODULE_TYPE)
            .with("device_type", json!("generic-x86_64"))
            .with("device_name", json!(id))],
        tags: vec![],
        extra: Default::default(),
    }
}

fn open(dir: &std::path::Path) -> GitRepository {
    common::isolate_git_config();
    GitRepository::open_or_init(
        dir,
        &ModuleRegistry::with_builtins(),
        RenderOptions::default(),
    )
    .unwrap()
}

fn alice() -> Author {
    Author {
        name: "Alice Admin".into(),
        email: "alice@example.com".into(),
    }
}

#[test]
fn init_creates_master_with_initial_commit_and_identity() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repository");
    let repo = open(&root);
    assert_eq!(git(&root, &["branch", "--show-current"]), "master");
    assert_eq!(git(&root, &["log", "--format=%s"]), "Initial commit");
    assert_eq!(git(&root, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&root, &["ls-files"]),
        "flake.nix\nstate.json",
        "an empty project tracks its flake and state"
    );
    assert_eq!(
        git(&root, &["config", "--local", "user.name"]),
        "Thymis Controller"
    );
    assert_eq!(repo.history(10).unwrap().len(), 1);
    // Opening again changes nothing and adds no commit.
    drop(repo);
    let again = open(&root);
    assert_eq!(again.history(10).unwrap().len(), 1);
    assert!(again.status().unwrap().is_empty());
}

#[test]
fn save_status_commit_history_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let registry = ModuleRegistry::with_builtins();
    let mut repo = open(root);

    let mut state = State::default();
    state.configs.push(config("pi-1"));
    let report = repo.save_state(&state, &registry).unwrap();
    assert!(!report.flake_changed);
    assert_eq!(
        report.files.written,
        vec![
            "hosts/pi-1/.gitkeep",
            "hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix",
            "state.json"
        ]
    );
    // Staged for nix: git sees the new files as added to the index.
    let porcelain = git(root, &["status", "--porcelain"]);
    assert!(
        porcelain.contains("A  hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix"),
        "{porcelain}"
    );

    let status = repo.status().unwrap();
    let paths: Vec<&str> = status.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "hosts/pi-1/.gitkeep",
            "hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix",
            "state.json"
        ]
    );
    let device = &status[1];
    assert_eq!(device.kind, ChangeKind::Added);
    assert!(
        device
            .diff
            .contains("+  thymis.config.device-name = lib.mkOverride 80 \"pi-1\";"),
        "{}",
        device.diff
    );

    let first = repo.commit("Add pi-1", Some(&alice())).unwrap();
    assert_eq!(
        git(root, &["log", "-1", "--format=%an <%ae>|%s"]),
        "Alice Admin <alice@example.com>|Add pi-1"
    );
    assert_eq!(
        git(root, &["log", "-1", "--format=%cn"]),
        "Thymis Controller"
    );
    assert_eq!(git(root, &["status", "--porcelain"]), "");

    // A change to one setting rewrites exactly that module file and state.json.
    state.configs[0].modules[0]
        .settings
        .insert("device_name".into(), json!("pi-one"));
    state.configs.push(config("pi-2"));
    let report = repo.save_state(&state, &registry).unwrap();
    assert!(report
        .files
        .written
        .contains(&"hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix".to_owned()));
    assert!(!report
        .files
        .written
        .contains(&"hosts/pi-1/.gitkeep".to_owned()));
    let second = repo.commit("Rename pi-1, add pi-2", None).unwrap();
    assert_eq!(
        git(root, &["log", "-1", "--format=%an"]),
        "Thymis Controller"
    );

    // History is newest first and agrees with git.
    let history = repo.history(10).unwrap();
    let shas: Vec<&str> = history.iter().map(|c| c.sha.as_str()).collect();
    assert_eq!(shas.join("\n"), git(root, &["rev-list", "HEAD"]));
    assert_eq!(history[0], second);
    assert_eq!(history[1], first);
    assert_eq!(
        history[0].short_sha,
        git(root, &["rev-parse", "--short=7", "HEAD"])
    );
    assert_eq!(history[0].date, git(root, &["log", "-1", "--format=%ci"]));
    assert_eq!(repo.history(1).unwrap().len(), 1);

    // Diff between the two commits agrees with git diff --name-status.
    let diff = repo.diff(Some(&first.sha), Some(&second.sha)).unwrap();
    let ours: Vec<String> = diff
        .iter()
        .map(|c| {
            let letter = match c.kind {
                ChangeKind::Added => "A",
                ChangeKind::Modified => "M",
                ChangeKind::Deleted => "D",
            };
            format!("{letter}\t{}", c.path)
        })
        .collect();
    assert_eq!(
        ours.join("\n"),
        git(root, &["diff", "--name-status", &first.sha, &second.sha])
    );
    let state_diff = diff.iter().find(|c| c.path == "state.json").unwrap();
    assert!(
        state_diff.diff.contains("+      \"identifier\": \"pi-2\","),
        "{}",
        state_diff.diff
    );
    // From the empty tree to HEAD lists every tracked file as added.
    let everything = repo.diff(None, None).unwrap();
    assert!(everything.iter().all(|c| c.kind == ChangeKind::Added));
    assert_eq!(everything.len(), git(root, &["ls-files"]).lines().count());

    assert!(matches!(
        repo.diff(Some("no-such-ref"), None),
        Err(RepositoryError::UnknownCommit(_))
    ));
    assert!(matches!(
        repo.diff(Some("HEAD..HEAD~1"), None),
        Err(RepositoryError::UnknownCommit(_))
    ));
    assert!(matches!(
        repo.commit("nothing changed", None),
        Err(RepositoryError::NothingToCommit)
    ));
    assert!(matches!(
        repo.commit("  ", None),
        Err(RepositoryError::EmptyMessage)
    ));
}

#[test]
fn removed_configs_lose_their_files_and_artifacts_stay() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let registry = ModuleRegistry::with_builtins();
    let mut repo = open(root);
    fs::create_dir_all(root.join("artifacts")).unwrap();
    fs::write(root.join("artifacts/logo.png"), [0x89, b'P', b'N', b'G']).unwrap();

    let mut state = State::default();
    state.configs.push(config("pi-1"));
    state.configs.push(config("pi-2"));
    repo.save_state(&state, &registry).unwrap();
    repo.commit("two configs", None).unwrap();
    assert!(git(root, &["ls-files"]).contains("artifacts/logo.png"));

    state.configs.remove(0);
    let report = repo.save_state(&state, &registry).unwrap();
    assert_eq!(
        report
            .files
            .deleted
            .iter()
            .filter(|p| p.starts_with("hosts/pi-1/"))
            .count(),
        2
    );
    assert!(!root.join("hosts/pi-1").exists());
    assert!(root.join("artifacts/logo.png").exists());
    let porcelain = git(root, &["status", "--porcelain"]);
    assert!(porcelain.contains("D  hosts/pi-1/.gitkeep"), "{porcelain}");
}

#[test]
fn revert_restores_an_old_tree_as_a_new_commit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let registry = ModuleRegistry::with_builtins();
    let mut repo = open(root);

    let mut state = State::default();
    state.configs.push(config("pi-1"));
    repo.save_state(&state, &registry).unwrap();
    let one = repo.commit("one config", None).unwrap();
    state.configs.push(config("pi-2"));
    repo.save_state(&state, &registry).unwrap();
    fs::create_dir_all(root.join("artifacts")).unwrap();
    fs::write(root.join("artifacts/new.txt"), "later").unwrap();
    let two = repo.commit("two configs", None).unwrap();

    // Uncommitted work is never thrown away.
    state.configs.push(config("pi-3"));
    repo.save_state(&state, &registry).unwrap();
    assert!(matches!(
        repo.revert_to(&one.sha, None),
        Err(RepositoryError::Dirty)
    ));
    state.configs.pop();
    repo.save_state(&state, &registry).unwrap();
    assert!(repo.status().unwrap().is_empty());

    let reverted = repo.revert_to(&one.sha, Some(&alice())).unwrap();
    assert_eq!(
        reverted.message,
        format!("Revert to {}: one config", one.short_sha)
    );
    assert_eq!(
        git(root, &["rev-parse", "HEAD^{tree}"]),
        git(root, &["rev-parse", &format!("{}^{{tree}}", one.sha)])
    );
    assert_eq!(git(root, &["rev-parse", "HEAD~1"]), two.sha);
    assert_eq!(git(root, &["status", "--porcelain"]), "");
    assert!(!root.join("hosts/pi-2").exists());
    assert!(!root.join("artifacts/new.txt").exists());
    let loaded = repo.load_state().unwrap();
    assert_eq!(loaded.configs.len(), 1);

    // Saving the reverted state afterwards changes nothing (the mirror re-read the disk).
    let report = repo.save_state(&loaded, &registry).unwrap();
    assert!(
        report.files.written.is_empty() && report.files.deleted.is_empty(),
        "{report:?}"
    );

    assert!(matches!(
        repo.revert_to(&reverted.sha, None),
        Err(RepositoryError::NothingToCommit)
    ));
    assert!(matches!(
        repo.revert_to("0000000000000000000000000000000000000000", None),
        Err(RepositoryError::UnknownCommit(_))
    ));
}

#[test]
fn old_state_is_migrated_on_open_and_left_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(open(root));
    let old = fs::read_to_string(tests_dir("fixtures/migrations/state-0.0.8.json")).unwrap();
    fs::write(root.join("state.json"), &old).unwrap();
    git(root, &["add", "state.json"]);
    git(root, &["commit", "-qm", "upstream project"]);

    let repo = open(root);
    let state = repo.load_state().unwrap();
    assert_eq!(state.version, "0.0.9");
    let on_disk: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("state.json")).unwrap()).unwrap();
    assert_eq!(on_disk["version"], "0.0.9");
    let status = repo.status().unwrap();
    assert!(status
        .iter()
        .any(|c| c.path == "state.json" && c.kind == ChangeKind::Modified));
    assert_eq!(git(root, &["log", "-1", "--format=%s"]), "upstream project");
}

#[test]
fn broken_state_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    drop(open(root));
    fs::write(
        root.join("state.json"),
        "{\"version\": \"0.0.9\", \"configs\": [1]}",
    )
    .unwrap();
    let err = GitRepository::open_or_init(
        root,
        &ModuleRegistry::with_builtins(),
        RenderOptions::default(),
    )
    .err()
    .expect("a broken state.json is refused");
    assert_eq!(
        err.to_string(),
        "state.json: $.configs[0]: invalid type: integer `1`, expected struct Config"
    );
    // Nothing was overwritten.
    assert_eq!(
        fs::read_to_string(root.join("state.json")).unwrap(),
        "{\"version\": \"0.0.9\", \"configs\": [1]}"
    );
}

/// A module from an external repository may be registered after the first save (upstream
/// discovers them after rendering with the built-ins); the next save must render it.
#[test]
fn modules_registered_later_are_rendered_by_the_next_save() {
    use thymis::module::{Module, ModuleInfo, Setting, SettingType, Text};

    struct Motd(ModuleInfo);
    impl Module for Motd {
        fn info(&self) -> &ModuleInfo {
            &self.0
        }
    }
    let motd = || {
        Motd(ModuleInfo {
            type_name: "acme_modules.motd.Motd".into(),
            display_name: Text::plain("Message of the day"),
            description: None,
            category: None,
            icon: None,
            icon_dark: None,
            settings: vec![
                Setting::new("text", Text::plain("Text"), SettingType::String)
                    .nix_attr("users.motd"),
            ],
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let builtins = ModuleRegistry::with_builtins();
    let mut repo = open(root);
    let mut state = State::default();
    let mut pi = config("pi-1");
    pi.modules
        .push(ModuleSettings::new("acme_modules.motd.Motd").with("text", json!("Hello")));
    state.configs.push(pi);
    repo.save_state(&state, &builtins).unwrap();
    let file = root.join("hosts/pi-1/acme_modules.motd.Motd.nix");
    assert!(!file.exists(), "unknown modules are skipped");

    let mut extended = builtins.clone();
    extended.register(motd()).unwrap();
    repo.save_state(&state, &extended).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("users.motd = lib.mkOverride 80 \"Hello\";"),
        "{text}"
    );
    assert!(
        git(root, &["status", "--porcelain"]).contains("A  hosts/pi-1/acme_modules.motd.Motd.nix")
    );

    // Type strings become file names, so only dotted paths are accepted.
    let mut bad = motd();
    bad.0.type_name = "../../etc/evil".into();
    let err = extended.clone().register(bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module type `../../etc/evil` must be a dotted path of letters, digits and `_`, such as `acme.modules.Sensor`"
    );
    assert!(
        extended.clone().register(motd()).is_err(),
        "a type registers once"
    );
}

#[test]
fn files_changed_outside_are_repaired_after_forgetting_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let registry = ModuleRegistry::with_builtins();
    let mut repo = open(root);
    let mut state = State::default();
    state.configs.push(config("pi-1"));
    repo.save_state(&state, &registry).unwrap();
    let file = root.join("hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix");
    let original = fs::read_to_string(&file).unwrap();

    fs::write(&file, "{ }").unwrap();
    fs::remove_file(root.join("hosts/pi-1/.gitkeep")).unwrap();
    // Saves trust their memory of the disk (that is what makes them fast) …
    let report = repo.save_state(&state, &registry).unwrap();
    assert!(report.files.written.is_empty());
    // … until told that something else changed the working tree.
    repo.forget_disk_contents();
    let report = repo.save_state(&state, &registry).unwrap();
    assert_eq!(
        report.files.written,
        vec![
            "hosts/pi-1/.gitkeep",
            "hosts/pi-1/thymis_controller.modules.thymis.ThymisDevice.nix"
        ]
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), original);
}

#[test]
fn author_names_git_would_refuse_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let registry = ModuleRegistry::with_builtins();
    let mut repo = open(root);
    let mut state = State::default();
    state.configs.push(config("pi-1"));
    repo.save_state(&state, &registry).unwrap();
    let author = Author {
        name: "Mallory <evil>\nInjected".into(),
        email: "<>".into(),
    };
    repo.commit("odd author", Some(&author)).unwrap();
    assert_eq!(
        git(root, &["log", "-1", "--format=%an|%ae"]),
        "Mallory evilInjected|user@thymis.local"
    );
}

#[test]
fn temporary_files_are_ignored_by_git() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut repo = open(root);
    fs::write(root.join(".thymis-leftover.tmp"), "half written").unwrap();
    assert_eq!(git(root, &["status", "--porcelain"]), "");
    assert!(matches!(
        repo.commit("nothing", None),
        Err(RepositoryError::NothingToCommit)
    ));
}
