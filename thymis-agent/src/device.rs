//! The device's files under `--root` (spec §2.2): boot files in the data dir, hardware ids,
//! the controller key in root's `authorized_keys`, and the agent's own state directory.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::files;

/// The agent token file in the data dir.
pub const TOKEN_FILE: &str = "thymis-token.txt";
/// The image metadata file in the data dir.
pub const METADATA_FILE: &str = "thymis-metadata.json";
/// The controller's SSH public key in the data dir.
pub const CONTROLLER_KEY_FILE: &str = "thymis-controller-ssh-pubkey.txt";
/// Secrets baked into the image (passphrase = token).
pub const INITIAL_SECRETS_FILE: &str = "thymis-secrets-initial.json";
/// The last `send_secrets` message (encrypted to the host key), written by the agent.
pub const SECRETS_MESSAGE_FILE: &str = "thymis-secrets-message.json";

/// Candidate data dirs, in order (relative to the root).
const DATA_DIRS: [&str; 2] = ["boot/firmware", "boot"];

/// Hardware id names and their files (relative to the root).
const HARDWARE_ID_FILES: [(&str, &str); 3] = [
    (
        "pi-serial-number",
        "sys/firmware/devicetree/base/serial-number",
    ),
    ("dmi-board-serial", "sys/class/dmi/id/board_serial"),
    ("dmi-product-uuid", "sys/class/dmi/id/product_uuid"),
];

/// The device as seen through `--root`.
#[derive(Debug, Clone)]
pub struct Device {
    root: PathBuf,
}

/// The image metadata (`thymis-metadata.json`); missing keys are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The config the image or last switch installed.
    pub configuration_id: Option<String>,
    /// Its commit.
    pub configuration_commit: Option<String>,
    /// When it was built (Python `str(datetime.now())`, local time).
    pub datetime: Option<String>,
}

impl Device {
    /// A device rooted at `root` (`/` for the real one).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Device { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this is the real host (root `/`): only then does the agent change system state
    /// beyond files (clock, hostname, passwords, services).
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `relative` (no leading `/`) under the root.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative.trim_start_matches('/'))
    }

    /// The candidate data dirs, in order.
    pub fn data_dir_candidates(&self) -> Vec<PathBuf> {
        DATA_DIRS.iter().map(|d| self.path(d)).collect()
    }

    /// The data dir: the first candidate that contains the token file.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.find_boot_file(TOKEN_FILE)
            .and_then(|p| p.parent().map(Path::to_path_buf))
    }

    /// The first existing `name` in the candidate data dirs.
    pub fn find_boot_file(&self, name: &str) -> Option<PathBuf> {
        self.data_dir_candidates()
            .into_iter()
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    }

    /// The agent token (trimmed), `Ok(None)` if no data dir has one.
    pub fn token(&self) -> io::Result<Option<String>> {
        let Some(path) = self.find_boot_file(TOKEN_FILE) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let token = text.trim();
        Ok((!token.is_empty()).then(|| token.to_owned()))
    }

    /// The metadata: the first of `thymis-metadata.json`, `.new`, `.old` in the data dirs (dir
    /// by dir, like upstream). `Ok(None)` if none exists; a file that is not a JSON object
    /// counts as empty metadata.
    pub fn metadata(&self) -> io::Result<Option<Metadata>> {
        let names = [
            METADATA_FILE.to_owned(),
            format!("{METADATA_FILE}.new"),
            format!("{METADATA_FILE}.old"),
        ];
        let found = self
            .data_dir_candidates()
            .into_iter()
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.exists());
        let Some(path) = found else {
            return Ok(None);
        };
        let text = std::fs::read(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not JSON: {e}", path.display()),
            )
        })?;
        let field = |key: &str| value.get(key).and_then(json_text);
        Ok(Some(Metadata {
            configuration_id: field("configuration_id"),
            configuration_commit: field("configuration_commit"),
            datetime: field("datetime"),
        }))
    }

    /// The hardware ids that exist (spec §2.2): file text without `\n`, surrounding
    /// whitespace stripped the way Python's `str.strip` does (a trailing NUL is kept).
    pub fn hardware_ids(&self) -> BTreeMap<String, String> {
        HARDWARE_ID_FILES
            .iter()
            .filter_map(|(name, file)| {
                let bytes = std::fs::read(self.path(file)).ok()?;
                let text = String::from_utf8_lossy(&bytes).replace('\n', "");
                let value = text.trim_matches(python_whitespace);
                (!value.is_empty()).then(|| (name.to_string(), value.to_owned()))
            })
            .collect()
    }

    /// Appends the controller's public key (from the data dir) to root's `authorized_keys`
    /// unless a line with the same key is there. Returns whether it was added; `Ok(false)`
    /// also when there is no controller key file.
    pub fn authorize_controller_key(&self) -> io::Result<bool> {
        let Some(key_path) = self.find_boot_file(CONTROLLER_KEY_FILE) else {
            return Ok(false);
        };
        let key = std::fs::read_to_string(&key_path)?;
        let key = key.trim();
        let Some(wanted) = key_identity(key) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} holds no SSH public key", key_path.display()),
            ));
        };
        let ssh_dir = self.path("root/.ssh");
        files::create_dir_all_mode(&ssh_dir, 0o700)?;
        std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700))?;
        let authorized = ssh_dir.join("authorized_keys");
        let existing = files::read_optional(&authorized)?.unwrap_or_default();
        if existing
            .lines()
            .any(|line| key_identity(line) == Some(wanted))
        {
            return Ok(false);
        }
        let mut file = files::open_append(&authorized, 0o600)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut line = String::new();
        if !existing.is_empty() && !existing.ends_with('\n') {
            line.push('\n');
        }
        line.push_str(key);
        line.push('\n');
        file.write_all(line.as_bytes())?;
        Ok(true)
    }

    /// The agent's state directory (log positions), created on demand by its users.
    pub fn state_dir(&self) -> PathBuf {
        self.path("var/lib/thymis-agent")
    }
}

/// A JSON value as metadata text: strings as is, other scalars as their JSON text.
fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Python's `str.isspace` for the characters Rust's `char::is_whitespace` lacks.
fn python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The `type base64` part of an authorized_keys line (ignoring options is not needed: the
/// agent only ever writes plain lines, and a line with options is a different authorisation).
fn key_identity(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let data = fields.next()?;
    (!kind.starts_with('#')).then_some((kind, data))
}
