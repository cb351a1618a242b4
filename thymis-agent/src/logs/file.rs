//! Tailing a text log (`/var/log/syslog` style) from a saved position, across rotation
//! (a new inode at the path) and truncation, and parsing its lines best-effort.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thymis_protocol::LogEntry;

use super::{limit_message, uuid_from, Batch, BatchBuilder, Position};
use crate::clock;
use crate::files::{self, Ownership};

/// Without a saved position, at most this much of an existing file's end is shipped.
pub const INITIAL_BACKLOG_BYTES: u64 = 1024 * 1024;
/// Bytes read per step; a longer line is split.
const CHUNK_BYTES: usize = 64 * 1024;

/// Where the tail stands: a file identity and the offset of the next unread byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// Offset after the last shipped line.
    pub offset: u64,
}

/// A followed log file.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    state_path: PathBuf,
    /// The open file with its (dev, ino).
    open: Option<(File, u64, u64)>,
    /// Next byte to read in the open file.
    offset: u64,
    /// The last saved position (loaded at start).
    saved: Option<FilePosition>,
}

impl FileTail {
    /// Follows `path`, resuming from the position saved in `state_path`.
    pub fn new(path: PathBuf, state_path: PathBuf) -> Self {
        let saved = std::fs::read(&state_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        FileTail {
            path,
            state_path,
            open: None,
            offset: 0,
            saved,
        }
    }

    /// The followed file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where positions are saved.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// Opens the file at the path; `false` if it does not exist.
    fn open_current(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let (dev, ino, len) = (meta.dev(), meta.ino(), meta.len());
        self.offset = match self.saved {
            Some(saved) if saved.dev == dev && saved.ino == ino && saved.offset <= len => {
                saved.offset
            }
            // Rotated or truncated while the agent was not running: the file is new to us.
            Some(_) => 0,
            None => backlog_start(&file, len)?,
        };
        self.open = Some((file, dev, ino));
        Ok(true)
    }

    /// Reads what is available, up to the batch limits; `None` if nothing new.
    pub fn read_batch(&mut self) -> io::Result<Option<Batch>> {
        if self.open.is_none() && !self.open_current()? {
            return Ok(None);
        }
        let mut batch = BatchBuilder::default();
        while let Some((file, dev, ino)) = &self.open {
            let (dev, ino) = (*dev, *ino);
            let len = file.metadata()?.len();
            if len < self.offset {
                log::info!(
                    "{} was truncated; reading it from the start",
                    self.path.display()
                );
                self.offset = 0;
            }
            if !self.read_lines(&mut batch, false)? {
                break;
            }
            // At the end of the open file: has the path been rotated to a new file?
            let rotated = match std::fs::metadata(&self.path) {
                Ok(meta) => meta.dev() != dev || meta.ino() != ino,
                Err(_) => false,
            };
            if !rotated {
                break;
            }
            // The old file is complete: its unterminated last line counts too.
            if !self.read_lines(&mut batch, true)? {
                break;
            }
            // Until the new file can be opened, keep the old one (read to its end).
            let Ok(file) = File::open(&self.path) else {
                break;
            };
            let meta = file.metadata()?;
            log::info!(
                "{} was rotated; following the new file",
                self.path.display()
            );
            self.offset = 0;
            self.open = Some((file, meta.dev(), meta.ino()));
        }
        if batch.is_empty() {
            return Ok(None);
        }
        let (dev, ino) = self
            .open
            .as_ref()
            .map_or((0, 0), |(_, dev, ino)| (*dev, *ino));
        Ok(Some(Batch {
            entries: batch.into_entries(),
            position: Position::File(FilePosition {
                dev,
                ino,
                offset: self.offset,
            }),
        }))
    }

    /// Adds the complete lines from the offset to `batch`. Returns `true` if the end of the
    /// file was reached, `false` if the batch is full. With `final_line`, trailing bytes
    /// without a newline count as a line.
    fn read_lines(&mut self, batch: &mut BatchBuilder, final_line: bool) -> io::Result<bool> {
        let Some((file, dev, ino)) = &self.open else {
            return Ok(true);
        };
        let (dev, ino) = (*dev, *ino);
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = read_at_most(file, &mut buf, self.offset)?;
            if n == 0 {
                return Ok(true);
            }
            let chunk = &buf[..n];
            let mut used = 0;
            let mut at_end = false;
            while used < n {
                let rest = &chunk[used..];
                let (line, step) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], i + 1),
                    // A chunk without any newline is a (split) line of its own.
                    None if used == 0 && n == CHUNK_BYTES => (rest, rest.len()),
                    None if final_line && n < CHUNK_BYTES => (rest, rest.len()),
                    None => {
                        at_end = n < CHUNK_BYTES;
                        break;
                    }
                };
                let line_offset = self.offset + used as u64;
                if !line.is_empty() {
                    let entry = entry_from_line(line, dev, ino, line_offset);
                    if batch.push(entry).is_some() {
                        self.offset += used as u64;
                        return Ok(false);
                    }
                }
                used += step;
            }
            self.offset += used as u64;
            if at_end {
                return Ok(true);
            }
        }
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Where to start in a file never read before: its last [`INITIAL_BACKLOG_BYTES`], from the
/// start of a line.
fn backlog_start(file: &File, len: u64) -> io::Result<u64> {
    if len <= INITIAL_BACKLOG_BYTES {
        return Ok(0);
    }
    let start = len - INITIAL_BACKLOG_BYTES;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let n = read_at_most(file, &mut buf, start)?;
    Ok(match buf[..n].iter().position(|&b| b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None => start,
    })
}

