//! `thymis-controller` (serve): settings from flags and `THYMIS_*` variables, first-start
//! set-up of the data directory, and the server itself.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use thymis::agent::{AgentHub, AgentService};
use thymis::auth::Authenticator;
use thymis::build::{NixBuilder, NixSettings};
use thymis::devices::DeviceRegistry;
use thymis::events::{Event, EventBus};
use thymis::external::discovery::RepositoryDiscovery;
use thymis::external::forge::{ForgeApis, ForgeClient};
use thymis::module::{ModuleRegistry, RenderEnv};
use thymis::project::Project;
use thymis::repository::RenderOptions;
use thymis::secrets::{SecretBox, Vault};
use thymis::settings::ControllerSettings;
use thymis::ssh::ControllerKey;
use thymis::store::{parse_database_url, SqliteStore, Store, TaskState};
use thymis::task::{TaskEngine, TaskEngineConfig, TaskSubmission};
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::auth::LoginLimiter;

/// Controller options (the NixOS module's names, as flags and `THYMIS_*` variables).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Directory holding the controller's data: key, password file, images, and by default the
    /// database and the repository.
    #[arg(long, env = "THYMIS_DATA_DIR", default_value = "./thymis-data")]
    data_dir: PathBuf,
    /// The project's git repository [default: <data-dir>/repository].
    #[arg(long, env = "THYMIS_REPO_PATH")]
    repo_path: Option<PathBuf>,
    /// The database, e.g. `sqlite:////var/lib/thymis/thymis.sqlite` [default: <data-dir>/thymis.sqlite].
    #[arg(long, env = "THYMIS_DATABASE_URL")]
    database_url: Option<String>,
    /// The controller's public URL [default: http://<listen-host>:<listen-port>].
    #[arg(long, env = "THYMIS_BASE_URL")]
    base_url: Option<String>,
    /// The URL devices use to reach the controller, if it differs from --base-url.
    #[arg(long, env = "THYMIS_AGENT_ACCESS_URL")]
    agent_access_url: Option<String>,
    /// Enable username/password login.
    #[arg(long, env = "THYMIS_AUTH_BASIC", default_value_t = true, action = clap::ArgAction::Set)]
    auth_basic: bool,
    /// The login name for username/password login.
    #[arg(long, env = "THYMIS_AUTH_BASIC_USERNAME", default_value = "admin")]
    auth_basic_username: String,
    /// The file holding the password; generated on first start when missing
    /// [default: <data-dir>/auth-basic-password].
    #[arg(long, env = "THYMIS_AUTH_BASIC_PASSWORD_FILE")]
    auth_basic_password_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "THYMIS_LISTEN_HOST", default_value = "127.0.0.1")]
    listen_host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "THYMIS_LISTEN_PORT", default_value_t = 8000)]
    listen_port: u16,
    /// A local checkout of the Thymis flake to use as the project's `thymis` input.
    #[arg(long, env = "THYMIS_FLAKE_ROOT")]
    flake_root: Option<PathBuf>,
    /// The GitHub API used to list branches and tags of github.com repositories.
    #[arg(
        long,
        env = "THYMIS_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    github_api_url: String,
    /// The GitLab API used to list branches and tags of gitlab.com repositories.
    #[arg(
        long,
        env = "THYMIS_GITLAB_API_URL",
        default_value = "https://gitlab.com/api/v4"
    )]
    gitlab_api_url: String,
    /// The `nix` program used for builds.
    #[arg(long, env = "THYMIS_NIX_BINARY", default_value = "nix")]
    nix_binary: PathBuf,
    /// An extra Nix setting for every nix call, as NAME=VALUE (repeatable; `;`-separated in
    /// the variable).
    #[arg(long = "nix-option", env = "THYMIS_NIX_OPTIONS", value_delimiter = ';', value_parser = name_value)]
    nix_options: Vec<(String, String)>,
    /// Space-separated substituters used instead of Nix's own plus cache.thymis.io; empty
    /// builds without any.
    #[arg(long, env = "THYMIS_NIX_SUBSTITUTERS")]
    nix_substituters: Option<String>,
    /// Remote builders for Nix's distributed builds (Nix's `builders` syntax).
    #[arg(long, env = "THYMIS_NIX_BUILDERS")]
    nix_builders: Option<String>,
    /// Replaces an input of the project flake in every nix call, as NAME=FLAKE-REF
    /// (repeatable; `;`-separated in the variable), e.g. a local nixpkgs mirror.
    #[arg(long = "nix-override-input", env = "THYMIS_NIX_OVERRIDE_INPUTS", value_delimiter = ';', value_parser = name_value)]
    nix_override_inputs: Vec<(String, String)>,
    /// Tasks running at once [default: the number of CPUs].
    #[arg(long, env = "THYMIS_TASK_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..))]
    task_concurrency: Option<u16>,
    /// Minutes a built image is kept after it was built or last downloaded.
    #[arg(long, env = "THYMIS_IMAGE_RETENTION_MINUTES", default_value_t = 60)]
    image_retention_minutes: u64,
    /// Device ports the controller may open relay channels to (comma-separated).
    #[arg(
        long,
        env = "THYMIS_RELAY_ALLOWED_PORTS",
        value_delimiter = ',',
        default_value = "22,5900"
    )]
    relay_allowed_ports: Vec<u16>,
    /// Relay channels open at once per device.
    #[arg(long, env = "THYMIS_RELAY_MAX_CHANNELS", default_value_t = 64,
        value_parser = clap::value_parser!(u16).range(1..))]
    relay_max_channels: u16,
}

