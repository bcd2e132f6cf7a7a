//! local-docker executor: runs each job on a local Docker engine instead of
//! a PAAS, for testing and development.
//!
//! A job's resource is a Docker image plus a container of the same name,
//! `hpd-job-<unique name lowercased>-<job id>`, built from the same deploy
//! context as clever-docker (Dockerfile, `runner.toml`, `job.json`):
//!
//! - `create` only names the resource: nothing exists on the engine yet, so
//!   the supervisor can record it before anything is built (write-ahead);
//! - `prepare` builds the image (`docker build`);
//! - `launch` starts the container detached (`docker run -d`) with the
//!   engine's socket mounted at `/var/run/docker.sock` (the inner runner's
//!   `docker` executor uses it) and `--network <network_mode>` when set.
//!   Unlike the reference, nothing waits for the job: the coordinator tells
//!   when it is over. A container already there (restart) is success;
//! - `decommission` removes the container and the image; either already
//!   gone is success;
//! - `recover_job` (reconciliation of a resource the state does not know)
//!   reads `/etc/gitlab-runner/job.json` back with `docker cp` into a
//!   temporary directory: from the job container if there is one, else from
//!   a container created (never started, `--pull never`) from the job image
//!   and removed at once. Neither there, or no job payload in the file:
//!   `Ok(None)`.
//!
//! The engine is reached through the `docker` CLI with `-H <host>`, run by
//! `tokio::process` (async: the arbiter never blocks; every call has a
//! timeout and the CLI is killed when it expires). Why the CLI and not
//! bollard: it adds no dependency (bollard brings hyper, hyper-util,
//! hyperlocal, http, tower-service, bollard-stubs… — a second HTTP stack
//! next to awc), the CLI is
//! what a developer of this executor has anyway, its error messages are the
//! engine's own, and the reference drove the same CLI. The price is a
//! process per call, irrelevant at one build and one run per job.
//!
//! The resource dumps to the state file as its image name, a bare JSON
//! string, like the reference's `LocalDockerApplication.dump()`.
//!
//! - `settings`: [`LocalDockerSettings`] (built by configuration
//!   validation) and [`socket_path`], the one check of the host URL;
//! - `error`: [`LocalDockerError`] and its port-level class;
//! - `names`: resource names and their checks;
//! - `engine`: the `docker` CLI calls;
//! - this file: [`LocalDocker`] and its `Paas` implementation.

mod engine;
mod error;
mod names;
pub mod settings;

pub use error::LocalDockerError;
pub use names::{check_name, resource_name};

use names::{is_job_name, job_id_of, name_prefix};
pub use settings::{socket_path, LocalDockerSettings, LocalDockerTimeouts, DEFAULT_DOCKER_HOST};

use paas_actors::ports::{Job, Paas, PaasError, PortFuture, Resource, Weight};
use std::path::PathBuf;

/// Weight of every local-docker job: there are no flavors.
pub const JOB_WEIGHT: Weight = 1.0;

/// Where the engine socket is mounted in the job container (the inner
/// runner's default Docker endpoint).
pub const INNER_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The local-docker executor of one `[[runners]]` section.
#[derive(Debug)]
pub struct LocalDocker {
    settings: LocalDockerSettings,
    socket: PathBuf,
    cli: PathBuf,
}

impl LocalDocker {
    /// Checks the settings (the host must be a Unix socket URL). Nothing is
    /// contacted yet.
    pub fn new(settings: LocalDockerSettings) -> Result<LocalDocker, LocalDockerError> {
        let socket = socket_path(&settings.host)?;
        Ok(LocalDocker {
            settings,
            socket,
            cli: PathBuf::from("docker"),
        })
    }

    /// Uses another `docker` CLI than the one in `PATH`.
    pub fn with_cli(mut self, cli: impl Into<PathBuf>) -> LocalDocker {
        self.cli = cli.into();
        self
    }

    /// The settings this executor runs with.
    pub fn settings(&self) -> &LocalDockerSettings {
        &self.settings
    }

