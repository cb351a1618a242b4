//! Thymis core library: the declarative state of a fleet of NixOS devices, the modules it is
//! made of, and its rendering into a git-versioned Nix flake.
//!
//! - [`state`]: `state.json` (read in every upstream version, written as 0.0.9) and validation.
//! - [`module`]: the `Module` trait, setting types, the registry and the built-in modules.
//! - [`nix`]: the typed Nix builder and printer, the flake renderer, flake references.
//! - [`repository`]: the project on disk, in git.

#![warn(missing_docs)]

pub mod module;
pub mod nix;
pub mod repository;
pub mod state;
