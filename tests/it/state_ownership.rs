//! End to end, the state directory of the real binary when it belongs to
//! the service user and commands run as root (the tests run as root here,
//! and give a directory to another uid with chown; they skip, saying so,
//! otherwise): `run` as root is refused with the command to run, the lock
//! file `unregister` creates as root is the directory owner's, and a
//! root-owned lock file left by an older version is named with what to do
//! when the service user starts.

use crate::common;

use common::{run_to_end, E2e, BIN};
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

/// The uid and gid given to the "service user"'s directory (no such user).
const SERVICE_UID: u32 = 4242;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A world, and its configuration with the state file in `state/`, a
/// directory given to [`SERVICE_UID`] (mode 0700, like the unit's
/// `StateDirectory=`), every directory above it traversable.
fn world_with_service_directory() -> (E2e, PathBuf, PathBuf) {
    let e = E2e::start(WorldConfig::default());
    let state_dir = e.dir.path().join("state");
    std::fs::create_dir(&state_dir).expect("mkdir");
    std::os::unix::fs::chown(&state_dir, Some(SERVICE_UID), Some(SERVICE_UID)).expect("chown");
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(e.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let state_file = state_dir.join("state.json");
    let config = e.write_config(
        common::options(),
        &[("state_file", state_file.display().to_string().into())],
    );
    // Readable by the service user too (it holds tokens: test only).
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (e, config, state_dir)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn run_as_root_in_the_service_users_directory_is_refused_with_the_command_to_run() {
    if !is_root() {
        eprintln!("not root: cannot give a directory to another user, skipping");
        return;
    }
    let (_e, config, state_dir) = world_with_service_directory();
    let (code, stdout, stderr) = run_to_end(&[OsStr::new("run"), config.as_os_str()], LIMIT);
    assert_eq!(code, Some(2), "stdout {stdout}\nstderr {stderr}");
    assert!(
        stderr.contains("sudo -u '#4242' heptapod-paas-runner"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&state_dir.display().to_string()),
        "{stderr}"
    );
    assert_eq!(names(&state_dir), Vec::<String>::new(), "nothing created");
}

#[test]
fn unregister_as_root_leaves_its_lock_file_to_the_directory_owner() {
    if !is_root() {
        eprintln!("not root: cannot give a directory to another user, skipping");
        return;
    }
    let (_e, config, state_dir) = world_with_service_directory();
    let (code, stdout, stderr) = run_to_end(
        &[
            OsStr::new("unregister"),
            config.as_os_str(),
            OsStr::new("--name"),
            OsStr::new("sim-runner-1"),
        ],
        LIMIT,
    );
    assert_eq!(code, Some(0), "stdout {stdout}\nstderr {stderr}");
    let lock = state_dir.join("state.json.lock");
    let meta = std::fs::metadata(&lock).expect("lock file");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SERVICE_UID, SERVICE_UID),
        "the lock file root created belongs to the directory's owner"
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
}

#[test]
fn a_root_owned_lock_left_by_an_older_version_is_named_with_what_to_do() {
    if !is_root() {
        eprintln!("not root: cannot run the binary as another user, skipping");
        return;
    }
    let (_e, config, state_dir) = world_with_service_directory();
    // What an older `unregister` run as root left: root's, mode 0600.
    let lock = state_dir.join("state.json.lock");
    std::fs::write(&lock, "25033\n").expect("write");
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (code, stderr) = run_as(SERVICE_UID, &[OsStr::new("run"), config.as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&lock.display().to_string()), "{stderr}");
    assert!(stderr.contains("belongs to root (uid 0)"), "{stderr}");
    assert!(
        stderr.contains(&format!("chown 4242 {}", lock.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not writable"),
        "the directory is writable: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&lock).expect("read"), "25033\n");
}

/// Runs the binary as `uid` (and gid) with `args`, bounded by [`LIMIT`]
/// (killed by pid past it): exit code and stderr.
fn run_as(uid: u32, args: &[&OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let started = Instant::now();
    let status = loop {
        match child.try_wait().expect("wait") {
            Some(status) => break Some(status),
            None if started.elapsed() > LIMIT => break None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status.and_then(|s| s.code()), stderr)
}
