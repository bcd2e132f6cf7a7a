//! End to end: whatever reaches the monitoring port cannot starve the
//! runner of file descriptors. The real binary, started under a
//! 256-descriptor limit (`ulimit -n 256`: soft and hard, so it cannot raise
//! it), against paas-sim on 127.0.0.1, while 2,000 clients each keep
//! trying to hold a connection open (opening another as soon as the server
//! ends theirs) and 16 others send requests back to back to every
//! endpoint, and jobs are enqueued one after the other: every job is picked
//! up and its application deleted within one interval of when it would be
//! without the attack, no state write fails, and the runner never holds as
//! many descriptors as its limit allows (without the connection cap it
//! reaches the limit, and this test fails).
//!
//! Its own test binary: it raises its own soft descriptor limit (2,000
//! sockets), a process-wide change.

#[path = "it/common/mod.rs"]
#[allow(dead_code)]
mod common;

use common::{get, job_id_of_app_name, tail, wait_until, E2e, BIN, STEP};
use paas_sim::coordinator::{JobSpec, JobState};
use paas_sim::runner_process::RunnerProcess;
use paas_sim::world::{RunnerConfigOptions, WorldConfig};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The runner's descriptor limit.
const RUNNER_LIMIT: u64 = 256;
/// Connections held open against the monitoring port.
const IDLE_CONNECTIONS: usize = 2_000;
/// Tasks sending requests back to back (the runner accepts 32 connections
/// at once under its limit: half of them).
const FLOODERS: usize = 16;
/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(25);
/// `check_interval` and `job_progress_poll_interval` of the runner.
const INTERVAL: Duration = Duration::from_secs(2);
/// Jobs enqueued during the attack, one every [`JOB_GAP`], each
/// [`JOB_LONGER`] longer than the one before, so that they end more than
/// an interval apart: never three refused at once with no other job to
/// ask (a burst of refusals waits three intervals, whatever the port).
const JOBS: usize = 10;
const JOB_GAP: Duration = Duration::from_millis(1_500);
const JOB_LONGER: u64 = 600;
/// What a pickup or a deletion takes besides waiting for the interval
/// (the poll or the check, the state write and its fsync, the API call)
/// on a loaded 2-core test machine.
const WORK: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Counts {
    connected: AtomicU64,
    closed_by_server: AtomicU64,
    connect_failed: AtomicU64,
    answered: AtomicU64,
    unanswered: AtomicU64,
}

impl Counts {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A free port on 127.0.0.1 (bound, then released for the runner).
fn free_address() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address")
}

/// Raises this process's soft descriptor limit so that it can hold the
/// connections; false (and why, printed) when the hard limit is too low.
fn enough_descriptors_here() -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let need = IDLE_CONNECTIONS as u64 + FLOODERS as u64 + 1_024;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        eprintln!("SKIPPED: cannot read the descriptor limit");
        return false;
    };
    if soft >= need {
        return true;
    }
    if hard < need {
        eprintln!(
            "SKIPPED: the hard descriptor limit ({hard}) is below the {need} this test holds"
        );
        return false;
    }
    setrlimit(Resource::RLIMIT_NOFILE, need, hard).is_ok()
}

