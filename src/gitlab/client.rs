//! HTTP plumbing of the coordinator client: the awc client (HTTP/1.1,
//! pooled keep-alive connections, no redirects, `User-Agent`), connect and
//! total timeouts, base-URL validation, and one `call` that sends a request
//! and reads its answer within the deadline.
//!
//! The awc client is built lazily on first use, so a client value can be
//! created outside an actix system (e.g. while wiring) and used on the
//! arbiter that owns it.

use super::errors::{body_error, send_error};
use super::reply::{CallName, Reply};
use awc::http::Method;
use futures_util::StreamExt;
use paas_actors::metrics::{Api, ApiCounter, ApiStatus};
use paas_actors::ports::CoordinatorError;
use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("heptapod-paas-runner/", env!("CARGO_PKG_VERSION"));

/// Largest answer body read into memory (job payloads, error bodies).
pub const BODY_LIMIT: usize = 16 << 20;

/// Timeouts of coordinator calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP + TLS).
    pub connect: Duration,
    /// Whole call, answer body included, for ordinary calls.
    pub request: Duration,
    /// Whole call for `/jobs/request` carrying `last_update` (must exceed
    /// the Workhorse long-poll window).
    pub long_poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
            long_poll: Duration::from_secs(90),
        }
    }
}

/// A coordinator URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    /// The `url` of a `[[runners]]` section is unusable.
    #[error("coordinator URL {url:?} is invalid: {reason}")]
    BadUrl {
        /// The URL, without any userinfo.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Validates a configured coordinator URL and returns the API base
/// (`<url without trailing slash>/api/v4`), keeping any path prefix.
pub fn api_base(url: &str) -> Result<String, ClientConfigError> {
    let bad = |shown: String, reason: &str| ClientConfigError::BadUrl {
        url: shown,
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url.trim()).map_err(|e| {
        // An unparsable URL may still hold credentials: show only the scheme/host part.
        let shown = url.rsplit('@').next().unwrap_or("").to_owned();
        bad(shown, &e.to_string())
    })?;
    let mut shown = parsed.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    let shown = shown.to_string();
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(bad(shown, "scheme must be http or https"));
    }
    if parsed.host_str().is_none() {
        return Err(bad(shown, "no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(shown, "credentials in the URL are not supported"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(shown, "query strings and fragments are not supported"));
    }
    Ok(format!("{}/api/v4", parsed.as_str().trim_end_matches('/')))
}

/// What to do with the answer body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Read it (up to [`BODY_LIMIT`]).
    Read,
    /// Only count its bytes (trace reads).
    Count,
}

/// Request body (no `Debug`: bodies carry tokens).
pub(crate) enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
    Text(&'a str),
}

/// One coordinator request (no `Debug`: headers and bodies carry tokens).
pub(crate) struct Call<'a> {
    pub(crate) what: &'static str,
    pub(crate) method: Method,
    /// Full URL, never with a query string.
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, &'a str)>,
    pub(crate) body: Body<'a>,
    pub(crate) timeout: Duration,
    pub(crate) mode: BodyMode,
}