    /// `hpd-job-<unique name lowercased>-`: what this runner's names start with.
    pub(super) fn prefix(&self) -> String {
        name_prefix(&self.settings.unique_name)
    }

    /// `hpd-job-<legacy identity lowercased>-`: what the names this runner
    /// gave before the `glrt-` rule start with, if it had another identity.
    pub(super) fn legacy_prefix(&self) -> Option<String> {
        let legacy = name_prefix(self.settings.legacy_unique_name.as_deref()?);
        (legacy != self.prefix()).then_some(legacy)
    }

    /// The resource of a name the engine lists: this runner's today (id and
    /// name alike), or one of its legacy identity (the engine's name stays
    /// its id, for every engine call; its name is today's name for the same
    /// job, so that reconciliation reads the job id). `None`: not this
    /// runner's.
    pub(super) fn listed(&self, engine_name: &str, launched: bool) -> Option<Resource> {
        if is_job_name(&self.prefix(), engine_name) {
            return Some(self.resource(engine_name.to_string(), launched));
        }
        let job_id = job_id_of(&self.legacy_prefix()?, engine_name)?;
        Some(Resource {
            name: resource_name(&self.settings.unique_name, job_id),
            ..self.resource(engine_name.to_string(), launched)
        })
    }

    pub(super) fn resource(&self, name: String, launched: bool) -> Resource {
        Resource {
            id: name.clone(),
            name,
            weight: JOB_WEIGHT,
            launched,
            detail: serde_json::Value::Null,
            credential: None,
        }
    }
}

impl Paas for LocalDocker {
    fn max_job_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>> {
        Box::pin(async { Ok(JOB_WEIGHT) })
    }

    fn expected_weight<'a>(&'a self, _job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>> {
        Box::pin(async { Ok(JOB_WEIGHT) })
    }

