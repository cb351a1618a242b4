//! Nix's `--log-format internal-json` stderr: an incremental parser that turns it into the
//! lines a person should see, a progress model, and the error-infos with their source positions.
//!
//! Every stderr line starting with `@nix ` is one JSON event (`msg`, `start`, `stop`, `result`,
//! `setPhase`); anything else is plain stderr (ssh, wrappers). The parser never fails: unknown
//! actions, activity and result types are ignored or kept by number, and lines that are not
//! valid events are counted in [`NixProgress::malformed_lines`].
//!
//! Progress follows Nix's own progress bar: per activity type, finished activities contribute
//! what they did, running ones what they report, and `setExpected` results raise the expected
//! total (so a build of ten derivations never shows 100% after the first one).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Longest line kept, in bytes. Longer lines are cut to this length: a cut `@nix` line counts
/// as malformed, a cut plain line is shown cut. This bounds memory on a runaway stream.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Error-infos kept by [`NixLogParser::errors`]; later ones are only counted (a runaway
/// stream must not grow memory without bound).
pub const MAX_ERRORS_KEPT: usize = 1000;

/// Messages up to this verbosity (error, warn, notice, info) are shown to the user.
const SHOWN_LEVEL: u64 = 3;

/// Nix's activity types (`start.type`), kept lossless for numbers this version does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityType {
    /// 0: no particular type (evaluation, copying sources, queries).
    Unknown,
    /// 100: copying one store path (progress in bytes).
    CopyPath,
    /// 101: downloading a file (progress in bytes).
    FileTransfer,
    /// 102: realising derivations (carries `setExpected` totals).
    Realise,
    /// 103: copying or substituting store paths (progress in paths).
    CopyPaths,
    /// 104: the builds of one run (progress in derivations).
    Builds,
    /// 105: building one derivation.
    Build,
    /// 106: optimising the store.
    OptimiseStore,
    /// 107: verifying store paths.
    VerifyPaths,
    /// 108: substituting one path.
    Substitute,
    /// 109: querying path info on a substituter.
    QueryPathInfo,
    /// 110: running the post-build hook.
    PostBuildHook,
    /// 111: a build waiting for a lock or a slot.
    BuildWaiting,
    /// 112: fetching a tree (newer Nix).
    FetchTree,
    /// Any other number.
    Other(u32),
}

impl From<u32> for ActivityType {
    fn from(n: u32) -> Self {
        match n {
            0 => Self::Unknown,
            100 => Self::CopyPath,
            101 => Self::FileTransfer,
            102 => Self::Realise,
            103 => Self::CopyPaths,
            104 => Self::Builds,
            105 => Self::Build,
            106 => Self::OptimiseStore,
            107 => Self::VerifyPaths,
            108 => Self::Substitute,
            109 => Self::QueryPathInfo,
            110 => Self::PostBuildHook,
            111 => Self::BuildWaiting,
            112 => Self::FetchTree,
            other => Self::Other(other),
        }
    }
}

impl ActivityType {
    /// The number Nix uses.
    pub fn code(self) -> u32 {
        match self {
            Self::Unknown => 0,
            Self::CopyPath => 100,
            Self::FileTransfer => 101,
            Self::Realise => 102,
            Self::CopyPaths => 103,
            Self::Builds => 104,
            Self::Build => 105,
            Self::OptimiseStore => 106,
            Self::VerifyPaths => 107,
            Self::Substitute => 108,
            Self::QueryPathInfo => 109,
            Self::PostBuildHook => 110,
            Self::BuildWaiting => 111,
            Self::FetchTree => 112,
            Self::Other(n) => n,
        }
    }

    /// Nix's name for the type (`"builds"`, `"copyPaths"`, …); `"type<N>"` for unknown numbers.
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::Unknown => "unknown",
            Self::CopyPath => "copyPath",
            Self::FileTransfer => "fileTransfer",
            Self::Realise => "realise",
            Self::CopyPaths => "copyPaths",
            Self::Builds => "builds",
            Self::Build => "build",
            Self::OptimiseStore => "optimiseStore",
            Self::VerifyPaths => "verifyPaths",
            Self::Substitute => "substitute",
            Self::QueryPathInfo => "queryPathInfo",
            Self::PostBuildHook => "postBuildHook",
            Self::BuildWaiting => "buildWaiting",
            Self::FetchTree => "fetchTree",
            Self::Other(n) => return Cow::Owned(format!("type{n}")),
        })
    }

    /// Whether this type's progress counts bytes rather than items.
    pub fn counts_bytes(self) -> bool {
        matches!(self, Self::CopyPath | Self::FileTransfer)
    }
}

