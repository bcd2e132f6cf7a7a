//! Raw TOML tree → typed [`Config`], reporting every problem at once.
//!
//! Where it differs from the Python reference (see the module docs of
//! [`super`]): aliases are accepted with a warning, both
//! trace-watch spellings are read, duplicate unique names are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Value;

use super::error::{ConfigError, Location};
use super::fields::{
    as_nonempty_string, as_positive, as_positive_seconds, as_seconds, Ctx, Section,
};
use super::identity::{legacy_unique_name, unique_name, valid_unique_name, MAX_UNIQUE_NAME_LEN};
use super::inner::{CLEVER_KEY_PREFIX, FORWARD_TOKEN_KEY, LONG_POLLING_KEY};
use super::raw::RawDocument;
use super::secrets::{self, SECRETS_FILE_KEY};
use super::settings::*;
use super::suggest::closest;
use super::Loaded;
use crate::executors::clever::settings::{
    default_flavor_name_prefix, CleverSettings, Tenancy, DEFAULT_API_URL, DEFAULT_AUTH_USER,
    DEFAULT_DEPLOYMENT_REPO_TIMEOUT, DEFAULT_DEPLOYMENT_REPO_WAIT_STEP, DEFAULT_FLAVOR,
    DEFAULT_FLAVOR_CONTEXT, DEFAULT_INSTANCE_VARIANT_UUID, DEFAULT_ORGA_ID_ATTRIBUTE,
    DEFAULT_ORGA_TOKEN_ATTRIBUTE, DEFAULT_ZONE,
};
use crate::executors::local_docker::{
    socket_path, LocalDockerSettings, LocalDockerTimeouts, DEFAULT_DOCKER_HOST,
};

/// What validation reads from the process environment (injected for tests).
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    /// `DOCKER_HOST`, if set.
    pub docker_host: Option<String>,
}

impl Env {
    /// The real process environment.
    pub fn from_process() -> Self {
        Env {
            docker_host: std::env::var("DOCKER_HOST").ok(),
        }
    }
}

/// Global keys this program reads.
/// Default `reconcile_interval`: a leaked application is found within
/// five minutes, for one listing call per organisation.
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

const GLOBAL_KEYS: &[&str] = &[
    "concurrent",
    "check_interval",
    "job_progress_poll_interval",
    "state_file",
    "paas_max_concurrent_provisioning",
    "paas_finished_jobs_keep_resources",
    "paas_decommission_launch_failures",
    "paas_repoll_same_runner_immediately",
    "quota_computation",
    "listen_address",
    "shutdown_timeout",
    "reconcile_interval",
    "log_level",
    "log_format",
    SECRETS_FILE_KEY,
    "runners",
];

/// Deprecated or documented spellings: (alias, canonical key).
const GLOBAL_ALIASES: &[(&str, &str)] = &[
    ("job_progress_interval", "job_progress_poll_interval"),
    (
        "pass_decommision_launched_failures",
        "paas_decommission_launch_failures",
    ),
];

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

/// Keys of later Python versions that this program does not implement.
const UNSUPPORTED_GLOBAL_KEYS: &[&str] =
    &["paas_min_seconds_between_launches", "paas_log_statistics"];

const QUOTA_KEYS: &[&str] = &[
    "reference_runner",
    "reference_flavor",
    "reference_jobs_count",
    "allowed_fraction_per_runner",
];

const TRACE_WATCH_KEYS: &[&str] = &["token", "timeout_seconds", "poll_step"];

/// The `cc_*` keys a clever-docker runner reads.
const CLEVER_KEYS: &[&str] = &[
    "cc_api_url",
    "cc_zone",
    "cc_default_flavor",
    "cc_max_flavor",
    "cc_orga_id",
    "cc_token",
    "cc_multi_tenant",
    "cc_multi_tenant_forward_secrets",
    "cc_gitlab_namespace_attributes_token",
    "cc_orga_id_attribute",
    "cc_orga_token_attribute",
    "cc_extra_env",
    "cc_deployment_repo_timeout",
    "cc_deployment_repo_wait_step",
    "cc_auth_user",
    "cc_flavor_context",
    "cc_flavor_name_prefix",
    "cc_instance_variant_uuid",
];

