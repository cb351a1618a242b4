//! The `check` and `render` commands as users run them.

use std::path::Path;
use std::process::{Command, Output};

fn controller(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_thymis-controller"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../thymis/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_explains_both_commands() {
    let out = controller(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("check") && help.contains("Validate a project's state.json"),
        "{help}"
    );
    assert!(
        help.contains("render") && help.contains("Render a state.json into project files"),
        "{help}"
    );
    let out = controller(&["render", "--help"]);
    assert!(text(&out.stdout).contains("--thymis-url"));
}

#[test]
fn check_accepts_a_valid_project() {
    let out = controller(&["check", &fixture("state/project.json")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("0 error(s), 0 warning(s)"));
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        r#"{"version":"0.0.9","tags":[],"configs":[
            {"displayName":"A","identifier":"a","tags":["nope"],"modules":[]},
            {"displayName":"B","identifier":"a","tags":[],"modules":[
                {"type":"thymis_controller.modules.thymis.ThymisDevice","settings":{"device_type":"toaster"}}]}]}"#,
    )
    .unwrap();
    let out = controller(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for line in [
        "error: $.configs[1].identifier: identifier `a` is also used by configs[0]",
        "error: $.configs[0].modules: a config needs exactly one Device module, found 0",
        "error: $.configs[0].tags[0]: tag `nope` does not exist",
        "error: $.configs[1].modules[0].settings.device_type: `toaster` is not one of the allowed values",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    let json_out = controller(&["check", "--format", "json", path.to_str().unwrap()]);
    let problems: serde_json::Value = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(problems.as_array().unwrap().len(), 4);
    assert_eq!(problems[0]["severity"], "error");
}

#[test]
fn check_migrates_old_versions() {
    let out = controller(&["check", &fixture("migrations/state-0.0.3.json")]);
    assert!(
        text(&out.stderr).contains("state.json is version 0.0.3; it was migrated to 0.0.9"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_gets_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"version\": \"0.0.9\",").unwrap();
    let out = controller(&["check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot be loaded: state.json is not valid JSON: EOF while parsing"),
        "{stderr}"
    );

    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, r#"{"version":"0.0.9","tags":[{"displayName":"T","identifier":"t","priority":"high","modules":[]}]}"#).unwrap();
    let out = controller(&["check", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("error: $.tags[0].priority: invalid type: string \"high\", expected i64"),
        "{stdout}"
    );
    let out = controller(&["check", "--format", "json", wrong.to_str().unwrap()]);
    let problems: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(problems[0]["path"], "$.tags[0].priority");

    let future = dir.path().join("future.json");
    std::fs::write(&future, r#"{"version":"0.1.0"}"#).unwrap();
    let stderr = text(&controller(&["check", future.to_str().unwrap()]).stderr);
    assert!(stderr.contains("0.1.0"), "{stderr}");

    let missing = controller(&["check", "/no/such/state.json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("cannot read /no/such/state.json"));

    let usage = controller(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn render_writes_the_project_and_then_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("project");
    let args = [
        "render",
        &fixture("state/project.json"),
        out_dir.to_str().unwrap(),
        "--base-url",
        "https://thymis.example.com",
    ];
    let out = controller(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("written, 0 deleted"));
    assert!(out_dir.join("flake.nix").exists());
    // lobby-pi-1 sets no controller URL of its own, so --base-url is its fallback.
    let device = std::fs::read_to_string(
        out_dir.join("hosts/lobby-pi-1/thymis_controller.modules.thymis.ThymisDevice.nix"),
    )
    .unwrap();
    assert!(device.contains("thymis.config.agent.controller-url = lib.mkOverride 100 \"https://thymis.example.com\";"), "{device}");
    let flake = std::fs::read_to_string(out_dir.join("flake.nix")).unwrap();
    assert!(
        flake.contains("thymis.url = \"github:thymis-io/thymis/v0.9\";"),
        "{flake}"
    );

    let again = controller(&args);
    assert!(
        text(&again.stdout).contains("(0 written, 0 deleted)"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn render_uses_a_local_thymis_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let checkout = dir.path().join("thymis-checkout");
    std::fs::create_dir(&checkout).unwrap();
    let out_dir = dir.path().join("project");
    let out = Command::new(env!("CARGO_BIN_EXE_thymis-controller"))
        .args([
            "render",
            &fixture("state/project.json"),
            out_dir.to_str().unwrap(),
        ])
        .env("THYMIS_FLAKE_ROOT", &checkout)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flake = std::fs::read_to_string(out_dir.join("flake.nix")).unwrap();
    let expected = format!(
        "thymis.url = \"git+file://{}\";",
        checkout.canonicalize().unwrap().display()
    );
    assert!(flake.contains(&expected), "{flake}");
}

#[test]
fn render_refuses_a_state_with_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(
        &state,
        r#"{"version":"0.0.9","configs":[{"displayName":"A","identifier":"a","tags":[],"modules":[
            {"type":"thymis_controller.modules.thymis.ThymisDevice","settings":{}},
            {"type":"thymis_controller.modules.whatever.WhateverModule","settings":{"settings":"x = {\n  y = 1\n};"}}]}]}"#,
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = controller(&["render", state.to_str().unwrap(), out_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(
            "$.configs[0].modules[1].settings.settings: Nix syntax error at line 3, column 1"
        ),
        "{}",
        text(&out.stdout)
    );
    assert!(!out_dir.exists());
}
