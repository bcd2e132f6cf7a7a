//! What a push and a fetch of a deployment repository share: the remote URL
//! without credentials ([`RemoteUrl`]) and [`RemoteError`]; and the
//! fetch's libgit2 machinery: the [`Session`] (credentials offered through
//! a bounded callback, a deadline checked in every callback, the work run
//! on a git worker thread of `src/git/workers.rs`), the isolated bare
//! repository, and the classification of libgit2 errors into
//! [`RemoteError`].

use super::workers::{SubmitError, Workers};
use crate::secret::{Secret, MASK};
use git2::{
    CertificateCheckStatus, Config, ConfigLevel, Cred, CredentialType, ErrorClass, ErrorCode,
    RemoteCallbacks, Repository, RepositoryInitOptions,
};
use std::cell::Cell;
use std::path::Path;
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

/// The only branch a PAAS deploys.
pub const DEPLOY_REF: &str = "refs/heads/master";

/// How many times credentials are offered on one connection before giving
/// up (libgit2 asks again after each 401).
pub const MAX_CREDENTIAL_OFFERS: u32 = 2;

/// Longest timeout honoured (longer ones are shortened to it), so that
/// deadline arithmetic cannot overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// libgit2's limit on establishing a connection to a git server
/// (process-wide, set once by [`init_transport`]).
pub const SERVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// libgit2's limit on one read or write on a git server's connection
/// (process-wide, set once by [`init_transport`]): a server that stops
/// answering frees the worker thread after this long.
pub const SERVER_IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Most git worker threads (fetches) alive at once. A worker
/// whose caller gave up (timeout) stays busy until libgit2 returns.
pub const MAX_GIT_THREADS: usize = 8;

/// Most exchanges waiting for a git worker; one more is refused at once as
/// a [`RemoteError::Timeout`] (it could not start within its time).
const MAX_QUEUED_EXCHANGES: usize = 1024;

/// How long a git worker thread waits for work before it ends.
const WORKER_IDLE_EXIT: Duration = Duration::from_secs(10);

/// Extra wait for the worker thread to report after the deadline, so that
/// an abort from a callback is reported as what it is.
const DEADLINE_GRACE: Duration = Duration::from_millis(200);

/// Why an exchange with a deployment repository (a push, or the fetch of
/// `git::fetch`) failed. URLs are shown without userinfo, query or fragment;
/// the password never appears.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The remote URL is unusable.
    #[error("invalid deploy URL {url}: {detail}")]
    InvalidUrl {
        /// The URL, sanitised (or a placeholder if unparsable).
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The local repository could not be prepared (temp dir, libgit2).
    #[error("cannot prepare the local repository: {detail}")]
    Local {
        /// The cause.
        detail: String,
    },
    /// The server refused the credentials (or asked for a kind we lack).
    #[error("authentication refused by {url} for user {user:?}")]
    Auth {
        /// The sanitised URL.
        url: String,
        /// The user name offered (not a secret).
        user: String,
    },
    /// The server answered an unexpected HTTP status.
    #[error("unexpected HTTP status {status} from {url}")]
    Http {
        /// The sanitised URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The transfer or the file read back exceeded a bound: not something
    /// this runner pushed, and never worth fetching again.
    #[error("{url}: {detail}")]
    TooLarge {
        /// The sanitised URL.
        url: String,
        /// What exceeded which bound.
        detail: String,
    },
    /// The server refused the update of `master`.
    #[error("push to {url} rejected: {reason}")]
    Rejected {
        /// The sanitised URL.
        url: String,
        /// The server's reason.
        reason: String,
    },
    /// Connection, TLS or protocol trouble.
    #[error("cannot talk to {url}: {detail}")]
    Transport {
        /// The sanitised URL.
        url: String,
        /// libgit2's message (the password masked if ever present).
        detail: String,
    },
    /// Any other libgit2 failure while talking to the remote.
    #[error("git error with {url}: {detail}")]
    Git {
        /// The sanitised URL.
        url: String,
        /// libgit2's message (the password masked if ever present).
        detail: String,
    },
    /// The exchange did not finish within the allowed time. A push may
    /// still have reached the server: a retry finds `master` and reports
    /// `PushOutcome::AlreadyLaunched` (`push`).
    #[error("git exchange with {url} did not finish within {timeout:?}")]
    Timeout {
        /// The sanitised URL.
        url: String,
        /// The allowed time.
        timeout: Duration,
    },
}

impl RemoteError {
    /// True when retrying may succeed: network trouble, 5xx/429/404 (a
    /// repository not yet visible), timeouts. Authentication failures,
    /// rejections and invalid URLs are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            RemoteError::Transport { .. } | RemoteError::Timeout { .. } => true,
            RemoteError::Http { status, .. } => *status >= 500 || matches!(status, 404 | 408 | 429),
            RemoteError::InvalidUrl { .. }
            | RemoteError::Local { .. }
            | RemoteError::Auth { .. }
            | RemoteError::Rejected { .. }
            | RemoteError::TooLarge { .. }
            | RemoteError::Git { .. } => false,
        }
    }
}

