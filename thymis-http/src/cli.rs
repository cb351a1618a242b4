//! The command line: the controller's options, and the project tools (`check` validates a
//! `state.json`, `render` writes the project files).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use thymis::module::{ModuleRegistry, RenderEnv};
use thymis::repository::{DiskMirror, ProjectRenderer, RenderOptions};
use thymis::state::{Problem, Severity, State, StateError};

/// Thymis controller: provision, configure and manage fleets of NixOS devices.
///
/// Without a command it runs the controller.
#[derive(Debug, Parser)]
#[command(name = "thymis-controller", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// A project tool instead of the controller.
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: crate::serve::ServeArgs,
}

/// The project tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a project's state.json (any upstream version 0.0.1–0.0.9) and list every
    /// problem with its JSON path. Exits 1 when there is at least one error.
    Check {
        /// Path of the state.json to check.
        state: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Render a state.json into project files (state.json, flake.nix, hosts/, tags/) in a
    /// directory, writing only files whose content changed and deleting files under hosts/ and
    /// tags/ that the state no longer produces (other files are left alone). Exits 1 without
    /// writing anything when the state has errors.
    Render {
        /// Path of the state.json to render.
        state: PathBuf,
        /// Directory to write the project into (created when missing).
        dir: PathBuf,
        #[command(flatten)]
        options: RenderArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One line per problem.
    Text,
    /// A JSON array of {path, message, severity}.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// URL of the `thymis` flake input.
    #[arg(long, env = "THYMIS_FLAKE_URL", default_value = thymis::nix::flake::DEFAULT_THYMIS_URL)]
    thymis_url: String,
    /// A local checkout of the Thymis flake to use as the `thymis` input instead of
    /// --thymis-url (as upstream's THYMIS_FLAKE_ROOT).
    #[arg(long, env = "THYMIS_FLAKE_ROOT", conflicts_with = "thymis_url")]
    flake_root: Option<PathBuf>,
    /// The controller's public URL, used as the agents' controller URL by default.
    #[arg(long, env = "THYMIS_BASE_URL")]
    base_url: Option<String>,
    /// The URL agents use to reach the controller, when it differs from --base-url.
    #[arg(long, env = "THYMIS_AGENT_ACCESS_URL")]
    agent_access_url: Option<String>,
}

/// Runs a project tool.
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    let registry = ModuleRegistry::with_builtins();
    match command {
        Command::Check { state, format } => {
            let (state, from) = match load(&state)? {
                Ok(loaded) => loaded,
                Err(problems) => {
                    report(&problems, format, thymis::state::LATEST_VERSION);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let problems = state.validate(&registry);
            report(&problems, format, &from);
            Ok(exit_code(&problems))
        }
        Command::Render {
            state,
            dir,
            options,
        } => {
            let (state, from) = match load(&state)? {
                Ok(loaded) => loaded,
                Err(problems) => {
                    report(&problems, Format::Text, thymis::state::LATEST_VERSION);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let problems = state.validate(&registry);
            report(&problems, Format::Text, &from);
            if has_errors(&problems) {
                return Ok(ExitCode::FAILURE);
            }
            let thymis_url = match options.flake_root {
                Some(root) => {
                    let root = std::fs::canonicalize(&root).with_context(|| {
                        format!("cannot find the flake root {}", root.display())
                    })?;
                    format!("git+file://{}", root.display())
                }
                None => options.thymis_url,
            };
            let options = RenderOptions {
                thymis_url,
                env: RenderEnv {
                    base_url: options.base_url,
                    agent_access_url: options.agent_access_url,
                },
            };
            let files = ProjectRenderer::new().render(&state, &registry, &options)?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let written = DiskMirror::default()
                .sync(&dir, &files)
                .with_context(|| format!("cannot write the project into {}", dir.display()))?;
            println!(
                "rendered {} files into {} ({} written, {} deleted)",
                files.len(),
                dir.display(),
                written.written.len(),
                written.deleted.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a state file. Fields of the wrong shape are problems to report like validation
/// problems; an unreadable file, invalid JSON or an unknown version are errors.
fn load(path: &Path) -> anyhow::Result<Result<(State, String), Vec<Problem>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match State::from_json_str(&text) {
        Ok(loaded) => Ok(Ok(loaded)),
        Err(StateError::Shape(problems)) => Ok(Err(problems)),
        Err(err) => Err(err).with_context(|| format!("{} cannot be loaded", path.display())),
    }
}

fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

fn exit_code(problems: &[Problem]) -> ExitCode {
    if has_errors(problems) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report(problems: &[Problem], format: Format, from_version: &str) {
    match format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(problems).unwrap_or_default()
            );
        }
        Format::Text => {
            if from_version != thymis::state::LATEST_VERSION {
                eprintln!(
                    "note: state.json is version {from_version}; it was migrated to {} in memory",
                    thymis::state::LATEST_VERSION
                );
            }
            for problem in problems {
                println!("{problem}");
            }
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            let warnings = problems.len() - errors;
            eprintln!("{errors} error(s), {warnings} warning(s)");
        }
    }
}
