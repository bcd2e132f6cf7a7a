//! The inner `runner.toml`: what the launched Heptapod Runner receives.
//!
//! One `[[runners]]` table: the PAAS runner's section as written (after
//! secret substitution) minus the keys meant for this program only — so a
//! job escaping onto the PAAS resource cannot find the means to provision
//! more — and with `executor = "docker"`. The keys meant for this program:
//! every `cc_*` and `paas_*` key (no GitLab Runner key starts so; the
//! prefixes keep out the keys of later versions too, such as the Python
//! runner 1.1's `paas_keep_resources_for_reuse_seconds`) and the
//! [`INNER_EXCLUDED_KEYS`]. Every other key is kept verbatim, TOML types
//! included (datetimes, ints, arrays, empty tables), except `token`.
//!
//! The runner token never leaves this host: the inner runner authenticates
//! every call of an already-acquired job (trace, update, artifacts) with
//! the job token, so `token` holds a placeholder instead
//! ([`token_placeholder`]). The placeholder keeps the characters GitLab
//! Runner derives its short description of the runner from
//! ([`short_description`]), so build directories and cache paths (which
//! contain that description) do not change. `paas_forward_runner_token =
//! true` in a runner section ([`FORWARD_TOKEN_KEY`], refused in multi-tenant
//! mode) puts the real token back, for an inner runner that would need it:
//! every job of that runner can then read it.

use toml::Value;

use super::settings::RunnerConfig;

/// Top-level runner keys never forwarded (besides every `cc_*` and
/// `paas_*` key).
pub const INNER_EXCLUDED_KEYS: &[&str] = &[
    "job_trace_watch",
    "heptapod_runner_main_image",
    "heptapod_paas_runner_helper_image",
    "host",
    "quota_max_fraction",
    "local_docker_network_mode",
    "unique_name",
    super::keys::RUNNER_SECRETS_FILE.name,
];

/// Prefix of this program's own runner keys (`paas_job_trace_watch`,
/// `paas_long_polling`, …), none of which is forwarded.
pub const PAAS_KEY_PREFIX: &str = "paas_";

/// Runner-section key: `true` lets this runner long-poll its coordinator
/// (see `actors/src/long_poll.rs`). Never forwarded.
pub const LONG_POLLING_KEY: &str = "paas_long_polling";

/// Runner-section key: `true` writes the real runner token in the inner
/// `runner.toml` (unsafe: every job can read it). Never forwarded.
pub const FORWARD_TOKEN_KEY: &str = super::keys::FORWARD_TOKEN.name;

/// What follows the kept characters of the token in the placeholder. Its
/// first character is not a hexadecimal digit, so that a legacy `GR` token
/// keeps its 8-character description (see [`short_description`]).
pub const TOKEN_PLACEHOLDER_SUFFIX: &str = "_runner-token-not-forwarded";

/// GitLab Runner's short description of a runner token
/// (`helpers.ShortenToken`): the whole token under 8 bytes; for a `glrt-`
/// token the 9 bytes after the prefix; for a legacy `GR` token whose next 7
/// bytes are hexadecimal (and of at least 17 bytes), its first 17 bytes;
/// otherwise its first 8 bytes. Where GitLab Runner would fail (a `glrt-`
/// token under 14 bytes) or a byte offset splits a character, the
/// description stops at the end of the token or of the last whole character.
pub fn short_description(token: &str) -> &str {
    short_range(token)
        .and_then(|(start, end)| token.get(start..end))
        .unwrap_or(token)
}

/// `(start, end)` byte offsets of [`short_description`] in `token`.
fn short_range(token: &str) -> Option<(usize, usize)> {
    let bytes = token.as_bytes();
    let end = |n: usize| floor_char_boundary(token, n.min(token.len()));
    if bytes.len() < 8 {
        return None;
    }
    if token.starts_with("glrt-") {
        return Some((5, end(14)));
    }
    let hex_rotation = bytes.len() >= 17
        && token.starts_with("GR")
        && bytes
            .get(2..9)
            .is_some_and(|b| b.iter().all(u8::is_ascii_hexdigit));
    Some((0, end(if hex_rotation { 17 } else { 8 })))
}