    fn resource_name(&self, job_id: i64) -> String {
        resource_name(&self.settings.unique_name, job_id)
    }

    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            // Nothing is made on the engine here: the image is built by
            // `prepare`, once the supervisor has recorded the name.
            let name = Paas::resource_name(self, job.id);
            check_name(&name).map_err(|e| e.into_paas("create"))?;
            Ok(self.resource(name, false))
        })
    }

    fn prepare<'a>(
        &'a self,
        resource: &'a Resource,
        job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            check_name(&resource.id).map_err(|e| e.into_paas("build"))?;
            self.build(&resource.id, job)
                .await
                .map_err(|e| e.into_paas("build"))?;
            Ok(resource.clone())
        })
    }

    fn launch<'a>(
        &'a self,
        resource: &'a Resource,
        _job: &'a Job,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            let name = &resource.id;
            check_name(name).map_err(|e| e.into_paas("run"))?;
            let state = self
                .container_state(name)
                .await
                .map_err(|e| e.into_paas("run"))?;
            match state.as_deref() {
                None => self.run(name).await,
                // `docker run` created it but could not start it (or we
                // were stopped in between): start it now.
                Some("created") => self.start(name).await,
                // Running or already over: launched before a restart.
                Some(_) => Ok(()),
            }
            .map_err(|e| e.into_paas("run"))?;
            let mut launched = resource.clone();
            launched.launched = true;
            Ok(launched)
        })
    }

    fn decommission<'a>(&'a self, resource: &'a Resource) -> PortFuture<'a, Result<(), PaasError>> {
        Box::pin(async move {
            check_name(&resource.id).map_err(|e| e.into_paas("delete"))?;
            self.remove(&resource.id)
                .await
                .map_err(|e| e.into_paas("delete"))
        })
    }

    fn list_resources(&self) -> PortFuture<'_, Result<Vec<Resource>, PaasError>> {
        Box::pin(async move {
            let (images, containers) = self.list().await.map_err(|e| e.into_paas("list"))?;
            let mut names: Vec<String> = images;
            for c in &containers {
                if !names.contains(c) {
                    names.push(c.clone());
                }
            }
            names.sort();
            Ok(names
                .into_iter()
                .filter_map(|n| {
                    let launched = containers.contains(&n);
                    self.listed(&n, launched)
                })
                .collect())
        })
    }

    fn recover_job<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> PortFuture<'a, Result<Option<Job>, PaasError>> {
        Box::pin(async move {
            check_name(&resource.id).map_err(|e| e.into_paas("recover-job"))?;
            let Some(bytes) = self
                .read_job_json(&resource.id)
                .await
                .map_err(|e| e.into_paas("recover-job"))?
            else {
                return Ok(None);
            };
            // A file that is not a job payload holds no job to ask about.
            Ok(serde_json::from_slice(&bytes)
                .ok()
                .and_then(|v| Job::from_payload(v).ok()))
        })
    }

    fn dump_resource(&self, resource: &Resource) -> serde_json::Value {
        serde_json::Value::String(resource.id.clone())
    }

    fn load_resource<'a>(
        &'a self,
        saved: &'a serde_json::Value,
    ) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            let name = saved.as_str().ok_or_else(|| {
                LocalDockerError::BadSavedResource {
                    found: saved.to_string().chars().take(100).collect(),
                }
                .into_paas("load")
            })?;
            check_name(name).map_err(|e| e.into_paas("load"))?;
            // Whether the container runs is the engine's to say: `launch`
            // checks it again, `decommission` does not care.
            Ok(self.resource(name.to_string(), false))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::names::is_job_name;
    use super::*;
    use paas_actors::ports::PaasErrorClass;
    use std::time::Duration;

    use super::settings::test_settings as settings;

    #[test]
    fn only_unix_socket_hosts_are_accepted() {
        let table: [(&str, Option<&str>); 7] = [
            ("unix:///var/run/docker.sock", Some("/var/run/docker.sock")),
            ("unix:///tmp/x/d.sock", Some("/tmp/x/d.sock")),
            ("tcp://127.0.0.1:2375", None),
            ("unix://relative.sock", None),
            ("unix://", None),
            ("/var/run/docker.sock", None),
            ("unix:///a\nb", None),
        ];
        for (host, expected) in table {
            match (socket_path(host), expected) {
                (Ok(p), Some(e)) => assert_eq!(p, PathBuf::from(e), "{host}"),
                (Err(LocalDockerError::UnsupportedHost { url }), None) => assert_eq!(url, host),
                (other, _) => panic!("{host}: unexpected {other:?}"),
            }
        }
        let err = LocalDocker::new(settings("tcp://x:1")).expect_err("tcp refused");
        assert!(err.to_string().contains("tcp://x:1"), "{err}");
    }

    #[tokio::test]
    async fn names_of_the_legacy_identity_are_listed_under_todays_name() {
        let mut s = settings("unix:///x.sock");
        s.unique_name = "abcdefghi".into();
        s.legacy_unique_name = Some("glrt-AbC".into());
        let exec = LocalDocker::new(s).expect("valid");
        assert_eq!(exec.legacy_prefix().as_deref(), Some("hpd-job-glrt-abc-"));
        // Today's name: id and name alike.
        let r = exec.listed("hpd-job-abcdefghi-7", true).expect("ours");
        assert_eq!(
            (r.id.as_str(), r.name.as_str()),
            ("hpd-job-abcdefghi-7", "hpd-job-abcdefghi-7")
        );
        assert!(r.launched);
        // Legacy name: the engine's name stays the id; the name is today's.
        let r = exec.listed("hpd-job-glrt-abc-12", false).expect("legacy");
        assert_eq!(r.id, "hpd-job-glrt-abc-12");
        assert_eq!(r.name, "hpd-job-abcdefghi-12");
        assert_eq!(r.name, exec.resource_name(12));
        // Neither: another runner's, or not a job name.
        for other in [
            "hpd-job-glrt-abc-def-12",
            "hpd-job-glrt-abc-",
            "hpd-job-glrt-ab-12",
            "hpd-job-glrt-abcd-12",
            "hpd-job-someone-12",
            "hpd-job-abcdefghi-x1",
        ] {
            assert_eq!(exec.listed(other, false), None, "{other}");
        }
        // A resource loaded from the state under the legacy name is operated
        // on under that name.
        let loaded = exec
            .load_resource(&serde_json::json!("hpd-job-glrt-abc-12"))
            .await
            .expect("loads");
        assert_eq!(loaded.id, "hpd-job-glrt-abc-12");
        // Without a legacy identity (or the same one), nothing more is ours.
        let mut s = settings("unix:///x.sock");
        s.legacy_unique_name = Some("runner-abc".into());
        let exec = LocalDocker::new(s).expect("valid");
        assert_eq!(exec.legacy_prefix(), None);
        assert_eq!(exec.listed("hpd-job-glrt-abc-12", false), None);
    }

    #[test]
    fn job_names_of_another_runner_are_not_ours() {
        let prefix = "hpd-job-abc-";
        assert!(is_job_name(prefix, "hpd-job-abc-12"));
        assert!(!is_job_name(prefix, "hpd-job-abc-def-12"));
        assert!(!is_job_name(prefix, "hpd-job-abc-"));
        assert!(!is_job_name(prefix, "hpd-job-ab-12"));
        let exec = LocalDocker::new(settings("unix:///x.sock")).expect("valid");
        assert_eq!(exec.prefix(), "hpd-job-runner-abc-");
    }

    #[tokio::test]
    async fn state_round_trip_is_the_image_name() {
        let exec = LocalDocker::new(settings("unix:///x.sock")).expect("valid");
        let job = Job::from_payload(serde_json::json!({"id": 7, "token": "t"})).expect("job");
        let created = exec.create(&job).await.expect("create does no I/O");
        assert_eq!(created.id, "hpd-job-runner-abc-7");
        assert_eq!(created.weight, JOB_WEIGHT);
        let dumped = exec.dump_resource(&created);
        assert_eq!(dumped, serde_json::json!("hpd-job-runner-abc-7"));
        let loaded = exec.load_resource(&dumped).await.expect("loads");
        assert_eq!(loaded, created);
        for bad in [
            serde_json::json!(12),
            serde_json::json!("--rm"),
            serde_json::json!({}),
        ] {
            let err = exec.load_resource(&bad).await.expect_err("refused");
            assert_eq!(err.class, PaasErrorClass::Permanent);
            assert_eq!(err.action, "load");
        }
    }

    /// A fake `docker` CLI: a shell script in a temporary directory.
    fn fake_cli(script: &str) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        (dir, path)
    }

    // On the actix runtime the actors use, not only on tokio's test one.
    #[actix_rt::test]
    async fn cli_failures_and_timeouts_are_typed_on_an_actix_arbiter() {
        let (_dir, failing) = fake_cli("echo \"Error response from daemon: boom\" >&2; exit 3");
        let exec = LocalDocker::new(settings("unix:///x.sock"))
            .expect("valid")
            .with_cli(&failing);
        let job = Job::from_payload(serde_json::json!({"id": 3, "token": "t"})).expect("job");
        let created = exec.create(&job).await.expect("create");
        let err = exec.launch(&created, &job).await.expect_err("fails");
        assert_eq!(err.action, "run");
        assert_eq!(err.class, PaasErrorClass::Permanent);
        assert!(err.message.contains("exit code 3"), "{}", err.message);
        assert!(err.message.contains("boom"), "{}", err.message);

        let (_dir2, slow) = fake_cli("exec sleep 30");
        let mut s = settings("unix:///x.sock");
        s.timeouts.command = Duration::from_millis(200);
        let exec = LocalDocker::new(s).expect("valid").with_cli(&slow);
        let started = std::time::Instant::now();
        let err = exec.list_resources().await.expect_err("times out");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.class, PaasErrorClass::Uncertain);
        assert!(err.message.contains("did not finish"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_missing_cli_is_a_typed_error() {
        let exec = LocalDocker::new(settings("unix:///x.sock"))
            .expect("valid")
            .with_cli("/nonexistent/docker");
        let resource = exec.resource("hpd-job-runner-abc-1".to_string(), false);
        let err = exec.decommission(&resource).await.expect_err("no CLI");
        assert_eq!(err.action, "delete");
        assert!(
            err.message.contains("/nonexistent/docker"),
            "{}",
            err.message
        );
    }
}
