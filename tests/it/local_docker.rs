//! The local-docker executor against a real Docker engine.
//!
//! Needs an engine socket in `HPR_TEST_DOCKER_HOST` (`unix://…`, see
//! `scripts/dockerd-start`); without it every test here prints why it is
//! skipped and passes. The job images are built from a `FROM scratch` base
//! holding the static `sim-inner-runner` (`tests/it/support/docker.rs`). The
//! job container reaches paas-sim's fake coordinator on 127.0.0.1 through
//! host networking (`network_mode = "host"`); the jobs are enqueued there
//! and handed to the executor as if a runner had polled them.
//!
//! Every image and container made here is removed at the end, even when a
//! test fails (a drop guard), and the tests check that the executor's own
//! `decommission` left nothing behind. The whole service (the real binary)
//! with this executor is tested in `tests/it/local_docker_e2e.rs`.

use crate::support;

use heptapod_paas_runner::executors::local_docker::{
    LocalDocker, LocalDockerSettings, LocalDockerTimeouts,
};
use paas_actors::ports::{Job, Paas, PaasErrorClass};
use paas_sim::coordinator::{
    CoordinatorConfig, CoordinatorControl, FakeCoordinator, JobSpec, JobState, Outcome,
};
use std::process::Command;
use std::time::{Duration, Instant};
use support::docker::{
    build_base_image, container_exists, docker, docker_host, image_exists, Cleanup,
};

fn settings(
    host: &str,
    unique_name: &str,
    main_image: Option<&str>,
    coordinator_url: &str,
) -> LocalDockerSettings {
    LocalDockerSettings {
        host: host.to_string(),
        network_mode: Some("host".to_string()),
        unique_name: unique_name.to_string(),
        legacy_unique_name: None,
        main_image: main_image.map(str::to_string),
        inner_runner_toml: format!(
            "[[runners]]\nname = \"inner\"\nurl = \"{coordinator_url}\"\n\
             token = \"glrt-inner\"\nexecutor = \"docker\"\n"
        ),
        timeouts: LocalDockerTimeouts {
            build: Duration::from_secs(120),
            command: Duration::from_secs(60),
        },
    }
}

/// Enqueues a job at the coordinator and marks it running, as if this
/// runner had polled it; returns the payload it would have received.
fn running_job(coordinator: &CoordinatorControl, spec: JobSpec) -> Job {
    let id = coordinator.enqueue_job(spec);
    assert!(coordinator.set_job_status(id, JobState::Running));
    let payload = coordinator.job(id).expect("enqueued job").payload;
    Job::from_payload(payload).expect("valid job")
}

