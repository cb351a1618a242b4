//! Log sources on real files: tailing with resume, rotation and truncation, line parsing,
//! journald JSON, and shipping through a connection queue with acknowledged positions.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thymis_agent::clock;
use thymis_agent::logs::file::{self, FileTail};
use thymis_agent::logs::journal::parse_journal_line;
use thymis_agent::logs::{self, Batch, Position, Source, MAX_BATCH_ENTRIES};
use thymis_agent::outgoing::{Frame, Link, Outgoing};
use thymis_protocol::{AgentMessage, LogEntry};

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn messages(batch: &Batch) -> Vec<&str> {
    batch.entries.iter().map(|e| e.message.as_str()).collect()
}

fn uuids(batch: &Batch) -> Vec<String> {
    batch.entries.iter().map(|e| e.uuid.clone()).collect()
}

fn commit(tail: &mut FileTail, batch: &Batch) {
    let Position::File(position) = batch.position.clone() else {
        panic!("not a file position")
    };
    tail.commit(position).unwrap();
}

struct Files {
    _dir: tempfile::TempDir,
    log: PathBuf,
    state: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    Files {
        log: dir.path().join("syslog"),
        state: dir.path().join("state/pos.json"),
        _dir: dir,
    }
}

#[test]
fn tail_resumes_after_the_committed_position_only() {
    let f = files();
    assert!(
        FileTail::new(f.log.clone(), f.state.clone())
            .read_batch()
            .unwrap()
            .is_none(),
        "no file yet"
    );
    append(&f.log, "one\ntwo\nthree\n");
    let mut tail = FileTail::new(f.log.clone(), f.state.clone());
    let first = tail.read_batch().unwrap().unwrap();
    assert_eq!(messages(&first), ["one", "two", "three"]);
    // Not committed: a restarted agent reads the same lines with the same uuids.
    let again = FileTail::new(f.log.clone(), f.state.clone())
        .read_batch()
        .unwrap()
        .unwrap();
    assert_eq!(uuids(&again), uuids(&first));
    commit(&mut tail, &first);
    let mut resumed = FileTail::new(f.log.clone(), f.state.clone());
    assert!(resumed.read_batch().unwrap().is_none());
    // A line is shipped only once it is complete.
    append(&f.log, "fou");
    assert!(resumed.read_batch().unwrap().is_none());
    append(&f.log, "r\n\n");
    let next = resumed.read_batch().unwrap().unwrap();
    assert_eq!(messages(&next), ["four"]);
    assert!(!uuids(&first).contains(&next.entries[0].uuid));
}

#[test]
fn tail_follows_rotation_and_truncation() {
    let f = files();
    append(&f.log, "a1\na2\n");
    let mut tail = FileTail::new(f.log.clone(), f.state.clone());
    let first = tail.read_batch().unwrap().unwrap();
    // The logger still writes a last line to the renamed file, then a new file appears.
    let rotated = f.log.with_extension("1");
    std::fs::rename(&f.log, &rotated).unwrap();
    append(&rotated, "a3\na4-unterminated");
    append(&f.log, "b1\n");
    let second = tail.read_batch().unwrap().unwrap();
    assert_eq!(messages(&second), ["a3", "a4-unterminated", "b1"]);
    let Position::File(position) = second.position.clone() else {
        panic!()
    };
    use std::os::unix::fs::MetadataExt;
    assert_eq!(position.ino, std::fs::metadata(&f.log).unwrap().ino());
    assert_eq!(position.offset, 3);
    commit(&mut tail, &second);
    assert_ne!(uuids(&first)[0], uuids(&second)[2]);

    // Truncated in place (copytruncate): new lines at old offsets get new uuids.
    append(&f.log, "b2\n");
    let third = tail.read_batch().unwrap().unwrap();
    std::fs::File::create(&f.log).unwrap();
    append(&f.log, "c1\n");
    let fourth = tail.read_batch().unwrap().unwrap();
    assert_eq!(messages(&fourth), ["c1"]);
    assert_ne!(uuids(&fourth), uuids(&second)[2..]);
    assert_eq!(messages(&third), ["b2"]);
}

#[test]
fn a_file_replaced_while_stopped_is_read_from_its_start() {
    let f = files();
    append(&f.log, "old\n");
    let mut tail = FileTail::new(f.log.clone(), f.state.clone());
    let batch = tail.read_batch().unwrap().unwrap();
    commit(&mut tail, &batch);
    std::fs::rename(&f.log, f.log.with_extension("1")).unwrap();
    append(&f.log, "new 1\nnew 2\n");
    let batch = FileTail::new(f.log.clone(), f.state.clone())
        .read_batch()
        .unwrap()
        .unwrap();
    assert_eq!(messages(&batch), ["new 1", "new 2"]);
}

