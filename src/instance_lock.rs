//! One service per state file: an exclusive lock on `<state_file>.lock`,
//! taken before the state is read and held for the life of the process.
//!
//! The lock is the operating system's (`File::try_lock`, `flock` on Unix):
//! it goes away with the process, whatever the way it ends, so a stale lock
//! file never blocks a restart. The holder writes its pid into the file so
//! that a refused process can say who holds it. The file is never deleted
//! (deleting a lock file lets two processes lock two different files).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: another service (or command) uses
    /// this state file.
    #[error(
        "another heptapod-paas-runner ({}) already uses the state file {}: two services \
         sharing a state file delete each other's PAAS resources. Stop it first, or give this \
         one its own state_file",
        holder_text(*pid), state_file.display()
    )]
    Held {
        /// The state file.
        state_file: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// The state file's directory is missing or not writable: the
    /// configuration (or the host) must be fixed.
    #[error(
        "`state_file` = {:?}: {}",
        state_file.display().to_string(), directory_problem(directory, problem)
    )]
    Directory {
        /// The state file.
        state_file: PathBuf,
        /// Its directory.
        directory: PathBuf,
        /// "does not exist", "is not writable by this user (…)", ….
        problem: String,
    },
    /// Any other I/O failure on the lock file.
    #[error("cannot lock {}: {detail}", lock_file.display())]
    Io {
        /// The lock file.
        lock_file: PathBuf,
        /// The I/O error.
        detail: String,
    },
}

/// What is wrong with the state file's directory and how to fix it.
pub fn directory_problem(directory: &Path, problem: &str) -> String {
    format!(
        "the directory {} {problem}: create it, writable by the user running the service, or \
         set state_file to a path in such a directory",
        directory.display()
    )
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid not written yet".to_string(),
    }
}

/// The lock file of a state file: `<state_file>.lock`, beside it.
pub fn lock_path(state_file: &Path) -> PathBuf {
    let mut name = state_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    state_file.with_file_name(name)
}

/// The directory holding `state_file` (`.` for a bare file name).
pub fn state_directory(state_file: &Path) -> PathBuf {
    match state_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The held lock. Dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock of `state_file`, without waiting.
    pub fn acquire(state_file: &Path) -> Result<InstanceLock, LockError> {
        let path = lock_path(state_file);
        let directory = state_directory(state_file);
        let dir_error = |problem: String| LockError::Directory {
            state_file: state_file.to_path_buf(),
            directory: directory.clone(),
            problem,
        };
        let io_error = |e: io::Error| LockError::Io {
            lock_file: path.clone(),
            detail: e.to_string(),
        };
        match std::fs::metadata(&directory) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(dir_error("is not a directory".to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(dir_error("does not exist".to_string()))
            }
            Err(e) => return Err(dir_error(format!("cannot be read ({e})"))),
        }
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(dir_error(format!("is not writable by this user ({e})")))
            }
            Err(e) => return Err(io_error(e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    state_file: state_file.to_path_buf(),
                    pid: holder_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether a process holds the lock of `state_file`, without creating
/// anything (`check` beside a running service): `Some(pid)` when one does
/// (`Some(None)` before it wrote its pid), `None` when none does or there
/// is no lock file; an error when the lock file cannot be opened.
pub fn holder(state_file: &Path) -> Result<Option<Option<u32>>, LockError> {
    let path = lock_path(state_file);
    let io_error = |e: io::Error| LockError::Io {
        lock_file: path.clone(),
        detail: e.to_string(),
    };
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(holder_pid(&mut file))),
        Err(TryLockError::Error(e)) => Err(io_error(e)),
    }
}

/// The pid the holder wrote in the lock file (it may be between locking and
/// writing: no pid then).
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .ok()
        .and_then(|_| text.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let held = InstanceLock::acquire(&state).expect("first lock");
        assert_eq!(held.path(), dir.path().join("state.json.lock"));
        // A second open file description conflicts, even in one process.
        match InstanceLock::acquire(&state) {
            Err(LockError::Held { pid, state_file }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(state_file, state);
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        let again = InstanceLock::acquire(&state).expect("released on drop");
        drop(again);
    }

    #[test]
    fn missing_directory_names_state_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("nope").join("state.json");
        let e = InstanceLock::acquire(&state).expect_err("missing directory");
        assert!(matches!(e, LockError::Directory { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("`state_file`"), "{text}");
        assert!(text.contains("does not exist"), "{text}");
        assert!(!text.contains(".lock"), "internal file named: {text}");
    }

    #[test]
    fn lock_path_is_beside_the_state_file() {
        assert_eq!(
            lock_path(Path::new("/var/lib/r/state.json")),
            PathBuf::from("/var/lib/r/state.json.lock")
        );
        assert_eq!(lock_path(Path::new("s.json")), PathBuf::from("s.json.lock"));
        assert_eq!(state_directory(Path::new("s.json")), PathBuf::from("."));
    }
}