/// Validates a parsed document read from `path`.
pub(crate) fn validate(doc: RawDocument, path: &Path, env: &Env) -> Result<Loaded, ConfigError> {
    let RawDocument { mut table, lines } = doc;
    let mut ctx = Ctx::new(&lines, path.display().to_string());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    secrets::substitute(&mut table, &dir, &mut ctx);
    let config = build(&table, path, env, &mut ctx);
    match config {
        Some(config) if ctx.problems.is_empty() => Ok(Loaded {
            config,
            warnings: ctx.warnings,
        }),
        _ => {
            let mut problems = ctx.problems;
            if problems.is_empty() {
                // Unreachable by construction (every `None` above records a
                // problem), but never return an error that explains nothing.
                problems.push(super::error::Problem {
                    key: String::new(),
                    location: Location::Unknown,
                    message: "invalid configuration".to_string(),
                });
            }
            // File order; problems without a line last (sort is stable).
            problems.sort_by_key(|p| match p.location {
                Location::Line(n) | Location::Section(n) => n,
                Location::Unknown => usize::MAX,
            });
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
                warnings: ctx.warnings,
            })
        }
    }
}

fn build(table: &toml::Table, path: &Path, env: &Env, ctx: &mut Ctx<'_>) -> Option<Config> {
    let top = Section::new(table, "");
    check_global_keys(&top, ctx);

    let concurrent = top.positive_or(ctx, "concurrent", 50);
    let check_interval = top
        .read(
            ctx,
            "check_interval",
            "a number of seconds (0 means 3)",
            as_seconds,
        )
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(3));
    let progress_key = aliased(
        &top,
        ctx,
        "job_progress_poll_interval",
        "job_progress_interval",
    );
    let job_progress_poll_interval = top.seconds_or(ctx, progress_key, Duration::from_secs(30));
    let state_file = top
        .read(
            ctx,
            "state_file",
            "a non-empty path string",
            as_nonempty_string,
        )
        .map(PathBuf::from);
    let paas_max_concurrent_provisioning =
        top.positive_or(ctx, "paas_max_concurrent_provisioning", 10);
    let paas_finished_jobs_keep_resources =
        top.bool_or(ctx, "paas_finished_jobs_keep_resources", false);
    let decommission_key = aliased(
        &top,
        ctx,
        "paas_decommission_launch_failures",
        "pass_decommision_launched_failures",
    );
    let paas_decommission_launch_failures = top.bool_or(ctx, decommission_key, true);
    let paas_repoll_same_runner_immediately =
        top.bool_or(ctx, "paas_repoll_same_runner_immediately", true);
    let listen_address = top.read(
        ctx,
        "listen_address",
        "a non-empty address string such as \"127.0.0.1:9252\"",
        as_nonempty_string,
    );

    let shutdown_timeout = top.read(
        ctx,
        "shutdown_timeout",
        "a positive number of seconds (graceful stop deadline)",
        as_positive_seconds,
    );

    let reconcile_interval = top
        .read(
            ctx,
            "reconcile_interval",
            "a number of seconds (0 disables the periodic reconciliation)",
            as_seconds,
        )
        .unwrap_or(DEFAULT_RECONCILE_INTERVAL);
    let reconcile_interval = (!reconcile_interval.is_zero()).then_some(reconcile_interval);

    let log_level = top.read(
        ctx,
        "log_level",
        "one of debug, info, warn, error, fatal, panic (GitLab Runner's levels)",
        |v| v.as_str().and_then(|s| crate::logging::parse_level(s).ok()),
    );
    let log_format = top.read(ctx, "log_format", "one of runner, text, json", |v| {
        v.as_str()
            .and_then(|s| crate::logging::parse_format(s).ok())
    });

    let mut runners = runners(&top, env, ctx);
    check_unique_names(&mut runners, ctx);
    let names: Vec<&str> = runner_names(table);
    let quota_computation = quota(&top, &names, ctx);

    Some(Config {
        concurrent,
        check_interval,
        job_progress_poll_interval,
        state_file,
        paas_max_concurrent_provisioning,
        paas_finished_jobs_keep_resources,
        paas_decommission_launch_failures,
        paas_repoll_same_runner_immediately,
        quota_computation: quota_computation?,
        listen_address,
        shutdown_timeout,
        reconcile_interval,
        log_level,
        log_format,
        runners: runners.into_iter().flatten().collect(),
        path: path.to_path_buf(),
        lines: ctx.lines.clone(),
    })
}

