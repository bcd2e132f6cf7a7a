//! Unique names across the runner sections: two sections of one unique
//! name are refused (they would share state entries and resource names),
//! and a legacy identity is followed only when it designates one runner.

use super::super::fields::Ctx;
use super::super::settings::RunnerConfig;

/// Refuses duplicate unique names; keeps each legacy identity only when
/// it designates one runner, and gives the executors the one kept.
pub(super) fn check(runners: &mut [Option<RunnerConfig>], ctx: &mut Ctx<'_>) {
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
