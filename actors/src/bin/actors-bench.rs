//! actors-bench: figures for the actor system with in-memory ports.
//!
//! 1. Throughput: 10,000 jobs through the whole lifecycle (poll, create,
//!    prepare, launch, trace watch, progress check, decommission) at zero
//!    latency, state kept in memory (every write serialised to JSON), then
//!    the same with the atomic file store: jobs/s, CPU time per job.
//! 2. Tracking: 10,000 started jobs loaded from a state file: RSS, the
//!    runner's part (the actors) apart from the in-memory fakes' (the fake
//!    PAAS holding 10,000 resources), the time of the first state persist
//!    (every entry encoded) and of the two that follow one job's end (one
//!    entry encoded, then none; each: the records joined + temp file +
//!    fsync + rename + directory fsync), and the same file written alone
//!    (the disk's part).
//! 3. Scale (`scale [N,N,...]`, default 1000,10000,50000): for each number
//!    of tracked started jobs, the load, the first persist (every entry
//!    encoded), the supervisor's work per message: a burst of 200,000
//!    events (`TaskEnded` of tracked jobs, a handler that looks the job up)
//!    timed until all are handled, progress checks far away; then one
//!    resource deleted behind the runner's back and a reconciliation pass,
//!    whose forgetting of the job is one more persist (nothing encoded,
//!    every other record kept). The RSS figures of the runs after the first
//!    share the process's heap with the previous runs: take them from
//!    `tracking` (a fresh process) instead.
//!
//! Prints figures; it is not a test. Run in release:
//! `cargo run --release -p paas-actors --features testing --bin actors-bench
//! [all|tracking [N]|memory|file|scale [N,N,...]]` (`all`: the first three;
//! `tracking N`: N jobs instead of 10,000).
//! CPU time comes from /proc/self/stat (utime + stime, all threads,
//! assuming the usual 100 ticks per second); RSS from VmRSS and VmHWM
//! (the parts: RSS deltas, the state file written record by record
//! first).

use paas_actors::ports::Resource;
use paas_actors::service::{start_service, Reconcile};
use paas_actors::settings::TraceWatch;
use paas_actors::state::{write_atomic_with, FileStore, HandleRecord, StateStore};
use paas_actors::testing::{
    job, null_logger, FakeCoordinator, FakePaas, MemoryStore, SharedMemoryStore, World,
};
use paas_actors::testing::{EndTask, GetStats, JobKey, Stats};
use paas_actors::{service_control, RunnerPorts, RunnerSettings, Secret, SupervisorSettings};
use serde_json::json;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

const JOBS: i64 = 10_000;
const TICKS_PER_SEC: f64 = 100.0;
const BURST: i64 = 200_000;

fn proc_status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = text.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ')'.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn settings() -> SupervisorSettings {
    SupervisorSettings {
        quota: 1e9,
        concurrent: 2_000,
        max_concurrent_provisioning: 1_000,
        check_interval: Duration::from_millis(5),
        job_progress_poll_interval: Duration::from_millis(20),
        progress_check_concurrency: 64,
        ..SupervisorSettings::default()
    }
}

fn runner_ports(world: &Rc<World>, name: &str, auto_finish: bool) -> RunnerPorts {
    let coord = FakeCoordinator::new(world.clone());
    coord.script.borrow_mut().auto_finish = auto_finish;
    coord.push_jobs((1..=JOBS).map(|i| job(i, &[("WEIGHT", "1")])));
    RunnerPorts {
        name: name.into(),
        coordinator: coord,
        paas: FakePaas::new(world.clone(), name, 1.0),
        settings: RunnerSettings {
            trace_watch: Some(TraceWatch {
                timeout: Duration::from_secs(300),
                poll_step: Duration::from_millis(10),
            }),
            quota_max_fraction: 1.0,
            label: None,
            long_polling: false,
            standby: None,
        },
    }
}

