//! SSH for the controller. Owns the controller's key pair (`id_thymis`, `id_thymis.pub` in the
//! data directory), which both authenticates the controller to devices over SSH and is the age
//! identity that secrets are encrypted to at rest (see [`crate::secrets`]), and the SSH client
//! that logs in to devices with it over TCP or a relay channel ([`connect`], [`prove_host_key`]).

mod client;
mod controller_key;

pub use client::{
    connect, parse_host_key_line, prove_host_key, ExecOutput, PtyChannel, PtyOutput, PtyReader,
    PtyWriter, SshError, SshSession, SshTarget, DEFAULT_OUTPUT_LIMIT, PROOF_COMMAND, PROOF_USER,
};
pub use controller_key::{
    ControllerKey, KeyError, CONTROLLER_KEY_COMMENT, PRIVATE_KEY_FILE, PUBLIC_KEY_FILE,
};