/// Which deployment URLs an exchange accepts.
///
/// A PAAS answers with network URLs only; a `file:` URL there would make
/// the runner read or write a path of its own host. Local paths are
/// therefore refused unless the caller says otherwise, and only code says
/// so (tests pushing to bare repositories on disk): no configuration key
/// sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoteSchemes {
    /// `https`, or `http` to a loopback host.
    #[default]
    Network,
    /// [`RemoteSchemes::Network`] and `file:` (a local path): for tests.
    NetworkAndLocalPaths,
}

/// The remote URL in its two forms (public for the fuzz targets of
/// `fuzz/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUrl {
    /// What libgit2 connects to: userinfo removed (credentials only come
    /// from the callback).
    pub connect: String,
    /// What errors show: userinfo, query and fragment removed.
    pub display: String,
}

impl RemoteUrl {
    /// Parses a deployment URL: `https`, or `http` to a loopback host
    /// (127.0.0.0/8, `::1`, `localhost`), or `file` (a local path) when
    /// `schemes` allows it. The userinfo is dropped.
    pub fn parse(raw: &str, schemes: RemoteSchemes) -> Result<RemoteUrl, RemoteError> {
        let mut url = url::Url::parse(raw).map_err(|e| RemoteError::InvalidUrl {
            url: "<unparsable URL>".into(),
            detail: e.to_string(),
        })?;
        // Both setters only fail for URLs that cannot have userinfo (file:),
        // which then have none to remove.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let connect = url.to_string();
        url.set_query(None);
        url.set_fragment(None);
        let display = url.to_string();
        match url.scheme() {
            "https" => Ok(RemoteUrl { connect, display }),
            "file" if schemes == RemoteSchemes::NetworkAndLocalPaths => {
                Ok(RemoteUrl { connect, display })
            }
            "file" => Err(RemoteError::InvalidUrl {
                url: display,
                detail: "a local path is not a deployment repository (https, or http to \
                         loopback)"
                    .into(),
            }),
            "http" if is_loopback(&url) => Ok(RemoteUrl { connect, display }),
            "http" => Err(RemoteError::InvalidUrl {
                url: display,
                detail: "plain http is accepted only to a loopback host (use https)".into(),
            }),
            other => Err(RemoteError::InvalidUrl {
                url: display,
                detail: format!("unsupported scheme {other:?} (https, or http to loopback)"),
            }),
        }
    }
}

/// True when `url`'s host is a loopback address or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// True when `asked` (the URL libgit2 wants credentials for) is on the
/// same host and port as `deployment` (the URL the session was opened
/// with). Credentials are offered only then.
pub fn same_origin(deployment: &str, asked: &str) -> bool {
    let (Ok(deployment), Ok(asked)) = (url::Url::parse(deployment), url::Url::parse(asked)) else {
        return false;
    };
    deployment.scheme() == asked.scheme()
        && deployment.host_str().map(str::to_ascii_lowercase)
            == asked.host_str().map(str::to_ascii_lowercase)
        && deployment.port_or_known_default() == asked.port_or_known_default()
}

/// Sets libgit2's process-wide server timeouts ([`SERVER_CONNECT_TIMEOUT`],
/// [`SERVER_IO_TIMEOUT`]). Called at start-up and before every session;
/// only the first call does anything.
#[allow(unsafe_code)]
pub fn init_transport() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: libgit2's options are process-wide globals; `Once` makes
        // this the only write, done before any session starts a transfer.
        unsafe {
            // Both only fail for an unknown option, which these are not.
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis(
                SERVER_CONNECT_TIMEOUT,
            ));
            let _ = git2::opts::set_server_timeout_in_milliseconds(millis(SERVER_IO_TIMEOUT));
        }
    });
}

