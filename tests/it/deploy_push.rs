//! Push of deploy contexts: to local bare repositories over `file://`
//! (the commit's content, the pack indexed, `master` created or found),
//! and to minimal fake HTTP servers on 127.0.0.1 for the authentication,
//! status and timeout paths.

use crate::git_exchanges::Exchanges;
use heptapod_paas_runner::deploy::BuildContext;
use heptapod_paas_runner::git::RemoteSchemes;
use heptapod_paas_runner::git::{
    push_context, PushError, PushOutcome, COMMITTER_EMAIL, COMMITTER_NAME, COMMIT_MESSAGE,
    DEPLOY_REF,
};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::Job;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-token";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The exchanges of these tests (bare repositories on disk included).
const GIT: Exchanges = Exchanges {
    schemes: RemoteSchemes::NetworkAndLocalPaths,
    timeout: TIMEOUT,
};

fn context() -> BuildContext {
    let job = Job::from_payload(json!({
        "id": 4242, "token": "glcbt-job",
        "variables": [{"key": "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX",
                       "value": "gl.test:443/g/dependency_proxy/containers"}],
        "image": {"name": "debian:bookworm"},
        "services": [{"name": "postgres:16", "alias": null}]}))
    .expect("job");
    BuildContext::new(None, "concurrent = 1\r\n[[runners]]\n".into(), &job).expect("context")
}

fn file_url(path: &Path) -> String {
    url::Url::from_file_path(path)
        .expect("absolute path")
        .to_string()
}

/// The files at `refs/heads/master` of the bare repository `path`.
fn master_files(path: &Path) -> Vec<(String, Vec<u8>)> {
    let repo = git2::Repository::open_bare(path).expect("open remote");
    let commit = repo
        .find_reference(DEPLOY_REF)
        .expect("master exists")
        .peel_to_commit()
        .expect("commit");
    assert_eq!(commit.message().ok(), Some(COMMIT_MESSAGE));
    assert_eq!(commit.author().name().ok(), Some(COMMITTER_NAME));
    assert_eq!(commit.committer().email().ok(), Some(COMMITTER_EMAIL));
    let tree = commit.tree().expect("tree");
    tree.iter()
        .map(|entry| {
            let blob = repo.find_blob(entry.id()).expect("blob");
            (
                entry.name().expect("utf-8 name").to_owned(),
                blob.content().to_vec(),
            )
        })
        .collect()
}

fn expected_files(ctx: &BuildContext) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = ctx
        .files()
        .iter()
        .map(|(name, content)| ((*name).to_owned(), content.to_vec()))
        .collect();
    files.sort();
    files
}

#[test]
fn first_push_lands_on_master_and_second_is_already_launched() {
    let remote = tempfile::tempdir().expect("tempdir");
    git2::Repository::init_bare(remote.path()).expect("bare remote");
    let url = file_url(remote.path());
    let ctx = context();

    let outcome = GIT.push(&ctx, &url, "Jenkins", PASSWORD);
    assert_eq!(outcome, Ok(PushOutcome::Pushed));
    let mut files = master_files(remote.path());
    files.sort();
    assert_eq!(files, expected_files(&ctx));
    let first = git2::Repository::open_bare(remote.path())
        .and_then(|r| r.refname_to_id(DEPLOY_REF))
        .expect("master id");

    // Another context (a restart with a rebuilt payload): not pushed.
    let mut other = ctx.clone();
    other.job_json = "{}".into();
    let outcome = GIT.push(&other, &url, "Jenkins", PASSWORD);
    assert_eq!(outcome, Ok(PushOutcome::AlreadyLaunched));
    let after = git2::Repository::open_bare(remote.path())
        .and_then(|r| r.refname_to_id(DEPLOY_REF))
        .expect("master id");
    assert_eq!(after, first);
}

#[test]
fn other_branches_do_not_count_as_launched() {
    let remote = tempfile::tempdir().expect("tempdir");
    let repo = git2::Repository::init_bare(remote.path()).expect("bare remote");
    // A `main` branch (and a tag named master) exist, not refs/heads/master.
    let sig = git2::Signature::now("x", "x@example.test").expect("sig");
    let tree = repo
        .treebuilder(None)
        .and_then(|t| t.write())
        .and_then(|id| repo.find_tree(id))
        .expect("tree");
    let commit = repo
        .commit(Some("refs/heads/main"), &sig, &sig, "other", &tree, &[])
        .expect("commit");
    repo.reference("refs/tags/master", commit, false, "tag")
        .expect("tag");
    let ctx = context();
    let outcome = push_context(
        &ctx,
        &file_url(remote.path()),
        GIT.schemes,
        "Jenkins",
        &Secret::new(PASSWORD),
        TIMEOUT,
    );
    assert_eq!(outcome, Ok(PushOutcome::Pushed));
    let mut files = master_files(remote.path());
    files.sort();
    assert_eq!(files, expected_files(&ctx));
}

