//! The `/api` routes.

pub mod artifacts;
pub mod controller_settings;
pub mod secrets;
pub mod state;
