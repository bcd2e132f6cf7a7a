//! Push over smart HTTP with basic auth, against `git http-backend` run as
//! CGI behind a minimal HTTP/1.1 server on 127.0.0.1 (what the Clever Cloud
//! push front-end does, as far as a client can tell).

use crate::git_exchanges::Exchanges;
use heptapod_paas_runner::deploy::BuildContext;
use heptapod_paas_runner::git::RemoteSchemes;
use heptapod_paas_runner::git::{
    PushError, PushOutcome, RemoteError, DEPLOY_REF, MAX_CONCURRENT_PUSHES, MAX_FETCH_BYTES,
};
use paas_actors::ports::Job;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const USER: &str = "Jenkins";
const PASSWORD: &str = "orga-token-123";
/// `base64("Jenkins:orga-token-123")`.
const EXPECTED_AUTH: &str = "Basic SmVua2luczpvcmdhLXRva2VuLTEyMw==";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The exchanges of these tests.
const GIT: Exchanges = Exchanges {
    schemes: RemoteSchemes::Network,
    timeout: TIMEOUT,
};

/// `git http-backend` behind basic auth, serving `root/*.git`.
struct GitHttpServer {
    base: String,
    requests: Arc<AtomicUsize>,
    /// The request line (method and target) of every request served.
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GitHttpServer {
    fn start(root: &Path, scratch: &Path) -> GitHttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (requests, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let (count, stopping, lines) = (requests.clone(), stop.clone(), log.clone());
        let (root, scratch) = (root.to_owned(), scratch.to_owned());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            for _ in 0..100_000 {
                if stopping.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        // A failed exchange just closes the connection.
                        let _ = serve(stream, &root, &scratch, &lines);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        GitHttpServer {
            base: format!("http://127.0.0.1:{port}/git"),
            requests,
            log,
            stop,
            thread: Some(thread),
        }
    }
}

impl GitHttpServer {
    fn lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a request (Content-Length or chunked body), checks basic auth,
/// runs `git http-backend`, relays its answer.
fn serve(
    stream: TcpStream,
    root: &Path,
    scratch: &Path,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    log.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(format!("{method} {target}"));
    let (mut length, mut chunked, mut auth, mut content_type) = (0usize, false, None, None);
    for _ in 0..100 {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "authorization" => auth = Some(value),
                "content-type" => content_type = Some(value),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        for _ in 0..100_000 {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }

    if auth.as_deref() != Some(EXPECTED_AUTH) {
        return writer.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"fake\"\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let path_info = path.strip_prefix("/git").unwrap_or(path);
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("HOME", scratch)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", USER)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", content_type.unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&body)?;
    }
    let output = child.wait_with_output()?;
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let (head, cgi_body) = match split {
        Some((i, sep)) => (
            String::from_utf8_lossy(output.stdout.get(..i).unwrap_or_default()).into_owned(),
            output.stdout.get(i + sep..).unwrap_or_default().to_vec(),
        ),
        None => (String::new(), Vec::new()),
    };
    let mut status = "200 OK".to_owned();
    let mut headers = String::new();
    for header in head.lines() {
        match header.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => {
                status = value.trim().to_owned()
            }
            Some(_) => {
                headers.push_str(header.trim_end());
                headers.push_str("\r\n");
            }
            None => {}
        }
    }
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        cgi_body.len()
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(&cgi_body)
}

fn context() -> BuildContext {
    context_for(7)
}

fn context_for(id: u64) -> BuildContext {
    let job = Job::from_payload(json!({"id": id, "token": format!("glcbt-{id}"),
        "services": [{"name": "redis", "alias": null}]}))
    .expect("job");
    BuildContext::new(None, "[[runners]]\nurl = \"http://c\"\n".into(), &job).expect("context")
}

fn bare_repo(root: &Path, name: &str) -> PathBuf {
    let path = root.join(name);
    git2::Repository::init_bare(&path).expect("bare");
    path
}

/// Incompressible bytes, `len` of them.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// The reconciliation's fetch of `job.json` stops receiving past
/// `MAX_FETCH_BYTES`, whatever the repository holds.
#[test]
fn http_fetch_past_the_transfer_bound_is_aborted() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let repo_path = bare_repo(root.path(), "app_big.git");
    {
        let repo = git2::Repository::open_bare(&repo_path).expect("open");
        let mut tree = repo.treebuilder(None).expect("treebuilder");
        let job = repo.blob(b"{\"id\": 7, \"token\": \"t\"}").expect("blob");
        tree.insert("job.json", job, 0o100_644).expect("insert");
        let big = repo.blob(&noise(MAX_FETCH_BYTES + 1, 7)).expect("blob");
        tree.insert("padding.bin", big, 0o100_644).expect("insert");
        let tree = repo
            .find_tree(tree.write().expect("tree"))
            .expect("find tree");
        let sig = git2::Signature::now("t", "t@example.test").expect("signature");
        repo.commit(Some(DEPLOY_REF), &sig, &sig, "x", &tree, &[])
            .expect("commit");
    }
    let server = GitHttpServer::start(root.path(), scratch.path());
    let url = format!("{}/app_big.git", server.base);
    let err = GIT
        .fetch(&url, USER, PASSWORD)
        .expect_err("transfer too large");
    assert!(matches!(err, RemoteError::TooLarge { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("transfer exceeded"), "{err}");
    assert!(!err.to_string().contains(PASSWORD), "{err}");
}

#[test]
fn http_push_with_basic_auth_then_already_launched() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let repo_path = bare_repo(root.path(), "app_1.git");
    let server = GitHttpServer::start(root.path(), scratch.path());
    let url = format!("{}/app_1.git", server.base);
    let ctx = context();

    let outcome = GIT.push(&ctx, &url, USER, PASSWORD);
    assert_eq!(outcome, Ok(PushOutcome::Pushed));
    let repo = git2::Repository::open_bare(&repo_path).expect("open");
    let tree = repo
        .find_reference(DEPLOY_REF)
        .and_then(|r| r.peel_to_tree())
        .expect("master tree");
    assert_eq!(tree.len(), 3);
    for (name, content) in ctx.files() {
        let entry = tree.get_name(name).expect(name);
        assert_eq!(repo.find_blob(entry.id()).expect("blob").content(), content);
    }

    // Two requests, credentials sent with the first: the refs, then the
    // pack.
    let lines = server.lines();
    assert_eq!(
        lines,
        [
            "GET /git/app_1.git/info/refs?service=git-receive-pack",
            "POST /git/app_1.git/git-receive-pack",
        ],
        "{lines:?}"
    );

    // Once master is seen, nothing is sent: one request.
    let outcome = GIT.push(&ctx, &url, USER, PASSWORD);
    assert_eq!(outcome, Ok(PushOutcome::AlreadyLaunched));
    let lines = server.lines();
    assert_eq!(
        lines.get(2..),
        Some(&["GET /git/app_1.git/info/refs?service=git-receive-pack".to_owned()][..]),
        "{lines:?}"
    );
    assert_eq!(
        repo.find_reference(DEPLOY_REF)
            .and_then(|r| r.peel_to_tree())
            .map(|t| t.id()),
        Ok(tree.id()),
        "master unchanged"
    );
}

/// More pushes at once than there are git worker threads, each to its own
/// repository: each repository gets its own job's commit, and nothing else.
#[test]
fn concurrent_pushes_to_different_remotes_are_independent() {
    const PUSHES: u64 = 12;
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let server = GitHttpServer::start(root.path(), scratch.path());
    let pushes: Vec<_> = (0..PUSHES)
        .map(|i| {
            let path = bare_repo(root.path(), &format!("app_c{i}.git"));
            let url = format!("{}/app_c{i}.git", server.base);
            let ctx = context_for(100 + i);
            let expected = ctx.clone();
            let thread = std::thread::spawn(move || GIT.push(&ctx, &url, USER, PASSWORD));
            (path, expected, thread)
        })
        .collect();
    for (path, ctx, thread) in pushes {
        let outcome = thread.join().expect("push thread");
        assert_eq!(outcome, Ok(PushOutcome::Pushed), "{}", path.display());
        let repo = git2::Repository::open_bare(&path).expect("open");
        let commit = repo
            .find_reference(DEPLOY_REF)
            .and_then(|r| r.peel_to_commit())
            .expect("master");
        assert_eq!(commit.parent_count(), 0);
        let tree = commit.tree().expect("tree");
        assert_eq!(tree.len(), 3);
        for (name, content) in ctx.files() {
            let entry = tree.get_name(name).expect(name);
            assert_eq!(entry.filemode(), 0o100_644);
            assert_eq!(repo.find_blob(entry.id()).expect("blob").content(), content);
        }
        let mut objects = 0;
        repo.odb()
            .expect("odb")
            .foreach(|_| {
                objects += 1;
                true
            })
            .expect("objects");
        assert_eq!(objects, 5, "only this job's commit, tree and blobs");
    }
}

/// A server that holds every request 300 ms before answering 404, one
/// thread per connection, counting the requests in flight at once; it
/// serves at most `limit` connections and stops 30 s after its start.
struct HoldingServer {
    base: String,
    served: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

impl HoldingServer {
    fn start(limit: usize) -> HoldingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let served = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let (counted, most) = (served.clone(), most_at_once.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let in_flight = Arc::new(AtomicUsize::new(0));
            let mut handlers = Vec::new();
            while handlers.len() < limit && started.elapsed() < Duration::from_secs(30) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let (in_flight, most, counted) = (in_flight.clone(), most.clone(), counted.clone());
                handlers.push(std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let Ok(clone) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(clone);
                    for _ in 0..100 {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut writer = stream;
                    let _ = writer.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }));
            }
            for handler in handlers {
                let _ = handler.join();
            }
        });
        HoldingServer {
            base: format!("http://127.0.0.1:{port}"),
            served,
            most_at_once,
            thread,
        }
    }
}

