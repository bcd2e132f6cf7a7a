//! End to end, `check` ≡ `run` for the start-up checks that need no
//! network: every example configuration the project ships
//! (`deploy/examples/*.toml` and README's ```` ```toml ```` blocks), and
//! variants of one made to fail each check, go through `check` and through
//! `run --local-checks-only` of the real binary (which stops where its
//! first network call would be). Both must end with the same exit code;
//! every shipped example passes.
//!
//! The examples are used as written, with what names this host relocated
//! into a private directory: `state_file`, `secrets_file` (a copy of
//! `deploy/examples/secrets.toml`), the port of `listen_address` (0: any
//! free port; the host is kept, and is a loopback one in every example),
//! the Docker engine (`DOCKER_HOST`: a socket bound by the test) and the
//! `docker` command line (a stand-in first on `PATH`: the local checks only
//! look for it).

use crate::common::run_to_end_with_env;

use heptapod_paas_runner::instance_lock::InstanceLock;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

const README: &str = include_str!("../../README.md");

/// The shipped example configurations, by name.
fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("deploy/examples")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        // the secrets file of the examples is not a configuration
        .filter(|p| p.file_name().is_some_and(|n| n != "secrets.toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read example");
            (p.display().to_string(), text)
        })
        .collect();
    out.sort();
    for (n, block) in README.split("```toml\n").skip(1).enumerate() {
        let text = block.split("```").next().unwrap_or_default();
        out.push((
            format!("README.md ```toml block {}", n + 1),
            text.to_string(),
        ));
    }
    out
}

/// A private directory with what the examples need of this host.
struct Sandbox {
    dir: tempfile::TempDir,
    path: OsString,
    docker_host: String,
    _engine: UnixListener,
}

/// How a command ended.
#[derive(Debug)]
struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("state")).expect("state directory");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        let docker = bin.join("docker");
        std::fs::write(&docker, "#!/bin/sh\nexit 1\n").expect("docker stand-in");
        std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut path = bin.into_os_string();
        if let Some(system) = std::env::var_os("PATH") {
            path.push(":");
            path.push(system);
        }
        let socket = dir.path().join("docker.sock");
        let engine = UnixListener::bind(&socket).expect("engine socket");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/secrets.toml"),
            dir.path().join("secrets.toml"),
        )
        .expect("secrets copy");
        Sandbox {
            docker_host: format!("unix://{}", socket.display()),
            path,
            dir,
            _engine: engine,
        }
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state").join("state.json")
    }

    /// `text` with this host's paths and a free port.
    fn relocate(&self, text: &str) -> String {
        let mut out = String::new();
        for line in text.lines() {
            let value = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.trim_start().strip_prefix('='))
                    .and_then(|rest| rest.trim().split('"').nth(1))
                    .map(str::to_string)
            };
            let line = if value("state_file").is_some() {
                format!("state_file = {:?}", self.state_file().display().to_string())
            } else if value("secrets_file").is_some() {
                let secrets = self.dir.path().join("secrets.toml");
                format!("secrets_file = {:?}", secrets.display().to_string())
            } else if let Some(address) = value("listen_address") {
                let host = match address.rsplit_once(':') {
                    Some((host, _)) => host.to_string(),
                    None => address,
                };
                format!("listen_address = \"{host}:0\"")
            } else if value("host").is_some_and(|h| h.starts_with("unix://")) {
                format!("host = {:?}", self.docker_host)
            } else {
                line.to_string()
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write configuration");
        path
    }

    fn command(&self, args: &[&OsStr]) -> Ended {
        let env: [(&str, &OsStr); 4] = [
            ("PATH", &self.path),
            ("DOCKER_HOST", OsStr::new(&self.docker_host)),
            ("NOTIFY_SOCKET", OsStr::new("")),
            ("JOURNAL_STREAM", OsStr::new("")),
        ];
        let (code, stdout, stderr) = run_to_end_with_env(args, &env, LIMIT);
        Ended {
            code,
            stdout,
            stderr,
        }
    }

    /// `check` and `run --local-checks-only` of `config`, in GitLab
    /// Runner's spellings (`-c`, global options first).
    fn both(&self, config: &Path) -> (Ended, Ended) {
        let check = self.command(&[
            OsStr::new("--log-format"),
            OsStr::new("term"),
            OsStr::new("check"),
            OsStr::new("-c"),
            config.as_os_str(),
        ]);
        let run = self.command(&[
            OsStr::new("--debug"),
            OsStr::new("run"),
            OsStr::new("--local-checks-only"),
            OsStr::new("--config"),
            config.as_os_str(),
        ]);
        (check, run)
    }

    /// Both end with `expected`, or fail naming the example.
    fn agree(&self, what: &str, text: &str, expected: i32) -> (Ended, Ended) {
        let config = self.write("runner.toml", text);
        let (check, run) = self.both(&config);
        assert_eq!(
            (check.code, run.code),
            (Some(expected), Some(expected)),
            "{what}: check and run disagree or end unexpectedly\n--- configuration\n{text}\n\
             --- check\n{}{}\n--- run\n{}",
            check.stdout,
            check.stderr,
            run.stderr
        );
        (check, run)
    }
}

