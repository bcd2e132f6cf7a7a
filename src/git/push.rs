//! Push of a deploy context to a Git remote with git2.
//!
//! What the Python reference does with `git` subprocesses (init, commit,
//! push with the password in the URL), done with libgit2 and without the
//! pitfalls of a user's Git configuration, hooks and credential helpers,
//! and without touching the disk:
//!
//! 1. a repository held in memory: an object database with only libgit2's
//!    in-memory backend (`mempack`), no directory, no references, no hooks,
//!    no worktree or index (so no line-ending filters), and an empty
//!    configuration of its own (no global or system `url.*.insteadOf`,
//!    identity, credential helper, …);
//! 2. one commit "Job definition" by "Heptapod Paas Runner"
//!    <paasrunner@heptapod.test> holding the files pushed (mode 644): a
//!    job's `Dockerfile`, `runner.toml` and `job.json`, or the single
//!    `Dockerfile` of a service application's helper ([`push_files_async`]),
//!    written to that database only;
//! 3. the commit is pushed by its id to `refs/heads/master` (not forced),
//!    on one connection: the remote's refs come with the connection, and
//!    when they already hold `refs/heads/master` a previous push launched
//!    the job, so the push is called off before anything is sent
//!    ([`PushOutcome::AlreadyLaunched`]); a ref rejected by the server is
//!    an error. Redirects: same host only ([`NO_REDIRECTS`]).
//!
//! Credentials go through a callback (`Cred::userpass_plaintext`), offered
//! at most [`crate::git::MAX_CREDENTIAL_OFFERS`] times per connection so that a refused
//! password ends in an error instead of a libgit2 retry loop. The password
//! is never part of a URL, and errors carry the URL without userinfo, query
//! or fragment.
//!
//! [`push_context`] BLOCKS; [`push_context_async`], what the Clever Cloud
//! executor awaits, does not. The
//! work itself runs on one of the git worker threads (`src/git/workers.rs`)
//! so that the timeout holds even when a server stops answering (libgit2
//! has no default socket timeout and its timeout settings are `unsafe`
//! process-wide options): on timeout the caller gets
//! [`PushError::Timeout`] at once, and the worker is free again at its
//! next libgit2 callback or when the connection fails.
//!
//! The isolation, credential, deadline and error-classification machinery
//! (`Session`, [`RemoteError`]) lives in `src/git/session.rs`, shared with
//! [`crate::git::fetch`], which reads `job.json` back from a deployment
//! repository.

use super::session::{Observed, RemoteError, RemoteSchemes, Session, DEPLOY_REF, NO_REDIRECTS};
use crate::deploy::BuildContext;
use crate::secret::Secret;
use git2::{Config, Odb, Oid, PushOptions, Repository, Signature};
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

/// Pushes `ctx` to `master` of `remote_url` (one of `schemes`), authenticating as `user` /
/// `password` if the server asks. BLOCKING; see the module documentation.
pub fn push_context(
    ctx: &BuildContext,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let session = Session::new(remote_url, schemes, user, password, timeout)?;
    let files = context_files(ctx);
    session.run_on_worker(move |session| push_in_memory(session, &files))
}

/// [`push_context`] for async callers: the same push on a git worker
/// thread, awaited without blocking the caller's thread.
pub async fn push_context_async(
    ctx: &BuildContext,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let files = context_files(ctx);
    push_files_async(files, remote_url, schemes, user, password, timeout).await
}

