//! The systemd unit in `deploy/` is hardened: `systemd-analyze security
//! --offline=yes` rates its exposure 2.0 or better (skipped, with the
//! reason printed, where `systemd-analyze` is not installed); and it gives
//! the runner descriptors enough for the monitoring port's full share and
//! its own reserve.

use std::path::Path;
use std::process::Command;

/// Pure: the overall exposure figure of `systemd-analyze security`'s output.
fn exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let after = line.rsplit_once(": ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_figure_is_read_from_the_report() {
    let report = "✗ IPAddressDeny= …  0.2\n\n→ Overall exposure level for x.service: 1.2 OK 🙂\n";
    assert_eq!(exposure(report), Some(1.2));
    assert_eq!(exposure("nothing"), None);
}

#[test]
fn unit_exposure_is_at_most_2() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/heptapod-paas-runner.service");
    let output = match Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!(
                "SKIPPED: systemd-analyze is not available ({e}); install Debian's systemd package"
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let figure = exposure(&text).unwrap_or_else(|| {
        panic!(
            "no exposure figure in systemd-analyze's output\n{text}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    eprintln!("systemd-analyze security --offline=yes: exposure {figure:.1}");
    assert!(figure <= 2.0, "exposure {figure} > 2.0\n{text}");
}

#[test]
fn the_unit_gives_the_runner_descriptors_beyond_its_shares() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/heptapod-paas-runner.service");
    let text = std::fs::read_to_string(&unit).expect("unit file");
    let limits: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("LimitNOFILE="))
        .collect();
    assert_eq!(limits, ["65536"], "one LimitNOFILE= line");
    let limit: u64 = limits.first().and_then(|v| v.parse().ok()).unwrap_or(0);
    let budget = heptapod_paas_runner::descriptors::Budget::for_limit(limit);
    assert_eq!(
        budget.monitoring_connections,
        heptapod_paas_runner::descriptors::MAX_MONITORING_CONNECTIONS
    );
    // What the monitoring server and the reserve take leaves the runner
    // almost all of it.
    assert!(
        limit - budget.reserve - budget.monitoring_connections as u64 > 60_000,
        "{budget:?}"
    );
}
