//! The JSON messages in both directions (agent-protocol.md §4, §6), with upstream's field names.
//! Fields we add for our own agent are optional and skipped when absent, so upstream agents
//! and controllers see exactly the frames they know.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// The envelope of every text frame: `{"inner": {"kind": …, …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// The message.
    pub inner: T,
}

/// Why a text frame could not be read.
#[derive(Debug)]
pub enum DecodeError {
    /// Not JSON, not an envelope, or a known kind with wrong fields.
    Malformed(serde_json::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(err) => write!(f, "malformed frame: {err}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a message as the text of one frame.
pub fn encode<T: Serialize>(message: &T) -> String {
    #[derive(Serialize)]
    struct Borrowed<'a, T> {
        inner: &'a T,
    }
    // Serialising our own types into a String cannot fail (no maps with non-string keys).
    serde_json::to_string(&Borrowed { inner: message }).unwrap_or_default()
}

/// Decodes the text of one frame. A kind this side does not know decodes to the type's
/// `Unknown` variant, which receivers skip (upstream does the same).
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, DecodeError> {
    serde_json::from_str::<Envelope<T>>(text)
        .map(|envelope| envelope.inner)
        .map_err(DecodeError::Malformed)
}

/// A network interface as the agent reports it (excluding `lo`; lists sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// IPv4 addresses without prefix length, sorted.
    #[serde(default)]
    pub ipv4_addresses: Vec<String>,
    /// IPv6 addresses without prefix length, sorted.
    #[serde(default)]
    pub ipv6_addresses: Vec<String>,
    /// MAC address, lower case with colons, if the interface has one.
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// The first frame of an agent (agent-protocol.md §4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// The agent token from `thymis-token.txt`.
    pub token: String,
    /// Hardware ids (`pi-serial-number`, `dmi-board-serial`, `dmi-product-uuid`) that exist.
    #[serde(default)]
    pub hardware_ids: BTreeMap<String, String>,
    /// The device identity: `ssh-ed25519 <base64>` of its SSH host key.
    pub public_key: String,
    /// The config the device believes it runs (from its image metadata).
    #[serde(default)]
    pub deployed_config_id: Option<String>,
    /// Deprecated; always empty.
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// The device's network interfaces.
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Total RAM in bytes.
    #[serde(default)]
    pub ram_bytes: Option<u64>,
    /// The text of the error that ended the previous connection.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Ours: the agent's name and version, e.g. `thymis-agent/0.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Ours: the PEM `sshsig` signature of the challenge nonce made with the host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Ours: the agent speaks binary channel frames.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary_frames: bool,
}

/// One metrics sample, sent every 60 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// When it was taken, RFC 3339 UTC.
    pub timestamp: String,
    /// CPU use since the previous sample, 0–100.
    pub cpu_percent: f64,
    /// RAM in use, 0–100.
    pub ram_percent: f64,
    /// Use of the root file system, 0–100.
    pub disk_percent: f64,
}

/// The outcome of a `switch_to_new_config` (agent-protocol.md §6, §7.4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SwitchResult {
    /// The deploy task that asked for the switch.
    pub task_id: String,
    /// The config now active, if known.
    #[serde(default)]
    pub configuration_id: Option<String>,
    /// Its commit.
    #[serde(default)]
    pub config_commit: Option<String>,
    /// Whether the new generation was activated.
    #[serde(default)]
    pub is_activated: Option<bool>,
    /// Whether `switch-to-configuration` succeeded.
    #[serde(default)]
    pub switch_success: Option<bool>,
    /// Output of the switch.
    #[serde(default)]
    pub stdout: Option<String>,
    /// Errors of the switch.
    #[serde(default)]
    pub stderr: Option<String>,
    /// Legacy agents: success of the whole switch.
    #[serde(default)]
    pub success: Option<bool>,
    /// Legacy agents: the error.
    #[serde(default)]
    pub error: Option<String>,
}

/// One line of the device's log (syslog numbering for severity and facility).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Stable id of the entry, so a resend after a reconnect is stored once.
    pub uuid: String,
    /// When it was logged, RFC 3339 UTC.
    pub timestamp: String,
    /// The message text.
    pub message: String,
    /// Syslog facility, 0–23.
    #[serde(default)]
    pub facility: Option<u8>,
    /// Syslog severity, 0 (emergency) – 7 (debug).
    #[serde(default)]
    pub severity: Option<u8>,
    /// The program that logged it.
    #[serde(default)]
    pub programname: Option<String>,
    /// The syslog tag, e.g. `sshd[812]:`.
    #[serde(default)]
    pub syslogtag: Option<String>,
}

/// Messages from an agent to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The first frame: identity and authentication.
    Start(Start),
    /// The device opened the requested TCP connection.
    InitiateConnectionOk {
        /// The channel.
        connection_id: String,
        /// Ours: the agent's receive window for this channel (binary frames only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<u32>,
    },
    /// The device could not open it.
    InitiateConnectionError {
        /// The channel.
        connection_id: String,
        /// Why.
        message: String,
    },
    /// Bytes read from the device-side socket (upstream agents; base64).
    TcpData {
        /// The channel.
        connection_id: String,
        /// The bytes, base64.
        data_base64: String,
    },
    /// Writing to the device-side socket failed.
    ConnectionReset {
        /// The channel.
        connection_id: String,
        /// Why.
        message: String,
    },
    /// Liveness, every 10 s.
    KeepAlive,
    /// A metrics sample.
    Metrics(Metrics),
    /// The interfaces changed.
    NetworkInterfaces {
        /// All interfaces now.
        network_interfaces: Vec<NetworkInterface>,
    },
    /// The result of a switch.
    SwitchToNewConfigResult(SwitchResult),
    /// Ours: a batch of the device's log lines.
    DeviceLogs {
        /// The lines, oldest first.
        entries: Vec<LogEntry>,
    },
    /// Any kind this version does not know.
    #[serde(other)]
    Unknown,
}