#[test]
fn every_shipped_example_passes_check_and_the_local_checks_of_run() {
    let sandbox = Sandbox::new();
    let examples = examples();
    assert!(
        examples.len() >= 4,
        "three example files and README's block expected: {:?}",
        examples.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, text) in &examples {
        assert!(
            text.lines().any(|l| l.starts_with("listen_address")),
            "{name} sets no listen_address"
        );
        let (check, run) = sandbox.agree(name, &sandbox.relocate(text), 0);
        assert!(
            check.stdout.contains(": valid ("),
            "{name}: {}",
            check.stdout
        );
        assert!(
            run.stderr
                .contains("start-up checks without network passed"),
            "{name}: {}",
            run.stderr
        );
        // Each starts from a state the previous one did not leave.
        let _ = std::fs::remove_file(sandbox.state_file());
    }
}

/// The single-organisation example, relocated, with `edit` applied.
fn single_org(sandbox: &Sandbox, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/examples/clever-single-organisation.toml"),
    )
    .expect("example");
    edit(sandbox.relocate(&text))
}

#[test]
fn each_local_check_fails_check_and_run_alike() {
    let sandbox = Sandbox::new();
    let state = sandbox.state_file().display().to_string();

    std::fs::write(sandbox.state_file(), "{\"launched\": [").expect("corrupt state");
    let (check, run) = sandbox.agree("corrupt state file", &single_org(&sandbox, |t| t), 3);
    assert!(check.stdout.contains("truncated"), "{}", check.stdout);
    assert!(
        run.stderr.contains("truncated") && run.stderr.contains(&state),
        "{}",
        run.stderr
    );
    std::fs::remove_file(sandbox.state_file()).expect("remove");

    let missing = sandbox.dir.path().join("missing").join("state.json");
    let text = single_org(&sandbox, |t| {
        t.replace(&state, &missing.display().to_string())
    });
    let (check, _) = sandbox.agree("missing state directory", &text, 2);
    assert!(check.stdout.contains("`state_file`") && check.stdout.contains("does not exist"));

    let text = single_org(&sandbox, |t| {
        t.lines()
            .filter(|l| !l.starts_with("state_file"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    let (check, _) = sandbox.agree("no state_file", &text, 2);
    assert!(check.stdout.contains("is required"), "{}", check.stdout);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let text = single_org(&sandbox, |t| {
        t.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    });
    let (check, run) = sandbox.agree("listen address in use", &text, 2);
    assert!(
        check.stdout.contains("`listen_address`"),
        "{}",
        check.stdout
    );
    assert!(run.stderr.contains("cannot listen there"), "{}", run.stderr);
    drop(taken);

    let text = single_org(&sandbox, |t| t.replace("\"127.0.0.1:0\"", "\"::1\""));
    let (check, _) = sandbox.agree("bare IPv6 listen address", &text, 2);
    assert!(check.stdout.contains("[::1]:9252"), "{}", check.stdout);

    for form in ["localhost:0", "[::1]:0"] {
        if form.starts_with('[') && std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("skipping {form}: no IPv6 loopback on this host");
            continue;
        }
        let text = single_org(&sandbox, |t| t.replace("127.0.0.1:0", form));
        sandbox.agree(form, &text, 0);
    }
}

#[test]
fn a_missing_docker_engine_fails_check_and_run_alike() {
    let sandbox = Sandbox::new();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/local-docker.toml"),
    )
    .expect("example");
    let gone = sandbox.dir.path().join("no-engine.sock");
    let text = sandbox.relocate(&text).replace(
        "executor = \"local-docker\"",
        &format!(
            "executor = \"local-docker\"\nhost = \"unix://{}\"",
            gone.display()
        ),
    );
    let (check, _) = sandbox.agree("no engine socket", &text, 2);
    assert!(
        check.stdout.contains("no Docker engine socket"),
        "{}",
        check.stdout
    );
}

#[test]
fn a_running_service_is_a_warning_for_check_and_an_error_for_run() {
    let sandbox = Sandbox::new();
    let config = sandbox.write("runner.toml", &single_org(&sandbox, |t| t));
    let lock = InstanceLock::acquire(&sandbox.state_file()).expect("lock");
    let (check, run) = sandbox.both(&config);
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    assert!(
        check
            .stdout
            .contains(&format!("a running service (pid {})", std::process::id())),
        "{}",
        check.stdout
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("already uses the state file"),
        "{}",
        run.stderr
    );
    drop(lock);
    let (check, run) = sandbox.both(&config);
    assert_eq!((check.code, run.code), (Some(0), Some(0)), "{}", run.stderr);
    assert!(!check.stdout.contains("warnings:"), "{}", check.stdout);
}