impl<'a> Call<'a> {
    /// A call with the default mode and no headers/body.
    pub(crate) fn new(what: &'static str, method: Method, url: String, timeout: Duration) -> Self {
        Call {
            what,
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
            timeout,
            mode: BodyMode::Read,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn json(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Body::Json(body);
        self
    }

    pub(crate) fn text(mut self, body: &'a str) -> Self {
        self.body = Body::Text(body);
        self
    }

    pub(crate) fn count_body(mut self) -> Self {
        self.mode = BodyMode::Count;
        self
    }

    pub(crate) fn name(&self) -> CallName<'_> {
        CallName {
            what: self.what,
            method: method_str(&self.method),
            url: &self.url,
        }
    }
}

fn method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

/// The HTTP side of a client: timeouts and a lazily built awc client.
pub(crate) struct Http {
    pub(crate) timeouts: Timeouts,
    client: OnceCell<awc::Client>,
    metrics: Option<ApiCounter>,
    /// `tls-ca-file`: CA certificates trusted besides the system's.
    pub(crate) ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http")
            .field("timeouts", &self.timeouts)
            .field("client_built", &self.client.get().is_some())
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Http {
    pub(crate) fn new(timeouts: Timeouts) -> Http {
        Http {
            timeouts,
            client: OnceCell::new(),
            metrics: None,
            ca_file: None,
        }
    }

    /// Trusts the CA certificates of `ca_file` besides the system's (one
    /// TLS context per file and process: `crate::http_client`).
    pub(crate) fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Http {
        self.ca_file = ca_file;
        self
    }

    /// Counts every call in `metrics` (endpoint: the call's fixed name).
    pub(crate) fn with_metrics(mut self, metrics: Option<ApiCounter>) -> Http {
        self.metrics = metrics;
        self
    }

    fn client(&self) -> &awc::Client {
        self.client.get_or_init(|| {
            // HTTP/1.1 is the connector's doing (`crate::http_client`); built
            // before the client builder, whose own default TLS context is
            // then the only one loaded meanwhile
            let connector =
                crate::http_client::connector(self.timeouts.connect, self.ca_file.as_deref());
            awc::Client::builder()
                .connector(connector)
                .disable_redirects()
                .timeout(self.timeouts.request)
                .add_default_header(("User-Agent", USER_AGENT))
                .finish()
        })
    }

    /// Sends a call and reads its answer, all within `call.timeout`.
    pub(crate) async fn call(&self, call: Call<'_>) -> Result<Reply, CoordinatorError> {
        let name = call.name();
        let deadline = Instant::now() + call.timeout;
        let mut req = self
            .client()
            .request(call.method.clone(), call.url.as_str())
            .timeout(call.timeout);
        for (k, v) in &call.headers {
            req = req.insert_header((*k, *v));
        }
        let sent = match call.body {
            Body::Empty => req.send().await,
            Body::Json(v) => req.send_json(v).await,
            Body::Text(t) => req.content_type("text/plain").send_body(t.to_owned()).await,
        };
        if let Some(m) = &self.metrics {
            let status = match &sent {
                Ok(resp) => ApiStatus::Http(resp.status().as_u16()),
                Err(_) => ApiStatus::Error,
            };
            m.api_request(Api::Gitlab, call.what, status);
        }
        let resp = sent.map_err(|e| send_error(name, &e, call.timeout))?;
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let mut resp = resp.timeout(remaining);
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut body_len: u64 = 0;
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| body_error(name, &e.to_string()))?;
            body_len += chunk.len() as u64;
            if call.mode == BodyMode::Read {
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(CoordinatorError::Unexpected {
                        detail: format!("{name}: answer larger than {BODY_LIMIT} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
        }
        Ok(Reply {
            status,
            headers,
            body,
            body_len,
            what: call.what,
            method: method_str(&call.method),
            url: call.url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_base_keeps_prefixes_and_refuses_bad_urls() {
        let ok = [
            ("https://gitlab.example", "https://gitlab.example/api/v4"),
            ("https://gitlab.example/", "https://gitlab.example/api/v4"),
            ("http://h:8080/gitlab/", "http://h:8080/gitlab/api/v4"),
            ("http://h/a/b", "http://h/a/b/api/v4"),
        ];
        for (url, base) in ok {
            assert_eq!(api_base(url).as_deref(), Ok(base), "{url}");
        }
        for url in ["ftp://h", "not a url", "http://h/?x=1", "unix:/x"] {
            assert!(api_base(url).is_err(), "{url}");
        }
        let err = api_base("https://user:s3cret@h/").expect_err("credentials");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = api_base("https://user:s3cret@h:bad/").expect_err("unparsable");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
