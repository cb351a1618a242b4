//! The project's `flake.nix`: inputs from the state's external repositories plus the built-in
//! `thymis` and `nixpkgs`, and outputs that read `state.json` so that editing configs and tags
//! never changes this file (and never needs a new `nix flake lock`).

use indexmap::IndexMap;

use super::expr::{lambda, AttrSet, BinOp, Binding, Expr, NixString, Param, Pattern};
use super::is_identifier;
use crate::state::Repo;

/// The upstream Thymis flake used when the controller is not told otherwise.
pub const DEFAULT_THYMIS_URL: &str = "github:thymis-io/thymis/v0.9";

/// Why the flake cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlakeError {
    /// The outputs function binds every input by name, so names must be Nix identifiers.
    #[error("flake input name `{0}` is not a Nix identifier (letters, digits, `_`, `-`, `'`; not starting with a digit)")]
    InputName(String),
    /// Input names `self`, `inputs` and `builtins` are taken by the flake itself.
    #[error("flake input name `{0}` is reserved (self, inputs and builtins mean something else in flake.nix)")]
    ReservedInputName(String),
    /// An `inputs_follows` key must be an input name too.
    #[error("input `{input}`: `inputs_follows` key `{key}` is not a Nix identifier")]
    FollowsKey {
        /// The repository.
        input: String,
        /// The offending key.
        key: String,
    },
}

/// The inputs of a project flake: built-ins overridden by the state's repositories.
pub fn project_inputs(
    thymis_url: &str,
    repositories: &IndexMap<String, Repo>,
) -> IndexMap<String, Repo> {
    let mut inputs = IndexMap::new();
    inputs.insert(
        "thymis".to_owned(),
        Repo {
            url: Some(thymis_url.to_owned()),
            ..Repo::default()
        },
    );
    inputs.insert(
        "nixpkgs".to_owned(),
        Repo {
            follows: Some("thymis/nixpkgs".to_owned()),
            ..Repo::default()
        },
    );
    for (name, repo) in repositories {
        inputs.insert(name.clone(), repo.clone());
    }
    inputs
}

/// Names the flake's outputs function gives its own meaning: an input of that name would hide
/// it.
const RESERVED_INPUT_NAMES: [&str; 3] = ["self", "inputs", "builtins"];

/// Why `name` cannot name a flake input: the outputs function binds every input by name.
pub fn input_name_problem(name: &str) -> Option<FlakeError> {
    if !is_identifier(name) {
        Some(FlakeError::InputName(name.to_owned()))
    } else if RESERVED_INPUT_NAMES.contains(&name) {
        Some(FlakeError::ReservedInputName(name.to_owned()))
    } else {
        None
    }
}

/// Whether a repository becomes a flake input: without a url or follows, Nix would look its
/// name up in the flake registry, so such an unfinished entry is left out.
pub fn is_flake_input(repo: &Repo) -> bool {
    repo.url.is_some() || repo.follows.is_some()
}

/// Renders `flake.nix` for the given inputs (see [`project_inputs`]).
pub fn render_flake(inputs: &IndexMap<String, Repo>) -> Result<String, FlakeError> {
    let mut input_attrs = AttrSet::new();
    let mut args: Vec<String> = vec!["self".into()];
    for (name, repo) in inputs.iter().filter(|(_, repo)| is_flake_input(repo)) {
        if let Some(problem) = input_name_problem(name) {
            return Err(problem);
        }
        args.push(name.clone());
        if let Some(url) = &repo.url {
            input_attrs.set_path(vec![name.clone(), "url".into()], url.as_str());
        }
        if let Some(follows) = &repo.follows {
            input_attrs.set_path(vec![name.clone(), "follows".into()], follows.as_str());
        }
        for (key, target) in &repo.inputs_follows {
            if !is_identifier(key) {
                return Err(FlakeError::FollowsKey {
                    input: name.clone(),
                    key: key.clone(),
                });
            }
            input_attrs.set_path(
                vec![name.clone(), "inputs".into(), key.clone(), "follows".into()],
                target.as_str(),
            );
        }
    }

    let outputs = Expr::Lambda(
        Param::Set(Pattern {
            args,
            ellipsis: true,
            bind: Some("inputs".into()),
        }),
        Box::new(outputs_body()),
    );

    let flake = AttrSet::new()
        .with("description", "Thymis")
        .with("inputs", input_attrs)
        .with("outputs", outputs);
    Ok(format!("{}\n", Expr::Attrs(flake).to_nix()))
}