/// Chooses between a canonical key and its alias; both set is a problem,
/// the alias alone a warning. Returns the key to read.
fn aliased<'k>(
    sec: &Section<'_>,
    ctx: &mut Ctx<'_>,
    canonical: &'k str,
    alias: &'k str,
) -> &'k str {
    match (sec.get(canonical).is_some(), sec.get(alias).is_some()) {
        (true, true) => {
            ctx.problem(
                &sec.key_path(alias),
                format!(
                    "both `{canonical}` and its alias `{alias}` are set; keep only `{canonical}`"
                ),
            );
            canonical
        }
        (false, true) => {
            ctx.warn(
                &sec.key_path(alias),
                format!("`{alias}` is accepted as an alias of `{canonical}`; prefer `{canonical}`"),
            );
            alias
        }
        _ => canonical,
    }
}

fn check_global_keys(top: &Section<'_>, ctx: &mut Ctx<'_>) {
    for key in top.table.keys() {
        let k = key.as_str();
        if UPSTREAM_GLOBAL_KEYS.contains(&k) {
            // GitLab Runner keys: legitimate in a shared file, but an
            // operator setting them expects an effect.
            ctx.warn(k, "ignored: not used by heptapod-paas-runner");
            continue;
        }
        if GLOBAL_KEYS.contains(&k) || GLOBAL_ALIASES.iter().any(|(a, _)| *a == k) {
            continue;
        }
        if UNSUPPORTED_GLOBAL_KEYS.contains(&k) {
            ctx.warn(k, "is not supported by this version and is ignored");
        } else if k == "job_trace_watch" || k == "paas_job_trace_watch" {
            ctx.warn(
                k,
                "is ignored at the top level: trace watching is configured per runner, \
                 as a `[runners.paas_job_trace_watch]` table inside a `[[runners]]` section",
            );
        } else {
            warn_unknown(ctx, k, k, GLOBAL_KEYS, "global key");
        }
    }
}

fn warn_unknown(ctx: &mut Ctx<'_>, path: &str, key: &str, known: &[&str], what: &str) {
    match closest(key, known) {
        Some(s) => ctx.warn(
            path,
            format!("unknown {what}, ignored; did you mean `{s}`?"),
        ),
        None => ctx.warn(path, format!("unknown {what}, ignored")),
    }
}

fn warn_unknown_keys(
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

fn runner_names(table: &toml::Table) -> Vec<&str> {
    match table.get("runners") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| r.as_table()?.get("name")?.as_str())
            .collect(),
        _ => Vec::new(),
    }
}

