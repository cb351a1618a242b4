//! Log shipping: the device's log lines go to the controller as `device_logs` batches over
//! the agent's own admitted connection (no token in a syslog config, unlike upstream §8).
//!
//! The source is journald on a real systemd host, else a text log file. Its read position
//! (journal cursor or file offset) is saved only after a batch was written to a live
//! connection, and every entry has a uuid derived from where it came from, so a batch resent
//! after a reconnect or restart is stored once.

pub mod file;
pub mod journal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thymis_protocol::{AgentMessage, LogEntry};

use crate::device::Device;
use crate::outgoing::{Frame, Link};

/// Most entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 500;
/// Most bytes of JSON entries per batch.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Longest message kept from one entry (longer ones are cut at a character boundary).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A uuid-formatted id derived from `parts` (SHA-256, version 8 "custom" layout).
pub fn uuid_from(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let mut b: [u8; 16] = hash.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Cuts `message` to [`MAX_MESSAGE_BYTES`] at a character boundary.
pub fn limit_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Entries collected up to the batch limits.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    entries: Vec<LogEntry>,
    bytes: usize,
}

impl BatchBuilder {
    /// Adds `entry` if it fits (the first entry always fits); gives it back otherwise.
    pub fn push(&mut self, entry: LogEntry) -> Option<LogEntry> {
        let size = serde_json::to_string(&entry).map_or(0, |s| s.len()) + 1;
        if !self.entries.is_empty()
            && (self.entries.len() >= MAX_BATCH_ENTRIES || self.bytes + size > MAX_BATCH_BYTES)
        {
            return Some(entry);
        }
        self.bytes += size;
        self.entries.push(entry);
        None
    }

    /// Whether no more entries fit.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_BATCH_ENTRIES || self.bytes >= MAX_BATCH_BYTES
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries.
    pub fn into_entries(self) -> Vec<LogEntry> {
        self.entries
    }
}

/// Where a source stands after a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// In a text file.
    File(file::FilePosition),
    /// In the journal.
    Journal(String),
}

/// A batch and the source position after it.
#[derive(Debug)]
pub struct Batch {
    /// The entries, oldest first.
    pub entries: Vec<LogEntry>,
    /// Where the source stands after them.
    pub position: Position,
}

/// A log source.
pub enum Source {
    /// A text file (shared with the blocking reads).
    File(Arc<Mutex<file::FileTail>>),
    /// journald through `journalctl`.
    Journal(Box<journal::JournalSource>),
}

impl Source {
    /// The source for `device`: journald on a systemd host (unless `log_file` is given),
    /// else `log_file` or the first existing of `/var/log/syslog`, `/var/log/messages`.
    /// `None` if there is nothing to ship.
    pub fn select(device: &Device, log_file: Option<&Path>) -> Option<Source> {
        let state = device.state_dir();
        if log_file.is_none() && device.is_host() && journal::available() {
            return Some(Source::Journal(Box::new(journal::JournalSource::new(
                state.join("journal-cursor"),
            ))));
        }
        let path: PathBuf = match log_file {
            Some(path) => path.to_path_buf(),
            None => ["var/log/syslog", "var/log/messages"]
                .iter()
                .map(|p| device.path(p))
                .find(|p| p.exists())?,
        };
        Some(Source::File(Arc::new(Mutex::new(file::FileTail::new(
            path,
            state.join("log-file-position.json"),
        )))))
    }

    /// Waits for the next batch; `None` if the source cannot deliver anymore.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        match self {
            Source::File(tail) => file::next_batch(tail).await,
            Source::Journal(journal) => journal.next_batch().await,
        }
    }

    /// Saves the position after a batch was handed to the controller.
    pub async fn commit(&mut self, position: Position) {
        let result = match (self, position) {
            (Source::File(tail), Position::File(position)) => {
                let tail = tail.clone();
                tokio::task::spawn_blocking(move || match tail.lock() {
                    Ok(mut tail) => tail.commit(position),
                    Err(_) => Err(std::io::Error::other("the log tail is unusable")),
                })
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            (Source::Journal(journal), Position::Journal(cursor)) => journal.commit(&cursor).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            log::warn!("cannot save the log position: {e}");
        }
    }
}

/// Ships `source` through `link` forever: each batch waits for an admitted connection and is
/// sent again on the next one if the connection ends before it was written.
pub async fn ship(link: Link, mut source: Source) {
    let mut pending: Option<(String, Position)> = None;
    loop {
        let (text, position) = match pending.take() {
            Some(batch) => batch,
            None => match source.next_batch().await {
                Some(batch) => (
                    thymis_protocol::encode(&AgentMessage::DeviceLogs {
                        entries: batch.entries,
                    }),
                    batch.position,
                ),
                None => {
                    log::warn!("the log source ended; no more logs are shipped");
                    return;
                }
            },
        };
        let out = link.admitted().await;
        if out.frame_written(Frame::Text(text.clone())).await {
            source.commit(position).await;
        } else {
            pending = Some((text, position));
            // The connection just ended; the next one needs a moment anyway.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_deterministic_and_well_formed() {
        let a = uuid_from(&[b"file", b"1", b"2"]);
        assert_eq!(a, uuid_from(&[b"file", b"1", b"2"]));
        assert_ne!(a, uuid_from(&[b"file", b"12"]));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn batches_respect_both_limits() {
        let entry = |message: String| LogEntry {
            uuid: uuid_from(&[message.as_bytes()]),
            timestamp: "2024-01-01T00:00:00.000000Z".into(),
            message,
            facility: None,
            severity: None,
            programname: None,
            syslogtag: None,
        };
        let mut batch = BatchBuilder::default();
        let mut n = 0;
        while batch.push(entry(format!("line {n}"))).is_none() {
            n += 1;
        }
        assert_eq!(n, MAX_BATCH_ENTRIES);
        let mut batch = BatchBuilder::default();
        let big = "x".repeat(100 * 1024);
        assert!(batch.push(entry(big.clone())).is_none());
        assert!(batch.push(entry(big.clone())).is_none());
        assert!(batch.push(entry(big)).is_some());
        // A single oversized entry still goes alone.
        let mut batch = BatchBuilder::default();
        assert!(batch.push(entry("y".repeat(300 * 1024))).is_none());
        assert!(batch.is_full());
        assert_eq!(
            limit_message("é".repeat(MAX_MESSAGE_BYTES)).len(),
            MAX_MESSAGE_BYTES
        );
    }
}
