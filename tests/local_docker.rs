//! The local-docker executor against a real Docker engine.
//!
//! Needs an engine socket in `HPR_TEST_DOCKER_HOST` (`unix://…`, see
//! `scripts/dockerd-start`); without it every test here prints why it is
//! skipped and passes. No registry is reachable, so the job's base image is
//! built `FROM scratch` with the statically linked `sim-inner-runner` of
//! paas-sim at `/usr/bin/gitlab-runner` (taken from `HPR_TEST_INNER_RUNNER`
//! if set, else built here with `cargo rustc … -C target-feature=+crt-static`).
//! The job container reaches a tiny coordinator on 127.0.0.1 through host
//! networking (`network_mode = "host"`).
//!
//! Every image and container made here is removed at the end, even when a
//! test fails (a drop guard), and the tests check that the executor's own
//! `decommission` left nothing behind.

use heptapod_paas_runner::executors::local_docker::{
    LocalDocker, LocalDockerSettings, LocalDockerTimeouts,
};
use paas_actors::ports::{Job, Paas, PaasErrorClass};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The engine socket URL, or `None` (with the reason printed) to skip.
fn docker_host(test: &str) -> Option<String> {
    match std::env::var("HPR_TEST_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Some(host),
        _ => {
            eprintln!(
                "SKIPPED {test}: no Docker engine given; set HPR_TEST_DOCKER_HOST=unix://… \
                 (eval \"$(scripts/dockerd-start)\" starts a private one)"
            );
            None
        }
    }
}

/// Runs the docker CLI synchronously (test set-up and checks only).
fn docker(host: &str, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker CLI runs")
}

fn image_exists(host: &str, name: &str) -> bool {
    docker(host, &["image", "inspect", name]).status.success()
}

fn container_exists(host: &str, name: &str) -> bool {
    docker(host, &["container", "inspect", name])
        .status
        .success()
}

/// Removes images and containers at drop, even on test failure.
struct Cleanup {
    host: String,
    names: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = docker(&self.host, &["container", "rm", "--force", name]);
            let _ = docker(&self.host, &["image", "rm", "--force", name]);
        }
    }
}

/// True if the ELF file has no program interpreter (statically linked).
fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        bytes.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .is_some_and(|t| t != PT_INTERP)
    })
}

/// Builds the static stand-in with cargo and returns the artifact path.
fn cargo_build_static_inner_runner() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "rustc",
            "--locked",
            "--quiet",
            "-p",
            "paas-sim",
            "--bin",
            "sim-inner-runner",
            "--message-format=json",
            "--",
            "-C",
            "target-feature=+crt-static",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "static build of sim-inner-runner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "sim-inner-runner")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the sim-inner-runner executable")
}

