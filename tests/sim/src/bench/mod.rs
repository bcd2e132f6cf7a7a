//! `paas-sim bench`: runners measured side by side on the same simulated
//! load. Each run starts a fresh world, runs one runner against it until
//! every job is finished and every application deleted, and reads figures
//! from `/proc` (CPU, memory, threads) and from the world's records
//! (latencies, requests); see [`run::run_once`]. Runs alternate between the
//! runners and are repeated; the table shows each figure's median.
//!
//! - [`cli`]: the `paas-sim bench` arguments and command;
//! - `params`: the load and the runner settings;
//! - [`procfs`]: what `/proc` tells about one process;
//! - [`child`]: the measured process, in its own process group;
//! - [`run`]: one run;
//! - [`phases`]: where each job's time goes, between the world's milestones;
//! - [`fleet`]: the steady-state and state write figures of long loads;
//! - [`stats`], [`report`]: distributions, medians, the side-by-side table.

pub mod child;
pub mod cli;
pub mod fleet;
mod params;
pub mod phases;
pub mod procfs;
pub mod report;
pub mod run;
pub mod stats;

use std::path::Path;

pub use params::Params;
use report::{render_table, Figures};
pub use run::{RunError, RunnerCommand};

/// The machine: core count, CPU model, load averages.
pub fn describe_machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    format!(
        "{cores} cores, {}, load average {}",
        procfs::cpu_model().unwrap_or_else(|| "unknown CPU".to_owned()),
        procfs::load_average().unwrap_or_else(|| "unknown".to_owned())
    )
}

/// Runs every runner `repeat` times (alternating, so that the machine's load
/// weighs on each alike), with run directories under `dir`, and returns the
/// table of medians. The first failed run ends the bench.
pub fn bench(
    params: &Params,
    runners: &[RunnerCommand],
    repeat: usize,
    dir: &Path,
    interrupted: &dyn Fn() -> bool,
) -> Result<String, RunError> {
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); runners.len()];
    for round in 1..=repeat {
        for (i, runner) in runners.iter().enumerate() {
            let run_dir = dir.join(format!("{}-{round}", slug(&runner.label)));
            std::fs::create_dir_all(&run_dir).map_err(|source| RunError::Dir {
                path: run_dir.clone(),
                source,
            })?;
            let mut p = params.clone();
            if round > 1 || i > 0 {
                p.perf_output = None;
            }
            eprintln!(
                "paas-sim bench: run {round}/{repeat} of {} (load average {})",
                runner.label,
                procfs::load_average().unwrap_or_default()
            );
            let outcome = run::run_once(&p, runner, &run_dir, interrupted)?;
            let f = &outcome.figures;
            eprintln!(
                "paas-sim bench: {} run {round}: wall {:.2} s, CPU/job {:.2} ms, peak RSS {:.1} MiB, \
                 peak threads {:.0}",
                runner.label,
                f.get("wall time, all jobs finished and apps deleted").unwrap_or(0.0),
                f.get("CPU per job").unwrap_or(0.0),
                f.get("peak RSS (VmHWM)").unwrap_or(0.0),
                f.get("peak threads").unwrap_or(0.0),
            );
            if let Some(r) = runs.get_mut(i) {
                r.push(outcome.figures);
            }
        }
    }
    let columns: Vec<(String, Figures)> = runners
        .iter()
        .zip(&runs)
        .map(|(r, figs)| (r.label.clone(), Figures::median_of(figs)))
        .collect();
    Ok(render_table(&columns))
}

/// A label as a directory name.
fn slug(label: &str) -> String {
    label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_become_directory_names() {
        assert_eq!(slug("python 0.6.3"), "python-0-6-3");
        assert_eq!(slug("rust/release"), "rust-release");
    }
}
