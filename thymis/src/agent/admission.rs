//! Admission of an agent (agent-protocol.md §5): a valid token, proof that the agent holds the
//! SSH host key it claims, the duplicate-key rule, then the device record.
//!
//! Proof: our agent signs the connection's fresh challenge nonce with its host key (one round
//! trip, no sshd needed). An upstream agent cannot; it is proved the upstream way, by an SSH
//! login through its own relay to the device's sshd with the host key pinned to the claim.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ssh_key::{Algorithm, PublicKey, SshSig};
use thymis_protocol::{ControllerMessage, SecretsMessage, Start, CHALLENGE_NONCE_BYTES};
use uuid::Uuid;

use super::connection::AgentService;
use super::relay::{ChannelMux, Outbox};
use crate::devices::{Admission, AdmissionOutcome};

/// How long the SSH proof of an upstream agent may take.
const SSH_PROOF_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an existing connection of the same key has to answer a ping.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(3);

/// A fresh random challenge nonce.
pub(super) fn new_nonce() -> [u8; CHALLENGE_NONCE_BYTES] {
    let mut nonce = [0u8; CHALLENGE_NONCE_BYTES];
    if let Err(err) = getrandom::fill(&mut nonce) {
        // Without randomness a challenge could be replayed; no agent can be admitted safely.
        panic!("the operating system's random source failed ({err})");
    }
    nonce
}

/// Why an agent was not admitted. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    #[error("unknown or revoked agent token")]
    Token,
    #[error("unusable host key: {0}")]
    Key(String),
    #[error("host key proof failed: {0}")]
    Proof(String),
    #[error("another live connection holds this host key; it was asked to re-key")]
    Duplicate,
    #[error("re-key: {0}")]
    Rekey(String),
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// An admitted device and what it is sent before `successfully_ssh_connected`.
#[derive(Debug)]
pub(super) struct Admitted {
    pub device_id: Uuid,
    pub connection_id: Uuid,
    pub agent_token_id: Uuid,
    pub hostname: Option<String>,
    pub secrets: Option<SecretsMessage>,
}

impl Admitted {
    /// Secrets, hostname, then the admission notice, in upstream's order.
    pub fn send_welcome(&self, outbox: &Outbox) {
        if let Some(secrets) = &self.secrets {
            outbox.message(&ControllerMessage::SendSecrets(secrets.clone()));
        }
        if let Some(hostname) = &self.hostname {
            outbox.message(&ControllerMessage::UpdateHostname {
                hostname: hostname.clone(),
            });
        }
        outbox.message(&ControllerMessage::SuccessfullySshConnected);
    }
}

/// Parses a claimed host key: `ssh-ed25519 <base64>` exactly (what agents send).
fn claimed_key(line: &str) -> Result<PublicKey, Refusal> {
    let key = PublicKey::from_openssh(line).map_err(|err| Refusal::Key(err.to_string()))?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(Refusal::Key(format!(
            "{} keys are not accepted",
            key.algorithm()
        )));
    }
    if line.split_whitespace().count() != 2 {
        return Err(Refusal::Key(
            "expected `ssh-ed25519 <base64>` without a comment".into(),
        ));
    }
    Ok(key)
}

/// Checks our agent's signature of the nonce.
pub fn verify_proof(key: &PublicKey, nonce: &[u8], proof_pem: &str) -> Result<(), String> {
    let signature = SshSig::from_pem(proof_pem).map_err(|err| err.to_string())?;
    key.verify(thymis_protocol::PROOF_NAMESPACE, nonce, &signature)
        .map_err(|err| err.to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Refusal::Internal(err.to_string()))
}

impl AgentService {
    /// Runs admission for a start message; the connection's receive loop keeps running.
    pub(super) async fn admit(
        &self,
        start: &Start,
        nonce: &[u8],
        mux: &Arc<ChannelMux>,
        remote_addr: Option<IpAddr>,
    ) -> Result<Admitted, Refusal> {
        let registry = self.registry.clone();
        let token = start.token.clone();
        let token_record = blocking(move || registry.check_agent_token(&token))
            .await?
            .map_err(|err| Refusal::Internal(err.to_string()))?
            .ok_or(Refusal::Token)?;

        let key = claimed_key(&start.public_key)?;
        match &start.proof {
            Some(proof) => verify_proof(&key, nonce, proof).map_err(Refusal::Proof)?,
            None => self.prove_over_ssh(&start.public_key, mux).await?,
        }

        if let Some(existing) = self.hub.link_by_key(&start.public_key) {
            if existing.is_alive(LIVENESS_TIMEOUT).await {
                // Two live devices hold one key (a cloned disk): the one already connected
                // gets new keys and comes back as another device (§5 step 3).
                // The agent re-keys but does not reconnect by itself: drop it (the notice is
                // written before the socket closes).
                existing
                    .mux
                    .outbox()
                    .message(&ControllerMessage::UpdatePublicKey);
                existing.closer.cancel();
                return Err(Refusal::Duplicate);
            }
            existing.closer.cancel();
        }

        let admission = Admission {
            public_key: start.public_key.clone(),
            hardware_ids: start.hardware_ids.clone(),
            deployed_config_id: start.deployed_config_id.clone(),
            network_interfaces: start.network_interfaces.clone(),
            ram_bytes: start.ram_bytes,
            remote_addr,
            agent_token_id: token_record.id,
        };
        let registry = self.registry.clone();
        let outcome = blocking(move || registry.admit(&admission))
            .await?
            .map_err(|err| Refusal::Internal(err.to_string()))?;
        let (device_id, connection_id) = match outcome {
            AdmissionOutcome::Admitted {
                device_id,
                connection_id,
            } => (device_id, connection_id),
            AdmissionOutcome::Rekey { reason } => return Err(Refusal::Rekey(reason)),
            AdmissionOutcome::Refused { reason } => return Err(Refusal::Refused(reason)),
        };

        let registry = self.registry.clone();
        let (hostname, secrets) = blocking(move || {
            let hostname = registry.hostname_for(device_id);
            let secrets = registry.secrets_for(device_id);
            (hostname, secrets)
        })
        .await?;
        let hostname = hostname
            .map_err(|err| tracing::warn!(%device_id, %err, "no hostname for the device"))
            .ok();
        let secrets = secrets
            .map_err(
                |err| tracing::warn!(%device_id, %err, "could not prepare the device's secrets"),
            )
            .ok()
            .flatten();
        Ok(Admitted {
            device_id,
            connection_id,
            agent_token_id: token_record.id,
            hostname,
            secrets,
        })
    }

    /// The upstream proof: SSH to the device's own sshd through this connection's relay,
    /// as root with the controller key, accepting only the claimed host key.
    async fn prove_over_ssh(&self, claimed: &str, mux: &Arc<ChannelMux>) -> Result<(), Refusal> {
        let stream = mux
            .open(22)
            .await
            .map_err(|err| Refusal::Proof(err.to_string()))?;
        crate::ssh::prove_host_key(stream, claimed, &self.controller_key, SSH_PROOF_TIMEOUT)
            .await
            .map_err(|err| Refusal::Proof(err.to_string()))
    }
}
