//! A runner's short identity (its "unique name"): the `runner` log field,
//! the `runner_name` of state entries and the `<id>` of PAAS resource names
//! (`hpd-job-<id>-<job id>`).
//!
//! - Tokens created by GitLab ≥ 15.10 (`glrt-…`, `glrtr-…`, partitioned
//!   `t1_…`) follow GitLab Runner's `ShortenToken` (helpers/shorten_token.go):
//!   strip the known prefixes (`glrt-` with an optional `t1_`/`t2_`/`t3_`,
//!   a bare `t1_`…, `glrtr-`; then `glcbt-`; then `GR` + 7 hex digits), then
//!   keep 9 characters. Their first 8 characters (`glrt-` + 3) are nearly
//!   constant, which made every such runner collide.
//! - Any other (legacy) token keeps the Python runner's rule, its first 8
//!   characters, so state files and application names written by the Python
//!   runner are still this runner's.
//! - A `unique_name` key in the section overrides both.
//!
//! The first 8 characters remain the runner's *legacy identity*: state
//! entries and resources written under it before the rule changed are still
//! recognised (see `crate::state_migration`).

/// Characters GitLab Runner keeps after stripping the prefixes.
const SHORT_TOKEN_LEN: usize = 9;

/// Characters of the Python runner's identity.
const LEGACY_LEN: usize = 8;

/// Longest `unique_name` accepted: resource names stay short.
pub const MAX_UNIQUE_NAME_LEN: usize = 40;

fn strip_partition(s: &str) -> &str {
    for p in ["t1_", "t2_", "t3_"] {
        if let Some(rest) = s.strip_prefix(p) {
            return rest;
        }
    }
    s
}

fn is_hex7(s: &str) -> bool {
    s.len() >= 7 && s.as_bytes()[..7].iter().all(u8::is_ascii_hexdigit)
}

/// True for tokens GitLab creates with a known prefix (`glrt-`, `glrtr-`,
/// `t1_`…`t3_`, `glcbt-`): these follow GitLab Runner's rule.
pub fn is_prefixed_token(token: &str) -> bool {
    ["glrt-", "glrtr-", "glcbt-", "t1_", "t2_", "t3_"]
        .iter()
        .any(|p| token.starts_with(p))
}

/// GitLab Runner's `ShortenToken`: known prefixes stripped, 9 characters.
pub fn shorten_token(token: &str) -> String {
    // 1. `^glrt-(t[123]_)?|^t[123]_|^glrtr-`
    let s = if let Some(rest) = token.strip_prefix("glrt-") {
        strip_partition(rest)
    } else if let Some(rest) = token.strip_prefix("glrtr-") {
        rest
    } else {
        strip_partition(token)
    };
    // 2. `^glcbt-`
    let s = s.strip_prefix("glcbt-").unwrap_or(s);
    // 3. `^GR[0-9A-Fa-f]{7}`
    let s = match s.strip_prefix("GR") {
        Some(rest) if is_hex7(rest) => &rest[7..],
        _ => s,
    };
    s.chars().take(SHORT_TOKEN_LEN).collect()
}

/// The Python runner's identity: the token's first 8 characters (counted
/// in characters, never panics).
pub fn legacy_unique_name(token: &str) -> String {
    token.chars().take(LEGACY_LEN).collect()
}

/// The identity derived from a token (no `unique_name` key).
pub fn unique_name(token: &str) -> String {
    if is_prefixed_token(token) {
        shorten_token(token)
    } else {
        legacy_unique_name(token)
    }
}

/// Whether `name` may be given as `unique_name`: 1 to
/// [`MAX_UNIQUE_NAME_LEN`] ASCII letters, digits, `_` or `-` (it goes into
/// application and container names).
pub fn valid_unique_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_UNIQUE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_token_shapes() {
        let cases = [
            // Legacy tokens: first 8 characters (Python runner's rule).
            ("D3adNQYu8OCjkYDbwDaG", "D3adNQYu"),
            ("short", "short"),
            ("", ""),
            ("éééééééééé", "éééééééé"),
            ("GR1348941abcdefghijk", "GR134894"),
            // glrt- tokens: prefix stripped, 9 characters.
            ("glrt-abcdefghijklmnop", "abcdefghi"),
            ("glrt-t1_abcdefghijklm", "abcdefghi"),
            ("glrt-t3_XyZ-_0123456", "XyZ-_0123"),
            ("glrt-t4_abcdefghijklm", "t4_abcdef"),
            ("glrt-abc", "abc"),
            // registration-token runners.
            ("glrtr-abcdefghijklmnop", "abcdefghi"),
            // Bare partition prefix.
            ("t2_abcdefghijklmnop", "abcdefghi"),
            // Job tokens after a partition prefix.
            ("t1_glcbt-abcdefghijkl", "abcdefghi"),
            // A GR prefix left after stripping glrt- is stripped too.
            ("glrt-GR1348941abcdefghij", "abcdefghi"),
            ("glrt-GR13zz941abcdefghij", "GR13zz941"),
        ];
        for (token, want) in cases {
            assert_eq!(unique_name(token), want, "{token}");
        }
    }

    #[test]
    fn legacy_identity_is_the_first_eight_characters() {
        assert_eq!(legacy_unique_name("glrt-abcdefghijk"), "glrt-abc");
        assert_eq!(legacy_unique_name("D3adNQYu8OCj"), "D3adNQYu");
        assert_eq!(legacy_unique_name("🦀🦀🦀🦀🦀🦀🦀🦀🦀"), "🦀🦀🦀🦀🦀🦀🦀🦀");
    }

    #[test]
    fn explicit_names_are_checked() {
        for (name, ok) in [
            ("runner-a_1", true),
            ("", false),
            ("a b", false),
            ("é", false),
            ("a/b", false),
            (&"x".repeat(MAX_UNIQUE_NAME_LEN), true),
            (&"x".repeat(MAX_UNIQUE_NAME_LEN + 1), false),
        ] {
            assert_eq!(valid_unique_name(name), ok, "{name:?}");
        }
    }
}
