//! Push of a deploy context to a deployment repository: the objects built
//! with git2 in memory, the pack written by `src/git/pack.rs`, sent with
//! the runner's own HTTP client (awc, the one the Clever Cloud API client
//! uses) on the calling thread, over Git's smart HTTP protocol
//! (`src/git/smart_http.rs`). No libgit2 transport, no thread of its own.
//!
//! What the Python reference does with `git` subprocesses (init, commit,
//! push with the password in the URL), done without the pitfalls of a
//! user's Git configuration, hooks and credential helpers, and without
//! touching the disk:
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
//!    written to that database only; its objects (commit, tree, blobs) are
//!    then packed, uncompressed, into one buffer and the repository dropped;
//! 3. `GET <url>/info/refs?service=git-receive-pack`, Basic credentials
//!    sent at once: when the advertised references hold
//!    `refs/heads/master`, a previous push launched the job and nothing is
//!    sent ([`PushOutcome::AlreadyLaunched`]);
//! 4. `POST <url>/git-receive-pack`: the creation of `refs/heads/master`
//!    (not forced) at the commit, with the pack; the server's status report
//!    (`report-status`, asked for when advertised) says whether the
//!    reference was updated; a refusal is [`RemoteError::Rejected`] with
//!    the server's reason (bounded, control characters escaped).
//!
//! Two requests per push. Credentials go only to the deployment URL
//! (redirects are not followed: a 3xx is [`RemoteError::Http`]), in the
//! `Authorization` header, never in a URL; errors carry the URL without
//! userinfo, query or fragment, and never the password. The whole push is
//! bounded by its `timeout` ([`RemoteError::Timeout`]).
//!
//! A `file:` URL (accepted only where `RemoteSchemes::NetworkAndLocalPaths`
//! says so: tests) names a bare repository on this host: the same pack is
//! indexed into it by libgit2 and `refs/heads/master` created there, on the
//! blocking pool.

use super::pack::{write_pack, PackObjectKind};
use super::session::{
    RemoteError, RemoteSchemes, RemoteUrl, DEPLOY_REF, MAX_TIMEOUT, SERVER_CONNECT_TIMEOUT,
};
use super::smart_http::{
    parse_advertisement, parse_report, receive_pack_request, ProtocolError, Report,
    MAX_ANSWER_BYTES,
};
use crate::deploy::BuildContext;
use crate::secret::{Secret, MASK};
use awc::error::{PayloadError, SendRequestError};
use awc::http::{header, StatusCode};
use git2::{Config, ObjectType, Odb, Oid, Repository, Signature};
use std::io::Write;
use std::time::{Duration, Instant};

/// Committer and author name of the deploy commit.
pub const COMMITTER_NAME: &str = "Heptapod Paas Runner";

/// Committer and author email of the deploy commit.
pub const COMMITTER_EMAIL: &str = "paasrunner@heptapod.test";

/// Message of the deploy commit (as `git commit -m "Job definition"` stores it).
pub const COMMIT_MESSAGE: &str = "Job definition\n";

/// The `User-Agent` of the push's requests (Git servers route on the
/// `git/` prefix).
pub const USER_AGENT: &str = concat!(
    "git/2.0 (heptapod-paas-runner/",
    env!("CARGO_PKG_VERSION"),
    ")"
);

/// The `agent=` capability sent when the server advertises it.
const AGENT: &str = concat!("heptapod-paas-runner/", env!("CARGO_PKG_VERSION"));

/// What a successful push did.
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

/// An HTTP client for pushes where no other is at hand (tests, tools):
/// the adapters' connector (`src/http_client.rs`), redirects not
/// followed. Must be called inside an actix system.
pub fn push_client() -> awc::Client {
    awc::Client::builder()
        .connector(crate::http_client::connector(SERVER_CONNECT_TIMEOUT, None))
        .disable_redirects()
        .timeout(MAX_TIMEOUT)
        .finish()
}

/// [`push_context_async`] for callers outside an actix system (tests,
/// tools): BLOCKS the calling thread on a runtime of its own, with a
/// [`push_client`]. Must not be called from inside a runtime.
pub fn push_context(
    ctx: &BuildContext,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let files = context_files(ctx);
    actix_rt::System::new().block_on(async {
        let client = push_client();
        push_files_async(&client, files, remote_url, schemes, user, password, timeout).await
    })
}

