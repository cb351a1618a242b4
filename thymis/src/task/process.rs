//! Running a command for a task: in its own process group, with output streamed into the
//! store as it comes, Nix's `internal-json` log turned into readable lines and progress, and
//! cancellation that terminates the whole group and kills it after a grace period.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::{interval, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::events::{Event, EventBus};
use crate::nix::log::{NixErrorInfo, NixLogParser, NixProgress};
use crate::store::{NewOutput, OutputStream, Store, StoreError, TaskProcessRecord, TaskUpdate};

/// Most standard output kept in a [`CommandOutcome`] (e.g. `nix eval --json` answers).
const MAX_CAPTURED_STDOUT: usize = 16 << 20;
/// Lines of the readable log kept in a [`CommandOutcome`] for error messages.
const TAIL_LINES: usize = 40;
/// Most Nix errors stored per command.
const MAX_STORED_ERRORS: usize = 50;

/// A command to run.
#[derive(Clone, Default)]
pub struct CommandSpec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments (recorded with the task).
    pub args: Vec<String>,
    /// The working directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (recorded by name only).
    pub env: Vec<(String, String)>,
    /// Whether stderr is Nix's `--log-format internal-json`.
    pub nix_log: bool,
}

// Hand-written: environment values may hold access tokens.
impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("nix_log", &self.nix_log)
            .finish()
    }
}

impl CommandSpec {
    /// A command running `program` with `args`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args,
            ..CommandSpec::default()
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct CommandOutcome {
    /// Its exit code; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// Whether it was stopped because the task was cancelled.
    pub cancelled: bool,
    /// Its standard output (up to 16 MiB).
    pub stdout: Vec<u8>,
    /// The last lines of its readable log, for error messages.
    pub log_tail: Vec<String>,
    /// Nix's progress at the end.
    pub progress: Option<NixProgress>,
    /// Nix's errors.
    pub errors: Vec<NixErrorInfo>,
}

impl CommandOutcome {
    /// Whether it exited with code 0 and was not cancelled.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.cancelled
    }

    /// A one-paragraph reason for a failure: the first Nix error, else the log's last lines.
    pub fn failure_reason(&self) -> String {
        if let Some(error) = self.errors.first() {
            return error.msg.trim().to_owned();
        }
        let tail = self.log_tail.join("\n");
        match self.exit_code {
            Some(code) if tail.trim().is_empty() => format!("exited with code {code}"),
            Some(code) => format!("exited with code {code}:\n{}", tail.trim_end()),
            None => "ended by a signal".to_owned(),
        }
    }
}

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Reading its output or waiting for it failed.
    #[error("lost track of {program}: {source}")]
    Io {
        /// The program.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The store refused the output.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs commands; tasks record them ([`TaskRun`](super::TaskRun)), other callers may not
/// ([`DirectRunner`]).
#[async_trait::async_trait]
pub trait CommandRunner: Send + Sync {
    /// Runs `spec` to its end (or until cancelled).
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutcome, RunError>;
}

/// Runs commands without recording them, cancelled by its token.
#[derive(Debug, Clone, Default)]
pub struct DirectRunner {
    /// Cancels the running command.
    pub cancel: CancellationToken,
}

#[async_trait::async_trait]
impl CommandRunner for DirectRunner {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutcome, RunError> {
        run_command(&spec, &self.cancel, DEFAULT_KILL_GRACE, None).await
    }
}

/// How long a cancelled command's process group has between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// Where a recorded command's output goes.
pub(crate) struct OutputRecorder {
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    pub task_id: uuid::Uuid,
    pub process: TaskProcessRecord,
    pub max_output_bytes: u64,
    pub flush_interval: Duration,
}

impl OutputRecorder {
    /// Writes `pending` output and, with `progress`, the command's progress (also as the
    /// task's); `ended` writes the command's end even without progress.
    async fn flush(
        &mut self,
        pending: Vec<NewOutput>,
        progress: Option<(&NixProgress, &[NixErrorInfo])>,
        ended: bool,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let task_id = self.task_id;
        let max = self.max_output_bytes;
        if let Some((progress, errors)) = progress {
            self.process.progress = serde_json::to_value(progress).ok();
            self.process.errors =
                serde_json::to_value(errors.iter().take(MAX_STORED_ERRORS).collect::<Vec<_>>())
                    .unwrap_or_default();
        }
        let process = self.process.clone();
        let write_progress = progress.is_some();
        let has_output = !pending.is_empty();
        blocking(move || {
            if has_output {
                store.append_task_output(task_id, &pending, max)?;
            }
            if write_progress || ended {
                store.put_task_process(task_id, &process)?;
            }
            if write_progress {
                store.update_task(
                    task_id,
                    &TaskUpdate {
                        progress: process.progress.clone(),
                        ..TaskUpdate::default()
                    },
                )?;
            }
            Ok(())
        })
        .await?;
        if write_progress {
            self.events.publish(Event::TaskChanged(task_id));
        }
        if has_output || write_progress || ended {
            self.events.publish(Event::TaskOutput(task_id));
        }
        Ok(())
    }
}

/// Runs a blocking store call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) => Err(StoreError::Database(
            rusqlite::Error::ToSqlConversionFailure(Box::new(err)),
        )),
    }
}