/// A burst of pushes opens at most `MAX_CONCURRENT_PUSHES` exchanges with
/// the Git servers at once; the others wait for a slot, then go.
#[test]
fn pushes_at_once_are_bounded() {
    let pushes = MAX_CONCURRENT_PUSHES + 4;
    let server = HoldingServer::start(pushes);
    let threads: Vec<_> = (0..pushes)
        .map(|i| {
            let url = format!("{}/app_b{i}.git", server.base);
            std::thread::spawn(move || GIT.push(&context(), &url, USER, PASSWORD))
        })
        .collect();
    for thread in threads {
        let result = thread.join().expect("push thread");
        assert!(
            matches!(result, Err(PushError::Http { status: 404, .. })),
            "{result:?}"
        );
    }
    server.thread.join().expect("server");
    assert_eq!(
        server.served.load(Ordering::SeqCst),
        pushes,
        "every push went"
    );
    let most = server.most_at_once.load(Ordering::SeqCst);
    assert!(most <= MAX_CONCURRENT_PUSHES, "{most} exchanges at once");
}

#[test]
fn http_push_with_a_wrong_password_is_refused() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let repo_path = bare_repo(root.path(), "app_2.git");
    let server = GitHttpServer::start(root.path(), scratch.path());
    let url = format!("{}/app_2.git", server.base);

    let err = GIT
        .push(&context(), &url, USER, "wrong")
        .expect_err("refused");
    assert!(matches!(err, PushError::Auth { .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    let repo = git2::Repository::open_bare(&repo_path).expect("open");
    assert!(repo.find_reference(DEPLOY_REF).is_err(), "nothing pushed");
}

#[test]
fn http_push_to_an_unknown_repository_is_a_404() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let server = GitHttpServer::start(root.path(), scratch.path());
    let url = format!("{}/app_missing.git", server.base);
    let err = GIT
        .push(&context(), &url, USER, PASSWORD)
        .expect_err("missing");
    assert!(
        matches!(err, PushError::Http { status: 404, .. }),
        "{err:?}"
    );
}

/// Answers every request with a redirect to `target` (plus the request's
/// own path and query), for at most 30 s.
fn start_redirector(target: String) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        let mut served = 0;
        while served < 4
            && !stopping.load(Ordering::SeqCst)
            && started.elapsed() < Duration::from_secs(30)
        {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(clone);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            for _ in 0..100 {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
            }
            let path = path.strip_prefix("/git").unwrap_or(&path);
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let mut writer = stream;
            let _ = writer.write_all(answer.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}/git"), stop, thread)
}

#[test]
fn http_push_does_not_follow_an_off_site_redirect() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let repo_path = bare_repo(root.path(), "app_3.git");
    let server = GitHttpServer::start(root.path(), scratch.path());
    // Same server, another host name: off-site for libgit2.
    let elsewhere = server.base.replace("127.0.0.1", "localhost");
    let (redirector, stop, thread) = start_redirector(elsewhere);
    let url = format!("{redirector}/app_3.git");

    let result = GIT.push(&context(), &url, USER, PASSWORD);
    assert!(
        matches!(result, Err(PushError::Http { status: 302, .. })),
        "{result:?}"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "no request off-site"
    );
    let repo = git2::Repository::open_bare(&repo_path).expect("open");
    assert!(repo.find_reference(DEPLOY_REF).is_err(), "nothing pushed");
    drop(server);
    stop.store(true, Ordering::SeqCst);
    let _ = thread.join();
}