#[test]
fn a_large_file_without_state_ships_only_its_recent_end() {
    let f = files();
    let line = format!("{}\n", "x".repeat(99));
    append(&f.log, &line.repeat(20_000)); // 2 MB
    append(&f.log, "last line\n");
    let mut tail = FileTail::new(f.log.clone(), f.state.clone());
    let mut total = 0;
    let mut last = String::new();
    let mut batches = 0;
    while let Some(batch) = tail.read_batch().unwrap() {
        assert!(batch.entries.len() <= MAX_BATCH_ENTRIES);
        batches += 1;
        total += batch.entries.len();
        assert!(batch
            .entries
            .iter()
            .take(1)
            .all(|e| e.message == "x".repeat(99) || e.message == "last line"));
        last = batch.entries.last().unwrap().message.clone();
    }
    assert_eq!(last, "last line");
    assert!(
        total <= file::INITIAL_BACKLOG_BYTES as usize / 100 + 1,
        "{total}"
    );
    assert!(total > 10_000 - 10, "{total}");
    assert!(batches >= total / MAX_BATCH_ENTRIES);
}

#[test]
fn syslog_lines_are_parsed_best_effort() {
    let now = clock::now_micros();
    let classic = file::parse_syslog_line(
        "Jan  2 03:04:05 kiosk-1 sshd[812]: Accepted publickey for root",
        now,
    );
    assert_eq!(classic.host.as_deref(), Some("kiosk-1"));
    assert_eq!(classic.programname.as_deref(), Some("sshd"));
    assert_eq!(classic.syslogtag.as_deref(), Some("sshd[812]:"));
    assert_eq!(classic.message, "Accepted publickey for root");
    let year = clock::local_year(now / 1_000_000);
    let jan2 = clock::days_from_civil(year, 1, 2) * 86_400 + 3 * 3600 + 4 * 60 + 5;
    assert_eq!(
        classic.micros,
        clock::local_civil_to_unix(jan2).unwrap() * 1_000_000
    );

    // Just after new year, December lines belong to the year before.
    let new_year =
        clock::local_civil_to_unix(clock::days_from_civil(2025, 1, 1) * 86_400 + 1800).unwrap();
    let december = file::parse_syslog_line("Dec 31 23:59:59 h cron: done", new_year * 1_000_000);
    let dec31 =
        clock::local_civil_to_unix(clock::days_from_civil(2024, 12, 31) * 86_400 + 86_399).unwrap();
    assert_eq!(december.micros, dec31 * 1_000_000);
    assert_eq!(december.programname.as_deref(), Some("cron"));

    let rfc = file::parse_syslog_line(
        "2024-05-24T11:34:56.123456+02:00 kiosk-1 kernel: [    0.000000] Booting Linux",
        now,
    );
    assert_eq!(
        clock::format_rfc3339(rfc.micros),
        "2024-05-24T09:34:56.123456Z"
    );
    assert_eq!(rfc.programname.as_deref(), Some("kernel"));
    assert_eq!(rfc.message, "[    0.000000] Booting Linux");

    // A `<PRI>` prefix gives facility and severity (here daemon.err = 3 * 8 + 3).
    let with_priority = file::parse_syslog_line("<27>Jan  2 03:04:05 kiosk-1 app[1]: failed", now);
    assert_eq!(with_priority.priority, Some(27));
    assert_eq!(with_priority.programname.as_deref(), Some("app"));
    assert_eq!(with_priority.message, "failed");
    assert_eq!(file::parse_syslog_line("<192>x", now).priority, None);
    assert_eq!(file::parse_syslog_line("<192>x", now).message, "<192>x");
    assert_eq!(file::parse_syslog_line("no priority", now).priority, None);

    let no_tag = file::parse_syslog_line("Jan  2 03:04:05 kiosk-1 -- MARK --", now);
    assert_eq!(
        (no_tag.programname, no_tag.message.as_str()),
        (None, "-- MARK --")
    );

    for garbage in [
        "random text: with colon",
        "",
        "Foo  2 03:04:05 h p: m",
        "Jan 32 03:04:05 h p: m",
    ] {
        let parsed = file::parse_syslog_line(garbage, now);
        assert_eq!(parsed.message, garbage);
        assert_eq!(parsed.micros, now);
        assert_eq!(parsed.programname, None);
    }
    let entry = file::entry_from_line(b"not syslog \xff at all", 1, 2, 3);
    assert_eq!(entry.message, "not syslog \u{fffd} at all");
    assert_eq!(
        entry,
        LogEntry {
            timestamp: entry.timestamp.clone(),
            ..file::entry_from_line(b"not syslog \xff at all", 1, 2, 3)
        }
    );
}

