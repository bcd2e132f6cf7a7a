//! The top level of the file: the keys this program reads (declared in
//! `paas_actors::settings` and [`super::keys`]), GitLab Runner's own keys
//! (ignored, with a warning), and unknown
//! keys (a warning suggesting the closest known one).

use paas_actors::settings::SupervisorSettings;

use super::super::fields::{Ctx, Section};
use super::super::keys;
use super::super::suggest::closest;

/// Upstream gitlab-runner global keys: legitimate in a shared file, unused
/// here (each gets an "ignored" warning).
const UPSTREAM_GLOBAL_KEYS: &[&str] = &[
    "connection_max_age",
    "sentry_dsn",
    "user",
    "session_server",
    "labels",
    "machine",
    "experimental",
];

/// The top-level keys this program reads: each declared key's first part,
/// and `runners`.
fn known_keys() -> Vec<&'static str> {
    let declared = keys::GLOBAL
        .iter()
        .copied()
        .chain(SupervisorSettings::KEYS.iter().map(|s| &s.key))
        .map(|k| k.table().unwrap_or(k.name));
    let mut known: Vec<&'static str> = declared.chain(["runners"]).collect();
    known.dedup();
    known
}

/// The declared aliases of top-level keys.
fn aliases() -> impl Iterator<Item = &'static str> {
    SupervisorSettings::KEYS
        .iter()
        .map(|s| &s.key)
        .chain(keys::GLOBAL.iter().copied())
        .filter(|k| k.table().is_none())
        .flat_map(|k| k.aliases.iter().copied())
}

/// Warns about every top-level key this program does not read.
pub(super) fn check_keys(top: &Section<'_>, ctx: &mut Ctx<'_>) {
    let known = known_keys();
    for key in top.table.keys() {
        let k = key.as_str();
        if UPSTREAM_GLOBAL_KEYS.contains(&k) {
            // GitLab Runner keys: legitimate in a shared file, but an
            // operator setting them expects an effect.
            ctx.warn(k, "ignored: not used by heptapod-paas-runner");
            continue;
        }
        if known.contains(&k) || aliases().any(|a| a == k) {
            continue;
        }
        if k == "job_trace_watch" || k == "paas_job_trace_watch" {
            ctx.warn(
                k,
                "is ignored at the top level: trace watching is configured per runner, \
                 as a `[runners.paas_job_trace_watch]` table inside a `[[runners]]` section",
            );
        } else {
            warn_unknown(ctx, k, k, &known, "global key");
        }
    }
}

/// Warns that `key` (at `path`) is unknown, suggesting the closest of `known`.
pub(super) fn warn_unknown(ctx: &mut Ctx<'_>, path: &str, key: &str, known: &[&str], what: &str) {
    match closest(key, known) {
        Some(s) => ctx.warn(
            path,
            format!("unknown {what}, ignored; did you mean `{s}`?"),
        ),
        None => ctx.warn(path, format!("unknown {what}, ignored")),
    }
}

/// Warns about every key of `sec` neither in `known` nor in `aliases`.
pub(super) fn warn_unknown_keys(
    sec: &Section<'_>,
    ctx: &mut Ctx<'_>,
    known: &[&str],
    aliases: &[&str],
    what: &str,
) {
    for key in sec.table.keys() {
        if !known.contains(&key.as_str()) && !aliases.contains(&key.as_str()) {
            warn_unknown(ctx, &sec.key_path(key), key, known, what);
        }
    }
}