/// Pushes `ctx` to `master` of `remote_url` (one of `schemes`) with
/// `client` (which must not follow redirects), as `user` / `password`,
/// within `timeout`. See the module documentation.
pub async fn push_context_async(
    client: &awc::Client,
    ctx: &BuildContext,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let files = context_files(ctx);
    push_files_async(client, files, remote_url, schemes, user, password, timeout).await
}

/// Pushes a commit holding `files` (name, content) to `master` of
/// `remote_url` (one of `schemes`), as [`push_context_async`] pushes a
/// deploy context.
pub async fn push_files_async(
    client: &awc::Client,
    files: Vec<(&'static str, Vec<u8>)>,
    remote_url: &str,
    schemes: RemoteSchemes,
    user: &str,
    password: &Secret,
    timeout: Duration,
) -> Result<PushOutcome, PushError> {
    let url = RemoteUrl::parse(remote_url, schemes)?;
    let timeout = timeout.min(MAX_TIMEOUT);
    let push = Push {
        url,
        user,
        password,
        deadline: Instant::now() + timeout,
        timeout,
    };
    let packed = packed_commit(&files).map_err(|e| RemoteError::Local {
        detail: push.scrub(e.message()),
    })?;
    drop(files);
    if push.url.connect.starts_with("file:") {
        return push.to_local_path(packed).await;
    }
    let bounded = async {
        // A closed semaphore (never: it is a static) would bound nothing.
        let _slot = PUSH_SLOTS.acquire().await.ok();
        push.over_http(client, &packed).await
    };
    match actix_rt::time::timeout(timeout, bounded).await {
        Ok(result) => result,
        Err(_) => Err(push.timed_out()),
    }
}

/// Pushes talking to their remotes at once, in this process: the next
/// ones wait for a slot (the wait counts in their timeout), so that a burst
/// of launches does not open that many receive-packs on the PAAS's Git
/// servers at once.
pub const MAX_CONCURRENT_PUSHES: usize = 8;

static PUSH_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_CONCURRENT_PUSHES);

/// The files of a deploy context, owned.
fn context_files(ctx: &BuildContext) -> Vec<(&'static str, Vec<u8>)> {
    ctx.files()
        .into_iter()
        .map(|(name, content)| (name, content.to_vec()))
        .collect()
}

/// The deploy commit's id and the pack of its objects.
struct Packed {
    commit: Oid,
    pack: Vec<u8>,
}

