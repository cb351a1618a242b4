//! Offline stand-ins for a project's `nixpkgs` and `thymis` flake inputs, for tests that run the
//! real `nix` on a generated project (nixpkgs cannot be downloaded here).
//!
//! [`NixStub::new`] copies the stub flakes (`thymis/tests/fixtures/nix-stub/`, embedded at compile
//! time) into a temporary folder: `path:` inputs need absolute paths, and a copy keeps the source
//! tree out of the Nix store. The generated `flake.nix` stays exactly as in production
//! (`thymis.url = "github:thymis-io/thymis/v0.9"`, `nixpkgs.follows = "thymis/nixpkgs"`); every
//! flake command gets [`NixStub::override_args`]:
//!
//! ```text
//! nix --extra-experimental-features 'nix-command flakes' --option substituters '' \
//!     <subcommand> … --override-input thymis path:<stub>/thymis --override-input nixpkgs path:<stub>/nixpkgs
//! ```
//!
//! Nix 2.8 replaces the `follows` of `nixpkgs` by the override. `--override-input` implies
//! `--no-write-lock-file` for `nix build`/`eval`, but `nix flake lock` and `nix flake update`
//! still write `flake.lock`. Knobs a module can set (e.g. through the Custom Nix module):
//! `thymis.stub.buildSeconds`, `thymis.stub.fail`, `thymis.stub.logLines`,
//! `thymis.stub.activationFails`, `thymis.stub.nonce` (see the stub's README.md and
//! [`unique_nonce_definition`]).
//!
//! Usable from `thymis/tests/*.rs` (`mod common;`) and from other crates' tests with
//! `#[path = "../../thymis/tests/common/nix_stub.rs"] mod nix_stub;`. Only std and tempfile.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// The stub files, relative to the stub root, embedded so that the module works from any crate.
const FILES: [(&str, &str); 9] = [
    (
        "nixpkgs/flake.nix",
        include_str!("../fixtures/nix-stub/nixpkgs/flake.nix"),
    ),
    (
        "nixpkgs/lib.nix",
        include_str!("../fixtures/nix-stub/nixpkgs/lib.nix"),
    ),
    (
        "nixpkgs/nixos-system.nix",
        include_str!("../fixtures/nix-stub/nixpkgs/nixos-system.nix"),
    ),
    (
        "nixpkgs/pkgs.nix",
        include_str!("../fixtures/nix-stub/nixpkgs/pkgs.nix"),
    ),
    (
        "nixpkgs/toplevel-builder.sh",
        include_str!("../fixtures/nix-stub/nixpkgs/toplevel-builder.sh"),
    ),
    (
        "thymis/flake.nix",
        include_str!("../fixtures/nix-stub/thymis/flake.nix"),
    ),
    (
        "thymis/device.nix",
        include_str!("../fixtures/nix-stub/thymis/device.nix"),
    ),
    (
        "thymis/image-builder.nix",
        include_str!("../fixtures/nix-stub/thymis/image-builder.nix"),
    ),
    (
        "thymis/image-builder.sh",
        include_str!("../fixtures/nix-stub/thymis/image-builder.sh"),
    ),
];

/// Flags every nix invocation of the tests needs: flakes on, and no binary cache (offline).
pub const COMMON_ARGS: [&str; 5] = [
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
];

/// A fixed modification time for the copied files: Nix records a `path:` input's newest mtime as
/// `lastModified` in `flake.lock`, so fresh copies must not change the lock.
const FIXED_MTIME_SECS: u64 = 1_704_067_200; // 2024-01-01

/// The Nix system of this machine (`x86_64-linux`, `aarch64-linux`, …).
pub fn host_system() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// The architecture part of [`host_system`], as in `thymis-image-with-secrets-builder-<arch>`.
pub fn host_arch() -> &'static str {
    std::env::consts::ARCH
}

