//! The controller's SSH client over any byte stream: a TCP connection or a relay channel to a
//! device's port 22. The device's host key is pinned (the session is refused unless the server
//! proves possession of exactly the expected key), the controller authenticates with its own key
//! ([`ControllerKey`]), and the session runs commands ([`SshSession::exec`]) or interactive
//! shells in a pseudo-terminal ([`SshSession::open_shell_pty`]).
//!
//! [`prove_host_key`] is the admission proof for upstream agents (agent-protocol.md §5 step 5).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect, Sig};
use ssh_key::{HashAlg, LineEnding, PublicKey};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::ControllerKey;

/// How many bytes of stdout, and separately of stderr, [`SshSession::exec`] keeps.
pub const DEFAULT_OUTPUT_LIMIT: usize = 8 * 1024 * 1024;

/// The command whose success completes the admission proof, as upstream runs it.
pub const PROOF_COMMAND: &str = "cat /etc/os-release";

/// The user [`prove_host_key`] logs in as.
pub const PROOF_USER: &str = "root";

/// An idle session sends a keep-alive after this long, so a dead peer is noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Unanswered keep-alives after which a session is closed.
const KEEPALIVE_MAX: usize = 3;
/// SSH extended-data type code of stderr (RFC 4254 §5.2).
const STDERR_EXT: u32 = 1;

/// Why an SSH operation failed. Messages carry fingerprints at most, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshError {
    /// A host key line is not `<type> <base64> [comment]` of a known key type.
    #[error("invalid host key line: {0}")]
    InvalidHostKeyLine(String),
    /// The host key is of a type this client cannot parse or verify.
    #[error("host keys of type {0} are not supported; the device must offer an ssh-ed25519 key")]
    UnsupportedHostKeyType(String),
    /// The server presented a different host key than the pinned one.
    #[error("the server presented host key {presented}, but {expected} was expected")]
    HostKeyMismatch {
        /// SHA-256 fingerprint of the pinned key.
        expected: String,
        /// SHA-256 fingerprint (or description) of the presented key.
        presented: String,
    },
    /// The server did not accept the controller key for this user.
    #[error("the server refused the controller key for user {user}")]
    AuthRejected {
        /// The user name that was tried.
        user: String,
    },
    /// Connecting (version exchange, key exchange and authentication) took too long.
    #[error("SSH connection not established within {0:?}")]
    Timeout(Duration),
    /// The peer broke the SSH protocol, or the stream failed or closed.
    #[error("SSH protocol error: {0}")]
    Protocol(String),
    /// The server refused a channel request (`exec`, `pty-req`, `shell`, …).
    #[error("the server refused the {0} request")]
    RequestRefused(&'static str),
    /// A command ran but did not succeed (used by [`prove_host_key`]).
    #[error("`{command}` failed on the device ({status})")]
    CommandFailed {
        /// The command.
        command: String,
        /// How it ended, e.g. `exit status 1`.
        status: String,
    },
    /// The controller key cannot be used for SSH.
    #[error("the controller key cannot be used for SSH: {0}")]
    ControllerKey(String),
}

fn protocol(e: russh::Error) -> SshError {
    SshError::Protocol(e.to_string())
}

/// Where to log in and which host key the server must present.
#[derive(Clone, Debug)]
pub struct SshTarget {
    /// The user to log in as.
    pub user: String,
    /// The pinned host key; any other key ends the connection before authentication.
    pub expected_host_key: PublicKey,
}

/// Parses an OpenSSH public key line, `<type> <base64> [comment]`, as in `known_hosts` without the
/// host column, `ssh_host_*_key.pub` files, and the `public_key` an agent claims.
pub fn parse_host_key_line(line: &str) -> Result<PublicKey, SshError> {
    let mut fields = line.split_whitespace();
    let (Some(kind), Some(base64)) = (fields.next(), fields.next()) else {
        return Err(SshError::InvalidHostKeyLine(
            "expected `<type> <base64> [comment]`".into(),
        ));
    };
    // The type name is also inside the blob; a line whose two disagree is not a key line.
    if let Some(inner) = blob_key_type(base64) {
        if inner != kind {
            return Err(SshError::InvalidHostKeyLine(format!(
                "the line says {}, but the key is {}",
                printable(kind),
                printable(&inner)
            )));
        }
    }
    PublicKey::from_openssh(&format!("{kind} {base64}")).map_err(|e| match e {
        // Only ed25519 support is compiled into ssh-key.
        ssh_key::Error::AlgorithmUnknown => SshError::UnsupportedHostKeyType(printable(kind)),
        e => SshError::InvalidHostKeyLine(e.to_string()),
    })
}

