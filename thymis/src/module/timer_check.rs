//! Checks systemd timer expressions typed into timer settings, with `systemd-analyze` as the
//! reference: the next elapse times of an `OnCalendar=` expression, and the normalised form of
//! a time span such as `OnBootSec=`.

use std::process::Command;

/// The most elapse times one check may ask for.
pub const MAX_ITERATIONS: u32 = 100;
/// The longest expression accepted.
const MAX_LEN: usize = 512;

/// Why an expression could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimerCheckError {
    /// systemd rejected the expression (its message).
    #[error("{0}")]
    Invalid(String),
    /// `systemd-analyze` could not be run.
    #[error("cannot run systemd-analyze: {0}")]
    Unavailable(String),
}

/// The next `iterations` elapse times of the calendar expression `value`, in UTC as
/// `systemd-analyze` prints them (`Mon 2026-11-23 00:00:00 UTC`). Fewer come back when the
/// expression stops elapsing (a date in the past gives none).
pub fn next_elapses(value: &str, iterations: u32) -> Result<Vec<String>, TimerCheckError> {
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(TimerCheckError::Invalid(format!(
            "iterations must be between 1 and {MAX_ITERATIONS}"
        )));
    }
    let output = analyze(&["calendar", &format!("--iterations={iterations}")], value)?;
    // In UTC the times are printed as they are, on the "Next elapse" and "Iter. #n" lines.
    Ok(output
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .filter(|(label, _)| *label == "Next elapse" || label.starts_with("Iter. #"))
        .map(|(_, time)| time.trim())
        .filter(|time| *time != "never")
        .map(str::to_owned)
        .collect())
}

/// The normalised form of the time span `value` (`90min` → `1h 30min`).
pub fn normalize_timespan(value: &str) -> Result<String, TimerCheckError> {
    let output = analyze(&["timespan"], value)?;
    output
        .lines()
        .filter_map(|line| line.trim().split_once(": "))
        .find(|(label, _)| *label == "Human")
        .map(|(_, human)| human.trim().to_owned())
        .ok_or_else(|| TimerCheckError::Unavailable("unexpected systemd-analyze output".into()))
}

/// Runs `systemd-analyze <args> -- <value>` in UTC and the C locale; the value cannot be taken
/// for an option.
fn analyze(args: &[&str], value: &str) -> Result<String, TimerCheckError> {
    if value.trim().is_empty() {
        return Err(TimerCheckError::Invalid("the expression is empty".into()));
    }
    if value.len() > MAX_LEN || value.chars().any(char::is_control) {
        return Err(TimerCheckError::Invalid(format!(
            "the expression must be one line of at most {MAX_LEN} characters"
        )));
    }
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg("--")
        .arg(value)
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "cat")
        .output()
        .map_err(|err| TimerCheckError::Unavailable(err.to_string()))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(TimerCheckError::Invalid(
            stderr
                .lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("invalid expression")
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the real systemd-analyze.
    #[test]
    fn calendar_expressions_give_their_next_elapses() {
        let times = next_elapses("*-*-* 04:30", 3).unwrap();
        assert_eq!(times.len(), 3, "{times:?}");
        for time in &times {
            assert!(time.ends_with(" 04:30:00 UTC"), "{time}");
        }
        assert_eq!(next_elapses("2001-01-01", 2).unwrap(), Vec::<String>::new());
        let error = next_elapses("every full moon", 1).unwrap_err();
        assert!(
            matches!(&error, TimerCheckError::Invalid(m) if m.contains("every full moon")),
            "{error:?}"
        );
        // An expression looking like an option is still only an expression.
        assert!(matches!(
            next_elapses("--help", 1),
            Err(TimerCheckError::Invalid(_))
        ));
        assert!(next_elapses("daily", 0).is_err());
        assert!(next_elapses("daily", MAX_ITERATIONS + 1).is_err());
        assert!(next_elapses("daily\nweekly", 1).is_err());
    }

    #[test]
    fn time_spans_are_normalised() {
        assert_eq!(normalize_timespan("90min").unwrap(), "1h 30min");
        assert_eq!(normalize_timespan("5d").unwrap(), "5d");
        assert!(matches!(
            normalize_timespan("soon"),
            Err(TimerCheckError::Invalid(_))
        ));
        assert!(normalize_timespan("").is_err());
    }
}