/// Parses `NAME=VALUE`.
fn name_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

impl ServeArgs {
    fn into_settings(self) -> anyhow::Result<ControllerSettings> {
        let mut settings = ControllerSettings::with_data_dir(&self.data_dir);
        if let Some(repo) = self.repo_path {
            settings.repo_path = repo;
        }
        if let Some(url) = self.database_url {
            settings.database_path = parse_database_url(&url)?;
        }
        if let Some(file) = self.auth_basic_password_file {
            settings.auth_basic_password_file = file;
        }
        if let Some(root) = self.flake_root {
            let root = std::fs::canonicalize(&root)
                .with_context(|| format!("cannot find the flake root {}", root.display()))?;
            settings.thymis_flake_url = format!("git+file://{}", root.display());
        }
        settings.listen_host = self.listen_host;
        settings.listen_port = self.listen_port;
        settings.base_url = self
            .base_url
            .unwrap_or_else(|| format!("http://{}:{}", settings.listen_host, settings.listen_port));
        settings.agent_access_url = self.agent_access_url;
        settings.auth_basic = self.auth_basic;
        settings.auth_basic_username = self.auth_basic_username;
        settings.nix = NixSettings {
            binary: self.nix_binary,
            options: self.nix_options,
            substituters: self
                .nix_substituters
                .map(|list| list.split_whitespace().map(str::to_owned).collect()),
            builders: self.nix_builders,
            override_inputs: self.nix_override_inputs,
        };
        if let Some(concurrency) = self.task_concurrency {
            settings.task_concurrency = usize::from(concurrency);
        }
        settings.image_retention =
            std::time::Duration::from_secs(self.image_retention_minutes.saturating_mul(60));
        settings.relay.allowed_ports = self.relay_allowed_ports;
        settings.relay.max_channels = usize::from(self.relay_max_channels);
        settings.forge_apis = ForgeApis {
            github: self.github_api_url.trim_end_matches('/').to_owned(),
            gitlab: self.gitlab_api_url.trim_end_matches('/').to_owned(),
        };
        Ok(settings)
    }
}