#[test]
fn journald_json_lines_map_to_entries() {
    let sample = include_str!("data/journal-sample.jsonl");
    let parsed: Vec<(LogEntry, String)> = sample
        .lines()
        .map(|l| parse_journal_line(l).unwrap())
        .collect();
    let (sshd, cursor) = &parsed[0];
    assert!(cursor.starts_with("s=9f1c7e4b"));
    assert_eq!(sshd.timestamp, clock::format_rfc3339(1_716_550_496_123_456));
    assert_eq!(sshd.severity, Some(6));
    assert_eq!(sshd.facility, Some(4));
    assert_eq!(sshd.programname.as_deref(), Some("sshd"));
    assert_eq!(sshd.syslogtag.as_deref(), Some("sshd[812]:"));
    assert!(sshd.message.starts_with("Accepted publickey for root"));
    // Byte-array messages (not UTF-8) are decoded lossily.
    let (kernel, _) = &parsed[1];
    assert_eq!(kernel.message, "usb 1-1: device \u{fffd} error");
    assert_eq!((kernel.severity, kernel.facility), (Some(3), Some(0)));
    assert_eq!(kernel.syslogtag.as_deref(), Some("kernel:"));
    // Without SYSLOG_IDENTIFIER the command name is the program.
    let (systemd, _) = &parsed[2];
    assert_eq!(systemd.programname.as_deref(), Some("systemd"));
    assert_eq!(systemd.syslogtag.as_deref(), Some("systemd[1]:"));
    assert_eq!(systemd.facility, None);
    let (agent, _) = &parsed[3];
    assert_eq!(agent.programname.as_deref(), Some("thymis-agent"));
    assert_eq!(agent.message, "");
    // Uuids come from the cursor: the same entry read twice is the same entry.
    assert_eq!(
        parse_journal_line(sample.lines().next().unwrap())
            .unwrap()
            .0
            .uuid,
        sshd.uuid
    );
    let mut all: Vec<_> = parsed.iter().map(|(e, _)| e.uuid.clone()).collect();
    all.dedup();
    assert_eq!(all.len(), 4);
    assert!(parse_journal_line("{}").is_none());
    assert!(parse_journal_line("-- No entries --").is_none());
}

fn device_logs(frame: Frame) -> Vec<LogEntry> {
    let Frame::Text(text) = frame else {
        panic!("binary frame")
    };
    match thymis_protocol::decode::<AgentMessage>(&text).unwrap() {
        AgentMessage::DeviceLogs { entries } => entries,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shipping_commits_only_batches_written_to_a_live_connection() {
    let dev = common::TestDevice::new();
    dev.write(
        "var/log/syslog",
        "Jan  2 03:04:05 h app[1]: first\nJan  2 03:04:06 h app[1]: second\n",
    );
    let source = Source::select(&dev.device, None).expect("the syslog file is the source");
    let state = dev.device.state_dir().join("log-file-position.json");
    let link = Link::default();
    tokio::spawn(logs::ship(link.clone(), source));

    // A connection that ends before the batch was written.
    let (out, mut queues) = Outgoing::new();
    link.set(Some(out));
    let item = tokio::time::timeout(Duration::from_secs(5), queues.next())
        .await
        .unwrap()
        .unwrap();
    let lost = device_logs(item.frame);
    assert_eq!(
        lost.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["first", "second"]
    );
    assert_eq!(lost[0].programname.as_deref(), Some("app"));
    drop(item.ack);
    drop(queues);
    link.set(None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!state.exists(), "nothing committed for an unwritten batch");

    // The next connection gets the same entries again and acknowledges them.
    let (out, mut queues) = Outgoing::new();
    link.set(Some(out));
    let item = tokio::time::timeout(Duration::from_secs(5), queues.next())
        .await
        .unwrap()
        .unwrap();
    let resent = device_logs(item.frame);
    assert_eq!(resent, lost);
    item.ack.unwrap().send(()).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !state.exists() {
        assert!(tokio::time::Instant::now() < deadline, "position not saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let saved: file::FilePosition =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(
        saved.offset,
        std::fs::metadata(dev.path("var/log/syslog")).unwrap().len()
    );

    // New lines follow in a new batch.
    append(&dev.path("var/log/syslog"), "third\n");
    let item = tokio::time::timeout(Duration::from_secs(5), queues.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(device_logs(item.frame)[0].message, "third");
}

#[test]
fn without_journal_or_file_there_is_no_source() {
    let dev = common::TestDevice::new();
    assert!(Source::select(&dev.device, None).is_none());
    dev.write("var/log/messages", "x\n");
    assert!(matches!(
        Source::select(&dev.device, None),
        Some(Source::File(_))
    ));
    // An explicit file is followed even before it exists.
    assert!(matches!(
        Source::select(&dev.device, Some(Path::new("/nonexistent/log"))),
        Some(Source::File(_))
    ));
}
