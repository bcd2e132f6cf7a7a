//! What would share a secret with more readers than intended: in
//! multi-tenant mode, cache credentials, `cc_extra_env` values and any
//! forwarded key whose value came from the secrets file (`secret:NAME`),
//! all readable by every tenant (refused unless
//! `cc_multi_tenant_forward_secrets`), and the runner token forwarded to a
//! multi-tenant runner's jobs (refused).

use std::collections::BTreeMap;

use toml::Value;

use super::super::fields::{Ctx, Section};
use super::super::inner::is_forwarded;
use super::super::keys;
use super::super::keys_executors as cc;

/// The opt-in key that lets a multi-tenant runner forward its cache
/// credentials, `cc_extra_env` and `secret:` values to every tenant's job
/// host.
const FORWARD_SECRETS_KEY: &str = cc::FORWARD_SECRETS.name;

/// `cc_extra_env` keys that are Clever Cloud platform switches, not secrets.
const PLATFORM_ENV: &[&str] = &["CC_ENABLE_HEPTAPOD_RUNNER", "CC_MOUNT_DOCKER_SOCKET"];

/// Static credential keys of `[runners.cache.<s3|gcs|azure>]`.
const CACHE_CREDENTIALS: &[(&str, &[&str])] = &[
    ("s3", &["AccessKey", "SecretKey", "SessionToken"]),
    ("gcs", &["AccessID", "PrivateKey"]),
    ("azure", &["AccountName", "AccountKey"]),
];

/// In multi-tenant mode every tenant can read its job host's environment
/// and its deployment repository (the inner runner.toml): cache
/// credentials, `cc_extra_env` values and every forwarded value taken from
/// the secrets file would be shared with all tenants. Refused unless
/// [`FORWARD_SECRETS_KEY`] is set.
pub(super) fn refuse_forwarded_secrets(
    sec: &Section<'_>,
    ctx: &mut Ctx<'_>,
    extra_env: &BTreeMap<String, String>,
) {
    let why = format!(
        "in multi-tenant mode this would be readable by every tenant's jobs; remove it, or \
         set `{FORWARD_SECRETS_KEY} = true` to share it with all tenants (see README, \
         \"Security model\")"
    );
    for key in extra_env.keys() {
        if !PLATFORM_ENV.contains(&key.as_str()) {
            let path = format!("{}.{key}", sec.key_path("cc_extra_env"));
            ctx.problem(&path, why.clone());
        }
    }
    let mut refused: Vec<String> = Vec::new();
    if let Some(Value::Table(cache)) = sec.get("cache") {
        refused.extend(cache_credentials(sec, cache));
    }
    for path in forwarded_secret_paths(sec, ctx) {
        if !refused.contains(&path) {
            refused.push(path);
        }
    }
    for path in refused {
        ctx.problem(&path, why.clone());
    }
}

/// Paths of the static credentials set in the `cache` table of `sec`.
fn cache_credentials(sec: &Section<'_>, cache: &toml::Table) -> Vec<String> {
    let mut found = Vec::new();
    for (backend, keys) in CACHE_CREDENTIALS {
        let Some(Value::Table(t)) = cache.get(*backend) else {
            continue;
        };
        for key in *keys {
            let set = match t.get(*key) {
                Some(Value::String(v)) => !v.is_empty(),
                Some(_) => true,
                None => false,
            };
            if set {
                found.push(format!("{}.{backend}.{key}", sec.key_path("cache")));
            }
        }
    }
    found
}

/// Sorted paths under `sec` whose value came from the secrets file and
/// that reach the inner runner.toml: a forwarded top-level key of the
/// section (see [`is_forwarded`]), except `token`, which is replaced by a
/// placeholder, and `cc_extra_env`, refused as a whole above.
fn forwarded_secret_paths(sec: &Section<'_>, ctx: &Ctx<'_>) -> Vec<String> {
    let prefix = format!("{}.", sec.path);
    let mut paths: Vec<String> = ctx
        .secret_paths
        .iter()
        .filter(|path| {
            let Some(rest) = path.strip_prefix(&prefix) else {
                return false;
            };
            let key = rest.split(['.', '[']).next().unwrap_or(rest);
            key != TOKEN_KEY && is_forwarded(key)
        })
        .cloned()
        .collect();
    paths.sort();
    paths
}

/// The runner token's key: never forwarded as written (a placeholder takes
/// its place; forwarding it is refused in multi-tenant mode on its own).
const TOKEN_KEY: &str = "token";

/// `paas_forward_runner_token = true` is refused in multi-tenant mode:
/// every tenant's jobs could read the runner token.
pub(super) fn refuse_forwarded_token(sec: &Section<'_>, ctx: &mut Ctx<'_>) {
    let forward_token = sec.flag(ctx, &keys::FORWARD_TOKEN);
    if forward_token && matches!(sec.get(cc::MULTI_TENANT.name), Some(Value::Boolean(true))) {
        ctx.problem(
            &sec.key_path(keys::FORWARD_TOKEN.name),
            "found `true`, refused when `cc_multi_tenant = true`: every tenant's jobs could \
             read the runner token and take other tenants' jobs (expected false or absent)",
        );
    }
}
