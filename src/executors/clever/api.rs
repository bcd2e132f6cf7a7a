//! Client of the Clever Cloud API v2 (awc, HTTP/1.1), limited to the calls
//! the clever-docker executor makes: product listings, application create,
//! environment, read, listing and delete.
//!
//! Every call has a connect timeout and a whole-call timeout. Each
//! idempotent call (GET, PUT env, DELETE) takes a [`Retries`]: with
//! [`Retries::Policy`] the client retries it per its [`RetryPolicy`], with
//! the workspace's back-off (`paas_actors::backoff`), on connection errors,
//! lost answers, 429 (waiting at least an integer `Retry-After`) and
//! 502–504; with [`Retries::Once`] it sends it once, for callers whose own
//! layer retries (the launcher's steps, the decommissioner: see "Which
//! layer retries what" in ARCHITECTURE.md). A 429 answer is waited out and
//! the call re-sent (at most three times) whatever the [`Retries`]: the
//! server refused the request unprocessed. Otherwise the create POST is
//! sent exactly once: a lost answer is reported as [`CleverError::Lost`], which the
//! executor turns into an *uncertain* error after looking for the app by
//! name.
//!
//! Only `/organisations/…` calls carry `Authorization: token …`; the
//! product listings are public. Tokens never appear in URLs, logs or
//! errors.

pub use super::wire::{
    AppInstance, Application, CreateApp, Deleted, Deployment, InstanceType, OrgAuth, Vhost,
    WireFlavor,
};

use super::settings::HttpSettings;
#[cfg(test)]
use super::settings::RetryPolicy;
use crate::secret::Secret;
use actix_rt::time::sleep;
use awc::error::{ConnectError, SendRequestError};
use awc::http::{header, Method, StatusCode};
use paas_actors::backoff::Backoff;
use paas_actors::metrics::{Api, ApiCounter, ApiStatus};
use paas_actors::ports::{PaasError, PaasErrorClass};
use std::time::Duration;

/// Largest response body read (an organisation may hold many apps).
const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// How many rate-limit answers (429) one call waits out before the 429 is
/// returned to the caller.
const RATE_LIMIT_WAITS: u32 = 3;
/// Longest excerpt of a non-JSON error body kept in an error message.
const EXCERPT_CHARS: usize = 300;

/// A failed Clever API call, with what the job trace and the operator need.
///
/// Displays as `<action>: <detail>`; [`CleverError::detail`] alone goes
/// into a `PaasError` message (whose own display adds the action).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", self.action(), self.detail())]
pub enum CleverError {
    /// The API answered with an error status.
    Api {
        /// What was attempted (`create-app`, `put-env`, …).
        action: &'static str,
        /// HTTP status.
        status: u16,
        /// Clever error id (`id` of the error body), when the body had one.
        id: Option<i64>,
        /// Clever error message, or an excerpt of a non-JSON body.
        message: String,
        /// `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent (connection refused, DNS, TLS,
    /// connect timeout): it certainly had no effect.
    Unreachable {
        /// What was attempted.
        action: &'static str,
        /// Cause, without URL credentials (there are none) or tokens.
        detail: String,
    },
    /// The request was (maybe) sent but its answer was lost (timeout,
    /// connection reset, unparsable answer): it may have taken effect.
    Lost {
        /// What was attempted.
        action: &'static str,
        /// Cause.
        detail: String,
        /// Whether repeating the request is harmless.
        idempotent: bool,
    },
    /// A success status with a body that does not have the expected shape.
    Unexpected {
        /// What was attempted.
        action: &'static str,
        /// What was wrong, with a bounded excerpt.
        detail: String,
        /// Whether repeating the request is harmless.
        idempotent: bool,
    },
}

fn fmt_id(id: Option<i64>) -> String {
    id.map(|i| format!(" (error id {i})")).unwrap_or_default()
}

impl CleverError {
    /// The action this error is about.
    pub fn action(&self) -> &'static str {
        match self {
            CleverError::Api { action, .. }
            | CleverError::Unreachable { action, .. }
            | CleverError::Lost { action, .. }
            | CleverError::Unexpected { action, .. } => action,
        }
    }