/// Builds the deploy commit of `files` in memory and packs its objects.
fn packed_commit(files: &[(&'static str, Vec<u8>)]) -> Result<Packed, git2::Error> {
    let (repo, commit) = build_commit(files)?;
    let odb = repo.odb()?;
    let commit_object = odb.read(commit)?;
    let tree = repo.find_commit(commit)?.tree_id();
    let tree_object = odb.read(tree)?;
    let mut blob_ids: Vec<Oid> = Vec::new();
    for entry in repo.find_tree(tree)?.iter() {
        if !blob_ids.contains(&entry.id()) {
            blob_ids.push(entry.id());
        }
    }
    let blobs = blob_ids
        .into_iter()
        .map(|id| odb.read(id))
        .collect::<Result<Vec<_>, _>>()?;
    let mut objects = vec![
        (PackObjectKind::Commit, commit_object.data()),
        (PackObjectKind::Tree, tree_object.data()),
    ];
    for blob in &blobs {
        if blob.kind() != ObjectType::Blob {
            return Err(git2::Error::from_str("a tree entry is not a blob"));
        }
        objects.push((PackObjectKind::Blob, blob.data()));
    }
    Ok(Packed {
        commit,
        pack: write_pack(&objects),
    })
}

/// One push: where, as whom, until when.
struct Push<'a> {
    url: RemoteUrl,
    user: &'a str,
    password: &'a Secret,
    deadline: Instant,
    timeout: Duration,
}

impl Push<'_> {
    /// The two requests of a push over smart HTTP.
    async fn over_http(
        &self,
        client: &awc::Client,
        packed: &Packed,
    ) -> Result<PushOutcome, PushError> {
        let refs_url = self.endpoint("info/refs", Some("service=git-receive-pack"))?;
        let request = client
            .get(refs_url)
            .insert_header((header::ACCEPT, "*/*"))
            .insert_header((header::PRAGMA, "no-cache"));
        let body = self.exchange(request, None).await?;
        let advertisement = parse_advertisement(&body, DEPLOY_REF).map_err(|e| self.protocol(e))?;
        drop(body);
        if advertisement.target.is_some() {
            return Ok(PushOutcome::AlreadyLaunched);
        }
        let request_body = receive_pack_request(
            DEPLOY_REF,
            &packed.commit.to_string(),
            &advertisement,
            AGENT,
            &packed.pack,
        );
        let request = client
            .post(self.endpoint("git-receive-pack", None)?)
            .insert_header((
                header::CONTENT_TYPE,
                "application/x-git-receive-pack-request",
            ))
            .insert_header((header::ACCEPT, "application/x-git-receive-pack-result"));
        let report = self.exchange(request, Some(request_body)).await?;
        if !advertisement.report_status {
            return Ok(PushOutcome::Pushed);
        }
        match parse_report(&report, DEPLOY_REF).map_err(|e| self.protocol(e))? {
            Report::Updated => Ok(PushOutcome::Pushed),
            Report::Refused(reason) => Err(RemoteError::Rejected {
                url: self.url.display.clone(),
                reason: self.scrub(&reason),
            }),
        }
    }

    /// `<url>/<service>` (query and fragment of the deployment URL
    /// dropped) with `query`.
    fn endpoint(&self, service: &str, query: Option<&str>) -> Result<String, PushError> {
        let mut url = url::Url::parse(&self.url.connect).map_err(|e| RemoteError::InvalidUrl {
            url: self.url.display.clone(),
            detail: e.to_string(),
        })?;
        let path = format!("{}/{service}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(query);
        url.set_fragment(None);
        Ok(url.to_string())
    }

    /// Sends `request` (with `body`, if any) with the credentials and the
    /// time left, and reads its answer's body (at most
    /// [`MAX_ANSWER_BYTES`]) when the status is a success.
    async fn exchange(
        &self,
        request: awc::ClientRequest,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, PushError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timed_out());
        }
        let request = request
            .insert_header((header::USER_AGENT, USER_AGENT))
            .basic_auth(self.user, self.password.expose())
            .timeout(left);
        let sent = match body {
            Some(body) => request.send_body(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| self.send_error(e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(RemoteError::Auth {
                url: self.url.display.clone(),
                user: self.user.to_owned(),
            });
        }
        if !status.is_success() {
            return Err(RemoteError::Http {
                url: self.url.display.clone(),
                status: status.as_u16(),
            });
        }
        let body = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                PayloadError::Overflow => RemoteError::TooLarge {
                    url: self.url.display.clone(),
                    detail: format!("the server's answer exceeded {MAX_ANSWER_BYTES} bytes"),
                },
                other => self.transport(&format!("reading the answer: {other}")),
            })?;
        Ok(body.to_vec())
    }

    fn send_error(&self, error: SendRequestError) -> PushError {
        match error {
            SendRequestError::Timeout => self.timed_out(),
            other => self.transport(&other.to_string()),
        }
    }

    fn protocol(&self, error: ProtocolError) -> PushError {
        match error {
            ProtocolError::TooLarge(what) => RemoteError::TooLarge {
                url: self.url.display.clone(),
                detail: format!("git protocol: {what}"),
            },
            ProtocolError::Malformed(_) => self.transport(&format!("git protocol: {error}")),
        }
    }

    fn transport(&self, detail: &str) -> PushError {
        RemoteError::Transport {
            url: self.url.display.clone(),
            detail: self.scrub(detail),
        }
    }

    fn timed_out(&self) -> PushError {
        RemoteError::Timeout {
            url: self.url.display.clone(),
            timeout: self.timeout,
        }
    }

    /// Masks the password in a message, should one ever echo it.
    fn scrub(&self, message: &str) -> String {
        let secret = self.password.expose();
        if secret.is_empty() {
            message.to_owned()
        } else {
            message.replace(secret, MASK)
        }
    }

    /// The push to a bare repository on this host (a `file:` URL): the
    /// pack indexed into it, then `master` created unless it exists.
    async fn to_local_path(&self, packed: Packed) -> Result<PushOutcome, PushError> {
        let path = url::Url::parse(&self.url.connect)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| RemoteError::InvalidUrl {
                url: self.url.display.clone(),
                detail: "not a local path".into(),
            })?;
        let display = self.url.display.clone();
        let work = actix_rt::task::spawn_blocking(move || push_to_bare(&path, &packed));
        let timeout = self.timeout;
        match actix_rt::time::timeout(timeout, work).await {
            Err(_) => Err(self.timed_out()),
            Ok(Err(_)) => Err(RemoteError::Local {
                detail: "the local push ended without a result".into(),
            }),
            Ok(Ok(Ok(outcome))) => Ok(outcome),
            Ok(Ok(Err(LocalPushError::Refused(e)))) => Err(RemoteError::Rejected {
                url: display,
                reason: self.scrub(&format!("{DEPLOY_REF}: {}", e.message())),
            }),
            Ok(Ok(Err(LocalPushError::Git(e)))) => Err(RemoteError::Git {
                url: display,
                detail: self.scrub(e.message()),
            }),
        }
    }
}