#[test]
fn missing_remote_repository_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = file_url(&dir.path().join("nope.git"));
    let err = GIT
        .push(&context(), &url, "u", PASSWORD)
        .expect_err("no repository");
    assert!(
        matches!(err, PushError::Git { .. } | PushError::Transport { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.git"), "{err}");
}

// ---------------------------------------------------------------------------
// Minimal fake HTTP server
// ---------------------------------------------------------------------------

/// What the fake server does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers every request with this status (401 with a Basic challenge).
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// A request as the fake saw it.
#[derive(Clone, Debug)]
struct SeenRequest {
    request_line: String,
    authorization: Option<String>,
}

struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut held = Vec::new();
            // Bounded by count and time.
            for _ in 0..10_000 {
                if stopping.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(30) {
                    break;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(stream) = serve(stream, behaviour, &seen) {
                            held.push(stream);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServer {
            url: format!("http://127.0.0.1:{port}/git/app_1.git?ignored=1"),
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request head and answers it; returns the stream to keep open
/// when hanging.
fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    seen: &Mutex<Vec<SeenRequest>>,
) -> Option<TcpStream> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_owned());
    if let Ok(mut all) = seen.lock() {
        all.push(SeenRequest {
            request_line,
            authorization,
        });
    }
    match behaviour {
        Behaviour::Hang => Some(stream),
        Behaviour::Status(status) => {
            let extra = if status == 401 {
                "WWW-Authenticate: Basic realm=\"fake\"\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 {status} Fake\r\n{extra}Content-Type: text/plain\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(answer.as_bytes());
            None
        }
    }
}

#[test]
fn refused_credentials_end_in_an_auth_error_at_the_first_request() {
    let server = FakeServer::start(Behaviour::Status(401));
    let started = Instant::now();
    let err = GIT
        .push(&context(), &server.url, "Jenkins", PASSWORD)
        .expect_err("refused");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, PushError::Auth { .. }), "{err:?}");
    assert!(!err.is_retryable());
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains("ignored=1"), "query shown: {text}");
        assert!(text.contains("127.0.0.1"), "{text}");
    }

    // One request: the credentials go with it, in a header, never in the
    // URL; a 401 to them ends the push.
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let first = requests.first().expect("one request");
    assert!(
        first
            .request_line
            .starts_with("GET /git/app_1.git/info/refs?service=git-receive-pack "),
        "{first:?}"
    );
    assert_eq!(
        first.authorization.as_deref(),
        Some("Basic SmVua2luczpzM2NyZXQtdG9rZW4=")
    );
    assert!(requests.iter().all(|r| !r.request_line.contains(PASSWORD)));
}

#[test]
fn server_errors_are_retryable_http_errors() {
    for (status, retryable) in [(500, true), (503, true), (403, false)] {
        let server = FakeServer::start(Behaviour::Status(status));
        let err = GIT
            .push(&context(), &server.url, "Jenkins", PASSWORD)
            .expect_err("server error");
        assert!(
            matches!(&err, PushError::Http { status: s, .. } if *s == status),
            "{err:?}"
        );
        assert_eq!(err.is_retryable(), retryable, "{err}");
    }
}

#[test]
fn connection_refused_is_a_retryable_transport_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}/app.git");
    let err = GIT
        .push(&context(), &url, "u", PASSWORD)
        .expect_err("refused");
    assert!(matches!(err, PushError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[test]
fn a_silent_server_cannot_hold_the_caller_past_the_timeout() {
    let server = FakeServer::start(Behaviour::Hang);
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = push_context(
        &context(),
        &server.url,
        GIT.schemes,
        "u",
        &Secret::new(PASSWORD),
        timeout,
    )
    .expect_err("timeout");
    let elapsed = started.elapsed();
    assert!(matches!(err, PushError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn huge_timeouts_do_not_overflow() {
    let remote = tempfile::tempdir().expect("tempdir");
    git2::Repository::init_bare(remote.path()).expect("bare remote");
    let outcome = push_context(
        &context(),
        &file_url(remote.path()),
        GIT.schemes,
        "u",
        &Secret::new(PASSWORD),
        Duration::MAX,
    );
    assert_eq!(outcome, Ok(PushOutcome::Pushed));
}

#[test]
fn a_refused_ref_update_is_a_permanent_rejection() {
    let remote = tempfile::tempdir().expect("tempdir");
    git2::Repository::init_bare(remote.path()).expect("bare remote");
    // A stale lock on master makes the remote refuse the update.
    std::fs::write(remote.path().join("refs/heads/master.lock"), b"").expect("lock");
    let err = push_context(
        &context(),
        &file_url(remote.path()),
        GIT.schemes,
        "u",
        &Secret::new(PASSWORD),
        TIMEOUT,
    )
    .expect_err("rejected");
    match &err {
        PushError::Rejected { reason, .. } => {
            assert!(reason.starts_with("refs/heads/master: "), "{reason}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(!err.is_retryable());
}