/// The git worker threads of every fetch of this process.
static GIT_WORKERS: Workers = Workers::new(
    "git-worker",
    MAX_GIT_THREADS,
    MAX_QUEUED_EXCHANGES,
    WORKER_IDLE_EXIT,
);

/// One libgit2 exchange with a deployment repository (the fetch of
/// `git::fetch`): the remote, the credentials offered through the callback,
/// and the deadline every callback checks. Owned, so that it can move to
/// the worker thread that talks to the remote.
pub(crate) struct Session {
    /// The remote, in its two forms.
    pub(crate) url: RemoteUrl,
    user: String,
    password: Secret,
    deadline: Instant,
    timeout: Duration,
}

/// What the callbacks observed, to classify a libgit2 error.
#[derive(Default)]
pub(crate) struct Observed {
    /// Credentials offered on the current connection.
    pub(crate) credential_offers: Cell<u32>,
    auth_refused: Cell<bool>,
    deadline_passed: Cell<bool>,
    /// Most bytes the transfer may receive.
    pub(crate) receive_limit: Cell<Option<usize>>,
    /// The transfer was aborted past `receive_limit`.
    over_limit: Cell<bool>,
}

impl Session {
    /// A session with `remote_url` (checked against `schemes`, userinfo
    /// dropped) as `user` / `password`, ending `timeout` from now (at most
    /// [`MAX_TIMEOUT`]).
    pub(crate) fn new(
        remote_url: &str,
        schemes: RemoteSchemes,
        user: &str,
        password: &Secret,
        timeout: Duration,
    ) -> Result<Session, RemoteError> {
        init_transport();
        let url = RemoteUrl::parse(remote_url, schemes)?;
        let timeout = timeout.min(MAX_TIMEOUT);
        Ok(Session {
            url,
            user: user.to_owned(),
            password: password.clone(),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    /// Runs `work` on a git worker thread (one of the [`MAX_GIT_THREADS`];
    /// waiting for a free one counts in the timeout) and waits for it at
    /// most until the deadline (plus a short grace for an abort from a
    /// callback to report as what it is); past that,
    /// [`RemoteError::Timeout`] at once, the worker ending the work at its
    /// next callback. BLOCKING.
    pub(crate) fn run_on_worker<T: Send + 'static>(
        self,
        work: impl FnOnce(&Session) -> Result<T, RemoteError> + Send + 'static,
    ) -> Result<T, RemoteError> {
        self.run_on_worker_in(&GIT_WORKERS, work)
    }

    /// [`Session::run_on_worker`] on the threads of `workers`.
    pub(crate) fn run_on_worker_in<T: Send + 'static>(
        self,
        workers: &'static Workers,
        work: impl FnOnce(&Session) -> Result<T, RemoteError> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let (url, timeout) = (self.url.display.clone(), self.timeout);
        let wait_until = self.deadline + DEADLINE_GRACE;
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(workers, work, move |result| {
            // The caller may have given up (timeout): nothing to do then.
            let _ = tx.send(result);
        })?;
        match rx.recv_timeout(wait_until.saturating_duration_since(Instant::now())) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(RemoteError::Timeout { url, timeout }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(no_result()),
        }
    }

    /// [`Session::run_on_worker`] for async callers: the same work and
    /// deadline, awaited without blocking the caller's thread.
    pub(crate) async fn run_on_worker_async<T: Send + 'static>(
        self,
        work: impl FnOnce(&Session) -> Result<T, RemoteError> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let (url, timeout) = (self.url.display.clone(), self.timeout);
        let wait_until = tokio::time::Instant::from_std(self.deadline + DEADLINE_GRACE);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(&GIT_WORKERS, work, move |result| {
            // The caller may have given up (timeout): nothing to do then.
            let _ = tx.send(result);
        })?;
        match tokio::time::timeout_at(wait_until, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(no_result()),
            Err(_) => Err(RemoteError::Timeout { url, timeout }),
        }
    }