/// Why a push to a bare repository on this host failed.
enum LocalPushError {
    /// The repository or the pack failed.
    Git(git2::Error),
    /// The creation of `master` failed.
    Refused(git2::Error),
}

/// Indexes `packed` into the bare repository at `path` and creates
/// `master` there unless it exists. BLOCKING.
fn push_to_bare(path: &std::path::Path, packed: &Packed) -> Result<PushOutcome, LocalPushError> {
    let repo = Repository::open_bare(path).map_err(LocalPushError::Git)?;
    if repo.find_reference(DEPLOY_REF).is_ok() {
        return Ok(PushOutcome::AlreadyLaunched);
    }
    let odb = repo.odb().map_err(LocalPushError::Git)?;
    let mut writer = odb.packwriter().map_err(LocalPushError::Git)?;
    writer
        .write_all(&packed.pack)
        .map_err(|e| LocalPushError::Git(git2::Error::from_str(&e.to_string())))?;
    writer.commit().map_err(LocalPushError::Git)?;
    repo.reference(DEPLOY_REF, packed.commit, false, "push")
        .map_err(LocalPushError::Refused)?;
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
    fn the_pack_holds_the_commit_its_tree_and_each_blob_once() {
        let files = vec![
            ("Dockerfile", b"same\n".to_vec()),
            ("runner.toml", b"same\n".to_vec()),
            ("job.json", b"{}".to_vec()),
        ];
        let packed = packed_commit(&files).expect("packed");
        // Commit, tree, two distinct blobs.
        assert_eq!(packed.pack.get(8..12), Some(&[0u8, 0, 0, 4][..]));
        assert!(!packed.commit.is_zero());
    }

    #[test]
    fn requests_go_to_the_deployment_url_without_its_query() {
        let password = Secret::new("pw".to_owned());
        let table = [
            (
                "https://Jenkins:pw@push.example/app_1.git?token=x#frag",
                "https://push.example/app_1.git/info/refs?service=git-receive-pack",
                "https://push.example/app_1.git/git-receive-pack",
            ),
            (
                "http://127.0.0.1:8080/git/app_2.git/",
                "http://127.0.0.1:8080/git/app_2.git/info/refs?service=git-receive-pack",
                "http://127.0.0.1:8080/git/app_2.git/git-receive-pack",
            ),
        ];
        for (raw, refs, receive) in table {
            let push = Push {
                url: RemoteUrl::parse(raw, RemoteSchemes::Network).expect("valid"),
                user: "Jenkins",
                password: &password,
                deadline: Instant::now(),
                timeout: Duration::ZERO,
            };
            assert_eq!(
                push.endpoint("info/refs", Some("service=git-receive-pack")),
                Ok(refs.to_owned())
            );
            assert_eq!(
                push.endpoint("git-receive-pack", None),
                Ok(receive.to_owned())
            );
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
