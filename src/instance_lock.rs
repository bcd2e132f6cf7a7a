//! One service per state file: an exclusive lock on `<state_file>.lock`,
//! taken before the state is read and held for the life of the process.
//!
//! The lock is the operating system's (`File::try_lock`, `flock` on Unix):
//! it goes away with the process, whatever the way it ends, so a stale lock
//! file never blocks a restart. The holder writes its pid into the file so
//! that a refused process can say who holds it. The file is never deleted
//! (deleting a lock file lets two processes lock two different files).
//!
//! The state directory belongs to the service user, and `unregister` runs
//! as root: whoever can write there could plant a link as the lock file.
//! So the file is opened with `O_NOFOLLOW` and must be a regular file with
//! no other name (no hard link elsewhere), it is never truncated (the pid
//! is written over its first bytes), and root gives what it opens there to
//! the directory's owner (`crate::state_owner`), so that the service can
//! still open it. A lock file that belongs to another user, and that this
//! one therefore cannot open (left by an older version run as root), is
//! told as such, with what to do.

use crate::state_owner::{self, UserName};
use std::fs::{File, Metadata, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
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
    /// The lock file belongs to another user, who alone may open it: left
    /// by an older version's command run as root.
    #[error(
        "the lock file {} belongs to {owner}, not to {user} who runs this command, and cannot \
         be opened: an older version run as root left it. When no heptapod-paas-runner runs on \
         this state file, give it back as root: chown {} {} (or remove it)",
        lock_file.display(), user.chown_user(), lock_file.display()
    )]
    ForeignOwner {
        /// The lock file.
        lock_file: PathBuf,
        /// Its owner.
        owner: UserName,
        /// The user running this command.
        user: UserName,
    },
    /// The lock file is not a plain file of its own: refused, so that
    /// nothing is written through it.
    #[error(
        "the lock file {} is {what}: refused, nothing is written through it. Remove it (no \
         heptapod-paas-runner running on this state file) and start again",
        lock_file.display()
    )]
    NotAFile {
        /// The lock file.
        lock_file: PathBuf,
        /// "a symbolic link", "not a regular file", ….
        what: String,
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
        let directory_meta = match std::fs::metadata(&directory) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Err(dir_error("is not a directory".to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(dir_error("does not exist".to_string()))
            }
            Err(e) => return Err(dir_error(format!("cannot be read ({e})"))),
        };
        let mut file = open_lock_file(&path, &directory_meta).map_err(|e| match e {
            OpenError::Denied(e) => dir_error(format!("is not writable by this user ({e})")),
            OpenError::Lock(e) => e,
            OpenError::Io(e) => io_error(e),
        })?;
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
        // Over the first bytes, never truncated: padded so that it covers
        // any pid an earlier holder wrote.
        let line = format!("{:<10}\n", std::process::id());
        file.write_all_at(line.as_bytes(), 0).map_err(io_error)?;
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
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(&path)
    {
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

/// The pid the holder wrote on the first line of the lock file (it may be
/// between locking and writing: no pid then; the file is never truncated,
/// so what follows the first line is left from older writers).
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text)
        .ok()
        .and_then(|_| text.lines().next()?.trim().parse().ok())
}

/// Why the lock file could not be opened.
enum OpenError {
    /// Permission denied, with nothing more specific to tell.
    Denied(io::Error),
    /// Something the lock error tells.
    Lock(LockError),
    /// Anything else.
    Io(io::Error),
}

