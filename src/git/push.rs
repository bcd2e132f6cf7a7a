//! Push of a deploy context to a Git remote with git2.
//!
//! What the Python reference does with `git` subprocesses (init, commit,
//! push with the password in the URL), done with libgit2 and without the
//! pitfalls of a user's Git configuration, hooks and credential helpers:
//!
//! 1. a fresh repository in a temporary directory, bare (no worktree, no
//!    index, so no line-ending filters), with `master` as initial head
//!    whatever `init.defaultBranch` says, no external templates (no hooks),
//!    and a configuration reduced to its own file (no global or system
//!    `url.*.insteadOf`, identity, …);
//! 2. one commit "Job definition" by "Heptapod Paas Runner"
//!    <paasrunner@heptapod.test> holding `Dockerfile`, `runner.toml` and
//!    `job.json` (mode 644);
//! 3. the remote's refs are listed: an existing `refs/heads/master` means a
//!    previous push already launched the job ([`PushOutcome::AlreadyLaunched`],
//!    nothing pushed);
//! 4. otherwise `refs/heads/master` is pushed (not forced); a ref rejected
//!    by the server is an error.
//!
//! Credentials go through a callback (`Cred::userpass_plaintext`), offered
//! at most [`crate::git::MAX_CREDENTIAL_OFFERS`] times per connection so that a refused
//! password ends in an error instead of a libgit2 retry loop. The password
//! is never part of a URL, and errors carry the URL without userinfo, query
//! or fragment.
//!
//! This function BLOCKS: callers run it with
//! `actix_rt::task::spawn_blocking`. The network part runs on a dedicated
//! thread so that the timeout holds even when a server stops answering
//! (libgit2 has no default socket timeout and its timeout settings are
//! `unsafe` process-wide options): on timeout the caller gets
//! [`PushError::Timeout`] at once, and the thread ends at its next libgit2
//! callback or when the connection fails.
//!
//! The isolation, credential, deadline and error-classification machinery
//! (`Session`, `isolated_bare_repository`, [`RemoteError`]) lives in
//! `src/git/session.rs`, shared with [`crate::git::fetch`], which reads
//! `job.json` back from a deployment repository.

use super::session::{isolated_bare_repository, Observed, RemoteError, Session, DEPLOY_REF};
use crate::deploy::BuildContext;
use crate::secret::Secret;
use git2::{Direction, PushOptions, Repository, Signature};
use std::path::Path;
use std::time::Duration;

/// Committer and author name of the deploy commit.
pub const COMMITTER_NAME: &str = "Heptapod Paas Runner";

/// Committer and author email of the deploy commit.
pub const COMMITTER_EMAIL: &str = "paasrunner@heptapod.test";

/// Message of the deploy commit (as `git commit -m "Job definition"` stores it).
pub const COMMIT_MESSAGE: &str = "Job definition\n";

/// What a successful [`push_context`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The context was pushed to `master`: the PAAS starts the deployment.
    Pushed,
    /// `master` already existed on the remote (a push before a restart):
    /// nothing was pushed; the job is considered launched.
    AlreadyLaunched,
}

/// Why a push failed (the name the push API was built with).
pub type PushError = RemoteError;

/// Pushes `ctx` to `master` of `remote_url`, authenticating as `user` /
/// `password` if the server asks. BLOCKING; see the module documentation.
pub fn push_context(
    ctx: &BuildContext,
    remote_url: &str,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let session = Session::new(remote_url, user, password, timeout)?;
    let ctx = ctx.clone();
    session.run_on_thread("git-push", move |session| {
        let dir = tempfile::Builder::new()
            .prefix("hpd-deploy-")
            .tempdir()
            .map_err(|e| RemoteError::Local {
                detail: format!("cannot create a temporary directory: {e}"),
            })?;
        let repo = build_repository(dir.path(), &ctx).map_err(|e| RemoteError::Local {
            detail: session.scrub(e.message()),
        })?;
        let observed = Observed::default();
        let result = push(session, &repo, &observed);
        result.map_err(|e| session.classify(&e, &observed))
    })
}

/// Lists the remote refs, then pushes unless `master` exists.
fn push(
    session: &Session,
    repo: &Repository,
    observed: &Observed,
) -> Result<PushOutcome, git2::Error> {
    let mut remote = repo.remote_anonymous(&session.url.connect)?;
    {
        let connection =
            remote.connect_auth(Direction::Push, Some(session.callbacks(observed)), None)?;
        if connection
            .list()?
            .iter()
            .any(|head| head.name() == DEPLOY_REF)
        {
            return Ok(PushOutcome::AlreadyLaunched);
        }
    }
    observed.credential_offers.set(0);
    let mut callbacks = session.callbacks(observed);
    callbacks.push_update_reference(|refname, status| {
        if let Some(reason) = status {
            *observed.rejection.borrow_mut() = Some(format!("{refname}: {reason}"));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    remote.push(&[format!("{DEPLOY_REF}:{DEPLOY_REF}")], Some(&mut options))?;
    if observed.rejection.borrow().is_some() {
        return Err(git2::Error::from_str("reference rejected"));
    }
    Ok(PushOutcome::Pushed)
}

/// Creates the bare repository in `dir` with one commit on `master`
/// holding the context files, isolated from global and system config.
fn build_repository(dir: &Path, ctx: &BuildContext) -> Result<Repository, git2::Error> {
    let repo = isolated_bare_repository(dir)?;

    let mut tree = repo.treebuilder(None)?;
    for (name, content) in ctx.files() {
        let blob = repo.blob(content)?;
        tree.insert(name, blob, 0o100_644)?;
    }
    let tree_id = tree.write()?;
    drop(tree);
    let signature = Signature::now(COMMITTER_NAME, COMMITTER_EMAIL)?;
    {
        let tree = repo.find_tree(tree_id)?;
        repo.commit(
            Some(DEPLOY_REF),
            &signature,
            &signature,
            COMMIT_MESSAGE,
            &tree,
            &[],
        )?;
    }
    Ok(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_holds_one_commit_with_the_three_files() {
        let ctx = BuildContext {
            dockerfile: "FROM x\n".into(),
            runner_toml: "a = 1\n".into(),
            job_json: "{}".into(),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = build_repository(dir.path(), &ctx).expect("repo");
        assert!(repo.is_bare());
        let head = repo.head().expect("head");
        assert_eq!(head.name().ok(), Some(DEPLOY_REF));
        let commit = head.peel_to_commit().expect("commit");
        assert_eq!(commit.message().ok(), Some(COMMIT_MESSAGE));
        assert_eq!(commit.parent_count(), 0);
        for sig in [commit.author(), commit.committer()] {
            assert_eq!(sig.name().ok(), Some(COMMITTER_NAME));
            assert_eq!(sig.email().ok(), Some(COMMITTER_EMAIL));
        }
        let tree = commit.tree().expect("tree");
        assert_eq!(tree.len(), 3);
        for (name, content) in ctx.files() {
            let entry = tree.get_name(name).expect(name);
            assert_eq!(entry.filemode(), 0o100_644);
            let blob = repo.find_blob(entry.id()).expect("blob");
            assert_eq!(blob.content(), content);
        }
    }
}
