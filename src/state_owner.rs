//! Who owns the state directory, and what a command run as root does
//! there.
//!
//! The service runs as its own user (`heptapod-runner` under the systemd
//! unit), which owns the state directory; the files it keeps there (state,
//! lock, runner ids, system id) are mode 0600. An operator runs the other
//! commands as root: a file root created there would be unreadable by the
//! service, which then could not start. So:
//!
//! - `unregister` and `forget` (the commands besides `run` that create
//!   files there: the lock, and for `forget` the state file it rewrites)
//!   give what they create to the directory's owner
//!   ([`give_to_directory_owner`], used by `crate::instance_lock` and
//!   `commands::forget`);
//! - `run` as root in a directory owned by another user is refused, with
//!   the command to run instead ([`refuse_root_in_foreign_directory`]).
//!
//! `verify` and `check --online` only read there and `register` never goes
//! there.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A user as messages name it: `name (uid N)`, or `uid N` without a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserName {
    /// The uid.
    pub uid: u32,
    /// Its name in the user database, if any.
    pub name: Option<String>,
}

impl UserName {
    /// The user `uid`, with its name looked up.
    pub fn of(uid: u32) -> UserName {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        UserName { uid, name }
    }

    /// What `sudo -u` takes: the name, else `#uid`.
    pub fn sudo_user(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("'#{}'", self.uid),
        }
    }

    /// What `chown` takes: the name, else the uid.
    pub fn chown_user(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => self.uid.to_string(),
        }
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} (uid {})", self.uid),
            None => write!(f, "uid {}", self.uid),
        }
    }
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// `run` as root in a state directory owned by another user.
#[derive(Debug, thiserror::Error)]
#[error(
    "the state directory {} belongs to {owner}, and this command runs as root: the files it \
     would create there (state, lock, runner ids) could not be read by the service. Run it as \
     that user: sudo -u {} heptapod-paas-runner …, or start the service (systemctl start \
     heptapod-paas-runner)",
    directory.display(), owner.sudo_user()
)]
pub struct RootInForeignDirectory {
    /// The state directory.
    pub directory: PathBuf,
    /// Its owner.
    pub owner: UserName,
}

/// Refuses a process running as root whose state directory `directory`
/// belongs to another user. A missing directory is left to the later
/// checks (which name it).
pub fn refuse_root_in_foreign_directory(directory: &Path) -> Result<(), RootInForeignDirectory> {
    refuse_in_foreign_directory(effective_uid(), directory)
}

fn refuse_in_foreign_directory(euid: u32, directory: &Path) -> Result<(), RootInForeignDirectory> {
    let Ok(meta) = std::fs::metadata(directory) else {
        return Ok(());
    };
    if euid == 0 && meta.uid() != 0 {
        return Err(RootInForeignDirectory {
            directory: directory.to_path_buf(),
            owner: UserName::of(meta.uid()),
        });
    }
    Ok(())
}

/// Run as root, gives `file` (just opened in the directory whose metadata
/// is `directory`) to the directory's owner and group when it belongs to
/// someone else: the service, running as that owner, must be able to open
/// it. Does nothing for another user, or in a directory root owns.
pub fn give_to_directory_owner(file: &File, directory: &Metadata) -> io::Result<()> {
    if effective_uid() != 0 || directory.uid() == 0 {
        return Ok(());
    }
    let meta = file.metadata()?;
    if meta.uid() == directory.uid() && meta.gid() == directory.gid() {
        return Ok(());
    }
    std::os::unix::fs::fchown(file, Some(directory.uid()), Some(directory.gid()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sudo_forms() {
        let root = UserName::of(0);
        assert_eq!(root.name.as_deref(), Some("root"));
        assert_eq!(root.to_string(), "root (uid 0)");
        assert_eq!(root.sudo_user(), "root");
        let nobody = UserName {
            uid: 4242,
            name: None,
        };
        assert_eq!(nobody.to_string(), "uid 4242");
        assert_eq!(nobody.sudo_user(), "'#4242'");
        assert_eq!(nobody.chown_user(), "4242");
        assert_eq!(root.chown_user(), "root");
    }

    #[test]
    fn only_root_in_another_users_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = std::fs::metadata(dir.path()).expect("metadata").uid();
        // The directory's owner itself, whoever it is.
        assert!(refuse_in_foreign_directory(owner, dir.path()).is_ok());
        // A missing directory: left to the checks that name it.
        assert!(refuse_in_foreign_directory(0, &dir.path().join("nope")).is_ok());
        if effective_uid() != 0 {
            eprintln!("not root: cannot give a directory to another user, skipping the rest");
            return;
        }
        std::os::unix::fs::chown(dir.path(), Some(4242), Some(4242)).expect("chown");
        let e = refuse_in_foreign_directory(0, dir.path()).expect_err("root, foreign dir");
        let text = e.to_string();
        assert!(text.contains("uid 4242"), "{text}");
        assert!(
            text.contains("sudo -u '#4242' heptapod-paas-runner"),
            "{text}"
        );
        assert!(refuse_in_foreign_directory(4242, dir.path()).is_ok());
    }
}
