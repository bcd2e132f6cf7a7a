//! `[quota_computation]`: the reference of the weighted quota (its
//! `allowed_fraction_per_runner` is one of the actors' settings, read with
//! the other global ones).

use paas_actors::settings::SupervisorSettings;

use super::super::fields::{as_nonempty_string, as_positive, Ctx, Section};
use super::super::keys;
use super::super::settings::QuotaComputation;
use super::global::warn_unknown_keys;

/// The keys of `[quota_computation]`, as written in the table.
fn known_keys() -> Vec<&'static str> {
    keys::GLOBAL
        .iter()
        .copied()
        .chain(SupervisorSettings::KEYS.iter().map(|s| &s.key))
        .filter(|k| k.table() == Some(keys::QUOTA.name))
        .map(|k| k.leaf())
        .collect()
}

/// The quota reference; `names` are the runner sections' `name`s.
pub(super) fn read(
    top: &Section<'_>,
    names: &[&str],
    ctx: &mut Ctx<'_>,
) -> Option<QuotaComputation> {
    let key = keys::QUOTA.name;
    let value = match top.get(key) {
        Some(v) => v,
        None => {
            ctx.problem(
                key,
                "missing: the `[quota_computation]` section is required, with \
                 `reference_runner` (a runner name), `reference_flavor` and `reference_jobs_count`",
            );
            return None;
        }
    };
    let Some(table) = value.as_table() else {
        ctx.problem(
            key,
            format!(
                "expected a table `[quota_computation]`, found {}",
                ctx.found(key, value)
            ),
        );
        return None;
    };
    let sec = Section::new(table, key);
    warn_unknown_keys(&sec, ctx, &known_keys(), &[], "key in [quota_computation]");
    let reference_runner = sec.require_key(
        ctx,
        &keys::REFERENCE_RUNNER,
        "the `name` of one of the [[runners]] sections",
        as_nonempty_string,
    );
    if let Some(r) = &reference_runner {
        check_reference_runner(&sec, r, names, ctx);
    }
    let reference_flavor = sec.require_key(
        ctx,
        &keys::REFERENCE_FLAVOR,
        "a flavor name of the reference runner, e.g. \"M\"",
        as_nonempty_string,
    );
    let reference_jobs_count = sec.require_key(
        ctx,
        &keys::REFERENCE_JOBS_COUNT,
        "the number of reference-flavor jobs the quota allows",
        |v| as_positive(v).and_then(|n| u32::try_from(n).ok()),
    );
    Some(QuotaComputation {
        reference_runner: reference_runner?,
        reference_flavor: reference_flavor?,
        reference_jobs_count: reference_jobs_count?,
    })
}

/// The reference runner must be one of the sections; several of that name
/// are a warning (the first one is the reference).
fn check_reference_runner(sec: &Section<'_>, r: &str, names: &[&str], ctx: &mut Ctx<'_>) {
    let path = sec.key_path(keys::REFERENCE_RUNNER.leaf());
    if !names.is_empty() && !names.contains(&r) {
        let known = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let found = ctx.shown(&path, r);
        ctx.problem(
            &path,
            format!(
                "found {found}, but no [[runners]] section has that name (expected one \
                 of: {known})"
            ),
        );
    } else if names.iter().filter(|n| **n == r).count() > 1 {
        ctx.warn(
            &path,
            format!("several [[runners]] sections are named {r:?}; the first one is the reference"),
        );
    }
}