/// Where a secret goes on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    /// The secret's uuid (key into `secrets`).
    pub secret_id: String,
    /// Absolute path on the device.
    pub path: String,
    /// Owner user name.
    #[serde(default)]
    pub owner: Option<String>,
    /// Owner group name.
    #[serde(default)]
    pub group: Option<String>,
    /// Mode as an octal string, e.g. `0600`.
    #[serde(default)]
    pub mode: Option<String>,
}

/// Secrets for the device: each value is base64 of an age ciphertext (to the host key, or
/// in `thymis-secrets-initial.json` to the token as passphrase).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SecretsMessage {
    /// Secret uuid → base64 age ciphertext.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Where each goes.
    #[serde(default)]
    pub secret_infos: Vec<SecretInfo>,
}

/// A request to open a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitiateConnection {
    /// The channel, a uuid chosen by the controller.
    pub connection_id: String,
    /// Where the device connects to (the controller uses `localhost`/`127.0.0.1`).
    pub target_ip: String,
    /// The port.
    pub target_port: u16,
    /// Always `tcp`.
    pub protocol: String,
    /// Ours: the channel's number in binary frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
    /// Ours: the controller's receive window for this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

/// Messages from the controller to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControllerMessage {
    /// Ours: sent at once on connect; our agent signs the nonce.
    Challenge {
        /// Base64 of [`crate::CHALLENGE_NONCE_BYTES`] random bytes.
        nonce: String,
    },
    /// Open a TCP connection on the device.
    InitiateConnection(InitiateConnection),
    /// Bytes for a channel (upstream agents; base64).
    TcpData {
        /// The channel.
        connection_id: String,
        /// The bytes, base64.
        data_base64: String,
    },
    /// The controller closed a channel.
    ConnectionClose {
        /// The channel.
        connection_id: String,
        /// Why.
        message: String,
    },
    /// Liveness, every 30 s.
    KeepAlive,
    /// Admission is complete.
    SuccessfullySshConnected,
    /// The device must generate new host keys (its disk moved or the key is duplicated).
    UpdatePublicKey,
    /// Secrets to place.
    SendSecrets(SecretsMessage),
    /// The device's hostname.
    UpdateHostname {
        /// The new hostname.
        hostname: String,
    },
    /// Activate a system that has already been copied to the device.
    SwitchToNewConfig {
        /// The store path of the system.
        new_path_to_config: String,
        /// Its config.
        configuration_id: String,
        /// Its commit.
        config_commit: String,
        /// The deploy task.
        task_id: String,
    },
    /// Any kind this version does not know.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_start_frame_decodes() {
        let text = r#"{"inner":{"kind":"start","token":"thymis-ab","hardware_ids":{"pi-serial-number":"1"},
            "public_key":"ssh-ed25519 AAAA","deployed_config_id":"pi","ip_addresses":[],
            "network_interfaces":[{"interface":"eth0","ipv4_addresses":["10.0.0.2"],"ipv6_addresses":[],"mac_address":"aa:bb:cc:dd:ee:ff"}],
            "ram_bytes":1024,"last_error":null,"some_future_field":1}}"#;
        let AgentMessage::Start(start) = decode::<AgentMessage>(text).unwrap() else {
            panic!("not a start message")
        };
        assert_eq!(start.deployed_config_id.as_deref(), Some("pi"));
        assert_eq!(start.network_interfaces[0].interface, "eth0");
        assert!(start.proof.is_none() && !start.binary_frames);
    }

    #[test]
    fn unit_kinds_and_unknown_kinds() {
        assert_eq!(
            encode(&AgentMessage::KeepAlive),
            r#"{"inner":{"kind":"keep_alive"}}"#
        );
        assert_eq!(
            encode(&ControllerMessage::SuccessfullySshConnected),
            r#"{"inner":{"kind":"successfully_ssh_connected"}}"#
        );
        assert_eq!(
            decode::<AgentMessage>(r#"{"inner":{"kind":"from_the_future","x":1}}"#).unwrap(),
            AgentMessage::Unknown
        );
        assert!(decode::<AgentMessage>(r#"{"inner":{"kind":"tcp_data"}}"#).is_err());
        assert!(decode::<AgentMessage>("not json").is_err());
    }

    #[test]
    fn our_extensions_are_omitted_for_upstream() {
        let open = ControllerMessage::InitiateConnection(InitiateConnection {
            connection_id: "c".into(),
            target_ip: "127.0.0.1".into(),
            target_port: 22,
            protocol: "tcp".into(),
            channel: None,
            window: None,
        });
        assert_eq!(
            encode(&open),
            r#"{"inner":{"kind":"initiate_connection","connection_id":"c","target_ip":"127.0.0.1","target_port":22,"protocol":"tcp"}}"#
        );
        let round: ControllerMessage = decode(&encode(&open)).unwrap();
        assert_eq!(round, open);
    }
}