    /// What went wrong, without the action.
    pub fn detail(&self) -> String {
        match self {
            CleverError::Api {
                status,
                id,
                message,
                ..
            } => format!(
                "Clever Cloud API answered HTTP {status}{}: {message}",
                fmt_id(*id)
            ),
            CleverError::Unreachable { detail, .. } => {
                format!("cannot reach the Clever Cloud API: {detail}")
            }
            CleverError::Lost { detail, .. } => format!(
                "the answer of the Clever Cloud API was lost ({detail}); the request may have \
                 taken effect"
            ),
            CleverError::Unexpected { detail, .. } => {
                format!("unexpected answer of the Clever Cloud API: {detail}")
            }
        }
    }

    /// HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            CleverError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Retry class of this error.
    ///
    /// 408, 429 and 5xx are transient; other statuses permanent. A lost
    /// answer or an unreadable success body of a non-idempotent call is
    /// uncertain (the create may have happened).
    pub fn class(&self) -> PaasErrorClass {
        match self {
            CleverError::Api { status, .. } => {
                if *status == 408 || *status == 429 || *status >= 500 {
                    PaasErrorClass::Transient
                } else {
                    PaasErrorClass::Permanent
                }
            }
            CleverError::Unreachable { .. } => PaasErrorClass::Transient,
            CleverError::Lost { idempotent, .. } => {
                if *idempotent {
                    PaasErrorClass::Transient
                } else {
                    PaasErrorClass::Uncertain
                }
            }
            CleverError::Unexpected { idempotent, .. } => {
                if *idempotent {
                    PaasErrorClass::Permanent
                } else {
                    PaasErrorClass::Uncertain
                }
            }
        }
    }

