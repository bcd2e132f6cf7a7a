//! The start-up checks that need no network, in one function that `run`
//! calls before its first network call and `check` calls after validating
//! the file: what `check` accepts, `run` accepts up to its first network
//! call, and the other way round.
//!
//! In order:
//! 1. `state_file` is set;
//! 2. the lock (`<state_file>.lock`): `run` takes it and holds it for the
//!    life of the process (a missing or read-only directory is named here,
//!    exit 2); `check` never creates the lock file (run as root, it would
//!    leave a file the service user cannot open) and only asks whether a
//!    service holds it: a running service is a warning for `check`, as
//!    checking the file of a running service is what an operator does
//!    before `systemctl reload`; for `run` it is an error (exit 1);
//! 3. the state file's directory is writable (a probe file, removed);
//! 4. the state file, if any, parses: unreadable or corrupt is exit code 3,
//!    before anything else happens (`StateError`, naming what is wrong and
//!    where);
//! 5. the runner system id beside it, if any, can be read;
//! 6. `listen_address` (or `--listen-address`) resolves and binds (the
//!    sockets are closed at once: the service binds again); `check` skips
//!    the bind while a running service holds the lock, which listens
//!    there;
//! 7. each runner section's `tls-ca-file` holds PEM certificates;
//! 8. each local-docker section: its engine socket exists and the `docker`
//!    command line is on `PATH`.
//!
//! Permissions are those of the user who runs it: run `check` as the
//! service user (`sudo -u heptapod-runner heptapod-paas-runner check …`) for
//! them to mean what they mean for the service.

use crate::config::keys::TLS_CA_FILE;
use crate::config::{runner_key, Config};
use crate::gitlab::system_id_path;
use crate::http_client::tls_with_ca_file;
use crate::instance_lock::{self, state_directory, InstanceLock, LockError};
use crate::listen_address::ListenAddress;
use crate::preflight::{check_writable_dir, DockerProblem};
use paas_actors::state::{read_state_file, StateError};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Which command runs the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The service: the lock is taken and kept.
    Run,
    /// `check`: nothing is kept, a running service is a warning.
    Check,
}

/// What passed.
#[derive(Debug)]
pub struct Passed {
    /// The state file.
    pub state_file: PathBuf,
    /// `run`: the lock, held until dropped (the process's end).
    pub lock: Option<InstanceLock>,
    /// What `check` warns about (a running service holds the lock).
    pub warnings: Vec<String>,
    /// Jobs the state file tracks (0 without a file).
    pub tracked_jobs: usize,
}

/// Why the start-up stops before its first network call.
#[derive(Debug, thiserror::Error)]
pub enum LocalCheckError {
    /// Something the operator must fix in the configuration or on the
    /// host: the message locates the key in the file (exit 2).
    #[error("{0}")]
    Config(String),
    /// Another service holds the state file's lock, or the lock file
    /// fails (exit 1: systemd tries again later).
    #[error(transparent)]
    Lock(LockError),
    /// The state file cannot be read or does not parse (exit 3: restarting
    /// does not fix it).
    #[error(transparent)]
    State(StateError),
    /// The runner system id beside the state file cannot be read (exit 1).
    #[error("cannot read the runner system id {}: {detail}", path.display())]
    SystemId {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        detail: String,
    },
}

/// Runs the checks of the module documentation for `config`, with
/// `listen` the address the monitoring endpoints will bind (the command
/// line's or the file's).
pub fn run(
    config: &Config,
    listen: Option<&ListenAddress>,
    mode: Mode,
) -> Result<Passed, LocalCheckError> {
    let state_file = config.state_file.clone().ok_or_else(|| {
        LocalCheckError::Config(config.key_message(
            "state_file",
            None,
            "is required: without a state file a restart loses track of the PAAS resources \
             (add e.g. state_file = \"/var/lib/heptapod-paas-runner/state.json\")",
        ))
    })?;
    let shown = format!("{:?}", state_file.display().to_string());
    let directory_error = |problem: &str| {
        LocalCheckError::Config(config.key_message(
            "state_file",
            Some(&shown),
            &instance_lock::directory_problem(&state_directory(&state_file), problem),
        ))
    };
    let mut warnings = Vec::new();
    let (lock, service_running) =
        lock_state_file(&state_file, mode, &mut warnings).map_err(|e| match e {
            LockError::Directory { problem, .. } => directory_error(&problem),
            e => LocalCheckError::Lock(e),
        })?;
    let directory = state_directory(&state_file);
    match std::fs::metadata(&directory) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(directory_error("is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(directory_error("does not exist"))
        }
        Err(e) => return Err(directory_error(&format!("cannot be read ({e})"))),
    }
    check_writable_dir(&directory).map_err(|problem| directory_error(&problem))?;
    let tracked_jobs = read_state_file(&state_file)
        .map_err(LocalCheckError::State)?
        .map_or(0, |s| s.len());
    check_system_id(&state_file)?;
    if let Some(address) = listen {
        if !service_running {
            try_bind(config, address)?;
        }
    }
    check_ca_files(config)?;
    check_local_docker(config)?;
    Ok(Passed {
        state_file,
        lock,
        warnings,
        tracked_jobs,
    })
}

