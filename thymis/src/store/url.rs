//! Parsing of the controller's `database-url` option.

use std::path::PathBuf;

use super::StoreError;

/// Turns a `database-url` into the path of the SQLite file.
///
/// Accepts upstream Thymis' SQLAlchemy form and a plain path:
/// - `sqlite:////var/lib/thymis/thymis.sqlite` (four slashes) → `/var/lib/thymis/thymis.sqlite`
/// - `sqlite:///thymis.sqlite` (three slashes) → `thymis.sqlite`, relative to the working directory
/// - `sqlite+pysqlite:///…` (a SQLAlchemy driver suffix) like `sqlite:`
/// - `/var/lib/thymis/thymis.sqlite` or `thymis.sqlite` as is
///
/// Anything else (another database such as `postgresql://…`, a URL with a host or query, an
/// empty string) is a [`StoreError::InvalidUrl`] that says what is accepted.
///
/// ```
/// use std::path::Path;
/// use thymis::store::parse_database_url;
///
/// let path = parse_database_url("sqlite:////var/lib/thymis/thymis.sqlite")?;
/// assert_eq!(path, Path::new("/var/lib/thymis/thymis.sqlite"));
/// assert!(parse_database_url("postgresql://db/thymis").is_err());
/// # Ok::<(), thymis::store::StoreError>(())
/// ```
pub fn parse_database_url(url: &str) -> Result<PathBuf, StoreError> {
    const EXPECTED: &str =
        "expected sqlite:////absolute/path.sqlite, sqlite:///relative/path.sqlite \
                            or a file path";
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::InvalidUrl(format!(
            "the url is empty; {EXPECTED}"
        )));
    }
    let Some((scheme, rest)) = split_scheme(url) else {
        return Ok(PathBuf::from(url));
    };
    let lower = scheme.to_ascii_lowercase();
    if lower != "sqlite" && !lower.starts_with("sqlite+") {
        return Err(StoreError::InvalidUrl(format!(
            "unsupported database `{scheme}`; only SQLite is supported ({EXPECTED})"
        )));
    }
    // SQLAlchemy: `sqlite://` + `/` + path, the host part being empty. So three slashes precede
    // a relative path and four an absolute one.
    let Some(path) = rest.strip_prefix("///") else {
        return Err(StoreError::InvalidUrl(format!(
            "`{url}` has a host part or too few slashes; {EXPECTED}"
        )));
    };
    if path.is_empty() {
        return Err(StoreError::InvalidUrl(format!(
            "`{url}` names no file; {EXPECTED}"
        )));
    }
    if path.contains('?') {
        // A query (e.g. `?mode=ro`) would otherwise silently become part of the file name.
        return Err(StoreError::InvalidUrl(format!(
            "`{url}` has query parameters, which are not supported; {EXPECTED}"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Splits `scheme:rest` when `url` starts with a URL scheme. Single letters are not schemes so
/// that Windows paths such as `C:\thymis.sqlite` stay paths.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let is_scheme = scheme.len() > 1
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // A plain relative path may contain a colon (`data:1/thymis.sqlite`); only treat the prefix
    // as a scheme when it is followed by `//` or is explicitly sqlite.
    if is_scheme && (rest.starts_with("//") || scheme.to_ascii_lowercase().starts_with("sqlite")) {
        Some((scheme, rest))
    } else {
        None
    }
}
