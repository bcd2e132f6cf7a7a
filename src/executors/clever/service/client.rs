//! The HTTP client of the helpers (awc, through the process's one
//! connector, `src/http_client.rs`): `GET /can-take-job` and
//! `POST /launch-job`, each sent once (the callers' loops decide what is
//! asked again), each with the connect timeout and a whole-call timeout,
//! answers read up to a bound ([`super::answers`]), redirects never
//! followed. Every call carries `Authorization: Bearer <token>`; the token
//! is never in a URL, a log or an error, and body excerpts in errors are
//! masked of it. Each call is counted in `api_requests_total` (`api =
//! "helper"`).

use super::answers::{
    read_can_take_job, read_launch, LaunchAnswer, CAN_TAKE_JOB_BODY_LIMIT, LAUNCH_BODY_LIMIT,
};
use crate::executors::clever::settings::HttpSettings;
use crate::secret::Secret;
use awc::error::{ConnectError, SendRequestError};
use awc::http::header;
use paas_actors::metrics::{Api, ApiCounter, ApiStatus};
use paas_actors::ports::{PaasError, PaasErrorClass};
use serde::Serialize;
use std::time::Duration;

/// Longest excerpt of an answer body kept in an error.
const EXCERPT_CHARS: usize = 200;

/// The body of `POST /launch-job`.
#[derive(Serialize)]
pub struct LaunchRequest {
    /// The job's id.
    pub job_id: i64,
    /// The unique name of the runner section the job was acquired by.
    pub runner_name: String,
    /// The job payload after the dependency-proxy rewrite, as a JSON string
    /// (holds the job token).
    pub specification: String,
    /// The inner `runner.toml` (may hold forwarded credentials).
    pub config: String,
}

/// Holds the job token and forwarded credentials: shows the job only.
impl std::fmt::Debug for LaunchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaunchRequest")
            .field("job_id", &self.job_id)
            .field("runner_name", &self.runner_name)
            .finish_non_exhaustive()
    }
}

/// A failed call to a helper. Messages name the URL (no credential is
/// ever in it) and never hold the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelperError {
    /// Nothing was sent (connection refused, name lookup, TLS, connect
    /// timeout).
    #[error("cannot reach the helper at {url}: {detail}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// Why.
        detail: String,
    },
    /// The request was sent (maybe) and no answer came back in time, or
    /// the answer broke off.
    #[error("no answer from the helper at {url} ({detail}); the request may have taken effect")]
    Lost {
        /// The URL called.
        url: String,
        /// Why.
        detail: String,
    },
    /// An answer the call does not expect (with a masked, bounded excerpt).
    #[error("the helper at {url} {detail}")]
    Answer {
        /// The URL called.
        url: String,
        /// What it answered.
        detail: String,
        /// Its HTTP status.
        status: u16,
    },
}

impl HelperError {
    /// What the launcher makes of a failed `launch-job`: nothing sent is
    /// worth sending again; a lost answer may have started the job
    /// (uncertain: the job is failed and its application deleted, never
    /// sent twice); a refusal is permanent.
    pub fn to_paas_error(&self, action: &str) -> PaasError {
        let class = match self {
            HelperError::Unreachable { .. } => PaasErrorClass::Transient,
            HelperError::Lost { .. } => PaasErrorClass::Uncertain,
            HelperError::Answer { .. } => PaasErrorClass::Permanent,
        };
        PaasError {
            action: action.to_string(),
            message: self.to_string(),
            class,
        }
    }
}

/// An answer as read: status, `Retry-After`, body (bounded).
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Vec<u8>,
}

/// The helpers' client of one executor.
pub struct HelperClient {
    client: awc::Client,
    http: HttpSettings,
    metrics: Option<ApiCounter>,
}

impl HelperClient {
    /// A client with `http`'s connect and request timeouts. Must be called
    /// inside an actix system.
    pub fn new(http: HttpSettings) -> Self {
        let client = awc::Client::builder()
            .connector(crate::http_client::connector(http.connect_timeout, None))
            .timeout(http.request_timeout)
            .disable_redirects()
            .finish();
        HelperClient {
            client,
            http,
            metrics: None,
        }
    }

    /// Counts every call in `metrics`.
    pub fn set_metrics(&mut self, metrics: ApiCounter) {
        self.metrics = Some(metrics);
    }

    /// The longest a call may take.
    pub fn request_timeout(&self) -> Duration {
        self.http.request_timeout
    }