/// The key type named at the start of a base64 public key blob (an SSH string), if readable.
fn blob_key_type(base64: &str) -> Option<String> {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    let len = usize::try_from(u32::from_be_bytes(blob.get(..4)?.try_into().ok()?)).ok()?;
    let name = blob.get(4..len.checked_add(4)?)?;
    String::from_utf8(name.to_vec()).ok()
}

/// Untrusted text cut to a length and character set fit for an error message.
fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// `<type> <base64>`, the form in which agents claim their host key.
fn key_line_without_comment(key: &PublicKey) -> Result<String, SshError> {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .map(|line| line.trim_end().to_owned())
        .map_err(|e| SshError::InvalidHostKeyLine(e.to_string()))
}

/// The admission proof for an upstream agent (agent-protocol.md §5 step 5): over `stream` (a relay
/// channel to the device's port 22), log in as `root` with the controller key, with the presented
/// host key required to equal `claimed_key_line` (`<type> <base64>`, exactly as the agent sent
/// it), then run `cat /etc/os-release`, which must exit with status 0. `timeout` bounds the
/// whole proof.
pub async fn prove_host_key<S>(
    stream: S,
    claimed_key_line: &str,
    controller_key: &ControllerKey,
    timeout: Duration,
) -> Result<(), SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let expected_host_key = parse_host_key_line(claimed_key_line)?;
    // Upstream compares the strings, so a comment or any other spelling of the key is refused.
    if key_line_without_comment(&expected_host_key)? != claimed_key_line {
        return Err(SshError::InvalidHostKeyLine(
            "a claimed host key must be exactly `<type> <base64>`".into(),
        ));
    }
    let target = SshTarget {
        user: PROOF_USER.to_owned(),
        expected_host_key,
    };
    let proof = async {
        let session = connect(stream, &target, controller_key, timeout).await?;
        let output = session.exec(PROOF_COMMAND).await;
        session.close().await;
        let output = output?;
        if output.exit_status == Some(0) {
            Ok(())
        } else {
            Err(SshError::CommandFailed {
                command: PROOF_COMMAND.to_owned(),
                status: output.describe_exit(),
            })
        }
    };
    tokio::time::timeout(timeout, proof)
        .await
        .unwrap_or(Err(SshError::Timeout(timeout)))
}

/// Opens an SSH session over `stream`: version exchange, key exchange with the host key pinned to
/// `target.expected_host_key` (only that key's algorithm is offered, so a server with several host
/// keys presents the pinned one), then public-key authentication as `target.user` with `key`.
/// Fails with [`SshError::HostKeyMismatch`] before authenticating if the server presents another
/// key, [`SshError::AuthRejected`] if the server refuses the key, [`SshError::Timeout`] if all
/// this takes longer than `timeout`, and [`SshError::Protocol`] otherwise.
pub async fn connect<S>(
    stream: S,
    target: &SshTarget,
    key: &ControllerKey,
    timeout: Duration,
) -> Result<SshSession, SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::time::timeout(timeout, connect_inner(stream, target, key))
        .await
        .unwrap_or(Err(SshError::Timeout(timeout)))
}

