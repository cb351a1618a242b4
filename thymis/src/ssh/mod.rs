//! SSH for the controller. Owns the controller's key pair (`id_thymis`, `id_thymis.pub` in the
//! data directory), which both authenticates the controller to devices over SSH and is the age
//! identity that secrets are encrypted to at rest (see [`crate::secrets`]).

mod controller_key;

pub use controller_key::{
    ControllerKey, KeyError, CONTROLLER_KEY_COMMENT, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE,
};
