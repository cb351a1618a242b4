//! [`NixBuilder`]: the [`Builder`] running the `nix` command line.

use std::path::{Path, PathBuf};

use super::{BuildError, Builder, FlakeProject};
use crate::task::{CommandOutcome, CommandRunner, CommandSpec};

/// Upstream's binary cache for Thymis' own packages, used unless substituters are set.
pub const THYMIS_CACHE: &str = "https://cache.thymis.io";
/// The signing key of [`THYMIS_CACHE`].
pub const THYMIS_CACHE_KEY: &str = "cache.thymis.io-1:pEeKkNXiK17TLKls0KM8cEp0NGy08gc5chAmCyuQo8M=";

/// How the controller runs Nix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixSettings {
    /// The `nix` program.
    pub binary: PathBuf,
    /// Extra `--option name value` pairs.
    pub options: Vec<(String, String)>,
    /// The substituters to use instead of Nix's configured ones plus [`THYMIS_CACHE`]; an
    /// empty list builds without any (offline).
    pub substituters: Option<Vec<String>>,
    /// Remote builders in Nix's `builders` syntax (Nix's own distributed builds).
    pub builders: Option<String>,
    /// `--override-input name flake-ref` for every flake command (e.g. a local nixpkgs
    /// mirror).
    pub override_inputs: Vec<(String, String)>,
}

impl Default for NixSettings {
    fn default() -> Self {
        NixSettings {
            binary: PathBuf::from("nix"),
            options: Vec::new(),
            substituters: None,
            builders: None,
            override_inputs: Vec::new(),
        }
    }
}

/// The default [`Builder`].
#[derive(Debug, Clone, Default)]
pub struct NixBuilder {
    settings: NixSettings,
}

fn option(args: &mut Vec<String>, name: &str, value: &str) {
    args.extend(["--option".to_owned(), name.to_owned(), value.to_owned()]);
}

impl NixBuilder {
    /// A builder with these settings.
    pub fn new(settings: NixSettings) -> Self {
        NixBuilder { settings }
    }

    /// The settings.
    pub fn settings(&self) -> &NixSettings {
        &self.settings
    }

    /// The arguments before the subcommand: features, log format, caches, builders.
    fn common_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        option(
            &mut args,
            "extra-experimental-features",
            "nix-command flakes",
        );
        args.extend(["--log-format".to_owned(), "internal-json".to_owned()]);
        // Without it, Nix 2.8 reports a `throw` or failed `assert` without its position.
        args.push("--show-trace".to_owned());
        match &self.settings.substituters {
            Some(list) => option(&mut args, "substituters", &list.join(" ")),
            None => {
                option(&mut args, "extra-substituters", THYMIS_CACHE);
                option(&mut args, "extra-trusted-public-keys", THYMIS_CACHE_KEY);
            }
        }
        if let Some(builders) = &self.settings.builders {
            option(&mut args, "builders", builders);
        }
        for (name, value) in &self.settings.options {
            option(&mut args, name, value);
        }
        args
    }

    /// A flake subcommand with the common arguments and the input overrides.
    fn flake_command(&self, project: &FlakeProject, subcommand: &[&str]) -> CommandSpec {
        let mut args = self.common_args();
        args.extend(subcommand.iter().map(|s| (*s).to_owned()));
        for (name, url) in &self.settings.override_inputs {
            args.extend(["--override-input".to_owned(), name.clone(), url.clone()]);
        }
        let mut env = vec![("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned())];
        if let Some(tokens) = &project.access_tokens {
            // Keep settings the controller itself was given in NIX_CONFIG.
            let config = match std::env::var("NIX_CONFIG") {
                Ok(existing) if !existing.is_empty() => format!("{existing}\n{tokens}"),
                _ => tokens.clone(),
            };
            env.push(("NIX_CONFIG".to_owned(), config));
        }
        CommandSpec {
            program: self.settings.binary.clone(),
            args,
            cwd: Some(project.repo_path.clone()),
            env,
            nix_log: true,
        }
    }

    /// `git+file://<repo>?rev=<commit>#nixosConfigurations."<id>".<path>`
    fn config_attribute(
        project: &FlakeProject,
        config_id: &str,
        commit: &str,
        path: &str,
    ) -> Result<String, BuildError> {
        check_config_id(config_id)?;
        Ok(format!(
            "{}#nixosConfigurations.\"{config_id}\".{path}",
            at_commit(project, commit)?
        ))
    }

    async fn build(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        installable: &str,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError> {
        let out = out_link.display().to_string();
        let spec = self.flake_command(project, &["build", installable, "--out-link", &out]);
        succeed(run.run(spec).await?)?;
        std::fs::read_link(out_link)
            .map_err(|err| BuildError::Result(format!("no result at {out}: {err}")))
    }
}

/// Config ids go into a quoted attribute name; the state only allows these characters.
fn check_config_id(config_id: &str) -> Result<(), BuildError> {
    let valid = !config_id.is_empty()
        && config_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(BuildError::Invalid {
            what: "config id",
            value: config_id.to_owned(),
        })
    }
}

/// The flake reference of the repository at `commit` (a full hexadecimal SHA-1).
fn at_commit(project: &FlakeProject, commit: &str) -> Result<String, BuildError> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BuildError::Invalid {
            what: "commit",
            value: commit.to_owned(),
        });
    }
    Ok(format!(
        "git+file://{}?rev={commit}",
        project.repo_path.display()
    ))
}