async fn connect_inner<S>(
    stream: S,
    target: &SshTarget,
    key: &ControllerKey,
) -> Result<SshSession, SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let algorithm = host_key_algorithm(&target.expected_host_key)?;
    let private_key = russh_private_key(key)?;
    let expected = target
        .expected_host_key
        .to_bytes()
        .map_err(|e| SshError::InvalidHostKeyLine(e.to_string()))?;
    let handler = PinnedHostKey { expected };
    let config = client::Config {
        preferred: russh::Preferred {
            key: vec![algorithm].into(),
            ..russh::Preferred::default()
        },
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        // Terminals and relayed channels are interactive: send small writes at once.
        nodelay: true,
        ..client::Config::default()
    };

    let mut handle = client::connect_stream(Arc::new(config), stream, handler)
        .await
        .map_err(|e| match e {
            HandlerError::Russh(e) => protocol(e),
            HandlerError::HostKeyMismatch { presented } => SshError::HostKeyMismatch {
                expected: target
                    .expected_host_key
                    .fingerprint(HashAlg::Sha256)
                    .to_string(),
                presented,
            },
        })?;
    let auth = handle
        .authenticate_publickey(
            target.user.clone(),
            PrivateKeyWithHashAlg::new(Arc::new(private_key), None),
        )
        .await
        .map_err(protocol)?;
    if !auth.success() {
        // russh also reports a session that died mid-authentication as a failure.
        if handle.is_closed() {
            return Err(SshError::Protocol(
                "the connection closed during authentication".into(),
            ));
        }
        let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
        return Err(SshError::AuthRejected {
            user: target.user.clone(),
        });
    }
    Ok(SshSession { handle })
}

/// The russh algorithm for the pinned key, if russh can verify signatures of that type.
fn host_key_algorithm(key: &PublicKey) -> Result<russh::keys::Algorithm, SshError> {
    let name = key.algorithm().as_str().to_owned();
    match russh::keys::Algorithm::from_str(&name) {
        Ok(algorithm @ russh::keys::Algorithm::Ed25519)
        | Ok(algorithm @ russh::keys::Algorithm::Ecdsa { .. }) => Ok(algorithm),
        _ => Err(SshError::UnsupportedHostKeyType(name)),
    }
}

/// The controller key in russh's key type (russh uses a newer `ssh-key` than this crate).
fn russh_private_key(key: &ControllerKey) -> Result<russh::keys::PrivateKey, SshError> {
    let pem = key
        .private_key()
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::ControllerKey(e.to_string()))?;
    russh::keys::PrivateKey::from_openssh(pem.as_bytes())
        .map_err(|e| SshError::ControllerKey(e.to_string()))
}

/// The russh client handler: accepts exactly the pinned host key.
struct PinnedHostKey {
    /// The pinned key in SSH wire encoding.
    expected: Vec<u8>,
}

/// Errors of the handler, so that a mismatch stays distinguishable from protocol errors.
#[derive(Debug)]
enum HandlerError {
    Russh(russh::Error),
    HostKeyMismatch { presented: String },
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for PinnedHostKey {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // No certificate algorithm is offered, so this is a misbehaving server.
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(HandlerError::HostKeyMismatch {
                    presented: "a host certificate".into(),
                })
            }
        };
        if presented
            .to_bytes()
            .is_ok_and(|bytes| bytes == self.expected)
        {
            Ok(true)
        } else {
            Err(HandlerError::HostKeyMismatch {
                presented: presented
                    .fingerprint(russh::keys::HashAlg::Sha256)
                    .to_string(),
            })
        }
    }
}

/// An authenticated SSH session. Any number of commands and shells can run on it at once
/// (`&self` methods); it ends with [`SshSession::close`] or when dropped.
pub struct SshSession {
    handle: Handle<PinnedHostKey>,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output, at most the output limit.
    pub stdout: Vec<u8>,
    /// Standard error, at most the output limit.
    pub stderr: Vec<u8>,
    /// The exit status, if the server reported one.
    pub exit_status: Option<u32>,
    /// The signal that ended the command (`TERM`, `KILL`, …), if the server reported one.
    pub exit_signal: Option<String>,
    /// Whether stdout or stderr was cut at the output limit (the rest was read and dropped, so
    /// the command still ran to its end).
    pub truncated: bool,
}

impl ExecOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_status == Some(0)
    }

    fn push(buffer: &mut Vec<u8>, data: &[u8], limit: usize, truncated: &mut bool) {
        let room = limit.saturating_sub(buffer.len());
        let take = data.len().min(room);
        buffer.extend_from_slice(data.get(..take).unwrap_or_default());
        *truncated |= take < data.len();
    }

    fn describe_exit(&self) -> String {
        match (&self.exit_status, &self.exit_signal) {
            (Some(status), _) => format!("exit status {status}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "no exit status".to_owned(),
        }
    }
}