/// Copies a statically linked sim-inner-runner to `dest`.
fn install_static_inner_runner(dest: &Path) {
    if let Some(given) = std::env::var_os("HPR_TEST_INNER_RUNNER") {
        let bytes = std::fs::read(&given).expect("HPR_TEST_INNER_RUNNER is readable");
        assert!(is_static_elf(&bytes), "{given:?} is not statically linked");
        std::fs::write(dest, bytes).expect("copy");
    } else {
        // The uplifted artifact is shared with ordinary (dynamic) builds
        // that may relink it meanwhile: check, and rebuild once if so.
        let mut ok = false;
        for _ in 0..2 {
            let bytes = std::fs::read(cargo_build_static_inner_runner()).expect("artifact");
            if is_static_elf(&bytes) {
                std::fs::write(dest, bytes).expect("copy");
                ok = true;
                break;
            }
        }
        assert!(ok, "could not get a statically linked sim-inner-runner");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Builds the base image (FROM scratch + the stand-in) tagged `tag`.
fn build_base_image(host: &str, tag: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    install_static_inner_runner(&dir.path().join("gitlab-runner"));
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY gitlab-runner /usr/bin/gitlab-runner\n",
    )
    .expect("Dockerfile");
    let dir_arg = dir.path().to_str().expect("utf-8 temp path");
    let out = docker(host, &["build", "--quiet", "--tag", tag, dir_arg]);
    assert!(
        out.status.success(),
        "base image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn settings(
    host: &str,
    unique_name: &str,
    main_image: Option<&str>,
    port: u16,
) -> LocalDockerSettings {
    LocalDockerSettings {
        host: host.to_string(),
        network_mode: Some("host".to_string()),
        unique_name: unique_name.to_string(),
        main_image: main_image.map(str::to_string),
        inner_runner_toml: format!(
            "[[runners]]\nname = \"inner\"\nurl = \"http://127.0.0.1:{port}/\"\n\
             token = \"glrt-inner\"\nexecutor = \"docker\"\n"
        ),
        timeouts: LocalDockerTimeouts {
            build: Duration::from_secs(120),
            command: Duration::from_secs(60),
        },
    }
}

fn job(id: i64, vars: &[(&str, &str)]) -> Job {
    let variables: Vec<_> = vars
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v, "public": true}))
        .collect();
    Job::from_payload(serde_json::json!({
        "id": id,
        "token": format!("job-token-{id}"),
        "job_info": {"project_id": 1},
        "variables": variables,
    }))
    .expect("valid job")
}

/// A unique, lowercase-safe runner name per test process and test.
fn unique(test: &str) -> String {
    format!("T{}-{test}", std::process::id())
}