/// Nix's result types (`result.type`), kept lossless for numbers this version does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultType {
    /// 100: a file was hard-linked by store optimisation (`[bytes]`).
    FileLinked,
    /// 101: a line of build output (`[line]`).
    BuildLogLine,
    /// 102: an untrusted path.
    UntrustedPath,
    /// 103: a corrupted path.
    CorruptedPath,
    /// 104: a build entered a phase (`[phase]`).
    SetPhase,
    /// 105: progress (`[done, expected, running, failed]`).
    Progress,
    /// 106: expected total of an activity type (`[type, count]`).
    SetExpected,
    /// 107: a line of post-build-hook output (`[line]`).
    PostBuildLogLine,
    /// 108: fetch status (`[text]`, newer Nix).
    FetchStatus,
    /// Any other number.
    Other(u32),
}

impl From<u32> for ResultType {
    fn from(n: u32) -> Self {
        match n {
            100 => Self::FileLinked,
            101 => Self::BuildLogLine,
            102 => Self::UntrustedPath,
            103 => Self::CorruptedPath,
            104 => Self::SetPhase,
            105 => Self::Progress,
            106 => Self::SetExpected,
            107 => Self::PostBuildLogLine,
            108 => Self::FetchStatus,
            other => Self::Other(other),
        }
    }
}

/// Done/expected/running/failed of one activity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityCounts {
    /// Finished items (derivations, paths; bytes for byte-counting types).
    pub done: u64,
    /// Items expected in total, including the failed ones.
    pub expected: u64,
    /// Items in progress.
    pub running: u64,
    /// Items that failed.
    pub failed: u64,
}

/// Bytes transferred against bytes expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ByteProgress {
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes expected in total.
    pub expected_bytes: u64,
}

/// The progress of one Nix process, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NixProgress {
    /// Finished items (derivations built, paths copied or substituted, …), summed over all
    /// item-counting activity types.
    pub done: u64,
    /// Items expected in total, including failed ones; never less than `done + failed`.
    pub expected: u64,
    /// Items in progress.
    pub running: u64,
    /// Items that failed.
    pub failed: u64,
    /// The latest phase (`setPhase`) reported by a build still running.
    pub phase: Option<String>,
    /// Counts per activity type name (`"builds"`, `"copyPaths"`, `"fileTransfer"`, …); only
    /// types with something to show.
    pub activities: BTreeMap<String, ActivityCounts>,
    /// Downloads (`fileTransfer`), in bytes.
    pub download: ByteProgress,
    /// Store path copies (`copyPath`: substitution, `nix copy`), in bytes.
    pub copy: ByteProgress,
    /// Names (store name without hash and `.drv`) of the derivations being built, oldest first.
    pub running_builds: Vec<String>,
    /// Error-infos of level error seen so far.
    pub errors: usize,
    /// Error-infos of a lower level (warnings) seen so far.
    pub warnings: usize,
    /// `@nix` lines that were not a valid event (bad JSON, missing fields, cut lines).
    pub malformed_lines: u64,
}

impl NixProgress {
    /// Share of the work done, in `0.0..=1.0`: finished items over expected items; when no items
    /// are expected but bytes are, bytes downloaded (or copied) over bytes expected; else 0.
    /// Running items count as not done, so the bar only reaches 1 when everything finished.
    pub fn fraction(&self) -> f64 {
        fn ratio(done: u64, expected: u64) -> Option<f64> {
            (expected > 0).then(|| (done as f64 / expected as f64).clamp(0.0, 1.0))
        }
        ratio(self.done, self.expected)
            .or_else(|| ratio(self.download.done_bytes, self.download.expected_bytes))
            .or_else(|| ratio(self.copy.done_bytes, self.copy.expected_bytes))
            .unwrap_or(0.0)
    }
}

