//! Reading `job.json` back from a deployment repository with git2.
//!
//! The counterpart of [`crate::git::push`], for reconciliation: an
//! application the state does not know (a state file lost or moved aside)
//! is adopted only if its job still runs at the coordinator, and the job
//! (its id and token) is in the `job.json` the runner pushed to `master`.
//!
//! 1. a fresh bare repository in a temporary directory (libgit2 writes a
//!    fetched pack only to a repository on disk), isolated from the global
//!    and system configuration;
//! 2. the remote's refs are listed: no `refs/heads/master` (an empty
//!    repository, a job never pushed) is [`None`];
//! 3. `master` is fetched, shallow over HTTP (depth 1, no tags), and `job.json` is
//!    read from its tree; a tree without it is [`None`] too (not something
//!    this runner pushed), a file larger than [`MAX_JOB_FILE_BYTES`] is an
//!    error; the transfer itself is aborted past [`MAX_FETCH_BYTES`]
//!    received (a transfer progress callback), so that a repository filled
//!    by someone else cannot make the runner download without bound. Both
//!    are [`RemoteError::TooLarge`], never retryable.
//!
//! The push's URL rules and errors, through the same code (`RemoteUrl`,
//! [`RemoteError`], [`RemoteError::is_retryable`]); the transport is
//! libgit2's (the push has its own, over awc): credentials only through
//! the callback (offered at most [`crate::git::MAX_CREDENTIAL_OFFERS`]
//! times per connection), never in a URL; errors show the URL without
//! userinfo, query or fragment; a git worker thread and a deadline checked
//! in every callback, so that a server that stops answering costs at most
//! the timeout.
//!
//! [`fetch_job_json`] BLOCKS; [`fetch_job_json_async`], what the Clever
//! Cloud executor awaits, does not.

use super::session::{
    isolated_bare_repository, Observed, RemoteError, RemoteSchemes, Session, DEPLOY_REF,
    NO_REDIRECTS,
};
use crate::secret::Secret;
use git2::{AutotagOption, Direction, FetchOptions, ObjectType, Repository};
use std::time::Duration;

/// The file holding the job payload at the root of the deploy commit.
pub const JOB_FILE: &str = "job.json";

/// Largest `job.json` read back (a job payload is a few KiB to a few
/// hundred KiB; anything this large is not one).
pub const MAX_JOB_FILE_BYTES: usize = 4 << 20;

/// Most bytes a fetch may receive: the largest `job.json` plus room for the
/// rest of the pushed context and the pack's overhead.
pub const MAX_FETCH_BYTES: usize = MAX_JOB_FILE_BYTES + (1 << 20);

/// Local reference the fetched `master` is stored under.
const FETCHED_REF: &str = "refs/hpd/deployed";

/// What the fetch found, before it becomes the public answer.
enum Found {
    /// No `master` on the remote.
    NoBranch,
    /// `master` has no regular `job.json` at its root.
    NoFile,
    /// The file is too large to be a job payload.
    TooLarge(usize),
    /// The content of `job.json`.
    File(Vec<u8>),
}

/// Reads `job.json` from `master` of `remote_url` (one of
/// `schemes`), authenticating as
/// `user` / `password` if the server asks. `Ok(None)` when the repository
/// has no `master` (empty: nothing was pushed) or `master` has no
/// `job.json`. BLOCKING; see the module documentation.
pub fn fetch_job_json(
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, RemoteError> {
    let session = Session::new(remote_url, schemes, user, password, timeout)?;
    session.run_on_worker(fetch_in_temporary_repository)
}

/// [`fetch_job_json`] for async callers: the same fetch on a git worker
/// thread, awaited without blocking the caller's thread.
pub async fn fetch_job_json_async(
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<Option<Vec<u8>>, RemoteError> {
    let session = Session::new(remote_url, schemes, user, password, timeout)?;
    session
        .run_on_worker_async(fetch_in_temporary_repository)
        .await
}

/// Fetches into an isolated bare repository in a temporary directory
/// (removed at the end) and reads `job.json`. BLOCKING.
fn fetch_in_temporary_repository(session: &Session) -> Result<Option<Vec<u8>>, RemoteError> {
    let dir = tempfile::Builder::new()
        .prefix("hpd-fetch-")
        .tempdir()
        .map_err(|e| RemoteError::Local {
            detail: format!("cannot create a temporary directory: {e}"),
        })?;
    let repo = isolated_bare_repository(dir.path()).map_err(|e| RemoteError::Local {
        detail: session.scrub(e.message()),
    })?;
    let observed = Observed::default();
    observed.receive_limit.set(Some(MAX_FETCH_BYTES));
    let found = fetch(session, &repo, &observed);
    match found.map_err(|e| session.classify(&e, &observed))? {
        Found::NoBranch | Found::NoFile => Ok(None),
        Found::File(bytes) => Ok(Some(bytes)),
        Found::TooLarge(size) => Err(RemoteError::TooLarge {
            url: session.url.display.clone(),
            detail: format!(
                "{JOB_FILE} on master is {size} bytes, more than the \
                 {MAX_JOB_FILE_BYTES} a job payload may have"
            ),
        }),
    }
}

/// Lists the remote refs, fetches `master` if present, reads `job.json`.
fn fetch(session: &Session, repo: &Repository, observed: &Observed) -> Result<Found, git2::Error> {
    let mut remote = repo.remote_anonymous(&session.url.connect)?;
    let tip = {
        let connection =
            remote.connect_auth(Direction::Fetch, Some(session.callbacks(observed)), None)?;
        connection
            .list()?
            .iter()
            .find(|head| head.name() == DEPLOY_REF)
            .map(|head| head.oid())
    };
    let Some(tip) = tip else {
        return Ok(Found::NoBranch);
    };
    observed.credential_offers.set(0);
    let mut options = FetchOptions::new();
    options
        .remote_callbacks(session.callbacks(observed))
        .download_tags(AutotagOption::None)
        .follow_redirects(NO_REDIRECTS);
    // libgit2's local transport cannot fetch shallow (and has nothing to
    // save by it); smart HTTP can.
    if !session.url.connect.starts_with("file:") {
        options.depth(1);
    }
    remote.fetch(
        &[format!("+{DEPLOY_REF}:{FETCHED_REF}")],
        Some(&mut options),
        None,
    )?;
    // The fetched ref if libgit2 wrote it, else the advertised tip (whose
    // objects the fetch brought either way).
    let commit = match repo.find_reference(FETCHED_REF) {
        Ok(reference) => reference.peel_to_commit()?,
        Err(_) => repo.find_commit(tip)?,
    };
    let tree = commit.tree()?;
    let Some(entry) = tree.get_name(JOB_FILE) else {
        return Ok(Found::NoFile);
    };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(Found::NoFile);
    }
    let (size, _) = repo.odb()?.read_header(entry.id())?;
    if size > MAX_JOB_FILE_BYTES {
        return Ok(Found::TooLarge(size));
    }
    let blob = repo.find_blob(entry.id())?;
    Ok(Found::File(blob.content().to_vec()))
}
