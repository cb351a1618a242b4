//! Time: RFC 3339 formatting and parsing, local civil time, and the clock floor.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-01-02T03:04:05.123456Z` for a time in microseconds since the epoch.
pub fn format_rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// The parts of a date-time text: `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM]`.
struct DateTimeText {
    /// Seconds since the epoch if the civil time were UTC.
    civil_secs: i64,
    micros: i64,
    /// The offset east of UTC in seconds, if the text has one.
    offset_secs: Option<i64>,
    /// Bytes consumed.
    len: usize,
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = s.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn parse_date_time(text: &str) -> Option<DateTimeText> {
    let s = text.as_bytes();
    let year = digits(s, 0, 4)?;
    let month = u32::try_from(digits(s, 5, 2)?).ok()?;
    let day = u32::try_from(digits(s, 8, 2)?).ok()?;
    let (hour, minute, second) = (digits(s, 11, 2)?, digits(s, 14, 2)?, digits(s, 17, 2)?);
    if s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while s.get(at).is_some_and(u8::is_ascii_digit) {
            if at - start < 6 {
                micros = micros * 10 + i64::from(s[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match s.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            Some(0)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let (oh, om) = (digits(s, at + 1, 2)?, digits(s, at + 4, 2)?);
            if s.get(at + 3) != Some(&b':') {
                return None;
            }
            at += 6;
            let offset = oh * 3600 + om * 60;
            Some(if sign == b'-' { -offset } else { offset })
        }
        _ => None,
    };
    let civil_secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(DateTimeText {
        civil_secs,
        micros,
        offset_secs,
        len: at,
    })
}

/// Parses an RFC 3339 time with an offset at the start of `text`; returns microseconds since
/// the epoch and the number of bytes used.
pub fn parse_rfc3339_prefix(text: &str) -> Option<(i64, usize)> {
    let parsed = parse_date_time(text)?;
    let offset = parsed.offset_secs?;
    Some((
        (parsed.civil_secs - offset) * 1_000_000 + parsed.micros,
        parsed.len,
    ))
}

/// Parses a date-time as Python's `str(datetime.now())` writes it (local time, no offset);
/// an offset, if present, is honoured. Returns seconds since the epoch.
pub fn parse_local_date_time(text: &str) -> Option<i64> {
    let text = text.trim();
    let parsed = parse_date_time(text)?;
    if parsed.len != text.len() {
        return None;
    }
    match parsed.offset_secs {
        Some(offset) => Some(parsed.civil_secs - offset),
        None => local_civil_to_unix(parsed.civil_secs),
    }
}

/// Interprets seconds-of-a-civil-time (as if UTC) in the local time zone.
pub fn local_civil_to_unix(civil_secs: i64) -> Option<i64> {
    let (year, month, day) = civil_from_days(civil_secs.div_euclid(86_400));
    let tod = civil_secs.rem_euclid(86_400);
    // SAFETY: `tm` is plain data; mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = i32::try_from(year - 1900).ok()?;
    tm.tm_mon = month as i32 - 1;
    tm.tm_mday = day as i32;
    tm.tm_hour = (tod / 3600) as i32;
    tm.tm_min = (tod % 3600 / 60) as i32;
    tm.tm_sec = (tod % 60) as i32;
    tm.tm_isdst = -1;
    // SAFETY: a valid, initialised `tm`.
    let t = unsafe { libc::mktime(&mut tm) };
    // time_t is 32 bits on some boards the agent runs on.
    #[allow(clippy::useless_conversion)]
    (t != -1).then_some(i64::from(t))
}

/// The local-time year at `secs` since the epoch.
pub fn local_year(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data filled by localtime_r.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to a time_t and a tm.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return civil_from_days(secs.div_euclid(86_400)).0;
    }
    i64::from(tm.tm_year) + 1900
}

/// Sets the system clock to `secs` if it is earlier (the clock floor of spec §2.3: boards
/// without a real-time clock boot in 1970 and could not validate TLS certificates until NTP
/// syncs). Returns whether the clock was changed.
pub fn apply_clock_floor(secs: i64) -> std::io::Result<bool> {
    if now_micros().div_euclid(1_000_000) >= secs {
        return Ok(false);
    }
    let ts = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec; the call only reads it.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 11_016, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339(1_704_164_645_123_456),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            parse_rfc3339_prefix("2024-01-02T04:04:05.123456+01:00 host"),
            Some((1_704_164_645_123_456, 32))
        );
        assert_eq!(
            parse_rfc3339_prefix("2024-01-02T03:04:05Z"),
            Some((1_704_164_645_000_000, 20))
        );
        assert_eq!(
            parse_rfc3339_prefix("2024-01-02T03:04:05.1-00:30"),
            Some((1_704_166_445_100_000, 27))
        );
        assert_eq!(parse_rfc3339_prefix("2024-01-02T03:04:05"), None);
        assert_eq!(parse_rfc3339_prefix("2024-13-02T03:04:05Z"), None);
        assert_eq!(parse_rfc3339_prefix("Jan  2 03:04:05"), None);
    }

    #[test]
    fn python_now_text_is_local_time() {
        let secs = parse_local_date_time("2024-05-01 12:34:56.123456").unwrap();
        let civil = days_from_civil(2024, 5, 1) * 86_400 + 12 * 3600 + 34 * 60 + 56;
        assert_eq!(local_civil_to_unix(civil), Some(secs));
        assert_eq!(
            parse_local_date_time("2024-05-01T12:34:56+02:00"),
            Some(civil - 7200)
        );
        assert_eq!(parse_local_date_time("yesterday"), None);
        assert_eq!(parse_local_date_time("2024-05-01 12:34:56 junk"), None);
    }

    #[test]
    fn floor_in_the_past_changes_nothing() {
        assert!(!apply_clock_floor(0).unwrap());
    }
}
