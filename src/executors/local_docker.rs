//! local-docker executor: runs each job on a local Docker engine instead of
//! a PAAS, "for testing and development purposes" (issue 9).
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

use paas_actors::ports::{Job, Paas, PaasError, PaasErrorClass, PortFuture, Resource, Weight};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::deploy::{BuildContext, CONFIG_DIR};
use crate::git_fetch::MAX_JOB_FILE_BYTES;

/// Weight of every local-docker job: there are no flavors.
pub const JOB_WEIGHT: Weight = 1.0;

/// Where the engine socket is mounted in the job container (the inner
/// runner's default Docker endpoint).
pub const INNER_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Longest engine message kept in an error (the end is kept: that is where
/// `docker build` says what failed).
const MAX_MESSAGE_CHARS: usize = 2000;

/// Time limits of the `docker` CLI calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalDockerTimeouts {
    /// `docker build` of a job image.
    pub build: Duration,
    /// Every other call (run, rm, rmi, inspect, ls).
    pub command: Duration,
}

impl Default for LocalDockerTimeouts {
    fn default() -> Self {
        LocalDockerTimeouts {
            build: Duration::from_secs(600),
            command: Duration::from_secs(60),
        }
    }
}

/// Settings of one local-docker `[[runners]]` section, filled by the wiring
/// code from the validated configuration.
#[derive(Clone, PartialEq)]
pub struct LocalDockerSettings {
    /// Docker engine URL; only `unix:///path/to/socket` is supported.
    pub host: String,
    /// `--network` of the job container (e.g. `host` to reach a coordinator
    /// on the host's loopback); `None` leaves Docker's default.
    pub network_mode: Option<String>,
    /// The runner's unique name; lowercased in resource names.
    pub unique_name: String,
    /// Base image of the job image (`heptapod_runner_main_image`); `None`
    /// for the deploy context's default.
    pub main_image: Option<String>,
    /// The inner runner's `runner.toml`, already stripped of runner-only
    /// keys. It holds the runner token: never logged.
    pub inner_runner_toml: String,
    /// Time limits of engine calls.
    pub timeouts: LocalDockerTimeouts,
}

impl fmt::Debug for LocalDockerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDockerSettings")
            .field("host", &self.host)
            .field("network_mode", &self.network_mode)
            .field("unique_name", &self.unique_name)
            .field("main_image", &self.main_image)
            .field(
                "inner_runner_toml",
                &format_args!("<{} bytes>", self.inner_runner_toml.len()),
            )
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl LocalDockerSettings {
    /// The settings of a validated `local-docker` runner section, or `None`
    /// if `runner` uses another executor.
    pub fn from_runner_config(
        runner: &crate::config::RunnerConfig,
        timeouts: LocalDockerTimeouts,
    ) -> Option<LocalDockerSettings> {
        let local = runner.local_docker.as_ref()?;
        Some(LocalDockerSettings {
            host: local.host.clone(),
            network_mode: local.network_mode.clone(),
            unique_name: runner.unique_name.clone(),
            main_image: runner.main_image.clone(),
            inner_runner_toml: runner.inner_runner_toml(),
            timeouts,
        })
    }
}