fn quota(top: &Section<'_>, names: &[&str], ctx: &mut Ctx<'_>) -> Option<QuotaComputation> {
    const KEY: &str = "quota_computation";
    let value = match top.get(KEY) {
        Some(v) => v,
        None => {
            ctx.problem(
                KEY,
                "missing: the `[quota_computation]` section is required, with \
                 `reference_runner` (a runner name), `reference_flavor` and `reference_jobs_count`",
            );
            return None;
        }
    };
    let Some(table) = value.as_table() else {
        ctx.problem(
            KEY,
            format!(
                "expected a table `[quota_computation]`, found {}",
                ctx.found(KEY, value)
            ),
        );
        return None;
    };
    let sec = Section::new(table, KEY);
    warn_unknown_keys(&sec, ctx, QUOTA_KEYS, &[], "key in [quota_computation]");
    let reference_runner = sec.required_string(
        ctx,
        "reference_runner",
        "the `name` of one of the [[runners]] sections",
    );
    if let Some(r) = &reference_runner {
        if !names.is_empty() && !names.contains(&r.as_str()) {
            let known = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let path = sec.key_path("reference_runner");
            let found = ctx.shown(&path, r);
            ctx.problem(
                &path,
                format!(
                    "found {found}, but no [[runners]] section has that name (expected one \
                     of: {known})"
                ),
            );
        } else if names.iter().filter(|n| **n == r.as_str()).count() > 1 {
            ctx.warn(
                &sec.key_path("reference_runner"),
                format!(
                    "several [[runners]] sections are named {r:?}; the first one is the reference"
                ),
            );
        }
    }
    let reference_flavor = sec.required_string(
        ctx,
        "reference_flavor",
        "a flavor name of the reference runner, e.g. \"M\"",
    );
    let reference_jobs_count = sec.require(
        ctx,
        "reference_jobs_count",
        "a positive integer",
        "the number of reference-flavor jobs the quota allows",
        |v| as_positive(v).and_then(|n| u32::try_from(n).ok()),
    );
    let allowed_fraction_per_runner = sec.fraction_or(ctx, "allowed_fraction_per_runner", 1.0);
    Some(QuotaComputation {
        reference_runner: reference_runner?,
        reference_flavor: reference_flavor?,
        reference_jobs_count: reference_jobs_count?,
        allowed_fraction_per_runner,
    })
}

