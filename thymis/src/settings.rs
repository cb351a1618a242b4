//! `ControllerSettings`: where a controller keeps its data and how it is reached. The binary
//! fills it from flags and `THYMIS_*` variables; embedders build it directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::build::NixSettings;
use crate::external::forge::ForgeApis;

/// Resolved controller configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerSettings {
    /// The data directory (upstream's project path): key, password file, images, default
    /// database and repository locations.
    pub data_dir: PathBuf,
    /// The project's git repository.
    pub repo_path: PathBuf,
    /// The SQLite database file.
    pub database_path: PathBuf,
    /// The public URL of the controller (cookies are `Secure` when it is https).
    pub base_url: String,
    /// The URL devices use to reach the controller, when it differs from `base_url`.
    pub agent_access_url: Option<String>,
    /// Whether username/password login is enabled.
    pub auth_basic: bool,
    /// The login name for username/password login.
    pub auth_basic_username: String,
    /// The file holding the password (generated on first start when missing).
    pub auth_basic_password_file: PathBuf,
    /// Address to listen on.
    pub listen_host: String,
    /// Port to listen on.
    pub listen_port: u16,
    /// URL of the `thymis` flake input of the project.
    pub thymis_flake_url: String,
    /// Where the GitHub and GitLab APIs are (for the repository editor).
    pub forge_apis: ForgeApis,
    /// How Nix is run.
    pub nix: NixSettings,
    /// Tasks running at once.
    pub task_concurrency: usize,
    /// How long a built image is kept after it was built or last downloaded.
    pub image_retention: Duration,
    /// Limits of the relay channels to devices (allowed ports, channels per device, …).
    pub relay: crate::agent::RelayLimits,
}

impl ControllerSettings {
    /// Settings with every location inside `data_dir` and upstream's defaults otherwise.
    pub fn with_data_dir(data_dir: &Path) -> Self {
        ControllerSettings {
            data_dir: data_dir.to_path_buf(),
            repo_path: data_dir.join("repository"),
            database_path: data_dir.join("thymis.sqlite"),
            base_url: "http://127.0.0.1:8000".to_owned(),
            agent_access_url: None,
            auth_basic: true,
            auth_basic_username: "admin".to_owned(),
            auth_basic_password_file: data_dir.join("auth-basic-password"),
            listen_host: "127.0.0.1".to_owned(),
            listen_port: 8000,
            thymis_flake_url: crate::nix::flake::DEFAULT_THYMIS_URL.to_owned(),
            forge_apis: ForgeApis::default(),
            nix: NixSettings::default(),
            task_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            image_retention: Duration::from_secs(3600),
            relay: crate::agent::RelayLimits::default(),
        }
    }

    /// Where built images are kept.
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }

    /// Where tasks keep temporary files (build results, boot files of images).
    pub fn tasks_dir(&self) -> PathBuf {
        self.data_dir.join("tasks")
    }

    /// Whether the controller is reached over https (decides `Secure` cookies).
    pub fn is_https(&self) -> bool {
        self.base_url.starts_with("https://")
    }

    /// The base URL without a trailing slash.
    pub fn base_url_trimmed(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}
