//! A small stderr logger. Under systemd (`$JOURNAL_STREAM` set) each line starts with the
//! syslog priority `<N>` so journald records the level; otherwise with the level name.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger {
    level: LevelFilter,
    journal: bool,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // Libraries only get to speak about problems unless tracing is on.
        let limit =
            if metadata.target().starts_with("thymis_agent") || self.level == LevelFilter::Trace {
                self.level
            } else {
                self.level.min(LevelFilter::Warn)
            };
        metadata.level() <= limit
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = if self.journal {
            let priority = match record.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            format!("<{priority}>{}\n", record.args())
        } else {
            format!("{:<5} {}\n", record.level(), record.args())
        };
        // Nothing sensible to do if stderr is gone.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger at `level` (once; later calls are ignored).
pub fn init(level: LevelFilter) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_boxed_logger(Box::new(StderrLogger { level, journal })).is_ok() {
        log::set_max_level(level);
    }
}