#[test]
fn http_to_a_remote_host_is_refused_before_any_connection() {
    let err = GIT
        .push(&context(), "http://push.example/app.git", USER, PASSWORD)
        .expect_err("plain http off loopback");
    assert!(matches!(err, PushError::InvalidUrl { .. }), "{err:?}");
}

/// A global Git configuration that rewrites the deployment URL
/// (`url.*.insteadOf`) is not read: the push goes where it was told.
#[test]
#[allow(unsafe_code)]
fn the_global_git_configuration_does_not_redirect_a_push() {
    let root = tempfile::tempdir().expect("root");
    let scratch = tempfile::tempdir().expect("scratch");
    let home = tempfile::tempdir().expect("home");
    let told = bare_repo(root.path(), "app_told.git");
    let elsewhere = bare_repo(root.path(), "app_elsewhere.git");
    let server = GitHttpServer::start(root.path(), scratch.path());
    let url = format!("{}/app_told.git", server.base);
    std::fs::write(
        home.path().join(".gitconfig"),
        format!(
            "[url \"{}/app_elsewhere.git\"]\n\tinsteadOf = {url}\n",
            server.base
        ),
    )
    .expect("global config");
    // SAFETY: libgit2's process-wide search path; this test's own process
    // (nextest) is the only user, and the rewrite names only this test's
    // URL.
    unsafe {
        git2::opts::set_search_path(git2::ConfigLevel::Global, home.path()).expect("search path");
    }
    let global = git2::Config::open_default().expect("default config");
    assert_eq!(
        global
            .get_string(&format!("url.{}/app_elsewhere.git.insteadof", server.base))
            .ok()
            .as_deref(),
        Some(url.as_str()),
        "the global configuration is in place"
    );

    let outcome = GIT.push(&context(), &url, USER, PASSWORD);
    assert_eq!(outcome, Ok(PushOutcome::Pushed));
    let told = git2::Repository::open_bare(&told).expect("open");
    assert!(told.find_reference(DEPLOY_REF).is_ok(), "pushed where told");
    let elsewhere = git2::Repository::open_bare(&elsewhere).expect("open");
    assert!(
        elsewhere.find_reference(DEPLOY_REF).is_err(),
        "not where the global configuration points"
    );
}
