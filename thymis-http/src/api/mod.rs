//! The `/api` routes.

pub mod artifacts;
pub mod controller_settings;
pub mod external_repositories;
pub mod secrets;
pub mod state;
