//! Secrets: access tokens and session IDs are random and stored only as SHA-256 digests;
//! passwords are hashed with argon2id.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token Clew issues starts with, so that secret scanners can recognise them.
pub(crate) const TOKEN_PREFIX: &str = "clew_";

/// Shortest token accepted from outside (a bootstrap token): about 128 bits of entropy when
/// random.
pub(crate) const MIN_TOKEN_CHARS: usize = 24;

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing leaves no safe way to issue secrets.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// A new access token: the prefix and 160 random bits in hex.
pub(crate) fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<20>()))
}

/// A new session ID or CSRF token.
pub(crate) fn new_session_secret() -> String {
    hex::encode(random_bytes::<32>())
}

/// The digest a secret is stored and looked up by.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An argon2id hash of `password` in PHC format. Slow on purpose: call it off the async
/// runtime's worker threads.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `hash`; `None` (a user without a password, or no such user)
/// still spends the time of a verification, so that timing does not tell which.
pub(crate) fn verify_password(password: &str, hash: Option<&str>) -> bool {
    // A valid hash of a password nobody knows, verified when there is nothing to verify.
    const DECOY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J5mX5b4yl0sEXAcbqfnqc0Y5WCiIgnGxqZD9Wt8kkd0";
    let parsed = PasswordHash::new(hash.unwrap_or(DECOY));
    let Ok(parsed) = parsed else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && hash.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_stored_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 40, "{a}");
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert!(!digest(&a).contains(&a[TOKEN_PREFIX.len()..]));
        assert!(same(&a, &a.clone()) && !same(&a, &b) && !same(&a, "short"));
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", Some(&hash)));
        assert!(!verify_password("wrong horse", Some(&hash)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("anything", Some("not a hash")));
    }
}
