//! `list CONFIG`: the runner sections with their identity, executor and
//! limits, read from the configuration; and, when the configuration sets
//! `listen_address`, the live job counts of the service running there,
//! read from its `/debug/jobs/list` ([`live`], bounded by
//! [`LIVE_TIMEOUT`]). `render` itself makes no call.

use super::table;
use crate::cli::ConfigArgs;
use crate::config::{Config, ConfigError, RunnerConfig, Tenancy};
use std::collections::BTreeMap;
use std::time::Duration;

/// Why `list` fails.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The `list` command.
pub fn run(args: &ConfigArgs) -> Result<(), ListError> {
    let config = super::load(args.config.path())?;
    let live = actix_rt::System::new().block_on(live(&config));
    print!("{}", render(&config, &live));
    Ok(())
}

/// How long `list` waits for the running service's answer.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest `/debug/jobs/list` body read (a job is about 200 bytes).
const MAX_BODY: usize = 8 << 20;

/// The running service's job counts, as `list` shows them.
#[derive(Debug, Clone, PartialEq)]
pub enum Live {
    /// No `listen_address` in the configuration.
    NotConfigured,
    /// Nothing answered at the address.
    Unreachable {
        /// The address asked.
        address: String,
        /// Why.
        why: String,
    },
    /// The service's tracked jobs: unique name → phase → count.
    Counts {
        /// The address asked.
        address: String,
        /// Jobs per runner identity and phase.
        per_runner: BTreeMap<String, BTreeMap<String, usize>>,
    },
}

/// Where to connect for a service listening on `listen_address`: an
/// unspecified host (`0.0.0.0`, `[::]`, none) is reached on loopback.
pub fn connect_address(listen_address: &str) -> String {
    let (host, port) = match listen_address.rsplit_once(':') {
        Some(hp) => hp,
        None => return listen_address.to_string(),
    };
    match host {
        "" | "0.0.0.0" | "*" => format!("127.0.0.1:{port}"),
        "[::]" => format!("[::1]:{port}"),
        _ => listen_address.to_string(),
    }
}

/// Counts per unique name and phase of a `/debug/jobs/list` body.
pub fn count_jobs(body: &[u8]) -> Result<BTreeMap<String, BTreeMap<String, usize>>, String> {
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("/debug/jobs/list did not answer a JSON array of jobs: {e}"))?;
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for job in jobs {
        let text = |key: &str| job.get(key).and_then(|v| v.as_str()).map(str::to_string);
        let runner = text("unique_name")
            .or_else(|| text("runner"))
            .unwrap_or_default();
        let phase = text("phase").unwrap_or_else(|| "unknown".to_string());
        *out.entry(runner).or_default().entry(phase).or_default() += 1;
    }
    Ok(out)
}

/// Asks the service listening on `config.listen_address` for its jobs.
/// Must run inside an actix system.
pub async fn live(config: &Config) -> Live {
    let Some(listen) = &config.listen_address else {
        return Live::NotConfigured;
    };
    let address = connect_address(&listen.to_string());
    let unreachable = |why: String| Live::Unreachable {
        address: address.clone(),
        why,
    };
    let client = awc::Client::builder()
        .timeout(LIVE_TIMEOUT)
        .disable_redirects()
        .finish();
    let url = format!("http://{address}/debug/jobs/list");
    let mut resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return unreachable(e.to_string()),
    };
    if !resp.status().is_success() {
        return unreachable(format!("/debug/jobs/list answered {}", resp.status()));
    }
    let body = match resp.body().limit(MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return unreachable(format!("cannot read the answer: {e}")),
    };
    match count_jobs(&body) {
        Ok(per_runner) => Live::Counts {
            address,
            per_runner,
        },
        Err(why) => unreachable(why),
    }
}

fn jobs_cell(phases: Option<&BTreeMap<String, usize>>) -> String {
    let Some(phases) = phases.filter(|p| !p.is_empty()) else {
        return "0".to_string();
    };
    let total: usize = phases.values().sum();
    let detail: Vec<String> = phases.iter().map(|(p, n)| format!("{p} {n}")).collect();
    format!("{total} ({})", detail.join(", "))
}