/// Runs the controller until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut settings = args.into_settings()?;
    create_private_dir(&settings.data_dir)?;
    std::fs::create_dir_all(settings.images_dir())?;
    let key = ControllerKey::load_or_create(&settings.data_dir)?;
    tracing::info!(fingerprint = %key.fingerprint(), "controller key");

    let listener =
        tokio::net::TcpListener::bind((settings.listen_host.as_str(), settings.listen_port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}",
                    settings.listen_host, settings.listen_port
                )
            })?;
    let address = listener.local_addr()?;
    if settings.listen_port == 0 {
        // Port 0 asked for any free port: the URL must name the real one.
        settings.listen_port = address.port();
        if settings.base_url.ends_with(":0") {
            settings.base_url = format!("http://{}:{}", settings.listen_host, address.port());
        }
    }

    let new_password = if settings.auth_basic {
        Authenticator::ensure_password_file(&settings.auth_basic_password_file)?
    } else {
        None
    };
    let store = Arc::new(SqliteStore::open(&settings.database_path)?);
    let events = EventBus::new();
    let options = RenderOptions {
        thymis_url: settings.thymis_flake_url.clone(),
        env: RenderEnv {
            base_url: Some(settings.base_url.clone()),
            agent_access_url: settings.agent_access_url.clone(),
        },
    };
    let repo_path = settings.repo_path.clone();
    let project_events = events.clone();
    let project = tokio::task::spawn_blocking(move || {
        Project::open(
            &repo_path,
            ModuleRegistry::with_builtins(),
            options,
            project_events,
        )
    })
    .await??;
    let project = Arc::new(project);
    let settings = Arc::new(settings);
    let auth = Arc::new(Authenticator::new(store.clone(), &settings));
    let vault = Arc::new(Vault::new(store.clone(), SecretBox::new(&key)?));
    let jobs = thymis::task::jobs::ControllerJobs {
        builder: Arc::new(NixBuilder::new(settings.nix.clone())),
        project: project.clone(),
        vault: vault.clone(),
        store: store.clone(),
        events: events.clone(),
        images_dir: settings.images_dir(),
        work_dir: settings.tasks_dir(),
        controller_public_key: key.public_key_openssh(),
    };
    let tasks = TaskEngine::new(
        store.clone(),
        events.clone(),
        Arc::new(jobs),
        TaskEngineConfig {
            concurrency: settings.task_concurrency,
            ..TaskEngineConfig::default()
        },
    );
    let devices = Arc::new(DeviceRegistry::new(
        store.clone(),
        events.clone(),
        project.clone(),
        vault.clone(),
    ));
    // No agent is connected yet: rows still open were left by the previous run.
    let registry = devices.clone();
    tokio::task::spawn_blocking(move || registry.close_open_connections()).await??;
    // Scratch files of tasks a restart interrupted (they may hold agent tokens).
    let _ = std::fs::remove_dir_all(settings.tasks_dir());
    tasks.start().await?;
    let agents = AgentHub::new();
    let agent_service = AgentService {
        hub: agents.clone(),
        registry: devices.clone(),
        controller_key: Arc::new(key.clone()),
        events: events.clone(),
        limits: settings.relay.clone(),
    };
    let state = AppState {
        tasks,
        agents,
        agent_service,
        devices: devices.clone(),
        forges: Arc::new(ForgeClient::new(settings.forge_apis.clone())),
        repository_discovery: Arc::new(RepositoryDiscovery::new(events.clone())),
        settings: settings.clone(),
        project,
        store,
        auth,
        vault,
        events,
        login_limiter: Arc::new(LoginLimiter::default()),
        device_list: Arc::default(),
    };

    println!(
        "Thymis controller listening on {address}; open {}/login",
        settings.base_url_trimmed()
    );
    if let Some(password) = new_password {
        // Printed once, on the terminal that started the controller; never logged.
        println!(
            "First start: log in as `{}` with password {password} (saved in {})",
            settings.auth_basic_username,
            settings.auth_basic_password_file.display()
        );
    }
    tokio::spawn(remove_expired_sessions(state.store.clone()));
    tokio::spawn(discover_external_repositories(state.clone()));
    tokio::spawn(lock_flake_when_changed(state.clone()));
    tokio::spawn(remove_expired_images(settings.clone()));
    tokio::spawn(flush_keep_alives(devices.clone()));
    tokio::spawn(prune_device_data(devices.clone()));
    let app = crate::server::app(state).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY, Nagle's algorithm holds back the last part of multi-packet answers
    // (a 1.3 MB state) until the client's delayed ACK: saves from the dashboard took ~25% longer.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Last keep-alives, and the connections end with the controller.
    tokio::task::spawn_blocking(move || {
        if let Err(err) = devices.flush_last_seen() {
            tracing::warn!(error = %err, "writing the last keep-alives failed");
        }
        if let Err(err) = devices.close_open_connections() {
            tracing::warn!(error = %err, "closing the agent connection rows failed");
        }
    })
    .await?;
    Ok(())
}