impl SshSession {
    /// Runs `command` (through the user's login shell, as `ssh host command` does) and collects
    /// its output, keeping at most [`DEFAULT_OUTPUT_LIMIT`] bytes of each stream. It has no time
    /// limit of its own (wrap it in `tokio::time::timeout`); dropping the future closes the
    /// channel.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput, SshError> {
        self.exec_with_limit(command, DEFAULT_OUTPUT_LIMIT).await
    }

    /// [`SshSession::exec`] keeping at most `limit` bytes of stdout and of stderr.
    pub async fn exec_with_limit(
        &self,
        command: &str,
        limit: usize,
    ) -> Result<ExecOutput, SshError> {
        let channel = self.handle.channel_open_session().await.map_err(protocol)?;
        let (mut reader, writer) = channel.split();
        let writer = ChannelCloser::new(writer);
        writer.half()?.exec(true, command).await.map_err(protocol)?;
        let mut output = ExecOutput::default();
        while let Some(message) = reader.wait().await {
            match message {
                // Dropping `writer` closes the channel.
                ChannelMsg::Failure => return Err(SshError::RequestRefused("exec")),
                ChannelMsg::Data { data } => {
                    ExecOutput::push(&mut output.stdout, &data, limit, &mut output.truncated)
                }
                ChannelMsg::ExtendedData { data, ext } if ext == STDERR_EXT => {
                    ExecOutput::push(&mut output.stderr, &data, limit, &mut output.truncated)
                }
                ChannelMsg::ExitStatus { exit_status } => output.exit_status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    output.exit_signal = Some(signal_name_of(&signal_name))
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        // The server closed the channel (or the session ended): nothing left to close.
        writer.forget();
        Ok(output)
    }

    /// Starts the user's login shell in a pseudo-terminal of type `term` (e.g. `xterm-256color`)
    /// sized `cols` × `rows`, for interactive use such as a web terminal.
    pub async fn open_shell_pty(
        &self,
        term: &str,
        cols: u32,
        rows: u32,
    ) -> Result<PtyChannel, SshError> {
        let channel = self.handle.channel_open_session().await.map_err(protocol)?;
        let (mut reader, writer) = channel.split();
        let writer = ChannelCloser::new(writer);
        writer
            .half()?
            .request_pty(true, term, cols, rows, 0, 0, &[])
            .await
            .map_err(protocol)?;
        expect_success(&mut reader, "pty-req").await?;
        writer.half()?.request_shell(true).await.map_err(protocol)?;
        expect_success(&mut reader, "shell").await?;
        Ok(PtyChannel {
            reader: PtyReader {
                reader,
                hung_up: writer.hung_up.clone(),
                closed: false,
            },
            writer: PtyWriter { channel: writer },
        })
    }

    /// Whether the session has ended (closed, or the connection broke).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Ends the session politely; open channels end with it. Errors are ignored: the session is
    /// gone either way.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Waits for the server's answer to a channel request sent with `want_reply`.
async fn expect_success(
    reader: &mut ChannelReadHalf,
    request: &'static str,
) -> Result<(), SshError> {
    loop {
        match reader.wait().await {
            Some(ChannelMsg::Success) => return Ok(()),
            Some(ChannelMsg::Failure) => return Err(SshError::RequestRefused(request)),
            // Window adjustments and the like may come first.
            Some(_) => {}
            None => {
                return Err(SshError::Protocol(format!(
                    "the channel closed before the server answered the {request} request"
                )))
            }
        }
    }
}

fn signal_name_of(signal: &Sig) -> String {
    let name = match signal {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_owned()
}

/// The sending half of a channel, which closes the channel when dropped: russh leaves a dropped
/// channel open, which would keep its command or shell running on the device until the session
/// ends.
struct ChannelCloser {
    /// `None` once closed or forgotten.
    half: Option<ChannelWriteHalf<Msg>>,
    /// Cancelled when this side closes the channel, to end the reader: russh does not pass on the
    /// server's answering close for a channel closed from this side.
    hung_up: CancellationToken,
}

impl ChannelCloser {
    fn new(half: ChannelWriteHalf<Msg>) -> Self {
        ChannelCloser {
            half: Some(half),
            hung_up: CancellationToken::new(),
        }
    }

    fn half(&self) -> Result<&ChannelWriteHalf<Msg>, SshError> {
        self.half
            .as_ref()
            .ok_or_else(|| SshError::Protocol("the channel is closed".into()))
    }

    async fn close(mut self) -> Result<(), SshError> {
        self.hung_up.cancel();
        match self.half.take() {
            Some(half) => half.close().await.map_err(protocol),
            None => Ok(()),
        }
    }

    /// For a channel the server has closed already.
    fn forget(mut self) {
        self.half = None;
    }
}

impl Drop for ChannelCloser {
    fn drop(&mut self) {
        if let Some(half) = self.half.take() {
            self.hung_up.cancel();
            // Sending needs the runtime; without one the session is being torn down anyway.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = half.close().await;
                });
            }
        }
    }
}