impl FileTail {
    /// Saves `position` (reached by a batch the controller now has) as the place to resume.
    pub fn commit(&mut self, position: FilePosition) -> io::Result<()> {
        save_position(&self.state_path, &position)?;
        self.saved = Some(position);
        Ok(())
    }
}

/// Saves a position atomically.
pub fn save_position(state_path: &Path, position: &FilePosition) -> io::Result<()> {
    if let Some(dir) = state_path.parent() {
        files::create_dir_all_mode(dir, 0o755)?;
    }
    let json = serde_json::to_vec(position).map_err(io::Error::other)?;
    files::write_atomic(state_path, &json, 0o644, Ownership::default())
}

/// Reads the next batch, polling the file once a second while there is nothing new. The
/// reads run on the blocking pool (a slow SD card must not hold up the relay).
pub async fn next_batch(tail: &Arc<Mutex<FileTail>>) -> Option<Batch> {
    let mut warned = false;
    loop {
        let shared = tail.clone();
        let result = tokio::task::spawn_blocking(move || match shared.lock() {
            Ok(mut tail) => tail
                .read_batch()
                .map_err(|e| format!("{}: {e}", tail.path().display())),
            Err(_) => Err("the log tail is unusable after a panic".to_owned()),
        })
        .await
        .ok()?;
        match result {
            Ok(Some(batch)) => return Some(batch),
            Ok(None) => warned = false,
            Err(e) => {
                if !warned {
                    log::warn!("cannot read the log file {e}");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A log entry from one line of the file at `offset` of file (`dev`, `ino`).
pub fn entry_from_line(line: &[u8], dev: u64, ino: u64, offset: u64) -> LogEntry {
    let uuid = uuid_from(&[
        b"file",
        &dev.to_be_bytes(),
        &ino.to_be_bytes(),
        &offset.to_be_bytes(),
        line,
    ]);
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let parsed = parse_syslog_line(text, clock::now_micros());
    LogEntry {
        uuid,
        timestamp: clock::format_rfc3339(parsed.micros),
        message: limit_message(parsed.message),
        facility: parsed.priority.map(|p| p / 8),
        severity: parsed.priority.map(|p| p % 8),
        programname: parsed.programname,
        syslogtag: parsed.syslogtag,
    }
}

/// A line of a syslog file, parsed as far as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogLine {
    /// When (microseconds since the epoch); `now` if the line has no time.
    pub micros: i64,
    /// The host field.
    pub host: Option<String>,
    /// The program name.
    pub programname: Option<String>,
    /// The tag as written, with its colon, e.g. `sshd[812]:`.
    pub syslogtag: Option<String>,
    /// The message (the whole line if it could not be parsed).
    pub message: String,
    /// The syslog priority (facility × 8 + severity) of a line starting with `<PRI>`, as
    /// rsyslog writes with the forwarding templates.
    pub priority: Option<u8>,
}

/// Splits a leading `<PRI>` (0–191) off a line.
fn split_priority(line: &str) -> (Option<u8>, &str) {
    let Some(rest) = line.strip_prefix('<') else {
        return (None, line);
    };
    match rest.split_once('>') {
        Some((digits, rest)) if (1..=3).contains(&digits.len()) => match digits.parse::<u8>() {
            Ok(priority) if priority <= 191 => (Some(priority), rest),
            _ => (None, line),
        },
        _ => (None, line),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses `MMM dd HH:MM:SS host prog[pid]: msg` (local time, year guessed: the latest not
/// more than a day in the future) or the same with an RFC 3339 time first. Anything else is
/// a message of its own, timed `now_micros`.
pub fn parse_syslog_line(line: &str, now_micros: i64) -> SyslogLine {
    let (priority, line) = split_priority(line);
    let unparsed = || SyslogLine {
        micros: now_micros,
        host: None,
        programname: None,
        syslogtag: None,
        message: line.to_owned(),
        priority,
    };
    let Some((micros, rest)) =
        parse_rfc3339_time(line).or_else(|| parse_classic_time(line, now_micros))
    else {
        return unparsed();
    };
    let Some(rest) = rest.strip_prefix(' ') else {
        return unparsed();
    };
    let (host, rest) = match rest.split_once(' ') {
        Some((host, rest)) if !host.is_empty() => (host, rest),
        _ => return unparsed(),
    };
    let (programname, syslogtag, message) = split_tag(rest);
    SyslogLine {
        micros,
        host: Some(host.to_owned()),
        programname,
        syslogtag,
        message,
        priority,
    }
}

fn parse_rfc3339_time(line: &str) -> Option<(i64, &str)> {
    let (micros, len) = clock::parse_rfc3339_prefix(line)?;
    Some((micros, &line[len..]))
}

fn parse_classic_time(line: &str, now_micros: i64) -> Option<(i64, &str)> {
    let head = line.get(..15)?;
    let month = MONTHS.iter().position(|m| head.starts_with(m))? as u32 + 1;
    let b = head.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let day: u32 = head[4..6].trim_start().parse().ok()?;
    let field = |r: std::ops::Range<usize>| head.get(r)?.parse::<i64>().ok();
    let (hour, minute, second) = (field(7..9)?, field(10..12)?, field(13..15)?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let at_year = |year: i64| {
        let civil =
            clock::days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        clock::local_civil_to_unix(civil)
    };
    let year = clock::local_year(now_micros.div_euclid(1_000_000));
    let mut secs = at_year(year)?;
    if secs * 1_000_000 > now_micros + 86_400_000_000 {
        secs = at_year(year - 1)?;
    }
    Some((secs * 1_000_000, &line[15..]))
}

/// Splits `prog[pid]: message` into the program, the tag and the message. A line without a
/// tag (no colon after a space-free word) is all message.
fn split_tag(rest: &str) -> (Option<String>, Option<String>, String) {
    if let Some(colon) = rest.find(':') {
        let tag = &rest[..colon];
        if !tag.is_empty() && !tag.contains(char::is_whitespace) {
            let program = match tag.find('[') {
                Some(open) if tag.ends_with(']') => &tag[..open],
                _ => tag,
            };
            let message = rest[colon + 1..]
                .strip_prefix(' ')
                .unwrap_or(&rest[colon + 1..]);
            return (
                (!program.is_empty()).then(|| program.to_owned()),
                Some(format!("{tag}:")),
                message.to_owned(),
            );
        }
    }
    (None, None, rest.to_owned())
}