#[tokio::test]
async fn jobs_build_run_report_and_vanish() {
    let Some(host) = docker_host("jobs_build_run_report_and_vanish") else {
        return;
    };
    let coordinator = coord::FakeCoordinator::start();
    let base = format!("hpr-test-inner-runner-{}", std::process::id());
    let unique_name = unique("run");
    let exec = LocalDocker::new(settings(&host, &unique_name, Some(&base), coordinator.port))
        .expect("valid settings");
    let ok_job = job(101, &[("PAAS_SIM_DURATION_MS", "300")]);
    let failing_job = job(102, &[("PAAS_SIM_OUTCOME", "failed")]);
    // Its container gets created, but not started, behind our back (as if
    // the runner stopped between the two halves of `docker run`).
    let half_run_job = job(103, &[]);
    let names = [
        exec.resource_name(&ok_job),
        exec.resource_name(&failing_job),
        exec.resource_name(&half_run_job),
    ];
    let _cleanup = Cleanup {
        host: host.clone(),
        names: names.iter().cloned().chain([base.clone()]).collect(),
    };
    build_base_image(&host, &base);
    // The PAAS runner already wrote to the first job's trace: the inner
    // runner must append after it (416 + Range).
    coordinator.register(101, "job-token-101", b"launch notice\n");
    coordinator.register(102, "job-token-102", b"");
    coordinator.register(103, "job-token-103", b"");

    let mut launched = Vec::new();
    for j in [&ok_job, &failing_job, &half_run_job] {
        let created = exec.create(j).await.expect("create");
        assert_eq!(created.name, exec.resource_name(j));
        assert!(
            !image_exists(&host, &created.id),
            "create must not make anything on the engine"
        );
        let prepared = exec.prepare(&created, j).await.expect("build");
        assert!(image_exists(&host, &prepared.id));
        if j.id == 103 {
            let out = docker(
                &host,
                &[
                    "container",
                    "create",
                    "--name",
                    &prepared.id,
                    "--network",
                    "host",
                    &prepared.id,
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let started = Instant::now();
        let running = exec.launch(&prepared, j).await.expect("run");
        assert!(running.launched);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "launch must not wait for the job"
        );
        launched.push(running);
    }

    // Launching again (as after a restart) finds the container: no second one.
    let again = exec.launch(&launched[0], &ok_job).await.expect("relaunch");
    assert!(again.launched);

    let inspect = docker(
        &host,
        &[
            "container",
            "inspect",
            "--format",
            "{{.HostConfig.NetworkMode}} {{json .Mounts}}",
            &names[0],
        ],
    );
    let inspect = String::from_utf8_lossy(&inspect.stdout).to_string();
    assert!(inspect.starts_with("host "), "{inspect}");
    assert!(
        inspect.contains("\"Destination\":\"/var/run/docker.sock\""),
        "{inspect}"
    );

    // Wait (bounded in count and time) for both final states.
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..1200 {
        if [101, 102, 103]
            .iter()
            .all(|id| coordinator.state(*id).is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not report in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(coordinator.state(101).as_deref(), Some("success"));
    assert_eq!(coordinator.state(102).as_deref(), Some("failed"));
    assert_eq!(coordinator.state(103).as_deref(), Some("success"));
    let trace = coordinator.trace(101);
    assert!(
        trace.starts_with("launch notice\nRunning with sim-inner-runner"),
        "{trace}"
    );
    assert!(trace.ends_with("Job succeeded\n"), "{trace}");

    let listed = exec.list_resources().await.expect("list");
    let listed_names: Vec<_> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        listed_names,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(listed.iter().all(|r| r.launched && r.weight == 1.0));

    // Restart: the state file gives the image name back.
    let saved = exec.dump_resource(&launched[0]);
    assert_eq!(saved, serde_json::json!(names[0]));
    let loaded = exec.load_resource(&saved).await.expect("load");

    exec.decommission(&loaded).await.expect("decommission");
    for resource in launched.iter().skip(1) {
        exec.decommission(resource).await.expect("decommission");
    }
    for name in &names {
        assert!(!image_exists(&host, name), "image {name} left behind");
        assert!(
            !container_exists(&host, name),
            "container {name} left behind"
        );
    }
    // Already gone is success.
    exec.decommission(&loaded)
        .await
        .expect("second decommission");
    assert!(exec.list_resources().await.expect("list").is_empty());
}

#[tokio::test]
async fn decommission_before_build_is_success() {
    let Some(host) = docker_host("decommission_before_build_is_success") else {
        return;
    };
    let exec = LocalDocker::new(settings(&host, &unique("never"), None, 1)).expect("valid");
    let j = job(7, &[]);
    let created = exec.create(&j).await.expect("create");
    exec.decommission(&created)
        .await
        .expect("nothing to remove is fine");
}

#[tokio::test]
async fn build_failure_carries_the_engine_message() {
    let Some(host) = docker_host("build_failure_carries_the_engine_message") else {
        return;
    };
    // An invalid reference: the build fails at once, without a registry.
    let exec = LocalDocker::new(settings(
        &host,
        &unique("badimg"),
        Some("Not/A/Valid:Image"),
        1,
    ))
    .expect("valid");
    let j = job(8, &[]);
    let _cleanup = Cleanup {
        host: host.clone(),
        names: vec![exec.resource_name(&j)],
    };
    let created = exec.create(&j).await.expect("create");
    let err = exec.prepare(&created, &j).await.expect_err("build fails");
    assert_eq!(err.action, "build");
    assert_eq!(err.class, PaasErrorClass::Permanent);
    assert!(err.message.contains("docker build"), "{}", err.message);
    assert!(
        err.message
            .to_lowercase()
            .contains("invalid reference format")
            || err.message.contains("lowercase"),
        "engine message missing: {}",
        err.message
    );
    exec.decommission(&created)
        .await
        .expect("cleanup after a failed build");
}

#[tokio::test]
async fn unreachable_engine_is_a_transient_typed_error() {
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("SKIPPED unreachable_engine_is_a_transient_typed_error: no docker CLI in PATH");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!("unix://{}/no-engine.sock", dir.path().display());
    let exec = LocalDocker::new(settings(&host, &unique("nohost"), None, 1)).expect("valid");
    let j = job(9, &[]);
    let created = exec
        .create(&j)
        .await
        .expect("create does not touch the engine");
    for err in [
        exec.launch(&created, &j).await.expect_err("no engine"),
        exec.list_resources().await.expect_err("no engine"),
    ] {
        assert_eq!(err.class, PaasErrorClass::Transient, "{err}");
        assert!(err.message.contains("no-engine.sock"), "{}", err.message);
    }
    let err = exec.decommission(&created).await.expect_err("no engine");
    assert_eq!(err.action, "delete");
    assert_eq!(err.class, PaasErrorClass::Transient);
}

/// A minimal fake coordinator: just the two job-token endpoints the inner
/// runner uses (trace PATCH with offset semantics, state PUT). The full
/// fake lives in paas-sim; this one keeps these tests self-contained.
mod coord {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct JobRec {
        token: String,
        trace: Vec<u8>,
        state: Option<String>,
    }

    type Jobs = Arc<Mutex<HashMap<i64, JobRec>>>;

    pub struct FakeCoordinator {
        pub port: u16,
        jobs: Jobs,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl FakeCoordinator {
        pub fn start() -> FakeCoordinator {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let port = listener.local_addr().expect("addr").port();
            let jobs: Jobs = Arc::default();
            let stop = Arc::new(AtomicBool::new(false));
            let (j, s) = (jobs.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                // Bounded: stops when told or after five minutes.
                let deadline = Instant::now() + Duration::from_secs(300);
                while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = handle(stream, &j);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            });
            FakeCoordinator {
                port,
                jobs,
                stop,
                thread: Some(thread),
            }
        }

        pub fn register(&self, id: i64, token: &str, trace: &[u8]) {
            self.jobs.lock().expect("lock").insert(
                id,
                JobRec {
                    token: token.to_string(),
                    trace: trace.to_vec(),
                    state: None,
                },
            );
        }

        pub fn state(&self, id: i64) -> Option<String> {
            self.jobs.lock().expect("lock").get(&id)?.state.clone()
        }

        pub fn trace(&self, id: i64) -> String {
            let jobs = self.jobs.lock().expect("lock");
            String::from_utf8_lossy(&jobs.get(&id).map(|j| j.trace.clone()).unwrap_or_default())
                .into_owned()
        }
    }

    impl Drop for FakeCoordinator {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn handle(stream: TcpStream, jobs: &Jobs) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        for _ in 0..100 {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len.min(1 << 20)];
        reader.read_exact(&mut body)?;

        let (status, extra) = route(&method, &path, &headers, &body, jobs);
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
        )?;
        out.flush()
    }

    fn route(
        method: &str,
        path: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        jobs: &Jobs,
    ) -> (u16, String) {
        let rest = path.strip_prefix("/api/v4/jobs/").unwrap_or_default();
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(id) = id.parse::<i64>() else {
            return (404, String::new());
        };
        let mut jobs = jobs.lock().expect("lock");
        let Some(job) = jobs.get_mut(&id) else {
            return (404, String::new());
        };
        match (method, tail) {
            ("PATCH", "trace") => {
                if headers.get("job-token") != Some(&job.token) {
                    return (403, String::new());
                }
                let start: Option<usize> = headers
                    .get("content-range")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.trim().parse().ok());
                match start {
                    None => (400, String::new()),
                    Some(s) if s != job.trace.len() => {
                        (416, format!("Range: 0-{}\r\n", job.trace.len()))
                    }
                    Some(_) => {
                        job.trace.extend_from_slice(body);
                        (202, format!("Range: 0-{}\r\n", job.trace.len()))
                    }
                }
            }
            ("PUT", "") => {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                if v["token"].as_str() != Some(job.token.as_str()) {
                    return (403, String::new());
                }
                match v["state"].as_str() {
                    Some(state) => {
                        job.state = Some(state.to_string());
                        (200, String::new())
                    }
                    None => (400, String::new()),
                }
            }
            _ => (404, String::new()),
        }
    }
}