/// The table printed by `list`, with the live job counts when known.
pub fn render(config: &Config, live: &Live) -> String {
    let counts = match live {
        Live::Counts { per_runner, .. } => Some(per_runner),
        _ => None,
    };
    let rows: Vec<Vec<String>> = config
        .runners
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = section_row(config, i, r);
            if let Some(counts) = counts {
                row.push(jobs_cell(counts.get(&r.unique_name)));
            }
            row
        })
        .collect();
    let mut header = vec!["section", "name", "identity", "executor", "url", "limits"];
    if counts.is_some() {
        header.push("live jobs");
    }
    let mut out = table::render(&header, &rows);
    let qc = &config.quota_computation;
    out.push_str(&format!(
        "concurrent={}  quota: {} x {} of runner {:?}  allowed_fraction_per_runner={}\n",
        config.settings.concurrent,
        qc.reference_jobs_count,
        qc.reference_flavor,
        qc.reference_runner,
        config.settings.allowed_fraction_per_runner
    ));
    out.push_str(&live_line(config, live));
    out
}

/// The cells of runner section `i` before its live jobs.
fn section_row(config: &Config, i: usize, r: &RunnerConfig) -> Vec<String> {
    let fraction = r.settings.quota_max_fraction;
    let mut limits = vec![format!("quota_max_fraction={fraction}")];
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
        r.executor.as_str().to_string(),
        r.url.clone(),
        if reference {
            format!("{} (quota reference)", limits.join(" "))
        } else {
            limits.join(" ")
        },
    ]
}

/// The line under the table that says where the live jobs come from, or
/// why they are not shown.
fn live_line(config: &Config, live: &Live) -> String {
    match live {
        Live::NotConfigured => "live jobs: not shown: set listen_address (e.g. listen_address = \
             \"127.0.0.1:9252\") in the configuration and restart the service to see its live \
             job counts here\n"
            .to_string(),
        Live::Unreachable { address, why } => {
            format!("live jobs: service not reachable at {address} ({why})\n")
        }
        Live::Counts {
            address,
            per_runner,
        } => {
            let others: usize = per_runner
                .iter()
                .filter(|(name, _)| config.runner_by_unique_name(name).is_none())
                .flat_map(|(_, phases)| phases.values())
                .sum();
            let mut line = format!("live jobs: from the service at {address}");
            if others > 0 {
                line.push_str(&format!(
                    "; {others} more job(s) of runners not in this file"
                ));
            }
            line.push('\n');
            line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_hosts_are_reached_on_loopback() {
        for (listen, connect) in [
            ("0.0.0.0:9252", "127.0.0.1:9252"),
            (":9252", "127.0.0.1:9252"),
            ("[::]:9252", "[::1]:9252"),
            ("127.0.0.1:9252", "127.0.0.1:9252"),
            ("monitor.example:80", "monitor.example:80"),
            ("[::1]:9", "[::1]:9"),
        ] {
            assert_eq!(connect_address(listen), connect, "{listen}");
        }
    }

    #[test]
    fn jobs_are_counted_per_identity_and_phase() {
        let body = br#"[
            {"job_id": 1, "runner": "a", "unique_name": "abcdefghi", "phase": "started"},
            {"job_id": 2, "runner": "a", "unique_name": "abcdefghi", "phase": "started"},
            {"job_id": 3, "runner": "a", "unique_name": "abcdefghi", "phase": "provisioning"},
            {"job_id": 4, "runner": "b", "unique_name": "zzz", "phase": "launched"}
        ]"#;
        let counts = count_jobs(body).expect("counts");
        assert_eq!(counts["abcdefghi"]["started"], 2);
        assert_eq!(counts["abcdefghi"]["provisioning"], 1);
        assert_eq!(counts["zzz"]["launched"], 1);
        assert_eq!(
            jobs_cell(counts.get("abcdefghi")),
            "3 (provisioning 1, started 2)"
        );
        assert_eq!(jobs_cell(None), "0");
        assert!(count_jobs(b"{\"status\":\"stopped\"}").is_err());
    }
}
