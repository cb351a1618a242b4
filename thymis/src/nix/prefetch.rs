//! Checking that a flake reference can be fetched (`nix flake prefetch`), with the access token
//! of a private repository passed the way Nix expects it.

use std::process::Command;
use std::time::Duration;

use super::flake_ref::FlakeRef;

/// How long a prefetch may take before it is reported as failed.
pub const PREFETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// The `NIX_CONFIG` line giving Nix `token` for `reference`'s host (GitLab project tokens need
/// the `PAT:` prefix), if the reference has a host.
pub fn access_tokens_config(reference: &FlakeRef, token: &str) -> Option<String> {
    let host = reference.token_host()?;
    let value = match reference {
        FlakeRef::GitLab(_) if token.starts_with("glpat-") => format!("PAT:{token}"),
        _ => token.to_owned(),
    };
    Some(format!("access-tokens = {host}={value}"))
}

/// Fetches `url` into the Nix store (`nix flake prefetch --refresh`). The error is Nix's own
/// message.
pub fn prefetch(url: &str, token: Option<&str>) -> Result<(), String> {
    let reference: FlakeRef = url.parse().map_err(|err| format!("{err}"))?;
    let mut command = Command::new("nix");
    command
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
            "prefetch",
            "--refresh",
        ])
        .arg(reference.to_url())
        .env("GIT_TERMINAL_PROMPT", "0");
    // Only indirect references (`nixpkgs`) need the global flake registry; for the rest an empty
    // one spares a download from GitHub (and works offline).
    let _empty_registry = match reference {
        FlakeRef::Indirect(_) => None,
        _ => {
            let file = tempfile::NamedTempFile::new()
                .map_err(|err| format!("cannot create a temporary file: {err}"))?;
            std::fs::write(file.path(), r#"{"flakes":[],"version":2}"#)
                .map_err(|err| format!("cannot write a temporary file: {err}"))?;
            command
                .arg("--option")
                .arg("flake-registry")
                .arg(file.path());
            Some(file)
        }
    };
    if let Some(config) = token.and_then(|t| access_tokens_config(&reference, t)) {
        command.env("NIX_CONFIG", config);
    }
    let output = run_with_timeout(command, PREFETCH_TIMEOUT)?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Nix ends with hints such as "use --show-trace"; the first error line says what failed.
        let message = stderr
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("error:"))
            .or_else(|| stderr.lines().map(str::trim).find(|line| !line.is_empty()))
            .unwrap_or("nix flake prefetch failed");
        Err(message.to_owned())
    }
}

fn run_with_timeout(
    mut command: Command,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run nix: {err}"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "nix flake prefetch took longer than {}s",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(err) => return Err(format!("waiting for nix failed: {err}")),
        }
    }
    child
        .wait_with_output()
        .map_err(|err| format!("reading nix's output failed: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_scoped_to_the_host() {
        let github: FlakeRef = "github:acme/private".parse().unwrap();
        assert_eq!(
            access_tokens_config(&github, "ghp_x").as_deref(),
            Some("access-tokens = github.com=ghp_x")
        );
        let gitlab: FlakeRef = "gitlab:acme/private".parse().unwrap();
        assert_eq!(
            access_tokens_config(&gitlab, "glpat-abc").as_deref(),
            Some("access-tokens = gitlab.com=PAT:glpat-abc")
        );
        let git: FlakeRef = "git+ssh://git@git.example.com/acme/mods.git"
            .parse()
            .unwrap();
        assert_eq!(
            access_tokens_config(&git, "t").as_deref(),
            Some("access-tokens = git.example.com=t")
        );
    }

    /// Runs the real nix against a local git repository (offline).
    #[test]
    fn a_local_git_flake_prefetches_and_a_missing_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("mods");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(repo.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .status()
                .unwrap();
            assert!(status.success());
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "flake.nix"]);
        git(&["commit", "-qm", "init"]);
        let url = format!("git+file://{}", repo.display());
        assert_eq!(prefetch(&url, None), Ok(()));
        let missing = format!("git+file://{}/nowhere", dir.path().display());
        let error = prefetch(&missing, None).unwrap_err();
        assert!(error.starts_with("error:"), "{error}");
        assert!(prefetch("not a url", None).is_err());
    }
}
