//! Thymis core library: the declarative state of a fleet of NixOS devices, the modules it is
//! made of, and its rendering into a git-versioned Nix flake.
//!
//! - [`state`]: `state.json` (read in every upstream version, written as 0.0.9) and validation.
//! - [`module`]: the `Module` trait, setting types, the registry and the built-in modules.
//! - [`nix`]: the typed Nix builder and printer, the flake renderer, flake references.
//! - [`repository`]: the project on disk, in git.
//! - [`project`]: the live project of a controller (state snapshots with revisions).
//! - [`external`]: external repositories (discovery, GitHub/GitLab APIs, their tokens).
//! - [`devices`]: the device registry (admission, reports, fleet views, agent tokens).
//! - [`settings`], [`events`]: controller configuration and the event bus.
//! - [`ssh`], [`secrets`]: the controller key pair; age encryption of secrets at rest and in delivery.

#![warn(missing_docs)]

pub mod agent;
pub mod auth;
pub mod auto_update;
pub mod build;
pub mod devices;
pub mod events;
pub mod external;
pub mod image;
pub mod module;
pub mod nix;
pub mod project;
pub mod repository;
pub mod secrets;
pub mod settings;
pub mod ssh;
pub mod state;
pub mod store;
pub mod task;