    /// Queues `work` on `workers`, its result handed to `reply`; work whose
    /// deadline passed while it waited is not started (a timeout).
    fn submit<T: Send + 'static>(
        self,
        workers: &'static Workers,
        work: impl FnOnce(&Session) -> Result<T, RemoteError> + Send + 'static,
        reply: impl FnOnce(Result<T, RemoteError>) + Send + 'static,
    ) -> Result<(), RemoteError> {
        let (url, timeout) = (self.url.display.clone(), self.timeout);
        let task = Box::new(move || {
            let result = if Instant::now() >= self.deadline {
                Err(RemoteError::Timeout {
                    url: self.url.display.clone(),
                    timeout: self.timeout,
                })
            } else {
                work(&self)
            };
            reply(result);
        });
        workers.submit(task).map_err(|e| match e {
            SubmitError::QueueFull(_) => RemoteError::Timeout { url, timeout },
            SubmitError::Spawn(_) => RemoteError::Local {
                detail: e.to_string(),
            },
        })
    }

    /// True, and noted in `observed`, once the deadline has passed.
    pub(crate) fn past_deadline(&self, observed: &Observed) -> bool {
        let past = Instant::now() >= self.deadline;
        if past {
            observed.deadline_passed.set(true);
        }
        past
    }

    /// Callbacks for every phase (list, fetch): credentials (bounded)
    /// and deadline checks wherever libgit2 lets us abort.
    pub(crate) fn callbacks<'a>(&'a self, observed: &'a Observed) -> RemoteCallbacks<'a> {
        let past_deadline = move || self.past_deadline(observed);
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |asked_url, _user_from_url, allowed| {
            if past_deadline() {
                return Err(git2::Error::from_str("deadline passed"));
            }
            if !same_origin(&self.url.connect, asked_url) {
                observed.auth_refused.set(true);
                return Err(git2::Error::new(
                    ErrorCode::Auth,
                    ErrorClass::Http,
                    "credentials are offered only to the deployment URL's host",
                ));
            }
            let offers = observed.credential_offers.get() + 1;
            observed.credential_offers.set(offers);
            if offers > MAX_CREDENTIAL_OFFERS
                || !allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            {
                observed.auth_refused.set(true);
                return Err(git2::Error::new(
                    ErrorCode::Auth,
                    ErrorClass::Http,
                    "credentials refused",
                ));
            }
            Cred::userpass_plaintext(&self.user, self.password.expose())
        });
        callbacks.sideband_progress(move |_| !past_deadline());
        callbacks.transfer_progress(move |stats| {
            if let Some(limit) = observed.receive_limit.get() {
                if stats.received_bytes() > limit {
                    observed.over_limit.set(true);
                    return false;
                }
            }
            !past_deadline()
        });
        callbacks.certificate_check(move |_, _| {
            if past_deadline() {
                Err(git2::Error::from_str("deadline passed"))
            } else {
                Ok(CertificateCheckStatus::CertificatePassthrough)
            }
        });
        callbacks
    }

    /// Turns a libgit2 error into a [`RemoteError`], using what the
    /// callbacks saw (libgit2 reports callback aborts as generic errors).
    pub(crate) fn classify(&self, error: &git2::Error, observed: &Observed) -> RemoteError {
        let url = self.url.display.clone();
        if observed.deadline_passed.get() || Instant::now() >= self.deadline {
            return RemoteError::Timeout {
                url,
                timeout: self.timeout,
            };
        }
        if observed.over_limit.get() {
            let limit = observed.receive_limit.get().unwrap_or_default();
            return RemoteError::TooLarge {
                url,
                detail: format!("the transfer exceeded {limit} bytes, aborted"),
            };
        }
        if observed.auth_refused.get() || error.code() == ErrorCode::Auth {
            return RemoteError::Auth {
                url,
                user: self.user.clone(),
            };
        }
        let detail = self.scrub(error.message());
        if let Some(status) = http_status(error.message()) {
            return RemoteError::Http { url, status };
        }
        match error.class() {
            ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssl | ErrorClass::Http => {
                RemoteError::Transport { url, detail }
            }
            _ => RemoteError::Git { url, detail },
        }
    }

    /// Masks the password in a message, should libgit2 ever echo it.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let secret = self.password.expose();
        if secret.is_empty() {
            message.to_owned()
        } else {
            message.replace(secret, MASK)
        }
    }
}