fn var(name: &str) -> Expr {
    Expr::var(name)
}

/// `./<folder> + "/${name}"`
fn folder_of(folder: &str, name: Expr) -> Expr {
    Expr::BinOp(
        Box::new(Expr::Path(format!("./{folder}"))),
        BinOp::Add,
        Box::new(NixString::new().text("/").interp(name).into()),
    )
}

/// `dir: <the regular *.nix files in dir>`
fn nix_files_in() -> Expr {
    let is_nix_file = Expr::BinOp(
        Box::new(Expr::BinOp(
            Box::new(var("type")),
            BinOp::Eq,
            Box::new(Expr::str("regular")),
        )),
        BinOp::And,
        Box::new(var("lib.hasSuffix").apply(vec![Expr::str(".nix"), var("name")])),
    );
    let to_path = lambda(
        "name",
        lambda(
            "type",
            Expr::BinOp(
                Box::new(var("dir")),
                BinOp::Add,
                Box::new(NixString::new().text("/").interp(var("name")).into()),
            ),
        ),
    );
    lambda(
        "dir",
        var("lib.mapAttrsToList").apply(vec![
            to_path,
            var("lib.filterAttrs").apply(vec![
                lambda("name", lambda("type", is_nix_file)),
                var("builtins.readDir").apply(vec![var("dir")]),
            ]),
        ]),
    )
}

fn bind(name: &str, value: Expr) -> Binding {
    Binding::Assign(vec![name.into()], value)
}

fn outputs_body() -> Expr {
    let config_modules = var("nixFilesIn")
        .apply(vec![folder_of("hosts", var("config.identifier"))])
        .concat(var("builtins.concatMap").apply(vec![
            lambda(
                "tag",
                var("nixFilesIn").apply(vec![folder_of("tags", var("tag"))]),
            ),
            var("config.tags"),
        ]))
        .concat(Expr::List(vec![var("thymis.nixosModules.thymis-device")]));
    let mut special_args = AttrSet::new();
    special_args.inherit(&["inputs"]);
    let system = var("lib.nixosSystem").apply(vec![AttrSet::new()
        .with("modules", config_modules)
        .with("specialArgs", special_args)
        .into()]);
    let to_configuration = lambda(
        "config",
        AttrSet::new()
            .with("name", var("config.identifier"))
            .with("value", system)
            .into(),
    );
    let has_identifier = lambda(
        "config",
        Expr::BinOp(
            Box::new(var("config.identifier")),
            BinOp::NotEq,
            Box::new(Expr::str("")),
        ),
    );
    let toplevels = var("builtins.mapAttrs").apply(vec![
        lambda(
            "name",
            lambda("nixos", var("nixos.config.system.build.toplevel")),
        ),
        var("nixosConfigurations"),
    ]);
    let thymis_package = lambda(
        "system",
        AttrSet::new()
            .with(
                "thymis",
                var("builtins.getAttr")
                    .apply(vec![var("system"), var("nixpkgs.legacyPackages")])
                    .select(vec!["writeText".into()])
                    .apply(vec![
                        Expr::str("thymis.json"),
                        var("builtins.toJSON").apply(vec![toplevels]),
                    ]),
            )
            .into(),
    );
    Expr::Let(
        vec![
            bind("lib", var("nixpkgs.lib")),
            bind(
                "state",
                var("builtins.fromJSON").apply(vec![
                    var("builtins.readFile").apply(vec![Expr::Path("./state.json".into())])
                ]),
            ),
            bind("nixFilesIn", nix_files_in()),
            bind("toNixosConfiguration", to_configuration),
            bind(
                "nixosConfigurations",
                var("builtins.listToAttrs").apply(vec![var("builtins.map").apply(vec![
                    var("toNixosConfiguration"),
                    var("builtins.filter").apply(vec![has_identifier, var("state.configs")]),
                ])]),
            ),
        ],
        Box::new(
            AttrSet::new()
                .with("nixosConfigurations", var("nixosConfigurations"))
                .with(
                    "packages",
                    var("lib.genAttrs").apply(vec![
                        Expr::List(vec![Expr::str("x86_64-linux"), Expr::str("aarch64-linux")]),
                        thymis_package,
                    ]),
                )
                .with("inputs", var("inputs"))
                .into(),
        ),
    )
}
