//! One `[[runners]]` section: the common keys, the trace watch, the
//! actors' runner settings (declared in `paas_actors::settings`), and the
//! executor's own keys ([`super::clever`], [`super::local_docker`]).

use paas_actors::settings::{RunnerSettings, TraceWatch};
use std::path::Path;
use toml::Value;

use super::super::fields::{as_nonempty_string, Ctx, Section};
use super::super::identity::{
    legacy_unique_name, unique_name, valid_unique_name, MAX_UNIQUE_NAME_LEN,
};
use super::super::keys;
use super::super::settings::{ExecutorKind, RunnerConfig};
use super::global::warn_unknown_keys;
use super::{check_url, clever, forwarded, local_docker, service, Env};
use crate::secret::Secret;

/// Validates every runner section; `None` entries had problems.
pub(super) fn sections(
    top: &Section<'_>,
    env: &Env,
    config_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Vec<Option<RunnerConfig>> {
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
                Some(t) => runner(&Section::new(t, path), env, config_dir, ctx),
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

/// The keys every section has, checked first.
struct Common {
    name: Option<String>,
    url: Option<String>,
    token: Option<Secret>,
    explicit_name: Option<String>,
}

fn common(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Common {
    let required =
        |ctx: &mut Ctx<'_>, key, why: &str| sec.require_key(ctx, key, why, as_nonempty_string);
    let name = required(ctx, &keys::NAME, "the runner's human-readable name");
    let url = required(ctx, &keys::URL, "the GitLab / Heptapod instance URL");
    if let Some(u) = &url {
        check_url(ctx, &sec.key_path(keys::URL.leaf()), u);
    }
    let token = required(ctx, &keys::TOKEN, "the runner authentication token");
    let explicit_name = sec.read(
        ctx,
        keys::UNIQUE_NAME.leaf(),
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
    Common {
        name,
        url,
        token: token.map(Secret::new),
        explicit_name,
    }
}

fn runner(
    sec: &Section<'_>,
    env: &Env,
    config_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<RunnerConfig> {
    let common = common(sec, ctx);
    if common.explicit_name.is_none() && sec.get(keys::UNIQUE_NAME.leaf()).is_some() {
        return None;
    }
    let executor = executor(sec, ctx);
    let trace_watch = trace_watch(sec, ctx);
    let main_image = sec.read_key(ctx, &keys::MAIN_IMAGE, as_nonempty_string);
    let tls_ca_file = sec
        .read_key(ctx, &keys::TLS_CA_FILE, as_nonempty_string)
        .map(|path| config_dir.join(path));
    let mut settings = RunnerSettings::default();
    for setting in RunnerSettings::KEYS {
        sec.read_setting(ctx, setting, &mut settings);
    }
    forwarded::refuse_forwarded_token(sec, ctx);
    let (clever, local_docker) = match executor {
        Some(ExecutorKind::CleverDocker) => (clever::settings(sec, ctx), None),
        Some(ExecutorKind::CleverServiceDocker) => {
            let service = service::settings(sec, ctx);
            let clever = clever::settings(sec, ctx);
            let clever = clever.zip(service).map(|(mut c, s)| {
                c.service = Some(s);
                c
            });
            (clever, None)
        }
        Some(ExecutorKind::LocalDocker) => (None, local_docker::settings(sec, env, ctx)),
        None => (None, None),
    };
    let executor = executor?;
    if executor != ExecutorKind::CleverServiceDocker {
        service::warn_service_keys(sec, ctx, executor);
    }
    let complete = match executor {
        ExecutorKind::CleverDocker | ExecutorKind::CleverServiceDocker => clever.is_some(),
        ExecutorKind::LocalDocker => local_docker.is_some(),
    };
    if !complete {
        return None;
    }
    let token = common.token?;
    let (trace_watch_token, watch) = trace_watch?.unzip();
    let name = common.name?;
    settings.trace_watch = watch;
    settings.label = Some(name.clone());
    // Set here rather than by the wiring: a reload applies the validated
    // `RunnerSettings`, which must keep it.
    settings.standby =
        (executor == ExecutorKind::CleverServiceDocker).then(|| service::standby(sec, ctx));
    let mut runner = RunnerConfig {
        name,
        url: common.url?,
        unique_name: common
            .explicit_name
            .unwrap_or_else(|| unique_name(token.expose())),
        legacy_unique_name: None,
        token,
        executor,
        clever,
        local_docker,
        trace_watch_token,
        main_image,
        tls_ca_file,
        settings,
        raw: sec.table.clone(),
    };
    fill_executor(&mut runner);
    Some(runner)
}

/// The runner-level fields of the executor's settings: identity, main
/// image, inner `runner.toml`.
fn fill_executor(r: &mut RunnerConfig) {
    let legacy = legacy_unique_name(r.token.expose());
    r.legacy_unique_name = (legacy != r.unique_name).then_some(legacy);
    let inner_runner_toml = super::super::inner::inner_runner_toml(&r.raw);
    if let Some(c) = r.clever.as_mut() {
        c.unique_name = r.unique_name.clone();
        c.legacy_unique_name = r.legacy_unique_name.clone();
        c.main_image = r.main_image.clone();
        c.inner_runner_toml = inner_runner_toml.clone();
    }
    if let Some(l) = r.local_docker.as_mut() {
        l.unique_name = r.unique_name.clone();
        l.legacy_unique_name = r.legacy_unique_name.clone();
        l.main_image = r.main_image.clone();
        l.inner_runner_toml = inner_runner_toml;
    }
}

fn executor(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<ExecutorKind> {
    const EXPECTED: &str = "\"clever-docker\", \"clever-service-docker\" or \"local-docker\"";
    let key = keys::EXECUTOR.leaf();
    let text = sec.require(
        ctx,
        key,
        EXPECTED,
        &format!("the PAAS executor, {EXPECTED}"),
        |v| v.as_str().map(str::to_string),
    )?;
    match ExecutorKind::ALL.into_iter().find(|k| k.as_str() == text) {
        Some(kind) => Some(kind),
        None => {
            let other = text.as_str();
            let hint = if other == "docker" {
                " (found `docker`: the inner runner's `docker` executor is implied; this file \
                 needs a PAAS executor)"
                    .to_string()
            } else {
                format!(" (found {})", ctx.shown(&sec.key_path(key), other))
            };
            ctx.problem(
                &sec.key_path(key),
                format!("unknown executor: expected {EXPECTED}{hint}"),
            );
            None
        }
    }
}

/// The trace-watch table's keys, as written in it, and their aliases.
fn trace_watch_keys() -> (Vec<&'static str>, Vec<&'static str>) {
    let declared = TraceWatch::KEYS.iter().map(|s| &s.key);
    let known = std::iter::once(&keys::TRACE_WATCH_TOKEN)
        .chain(declared.clone())
        .map(|k| k.leaf())
        .collect();
    let aliases = declared.flat_map(|k| k.aliases.iter().copied()).collect();
    (known, aliases)
}

/// The trace-watch token and settings: `Some(None)` without a (usable)
/// trace watch; `None`: problems were found.
fn trace_watch(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<Option<(Secret, TraceWatch)>> {
    let canonical = keys::TRACE_WATCH.name;
    let documented = keys::TRACE_WATCH
        .aliases
        .first()
        .copied()
        .unwrap_or(canonical);
    let key = match (sec.get(canonical).is_some(), sec.get(documented).is_some()) {
        (true, true) => {
            ctx.problem(
                &sec.key_path(documented),
                format!("both `[runners.{canonical}]` and `[runners.{documented}]` are set; keep only one"),
            );
            return None;
        }
        (true, false) => canonical,
        (false, true) => documented,
        (false, false) => return Some(None),
    };
    let path = sec.key_path(key);
    let Some(watch) = sec.table(key) else {
        let found = sec
            .get(key)
            .map(|v| ctx.found(&path, v))
            .unwrap_or_default();
        ctx.problem(
            &path,
            format!("expected a table with `token`, `timeout_seconds`, `poll_step`, found {found}"),
        );
        return None;
    };
    let (known, aliases) = trace_watch_keys();
    warn_unknown_keys(&watch, ctx, &known, &aliases, "trace-watch key");
    let before = ctx.problems.len();
    let token = watch.read_key(ctx, &keys::TRACE_WATCH_TOKEN, as_nonempty_string);
    let mut settings = TraceWatch::default();
    for setting in TraceWatch::KEYS {
        watch.read_setting(ctx, setting, &mut settings);
    }
    if ctx.problems.len() > before {
        return None;
    }
    match token {
        Some(token) => Some(Some((Secret::new(token), settings))),
        None => {
            ctx.warn(
                &path,
                "has no `token`: job traces will not be watched (launches are assumed to succeed)",
            );
            Some(None)
        }
    }
}
