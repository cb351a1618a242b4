//! Checks of what devices and users send before it is stored: sizes, ranges and timestamps.

use chrono::{DateTime, Duration, Utc};
use thymis_protocol::{LogEntry, Metrics};
use uuid::Uuid;

use crate::store::{MetricSample, NewLogEntry};

/// Longest stored log message; longer ones are cut (a log line is not a file transfer).
pub const MAX_LOG_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest stored host, program and tag names and entry ids.
const MAX_LOG_FIELD_BYTES: usize = 256;

/// How far in the future a device's clock may be before its timestamps are refused: a line
/// stamped years ahead would escape retention until then.
const MAX_CLOCK_AHEAD: Duration = Duration::days(1);

/// Most hardware ids one agent may report, and their longest key or value.
pub const MAX_HARDWARE_IDS: usize = 16;
const MAX_HARDWARE_ID_BYTES: usize = 256;

/// Longest SSH public key line accepted (an RSA 16384-bit key is about 2.8 KB).
const MAX_PUBLIC_KEY_BYTES: usize = 8 * 1024;

/// `text` cut to at most `max` bytes at a character boundary.
pub fn truncate_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn short_field(value: Option<&str>) -> Option<String> {
    value
        .map(|v| truncate_to(v, MAX_LOG_FIELD_BYTES).to_owned())
        .filter(|v| !v.is_empty())
}

/// Parses a device timestamp (RFC 3339, any offset) into UTC; refuses times before 1970 and
/// more than a day ahead of `now`.
pub fn device_time(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text.trim())
        .ok()?
        .with_timezone(&Utc);
    (time >= DateTime::UNIX_EPOCH && time <= now + MAX_CLOCK_AHEAD).then_some(time)
}

/// A log entry's id as stored: a UUID in its hyphenated lower-case form (rsyslog sends 32 hex
/// digits without hyphens), else the text itself if it is short and plain.
fn entry_id(text: &str) -> Option<String> {
    if let Ok(uuid) = Uuid::parse_str(text.trim()) {
        return Some(uuid.to_string());
    }
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    plain.then(|| text.to_owned())
}

/// A log entry ready to store, or `None` if its id or timestamp is unusable. Severity and
/// facility are clamped to syslog's ranges; long fields are cut.
pub fn log_entry(
    entry: &LogEntry,
    device_id: Option<Uuid>,
    public_key: &str,
    hostname: Option<&str>,
    now: DateTime<Utc>,
) -> Option<NewLogEntry> {
    Some(NewLogEntry {
        id: entry_id(&entry.uuid)?,
        device_id,
        ssh_public_key: public_key.to_owned(),
        hostname: short_field(hostname),
        at: device_time(&entry.timestamp, now)?,
        severity: entry.severity.map(|s| s.min(7)),
        facility: entry.facility.map(|f| f.min(23)),
        program: short_field(entry.programname.as_deref()),
        syslogtag: short_field(entry.syslogtag.as_deref()),
        message: truncate_to(&entry.message, MAX_LOG_MESSAGE_BYTES).to_owned(),
    })
}

/// A metrics sample ready to store: a valid timestamp and finite percentages, clamped to
/// 0–100.
pub fn metric_sample(metrics: &Metrics, now: DateTime<Utc>) -> Result<MetricSample, String> {
    let at = device_time(&metrics.timestamp, now)
        .ok_or_else(|| format!("invalid metrics timestamp {:?}", metrics.timestamp))?;
    let percent = |name: &str, value: f64| {
        if value.is_finite() {
            Ok(value.clamp(0.0, 100.0))
        } else {
            Err(format!("{name} is not a number"))
        }
    };
    Ok(MetricSample {
        at,
        cpu_percent: percent("cpu_percent", metrics.cpu_percent)?,
        ram_percent: percent("ram_percent", metrics.ram_percent)?,
        disk_percent: percent("disk_percent", metrics.disk_percent)?,
    })
}

/// Checks a claimed host key line: one line of printable ASCII, `<type> <base64>[ comment]`.
pub fn public_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_PUBLIC_KEY_BYTES {
        return Err("the public key is empty or too long".to_owned());
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("the public key contains characters that cannot be in a key".to_owned());
    }
    if key.split(' ').filter(|part| !part.is_empty()).count() < 2 {
        return Err("the public key is not `<type> <base64>`".to_owned());
    }
    Ok(())
}

/// Checks reported hardware ids: few, short, and without empty keys.
pub fn hardware_ids(ids: &std::collections::BTreeMap<String, String>) -> Result<(), String> {
    if ids.len() > MAX_HARDWARE_IDS {
        return Err(format!(
            "{} hardware ids reported, at most {MAX_HARDWARE_IDS} are accepted",
            ids.len()
        ));
    }
    for (key, value) in ids {
        if key.is_empty()
            || key.len() > MAX_HARDWARE_ID_BYTES
            || value.len() > MAX_HARDWARE_ID_BYTES
        {
            return Err(format!(
                "hardware id {:?} is empty or too long",
                truncate_to(key, 64)
            ));
        }
    }
    Ok(())
}

/// Checks a user-given text field: at most `max_chars` characters and, unless `multi_line`,
/// no control characters.
pub fn text_field(
    field: &str,
    value: &str,
    max_chars: usize,
    multi_line: bool,
) -> Result<(), String> {
    if value.chars().count() > max_chars {
        return Err(format!("{field} is longer than {max_chars} characters"));
    }
    let bad = value
        .chars()
        .any(|c| c.is_control() && !(multi_line && matches!(c, '\n' | '\r' | '\t')));
    if bad {
        return Err(format!("{field} contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("aé", 2), "a");
        assert_eq!(truncate_to("abc", 5), "abc");
    }

    #[test]
    fn entry_ids() {
        assert_eq!(
            entry_id("0123456789ABCDEF0123456789abcdef").as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(entry_id("x y"), None);
        assert_eq!(entry_id(""), None);
    }

    #[test]
    fn timestamps() {
        let now = Utc::now();
        assert!(device_time("2024-05-01T12:00:00+02:00", now).is_some());
        assert!(device_time("1969-12-31T23:59:59Z", now).is_none());
        assert!(device_time("yesterday", now).is_none());
        let ahead = (now + Duration::days(2)).to_rfc3339();
        assert!(device_time(&ahead, now).is_none());
    }
}