/// A copy of the stub flakes plus a private Nix cache folder.
pub struct NixStub {
    root: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl NixStub {
    /// Copies the stubs into a new temporary folder (removed on drop).
    pub fn new() -> NixStub {
        let temp = tempfile::Builder::new()
            .prefix("thymis-nix-stub-")
            .tempdir()
            .expect("create a temporary folder for the nix stubs");
        let mut stub = NixStub::new_in(temp.path()).expect("copy the nix stubs");
        stub._temp = Some(temp);
        stub
    }

    /// Copies the stubs into `dir/nix-stub/` (for a test that keeps all its files in one folder).
    pub fn new_in(dir: &Path) -> io::Result<NixStub> {
        let root = dir.join("nix-stub");
        fs::create_dir_all(&root)?;
        let root = root.canonicalize()?;
        for (relative, text) in FILES {
            let path = root.join(relative);
            fs::create_dir_all(path.parent().expect("stub files are in folders"))?;
            fs::write(&path, text)?;
        }
        // Stub derivations are built for this machine, whatever platform a config names.
        fs::write(
            root.join("nixpkgs/local-system.nix"),
            format!("\"{}\"\n", host_system()),
        )?;
        fs::create_dir_all(root.join("cache"))?;
        fs::create_dir_all(root.join("config"))?;
        let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(FIXED_MTIME_SECS);
        for flake in ["nixpkgs", "thymis"] {
            let dir = root.join(flake);
            for entry in fs::read_dir(&dir)? {
                fs::File::open(entry?.path())?.set_modified(mtime)?;
            }
            fs::File::open(&dir)?.set_modified(mtime)?;
        }
        Ok(NixStub { root, _temp: None })
    }

    /// The folder holding `nixpkgs/`, `thymis/`, `cache/` and `config/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The `nixpkgs` stub flake.
    pub fn nixpkgs_dir(&self) -> PathBuf {
        self.root.join("nixpkgs")
    }

    /// The `thymis` stub flake.
    pub fn thymis_dir(&self) -> PathBuf {
        self.root.join("thymis")
    }

    /// `(input, flake reference)` pairs for `--override-input`.
    pub fn input_overrides(&self) -> Vec<(String, String)> {
        vec![
            (
                "thymis".to_owned(),
                format!("path:{}", self.thymis_dir().display()),
            ),
            (
                "nixpkgs".to_owned(),
                format!("path:{}", self.nixpkgs_dir().display()),
            ),
        ]
    }

    /// `--override-input thymis path:… --override-input nixpkgs path:…`, to follow a flake
    /// subcommand (`flake lock`, `flake update`, `build`, `eval`, …).
    pub fn override_args(&self) -> Vec<String> {
        self.input_overrides()
            .into_iter()
            .flat_map(|(input, reference)| ["--override-input".to_owned(), input, reference])
            .collect()
    }

    /// Environment for nix: its caches (fetcher and evaluation caches) and user configuration
    /// live in this stub's folder, so tests do not share them.
    pub fn envs(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("XDG_CACHE_HOME", self.root.join("cache")),
            ("XDG_CONFIG_HOME", self.root.join("config")),
        ]
    }

    /// `nix <COMMON_ARGS> <args…> <override_args>` with [`NixStub::envs`]; `args` must start with
    /// a subcommand that takes flake options.
    pub fn nix(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nix");
        command
            .args(COMMON_ARGS)
            .args(args)
            .args(self.override_args())
            .envs(self.envs());
        command
    }
}

impl Default for NixStub {
    fn default() -> Self {
        NixStub::new()
    }
}

/// A Custom Nix definition that makes the system derivation unique (`thymis.stub.nonce`), so that
/// a build really runs instead of finding the store path of an earlier test run.
pub fn unique_nonce_definition() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "thymis.stub.nonce = \"{nanos}-{}-{count}\";",
        std::process::id()
    )
}

/// Runs the command and returns its output; panics with its stderr when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs the command and returns its output, whatever its exit status.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (is nix-bin installed?): {e}"))
}
