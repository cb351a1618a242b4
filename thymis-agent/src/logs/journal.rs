//! journald as a log source: `journalctl --follow --output=json`, resuming after the saved
//! cursor.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use thymis_protocol::LogEntry;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{limit_message, uuid_from, Batch, BatchBuilder, Position};
use crate::clock;
use crate::files::{self, Ownership};

/// How long a batch waits for more entries once it has one.
const LINGER: Duration = Duration::from_millis(200);

/// Whether journald can be read: a running journal and `journalctl` on the PATH.
pub fn available() -> bool {
    Path::new("/run/systemd/journal").exists() && find_in_path("journalctl").is_some()
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Maps one line of `journalctl --output=json` to a log entry and the entry's cursor.
/// `None` for lines that are not journal entries.
pub fn parse_journal_line(line: &str) -> Option<(LogEntry, String)> {
    let value: Value = serde_json::from_str(line).ok()?;
    let cursor = value.get("__CURSOR")?.as_str()?.to_owned();
    let text = |key: &str| value.get(key).and_then(field_text);
    let number = |key: &str| text(key).and_then(|t| t.trim().parse::<u8>().ok());
    let micros = text("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or_else(clock::now_micros);
    let program = text("SYSLOG_IDENTIFIER").or_else(|| text("_COMM"));
    let pid = text("SYSLOG_PID").or_else(|| text("_PID"));
    let syslogtag = program.as_ref().map(|p| match &pid {
        Some(pid) => format!("{p}[{pid}]:"),
        None => format!("{p}:"),
    });
    let entry = LogEntry {
        uuid: uuid_from(&[b"journal", cursor.as_bytes()]),
        timestamp: clock::format_rfc3339(micros),
        message: limit_message(text("MESSAGE").unwrap_or_default()),
        facility: number("SYSLOG_FACILITY").filter(|&f| f <= 23),
        severity: number("PRIORITY").filter(|&p| p <= 7),
        programname: program,
        syslogtag,
    };
    Some((entry, cursor))
}

/// A journal field: a string, bytes (an array of numbers, for non-UTF-8 or binary values),
/// or for a field given several times its first value.
fn field_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_u64) => {
            let bytes: Vec<u8> = items
                .iter()
                .filter_map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Array(items) => items.first().and_then(field_text),
        _ => None,
    }
}

/// The running `journalctl` and where it stands.
pub struct JournalSource {
    state_path: PathBuf,
    /// Cursor of the last entry read (where a restarted journalctl continues).
    last_read: Option<String>,
    child: Option<(Child, Lines<BufReader<ChildStdout>>)>,
    /// An entry read that did not fit the previous batch.
    carry: Option<(LogEntry, String)>,
}

impl JournalSource {
    /// Reads the journal, resuming after the cursor saved in `state_path`.
    pub fn new(state_path: PathBuf) -> Self {
        let last_read = std::fs::read_to_string(&state_path)
            .ok()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        JournalSource {
            state_path,
            last_read,
            child: None,
            carry: None,
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut command = Command::new("journalctl");
        command.args(["--follow", "--no-tail", "--output=json"]);
        match &self.last_read {
            Some(cursor) => command.arg(format!("--after-cursor={cursor}")),
            // First run: this boot's entries.
            None => command.arg("--boot"),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("journalctl has no stdout"))?;
        self.child = Some((child, BufReader::new(stdout).lines()));
        Ok(())
    }

    /// The next entry, restarting `journalctl` if it ended.
    async fn next_entry(&mut self) -> (LogEntry, String) {
        loop {
            if self.child.is_none() {
                if let Err(e) = self.spawn() {
                    log::warn!("cannot run journalctl: {e}");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    continue;
                }
            }
            let Some((_, lines)) = self.child.as_mut() else {
                continue;
            };
            match lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some((entry, cursor)) = parse_journal_line(&line) {
                        self.last_read = Some(cursor.clone());
                        return (entry, cursor);
                    }
                }
                Ok(None) | Err(_) => {
                    log::warn!("journalctl ended; restarting it");
                    self.child = None;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// Waits for entries and returns them as a batch (more are collected for a moment once
    /// the first arrived).
    pub async fn next_batch(&mut self) -> Option<Batch> {
        let mut batch = BatchBuilder::default();
        let (first, mut cursor) = match self.carry.take() {
            Some(carried) => carried,
            None => self.next_entry().await,
        };
        // The first entry always fits.
        let _ = batch.push(first);
        while !batch.is_full() {
            // `next_line` is cancel safe, so a timeout loses nothing.
            let Ok((entry, next_cursor)) = tokio::time::timeout(LINGER, self.next_entry()).await
            else {
                break;
            };
            match batch.push(entry) {
                None => cursor = next_cursor,
                Some(entry) => {
                    self.carry = Some((entry, next_cursor));
                    break;
                }
            }
        }
        Some(Batch {
            entries: batch.into_entries(),
            position: Position::Journal(cursor),
        })
    }

    /// Saves `cursor` as the place to resume.
    pub async fn commit(&mut self, cursor: &str) -> io::Result<()> {
        let path = self.state_path.clone();
        let cursor = cursor.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                files::create_dir_all_mode(dir, 0o755)?;
            }
            files::write_atomic(&path, cursor.as_bytes(), 0o644, Ownership::default())
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
    }
}
