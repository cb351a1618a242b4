//! Every example runs to completion.

use std::process::Command;

#[test]
fn render_project_example_commits_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_render_project"))
        .arg(dir.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("committed"), "{stdout}");
    assert!(dir
        .path()
        .join("hosts/reception-screen/thymis_controller.modules.kiosk.Kiosk.nix")
        .exists());
    assert!(dir
        .path()
        .join("tags/berlin/thymis_controller.modules.localization.LocalizationModule.nix")
        .exists());
}