/// Opens (creating it if needed) the lock file at `path`, in the directory
/// whose metadata is `directory`: never through a symbolic link, only a
/// regular file with no other name, given to the directory's owner when
/// root opens it.
fn open_lock_file(path: &Path, directory: &Metadata) -> Result<File, OpenError> {
    let refused = |what: &str| {
        OpenError::Lock(LockError::NotAFile {
            lock_file: path.to_path_buf(),
            what: what.to_string(),
        })
    };
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // Not a FIFO's open either: it would wait for a writer.
        .custom_flags((nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => {
            return Err(refused("a symbolic link"))
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(denied(path, e)),
        Err(e) => return Err(OpenError::Io(e)),
    };
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.file_type().is_file() {
        return Err(refused("not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refused(&format!(
            "a file with {} names (hard links)",
            meta.nlink()
        )));
    }
    state_owner::give_to_directory_owner(&file, directory).map_err(OpenError::Io)?;
    Ok(file)
}

/// Why opening the lock file at `path` was denied: it exists and belongs
/// to another user than this process's, or it is this user's own file
/// (its mode), or it does not exist and the directory is not writable.
fn denied(path: &Path, e: io::Error) -> OpenError {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return OpenError::Denied(e);
    };
    let user = state_owner::effective_uid();
    if meta.uid() == user {
        return OpenError::Io(e);
    }
    OpenError::Lock(LockError::ForeignOwner {
        lock_file: path.to_path_buf(),
        owner: UserName::of(meta.uid()),
        user: UserName::of(user),
    })
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
    fn a_planted_symlink_is_not_followed_and_its_target_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let target = dir.path().join("precious");
        std::fs::write(&target, "precious content\n").expect("write");
        std::os::unix::fs::symlink(&target, lock_path(&state)).expect("symlink");
        let e = InstanceLock::acquire(&state).expect_err("symlink refused");
        assert!(
            matches!(&e, LockError::NotAFile { what, .. } if what == "a symbolic link"),
            "{e:?}"
        );
        assert!(e.to_string().contains("Remove it"), "{e}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious content\n"
        );
        // A dangling link creates nothing at its target either.
        let absent = dir.path().join("absent");
        let other = dir.path().join("other.json");
        std::os::unix::fs::symlink(&absent, lock_path(&other)).expect("symlink");
        assert!(InstanceLock::acquire(&other).is_err());
        assert!(!absent.exists(), "created through the link");
    }

    #[test]
    fn a_hard_link_or_a_fifo_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        let target = dir.path().join("precious");
        std::fs::write(&target, "precious content\n").expect("write");
        std::fs::hard_link(&target, lock_path(&state)).expect("hard link");
        let e = InstanceLock::acquire(&state).expect_err("hard link refused");
        assert!(
            matches!(&e, LockError::NotAFile { what, .. } if what.contains("2 names")),
            "{e:?}"
        );
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "precious content\n"
        );
        let fifo_state = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&lock_path(&fifo_state), nix::sys::stat::Mode::S_IRWXU)
            .expect("mkfifo");
        let e = InstanceLock::acquire(&fifo_state).expect_err("fifo refused");
        assert!(
            matches!(&e, LockError::NotAFile { what, .. } if what == "not a regular file"),
            "{e:?}"
        );
    }

    #[test]
    fn the_lock_file_is_never_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        // What an older holder left, longer than a pid line.
        let old = "4194304\nsomething the runner did not write, longer than a pid line\n";
        std::fs::write(lock_path(&state), old).expect("write");
        let held = InstanceLock::acquire(&state).expect("lock");
        let text = std::fs::read_to_string(lock_path(&state)).expect("read");
        assert_eq!(text.len(), old.len(), "truncated: {text:?}");
        let first = text.lines().next().unwrap_or_default();
        assert_eq!(first.trim(), std::process::id().to_string());
        assert!(text.ends_with("longer than a pid line\n"), "{text:?}");
        match InstanceLock::acquire(&state) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
    }

    #[test]
    fn root_gives_the_lock_file_to_the_directorys_owner() {
        if state_owner::effective_uid() != 0 {
            eprintln!("not root: cannot give a directory to another user, skipping");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::chown(dir.path(), Some(4242), Some(4243)).expect("chown");
        let state = dir.path().join("state.json");
        drop(InstanceLock::acquire(&state).expect("lock"));
        let meta = std::fs::metadata(lock_path(&state)).expect("lock file");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (4242, 4243),
            "created for the owner"
        );
        assert_eq!(meta.mode() & 0o777, 0o600);
        // A root-owned lock an older version left is given back too.
        let other = dir.path().join("other.json");
        std::fs::write(lock_path(&other), "1\n").expect("write");
        assert_eq!(std::fs::metadata(lock_path(&other)).expect("m").uid(), 0);
        drop(InstanceLock::acquire(&other).expect("lock"));
        let meta = std::fs::metadata(lock_path(&other)).expect("lock file");
        assert_eq!((meta.uid(), meta.gid()), (4242, 4243), "given back");
        // In a directory root owns, root keeps its files.
        let own = tempfile::tempdir().expect("tempdir");
        let state = own.path().join("state.json");
        drop(InstanceLock::acquire(&state).expect("lock"));
        assert_eq!(std::fs::metadata(lock_path(&state)).expect("m").uid(), 0);
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