/// Sends `signal` to every process of group `pgid`.
fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
    // The group was created for this command (`process_group(0)`), so it holds only the
    // command and what it started.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Runs `spec`; with a recorder its output and progress are stored as they come.
pub(crate) async fn run_command(
    spec: &CommandSpec,
    cancel: &CancellationToken,
    kill_grace: Duration,
    mut recorder: Option<&mut OutputRecorder>,
) -> Result<CommandOutcome, RunError> {
    let program = spec.program.display().to_string();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent. A controller that
    // dies (even by SIGKILL) thereby stops its commands instead of leaving them running.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id().unwrap_or(0);
    // Whatever happens below (even this future being dropped), the group does not outlive us.
    let _group_guard = GroupGuard(pgid);
    let io_error = |source| RunError::Io {
        program: program.clone(),
        source,
    };
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io_error(std::io::Error::other("no pipes")));
    };

    let flush_every = recorder
        .as_ref()
        .map_or(Duration::from_secs(3600), |r| r.flush_interval);
    let mut ticker = interval(flush_every);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut parser = spec.nix_log.then(NixLogParser::new);
    let mut outcome = CommandOutcome::default();
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut pending: Vec<NewOutput> = Vec::new();
    let mut raw_stderr_line = Vec::new();
    let mut partial_stdout = Vec::new();
    let process_index = recorder.as_ref().map_or(0, |r| r.process.index);
    let (mut out_buf, mut err_buf) = (vec![0u8; 16384], vec![0u8; 16384]);
    let (mut stdout_open, mut stderr_open, mut exited) = (true, true, false);
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;

    let push = |pending: &mut Vec<NewOutput>, stream: OutputStream, data: Vec<u8>| {
        if data.is_empty() {
            return;
        }
        match pending.last_mut() {
            Some(last) if last.stream == stream && last.data.len() < 256 << 10 => {
                last.data.extend_from_slice(&data)
            }
            _ => pending.push(NewOutput {
                process_index,
                stream,
                data,
            }),
        }
    };
    let remember = |tail: &mut VecDeque<String>, line: String| {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };

    while stdout_open || stderr_open || !exited {
        tokio::select! {
            read = stdout.read(&mut out_buf), if stdout_open => {
                let n = read.map_err(io_error)?;
                let data = &out_buf[..n];
                if outcome.stdout.len() + n <= MAX_CAPTURED_STDOUT {
                    outcome.stdout.extend_from_slice(data);
                }
                partial_stdout.extend_from_slice(data);
                if n == 0 {
                    stdout_open = false;
                    push(&mut pending, OutputStream::Stdout, std::mem::take(&mut partial_stdout));
                } else {
                    push(&mut pending, OutputStream::Stdout, complete_utf8(&mut partial_stdout));
                }
            }
            read = stderr.read(&mut err_buf), if stderr_open => {
                let n = read.map_err(io_error)?;
                let chunk = &err_buf[..n];
                let lines = match &mut parser {
                    Some(parser) if n == 0 => parser.finish(),
                    Some(parser) => parser.feed(chunk),
                    None => split_lines(&mut raw_stderr_line, chunk, n == 0),
                };
                if n == 0 {
                    stderr_open = false;
                }
                let mut text = Vec::new();
                for line in lines {
                    text.extend_from_slice(line.as_bytes());
                    text.push(b'\n');
                    remember(&mut tail, line);
                }
                push(&mut pending, OutputStream::Stderr, text);
            }
            status = child.wait(), if !exited => {
                let status = status.map_err(io_error)?;
                exited = true;
                outcome.exit_code = status.code();
                // Helpers the command left behind would keep the pipes open.
                signal_group(pgid, libc::SIGTERM);
                kill_at.get_or_insert(Instant::now() + Duration::from_secs(2));
            }
            _ = cancel.cancelled(), if kill_at.is_none() && !outcome.cancelled => {
                outcome.cancelled = true;
                signal_group(pgid, libc::SIGTERM);
                kill_at = Some(Instant::now() + kill_grace);
            }
            _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() && !killed => {
                killed = true;
                signal_group(pgid, libc::SIGKILL);
                // After SIGKILL the pipes close at once unless a process escaped the group.
                if exited {
                    stdout_open = false;
                    stderr_open = false;
                }
            }
            _ = ticker.tick() => {
                if let Some(recorder) = recorder.as_deref_mut() {
                    let changed = parser.as_mut().is_some_and(|p| p.take_changed());
                    if !pending.is_empty() || changed {
                        let progress = parser.as_ref().filter(|_| changed).map(|p| (p.progress(), p.errors().to_vec()));
                        recorder
                            .flush(std::mem::take(&mut pending), progress.as_ref().map(|(p, e)| (p, e.as_slice())), false)
                            .await?;
                    }
                }
            }
        }
    }
    if cancel.is_cancelled() {
        outcome.cancelled = true;
    }
    if let Some(parser) = &parser {
        outcome.progress = Some(parser.progress());
        outcome.errors = parser.errors().to_vec();
        if outcome.cancelled {
            // Nix reports our own SIGTERM as an error; it is the cancellation, not a problem.
            outcome
                .errors
                .retain(|e| !e.msg.contains("interrupted by the user"));
        }
    }
    outcome.log_tail = tail.into_iter().collect();
    if let Some(recorder) = recorder {
        recorder.process.ended_at = Some(chrono::Utc::now());
        recorder.process.exit_code = outcome.exit_code;
        let progress = outcome.progress.clone();
        recorder
            .flush(
                pending,
                progress.as_ref().map(|p| (p, outcome.errors.as_slice())),
                true,
            )
            .await?;
    }
    Ok(outcome)
}

/// Kills a command's process group when dropped.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 != 0 {
            signal_group(self.0, libc::SIGKILL);
        }
    }
}

/// Takes the bytes of `buf` that end on a character boundary, so that readers decoding each
/// stored piece never see half a UTF-8 character; at most 3 bytes stay behind.
fn complete_utf8(buf: &mut Vec<u8>) -> Vec<u8> {
    let cut = match std::str::from_utf8(buf) {
        Err(err) if err.error_len().is_none() => err.valid_up_to(),
        _ => buf.len(),
    };
    buf.drain(..cut).collect()
}

/// Splits plain stderr into lines (a partial line waits for the next chunk, or `end`).
fn split_lines(partial: &mut Vec<u8>, chunk: &[u8], end: bool) -> Vec<String> {
    partial.extend_from_slice(chunk);
    let mut lines = Vec::new();
    while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = partial.drain(..=pos).collect();
        lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
    }
    if end && !partial.is_empty() {
        lines.push(String::from_utf8_lossy(partial).into_owned());
        partial.clear();
    }
    lines
}