/// A new bare repository in `dir`, `master` as initial head, no external
/// templates (no hooks), its configuration reduced to its own file (no
/// global or system `url.*.insteadOf`, identity, credential helper, …),
/// which refuses off-site redirects (`http.followRedirects = false`, read
/// by libgit2 for `connect_auth`; fetch options say the same
/// through [`NO_REDIRECTS`]).
pub(crate) fn isolated_bare_repository(dir: &Path) -> Result<Repository, git2::Error> {
    let mut init = RepositoryInitOptions::new();
    init.bare(true)
        .no_reinit(true)
        .external_template(false)
        .initial_head("master");
    let repo = Repository::init_opts(dir, &init)?;
    let mut config = Config::new()?;
    config.add_file(&repo.path().join("config"), ConfigLevel::Local, false)?;
    config.set_bool("http.followRedirects", false)?;
    repo.set_config(&config)?;
    Ok(repo)
}

/// The error of work that ended without a result (it panicked).
fn no_result() -> RemoteError {
    RemoteError::Local {
        detail: "the git worker thread ended without a result".into(),
    }
}

/// The redirect policy of every fetch: same-host redirects only
/// (git2's default would follow an off-site redirect of the first request).
pub(crate) const NO_REDIRECTS: git2::RemoteRedirect = git2::RemoteRedirect::None;

