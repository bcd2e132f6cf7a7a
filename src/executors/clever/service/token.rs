//! The helper's bearer token of one service application
//! (`HEPTAPOD_PAAS_RUNNER_TOKEN`): [`TOKEN_LEN`] characters of
//! `[A-Za-z0-9]` from the operating system's random source, made once when
//! the application is created and kept in the state file.

use crate::secret::Secret;
use rand::rngs::OsRng;
use rand::TryRngCore;

/// Characters of a token.
pub const TOKEN_LEN: usize = 40;

/// The variable of the application's environment the helper reads.
pub const TOKEN_VARIABLE: &str = "HEPTAPOD_PAAS_RUNNER_TOKEN";

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Bytes of 0..=247 map evenly onto the 62 characters (4 × 62 = 248);
/// larger ones are drawn again.
const UNBIASED_BELOW: u8 = 248;

/// The operating system's random source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct TokenError(String);

/// A new token.
pub fn new_token() -> Result<Secret, TokenError> {
    let mut token = String::with_capacity(TOKEN_LEN);
    let mut bytes = [0u8; 64];
    // Each round keeps about 97 % of its bytes: two rounds nearly always
    // suffice; the bound only stops a broken source.
    for _ in 0..16 {
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| TokenError(e.to_string()))?;
        for b in bytes.iter().filter(|b| **b < UNBIASED_BELOW) {
            if token.len() == TOKEN_LEN {
                return Ok(Secret::new(token));
            }
            if let Some(c) = ALPHABET.get(usize::from(*b) % ALPHABET.len()) {
                token.push(char::from(*c));
            }
        }
        if token.len() == TOKEN_LEN {
            return Ok(Secret::new(token));
        }
    }
    Err(TokenError("too few usable random bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn tokens_are_40_alphanumerics_and_differ() {
        let tokens: BTreeSet<String> = (0..50)
            .map(|_| new_token().expect("token").expose().to_string())
            .collect();
        assert_eq!(tokens.len(), 50);
        for t in &tokens {
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()), "{t}");
        }
        // Over 2000 characters every class of the alphabet shows up.
        let all: String = tokens.into_iter().collect();
        assert!(all.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(all.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(all.bytes().any(|b| b.is_ascii_digit()));
    }
}