/// `run` takes the state file's lock (held from then on); `check` only
/// looks for its holder, warning when a service holds it (the `bool`:
/// then the monitoring address is not tried) or when it cannot tell.
fn lock_state_file(
    state_file: &Path,
    mode: Mode,
    warnings: &mut Vec<String>,
) -> Result<(Option<InstanceLock>, bool), LockError> {
    match mode {
        Mode::Run => InstanceLock::acquire(state_file).map(|lock| (Some(lock), false)),
        Mode::Check => match instance_lock::holder(state_file) {
            Ok(None) => Ok((None, false)),
            Err(LockError::Io { lock_file, detail }) => {
                // Another user's lock file (check run as root or as an
                // operator): the service itself may still open it.
                warnings.push(format!(
                    "cannot tell whether a service uses the state file: cannot open {}: \
                     {detail}",
                    lock_file.display()
                ));
                Ok((None, false))
            }
            Ok(Some(pid)) => {
                warnings.push(format!(
                    "a running service ({}) holds the state file {}: `run` would refuse to start \
                     beside it (exit 1); its monitoring address was not tried",
                    pid.map_or_else(|| "pid not written yet".to_string(), |p| format!("pid {p}")),
                    state_file.display()
                ));
                Ok((None, true))
            }
            Err(e) => Err(e),
        },
    }
}

/// The runner system id beside the state file, when there is one, can be
/// read.
fn check_system_id(state_file: &Path) -> Result<(), LocalCheckError> {
    let path = system_id_path(state_file);
    match std::fs::read_to_string(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LocalCheckError::SystemId {
            path,
            detail: e.to_string(),
        }),
    }
}

/// Binds every address `address` resolves to, as the monitoring server
/// does (one is enough), and closes them.
fn try_bind(config: &Config, address: &ListenAddress) -> Result<(), LocalCheckError> {
    let refused = |why: String| {
        LocalCheckError::Config(config.key_message(
            "listen_address",
            Some(&format!("{:?}", address.to_string())),
            &format!("cannot listen there: {why}"),
        ))
    };
    let addrs = address
        .resolve()
        .map_err(|e| refused(format!("the host does not resolve ({e})")))?;
    let mut errors = Vec::new();
    for addr in &addrs {
        match TcpListener::bind(addr) {
            Ok(_) => return Ok(()),
            Err(e) => errors.push(format!("{addr}: {e}")),
        }
    }
    Err(refused(errors.join("; ")))
}

/// Each runner section's `tls-ca-file` holds certificates (its TLS
/// context, built here, is the one the coordinator client uses).
pub fn check_ca_files(config: &Config) -> Result<(), LocalCheckError> {
    for (index, runner) in config.runners.iter().enumerate() {
        if let Some(ca_file) = &runner.tls_ca_file {
            tls_with_ca_file(ca_file).map_err(|why| {
                LocalCheckError::Config(config.key_message(
                    &runner_key(index, TLS_CA_FILE.name),
                    Some(&format!("{:?}", ca_file.display().to_string())),
                    &why,
                ))
            })?;
        }
    }
    Ok(())
}