/// Validates every runner section; `None` entries had problems.
fn runners(top: &Section<'_>, env: &Env, ctx: &mut Ctx<'_>) -> Vec<Option<RunnerConfig>> {
    let items = match top.get("runners") {
        None => {
            ctx.problem(
                "runners",
                "missing: at least one `[[runners]]` section is required",
            );
            return Vec::new();
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(v) => {
            ctx.problem(
                "runners",
                format!(
                    "expected one or more `[[runners]]` sections, found {}",
                    ctx.found("runners", v)
                ),
            );
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("runners[{i}]");
            match item.as_table() {
                Some(t) => runner(&Section::new(t, path), env, ctx),
                None => {
                    ctx.problem(
                        &path,
                        format!(
                            "expected a `[[runners]]` table, found {}",
                            ctx.found(&path, item)
                        ),
                    );
                    None
                }
            }
        })
        .collect()
}

fn runner(sec: &Section<'_>, env: &Env, ctx: &mut Ctx<'_>) -> Option<RunnerConfig> {
    let name = sec.required_string(ctx, "name", "the runner's human-readable name");
    let url = sec.required_string(ctx, "url", "the GitLab / Heptapod instance URL");
    if let Some(u) = &url {
        if !is_http_url(u) {
            let path = sec.key_path("url");
            let found = ctx.shown(&path, u);
            ctx.problem(
                &path,
                format!("expected an http:// or https:// URL, found {found}"),
            );
        }
        warn_plain_http(ctx, &sec.key_path("url"), u);
    }
    let token = sec.required_secret(ctx, "token", "the runner authentication token");
    let explicit_name = sec.read(
        ctx,
        "unique_name",
        &format!(
            "1 to {MAX_UNIQUE_NAME_LEN} ASCII letters, digits, `_` or `-` (it goes into \
             PAAS resource names)"
        ),
        |v| {
            v.as_str()
                .filter(|s| valid_unique_name(s))
                .map(str::to_string)
        },
    );
    if explicit_name.is_none() && sec.get("unique_name").is_some() {
        return None;
    }
    let executor = executor(sec, ctx);
    let trace_watch = trace_watch(sec, ctx);
    let main_image = sec.read(
        ctx,
        "heptapod_runner_main_image",
        "a non-empty image name",
        as_nonempty_string,
    );
    let quota_max_fraction = sec.fraction_or(ctx, "quota_max_fraction", 1.0);
    let long_polling = sec.bool_or(
        ctx,
        LONG_POLLING_KEY,
        paas_actors::settings::RunnerSettings::default().long_polling,
    );
    let forward_token = sec.bool_or(ctx, FORWARD_TOKEN_KEY, false);
    if forward_token && matches!(sec.get("cc_multi_tenant"), Some(Value::Boolean(true))) {
        ctx.problem(
            &sec.key_path(FORWARD_TOKEN_KEY),
            "found `true`, refused when `cc_multi_tenant = true`: every tenant's jobs could \
             read the runner token and take other tenants' jobs (expected false or absent)",
        );
    }
    let (clever, local_docker) = match executor {
        Some(ExecutorKind::CleverDocker) => (clever(sec, ctx), None),
        Some(ExecutorKind::LocalDocker) => (None, local_docker(sec, env, ctx)),
        None => (None, None),
    };
    let executor = executor?;
    let complete = match executor {
        ExecutorKind::CleverDocker => clever.is_some(),
        ExecutorKind::LocalDocker => local_docker.is_some(),
    };
    if !complete {
        return None;
    }
    let token = token?;
    let legacy = legacy_unique_name(token.expose());
    let unique_name = explicit_name.unwrap_or_else(|| unique_name(token.expose()));
    let legacy_unique_name = (legacy != unique_name).then_some(legacy);
    let inner_runner_toml = super::inner::inner_runner_toml(sec.table);
    let clever = clever.map(|mut c| {
        c.unique_name = unique_name.clone();
        c.legacy_unique_name = legacy_unique_name.clone();
        c.main_image = main_image.clone();
        c.inner_runner_toml = inner_runner_toml.clone();
        c
    });
    let local_docker = local_docker.map(|mut l| {
        l.unique_name = unique_name.clone();
        l.legacy_unique_name = legacy_unique_name.clone();
        l.main_image = main_image.clone();
        l.inner_runner_toml = inner_runner_toml.clone();
        l
    });
    Some(RunnerConfig {
        name: name?,
        url: url?,
        unique_name,
        legacy_unique_name,
        token,
        executor,
        clever,
        local_docker,
        trace_watch: trace_watch?,
        main_image,
        quota_max_fraction,
        long_polling,
        raw: sec.table.clone(),
    })
}

fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .unwrap_or(false)
}

/// Warns when `text` is a plain `http://` URL to a host that is not
/// loopback: tokens would cross the network in clear.
fn warn_plain_http(ctx: &mut Ctx<'_>, path: &str, text: &str) {
    let Ok(url) = url::Url::parse(text) else {
        return;
    };
    if url.scheme() == "http" && !crate::git::is_loopback(&url) {
        let found = ctx.shown(path, text);
        ctx.warn(
            path,
            format!(
                "is {found}, a plain http:// URL to a host that is not loopback: tokens \
                 travel unencrypted (expected an https:// URL)"
            ),
        );
    }
}

