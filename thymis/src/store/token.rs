//! Creation and hashing of bearer secrets (session secrets, API, agent and access-client
//! tokens), kept in one place so every kind is equally strong and stored the same way.

use sha2::{Digest, Sha256};

/// Number of random bytes in a token: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;

/// A new token: 32 bytes from the operating system's random source as 64 lowercase hex
/// characters. Hex is safe unquoted in cookies, headers, URLs and file names.
///
/// # Panics
/// If the operating system cannot provide randomness. Issuing a predictable token instead
/// would be worse, and on a system in that state nothing else can be made secure either.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    if let Err(err) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random source failed ({err}); refusing to issue a token");
    }
    hex::encode(bytes)
}

/// A new agent token for an image: `thymis-` and 64 random bytes as hex, the form upstream
/// agents read from `thymis-token.txt` (agent-protocol.md §2.2).
///
/// # Panics
/// If the operating system cannot provide randomness (see [`new_token`]).
pub fn new_agent_token() -> String {
    let mut bytes = [0u8; 64];
    if let Err(err) = getrandom::fill(&mut bytes) {
        panic!("the operating system's random source failed ({err}); refusing to issue a token");
    }
    format!("thymis-{}", hex::encode(bytes))
}

/// The form in which a token is stored and looked up: SHA-256 of its UTF-8 bytes as lowercase
/// hex. A fast hash suffices because tokens carry 256 random bits; nothing is gained by
/// stretching, unlike with passwords.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two strings in time independent of where they differ, so a hash comparison does
/// not leak how much of it matched.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