/// The largest character boundary of `s` at or before `n`.
fn floor_char_boundary(s: &str, n: usize) -> usize {
    (0..=n).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

/// Bytes of the token that must stay out of the placeholder: a token too
/// short to keep its description and hide this much loses its description.
pub const MIN_HIDDEN_TOKEN_BYTES: usize = 8;

/// The value written as `token` in the inner `runner.toml`: the token up to
/// the end of its short description, then [`TOKEN_PLACEHOLDER_SUFFIX`]. Its
/// short description is the token's whenever at least
/// [`MIN_HIDDEN_TOKEN_BYTES`] bytes of the token follow it (every token
/// GitLab issues); otherwise nothing of the token is kept.
pub fn token_placeholder(token: &str) -> String {
    // Newer GitLab Runners also strip a partition prefix (`t1_`…) before
    // taking their 9 characters: keep what either rule describes.
    let newer_end = super::identity::is_prefixed_token(token)
        .then(|| super::identity::short_token_range(token).1);
    let kept = short_range(token)
        .map(|(_, end)| end.max(newer_end.unwrap_or(0)))
        .filter(|end| token.len() >= end + MIN_HIDDEN_TOKEN_BYTES)
        .and_then(|end| token.get(..end))
        .unwrap_or_default();
    format!("{kept}{TOKEN_PLACEHOLDER_SUFFIX}")
}

/// True when the runner section `raw` opts in to forwarding its real token.
pub fn forwards_runner_token(raw: &toml::Table) -> bool {
    matches!(raw.get(FORWARD_TOKEN_KEY), Some(Value::Boolean(true)))
}

/// Prefix of the Clever Cloud keys, none of which is forwarded.
pub const CLEVER_KEY_PREFIX: &str = "cc_";

/// The executor the inner runner uses.
pub const INNER_EXECUTOR: &str = "docker";

/// True when the runner-section key `key` is kept in the inner config.
pub fn is_forwarded(key: &str) -> bool {
    !key.starts_with(CLEVER_KEY_PREFIX)
        && !key.starts_with(PAAS_KEY_PREFIX)
        && !INNER_EXCLUDED_KEYS.contains(&key)
}

/// The inner runner table: forwarded keys, `executor` forced to `docker`
/// (in place if it was written, as the reference does), `token` replaced
/// by its placeholder unless the section opts in to forwarding it.
pub fn inner_runner_table(raw: &toml::Table) -> toml::Table {
    let forward_token = forwards_runner_token(raw);
    let mut table: toml::Table = raw
        .iter()
        .filter(|(k, _)| is_forwarded(k))
        .map(|(k, v)| match (k.as_str(), v) {
            ("token", Value::String(token)) if !forward_token => {
                (k.clone(), Value::String(token_placeholder(token)))
            }
            _ => (k.clone(), v.clone()),
        })
        .collect();
    table.insert(
        "executor".to_string(),
        Value::String(INNER_EXECUTOR.to_string()),
    );
    table
}

/// The inner `runner.toml` text of runner section `raw`. It holds the
/// runner token and any forwarded credentials: write it only where the job
/// needs it.
pub fn inner_runner_toml(raw: &toml::Table) -> String {
    let mut doc = toml::Table::new();
    doc.insert(
        "runners".to_string(),
        Value::Array(vec![Value::Table(inner_runner_table(raw))]),
    );
    // A `toml::Table` always serialises (keys are strings, values TOML).
    toml::to_string(&doc).unwrap_or_default()
}

impl RunnerConfig {
    /// The inner `runner.toml` text. It holds forwarded credentials (cache
    /// keys; the runner token only with [`FORWARD_TOKEN_KEY`]): write it
    /// only where the job needs it.
    pub fn inner_runner_toml(&self) -> String {
        inner_runner_toml(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_description_follows_gitlab_runner() {
        let table = [
            ("glrt-t1_AbCdEfGhIjKlMnOpQrSt", "t1_AbCdEf"),
            ("glrt-AbCdEfGhIjKlMnOpQrSt", "AbCdEfGhI"),
            ("GR1348941aBcDeFgHiJkLmNoPqRsT", "GR1348941aBcDeFgH"),
            ("GR13489zzaBcDeFgHiJkLmNoPqRsT", "GR13489z"),
            ("GR1348941abc", "GR134894"),
            ("D3adNQYu8OCjkYDbwDaG", "D3adNQYu"),
            ("glrt-short", "short"),
            ("short", "short"),
            ("", ""),
            ("ééééééééé", "éééé"),
        ];
        for (token, short) in table {
            assert_eq!(short_description(token), short, "{token}");
        }
    }

    #[test]
    fn placeholders_keep_the_description_and_hide_the_token() {
        let keeps = [
            "glrt-t1_AbCdEfGhIjKlMnOpQrSt",
            "glrt-AbCdEfGhIjKlMnOpQrSt",
            "GR1348941aBcDeFgHiJkLmNoPqRsT",
            "GR13489zzaBcDeFgHiJkLmNoPqRsT",
            "GR1348941abcdefg",
            "D3adNQYu8OCjkYDbwDaG",
            "ééééééééééééé",
        ];
        for token in keeps {
            let placeholder = token_placeholder(token);
            assert_eq!(
                short_description(&placeholder),
                short_description(token),
                "{token}"
            );
            // The newer rule (partition prefix stripped) describes both alike too.
            if crate::config::identity::is_prefixed_token(token) {
                assert_eq!(
                    crate::config::identity::shorten_token(&placeholder),
                    crate::config::identity::shorten_token(token),
                    "{token}"
                );
            }
            assert!(!placeholder.contains(token), "{token}");
            assert!(
                placeholder.ends_with(TOKEN_PLACEHOLDER_SUFFIX),
                "{placeholder}"
            );
        }
        // Too short to keep the description and hide 8 bytes: nothing kept.
        for token in [
            "glrt-t1_AbCdEfGh",
            "glrt-t1_AbCdEfGhIjKlMnOp",
            "D3adNQYu8OC",
            "short",
            "",
        ] {
            assert_eq!(
                token_placeholder(token),
                TOKEN_PLACEHOLDER_SUFFIX,
                "{token}"
            );
        }
    }

    #[test]
    fn the_token_is_replaced_unless_the_section_opts_in() {
        let token = "glrt-t1_AbCdEfGhIjKlMnOpQrSt";
        let raw: toml::Table = "token = \"glrt-t1_AbCdEfGhIjKlMnOpQrSt\"\n\
                                executor = \"clever-docker\"\n\
                                url = \"https://gitlab.example\"\n"
            .parse()
            .expect("TOML");
        let inner = inner_runner_table(&raw);
        assert_eq!(
            inner["token"].as_str(),
            Some(token_placeholder(token).as_str())
        );
        assert_eq!(inner["url"].as_str(), Some("https://gitlab.example"));

        let mut opted = raw.clone();
        opted.insert(FORWARD_TOKEN_KEY.into(), Value::Boolean(true));
        let inner = inner_runner_table(&opted);
        assert_eq!(inner["token"].as_str(), Some(token));
        assert!(!inner.contains_key(FORWARD_TOKEN_KEY));

        opted.insert(FORWARD_TOKEN_KEY.into(), Value::Boolean(false));
        let inner = inner_runner_table(&opted);
        assert_eq!(
            inner["token"].as_str(),
            Some(token_placeholder(token).as_str())
        );
        assert!(!inner.contains_key(FORWARD_TOKEN_KEY));
    }
}
