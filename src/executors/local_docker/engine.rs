//! The `docker` CLI calls of the executor: one process per call, each
//! bounded by a timeout (the CLI is killed when it expires).

use paas_actors::ports::Job;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::error::{bounded_tail, LocalDockerError};
use super::names::is_job_name;
use super::{LocalDocker, INNER_DOCKER_SOCKET};
use crate::deploy::{BuildContext, CONFIG_DIR};
use crate::git::MAX_JOB_FILE_BYTES;

impl LocalDocker {
    /// Runs `docker -H <host> <args>` and returns its standard output.
    pub(super) async fn docker(
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
    pub(super) async fn build(&self, name: &str, job: &Job) -> Result<(), LocalDockerError> {
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
    pub(super) async fn container_state(
        &self,
        name: &str,
    ) -> Result<Option<String>, LocalDockerError> {
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
    pub(super) async fn start(&self, name: &str) -> Result<(), LocalDockerError> {
        let args = vec!["container".into(), "start".into(), "--".into(), name.into()];
        self.docker("start", args, self.settings.timeouts.command)
            .await
            .map(|_| ())
    }

    /// Starts the job container, detached.
    pub(super) async fn run(&self, name: &str) -> Result<(), LocalDockerError> {
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
    pub(super) async fn remove(&self, name: &str) -> Result<(), LocalDockerError> {
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
    pub(super) async fn read_job_json(
        &self,
        name: &str,
    ) -> Result<Option<Vec<u8>>, LocalDockerError> {
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
    pub(super) async fn read_job_json_from_image(
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
    pub(super) async fn copy_job_json(
        &self,
        container: &str,
    ) -> Result<Option<Vec<u8>>, LocalDockerError> {
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

    /// Names of this runner's images and of its containers, under today's
    /// identity and the legacy one (names as the engine has them).
    pub(super) async fn list(&self) -> Result<(Vec<String>, Vec<String>), LocalDockerError> {
        let (mut images, mut containers) = self.list_prefixed(&self.prefix()).await?;
        if let Some(legacy) = self.legacy_prefix() {
            let (i, c) = self.list_prefixed(&legacy).await?;
            images.extend(i);
            containers.extend(c);
        }
        Ok((images, containers))
    }

    /// Names of the images and of the containers named `<prefix><job id>`.
    async fn list_prefixed(
        &self,
        prefix: &str,
    ) -> Result<(Vec<String>, Vec<String>), LocalDockerError> {
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
                .filter(|n| is_job_name(prefix, n))
                .map(str::to_string)
                .collect()
        };
        Ok((ours(&images), ours(&containers)))
    }
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
