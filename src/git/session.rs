//! What a push and a fetch of a deployment repository share: the remote URL
//! without credentials, the [`Session`] (credentials offered through a
//! bounded callback, a deadline checked in every callback, a dedicated
//! thread), the isolated bare repository, and the classification of
//! libgit2 errors into [`RemoteError`].

use crate::secret::{Secret, MASK};
use git2::{
    CertificateCheckStatus, Config, ConfigLevel, Cred, CredentialType, ErrorClass, ErrorCode,
    RemoteCallbacks, Repository, RepositoryInitOptions,
};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The only branch a PAAS deploys.
pub const DEPLOY_REF: &str = "refs/heads/master";

/// How many times credentials are offered on one connection before giving
/// up (libgit2 asks again after each 401).
pub const MAX_CREDENTIAL_OFFERS: u32 = 2;

/// Longest timeout honoured (longer ones are shortened to it), so that
/// deadline arithmetic cannot overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

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

/// The remote URL in its two forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteUrl {
    /// What libgit2 connects to: userinfo removed (credentials only come
    /// from the callback).
    pub(crate) connect: String,
    /// What errors show: userinfo, query and fragment removed.
    pub(crate) display: String,
}

impl RemoteUrl {
    pub(crate) fn parse(raw: &str) -> Result<RemoteUrl, RemoteError> {
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
            "http" | "https" | "file" => Ok(RemoteUrl { connect, display }),
            other => Err(RemoteError::InvalidUrl {
                url: display,
                detail: format!("unsupported scheme {other:?} (http, https or file)"),
            }),
        }
    }
}

/// One exchange with a deployment repository (a push, or the fetch of
/// `git::fetch`): the remote, the credentials offered through the callback,
/// and the deadline every callback checks. Owned, so that it can move to
/// the thread that talks to the remote.
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
    /// A reference the server refused to update (push only).
    pub(crate) rejection: RefCell<Option<String>>,
    /// Most bytes the transfer may receive (fetch only).
    pub(crate) receive_limit: Cell<Option<usize>>,
    /// The transfer was aborted past `receive_limit`.
    over_limit: Cell<bool>,
}

impl Session {
    /// A session with `remote_url` (checked, userinfo dropped) as `user` /
    /// `password`, ending `timeout` from now (at most [`MAX_TIMEOUT`]).
    pub(crate) fn new(
        remote_url: &str,
        user: &str,
        password: &Secret,
        timeout: Duration,
    ) -> Result<Session, RemoteError> {
        let url = RemoteUrl::parse(remote_url)?;
        let timeout = timeout.min(MAX_TIMEOUT);
        Ok(Session {
            url,
            user: user.to_owned(),
            password: password.clone(),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    /// Runs `work` on a dedicated thread named `name` and waits for it at
    /// most until the deadline (plus a short grace for an abort from a
    /// callback to report as what it is); past that, [`RemoteError::Timeout`]
    /// at once, the thread ending at its next callback. BLOCKING.
    pub(crate) fn run_on_thread<T: Send + 'static>(
        self,
        name: &str,
        work: impl FnOnce(&Session) -> Result<T, RemoteError> + Send + 'static,
    ) -> Result<T, RemoteError> {
        let (url, timeout) = (self.url.display.clone(), self.timeout);
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // The receiver may have given up (timeout): nothing to do then.
                let _ = tx.send(work(&self));
            })
            .map_err(|e| RemoteError::Local {
                detail: format!("cannot start the {name} thread: {e}"),
            })?;
        match rx.recv_timeout(timeout + DEADLINE_GRACE) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(RemoteError::Timeout { url, timeout }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(RemoteError::Local {
                detail: format!("the {name} thread ended without a result"),
            }),
        }
    }

    /// Callbacks for every phase (list, push, fetch): credentials (bounded)
    /// and deadline checks wherever libgit2 lets us abort.
    pub(crate) fn callbacks<'a>(&'a self, observed: &'a Observed) -> RemoteCallbacks<'a> {
        let past_deadline = move || {
            let past = Instant::now() >= self.deadline;
            if past {
                observed.deadline_passed.set(true);
            }
            past
        };
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, _user_from_url, allowed| {
            if past_deadline() {
                return Err(git2::Error::from_str("deadline passed"));
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
        callbacks.push_negotiation(move |_| {
            if past_deadline() {
                Err(git2::Error::from_str("deadline passed"))
            } else {
                Ok(())
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
        if let Some(reason) = observed.rejection.borrow().clone() {
            return RemoteError::Rejected {
                url,
                reason: self.scrub(&reason),
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
/// global or system `url.*.insteadOf`, identity, credential helper, …).
pub(crate) fn isolated_bare_repository(dir: &Path) -> Result<Repository, git2::Error> {
    let mut init = RepositoryInitOptions::new();
    init.bare(true)
        .no_reinit(true)
        .external_template(false)
        .initial_head("master");
    let repo = Repository::init_opts(dir, &init)?;
    let mut config = Config::new()?;
    config.add_file(&repo.path().join("config"), ConfigLevel::Local, false)?;
    repo.set_config(&config)?;
    Ok(repo)
}

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
                "file:///tmp/x.git",
                "file:///tmp/x.git",
                "file:///tmp/x.git",
            ),
        ];
        for (input, connect, display) in table {
            let url = RemoteUrl::parse(input).expect("valid");
            assert_eq!(url.connect, connect, "{input}");
            assert_eq!(url.display, display, "{input}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_secrets() {
        let cases = [
            "not a url",
            "ssh://git:s3cret@push.example/app.git",
            "git+ssh://git@push.example/app.git",
            "/tmp/relative.git",
        ];
        for input in cases {
            let err = RemoteUrl::parse(input).expect_err(input);
            assert!(matches!(err, RemoteError::InvalidUrl { .. }), "{input}");
            assert!(!err.is_retryable());
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
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
