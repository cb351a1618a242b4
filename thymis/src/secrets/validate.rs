//! Checks of secret values against their kind and size limits.

use super::SecretError;
use crate::module::SecretKind;

/// Size limit of a text secret (`single_line`, `multi_line`, `env_list`): 1 MiB.
pub const MAX_TEXT_SECRET_BYTES: usize = 1024 * 1024;

/// Size limit of a `file` secret: 10 MiB.
pub const MAX_FILE_SECRET_BYTES: usize = 10 * 1024 * 1024;

/// The size limit of a value of `kind`, in bytes.
pub fn max_secret_size(kind: SecretKind) -> usize {
    match kind {
        SecretKind::File => MAX_FILE_SECRET_BYTES,
        SecretKind::SingleLine | SecretKind::MultiLine | SecretKind::EnvList => {
            MAX_TEXT_SECRET_BYTES
        }
    }
}

/// Checks `value` against `kind`:
/// - every kind: at most [`max_secret_size`] bytes;
/// - text kinds: UTF-8;
/// - `single_line`: no line break (`\n` or `\r`);
/// - `env_list`: every line is `NAME=value` with a shell variable name (letters, digits, `_`,
///   not starting with a digit; leading blanks allowed), blank, or a `#` comment; `\r\n` line
///   ends are accepted.
///
/// Errors say what is wrong and where, never what the value is.
pub fn validate_secret_value(kind: SecretKind, value: &[u8]) -> Result<(), SecretError> {
    let limit = max_secret_size(kind);
    if value.len() > limit {
        return Err(SecretError::TooLarge {
            kind: kind.as_str(),
            size: value.len(),
            limit,
        });
    }
    let text = match kind {
        SecretKind::File => return Ok(()),
        _ => std::str::from_utf8(value).map_err(|_| SecretError::NotText {
            kind: kind.as_str(),
        })?,
    };
    match kind {
        SecretKind::SingleLine if text.contains(['\n', '\r']) => Err(SecretError::LineBreak),
        SecretKind::EnvList => validate_env_list(text),
        _ => Ok(()),
    }
}

fn validate_env_list(text: &str) -> Result<(), SecretError> {
    for (index, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.trim_end().is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let problem = match trimmed.split_once('=') {
            None => "expected NAME=value (no `=`)",
            Some(("", _)) => "the variable name before `=` is missing",
            Some((name, _)) if is_valid_env_name(name) => continue,
            Some(_) => {
                "invalid variable name (letters, digits and `_`, not starting with a digit, \
                 no spaces before `=`)"
            }
        };
        return Err(SecretError::EnvList {
            line: index + 1,
            problem,
        });
    }
    Ok(())
}

/// Whether `name` is a valid environment variable name: ASCII letters, digits and `_`, not
/// starting with a digit.
pub fn is_valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
