//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod netns;
pub mod nix_stub;
pub mod sshd;

/// Asserts that Nix itself (Debian's `nix-instantiate`) parses the file.
pub fn assert_nix_parses(path: &Path) {
    let output = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(path)
        .output()
        .expect("nix-instantiate must be installed (apt-get install nix-bin)");
    assert!(
        output.status.success(),
        "nix-instantiate --parse {} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Evaluates a Nix expression strictly and returns its JSON value.
pub fn nix_eval_json(expr: &str) -> serde_json::Value {
    // Through a file: large expressions exceed the argument length limit.
    let file = tempfile::Builder::new().suffix(".nix").tempfile().unwrap();
    std::fs::write(file.path(), expr).unwrap();
    let output = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json"])
        .arg(file.path())
        .output()
        .expect("nix-instantiate must be installed (apt-get install nix-bin)");
    assert!(
        output.status.success(),
        "nix-instantiate --eval failed:\n{}\nexpression:\n{expr}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("nix printed JSON")
}

/// Compares `actual` with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
pub fn assert_golden(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with UPDATE_GOLDEN=1 to create it",
            golden.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs from the rendered output (UPDATE_GOLDEN=1 rewrites it)",
        golden.display()
    );
}

/// `thymis/tests/<relative>`
pub fn tests_dir(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(relative)
}

/// Hides the machine's global and system git configuration from libgit2 and the git CLI, so
/// tests see what a fresh service account sees.
pub fn isolate_git_config() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let empty = std::env::temp_dir().join("thymis-tests-no-git-config");
        std::fs::create_dir_all(&empty).unwrap();
        for level in [
            git2::ConfigLevel::Global,
            git2::ConfigLevel::XDG,
            git2::ConfigLevel::System,
        ] {
            // SAFETY: called once, before any test in this process opens a repository.
            unsafe { git2::opts::set_search_path(level, &empty) }.unwrap();
        }
    });
}

/// Runs git in `dir` and returns its trimmed stdout; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git must be installed");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}