/// What a shell in a pseudo-terminal sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PtyOutput {
    /// Bytes written to the terminal.
    Data(Vec<u8>),
    /// The shell exited with this status.
    ExitStatus(u32),
    /// The shell was killed by this signal (`HUP`, `KILL`, …).
    ExitSignal(String),
}

/// An interactive shell in a pseudo-terminal. Use it directly, or [`PtyChannel::split`] it so
/// that one task forwards input while another forwards output. Dropping it (or its
/// [`PtyWriter`]) closes the channel, which hangs up the shell.
#[derive(Debug)]
pub struct PtyChannel {
    reader: PtyReader,
    writer: PtyWriter,
}

impl PtyChannel {
    /// Sends keyboard input to the shell.
    pub async fn write(&self, input: &[u8]) -> Result<(), SshError> {
        self.writer.write(input).await
    }

    /// The next output of the shell, or `None` once the channel has closed.
    pub async fn read(&mut self) -> Option<PtyOutput> {
        self.reader.read().await
    }

    /// Tells the shell the terminal now has `cols` × `rows` characters.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), SshError> {
        self.writer.resize(cols, rows).await
    }

    /// Closes the channel; the server hangs up the shell.
    pub async fn close(self) -> Result<(), SshError> {
        self.writer.close().await
    }

    /// Separates the output side from the input side.
    pub fn split(self) -> (PtyReader, PtyWriter) {
        (self.reader, self.writer)
    }
}

/// The output side of a [`PtyChannel`].
pub struct PtyReader {
    reader: ChannelReadHalf,
    hung_up: CancellationToken,
    closed: bool,
}

impl fmt::Debug for PtyReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PtyReader")
            .field("closed", &self.closed)
            .finish()
    }
}

impl PtyReader {
    /// The next output of the shell, or `None` once the channel has closed (by the server, or
    /// by closing or dropping the [`PtyWriter`]).
    pub async fn read(&mut self) -> Option<PtyOutput> {
        while !self.closed {
            let message = tokio::select! {
                message = self.reader.wait() => message,
                () = self.hung_up.cancelled() => None,
            };
            match message {
                // A terminal has one output stream; stderr, if sent apart, goes to it too.
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    return Some(PtyOutput::Data(data.to_vec()))
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    return Some(PtyOutput::ExitStatus(exit_status))
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    return Some(PtyOutput::ExitSignal(signal_name_of(&signal_name)))
                }
                Some(ChannelMsg::Close) | None => self.closed = true,
                Some(_) => {}
            }
        }
        None
    }
}

/// The input side of a [`PtyChannel`]. Dropping it closes the channel.
pub struct PtyWriter {
    channel: ChannelCloser,
}

impl fmt::Debug for PtyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PtyWriter")
            .field("channel", &self.channel.half().ok().map(|half| half.id()))
            .finish()
    }
}

impl PtyWriter {
    /// Sends keyboard input to the shell.
    pub async fn write(&self, input: &[u8]) -> Result<(), SshError> {
        self.channel.half()?.data(input).await.map_err(protocol)
    }

    /// Tells the shell the terminal now has `cols` × `rows` characters.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), SshError> {
        self.channel
            .half()?
            .window_change(cols, rows, 0, 0)
            .await
            .map_err(protocol)
    }

    /// Closes the channel; the server hangs up the shell.
    pub async fn close(self) -> Result<(), SshError> {
        self.channel.close().await
    }
}