/// A job that never reaches the coordinator (the engine-only tests).
fn offline_job(id: i64) -> Job {
    Job::from_payload(serde_json::json!({
        "id": id,
        "token": format!("job-token-{id}"),
        "job_info": {"project_id": 1},
        "variables": [],
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
    let coordinator = FakeCoordinator::start(CoordinatorConfig::default()).expect("coordinator");
    let base = format!("hpr-test-inner-runner-{}", std::process::id());
    let unique_name = unique("run");
    let exec = LocalDocker::new(settings(
        &host,
        &unique_name,
        Some(&base),
        &coordinator.url(),
    ))
    .expect("valid settings");
    let ok_job = running_job(
        &coordinator,
        JobSpec::new("ok").duration(Duration::from_millis(300)),
    );
    let failing_job = running_job(
        &coordinator,
        JobSpec::new("failing")
            .duration(Duration::ZERO)
            .outcome(Outcome::Failed),
    );
    // Its container gets created, but not started, behind our back (as if
    // the runner stopped between the two halves of `docker run`).
    let half_run_job = running_job(
        &coordinator,
        JobSpec::new("half-run").duration(Duration::ZERO),
    );
    let ids = [ok_job.id, failing_job.id, half_run_job.id];
    let names = [
        exec.resource_name(ok_job.id),
        exec.resource_name(failing_job.id),
        exec.resource_name(half_run_job.id),
    ];
    let _cleanup = Cleanup {
        host: host.clone(),
        names: names.iter().cloned().chain([base.clone()]).collect(),
        prefixes: Vec::new(),
    };
    build_base_image(&host, &base);
    // The PAAS runner already wrote to the first job's trace: the inner
    // runner must append after it (416 + Range).
    assert_eq!(
        coordinator.write_trace(ok_job.id, b"launch notice\n"),
        Some(14)
    );

    let mut launched = Vec::new();
    for j in [&ok_job, &failing_job, &half_run_job] {
        let created = exec.create(j).await.expect("create");
        assert_eq!(created.name, exec.resource_name(j.id));
        assert!(
            !image_exists(&host, &created.id),
            "create must not make anything on the engine"
        );
        let prepared = exec.prepare(&created, j).await.expect("build");
        assert!(image_exists(&host, &prepared.id));
        if j.id == half_run_job.id {
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

    // Wait (bounded in count and time) for every final state.
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..1200 {
        if ids.iter().all(|id| {
            coordinator
                .job_status(*id)
                .is_some_and(JobState::is_terminal)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not report in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let statuses: Vec<_> = ids.iter().map(|id| coordinator.job_status(*id)).collect();
    assert_eq!(
        statuses,
        [
            Some(JobState::Success),
            Some(JobState::Failed),
            Some(JobState::Success)
        ]
    );
    assert_eq!(
        coordinator.job_failure_reason(failing_job.id).as_deref(),
        Some("script_failure")
    );
    let trace = coordinator.job_trace(ok_job.id).expect("known job");
    let trace = String::from_utf8_lossy(&trace);
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
async fn jobs_are_read_back_from_the_container_or_the_image() {
    let Some(host) = docker_host("jobs_are_read_back_from_the_container_or_the_image") else {
        return;
    };
    let coordinator = FakeCoordinator::start(CoordinatorConfig::default()).expect("coordinator");
    let base = format!("hpr-test-recover-base-{}", std::process::id());
    let exec = LocalDocker::new(settings(
        &host,
        &unique("recover"),
        Some(&base),
        &coordinator.url(),
    ))
    .expect("valid settings");
    // Runs long enough to be read back while running.
    let running = running_job(
        &coordinator,
        JobSpec::new("long").duration(Duration::from_secs(20)),
    );
    // Built, never run (the runner stopped between prepare and launch).
    let built = offline_job(31);
    // Named, nothing on the engine.
    let nothing = offline_job(32);
    let names: Vec<String> = [&running, &built, &nothing]
        .iter()
        .map(|j| exec.resource_name(j.id))
        .collect();
    let _cleanup = Cleanup {
        host: host.clone(),
        names: names.iter().cloned().chain([base.clone()]).collect(),
        prefixes: Vec::new(),
    };
    build_base_image(&host, &base);
    let launched = {
        let r = exec.create(&running).await.expect("create");
        let r = exec.prepare(&r, &running).await.expect("build");
        exec.launch(&r, &running).await.expect("run")
    };
    let prepared = {
        let r = exec.create(&built).await.expect("create");
        exec.prepare(&r, &built).await.expect("build")
    };
    let absent = exec.create(&nothing).await.expect("create");

    // A restart without state sees them through the listing.
    let listed = exec.list_resources().await.expect("list");
    let of = |name: &str| {
        listed
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let state = docker(
        &host,
        &[
            "container",
            "inspect",
            "--format",
            "{{.State.Status}}",
            &launched.id,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");
    let from_container = exec
        .recover_job(&of(&launched.id))
        .await
        .expect("recover")
        .expect("job in the container");
    assert_eq!(from_container, running, "token included");
    let from_image = exec
        .recover_job(&of(&prepared.id))
        .await
        .expect("recover")
        .expect("job in the image");
    assert_eq!(from_image, built);
    assert_eq!(exec.recover_job(&absent).await.expect("recover"), None);
    // The temporary container made to read the image is gone.
    let leftovers = docker(
        &host,
        &[
            "container",
            "ls",
            "--all",
            "--quiet",
            "--filter",
            "label=heptapod-paas-runner.recover",
        ],
    );
    assert!(leftovers.status.success());
    assert_eq!(String::from_utf8_lossy(&leftovers.stdout).trim(), "");

    for r in [&launched, &prepared, &absent] {
        exec.decommission(r).await.expect("decommission");
    }
    for name in &names {
        assert!(!image_exists(&host, name), "image {name} left behind");
        assert!(
            !container_exists(&host, name),
            "container {name} left behind"
        );
    }
}

/// Images and containers an earlier version named with the runner's
/// legacy identity (`glrt-` + 3 characters, before GitLab Runner's
/// `shorten_token` rule) are still this runner's after the upgrade: listed
/// (under today's name for the same job, so that reconciliation reads the
/// job id, with the engine's name as id), read back, resumed from the state
/// file and deleted under the name the engine has.
#[tokio::test]
async fn resources_of_the_legacy_identity_are_still_this_runners() {
    let Some(host) = docker_host("resources_of_the_legacy_identity_are_still_this_runners") else {
        return;
    };
    let coordinator = FakeCoordinator::start(CoordinatorConfig::default()).expect("coordinator");
    let base = format!("hpr-test-legacy-base-{}", std::process::id());
    let legacy = format!("glrt-{}", std::process::id());
    let today = unique("legacy");
    let old = LocalDocker::new(settings(&host, &legacy, Some(&base), &coordinator.url()))
        .expect("valid settings");
    let mut upgraded = settings(&host, &today, Some(&base), &coordinator.url());
    upgraded.legacy_unique_name = Some(legacy.clone());
    let new = LocalDocker::new(upgraded).expect("valid settings");
    let legacy_prefix = format!("hpd-job-{}-", legacy.to_lowercase());
    let today_prefix = format!("hpd-job-{}-", today.to_lowercase());
    let _cleanup = Cleanup {
        host: host.clone(),
        names: vec![base.clone()],
        prefixes: vec![legacy_prefix.clone(), today_prefix.clone()],
    };
    build_base_image(&host, &base);

    // Before the upgrade: one job launched, one built and not run yet.
    let running = running_job(
        &coordinator,
        JobSpec::new("long").duration(Duration::from_secs(20)),
    );
    let built = offline_job(41);
    let launched_old = {
        let r = old.create(&running).await.expect("create");
        let r = old.prepare(&r, &running).await.expect("build");
        old.launch(&r, &running).await.expect("run")
    };
    let prepared_old = {
        let r = old.create(&built).await.expect("create");
        old.prepare(&r, &built).await.expect("build")
    };
    assert!(launched_old.id.starts_with(&legacy_prefix));

    // After: both listed, under the engine's name (id) and today's name.
    let listed = new.list_resources().await.expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (job, was, launched) in [
        (&running, &launched_old, true),
        (&built, &prepared_old, false),
    ] {
        let r = listed
            .iter()
            .find(|r| r.id == was.id)
            .unwrap_or_else(|| panic!("{} not listed: {listed:?}", was.id));
        assert_eq!(r.name, new.resource_name(job.id));
        assert!(r.name.starts_with(&today_prefix));
        assert_eq!(r.launched, launched, "{r:?}");
    }
    // Reconciliation reads the job back from it.
    let listed_running = listed
        .iter()
        .find(|r| r.id == launched_old.id)
        .expect("listed");
    let recovered = new
        .recover_job(listed_running)
        .await
        .expect("recover")
        .expect("job in the container");
    assert_eq!(recovered, running);

    // Resumed from the state file (which saved the engine's name): the
    // launched one is found running, the built one is started under its
    // own name; nothing is made under today's name.
    let loaded = new
        .load_resource(&old.dump_resource(&launched_old))
        .await
        .expect("load");
    new.launch(&loaded, &running)
        .await
        .expect("resume launched");
    let loaded_built = new
        .load_resource(&old.dump_resource(&prepared_old))
        .await
        .expect("load");
    new.launch(&loaded_built, &built)
        .await
        .expect("resume built");
    assert!(container_exists(&host, &prepared_old.id));
    assert_eq!(
        support::docker::containers_with_prefix(&host, &today_prefix),
        Vec::<String>::new()
    );
    assert_eq!(
        support::docker::containers_with_prefix(&host, &legacy_prefix).len(),
        2
    );

    // Deleted under the engine's names.
    new.decommission(&loaded).await.expect("decommission");
    new.decommission(&loaded_built).await.expect("decommission");
    for name in [&launched_old.id, &prepared_old.id] {
        assert!(!image_exists(&host, name), "image {name} left behind");
        assert!(
            !container_exists(&host, name),
            "container {name} left behind"
        );
    }
    assert!(new.list_resources().await.expect("list").is_empty());
}

#[tokio::test]
async fn decommission_before_build_is_success() {
    let Some(host) = docker_host("decommission_before_build_is_success") else {
        return;
    };
    let exec = LocalDocker::new(settings(
        &host,
        &unique("never"),
        None,
        "http://127.0.0.1:1/",
    ))
    .expect("valid");
    let j = offline_job(7);
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
        "http://127.0.0.1:1/",
    ))
    .expect("valid");
    let j = offline_job(8);
    let _cleanup = Cleanup {
        host: host.clone(),
        names: vec![exec.resource_name(j.id)],
        prefixes: Vec::new(),
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
    let exec = LocalDocker::new(settings(
        &host,
        &unique("nohost"),
        None,
        "http://127.0.0.1:1/",
    ))
    .expect("valid");
    let j = offline_job(9);
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