async fn stats(addr: &actix::Addr<paas_actors::Supervisor>) -> Stats {
    match addr.send(GetStats).await {
        Ok(stats) => stats,
        Err(e) => {
            eprintln!("supervisor unreachable: {e}");
            std::process::exit(1)
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("actors-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

async fn lifecycle(store: Rc<dyn StateStore>, label: &str) {
    let world = World::new();
    let ports = vec![runner_ports(&world, "bench", true)];
    let (handle, control) = service_control();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let running = match start_service(settings(), ports, store, null_logger(), control).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return;
        }
    };
    let sup = running.supervisor.clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut s = stats(&sup).await;
    while s.completed < JOBS as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        s = stats(&sup).await;
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    handle.drain();
    let report = running.wait().await;
    let w = world.state();
    println!("== lifecycle, {label}");
    println!(
        "jobs completed: {} / {JOBS} (created {}, deleted {}, live {}), state writes: {}",
        s.completed,
        w.created,
        w.deleted,
        w.live.len(),
        s.persists
    );
    let secs = elapsed.as_secs_f64();
    println!(
        "wall time: {secs:.3} s -> {:.0} jobs/s",
        s.completed as f64 / secs
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU time: {cpu:.2} s -> {:.1} µs per job ({:.0} jobs per CPU-second)",
            cpu * 1e6 / JOBS as f64,
            JOBS as f64 / cpu.max(1e-9)
        );
    }
    println!(
        "peak RSS so far (VmHWM): {}",
        mib(proc_status_kib("VmHWM:"))
    );
    println!(
        "drained: forced={} tracked={}",
        report.forced, report.tracked_jobs
    );
}

/// Tracks `jobs` started jobs loaded from a state file. `scale`: progress
/// checks far away, and a burst of events timed (see the module
/// documentation); otherwise checks every 0.5 s and the persists that
/// follow one job's end.
async fn tracking(jobs: i64, scale: bool) {
    let rss_baseline = proc_status_kib("VmRSS:");
    let world = World::new();
    let paas = FakePaas::new(world.clone(), "bench", 1.0);
    let coord = FakeCoordinator::new(world.clone());
    let resource = |i: i64| Resource {
        id: format!("app_{i:032x}"),
        name: format!("hpd-job-bench-{i}"),
        weight: 1.0,
        launched: true,
        detail: json!({"job_id": i}),
        credential: None,
    };
    // The resources exist on the (fake) PAAS: the start-up reconciliation
    // must find them, or it would forget the entries. Built first, on a
    // small heap, so that their RSS delta is their own.
    for i in 1..=jobs {
        world.add_live(resource(i));
    }
    let rss_fakes = proc_status_kib("VmRSS:");
    // The state file, written record by record (little left on the heap).
    let dir = temp_dir("tracking");
    let path = dir.join("state.json");
    let written = write_atomic_with(&path, |w| {
        w.write_all(br#"{"launched":["#)?;
        for i in 1..=jobs {
            if i > 1 {
                w.write_all(b",")?;
            }
            let handle = HandleRecord {
                runner_name: "bench".into(),
                job_id: i,
                token: Secret::new(format!("glcbt-64_{i:020}")),
                trace_offset: 0,
                expected_weight: 1.0,
                paas_resource: Some(paas_actors::ports::Paas::dump_resource(
                    &*paas,
                    &resource(i),
                )),
            };
            serde_json::to_writer(&mut *w, &handle).map_err(std::io::Error::other)?;
        }
        w.write_all(br#"],"pending":[],"to_decommission":[]}"#)
    });
    if let Err(e) = written {
        eprintln!("cannot write {}: {e}", path.display());
        return;
    }
    let state_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let rss_before = proc_status_kib("VmRSS:");
    let ports = vec![RunnerPorts {
        name: "bench".into(),
        coordinator: coord,
        paas: paas.clone(),
        settings: RunnerSettings::default(),
    }];
    let mut s = settings();
    s.job_progress_poll_interval = if scale {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(500)
    };
    s.reconcile_interval = None;
    s.concurrent = jobs as usize * 2;
    s.quota = 1e9;
    let store = Rc::new(FileStore::new(&path));
    let (handle, control) = service_control();
    let t0 = Instant::now();
    let running = match start_service(s, ports, store, null_logger(), control).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return;
        }
    };
    let sup = running.supervisor.clone();
    let mut st = stats(&sup).await;
    while st.persists < 1 && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(2)).await;
        st = stats(&sup).await;
    }
    let load_and_first_write = t0.elapsed();
    let first = st.last_persist;
    let first_build = st.last_snapshot_build;
    let first_encoded = st.last_snapshot_encoded;
    let rss_tracking = proc_status_kib("VmRSS:");
    let mut per_message = None;
    if scale {
        // A burst of events, each looking a tracked job up; the last one
        // is awaited (the mailbox is FIFO).
        let cpu0 = cpu_seconds();
        let t = Instant::now();
        for i in 0..BURST {
            let key = JobKey {
                runner: 0,
                job_id: 1 + i % jobs,
            };
            sup.do_send(EndTask(key));
        }
        let last = JobKey {
            runner: 0,
            job_id: jobs,
        };
        if sup.send(EndTask(last)).await.is_ok() {
            let wall = t.elapsed();
            let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
            per_message = Some((wall, cpu));
        }
        // One entry forgotten -> one more write, measured alone.
        let _ = world.remove_live(&resource(1).name);
        st = stats(&sup).await;
        sup.do_send(Reconcile);
    } else {
        // One job over: one write with the job in `to_decommission`, one
        // once its resource is deleted; each measured alone.
        world.finish_job(1);
    }
    let mut persists = st.persists;
    let mut durations = vec![];
    let t1 = Instant::now();
    let writes = if scale { 1 } else { 2 };
    while durations.len() < writes && t1.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        st = stats(&sup).await;
        if st.persists > persists {
            persists = st.persists;
            durations.push((
                st.last_persist,
                st.last_snapshot_build,
                st.last_snapshot_encoded,
            ));
        }
    }
    let tracked = st.phases.get("started").copied().unwrap_or(0);
    handle.drain();
    let report = running.wait().await;
    println!("== tracking {jobs} started jobs (state file {state_bytes} bytes)");
    println!("tracked: {tracked}, used weight {}", st.used_weight);
    if (tracked as i64) + 1 < jobs {
        println!("WARNING: fewer jobs tracked than loaded: the figures below are not meaningful");
    }
    println!(
        "start (load + first write): {:.1} ms; one state persist: {:.1} ms \
         (snapshot build on the arbiter {:.1} ms, {first_encoded} entries encoded)",
        load_and_first_write.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        first_build.as_secs_f64() * 1e3
    );
    for (d, b, n) in durations {
        println!(
            "further persist: {:.1} ms (build {:.1} ms, {n} entries encoded)",
            d.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3
        );
    }
    println!(
        "RSS at bench start {}, before start (state file written, fake PAAS holding the \
         {jobs} resources) {}, while tracking {}, peak (VmHWM) {}",
        mib(rss_baseline),
        mib(rss_before),
        mib(rss_tracking),
        mib(proc_status_kib("VmHWM:"))
    );
    let delta = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.saturating_sub(b));
    println!(
        "RSS of the fake PAAS holding the {jobs} resources: {}; of the runner tracking them \
         (actors, job table, ledger): {} to {} (RSS while tracking minus RSS before the \
         start, or minus RSS with only the fakes built: the state file's buffers, freed \
         before the start, may be reused by the runner)",
        mib(delta(rss_fakes, rss_baseline)),
        mib(delta(rss_tracking, rss_before)),
        mib(delta(rss_tracking, rss_fakes)),
    );
    if let Some((wall, cpu)) = per_message {
        let n = (BURST + 1) as f64;
        println!(
            "supervisor, {} events at {jobs} tracked jobs: {:.2} µs wall per event{}",
            BURST + 1,
            wall.as_secs_f64() * 1e6 / n,
            cpu.map_or(String::new(), |c| format!(
                ", {:.2} µs CPU per event",
                c * 1e6 / n
            ))
        );
    }
    println!(
        "drained: forced={} tracked={}",
        report.forced, report.tracked_jobs
    );
    if let Some(ms) = write_alone(&path) {
        println!(
            "the state file written alone (same bytes: buffered write, fsync, rename, \
             directory fsync; median of {WRITES_ALONE}): {ms:.1} ms"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const WRITES_ALONE: usize = 5;

/// The disk's part of a persist: the file at `path` written again as the
/// store writes it, median wall time in ms.
fn write_alone(path: &std::path::Path) -> Option<f64> {
    let bytes = std::fs::read(path).ok()?;
    let mut times = Vec::with_capacity(WRITES_ALONE);
    for _ in 0..WRITES_ALONE {
        let t = Instant::now();
        let replaced = write_atomic_with(path, |w| w.write_all(&bytes)).ok()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(replaced);
    }
    times.sort_by(f64::total_cmp);
    times.get(WRITES_ALONE / 2).copied()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        if which == "all" || which == "tracking" {
            // First, while the heap is still small, so that RSS is its own.
            let n = std::env::args()
                .nth(2)
                .and_then(|n| n.trim().parse::<i64>().ok())
                .unwrap_or(JOBS);
            tracking(n.max(1), false).await;
        }
        if which == "scale" {
            let list = std::env::args()
                .nth(2)
                .unwrap_or_else(|| "1000,10000,50000".into());
            for n in list.split(',').filter_map(|n| n.trim().parse::<i64>().ok()) {
                tracking(n.max(1), true).await;
            }
        }
        if which == "all" || which == "memory" {
            let store = MemoryStore::new();
            lifecycle(Rc::new(SharedMemoryStore(store)), "in-memory store (JSON)").await;
        }
        if which == "all" || which == "file" {
            let dir = temp_dir("lifecycle");
            let store = Rc::new(FileStore::new(dir.join("state.json")));
            lifecycle(store, "file store (fsync)").await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    });
}