    /// `GET <base>/can-take-job`, within `limit` (at most the request
    /// timeout): whether the helper is up and idle.
    pub async fn can_take_job(
        &self,
        base: &str,
        token: &Secret,
        limit: Duration,
    ) -> Result<bool, HelperError> {
        let url = format!("{base}/can-take-job");
        let req = self.client.get(&url);
        let answer = self
            .exchange(
                "can-take-job",
                &url,
                req,
                None,
                token,
                limit,
                CAN_TAKE_JOB_BODY_LIMIT,
            )
            .await?;
        read_can_take_job(answer.status, &answer.body).map_err(|e| HelperError::Answer {
            url,
            detail: e.to_string(),
            status: answer.status,
        })
    }

    /// `POST <base>/launch-job` with `body`, once.
    pub async fn launch_job(
        &self,
        base: &str,
        token: &Secret,
        body: &LaunchRequest,
    ) -> Result<LaunchAnswer, HelperError> {
        let url = format!("{base}/launch-job");
        let json = serde_json::to_vec(body).map_err(|e| HelperError::Answer {
            url: url.clone(),
            detail: format!("request not encoded: {e}"),
            status: 0,
        })?;
        let req = self
            .client
            .post(&url)
            .insert_header((header::CONTENT_TYPE, "application/json"));
        let answer = self
            .exchange(
                "launch-job",
                &url,
                req,
                Some(json),
                token,
                self.http.request_timeout,
                LAUNCH_BODY_LIMIT,
            )
            .await?;
        let meaning = read_launch(answer.status, answer.retry_after.as_deref());
        if let LaunchAnswer::Refused(status) = meaning {
            let excerpt = crate::http_text::excerpt(&answer.body, EXCERPT_CHARS, &[token.expose()]);
            return Err(HelperError::Answer {
                url,
                detail: format!("refused the job: HTTP {status}: {excerpt}"),
                status,
            });
        }
        Ok(meaning)
    }

    /// One exchange within `limit`: the answer's status, `Retry-After` and
    /// body (at most `body_limit` bytes; a longer body is an error).
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        call: &'static str,
        url: &str,
        req: awc::ClientRequest,
        body: Option<Vec<u8>>,
        token: &Secret,
        limit: Duration,
        body_limit: usize,
    ) -> Result<Answer, HelperError> {
        let limit = limit.min(self.http.request_timeout);
        let req = req
            .timeout(limit)
            .insert_header((header::AUTHORIZATION, format!("Bearer {}", token.expose())));
        let lost = |detail: String| HelperError::Lost {
            url: url.to_string(),
            detail,
        };
        let exchange = async {
            let sent = match body {
                Some(b) => req.send_body(b).await,
                None => req.send().await,
            };
            let mut resp = sent.map_err(|e| match e {
                SendRequestError::Connect(ConnectError::Timeout) => HelperError::Unreachable {
                    url: url.to_string(),
                    detail: "connection timed out".into(),
                },
                SendRequestError::Connect(c) => HelperError::Unreachable {
                    url: url.to_string(),
                    detail: c.to_string(),
                },
                SendRequestError::Url(u) => HelperError::Unreachable {
                    url: url.to_string(),
                    detail: format!("invalid URL: {u}"),
                },
                SendRequestError::Timeout => lost("no answer within the request timeout".into()),
                other => lost(other.to_string()),
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // A launched job's answer needs no body.
            let body = if status == 201 {
                Vec::new()
            } else {
                match resp.body().limit(body_limit).await {
                    Ok(b) => b.to_vec(),
                    Err(awc::error::PayloadError::Overflow) => {
                        return Err(HelperError::Answer {
                            url: url.to_string(),
                            detail: format!(
                                "answered HTTP {status} with a body over {body_limit} bytes"
                            ),
                            status,
                        })
                    }
                    Err(e) => return Err(lost(format!("reading the answer: {e}"))),
                }
            };
            Ok(Answer {
                status,
                retry_after,
                body,
            })
        };
        let result = match actix_rt::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(lost("no answer within the request timeout".into())),
        };
        if let Some(m) = &self.metrics {
            let status = match &result {
                Ok(a) => ApiStatus::Http(a.status),
                Err(HelperError::Answer { status, .. }) => ApiStatus::Http(*status),
                Err(_) => ApiStatus::Error,
            };
            m.api_request(Api::Helper, call, status);
        }
        result
    }
}
