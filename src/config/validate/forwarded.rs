//! What would share a secret with more readers than intended: in
//! multi-tenant mode, cache credentials and `cc_extra_env` values readable
//! by every tenant (refused unless `cc_multi_tenant_forward_secrets`), and
//! the runner token forwarded to a multi-tenant runner's jobs (refused).

use std::collections::BTreeMap;

use toml::Value;

use super::super::fields::{Ctx, Section};
use super::super::keys;
use super::super::keys_executors as cc;

/// The opt-in key that lets a multi-tenant runner forward its cache
/// credentials and `cc_extra_env` to every tenant's job host.
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
/// and its deployment repository (the inner runner.toml): cache credentials
/// and `cc_extra_env` values would be shared with all tenants. Refused
/// unless [`FORWARD_SECRETS_KEY`] is set.
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
    let Some(Value::Table(cache)) = sec.get("cache") else {
        return;
    };
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
                let path = format!("{}.{backend}.{key}", sec.key_path("cache"));
                ctx.problem(&path, why.clone());
            }
        }
    }
}

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