/// The status in libgit2's "unexpected http status code: NNN" message.
fn http_status(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("status code: ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_query_for_display() {
        // (input, connect form, display form)
        let table = [
            (
                "https://push.example/app_1.git",
                "https://push.example/app_1.git",
                "https://push.example/app_1.git",
            ),
            (
                "https://Jenkins:s3cret@push.example/app_1.git?token=x#frag",
                "https://push.example/app_1.git?token=x#frag",
                "https://push.example/app_1.git",
            ),
            (
                "http://127.0.0.1:8080/git/app_2.git",
                "http://127.0.0.1:8080/git/app_2.git",
                "http://127.0.0.1:8080/git/app_2.git",
            ),
            (
                "http://localhost:8080/git/app_3.git",
                "http://localhost:8080/git/app_3.git",
                "http://localhost:8080/git/app_3.git",
            ),
            (
                "http://[::1]:8080/app_4.git",
                "http://[::1]:8080/app_4.git",
                "http://[::1]:8080/app_4.git",
            ),
            (
                "file:///tmp/x.git",
                "file:///tmp/x.git",
                "file:///tmp/x.git",
            ),
        ];
        for (input, connect, display) in table {
            let url = RemoteUrl::parse(input, RemoteSchemes::NetworkAndLocalPaths).expect("valid");
            assert_eq!(url.connect, connect, "{input}");
            assert_eq!(url.display, display, "{input}");
        }
    }

    #[test]
    fn local_paths_are_refused_unless_the_caller_allows_them() {
        for input in [
            "file:///tmp/x.git",
            "FILE:///etc/passwd",
            "file://localhost/srv/r.git",
        ] {
            let err = RemoteUrl::parse(input, RemoteSchemes::default()).expect_err(input);
            assert!(
                matches!(&err, RemoteError::InvalidUrl { detail, .. } if detail.contains("local path")),
                "{input}: {err}"
            );
            assert!(!err.is_retryable());
        }
        assert_eq!(RemoteSchemes::default(), RemoteSchemes::Network);
        for input in ["https://push.example/a.git", "http://127.0.0.1:1/a.git"] {
            assert!(
                RemoteUrl::parse(input, RemoteSchemes::Network).is_ok(),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_secrets() {
        let cases = [
            "not a url",
            "ssh://git:s3cret@push.example/app.git",
            "git+ssh://git@push.example/app.git",
            "/tmp/relative.git",
            "http://push.example/app.git",
            "http://git:s3cret@10.0.0.8/app.git",
            "http://127.0.0.1.example/app.git",
        ];
        for input in cases {
            let err =
                RemoteUrl::parse(input, RemoteSchemes::NetworkAndLocalPaths).expect_err(input);
            assert!(matches!(err, RemoteError::InvalidUrl { .. }), "{input}");
            assert!(!err.is_retryable());
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn credentials_go_only_to_the_deployment_host() {
        let deployment = "https://push.example/app_1.git";
        let table = [
            ("https://push.example/app_1.git/info/refs", true),
            ("https://PUSH.example:443/other.git", true),
            ("https://evil.example/app_1.git", false),
            ("http://push.example/app_1.git", false),
            ("https://push.example:8443/app_1.git", false),
            ("https://push.example.evil.example/app_1.git", false),
            ("not a url", false),
        ];
        for (asked, offered) in table {
            assert_eq!(same_origin(deployment, asked), offered, "{asked}");
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn server_timeouts_are_set_once() {
        init_transport();
        init_transport();
        // SAFETY: reads of libgit2's process-wide options.
        let (connect, io) = unsafe {
            (
                git2::opts::get_server_connect_timeout_in_milliseconds().expect("connect"),
                git2::opts::get_server_timeout_in_milliseconds().expect("io"),
            )
        };
        assert_eq!(
            u128::try_from(connect).ok(),
            Some(SERVER_CONNECT_TIMEOUT.as_millis())
        );
        assert_eq!(u128::try_from(io).ok(), Some(SERVER_IO_TIMEOUT.as_millis()));
    }

    #[test]
    fn isolated_repositories_refuse_redirects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = isolated_bare_repository(dir.path()).expect("repo");
        let config = repo.config().expect("config");
        assert_eq!(config.get_bool("http.followRedirects").ok(), Some(false));
    }

    #[test]
    fn work_waiting_past_its_deadline_is_not_started() {
        static WORKERS: Workers = Workers::new("git-test", 1, 4, Duration::from_secs(1));
        let session = |timeout| {
            Session::new(
                "https://push.example/app.git",
                RemoteSchemes::Network,
                "Jenkins",
                &Secret::new("pw".to_owned()),
                timeout,
            )
            .expect("session")
        };
        // The only worker is busy past the second session's deadline.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let busy = std::thread::spawn(move || {
            session(Duration::from_secs(10)).run_on_worker_in(&WORKERS, move |_| {
                let _ = release_rx.recv_timeout(Duration::from_secs(5));
                Ok(1)
            })
        });
        let started = Instant::now();
        while WORKERS.alive() == 0 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let result = session(Duration::from_millis(100)).run_on_worker_in(&WORKERS, move |_| {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(2)
        });
        assert!(
            matches!(result, Err(RemoteError::Timeout { .. })),
            "{result:?}"
        );
        release_tx.send(()).expect("release");
        assert_eq!(busy.join().ok(), Some(Ok(1)));
        let result = session(Duration::from_secs(5)).run_on_worker_in(&WORKERS, |_| Ok(3));
        assert_eq!(result, Ok(3));
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "the late work was dropped, not run"
        );
        assert_eq!(WORKERS.alive(), 1, "one thread did all the work");
    }

    #[test]
    fn http_status_is_read_from_libgit2_messages() {
        let table = [
            ("unexpected http status code: 500", Some(500)),
            ("unexpected http status code: 404", Some(404)),
            ("request failed with status code: 403 Forbidden", Some(403)),
            ("unexpected http status code: ", None),
            ("failed to connect", None),
        ];
        for (message, status) in table {
            assert_eq!(http_status(message), status, "{message}");
        }
    }

    #[test]
    fn retry_classification() {
        let url = || "https://push.example/app.git".to_owned();
        let table = [
            (
                RemoteError::Http {
                    url: url(),
                    status: 500,
                },
                true,
            ),
            (
                RemoteError::Http {
                    url: url(),
                    status: 503,
                },
                true,
            ),
            (
                RemoteError::Http {
                    url: url(),
                    status: 429,
                },
                true,
            ),
            (
                RemoteError::Http {
                    url: url(),
                    status: 404,
                },
                true,
            ),
            (
                RemoteError::Http {
                    url: url(),
                    status: 403,
                },
                false,
            ),
            (
                RemoteError::Http {
                    url: url(),
                    status: 400,
                },
                false,
            ),
            (
                RemoteError::Transport {
                    url: url(),
                    detail: "reset".into(),
                },
                true,
            ),
            (
                RemoteError::Timeout {
                    url: url(),
                    timeout: Duration::from_secs(1),
                },
                true,
            ),
            (
                RemoteError::Auth {
                    url: url(),
                    user: "Jenkins".into(),
                },
                false,
            ),
            (
                RemoteError::Rejected {
                    url: url(),
                    reason: "hook declined".into(),
                },
                false,
            ),
            (
                RemoteError::Local {
                    detail: "disk".into(),
                },
                false,
            ),
        ];
        for (error, retryable) in table {
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }
}