/// A failure of the local-docker executor, with the engine's own message.
#[derive(Debug, thiserror::Error)]
pub enum LocalDockerError {
    /// The configured `host` is not a Unix socket URL.
    #[error(
        "Docker host {url:?} is not supported: only Unix socket URLs \
         (unix:///path/to/docker.sock) are"
    )]
    UnsupportedHost {
        /// The configured value.
        url: String,
    },
    /// A resource name Docker would not accept, or would read as an option.
    #[error("invalid Docker image/container name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The deploy context could not be made from the job.
    #[error("cannot make the build context of job {job_id}: {message}")]
    Deploy {
        /// The job.
        job_id: i64,
        /// The deploy module's explanation.
        message: String,
    },
    /// The build context could not be written to a temporary directory.
    #[error("cannot write the build context of job {job_id}: {source}")]
    Context {
        /// The job.
        job_id: i64,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `docker` CLI could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The CLI path.
        program: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A CLI call did not finish in time (it was killed; what it asked the
    /// engine may still happen).
    #[error("`docker {command}` did not finish within {timeout:?}")]
    Timeout {
        /// The subcommand (`build`, `run`, …).
        command: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The engine (or the CLI) reported a failure.
    #[error("`docker {command}` failed ({status}): {message}")]
    Engine {
        /// The subcommand (`build`, `run`, …).
        command: &'static str,
        /// Exit status of the CLI, as text.
        status: String,
        /// The CLI's standard error (the engine's message), bounded.
        message: String,
    },
    /// The job payload copied out of a container could not be read.
    #[error("cannot read the job payload copied from container {container}: {source}")]
    Recover {
        /// The container (job container or a temporary one).
        container: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file holds something that is not a local-docker resource.
    #[error("saved local-docker resource is not an image name string: {found}")]
    BadSavedResource {
        /// An excerpt of what was found.
        found: String,
    },
}

impl LocalDockerError {
    /// True when the engine could not be reached at all: worth retrying.
    fn is_unreachable(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => {
                message.contains("Cannot connect to the Docker daemon")
                    || message.contains("Is the docker daemon running")
            }
            _ => false,
        }
    }

    /// True for the engine's "No such image/container" answers.
    fn is_not_found(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => {
                message.to_ascii_lowercase().contains("no such ")
            }
            _ => false,
        }
    }

    /// True for `docker cp`'s "Could not find the file … in container".
    fn is_missing_file(&self) -> bool {
        match self {
            LocalDockerError::Engine { message, .. } => message
                .to_ascii_lowercase()
                .contains("could not find the file"),
            _ => false,
        }
    }

    /// The port-level error for `action`.
    pub fn into_paas(self, action: &str) -> PaasError {
        let class = match &self {
            LocalDockerError::Timeout { .. } => PaasErrorClass::Uncertain,
            _ if self.is_unreachable() => PaasErrorClass::Transient,
            _ => PaasErrorClass::Permanent,
        };
        PaasError {
            action: action.to_string(),
            message: self.to_string(),
            class,
        }
    }
}

/// Checks that `host` is `unix://<absolute path>` and returns the path.
pub fn socket_path(host: &str) -> Result<PathBuf, LocalDockerError> {
    let bad = || LocalDockerError::UnsupportedHost {
        url: host.to_string(),
    };
    let path = host.strip_prefix("unix://").ok_or_else(bad)?;
    if !path.starts_with('/') || path.chars().any(|c| c.is_control()) {
        return Err(bad());
    }
    Ok(PathBuf::from(path))
}

/// The deterministic resource (image, container) name of a job.
pub fn resource_name(unique_name: &str, job_id: i64) -> String {
    format!("hpd-job-{}-{}", unique_name.to_lowercase(), job_id)
}

/// Checks that `name` is safe to give the CLI as an image and container
/// name: Docker's lowercase repository charset, not option-like.
pub fn check_name(name: &str) -> Result<(), LocalDockerError> {
    let bad = |reason| LocalDockerError::InvalidName {
        name: name.chars().take(200).collect(),
        reason,
    };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("must have 1 to 128 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(bad("only a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("must start with a letter or a digit"));
    }
    Ok(())
}

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
    fn prefix(&self) -> String {
        format!("hpd-job-{}-", self.settings.unique_name.to_lowercase())
    }

    fn resource(&self, name: String, launched: bool) -> Resource {
        Resource {
            id: name.clone(),
            name,
            weight: JOB_WEIGHT,
            launched,
            detail: serde_json::Value::Null,
        }
    }

    /// Runs `docker -H <host> <args>` and returns its standard output.
    async fn docker(
        &self,
        command: &'static str,
        args: Vec<OsString>,
        timeout: Duration,
    ) -> Result<String, LocalDockerError> {
        let mut cmd = tokio::process::Command::new(&self.cli);
        cmd.arg("-H")
            .arg(&self.settings.host)
            .args(&args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CLI_HINTS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| LocalDockerError::Spawn {
            program: self.cli.clone(),
            source,
        })?;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(result) => result.map_err(|source| LocalDockerError::Spawn {
                program: self.cli.clone(),
                source,
            })?,
            // Dropping the future drops the child: kill_on_drop kills it.
            Err(_) => return Err(LocalDockerError::Timeout { command, timeout }),
        };
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let status = match output.status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            };
            Err(LocalDockerError::Engine {
                command,
                status,
                message: bounded_tail(&String::from_utf8_lossy(&output.stderr)),
            })
        }
    }

    /// Builds the job image `name` from the job's deploy context.
    async fn build(&self, name: &str, job: &Job) -> Result<(), LocalDockerError> {
        let (context, _) = BuildContext::build_off_thread(
            self.settings.main_image.clone(),
            self.settings.inner_runner_toml.clone(),
            job.clone(),
        )
        .await
        .map_err(|e| LocalDockerError::Deploy {
            job_id: job.id,
            message: e.to_string(),
        })?;
        let job_id = job.id;
        // Temporary directory creation and file writes are blocking I/O.
        let dir = tokio::task::spawn_blocking(move || -> std::io::Result<tempfile::TempDir> {
            let dir = tempfile::Builder::new().prefix("hpr-build-").tempdir()?;
            context.write_to(dir.path())?;
            Ok(dir)
        })
        .await
        .map_err(|e| LocalDockerError::Context {
            job_id,
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| LocalDockerError::Context { job_id, source })?;

        // No layer cache: the COPY layers of two jobs are identical, and a
        // job's decommission (`rmi -f`, which prunes untagged parents) would
        // pull a shared cached layer from under a build in progress
        // ("unknown parent image ID"). Each job gets its own layers.
        let args = vec![
            "build".into(),
            "--quiet".into(),
            "--no-cache".into(),
            "--tag".into(),
            name.into(),
            "--".into(),
            dir.path().into(),
        ];
        let result = self
            .docker("build", args, self.settings.timeouts.build)
            .await;
        // Removing the directory is blocking too; its failure is harmless.
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        result.map(|_| ())
    }

    /// The state of container `name` (`created`, `running`, `exited`…),
    /// `None` if there is no such container.
    async fn container_state(&self, name: &str) -> Result<Option<String>, LocalDockerError> {
        let args = vec![
            "container".into(),
            "inspect".into(),
            "--format".into(),
            "{{.State.Status}}".into(),
            "--".into(),
            name.into(),
        ];
        match self
            .docker("inspect", args, self.settings.timeouts.command)
            .await
        {
            Ok(out) => Ok(Some(out.trim().to_string())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Starts the existing container `name`.
    async fn start(&self, name: &str) -> Result<(), LocalDockerError> {
        let args = vec!["container".into(), "start".into(), "--".into(), name.into()];
        self.docker("start", args, self.settings.timeouts.command)
            .await
            .map(|_| ())
    }

    /// Starts the job container, detached.
    async fn run(&self, name: &str) -> Result<(), LocalDockerError> {
        let mut mount = OsString::from(self.socket.as_os_str());
        mount.push(":");
        mount.push(INNER_DOCKER_SOCKET);
        let mut args: Vec<OsString> = vec![
            "run".into(),
            "--detach".into(),
            "--name".into(),
            name.into(),
            "--volume".into(),
            mount,
        ];
        if let Some(network) = &self.settings.network_mode {
            args.push("--network".into());
            args.push(network.into());
        }
        args.push("--".into());
        args.push(name.into());
        self.docker("run", args, self.settings.timeouts.command)
            .await
            .map(|_| ())
    }

    /// Removes container and image `name`; either already gone is fine.
    async fn remove(&self, name: &str) -> Result<(), LocalDockerError> {
        let timeout = self.settings.timeouts.command;
        let rm = vec![
            "container".into(),
            "rm".into(),
            "--force".into(),
            "--".into(),
            name.into(),
        ];
        match self.docker("rm", rm, timeout).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let rmi = vec![
            "image".into(),
            "rm".into(),
            "--force".into(),
            "--".into(),
            name.into(),
        ];
        match self.docker("rmi", rmi, timeout).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The job payload in resource `name` (its container, else its image),
    /// `None` when neither holds one.
    async fn read_job_json(&self, name: &str) -> Result<Option<Vec<u8>>, LocalDockerError> {
        if self.container_state(name).await?.is_some() {
            match self.copy_job_json(name).await {
                // Removed meanwhile: the image may still be there.
                Err(e) if e.is_not_found() => {}
                other => return other,
            }
        }
        self.read_job_json_from_image(name).await
    }

    /// Reads the payload from image `name` through a container created
    /// (never started) from it and removed right after.
    async fn read_job_json_from_image(
        &self,
        name: &str,
    ) -> Result<Option<Vec<u8>>, LocalDockerError> {
        let timeout = self.settings.timeouts.command;
        let create = vec![
            "container".into(),
            "create".into(),
            "--pull".into(),
            "never".into(),
            "--label".into(),
            "heptapod-paas-runner.recover=true".into(),
            "--".into(),
            name.into(),
        ];
        let id = match self.docker("create", create, timeout).await {
            Ok(out) => out.trim().to_string(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(LocalDockerError::Engine {
                command: "create",
                status: "exit code 0".into(),
                message: format!("unexpected container id {:?}", bounded_tail(&id)),
            });
        }
        let result = self.copy_job_json(&id).await;
        let rm = vec![
            "container".into(),
            "rm".into(),
            "--force".into(),
            "--".into(),
            id.clone().into(),
        ];
        // A leftover never-started container costs nothing but disk; the
        // read result matters more than its removal.
        let _ = self.docker("rm", rm, timeout).await;
        result
    }

    /// `docker cp CONTAINER:/etc/gitlab-runner/job.json` into a temporary
    /// directory, then reads it (bounded).
    async fn copy_job_json(&self, container: &str) -> Result<Option<Vec<u8>>, LocalDockerError> {
        let io_error = |e: std::io::Error| LocalDockerError::Recover {
            container: container.to_string(),
            source: e,
        };
        let dir = tokio::task::spawn_blocking(|| {
            tempfile::Builder::new().prefix("hpr-recover-").tempdir()
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
        .map_err(io_error)?;
        let target = dir.path().join("job.json");
        let mut source = OsString::from(container);
        source.push(format!(":{CONFIG_DIR}/job.json"));
        let args = vec![
            "cp".into(),
            "--".into(),
            source,
            target.clone().into_os_string(),
        ];
        let copied = self
            .docker("cp", args, self.settings.timeouts.command)
            .await;
        let result = match copied {
            Ok(_) => read_bounded(&target).await.map_err(io_error),
            Err(e) if e.is_missing_file() => Ok(None),
            Err(e) => Err(e),
        };
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        result
    }

    /// Names of this runner's images and of its containers.
    async fn list(&self) -> Result<(Vec<String>, Vec<String>), LocalDockerError> {
        let prefix = self.prefix();
        let timeout = self.settings.timeouts.command;
        let images = self
            .docker(
                "images",
                vec![
                    "image".into(),
                    "ls".into(),
                    "--filter".into(),
                    format!("reference={prefix}*").into(),
                    "--format".into(),
                    "{{.Repository}}".into(),
                ],
                timeout,
            )
            .await?;
        let containers = self
            .docker(
                "ps",
                vec![
                    "container".into(),
                    "ls".into(),
                    "--all".into(),
                    "--filter".into(),
                    format!("name=^{prefix}").into(),
                    "--format".into(),
                    "{{.Names}}".into(),
                ],
                timeout,
            )
            .await?;
        let ours = |out: &str| -> Vec<String> {
            out.lines()
                .map(str::trim)
                .filter(|n| is_job_name(&prefix, n))
                .map(str::to_string)
                .collect()
        };
        Ok((ours(&images), ours(&containers)))
    }
}

/// True if `name` is `<prefix><job id>`: another runner's unique name may
/// extend ours (`hpd-job-abc-` is a prefix of `hpd-job-abc-def-12`).
fn is_job_name(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
}

/// The content of the file at `path` if it is at most
/// [`MAX_JOB_FILE_BYTES`] long (in the blocking pool).
async fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&path)?.len();
        if len > MAX_JOB_FILE_BYTES as u64 {
            return Err(std::io::Error::other(format!(
                "job.json is {len} bytes, more than the {MAX_JOB_FILE_BYTES} a job payload may have"
            )));
        }
        std::fs::read(&path).map(Some)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// The last [`MAX_MESSAGE_CHARS`] characters of a CLI message, trimmed.
fn bounded_tail(text: &str) -> String {
    let text = text.trim();
    let count = text.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let tail: String = text.chars().skip(count - MAX_MESSAGE_CHARS).collect();
    format!("…{tail}")
}

impl Paas for LocalDocker {
    fn min_requestable_weight(&self) -> PortFuture<'_, Result<Weight, PaasError>> {
        Box::pin(async { Ok(JOB_WEIGHT) })
    }

    fn expected_weight<'a>(&'a self, _job: &'a Job) -> PortFuture<'a, Result<Weight, PaasError>> {
        Box::pin(async { Ok(JOB_WEIGHT) })
    }

    fn resource_name(&self, job: &Job) -> String {
        resource_name(&self.settings.unique_name, job.id)
    }

    fn create<'a>(&'a self, job: &'a Job) -> PortFuture<'a, Result<Resource, PaasError>> {
        Box::pin(async move {
            // Nothing is made on the engine here: the image is built by
            // `prepare`, once the supervisor has recorded the name.
            let name = Paas::resource_name(self, job);
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
                .map(|n| {
                    let launched = containers.contains(&n);
                    self.resource(n, launched)
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
    use super::*;

    fn settings(host: &str) -> LocalDockerSettings {
        LocalDockerSettings {
            host: host.to_string(),
            network_mode: None,
            unique_name: "Runner-ABC".to_string(),
            main_image: None,
            inner_runner_toml: "[[runners]]\ntoken = \"glrt-secret\"\n".to_string(),
            timeouts: LocalDockerTimeouts::default(),
        }
    }

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

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(resource_name("Runner-ABC", 42), "hpd-job-runner-abc-42");
        assert!(check_name("hpd-job-runner-abc-42").is_ok());
        for bad in ["", "-rm", "Upper", "a b", "a/b", "a:b", &"a".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
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

    #[test]
    fn engine_messages_are_classified() {
        let engine = |message: &str| LocalDockerError::Engine {
            command: "rmi",
            status: "exit code 1".to_string(),
            message: message.to_string(),
        };
        assert!(engine("Error response from daemon: No such image: x:latest").is_not_found());
        assert!(engine("Error: No such container: x").is_not_found());
        assert!(!engine("conflict: unable to remove").is_not_found());
        let unreachable = engine(
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
        );
        assert_eq!(
            unreachable.into_paas("run").class,
            PaasErrorClass::Transient
        );
        let e = engine("conflict").into_paas("delete");
        assert_eq!(e.class, PaasErrorClass::Permanent);
        assert_eq!(e.action, "delete");
        assert!(e.message.contains("conflict"), "{}", e.message);
        let timeout = LocalDockerError::Timeout {
            command: "run",
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.into_paas("run").class, PaasErrorClass::Uncertain);
    }

    #[test]
    fn long_messages_keep_their_end() {
        let long = format!("{}THE END", "é".repeat(5000));
        let kept = bounded_tail(&long);
        assert!(kept.ends_with("THE END"));
        assert_eq!(kept.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn settings_from_a_local_docker_section() {
        let text = "concurrent = 2\n[quota_computation]\nreference_runner = \"l\"\n\
                    reference_flavor = \"M\"\nreference_jobs_count = 4\n[[runners]]\nname = \"l\"\nurl = \"https://g.example\"\n\
                    token = \"GLRT-ABCDEF\"\nexecutor = \"local-docker\"\n\
                    host = \"unix:///run/d.sock\"\nlocal_docker_network_mode = \"host\"\n\
                    heptapod_runner_main_image = \"base:1\"\n";
        let loaded = crate::config::parse_str(text, std::path::Path::new("/etc/x.toml"))
            .expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let s = LocalDockerSettings::from_runner_config(runner, LocalDockerTimeouts::default())
            .expect("local-docker section");
        assert_eq!(s.host, "unix:///run/d.sock");
        assert_eq!(s.network_mode.as_deref(), Some("host"));
        assert_eq!(s.main_image.as_deref(), Some("base:1"));
        assert_eq!(resource_name(&s.unique_name, 5), "hpd-job-glrt-abc-5");
        for key in [
            "host",
            "local_docker_network_mode",
            "heptapod_runner_main_image",
        ] {
            assert!(!s.inner_runner_toml.contains(key), "{key} leaked");
        }
        assert!(s.inner_runner_toml.contains("executor = \"docker\""));
    }

    #[test]
    fn debug_hides_the_inner_runner_toml() {
        let shown = format!("{:?}", settings("unix:///x.sock"));
        assert!(!shown.contains("glrt-secret"), "{shown}");
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
