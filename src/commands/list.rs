//! `list CONFIG`: the runner sections with their identity, executor and
//! limits, read from the configuration only (no network call).

use super::table;
use crate::config::{Config, ExecutorKind, Tenancy};

/// The table printed by `list`.
pub fn render(config: &Config) -> String {
    let rows: Vec<Vec<String>> = config
        .runners
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut limits = vec![format!("quota_max_fraction={}", r.quota_max_fraction)];
            if let Some(cc) = &r.clever {
                limits.push(format!("default_flavor={}", cc.default_flavor));
                if let Some(max) = &cc.max_flavor {
                    limits.push(format!("max_flavor={max}"));
                }
                if matches!(cc.tenancy, Tenancy::Multi { .. }) {
                    limits.push("multi-tenant".to_string());
                }
            }
            let reference = config.quota_computation.reference_runner == r.name;
            vec![
                format!("runners[{i}]"),
                r.name.clone(),
                r.unique_name.clone(),
                match r.executor {
                    ExecutorKind::CleverDocker => "clever-docker".to_string(),
                    ExecutorKind::LocalDocker => "local-docker".to_string(),
                },
                r.url.clone(),
                if reference {
                    format!("{} (quota reference)", limits.join(" "))
                } else {
                    limits.join(" ")
                },
            ]
        })
        .collect();
    let mut out = table::render(
        &["section", "name", "identity", "executor", "url", "limits"],
        &rows,
    );
    let qc = &config.quota_computation;
    out.push_str(&format!(
        "concurrent={}  quota: {} x {} of runner {:?}  allowed_fraction_per_runner={}\n",
        config.concurrent,
        qc.reference_jobs_count,
        qc.reference_flavor,
        qc.reference_runner,
        qc.allowed_fraction_per_runner
    ));
    out
}