/// One connection after another, each held until the server ends it (a
/// 408, or closed) or the deadline passes.
async fn hold_idle(addr: SocketAddr, deadline: tokio::time::Instant, counts: Arc<Counts>) {
    for _ in 0..10_000 {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
            .await
        {
            Ok(Ok(mut stream)) => {
                bump(&counts.connected);
                let mut buf = [0u8; 256];
                if let Ok(Ok(_)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    bump(&counts.closed_by_server);
                }
            }
            Ok(Err(_)) | Err(_) => {
                bump(&counts.connect_failed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one HTTP/1.1 answer (head, then a `Content-Length` body) from
/// `stream`; false when there is none.
async fn read_answer(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> bool {
    use tokio::io::AsyncBufReadExt;
    let mut length = 0usize;
    let mut first = true;
    for _ in 0..100 {
        let mut line = String::new();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if first && !line.starts_with("HTTP/1.1 ") {
            return false;
        }
        first = false;
        if line == "\r\n" {
            let mut body = vec![0u8; length];
            return stream.read_exact(&mut body).await.is_ok();
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    false
}

/// Requests back to back on keep-alive connections, cycling over the
/// endpoints; a new connection when one ends.
async fn flood(addr: SocketAddr, deadline: tokio::time::Instant, counts: Arc<Counts>) {
    let paths = ["/metrics", "/healthz", "/readyz", "/debug/jobs/list"];
    let mut n = 0usize;
    for _ in 0..10_000 {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await
        else {
            bump(&counts.connect_failed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut stream = tokio::io::BufReader::new(stream);
        for _ in 0..100_000 {
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            let path = paths[n % paths.len()];
            n += 1;
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let exchange = async {
                stream.get_mut().write_all(request.as_bytes()).await.ok()?;
                read_answer(&mut stream).await.then_some(())
            };
            match tokio::time::timeout(Duration::from_secs(2), exchange).await {
                Ok(Some(())) => bump(&counts.answered),
                _ => {
                    bump(&counts.unanswered);
                    break;
                }
            }
        }
    }
}

/// Runs the attack on its own thread until `ATTACK` has passed.
fn attack(addr: SocketAddr, counts: Arc<Counts>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            eprintln!("cannot build the attack's runtime");
            return;
        };
        rt.block_on(async move {
            let deadline = tokio::time::Instant::now() + ATTACK;
            let mut tasks = Vec::new();
            // The flood first, so that it holds connections of its own.
            for _ in 0..FLOODERS {
                tasks.push(tokio::spawn(flood(addr, deadline, counts.clone())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            for _ in 0..IDLE_CONNECTIONS {
                tasks.push(tokio::spawn(hold_idle(addr, deadline, counts.clone())));
            }
            for t in tasks {
                let _ = t.await;
            }
        });
        // Every socket is closed with its task, the runtime with them.
    })
}

/// Descriptors process `pid` holds now.
fn descriptors_of(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The runner under `ulimit -n RUNNER_LIMIT` (soft and hard).
fn start_limited(config: &Path, log: &Path) -> RunnerProcess {
    let script = format!("ulimit -n {RUNNER_LIMIT} && exec \"$0\" \"$@\"");
    let args = [
        "-c",
        &script,
        BIN,
        "run",
        &config.display().to_string(),
        "-l",
        "DEBUG",
    ];
    RunnerProcess::spawn(Path::new("/bin/sh"), &args, log).expect("runner starts")
}

#[test]
fn a_flood_of_monitoring_connections_delays_no_job_and_fails_no_state_write() {
    if !enough_descriptors_here() {
        return;
    }
    let e = E2e::start(WorldConfig::default());
    let addr = free_address();
    let address = addr.to_string();
    let config = e.write_config(
        RunnerConfigOptions {
            check_interval: INTERVAL,
            job_progress_poll_interval: INTERVAL,
            quota_jobs: 8,
            ..common::options()
        },
        &[("listen_address", toml::Value::from(addr.to_string()))],
    );
    let mut runner = start_limited(&config, &e.log("flood.log"));
    let ready = wait_until(
        || get(&address, "/readyz").is_some_and(|(s, _)| s == 200),
        Duration::from_secs(30),
        STEP,
    );
    assert!(ready, "never ready\n{}", tail(&runner.log()));
    let log = runner.log();
    assert!(
        log.contains("the file descriptor limit is low") && log.contains("limit: 256"),
        "the runner runs under the low limit\n{}",
        tail(&log)
    );

    let counts = Arc::new(Counts::default());
    let attacker = attack(addr, counts.clone());
    // Let the connections pile up before the first job.
    std::thread::sleep(Duration::from_secs(2));
    let mut ids = Vec::new();
    let mut most_descriptors = 0u64;
    let started = Instant::now();
    while started.elapsed() < ATTACK + Duration::from_secs(2) {
        if ids.len() < JOBS && started.elapsed() >= JOB_GAP * ids.len() as u32 {
            ids.push(e.world.enqueue(JobSpec {
                flavor: Some("XS".to_owned()),
                duration_ms: 1_000 + JOB_LONGER * ids.len() as u64,
                ..JobSpec::default()
            }));
        }
        if let Some(n) = descriptors_of(runner.pid()) {
            most_descriptors = most_descriptors.max(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    attacker.join().expect("attack thread");
    assert_eq!(ids.len(), JOBS);
    assert!(
        e.wait_done(&ids, Duration::from_secs(60)),
        "jobs not done\n{}\n{}",
        e.describe(),
        tail(&runner.log())
    );

    // The attack really happened: connections opened, the server closing
    // idle ones, requests answered.
    let connected = Counts::get(&counts.connected);
    let answered = Counts::get(&counts.answered);
    eprintln!(
        "attack: {connected} connections opened ({} closed by the server, {} attempts failed), \
         {answered} requests answered, {} not; the runner held at most {most_descriptors} \
         descriptors (limit {RUNNER_LIMIT})",
        Counts::get(&counts.closed_by_server),
        Counts::get(&counts.connect_failed),
        Counts::get(&counts.unanswered)
    );
    assert!(connected > 100 && answered > 100, "no real attack");
    assert!(
        Counts::get(&counts.closed_by_server) > 0,
        "idle connections are ended by the server"
    );
    assert!(most_descriptors < RUNNER_LIMIT, "{most_descriptors}");

    assert!(
        !runner.log().contains("taken as a coordinator problem"),
        "jobs ended together: the refusal guard's patience, not the port, delayed them"
    );
    // Every job picked up, and its application deleted after its end, no
    // more than one interval later than without the attack.
    let epoch = e.world.clever().control().epoch();
    let deleted: BTreeMap<i64, Instant> = e
        .world
        .clever()
        .control()
        .apps()
        .iter()
        .filter_map(|a| {
            Some((
                job_id_of_app_name(&a.name)?,
                epoch + Duration::from_millis(a.deleted_ms?),
            ))
        })
        .collect();
    let mut worst_pickup = Duration::ZERO;
    let mut worst_deletion = Duration::ZERO;
    for id in &ids {
        let job = e.world.coordinator().job(*id).expect("job");
        assert_eq!(job.status, JobState::Success, "job {id}: {job:?}");
        let (Some(created), Some(handed_out), Some(finished)) =
            (job.times.created, job.times.handed_out, job.times.finished)
        else {
            panic!("job {id} times {:?}", job.times);
        };
        let gone = deleted.get(id).copied().expect("application deleted");
        worst_pickup = worst_pickup.max(handed_out.saturating_duration_since(created));
        worst_deletion = worst_deletion.max(gone.saturating_duration_since(finished));
    }
    eprintln!(
        "worst pickup {:.2} s, worst finished -> deleted {:.2} s (interval {} s)",
        worst_pickup.as_secs_f64(),
        worst_deletion.as_secs_f64(),
        INTERVAL.as_secs()
    );
    // Without the attack: at most an interval, plus the work itself.
    let undisturbed = INTERVAL + WORK;
    assert!(
        worst_pickup <= undisturbed + INTERVAL,
        "pickup {worst_pickup:?}"
    );
    assert!(
        worst_deletion <= undisturbed + INTERVAL,
        "deletion {worst_deletion:?}"
    );

    // No state write failed, nothing ran out of descriptors.
    let metrics = get(&address, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    assert!(
        metrics.contains("heptapod_paas_runner_state_write_errors_total 0"),
        "{metrics}"
    );
    let log = runner.log();
    assert!(!log.contains("Too many open files"), "{}", tail(&log));
    assert!(!log.contains("cannot save the state"), "{}", tail(&log));
    e.assert_clean(JOBS);
    let (status, killed) = runner.stop(Duration::from_secs(20)).expect("stop");
    assert!(
        !killed && status.success(),
        "exit {status}\n{}",
        tail(&runner.log())
    );
}
