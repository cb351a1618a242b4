//! The `/api` routes.

pub mod artifacts;
pub mod secrets;
pub mod state;
