//! `paas-sim demo` against the real heptapod-paas-runner binary: a short
//! clean run exits 0 with a clean verdict. The runner binary is looked for
//! next to paas-sim (a workspace build, as scripts/test does, builds both);
//! without it the test says why and checks nothing else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use paas_sim::runner_process::RunnerProcess;

const SIM: &str = env!("CARGO_BIN_EXE_paas-sim");

fn runner_binary() -> Option<PathBuf> {
    let p = Path::new(SIM).parent()?.join("heptapod-paas-runner");
    p.is_file().then_some(p)
}

#[test]
fn a_short_demo_is_clean() {
    let Some(runner) = runner_binary() else {
        eprintln!(
            "SKIPPED a_short_demo_is_clean: no heptapod-paas-runner next to {SIM} \
             (build the workspace, e.g. scripts/test, to run it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = dir.path().join("demo.log");
    let runner_arg = runner.display().to_string();
    let mut demo = match RunnerProcess::spawn(
        Path::new(SIM),
        &[
            "demo",
            "--jobs",
            "4",
            "--seed",
            "3",
            "--timeout",
            "120",
            "--runner",
            &runner_arg,
        ],
        &log,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let status = demo
        .wait_timeout(Duration::from_secs(240))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = demo.log();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(out.contains("verdict: clean run"), "{out}");
    assert!(out.contains("jobs: 4 total"), "{out}");
    assert!(out.contains("0 leaked"), "{out}");
}