/// An error-info: a `msg` event carrying `raw_msg`, with its source position when Nix gave one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NixErrorInfo {
    /// Verbosity: 0 error, 1 warning, 2 notice, 3 info, more for chatter.
    pub level: u64,
    /// The full message as Nix prints it (with `error:` and the source excerpt), ANSI stripped.
    pub msg: String,
    /// The message alone, ANSI stripped.
    pub raw_msg: String,
    /// The file of the error's position (a store path for flake sources).
    pub file: Option<String>,
    /// Line of the position, from 1.
    pub line: Option<u64>,
    /// Column of the position, from 1.
    pub column: Option<u64>,
    /// The "while evaluating …" frames, innermost first, each with its position when known
    /// (`"<message> at <file>:<line>:<column>"`).
    pub trace: Vec<String>,
}

impl NixErrorInfo {
    /// The file relative to the flake source it lives in: `hosts/x/custom.nix` for
    /// `/nix/store/<hash>-source/hosts/x/custom.nix`; the file itself when not in such a source.
    pub fn source_relative_file(&self) -> Option<&str> {
        let file = self.file.as_deref()?;
        Some(source_relative(file))
    }
}

/// A path relative to its `/nix/store/<hash>-<name>/` root, if it is in one.
fn source_relative(file: &str) -> &str {
    let Some(rest) = file.strip_prefix("/nix/store/") else {
        return file;
    };
    match rest.split_once('/') {
        Some((entry, inner)) if is_store_entry(entry) && !inner.is_empty() => inner,
        _ => file,
    }
}

/// `<32 base-32 chars>-<name>`.
fn is_store_entry(entry: &str) -> bool {
    let bytes = entry.as_bytes();
    bytes.len() > 33 && bytes[32] == b'-' && bytes[..32].iter().all(u8::is_ascii_alphanumeric)
}

/// The name of a store path: `/nix/store/<hash>-hello-2.12.drv` → `hello-2.12` (the hash and a
/// `.drv` suffix removed). Anything that is not a store path is returned with only `.drv` removed.
pub fn store_path_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = match base.split_once('-') {
        Some((hash, rest))
            if hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            rest
        }
        _ => base,
    };
    base.strip_suffix(".drv").unwrap_or(base)
}

/// `text` without ANSI escape sequences (CSI such as colours, OSC, and two-byte escapes).
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains('\x1b') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // Operating system command, ended by BEL or ESC \.
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------
// Wire format

/// One `@nix` event, flat: every action's fields are optional so that one pass of serde reads
/// any action without buffering, and unknown fields are ignored.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
    id: Option<u64>,
    level: Option<u64>,
    #[serde(rename = "type")]
    ty: Option<u32>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    fields: Option<Vec<Field<'a>>>,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    raw_msg: Option<Cow<'a, str>>,
    #[serde(default)]
    file: Lenient<String>,
    #[serde(default)]
    line: Lenient<u64>,
    #[serde(default)]
    column: Lenient<u64>,
    #[serde(default)]
    trace: Lenient<Vec<RawFrame>>,
    #[serde(borrow, default)]
    phase: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    machine: Option<Cow<'a, str>>,
}

/// A trace frame of an error-info.
#[derive(Deserialize)]
struct RawFrame {
    #[serde(default)]
    raw_msg: Lenient<String>,
    #[serde(default)]
    file: Lenient<String>,
    #[serde(default)]
    line: Lenient<u64>,
    #[serde(default)]
    column: Lenient<u64>,
}

/// A value that is `None` when it is missing, null or of another shape (positions differ
/// between Nix versions; a surprise there must not lose the error).
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Buffering is fine: these fields only appear on error-infos.
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self(T::deserialize(value).ok()))
    }
}

/// An element of `fields`: Nix sends integers and strings; anything else is kept as `Other`.
#[derive(Debug)]
enum Field<'a> {
    Int(u64),
    Str(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).map_or(Field::Other, Field::Int))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        deserializer.deserialize_any(FieldVisitor)
    }
}

fn field_int(fields: &[Field], i: usize) -> u64 {
    match fields.get(i) {
        Some(Field::Int(n)) => *n,
        _ => 0,
    }
}

