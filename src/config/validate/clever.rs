//! The `cc_*` keys of a clever-docker section, read through their
//! declarations ([`super::super::keys_executors`]) into the executor's own
//! settings ([`CleverSettings`]).

use std::collections::BTreeMap;

use toml::Value;

use super::super::fields::{as_nonempty_string, as_string, Ctx, Section};
use super::super::inner::CLEVER_KEY_PREFIX;
use super::super::keys_executors::{self as cc, CLEVER, SERVICE};
use super::global::warn_unknown;
use super::{check_url, forwarded};
use crate::executors::clever::settings::{default_flavor_name_prefix, CleverSettings, Tenancy};

/// The clever-docker settings of a runner section; the runner-level fields
/// (`unique_name`, `main_image`, `inner_runner_toml`) are filled by
/// [`super::runner`].
pub(super) fn settings(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<CleverSettings> {
    let before = ctx.problems.len();
    warn_unknown_keys(sec, ctx);
    let text = |ctx: &mut Ctx<'_>, key| sec.text(ctx, key).unwrap_or_default();
    let api_url = text(ctx, &cc::API_URL);
    check_url(ctx, &sec.key_path(cc::API_URL.name), &api_url);
    let zone = text(ctx, &cc::ZONE);
    let default_flavor = text(ctx, &cc::DEFAULT_FLAVOR_KEY);
    let max_flavor = sec.read_key(ctx, &cc::MAX_FLAVOR, as_nonempty_string);
    let multi = sec.flag(ctx, &cc::MULTI_TENANT);
    let tenancy = tenancy(sec, ctx, multi);
    let extra_env = extra_env(sec, ctx);
    if multi && !sec.flag(ctx, &cc::FORWARD_SECRETS) {
        forwarded::refuse_forwarded_secrets(sec, ctx, &extra_env);
    }
    let deployment_repo_timeout = sec.seconds(ctx, &cc::REPO_TIMEOUT);
    let deployment_repo_wait_step = sec.seconds(ctx, &cc::REPO_WAIT_STEP);
    let auth_user = text(ctx, &cc::AUTH_USER);
    let flavor_context = text(ctx, &cc::FLAVOR_CONTEXT);
    let flavor_name_prefix = sec
        .read_key(ctx, &cc::FLAVOR_NAME_PREFIX, as_string)
        .unwrap_or_else(|| default_flavor_name_prefix(&flavor_context));
    let instance_variant_uuid = text(ctx, &cc::INSTANCE_VARIANT);
    if ctx.problems.len() > before {
        return None;
    }
    let mut settings = CleverSettings::new(String::new(), tenancy?);
    settings.api_url = api_url;
    settings.zone = zone;
    settings.default_flavor = default_flavor;
    settings.max_flavor = max_flavor;
    settings.extra_env = extra_env;
    if let Some(d) = deployment_repo_timeout {
        settings.deployment_repo_timeout = d;
    }
    if let Some(d) = deployment_repo_wait_step {
        settings.deployment_repo_wait_step = d;
    }
    settings.auth_user = auth_user;
    settings.flavor_context = flavor_context;
    settings.flavor_name_prefix = flavor_name_prefix;
    settings.instance_variant_uuid = instance_variant_uuid;
    Some(settings)
}

/// Warns about `cc_*` keys that are not declared (they are not forwarded);
/// a clever-service-docker key in another section gets its own warning
/// (`service.rs`).
fn warn_unknown_keys(sec: &Section<'_>, ctx: &mut Ctx<'_>) {
    let known: Vec<&str> = CLEVER.iter().chain(SERVICE).map(|k| k.name).collect();
    for key in sec.table.keys() {
        if key.starts_with(CLEVER_KEY_PREFIX) && !known.contains(&key.as_str()) {
            warn_unknown(
                ctx,
                &sec.key_path(key),
                key,
                &known,
                "Clever Cloud key (not forwarded)",
            );
        }
    }
}

/// One organisation (`cc_orga_id`, `cc_token`), or the job's group's
/// (`cc_multi_tenant = true`).
fn tenancy(sec: &Section<'_>, ctx: &mut Ctx<'_>, multi: bool) -> Option<Tenancy> {
    if !multi {
        let single = "required in single-organisation mode (`cc_multi_tenant` unset or false)";
        let orga_id = sec.required_string(
            ctx,
            cc::ORGA_ID.name,
            &format!("{single}: the Clever Cloud organisation id (orga_…)"),
        );
        let token = sec.required_secret(
            ctx,
            cc::ORGA_TOKEN.name,
            &format!(
                "{single}: a Clever Cloud API token able to create, deploy and delete \
                 applications"
            ),
        );
        return Some(Tenancy::Single {
            orga_id: orga_id?,
            token: token?,
        });
    }
    for unused in [&cc::ORGA_ID, &cc::ORGA_TOKEN] {
        if sec.get(unused.name).is_some() {
            ctx.warn(
                &sec.key_path(unused.name),
                "is ignored when `cc_multi_tenant = true`",
            );
        }
    }
    let attributes_token = sec.required_secret(
        ctx,
        cc::ATTRIBUTES_TOKEN.name,
        "required when `cc_multi_tenant = true`: a GitLab token allowed to read \
         the custom attributes of top-level groups",
    );
    let orga_id_attribute = sec.text(ctx, &cc::ORGA_ID_ATTRIBUTE).unwrap_or_default();
    let orga_token_attribute = sec.text(ctx, &cc::ORGA_TOKEN_ATTRIBUTE).unwrap_or_default();
    Some(Tenancy::Multi {
        attributes_token: attributes_token?,
        orga_id_attribute,
        orga_token_attribute,
    })
}

/// `[runners.cc_extra_env]`: values as strings, by name.
fn extra_env(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> BTreeMap<String, String> {
    const KEY: &str = cc::EXTRA_ENV.name;
    let mut env = BTreeMap::new();
    match sec.get(KEY) {
        None => {}
        Some(Value::Table(t)) => {
            for (k, v) in t {
                let text = match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Integer(i) => Some(i.to_string()),
                    Value::Float(x) => Some(x.to_string()),
                    Value::Boolean(b) => Some(b.to_string()),
                    _ => None,
                };
                match text {
                    Some(text) => {
                        env.insert(k.clone(), text);
                    }
                    None => {
                        let path = format!("{}.{k}", sec.key_path(KEY));
                        let found = ctx.found(&path, v);
                        ctx.problem(
                            &path,
                            format!("expected a string (or number, boolean), found {found}"),
                        )
                    }
                }
            }
        }
        Some(v) => {
            let path = sec.key_path(KEY);
            let found = ctx.found(&path, v);
            ctx.problem(
                &path,
                format!(
                    "expected a table `[runners.cc_extra_env]` of environment variables, found \
                     {found}"
                ),
            );
            return env;
        }
    }
    if !env.contains_key("CC_ENABLE_HEPTAPOD_RUNNER") {
        ctx.warn(
            &sec.key_path(KEY),
            "has no `CC_ENABLE_HEPTAPOD_RUNNER = \"true\"`, which Clever Cloud currently needs \
             to start the runner",
        );
    }
    env
}