    /// True when the status says the resource does not exist (404, or a
    /// Clever 4004 "unknown application" id).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CleverError::Api { status: 404, .. })
            || matches!(self, CleverError::Api { id: Some(4004), .. })
    }

    /// Whether an idempotent call failing like this deserves another try.
    fn is_retryable(&self) -> bool {
        match self {
            CleverError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            CleverError::Unreachable { .. } => true,
            CleverError::Lost { idempotent, .. } => *idempotent,
            CleverError::Unexpected { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CleverError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl From<CleverError> for PaasError {
    fn from(e: CleverError) -> PaasError {
        PaasError {
            action: e.action().to_string(),
            class: e.class(),
            message: e.detail(),
        }
    }
}

/// Reads a Clever error body: `{"id": <int>, "message": "…", "type": "error"}`.
///
/// Returns the id (when present) and the message; a body of another shape
/// (HTML from a proxy, plain text, empty) gives no id and a bounded,
/// whitespace-collapsed excerpt.
pub fn parse_error_body(body: &[u8]) -> (Option<i64>, String) {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice::<serde_json::Value>(body) {
        let message = obj.get("message").and_then(|m| m.as_str());
        let type_ok = obj
            .get("type")
            .and_then(|t| t.as_str())
            .is_none_or(|t| t == "error");
        if let (Some(message), true) = (message, type_ok) {
            let id = obj.get("id").and_then(|i| {
                i.as_i64()
                    .or_else(|| i.as_str().and_then(|s| s.parse().ok()))
            });
            return (id, excerpt(message));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = excerpt(&text);
    if text.is_empty() {
        (None, "(empty body)".to_string())
    } else {
        (None, text)
    }
}

/// Whitespace-collapsed text cut at [`EXCERPT_CHARS`] characters.
fn excerpt(text: &str) -> String {
    crate::http_text::excerpt(text.as_bytes(), EXCERPT_CHARS, &[])
}

/// Reads an integer `Retry-After` (seconds); the HTTP-date form is ignored.
fn parse_retry_after(value: Option<&header::HeaderValue>) -> Option<Duration> {
    crate::http_text::retry_after_seconds(value?.to_str().ok()?)
}

/// How many times the client sends one idempotent call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retries {
    /// One attempt: the caller's layer owns the retries of this call (an
    /// actor retries the whole step it is part of).
    Once,
    /// Retried by the client per [`HttpSettings::retry`]: no actor
    /// retries this call.
    Policy,
}

/// The delay before the next retry: the back-off's next delay, but at
/// least the server's `Retry-After` (itself capped at the policy's `max`).
pub fn retry_delay(backoff: &mut Backoff, retry_after: Option<Duration>) -> Duration {
    backoff.next_delay_at_least(retry_after)
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

/// The Clever API v2 client of one runner.
pub struct CleverApi {
    client: awc::Client,
    base: String,
    http: HttpSettings,
    metrics: Option<ApiCounter>,
}

/// A body to send.
enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
}

/// Percent-encoding of a path segment or query value: everything but
/// unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

impl CleverApi {
    /// A client of the API at `base_url` (e.g. `https://api.clever-cloud.com/v2`).
    ///
    /// Must be called inside an actix system (awc's connector pool).
    pub fn new(base_url: &str, http: HttpSettings) -> Self {
        // HTTP/1.1 is the connector's doing (`crate::http_client`); built
        // before the client builder, whose own default TLS context is then
        // the only one loaded meanwhile
        let connector = crate::http_client::connector(http.connect_timeout, None);
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(http.request_timeout)
            .disable_redirects()
            .add_default_header((header::ACCEPT, "application/json"))
            .finish();
        CleverApi {
            client,
            base: base_url.trim_end_matches('/').to_string(),
            http,
            metrics: None,
        }
    }

    /// The HTTP client (redirects not followed), shared with the pushes
    /// to deployment repositories (`crate::git::push`): one connector,
    /// one TLS context.
    pub fn http_client(&self) -> &awc::Client {
        &self.client
    }

    /// Counts every exchange in `metrics` (endpoint: the action name).
    pub fn set_metrics(&mut self, metrics: ApiCounter) {
        self.metrics = Some(metrics);
    }

    fn org_url(&self, orga_id: &str, rest: &str) -> String {
        format!(
            "{}/organisations/{}/applications{rest}",
            self.base,
            enc(orga_id)
        )
    }

    /// One HTTP exchange: status, `Retry-After` and body, or the failure.
    async fn exchange(
        &self,
        action: &'static str,
        method: Method,
        url: &str,
        auth: Option<&Secret>,
        body: Body<'_>,
        idempotent: bool,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), CleverError> {
        let mut req = self.client.request(method, url);
        if let Some(token) = auth {
            req = req.insert_header((header::AUTHORIZATION, format!("token {}", token.expose())));
        }
        let lost = |detail: String| CleverError::Lost {
            action,
            detail,
            idempotent,
        };
        let call = async {
            let sent = match body {
                Body::None => req.send().await,
                Body::Json(v) => req.send_json(v).await,
            };
            let mut resp = sent.map_err(|e| match e {
                SendRequestError::Connect(ConnectError::Timeout) => CleverError::Unreachable {
                    action,
                    detail: "connection timed out".into(),
                },
                SendRequestError::Connect(c) => CleverError::Unreachable {
                    action,
                    detail: c.to_string(),
                },
                SendRequestError::Url(u) => CleverError::Unreachable {
                    action,
                    detail: format!("invalid URL: {u}"),
                },
                SendRequestError::Timeout => lost("no answer within the request timeout".into()),
                other => lost(other.to_string()),
            })?;
            let status = resp.status();
            let retry_after = parse_retry_after(resp.headers().get(header::RETRY_AFTER));
            let bytes = resp
                .body()
                .limit(BODY_LIMIT)
                .await
                .map_err(|e| lost(format!("reading the answer: {e}")))?;
            Ok((status, retry_after, bytes.to_vec()))
        };
        let result = match actix_rt::time::timeout(self.http.request_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(lost("no answer within the request timeout".into())),
        };
        if let Some(m) = &self.metrics {
            let status = match &result {
                Ok((status, _, _)) => ApiStatus::Http(status.as_u16()),
                Err(_) => ApiStatus::Error,
            };
            m.api_request(Api::Clever, action, status);
        }
        result
    }

    /// One call, error statuses turned into [`CleverError::Api`].
    async fn call(
        &self,
        action: &'static str,
        method: Method,
        url: &str,
        auth: Option<&Secret>,
        body: Body<'_>,
        idempotent: bool,
    ) -> Result<Vec<u8>, CleverError> {
        let (status, retry_after, bytes) = self
            .exchange(action, method, url, auth, body, idempotent)
            .await?;
        if status.is_success() {
            return Ok(bytes);
        }
        let (id, message) = parse_error_body(&bytes);
        Err(CleverError::Api {
            action,
            status: status.as_u16(),
            id,
            message,
            retry_after,
        })
    }

    /// One call, re-sent after a rate-limit answer (429) at most
    /// [`RATE_LIMIT_WAITS`] times, each time after the back-off's delay
    /// but at least the server's `Retry-After`. A 429 refuses the request
    /// before it is processed, so re-sending it repeats nothing: this is
    /// flow control, not a retry of failed work, and it applies to every
    /// call, the create included, whatever its [`Retries`].
    async fn call_admitted(
        &self,
        action: &'static str,
        method: Method,
        url: &str,
        auth: Option<&Secret>,
        body: Option<&serde_json::Value>,
        idempotent: bool,
    ) -> Result<Vec<u8>, CleverError> {
        let mut backoff = self.http.retry.backoff().start();
        let mut waits = 0;
        loop {
            let b = body.map_or(Body::None, Body::Json);
            match self
                .call(action, method.clone(), url, auth, b, idempotent)
                .await
            {
                Err(e) if e.status() == Some(429) && waits < RATE_LIMIT_WAITS => {
                    sleep(retry_delay(&mut backoff, e.retry_after())).await;
                    waits += 1;
                }
                other => return other,
            }
        }
    }

    /// An idempotent call: sent once, or retried per the policy (rate
    /// limiting is waited out by [`Self::call_admitted`] either way).
    async fn call_retried(
        &self,
        action: &'static str,
        method: Method,
        url: &str,
        auth: Option<&Secret>,
        body: Option<&serde_json::Value>,
        retries: Retries,
    ) -> Result<Vec<u8>, CleverError> {
        let attempts = match retries {
            Retries::Once => 1,
            Retries::Policy => self.http.retry.max_attempts.max(1),
        };
        let mut backoff = self.http.retry.backoff().start();
        let mut attempt = 1;
        loop {
            let sent = self
                .call_admitted(action, method.clone(), url, auth, body, true)
                .await;
            match sent {
                Err(e) if e.is_retryable() && e.status() != Some(429) && attempt < attempts => {
                    sleep(retry_delay(&mut backoff, e.retry_after())).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Decodes the body of an answer as `T`; an undecodable body is
    /// `Unexpected`, with an excerpt (public for the fuzz targets of `fuzz/`).
    pub fn parse<T: serde::de::DeserializeOwned>(
        action: &'static str,
        bytes: &[u8],
        idempotent: bool,
    ) -> Result<T, CleverError> {
        serde_json::from_slice(bytes).map_err(|e| CleverError::Unexpected {
            action,
            detail: format!("{e}; body starts with: {}", parse_error_body(bytes).1),
            idempotent,
        })
    }

    /// `GET url`, authenticated with `auth` when given, its answer
    /// decoded as `T`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        url: &str,
        auth: Option<&Secret>,
        retries: Retries,
    ) -> Result<T, CleverError> {
        let bytes = self
            .call_retried(action, Method::GET, url, auth, None, retries)
            .await?;
        Self::parse(action, &bytes, true)
    }

    /// `GET /products/instances` (public).
    pub async fn instance_types(&self, retries: Retries) -> Result<Vec<InstanceType>, CleverError> {
        let url = format!("{}/products/instances", self.base);
        self.get_json("get-instance-type", &url, None, retries)
            .await
    }

    /// `GET /products/flavors?context=…` (public).
    pub async fn flavors(
        &self,
        context: &str,
        retries: Retries,
    ) -> Result<Vec<WireFlavor>, CleverError> {
        let url = format!("{}/products/flavors?context={}", self.base, enc(context));
        self.get_json("get-available-flavors", &url, None, retries)
            .await
    }

    /// `POST /organisations/{o}/applications`: sent once, never retried.
    pub async fn create_app(
        &self,
        org: &OrgAuth,
        body: &CreateApp,
    ) -> Result<Application, CleverError> {
        let action = "create-app";
        let url = self.org_url(&org.orga_id, "");
        let json = serde_json::to_value(body).map_err(|e| CleverError::Unexpected {
            action,
            detail: format!("cannot encode the request: {e}"),
            idempotent: true,
        })?;
        let bytes = self
            .call_admitted(
                action,
                Method::POST,
                &url,
                Some(&org.token),
                Some(&json),
                false,
            )
            .await?;
        Self::parse(action, &bytes, false)
    }

    /// `PUT /organisations/{o}/applications/{app}/env`: replaces the whole
    /// environment (so repeating it is harmless).
    pub async fn put_env(
        &self,
        org: &OrgAuth,
        app_id: &str,
        env: &[(String, String)],
        retries: Retries,
    ) -> Result<(), CleverError> {
        let action = "put-env";
        let url = self.org_url(&org.orga_id, &format!("/{}/env", enc(app_id)));
        let map: serde_json::Map<String, serde_json::Value> = env
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let json = serde_json::Value::Object(map);
        self.call_retried(
            action,
            Method::PUT,
            &url,
            Some(&org.token),
            Some(&json),
            retries,
        )
        .await?;
        Ok(())
    }

    /// `GET /organisations/{o}/applications/{app}`.
    pub async fn get_app(
        &self,
        org: &OrgAuth,
        app_id: &str,
        retries: Retries,
    ) -> Result<Application, CleverError> {
        let url = self.org_url(&org.orga_id, &format!("/{}", enc(app_id)));
        self.get_json("get-info", &url, Some(&org.token), retries)
            .await
    }

    /// `GET /organisations/{o}/applications`: every app of the organisation.
    pub async fn list_apps(
        &self,
        org: &OrgAuth,
        retries: Retries,
    ) -> Result<Vec<Application>, CleverError> {
        let url = self.org_url(&org.orga_id, "");
        self.get_json("list-apps", &url, Some(&org.token), retries)
            .await
    }

    /// `DELETE /organisations/{o}/applications/{app}`; 404 / 4004 is
    /// [`Deleted::AlreadyGone`].
    pub async fn delete_app(
        &self,
        org: &OrgAuth,
        app_id: &str,
        retries: Retries,
    ) -> Result<Deleted, CleverError> {
        let action = "delete";
        let url = self.org_url(&org.orga_id, &format!("/{}", enc(app_id)));
        match self
            .call_retried(
                action,
                Method::DELETE,
                &url,
                Some(&org.token),
                None,
                retries,
            )
            .await
        {
            Ok(_) => Ok(Deleted::Now),
            Err(e) if e.is_not_found() => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_parsed_or_excerpted() {
        let cases: [(&[u8], Option<i64>, &str); 6] = [
            (
                br#"{"id":4004,"message":"Application not found","type":"error"}"#,
                Some(4004),
                "Application not found",
            ),
            (br#"{"id":"557","message":"bad env"}"#, Some(557), "bad env"),
            (br#"{"message":"no id","type":"error"}"#, None, "no id"),
            (
                b"<html>\n<body>502   Bad Gateway</body></html>",
                None,
                "<html> <body>502 Bad Gateway</body></html>",
            ),
            (b"", None, "(empty body)"),
            (
                br#"{"id":1,"message":"m","type":"success"}"#,
                None,
                r#"{"id":1,"message":"m","type":"success"}"#,
            ),
        ];
        for (body, id, message) in cases {
            assert_eq!(parse_error_body(body), (id, message.to_string()));
        }
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = "é".repeat(1000);
        let (_, msg) = parse_error_body(body.as_bytes());
        assert_eq!(msg.chars().count(), EXCERPT_CHARS + 1);
        assert!(msg.ends_with('…'));
    }

    fn api(status: u16, id: Option<i64>) -> CleverError {
        CleverError::Api {
            action: "x",
            status,
            id,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn classes_follow_status_and_idempotence() {
        use PaasErrorClass::*;
        let cases = [
            (api(400, None), Permanent, false),
            (api(401, None), Permanent, false),
            (api(404, Some(4004)), Permanent, false),
            (api(408, None), Transient, false),
            (api(429, None), Transient, true),
            (api(500, None), Transient, false),
            (api(502, None), Transient, true),
            (api(503, None), Transient, true),
            (api(504, None), Transient, true),
            (
                CleverError::Unreachable {
                    action: "x",
                    detail: "refused".into(),
                },
                Transient,
                true,
            ),
            (
                CleverError::Lost {
                    action: "x",
                    detail: "t".into(),
                    idempotent: true,
                },
                Transient,
                true,
            ),
            (
                CleverError::Lost {
                    action: "create-app",
                    detail: "t".into(),
                    idempotent: false,
                },
                Uncertain,
                false,
            ),
            (
                CleverError::Unexpected {
                    action: "create-app",
                    detail: "t".into(),
                    idempotent: false,
                },
                Uncertain,
                false,
            ),
        ];
        for (err, class, retryable) in cases {
            assert_eq!(err.class(), class, "{err}");
            assert_eq!(err.is_retryable(), retryable, "{err}");
        }
    }

    #[test]
    fn not_found_is_404_or_4004() {
        assert!(api(404, None).is_not_found());
        assert!(api(400, Some(4004)).is_not_found());
        assert!(!api(403, Some(4002)).is_not_found());
    }

    #[test]
    fn paas_error_carries_action_status_id_and_message() {
        let e = CleverError::Api {
            action: "create-app",
            status: 400,
            id: Some(4010),
            message: "Invalid version".into(),
            retry_after: None,
        };
        let p = PaasError::from(e);
        assert_eq!(p.action, "create-app");
        assert_eq!(p.class, PaasErrorClass::Permanent);
        assert_eq!(
            p.message,
            "Clever Cloud API answered HTTP 400 (error id 4010): Invalid version"
        );
        assert_eq!(
            p.to_string(),
            "create-app: Clever Cloud API answered HTTP 400 (error id 4010): Invalid version"
        );
    }

    #[test]
    fn retry_delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        let ms = Duration::from_millis;
        // Equal jitter: each delay lies in [ceiling / 2, ceiling].
        let mut b = Backoff::seeded(p.backoff(), 7);
        for ceiling in [100, 200, 350, 350, 350] {
            let d = retry_delay(&mut b, None);
            assert!(
                d >= ms(ceiling / 2) && d <= ms(ceiling),
                "{d:?} for {ceiling}"
            );
        }
        // The same seed gives the same delays.
        let draw = |seed| {
            let mut b = Backoff::seeded(p.backoff(), seed);
            (0..4)
                .map(|_| retry_delay(&mut b, None))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        // Retry-After is a floor, capped at the policy's maximum.
        let mut b = Backoff::seeded(p.backoff(), 7);
        assert!(retry_delay(&mut b, Some(ms(250))) >= ms(250));
        let mut b = Backoff::seeded(p.backoff(), 7);
        assert_eq!(retry_delay(&mut b, Some(Duration::from_secs(60))), ms(350));
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let v = header::HeaderValue::from_static("3");
        assert_eq!(parse_retry_after(Some(&v)), Some(Duration::from_secs(3)));
        let d = header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&d)), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn flavor_size_comes_from_mem_or_memory_bytes() {
        let f: WireFlavor = serde_json::from_str(r#"{"name":"a","mem":4096}"#).expect("json");
        assert_eq!(f.mem_mib(), Some(4096));
        let f: WireFlavor = serde_json::from_str(
            r#"{"name":"a","memory":{"unit":"B","value":"4294967296","formatted":"4096 MiB"}}"#,
        )
        .expect("json");
        assert_eq!(f.mem_mib(), Some(4096));
        let f: WireFlavor =
            serde_json::from_str(r#"{"name":"a","memory":{"unit":"B","value":2147483648}}"#)
                .expect("json");
        assert_eq!(f.mem_mib(), Some(2048));
        let f: WireFlavor = serde_json::from_str(r#"{"name":"a"}"#).expect("json");
        assert_eq!(f.mem_mib(), None);
    }

    #[test]
    fn create_body_has_exactly_the_reference_keys() {
        let body = CreateApp {
            name: "hpd-job-D3adNQYu-275833".into(),
            zone: "par".into(),
            deploy: "git",
            instance_type: "docker",
            instance_version: "20231106".into(),
            instance_variant: "70d676a0-a775-4dc9-a43d-3121036e8515".into(),
            instance_lifetime: Some("TASK"),
            min_instances: 1,
            max_instances: 1,
            min_flavor: "heptapod-runner-M".into(),
            max_flavor: "heptapod-runner-M".into(),
        };
        let expected = serde_json::json!({"name": "hpd-job-D3adNQYu-275833",
            "zone": "par", "deploy": "git", "instanceType": "docker",
            "instanceVersion": "20231106",
            "instanceVariant": "70d676a0-a775-4dc9-a43d-3121036e8515",
            "instanceLifetime": "TASK", "minInstances": 1, "maxInstances": 1,
            "minFlavor": "heptapod-runner-M", "maxFlavor": "heptapod-runner-M"});
        assert_eq!(serde_json::to_value(&body).expect("encode"), expected);
        // A service application: no instanceLifetime at all (Clever Cloud
        // then makes it a regular application).
        let service = CreateApp {
            instance_lifetime: None,
            ..body
        };
        let mut expected = expected;
        if let Some(obj) = expected.as_object_mut() {
            obj.remove("instanceLifetime");
        }
        assert_eq!(serde_json::to_value(&service).expect("encode"), expected);
    }

    #[test]
    fn application_accepts_missing_optional_parts() {
        let app: Application = serde_json::from_str(r#"{"id":"app_1"}"#).expect("json");
        assert_eq!(app.http_url(), None);
        assert_eq!(app.repo_state(), None);
        assert_eq!(app.max_flavor_mem_mib(), None);
        let app: Application = serde_json::from_str(
            r#"{"id":"app_1","name":"n","zzz":1,"deployment":{"repoState":"CREATED",
                "httpUrl":"http://h/app_1.git"},"instance":{"maxFlavor":{"name":"f","mem":8192}}}"#,
        )
        .expect("json");
        assert_eq!(app.http_url(), Some("http://h/app_1.git"));
        assert_eq!(app.repo_state(), Some("CREATED"));
        assert_eq!(app.max_flavor_mem_mib(), Some(8192));
        assert_eq!(app.first_fqdn(), None);
        for (vhosts, first) in [
            (
                r#"[{"fqdn":"app-1.cleverapps.io"},{"fqdn":"b.example"}]"#,
                Some("app-1.cleverapps.io"),
            ),
            ("[]", None),
            (r#"[{}]"#, None),
        ] {
            let app: Application =
                serde_json::from_str(&format!(r#"{{"id":"app_1","vhosts":{vhosts}}}"#))
                    .expect("json");
            assert_eq!(app.first_fqdn(), first, "{vhosts}");
        }
    }
}