fn field_str<'f>(fields: &'f [Field], i: usize) -> Option<&'f str> {
    match fields.get(i) {
        Some(Field::Str(s)) => Some(s),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parser state

/// One running activity.
#[derive(Debug)]
struct Activity {
    ty: ActivityType,
    /// Start order, for the order of running builds.
    seq: u64,
    /// For builds: the derivation's name (`hello-2.12`).
    name: Option<String>,
    done: u64,
    expected: u64,
    running: u64,
    failed: u64,
    /// `setExpected` totals this activity announced, per activity type.
    expected_by_type: Vec<(ActivityType, u64)>,
    /// Latest phase and the order it was set in.
    phase: Option<(u64, String)>,
    /// Whether a progress result arrived for this activity.
    reported: bool,
    /// For `copying N paths` (copyPaths) activities: N, and how many copyPath activities had
    /// finished when this one started. Nix 2.8's `nix copy` sends no progress for them, so the
    /// paths are counted from the copyPath activities instead.
    copy_hint: Option<(u64, u64)>,
}

impl Activity {
    /// done, expected, running, failed, as reported or else as counted.
    fn counts(&self, copies_finished: u64, copies_running: u64) -> (u64, u64, u64, u64) {
        match self.copy_hint {
            Some((paths, finished_before)) if !self.reported => {
                let done = copies_finished.saturating_sub(finished_before).min(paths);
                let running = copies_running.min(paths - done);
                (done, paths, running, 0)
            }
            _ => (self.done, self.expected, self.running, self.failed),
        }
    }
}

/// `copying 12 paths` → 12.
fn copy_paths_count(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("copying ")?;
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("path").then(|| n.parse().ok()).flatten()
}

/// What finished activities of one type did.
#[derive(Debug, Default, Clone, Copy)]
struct Finished {
    done: u64,
    failed: u64,
}

/// Incremental parser of one Nix process's stderr in `--log-format internal-json`.
///
/// Feed it chunks as they arrive (any boundaries, even inside a UTF-8 character); each call
/// returns the lines completed by that chunk that should be shown to the user. The result does
/// not depend on how the stream was cut into chunks.
#[derive(Debug, Default)]
pub struct NixLogParser {
    /// The incomplete last line (at most [`MAX_LINE_BYTES`]).
    partial: Vec<u8>,
    /// Whether the incomplete line was longer than [`MAX_LINE_BYTES`].
    partial_cut: bool,
    /// Running activities of this machine.
    local: HashMap<u64, Activity>,
    /// Running activities forwarded from remote builders, per machine.
    remote: HashMap<String, HashMap<u64, Activity>>,
    finished: BTreeMap<ActivityType, Finished>,
    errors: Vec<NixErrorInfo>,
    error_count: usize,
    warning_count: usize,
    malformed: u64,
    /// copyPath activities finished so far.
    copies_finished: u64,
    seq: u64,
    changed: bool,
}

impl NixLogParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk of nix's stderr (arbitrary byte boundaries, may split lines and UTF-8).
    /// Returns the lines to show the user, completed by this chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = find_newline(rest) {
            let line = &rest[..pos];
            rest = &rest[pos + 1..];
            if self.partial.is_empty() && !self.partial_cut {
                let cut = line.len() > MAX_LINE_BYTES;
                self.line(&line[..line.len().min(MAX_LINE_BYTES)], cut, &mut out);
            } else {
                self.append_partial(line);
                let buffered = std::mem::take(&mut self.partial);
                let cut = std::mem::take(&mut self.partial_cut);
                self.line(&buffered, cut, &mut out);
                // Keep the allocation for the next partial line.
                self.partial = buffered;
                self.partial.clear();
            }
        }
        self.append_partial(rest);
        out
    }

    /// End of stream: a trailing partial line is processed.
    pub fn finish(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.partial.is_empty() || self.partial_cut {
            let buffered = std::mem::take(&mut self.partial);
            let cut = std::mem::take(&mut self.partial_cut);
            self.line(&buffered, cut, &mut out);
        }
        out
    }

    /// The progress model now.
    pub fn progress(&self) -> NixProgress {
        let mut per_type: BTreeMap<ActivityType, (ActivityCounts, u64)> = BTreeMap::new();
        for (ty, fin) in &self.finished {
            let (counts, _) = per_type.entry(*ty).or_default();
            counts.done = fin.done;
            counts.failed = fin.failed;
            counts.expected = fin.done.saturating_add(fin.failed);
        }
        let mut phase: Option<&(u64, String)> = None;
        let mut builds: Vec<(u64, &str)> = Vec::new();
        let copies_running = if self
            .activities()
            .any(|act| act.copy_hint.is_some() && !act.reported)
        {
            self.copies_running()
        } else {
            0
        };
        for act in self.activities() {
            let (done, expected, running, failed) =
                act.counts(self.copies_finished, copies_running);
            let (counts, _) = per_type.entry(act.ty).or_default();
            counts.done = counts.done.saturating_add(done);
            counts.running = counts.running.saturating_add(running);
            counts.failed = counts.failed.saturating_add(failed);
            // Nix reports expected as done + pending: failures are not in it.
            counts.expected = counts
                .expected
                .saturating_add(expected.saturating_add(failed));
            for (ty, n) in &act.expected_by_type {
                let (_, announced) = per_type.entry(*ty).or_default();
                *announced = announced.saturating_add(*n);
            }
            if let Some(p) = &act.phase {
                match phase {
                    Some(q) if q.0 >= p.0 => {}
                    _ => phase = Some(p),
                }
            }
            if act.ty == ActivityType::Build {
                builds.push((act.seq, act.name.as_deref().unwrap_or("")));
            }
        }
        builds.sort_unstable();

        let mut progress = NixProgress {
            phase: phase.map(|(_, p)| p.clone()),
            running_builds: builds.into_iter().map(|(_, n)| n.to_owned()).collect(),
            errors: self.error_count,
            warnings: self.warning_count,
            malformed_lines: self.malformed,
            ..NixProgress::default()
        };
        for (ty, (mut counts, announced)) in per_type {
            counts.expected = counts
                .expected
                .max(announced)
                .max(counts.done.saturating_add(counts.failed));
            if counts == ActivityCounts::default() {
                continue;
            }
            if ty.counts_bytes() {
                let bytes = ByteProgress {
                    done_bytes: counts.done,
                    expected_bytes: counts.expected,
                };
                match ty {
                    ActivityType::FileTransfer => progress.download = bytes,
                    _ => progress.copy = bytes,
                }
            } else {
                progress.done = progress.done.saturating_add(counts.done);
                progress.expected = progress.expected.saturating_add(counts.expected);
                progress.running = progress.running.saturating_add(counts.running);
                progress.failed = progress.failed.saturating_add(counts.failed);
            }
            progress.activities.insert(ty.name().into_owned(), counts);
        }
        progress
    }

    /// Error-infos seen so far (msg lines with raw_msg), in order: errors and warnings (see
    /// [`NixErrorInfo::level`]); the first [`MAX_ERRORS_KEPT`] of them.
    pub fn errors(&self) -> &[NixErrorInfo] {
        &self.errors
    }

    /// Whether anything changed progress/errors since the last call (lets the caller throttle
    /// writes).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.local
            .values()
            .chain(self.remote.values().flat_map(HashMap::values))
    }

    fn append_partial(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.partial.len();
        if bytes.len() > room {
            self.partial.extend_from_slice(&bytes[..room]);
            self.partial_cut = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// One complete line (without its `\n`), cut to [`MAX_LINE_BYTES`] if `cut`.
    fn line(&mut self, line: &[u8], cut: bool, out: &mut Vec<String>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(json) = line.strip_prefix(b"@nix ") {
            if cut || !self.event(json, out) {
                self.malformed += 1;
                self.changed = true;
            }
        } else {
            out.push(String::from_utf8_lossy(line).into_owned());
        }
    }

    /// One `@nix` event; false if it is not one.
    fn event(&mut self, json: &[u8], out: &mut Vec<String>) -> bool {
        match std::str::from_utf8(json) {
            Ok(text) => self.event_str(text, out),
            // Nix itself replaces invalid UTF-8; tolerate a stream that did not.
            Err(_) => self.event_str(&String::from_utf8_lossy(json), out),
        }
    }

    fn event_str(&mut self, json: &str, out: &mut Vec<String>) -> bool {
        let Ok(ev) = serde_json::from_str::<RawEvent>(json) else {
            return false;
        };
        let Some(action) = ev.action.as_deref() else {
            return false;
        };
        match action {
            "msg" => self.on_msg(ev, out),
            "start" => self.on_start(ev, out),
            "stop" => self.on_stop(&ev),
            "result" => self.on_result(ev, out),
            "setPhase" => self.on_set_phase(ev),
            // Newer Nix may add actions; they are valid events we have no use for.
            _ => true,
        }
    }

    fn on_msg(&mut self, ev: RawEvent, out: &mut Vec<String>) -> bool {
        let level = ev.level.unwrap_or(SHOWN_LEVEL);
        let msg = ev.msg.as_deref().unwrap_or("");
        if level <= SHOWN_LEVEL {
            push_text_lines(msg, out);
        }
        if let Some(raw) = ev.raw_msg.as_deref() {
            let info = error_info(
                level,
                msg,
                raw,
                ev.file.0,
                ev.line.0,
                ev.column.0,
                ev.trace.0,
            );
            if level == 0 {
                self.error_count += 1;
            } else {
                self.warning_count += 1;
            }
            if self.errors.len() < MAX_ERRORS_KEPT {
                self.errors.push(info);
            }
            self.changed = true;
        }
        true
    }

    fn on_start(&mut self, ev: RawEvent, out: &mut Vec<String>) -> bool {
        let Some(id) = ev.id else {
            return false;
        };
        let ty = ActivityType::from(ev.ty.unwrap_or(0));
        let text = ev.text.as_deref().unwrap_or("");
        if !text.is_empty() && ev.level.unwrap_or(0) <= SHOWN_LEVEL {
            out.push(format!("{text}..."));
        }
        let fields = ev.fields.as_deref().unwrap_or(&[]);
        let name = match ty {
            ActivityType::Build | ActivityType::PostBuildHook => {
                Some(store_path_name(field_str(fields, 0).unwrap_or("unnamed")).to_owned())
            }
            _ => None,
        };
        let copy_hint = match ty {
            ActivityType::CopyPaths => copy_paths_count(text).map(|n| (n, self.copies_finished)),
            _ => None,
        };
        self.seq += 1;
        let act = Activity {
            ty,
            seq: self.seq,
            name,
            done: 0,
            expected: 0,
            running: 0,
            failed: 0,
            expected_by_type: Vec::new(),
            phase: None,
            reported: false,
            copy_hint,
        };
        let replaced = match ev.machine {
            None => self.local.insert(id, act),
            Some(machine) => self
                .remote
                .entry(machine.into_owned())
                .or_default()
                .insert(id, act),
        };
        // A reused id ends the old activity as Nix's own progress bar would.
        if let Some(old) = replaced {
            self.retire(&old);
        }
        self.changed = true;
        true
    }

    fn on_stop(&mut self, ev: &RawEvent) -> bool {
        let Some(id) = ev.id else {
            return false;
        };
        let removed = match ev.machine.as_deref() {
            None => self.local.remove(&id),
            Some(machine) => {
                let removed = self.remote.get_mut(machine).and_then(|m| m.remove(&id));
                if self.remote.get(machine).is_some_and(HashMap::is_empty) {
                    self.remote.remove(machine);
                }
                removed.or_else(|| self.local.remove(&id))
            }
        };
        if let Some(act) = removed {
            self.retire(&act);
            self.changed = true;
        }
        true
    }

    fn copies_running(&self) -> u64 {
        self.activities()
            .filter(|act| act.ty == ActivityType::CopyPath)
            .count() as u64
    }

    fn retire(&mut self, act: &Activity) {
        let (done, _, _, failed) = act.counts(self.copies_finished, 0);
        if act.ty == ActivityType::CopyPath {
            self.copies_finished += 1;
        }
        let fin = self.finished.entry(act.ty).or_default();
        fin.done = fin.done.saturating_add(done);
        fin.failed = fin.failed.saturating_add(failed);
    }

    fn activity_mut(&mut self, id: u64, machine: Option<&str>) -> Option<&mut Activity> {
        match machine {
            Some(m)
                if self
                    .remote
                    .get(m)
                    .is_some_and(|acts| acts.contains_key(&id)) =>
            {
                self.remote.get_mut(m).and_then(|acts| acts.get_mut(&id))
            }
            _ => self.local.get_mut(&id),
        }
    }

    fn on_result(&mut self, ev: RawEvent, out: &mut Vec<String>) -> bool {
        let Some(id) = ev.id else {
            return false;
        };
        let fields = ev.fields.as_deref().unwrap_or(&[]);
        let machine = ev.machine.as_deref();
        match ResultType::from(ev.ty.unwrap_or(u32::MAX)) {
            ResultType::BuildLogLine | ResultType::PostBuildLogLine => {
                let text = field_str(fields, 0).unwrap_or("");
                // Nix's own terminal shows only the package name (`hello>`); the version is
                // kept here so parallel builds of two versions stay apart.
                let prefix = self
                    .activity_mut(id, machine)
                    .and_then(|act| act.name.as_deref());
                for line in text_lines(text) {
                    out.push(match prefix {
                        Some(prefix) => format!("{prefix}> {line}"),
                        None => line.to_owned(),
                    });
                }
            }
            ResultType::SetPhase => {
                if let Some(phase) = field_str(fields, 0) {
                    self.seq += 1;
                    let seq = self.seq;
                    if let Some(act) = self.activity_mut(id, machine) {
                        act.phase = Some((seq, phase.to_owned()));
                        self.changed = true;
                    }
                }
            }
            ResultType::Progress => {
                if let Some(act) = self.activity_mut(id, machine) {
                    act.done = field_int(fields, 0);
                    act.expected = field_int(fields, 1);
                    act.running = field_int(fields, 2);
                    act.failed = field_int(fields, 3);
                    act.reported = true;
                    self.changed = true;
                }
            }
            ResultType::SetExpected => {
                let ty = ActivityType::from(u32::try_from(field_int(fields, 0)).unwrap_or(0));
                let n = field_int(fields, 1);
                if let Some(act) = self.activity_mut(id, machine) {
                    match act.expected_by_type.iter_mut().find(|(t, _)| *t == ty) {
                        Some(entry) => entry.1 = n,
                        None => act.expected_by_type.push((ty, n)),
                    }
                    self.changed = true;
                }
            }
            _ => {}
        }
        true
    }

    /// The bare `setPhase` action: the phase of the build started last.
    fn on_set_phase(&mut self, ev: RawEvent) -> bool {
        let Some(phase) = ev.phase else {
            return false;
        };
        self.seq += 1;
        let seq = self.seq;
        let latest = self
            .local
            .values_mut()
            .chain(self.remote.values_mut().flat_map(HashMap::values_mut))
            .filter(|act| act.ty == ActivityType::Build)
            .max_by_key(|act| act.seq);
        if let Some(act) = latest {
            act.phase = Some((seq, phase.into_owned()));
            self.changed = true;
        }
        true
    }
}

/// Position of the first `\n`, a word at a time (the stream is mostly long JSON lines).
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NL;
        if (x.wrapping_sub(LO) & !x & HI) != 0 {
            // Some byte is (probably) zero: find it exactly.
            if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
                return Some(offset + i);
            }
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

/// The lines of a message (`\n` or `\r\n`); an empty message is one empty line.
fn text_lines(text: &str) -> impl Iterator<Item = &str> {
    let empty = text.is_empty();
    std::iter::once("")
        .filter(move |_| empty)
        .chain(text.lines())
}

fn push_text_lines(text: &str, out: &mut Vec<String>) {
    out.extend(text_lines(text).map(str::to_owned));
}

fn error_info(
    level: u64,
    msg: &str,
    raw_msg: &str,
    file: Option<String>,
    line: Option<u64>,
    column: Option<u64>,
    trace: Option<Vec<RawFrame>>,
) -> NixErrorInfo {
    let msg = strip_ansi(msg).into_owned();
    let raw_msg = strip_ansi(raw_msg).into_owned();
    let frames = trace.unwrap_or_default();
    let trace: Vec<String> = if frames.is_empty() {
        // Without `--show-trace` JSON, newer Nix still prints "… while" frames in the text.
        msg.lines()
            .filter_map(|l| l.trim_start().strip_prefix('…'))
            .map(|l| l.trim().to_owned())
            .collect()
    } else {
        frames
            .iter()
            .map(|frame| {
                let text = strip_ansi(frame.raw_msg.0.as_deref().unwrap_or("")).into_owned();
                match (&frame.file.0, frame.line.0) {
                    (Some(file), Some(line)) => match frame.column.0 {
                        Some(column) => format!("{text} at {file}:{line}:{column}"),
                        None => format!("{text} at {file}:{line}"),
                    },
                    _ => text,
                }
            })
            .collect()
    };

    // Where the error is: Nix's own fields; else the innermost trace frame with a position;
    // else the first "at <file>:<line>:<column>:" in the text (Nix 2.8 gives `throw` no
    // position of its own, only its trace does).
    let mut position = file
        .filter(|f| !f.is_empty())
        .map(|f| (f, line.filter(|l| *l > 0), column.filter(|c| *c > 0)));
    if position.is_none() {
        position = frames.iter().find_map(|frame| {
            let file = frame.file.0.clone().filter(|f| !f.is_empty())?;
            Some((file, frame.line.0, frame.column.0))
        });
    }
    if position.is_none() {
        position = msg.lines().find_map(position_in_line);
    }
    let (file, line, column) = match position {
        Some((f, l, c)) => (Some(f), l, c),
        None => (None, None, None),
    };
    NixErrorInfo {
        level,
        msg,
        raw_msg,
        file,
        line,
        column,
        trace,
    }
}

/// `at /path/file.nix:3:5:` (ANSI already stripped) → (`/path/file.nix`, 3, 5).
fn position_in_line(line: &str) -> Option<(String, Option<u64>, Option<u64>)> {
    let rest = line.trim().strip_prefix("at ")?;
    let rest = rest.strip_suffix(':').unwrap_or(rest);
    let (rest, last) = rest.rsplit_once(':')?;
    let last: u64 = last.parse().ok()?;
    let (file, line, column) = match rest.rsplit_once(':') {
        Some((file, line)) if line.parse::<u64>().is_ok() => (file, line.parse().ok(), Some(last)),
        _ => (rest, Some(last), None),
    };
    if file.is_empty() {
        return None;
    }
    Some((file.to_owned(), line, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let drv = "/nix/store/xnafkwyp0abw5khd51qdpkii39s043n3-thymis-b-1.0.drv";
        assert_eq!(store_path_name(drv), "thymis-b-1.0");
        assert_eq!(store_path_name("not-a-store-path.drv"), "not-a-store-path");
        assert_eq!(store_path_name(""), "");
    }

    #[test]
    fn ansi() {
        assert_eq!(strip_ansi("\x1b[31;1merror:\x1b[0m x"), "error: x");
        assert_eq!(strip_ansi("a\x1b]8;;http://x\x07b\x1b]8;;\x1b\\c"), "abc");
        assert_eq!(strip_ansi("trailing \x1b"), "trailing ");
        assert_eq!(strip_ansi("cut \x1b[1;3"), "cut ");
        assert_eq!(strip_ansi("\x1b[1mbold\x1b[0m"), "bold");
    }

    #[test]
    fn positions() {
        assert_eq!(
            position_in_line("       at /nix/store/x-source/hosts/x/custom.nix:3:5:"),
            Some((
                "/nix/store/x-source/hosts/x/custom.nix".into(),
                Some(3),
                Some(5)
            ))
        );
        assert_eq!(
            position_in_line("at «string»:1:2:"),
            Some(("«string»".into(), Some(1), Some(2)))
        );
        assert_eq!(position_in_line("at the end"), None);
        assert_eq!(position_in_line("at :3:"), None);
        assert_eq!(
            source_relative("/nix/store/8izhn82vyafjmqxlk5pxf59c61b4qn1j-source/hosts/x/a.nix"),
            "hosts/x/a.nix"
        );
        assert_eq!(source_relative("/etc/x.nix"), "/etc/x.nix");
    }

    #[test]
    fn newline_search() {
        for len in 0..40 {
            for at in 0..len {
                let mut v = vec![b'x'; len];
                v[at] = b'\n';
                assert_eq!(find_newline(&v), Some(at));
            }
            assert_eq!(find_newline(&vec![0x8a; len]), None);
        }
    }
}