/// Each local-docker section: the engine's socket exists and the `docker`
/// command line is on `PATH` (the engine's answer is the wiring's, retried).
fn check_local_docker(config: &Config) -> Result<(), LocalCheckError> {
    for (index, runner) in config.runners.iter().enumerate() {
        let Some(ld) = &runner.local_docker else {
            continue;
        };
        let problem = match crate::executors::local_docker::socket_path(&ld.host) {
            Err(e) => Some(("host", ld.host.clone(), e.to_string())),
            Ok(socket) if !socket.exists() => Some((
                "host",
                ld.host.clone(),
                DockerProblem::NoSocket(socket.display().to_string()).to_string(),
            )),
            Ok(_) if find_in_path("docker").is_none() => Some((
                "executor",
                "local-docker".to_string(),
                DockerProblem::NoCli.to_string(),
            )),
            Ok(_) => None,
        };
        if let Some((key, value, detail)) = problem {
            return Err(LocalCheckError::Config(config.key_message(
                &runner_key(index, key),
                Some(&format!("{value:?}")),
                &detail,
            )));
        }
    }
    Ok(())
}

/// The first executable file named `program` in `$PATH`'s directories.
fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance_lock::lock_path;
    use std::path::Path;

    fn config(dir: &Path, extra: &str) -> Config {
        let path = dir.join("runner.toml");
        std::fs::write(
            &path,
            format!(
                "state_file = \"{}\"\n{extra}\n[quota_computation]\nreference_runner = \"r\"\n\
                 reference_flavor = \"M\"\nreference_jobs_count = 1\n[[runners]]\nname = \"r\"\n\
                 url = \"https://gitlab.example\"\ntoken = \"glrt-abcdefghijklmn\"\n\
                 executor = \"clever-docker\"\ncc_orga_id = \"orga_x\"\ncc_token = \"t\"\n",
                dir.join("state.json").display()
            ),
        )
        .expect("write config");
        crate::config::load(&path).expect("valid").config
    }

    #[test]
    fn run_holds_the_lock_and_check_warns_about_its_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), "");
        let checked = run(&config, None, Mode::Check).expect("check passes");
        assert!(checked.lock.is_none() && checked.warnings.is_empty());
        assert!(
            !lock_path(&dir.path().join("state.json")).exists(),
            "check created the lock file"
        );
        let service = run(&config, None, Mode::Run).expect("run passes");
        assert!(service.lock.is_some());
        let checked = run(&config, None, Mode::Check).expect("check passes beside a service");
        assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
        assert!(
            checked.warnings[0].contains(&format!("pid {}", std::process::id())),
            "{:?}",
            checked.warnings
        );
        match run(&config, None, Mode::Run) {
            Err(LocalCheckError::Lock(LockError::Held { .. })) => {}
            other => panic!("a second service: {other:?}"),
        }
    }

    #[test]
    fn a_corrupt_state_file_is_a_state_error_in_both_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config(dir.path(), "");
        std::fs::write(dir.path().join("state.json"), "{\"launched\": [").expect("write");
        for mode in [Mode::Check, Mode::Run] {
            match run(&config, None, mode) {
                Err(LocalCheckError::State(StateError::Corrupt { detail, .. })) => {
                    assert!(detail.contains("truncated"), "{detail}")
                }
                other => panic!("{mode:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_directory_names_state_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(dir.path(), "");
        config.state_file = Some(dir.path().join("missing").join("state.json"));
        for mode in [Mode::Check, Mode::Run] {
            match run(&config, None, mode) {
                Err(LocalCheckError::Config(text)) => {
                    assert!(
                        text.contains("`state_file`") && text.contains("does not exist"),
                        "{text}"
                    )
                }
                other => panic!("{mode:?}: {other:?}"),
            }
        }
        config.state_file = None;
        match run(&config, None, Mode::Check) {
            Err(LocalCheckError::Config(text)) => assert!(text.contains("is required"), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_address_in_use_is_refused_naming_listen_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("address").port();
        let config = config(
            dir.path(),
            &format!("listen_address = \"127.0.0.1:{port}\""),
        );
        let address = config.listen_address.clone();
        for mode in [Mode::Check, Mode::Run] {
            match run(&config, address.as_ref(), mode) {
                Err(LocalCheckError::Config(text)) => {
                    assert!(text.contains("`listen_address`"), "{text}");
                    assert!(text.contains("cannot listen there"), "{text}");
                }
                other => panic!("{mode:?}: {other:?}"),
            }
        }
        drop(taken);
        run(&config, address.as_ref(), Mode::Check).expect("free again");
    }
}
