//! Checking that a flake reference can be fetched (`nix flake prefetch`), with the access token
//! of a private repository passed the way Nix expects it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::flake_ref::FlakeRef;

/// How long a prefetch may take before it is reported as failed.
pub const PREFETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether a reference names something remote. Local ones (`path:`, `git+file:`, `file+file:`)
/// would let API users copy the controller's own files into the world-readable Nix store.
pub fn is_remote(reference: &FlakeRef) -> bool {
    match reference {
        FlakeRef::GitHub(_) | FlakeRef::GitLab(_) | FlakeRef::SourceHut(_) => true,
        FlakeRef::Indirect(_) => true,
        FlakeRef::Git(git) => !git.url.starts_with("file:"),
        FlakeRef::Tarball(tarball) => {
            tarball.url.starts_with("https://") || tarball.url.starts_with("http://")
        }
        FlakeRef::Path(_) => false,
    }
}

/// The `NIX_CONFIG` line giving Nix `token` for `reference`'s host (see
/// [`access_token_entry`]).
pub fn access_tokens_config(reference: &FlakeRef, token: &str) -> Option<String> {
    access_token_entry(reference, token).map(|entry| format!("access-tokens = {entry}"))
}

/// The `host=token` entry of Nix's `access-tokens` setting for `reference`'s host (GitLab
/// project tokens need the `PAT:` prefix), if the reference has a host and the token is a plain
/// token: whitespace or control characters would let a token add other Nix settings.
pub fn access_token_entry(reference: &FlakeRef, token: &str) -> Option<String> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let host = reference.token_host()?;
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    {
        return None;
    }
    let value = match reference {
        FlakeRef::GitLab(_) if token.starts_with("glpat-") => format!("PAT:{token}"),
        _ => token.to_owned(),
    };
    Some(format!("{host}={value}"))
}

/// Fetches `url` into the Nix store (`nix flake prefetch --refresh`), as a connection test.
/// The error is Nix's own message.
pub fn prefetch(url: &str, token: Option<&str>) -> Result<(), String> {
    run_prefetch(url, token, true).map(|_| ())
}

/// Fetches `url` into the Nix store, reusing Nix's fetcher cache, and returns its store path.
/// The error is Nix's own message.
pub fn fetch_store_path(url: &str, token: Option<&str>) -> Result<PathBuf, String> {
    let output = run_prefetch(url, token, false)?;
    let answer: serde_json::Value = serde_json::from_slice(&output)
        .map_err(|err| format!("unexpected answer from nix flake prefetch: {err}"))?;
    answer
        .get("storePath")
        .and_then(|path| path.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| "nix flake prefetch named no store path".to_owned())
}

/// Runs `nix flake prefetch --json` on `url` and returns its standard output.
fn run_prefetch(url: &str, token: Option<&str>, refresh: bool) -> Result<Vec<u8>, String> {
    let reference: FlakeRef = url.parse().map_err(|err| format!("{err}"))?;
    let mut command = Command::new("nix");
    command
        .args([
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
            "prefetch",
            "--json",
        ])
        .env("GIT_TERMINAL_PROMPT", "0");
    if refresh {
        command.arg("--refresh");
    }
    command.arg(reference.to_url());
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
        Ok(output.stdout)
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

/// Runs `command` in its own process group, reading its output while it runs (a full pipe
/// would stall it); on timeout the whole group (nix and the git it started) is killed.
fn run_with_timeout(
    mut command: Command,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| format!("cannot run nix: {err}"))?;
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(timeout) {
        Ok(result) => result.map_err(|err| format!("running nix failed: {err}")),
        Err(_) => {
            // Negative pid: the process group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            Err(format!(
                "nix flake prefetch took longer than {}s",
                timeout.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_remote_references_count_as_remote() {
        for url in [
            "github:a/b",
            "git+https://h/x.git",
            "https://h/x.tar.gz",
            "nixpkgs",
        ] {
            assert!(is_remote(&url.parse().unwrap()), "{url}");
        }
        for url in [
            "path:/var/lib/thymis",
            "git+file:///var/lib/thymis/repository",
            "/etc",
        ] {
            assert!(!is_remote(&url.parse().unwrap()), "{url}");
        }
    }

    #[test]
    fn tokens_cannot_smuggle_settings() {
        let github: FlakeRef = "github:acme/private".parse().unwrap();
        assert_eq!(
            access_tokens_config(&github, "x\nplugin-files = /tmp/evil.so"),
            None
        );
        assert_eq!(access_tokens_config(&github, "a b"), None);
        assert_eq!(access_tokens_config(&github, ""), None);
    }

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
        let path = fetch_store_path(&url, None).unwrap();
        assert!(path.starts_with("/nix/store"), "{}", path.display());
        assert!(path.join("flake.nix").is_file());
        let missing = format!("git+file://{}/nowhere", dir.path().display());
        let error = prefetch(&missing, None).unwrap_err();
        assert!(error.starts_with("error:"), "{error}");
        assert!(prefetch("not a url", None).is_err());
    }
}