/// Pushes a commit holding `files` (name, content) to `master` of
/// `remote_url` (one of `schemes`), as [`push_context_async`] pushes a
/// deploy context.
pub async fn push_files_async(
    files: Vec<(&'static str, Vec<u8>)>,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let session = Session::new(remote_url, schemes, user, password, timeout)?;
    session
        .run_on_worker_async(move |session| push_in_memory(session, &files))
        .await
}

/// The files of a deploy context, owned (they go to a worker thread).
fn context_files(ctx: &BuildContext) -> Vec<(&'static str, Vec<u8>)> {
    ctx.files()
        .into_iter()
        .map(|(name, content)| (name, content.to_vec()))
        .collect()
}

/// Builds the deploy commit in memory and pushes it. BLOCKING.
fn push_in_memory(
    session: &Session,
    files: &[(&'static str, Vec<u8>)],
) -> Result<PushOutcome, PushError> {
    let (repo, commit) = build_commit(files).map_err(|e| RemoteError::Local {
        detail: session.scrub(e.message()),
    })?;
    let observed = Observed::default();
    push(session, &repo, commit, &observed).map_err(|e| session.classify(&e, &observed))
}

/// Pushes `commit` to `master` unless the remote already has `master`
/// (seen in the push negotiation, before anything is sent).
fn push(
    session: &Session,
    repo: &Repository,
    commit: Oid,
    observed: &Observed,
) -> Result<PushOutcome, git2::Error> {
    let mut remote = repo.remote_anonymous(&session.url.connect)?;
    let mut callbacks = session.callbacks(observed);
    callbacks.push_negotiation(|updates| {
        if session.past_deadline(observed) {
            return Err(git2::Error::from_str("deadline passed"));
        }
        if updates.iter().any(|update| !update.src().is_zero()) {
            observed.target_exists.set(true);
            return Err(git2::Error::from_str("master exists on the remote"));
        }
        Ok(())
    });
    callbacks.push_update_reference(|refname, status| {
        if let Some(reason) = status {
            *observed.rejection.borrow_mut() = Some(format!("{refname}: {reason}"));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options
        .remote_callbacks(callbacks)
        .follow_redirects(NO_REDIRECTS);
    match remote.push(&[format!("{commit}:{DEPLOY_REF}")], Some(&mut options)) {
        Err(_) if observed.target_exists.get() => return Ok(PushOutcome::AlreadyLaunched),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    if observed.rejection.borrow().is_some() {
        return Err(git2::Error::from_str("reference rejected"));
    }
    Ok(PushOutcome::Pushed)
}

/// A repository without a directory: its objects in memory (libgit2's
/// `mempack` backend, freed with the repository), no references, and an
/// empty configuration of its own, so that nothing of the global or system
/// configuration is read.
fn in_memory_repository() -> Result<Repository, git2::Error> {
    let odb = Odb::new()?;
    odb.add_new_mempack_backend(1)?;
    let repo = Repository::from_odb(odb)?;
    repo.set_config(&Config::new()?)?;
    Ok(repo)
}

/// An in-memory repository holding one commit (returned, on no branch)
/// with `files`.
fn build_commit(files: &[(&'static str, Vec<u8>)]) -> Result<(Repository, Oid), git2::Error> {
    let repo = in_memory_repository()?;
    let mut tree = repo.treebuilder(None)?;
    for (name, content) in files {
        let blob = repo.blob(content)?;
        tree.insert(name, blob, 0o100_644)?;
    }
    let tree_id = tree.write()?;
    drop(tree);
    let signature = Signature::now(COMMITTER_NAME, COMMITTER_EMAIL)?;
    let commit = {
        let tree = repo.find_tree(tree_id)?;
        repo.commit(None, &signature, &signature, COMMIT_MESSAGE, &tree, &[])?
    };
    Ok((repo, commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(job_json: &str) -> BuildContext {
        BuildContext {
            dockerfile: "FROM x\n".into(),
            runner_toml: "a = 1\n".into(),
            job_json: job_json.into(),
        }
    }

    #[test]
    fn the_commit_holds_the_three_files() {
        let ctx = context("{}");
        let (repo, id) = build_commit(&context_files(&ctx)).expect("commit");
        assert!(repo.workdir().is_none());
        let commit = repo.find_commit(id).expect("commit");
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

    #[test]
    fn each_repository_holds_only_its_own_commit() {
        let (first, first_id) =
            build_commit(&context_files(&context("{\"id\": 1}"))).expect("first");
        let (second, second_id) =
            build_commit(&context_files(&context("{\"id\": 2}"))).expect("second");
        assert_ne!(first_id, second_id);
        assert!(first.find_commit(second_id).is_err());
        assert!(second.find_commit(first_id).is_err());
    }
}