fn succeed(outcome: CommandOutcome) -> Result<CommandOutcome, BuildError> {
    if outcome.cancelled {
        Err(BuildError::Cancelled)
    } else if outcome.success() {
        Ok(outcome)
    } else {
        Err(BuildError::Failed {
            reason: outcome.failure_reason(),
            errors: outcome.errors,
        })
    }
}

#[async_trait::async_trait]
impl Builder for NixBuilder {
    async fn lock(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
    ) -> Result<(), BuildError> {
        succeed(
            run.run(self.flake_command(project, &["flake", "lock"]))
                .await?,
        )?;
        Ok(())
    }

    async fn update(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
    ) -> Result<(), BuildError> {
        succeed(
            run.run(self.flake_command(project, &["flake", "update"]))
                .await?,
        )?;
        Ok(())
    }

    async fn build_project(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError> {
        self.build(run, project, ".#thymis", out_link).await
    }

    async fn build_system(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        config_id: &str,
        commit: &str,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError> {
        let installable =
            Self::config_attribute(project, config_id, commit, "config.system.build.toplevel")?;
        self.build(run, project, &installable, out_link).await
    }

    async fn build_image_builder(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        config_id: &str,
        commit: &str,
        arch: &str,
        out_link: &Path,
    ) -> Result<PathBuf, BuildError> {
        if !matches!(arch, "x86_64" | "aarch64") {
            return Err(BuildError::Invalid {
                what: "architecture",
                value: arch.to_owned(),
            });
        }
        let installable = Self::config_attribute(
            project,
            config_id,
            commit,
            &format!("config.system.build.thymis-image-with-secrets-builder-{arch}"),
        )?;
        self.build(run, project, &installable, out_link).await
    }

    async fn evaluate(
        &self,
        run: &dyn CommandRunner,
        project: &FlakeProject,
        commit: Option<&str>,
        attribute: &str,
    ) -> Result<serde_json::Value, BuildError> {
        let flake = match commit {
            Some(commit) => at_commit(project, commit)?,
            None => ".".to_owned(),
        };
        let installable = format!("{flake}#{attribute}");
        let spec = self.flake_command(project, &["eval", "--json", &installable]);
        let outcome = succeed(run.run(spec).await?)?;
        serde_json::from_slice(&outcome.stdout)
            .map_err(|err| BuildError::Result(format!("nix eval printed no JSON: {err}")))
    }
}