fn executor(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<ExecutorKind> {
    const EXPECTED: &str = "\"clever-docker\" or \"local-docker\"";
    let text = sec.require(
        ctx,
        "executor",
        EXPECTED,
        &format!("the PAAS executor, {EXPECTED}"),
        |v| v.as_str().map(str::to_string),
    )?;
    match text.as_str() {
        "clever-docker" => Some(ExecutorKind::CleverDocker),
        "local-docker" => Some(ExecutorKind::LocalDocker),
        other => {
            let hint = if other == "docker" {
                " (found `docker`: the inner runner's `docker` executor is implied; this file \
                 needs a PAAS executor)"
                    .to_string()
            } else {
                format!(" (found {})", ctx.shown(&sec.key_path("executor"), other))
            };
            ctx.problem(
                &sec.key_path("executor"),
                format!("unknown executor: expected {EXPECTED}{hint}"),
            );
            None
        }
    }
}

/// `Some(None)`: no (usable) trace watch; `None`: problems were found.
fn trace_watch(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<Option<TraceWatchConfig>> {
    const CANONICAL: &str = "paas_job_trace_watch";
    const DOCUMENTED: &str = "job_trace_watch";
    let key = match (sec.get(CANONICAL).is_some(), sec.get(DOCUMENTED).is_some()) {
        (true, true) => {
            ctx.problem(
                &sec.key_path(DOCUMENTED),
                format!("both `[runners.{CANONICAL}]` and `[runners.{DOCUMENTED}]` are set; keep only one"),
            );
            return None;
        }
        (true, false) => CANONICAL,
        (false, true) => DOCUMENTED,
        (false, false) => return Some(None),
    };
    let path = sec.key_path(key);
    let value = sec.get(key)?;
    let Some(table) = value.as_table() else {
        ctx.problem(
            &path,
            format!(
                "expected a table with `token`, `timeout_seconds`, `poll_step`, found {}",
                ctx.found(&path, value)
            ),
        );
        return None;
    };
    let watch = Section::new(table, path.clone());
    warn_unknown_keys(
        &watch,
        ctx,
        TRACE_WATCH_KEYS,
        &["timout_seconds"],
        "trace-watch key",
    );
    let before = ctx.problems.len();
    let token = watch.read(ctx, "token", "a non-empty token string", as_nonempty_string);
    let timeout_key = aliased(&watch, ctx, "timeout_seconds", "timout_seconds");
    let timeout = watch.seconds_or(ctx, timeout_key, Duration::from_secs(300));
    let poll_step = watch.seconds_or(ctx, "poll_step", Duration::from_secs(10));
    if ctx.problems.len() > before {
        return None;
    }
    match token {
        Some(token) => Some(Some(TraceWatchConfig {
            token: crate::secret::Secret::new(token),
            timeout,
            poll_step,
        })),
        None => {
            ctx.warn(
                &path,
                "has no `token`: job traces will not be watched (launches are assumed to succeed)",
            );
            Some(None)
        }
    }
}

fn string_or(sec: &Section<'_>, ctx: &mut Ctx<'_>, key: &str, default: &str) -> String {
    sec.read(ctx, key, "a non-empty string", as_nonempty_string)
        .unwrap_or_else(|| default.to_string())
}

/// The clever-docker settings of a runner section; the runner-level fields
/// (`unique_name`, `main_image`, `inner_runner_toml`) are filled by
/// [`runner`].
fn clever(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<CleverSettings> {
    let before = ctx.problems.len();
    for key in sec.table.keys() {
        if key.starts_with(CLEVER_KEY_PREFIX) && !CLEVER_KEYS.contains(&key.as_str()) {
            warn_unknown(
                ctx,
                &sec.key_path(key),
                key,
                CLEVER_KEYS,
                "Clever Cloud key (not forwarded)",
            );
        }
    }
    let api_url = string_or(sec, ctx, "cc_api_url", DEFAULT_API_URL);
    if !is_http_url(&api_url) {
        let path = sec.key_path("cc_api_url");
        let found = ctx.shown(&path, &api_url);
        ctx.problem(
            &path,
            format!("expected an http:// or https:// URL, found {found}"),
        );
    }
    warn_plain_http(ctx, &sec.key_path("cc_api_url"), &api_url);
    let zone = string_or(sec, ctx, "cc_zone", DEFAULT_ZONE);
    let default_flavor = string_or(sec, ctx, "cc_default_flavor", DEFAULT_FLAVOR);
    let max_flavor = sec.read(
        ctx,
        "cc_max_flavor",
        "a non-empty flavor name",
        as_nonempty_string,
    );
    let multi = sec.bool_or(ctx, "cc_multi_tenant", false);
    let tenancy = if multi {
        for unused in ["cc_orga_id", "cc_token"] {
            if sec.get(unused).is_some() {
                ctx.warn(
                    &sec.key_path(unused),
                    "is ignored when `cc_multi_tenant = true`",
                );
            }
        }
        let attributes_token = sec.required_secret(
            ctx,
            "cc_gitlab_namespace_attributes_token",
            "required when `cc_multi_tenant = true`: a GitLab token allowed to read \
             the custom attributes of top-level groups",
        );
        let orga_id_attribute =
            string_or(sec, ctx, "cc_orga_id_attribute", DEFAULT_ORGA_ID_ATTRIBUTE);
        let orga_token_attribute = string_or(
            sec,
            ctx,
            "cc_orga_token_attribute",
            DEFAULT_ORGA_TOKEN_ATTRIBUTE,
        );
        attributes_token.map(|attributes_token| Tenancy::Multi {
            attributes_token,
            orga_id_attribute,
            orga_token_attribute,
        })
    } else {
        let orga_id = sec.required_string(
            ctx,
            "cc_orga_id",
            "required in single-organisation mode (`cc_multi_tenant` unset or false): \
             the Clever Cloud organisation id (orga_…)",
        );
        let token = sec.required_secret(
            ctx,
            "cc_token",
            "required in single-organisation mode (`cc_multi_tenant` unset or false): \
             a Clever Cloud API token able to create, deploy and delete applications",
        );
        match (orga_id, token) {
            (Some(orga_id), Some(token)) => Some(Tenancy::Single { orga_id, token }),
            _ => None,
        }
    };
    let extra_env = extra_env(sec, ctx);
    if multi && !sec.bool_or(ctx, FORWARD_SECRETS_KEY, false) {
        refuse_forwarded_secrets(sec, ctx, &extra_env);
    }
    let deployment_repo_timeout = sec.seconds_or(
        ctx,
        "cc_deployment_repo_timeout",
        DEFAULT_DEPLOYMENT_REPO_TIMEOUT,
    );
    let deployment_repo_wait_step = sec.seconds_or(
        ctx,
        "cc_deployment_repo_wait_step",
        DEFAULT_DEPLOYMENT_REPO_WAIT_STEP,
    );
    let auth_user = string_or(sec, ctx, "cc_auth_user", DEFAULT_AUTH_USER);
    let flavor_context = string_or(sec, ctx, "cc_flavor_context", DEFAULT_FLAVOR_CONTEXT);
    let flavor_name_prefix = sec
        .string(ctx, "cc_flavor_name_prefix")
        .unwrap_or_else(|| default_flavor_name_prefix(&flavor_context));
    let instance_variant_uuid = string_or(
        sec,
        ctx,
        "cc_instance_variant_uuid",
        DEFAULT_INSTANCE_VARIANT_UUID,
    );
    if ctx.problems.len() > before {
        return None;
    }
    let mut settings = CleverSettings::new(String::new(), tenancy?);
    settings.api_url = api_url;
    settings.zone = zone;
    settings.default_flavor = default_flavor;
    settings.max_flavor = max_flavor;
    settings.extra_env = extra_env;
    settings.deployment_repo_timeout = deployment_repo_timeout;
    settings.deployment_repo_wait_step = deployment_repo_wait_step;
    settings.auth_user = auth_user;
    settings.flavor_context = flavor_context;
    settings.flavor_name_prefix = flavor_name_prefix;
    settings.instance_variant_uuid = instance_variant_uuid;
    Some(settings)
}

/// The opt-in key that lets a multi-tenant runner forward its cache
/// credentials and `cc_extra_env` to every tenant's job host.
const FORWARD_SECRETS_KEY: &str = "cc_multi_tenant_forward_secrets";

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
fn refuse_forwarded_secrets(
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

fn extra_env(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> BTreeMap<String, String> {
    const KEY: &str = "cc_extra_env";
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

/// The local-docker settings of a runner section; the runner-level fields
/// (`unique_name`, `main_image`, `inner_runner_toml`) are filled by
/// [`runner`].
fn local_docker(sec: &Section<'_>, env: &Env, ctx: &mut Ctx<'_>) -> Option<LocalDockerSettings> {
    let before = ctx.problems.len();
    let written = sec.read(ctx, "host", "a unix:// URL string", as_nonempty_string);
    let (host, origin) = match (written, &env.docker_host) {
        (Some(h), _) => (h, "the `host` key"),
        (None, Some(h)) if !h.is_empty() && sec.get("host").is_none() => (
            h.clone(),
            "the DOCKER_HOST environment variable (no `host` key)",
        ),
        _ => (DEFAULT_DOCKER_HOST.to_string(), "the default"),
    };
    if ctx.problems.len() == before && socket_path(&host).is_err() {
        let path = sec.key_path("host");
        let found = ctx.shown(&path, &host);
        ctx.problem(
            &path,
            format!(
                "expected a Unix socket URL such as `{DEFAULT_DOCKER_HOST}`, found {found} \
                 (from {origin}); only unix:// Docker endpoints are supported"
            ),
        );
    }
    let network_mode = sec.read(
        ctx,
        "local_docker_network_mode",
        "a non-empty Docker network mode such as \"host\"",
        as_nonempty_string,
    );
    (ctx.problems.len() == before).then(|| LocalDockerSettings {
        host,
        network_mode,
        unique_name: String::new(),
        legacy_unique_name: None,
        main_image: None,
        inner_runner_toml: String::new(),
        timeouts: LocalDockerTimeouts::default(),
    })
}

fn check_unique_names(runners: &mut [Option<RunnerConfig>], ctx: &mut Ctx<'_>) {
    for j in 0..runners.len() {
        let Some(r) = &runners[j] else { continue };
        let earlier = runners.iter().take(j).enumerate().find_map(|(i, o)| {
            o.as_ref()
                .filter(|o| o.unique_name == r.unique_name)
                .map(|o| (i, o))
        });
        if let Some((i, first)) = earlier {
            let key = if r.raw.contains_key("unique_name") {
                "unique_name"
            } else {
                "token"
            };
            ctx.problem(
                &format!("runners[{j}].{key}"),
                format!(
                    "runners[{i}] (`{}`) and runners[{j}] (`{}`) have the same unique name `{}`. \
                     The unique name keys the state file and the PAAS application names \
                     (hpd-job-<unique name>-<job id>), so the two runners would overwrite each \
                     other's jobs. It comes from the token (for `glrt-` tokens, 9 characters \
                     after the prefix, as GitLab Runner shortens them; otherwise the first 8 \
                     characters, as the Python runner did). Add a distinct `unique_name = \"…\"` \
                     (letters, digits, `_`, `-`) to one of the two sections",
                    first.name, r.name, r.unique_name
                ),
            );
        }
    }
    // A legacy identity is only followed when it designates one runner:
    // never one that is another runner's identity, never one two runners share.
    let legacies: Vec<Option<String>> = runners
        .iter()
        .map(|r| r.as_ref().and_then(|r| r.legacy_unique_name.clone()))
        .collect();
    for r in runners.iter_mut().flatten() {
        let Some(old) = r.legacy_unique_name.clone() else {
            continue;
        };
        // Case-insensitively: local-docker lowercases identities in names.
        let shared = legacies
            .iter()
            .flatten()
            .filter(|o| o.eq_ignore_ascii_case(&old))
            .count()
            > 1;
        if shared {
            r.legacy_unique_name = None;
        }
    }
    let current: Vec<String> = runners
        .iter()
        .flatten()
        .map(|r| r.unique_name.clone())
        .collect();
    for r in runners.iter_mut().flatten() {
        if r.legacy_unique_name
            .as_ref()
            .is_some_and(|old| current.iter().any(|c| c.eq_ignore_ascii_case(old)))
        {
            r.legacy_unique_name = None;
        }
    }
    // The executors follow the identity kept above.
    for r in runners.iter_mut().flatten() {
        if let Some(c) = r.clever.as_mut() {
            c.legacy_unique_name = r.legacy_unique_name.clone();
        }
        if let Some(l) = r.local_docker.as_mut() {
            l.legacy_unique_name = r.legacy_unique_name.clone();
        }
    }
}
