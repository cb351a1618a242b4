//! Processing of secret values at delivery or download, e.g. hashing a root password.

use std::io::Write;
use std::process::{Command, Stdio};

use super::{SecretError, SecretProcessing};

/// The value as a device should get it. `mkpasswd-yescrypt` runs `mkpasswd --method=yescrypt
/// --stdin` (Debian package `whois`); unlike upstream, a failure is an error rather than a
/// silent fallback to the plaintext, which would end up where a hash is expected.
pub fn process_value(processing: SecretProcessing, value: &[u8]) -> Result<Vec<u8>, SecretError> {
    match processing {
        SecretProcessing::None => Ok(value.to_vec()),
        SecretProcessing::MkpasswdYescrypt => yescrypt(value),
    }
}

fn yescrypt(value: &[u8]) -> Result<Vec<u8>, SecretError> {
    let failed = |reason: String| SecretError::Processing { reason };
    let mut child = Command::new("mkpasswd")
        .args(["--method=yescrypt", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| failed(format!("cannot run mkpasswd (package whois): {err}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // mkpasswd reads one line; a trailing newline in the value is not part of the password.
        let line = value.strip_suffix(b"\n").unwrap_or(value);
        stdin
            .write_all(line)
            .map_err(|err| failed(format!("cannot pass the value to mkpasswd: {err}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| failed(format!("mkpasswd failed: {err}")))?;
    if !output.status.success() {
        return Err(failed(format!("mkpasswd exited with {}", output.status)));
    }
    let mut hash = output.stdout;
    while hash.last().is_some_and(|b| b.is_ascii_whitespace()) {
        hash.pop();
    }
    if !hash.starts_with(b"$y$") {
        return Err(failed("mkpasswd did not print a yescrypt hash".to_owned()));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_keeps_the_value() {
        assert_eq!(
            process_value(SecretProcessing::None, b"a\nb").unwrap(),
            b"a\nb"
        );
    }

    /// Runs the real mkpasswd (Debian package `whois`, installed by scripts/test).
    #[test]
    fn yescrypt_hashes_with_mkpasswd() {
        let hash = process_value(SecretProcessing::MkpasswdYescrypt, b"hunter2\n").unwrap();
        let hash = String::from_utf8(hash).unwrap();
        assert!(hash.starts_with("$y$"), "{hash}");
        assert!(!hash.contains("hunter2"));
        // Salted: the same password hashes differently each time.
        let again = process_value(SecretProcessing::MkpasswdYescrypt, b"hunter2").unwrap();
        assert_ne!(hash.as_bytes(), again.as_slice());
    }
}