/// Writes the devices' keep-alives to the database every five seconds, in one transaction.
async fn flush_keep_alives(devices: Arc<DeviceRegistry>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let devices = devices.clone();
        match tokio::task::spawn_blocking(move || devices.flush_last_seen()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "writing keep-alives failed"),
            Err(err) => tracing::warn!(error = %err, "keep-alive flush task failed"),
        }
    }
}

/// Deletes expired metrics and device logs at start and every hour.
async fn prune_device_data(devices: Arc<DeviceRegistry>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        interval.tick().await;
        let devices = devices.clone();
        match tokio::task::spawn_blocking(move || devices.prune(chrono::Utc::now())).await {
            Ok(Ok(counts)) if counts.metrics + counts.logs > 0 => {
                tracing::info!(
                    metrics = counts.metrics,
                    logs = counts.logs,
                    "expired device data removed"
                )
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "removing expired device data failed"),
            Err(err) => tracing::warn!(error = %err, "device data cleanup task failed"),
        }
    }
}

/// Inspects the state's external repositories at start and again whenever their URLs or tokens
/// change.
async fn discover_external_repositories(app: AppState) {
    let mut events = app.events.subscribe();
    let mut discovered = None;
    loop {
        let repositories = app.project.snapshot().state.repositories.clone();
        let wanted: Vec<_> = repositories
            .iter()
            .map(|(name, repo)| (name.clone(), repo.url.clone(), repo.api_key_secret.clone()))
            .collect();
        if discovered.as_ref() != Some(&wanted) {
            discovered = Some(wanted);
            let (discovery, vault) = (app.repository_discovery.clone(), app.vault.clone());
            // Not awaited: a slow fetch must not delay noticing the next change, and a newer
            // discovery supersedes an older one.
            tokio::task::spawn_blocking(move || {
                discovery.discover(&repositories, &|repo| {
                    thymis::external::token_of_repository(&vault, repo)
                })
            });
        }
        loop {
            match events.recv().await {
                Ok(Event::StateChanged) | Err(RecvError::Lagged(_)) => break,
                Ok(_) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// Writes `flake.lock` again (as a task) whenever `flake.nix` changed; one waiting lock task
/// covers every change made before it starts.
async fn lock_flake_when_changed(app: AppState) {
    let mut events = app.events.subscribe();
    let mut waiting: Option<uuid::Uuid> = None;
    loop {
        match events.recv().await {
            Ok(Event::FlakeChanged) | Err(RecvError::Lagged(_)) => {}
            Ok(_) => continue,
            Err(RecvError::Closed) => return,
        }
        if let Some(id) = waiting {
            if matches!(app.tasks.get(id).await, Ok(task) if task.state == TaskState::Pending) {
                continue;
            }
        }
        match app
            .tasks
            .submit(
                TaskSubmission::ProjectFlakeLock {},
                Some("controller".to_owned()),
            )
            .await
        {
            Ok(task) => waiting = Some(task.id),
            Err(err) => tracing::warn!(error = %err, "cannot submit the flake lock task"),
        }
    }
}

/// Deletes images that were not built or downloaded within the retention period, at start and
/// every five minutes.
async fn remove_expired_images(settings: Arc<ControllerSettings>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        interval.tick().await;
        let (dir, retention) = (settings.images_dir(), settings.image_retention);
        match tokio::task::spawn_blocking(move || thymis::image::remove_expired(&dir, retention))
            .await
        {
            Ok(Ok(removed)) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "expired image removed");
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "removing expired images failed"),
            Err(err) => tracing::warn!(error = %err, "image cleanup task failed"),
        }
    }
}

/// Deletes expired sessions every hour (they are refused anyway; this keeps the table small).
async fn remove_expired_sessions(store: Arc<dyn Store>) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        interval.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.delete_expired_sessions()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => tracing::info!(removed, "expired sessions removed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "removing expired sessions failed"),
            Err(err) => tracing::warn!(error = %err, "session cleanup task failed"),
        }
    }
}

/// Creates the data directory readable only by the controller's user: it holds the key, the
/// password and the database.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
