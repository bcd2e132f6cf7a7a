//! The coordinator's answer to one call, as the client read it: what the
//! calls and the error mapping both read.

use awc::http::header::HeaderMap;
use paas_actors::ports::CoordinatorError;

/// A request, as errors name it: `what` (e.g. "job request"), method, URL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallName<'a> {
    pub(crate) what: &'static str,
    pub(crate) method: &'static str,
    pub(crate) url: &'a str,
}

impl std::fmt::Display for CallName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs are built without query strings; strip one anyway, defensively.
        let url = self.url.split(['?', '#']).next().unwrap_or("");
        write!(f, "{} ({} {})", self.what, self.method, url)
    }
}

/// An answer, body read (or counted).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    /// The body (empty in `Count` mode).
    pub(crate) body: Vec<u8>,
    /// Body length in bytes.
    pub(crate) body_len: u64,
    /// The call answered: its fixed name, method and URL.
    pub(crate) what: &'static str,
    pub(crate) method: &'static str,
    pub(crate) url: String,
}

impl Reply {
    /// A header value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The call answered, as errors name it.
    pub(crate) fn name(&self) -> CallName<'_> {
        CallName {
            what: self.what,
            method: self.method,
            url: &self.url,
        }
    }

    /// The body decoded as JSON; an undecodable one is `Unexpected`.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, CoordinatorError> {
        serde_json::from_slice(&self.body).map_err(|e| CoordinatorError::Unexpected {
            detail: format!("{}: malformed answer: {e}", self.name()),
        })
    }
}
