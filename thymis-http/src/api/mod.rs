//! The `/api` routes.

pub mod state;
