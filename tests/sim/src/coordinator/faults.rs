//! Fault injection for the fake coordinator: endpoints, "next N calls answer
//! X" rules, added latency, hangs, and the global switches (down, migration
//! back-off).
//!
//! Faults are checked after the request is recorded and before any state
//! change, so a faulted call never touches jobs or runners (as when a proxy
//! answers in front of GitLab).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The endpoints the fake coordinator serves (used for counts and faults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /api/v4/jobs/request`.
    JobsRequest,
    /// `GET /api/v4/job`.
    JobStatus,
    /// `PUT /api/v4/jobs/:id`.
    JobUpdate,
    /// `PATCH /api/v4/jobs/:id/trace`.
    TracePatch,
    /// `GET /api/v4/projects/:id/jobs/:job_id/trace`.
    TraceRead,
    /// `GET /api/v4/projects/:id/jobs/:job_id` (administrator).
    JobRead,
    /// `GET /api/v4/groups/:id/custom_attributes[/:key]`.
    GroupAttributes,
    /// `GET /api/v4/projects/:id`.
    Project,
    /// `GET /api/v4/groups/:id`.
    Group,
    /// `POST /api/v4/runners`.
    RunnerRegister,
    /// `POST /api/v4/runners/verify`.
    RunnerVerify,
    /// `DELETE /api/v4/runners`.
    RunnerDelete,
    /// `DELETE /api/v4/runners/managers`.
    RunnerManagerDelete,
    /// `POST /api/v4/runners/reset_authentication_token`.
    RunnerResetToken,
    /// `GET /api/v4/runners/:id/jobs` (administrator).
    RunnerJobs,
    /// `POST /api/v4/projects/:id/jobs/:job_id/cancel` (administrator).
    JobCancel,
    /// `POST /api/v4/projects/:id/jobs/:job_id/retry` (administrator).
    JobRetry,
    /// Anything else under `/api/v4` (answered 404).
    Other,
}

impl Endpoint {
    /// Every endpoint, in display order.
    pub const ALL: [Endpoint; 18] = [
        Endpoint::JobsRequest,
        Endpoint::JobStatus,
        Endpoint::JobUpdate,
        Endpoint::TracePatch,
        Endpoint::TraceRead,
        Endpoint::JobRead,
        Endpoint::GroupAttributes,
        Endpoint::Project,
        Endpoint::Group,
        Endpoint::RunnerRegister,
        Endpoint::RunnerVerify,
        Endpoint::RunnerDelete,
        Endpoint::RunnerManagerDelete,
        Endpoint::RunnerResetToken,
        Endpoint::RunnerJobs,
        Endpoint::JobCancel,
        Endpoint::JobRetry,
        Endpoint::Other,
    ];

    /// Snake-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::JobsRequest => "jobs_request",
            Endpoint::JobStatus => "job_status",
            Endpoint::JobUpdate => "job_update",
            Endpoint::TracePatch => "trace_patch",
            Endpoint::TraceRead => "trace_read",
            Endpoint::JobRead => "job_read",
            Endpoint::GroupAttributes => "group_attributes",
            Endpoint::Project => "project",
            Endpoint::Group => "group",
            Endpoint::RunnerRegister => "runner_register",
            Endpoint::RunnerVerify => "runner_verify",
            Endpoint::RunnerDelete => "runner_delete",
            Endpoint::RunnerManagerDelete => "runner_manager_delete",
            Endpoint::RunnerResetToken => "runner_reset_token",
            Endpoint::RunnerJobs => "runner_jobs",
            Endpoint::JobCancel => "job_cancel",
            Endpoint::JobRetry => "job_retry",
            Endpoint::Other => "other",
        }
    }

    /// True for the `API::Ci::Runner` endpoints, which answer 429 during
    /// migration back-off.
    pub fn is_runner_api(self) -> bool {
        matches!(
            self,
            Endpoint::JobsRequest
                | Endpoint::JobUpdate
                | Endpoint::TracePatch
                | Endpoint::RunnerRegister
                | Endpoint::RunnerVerify
                | Endpoint::RunnerDelete
                | Endpoint::RunnerManagerDelete
                | Endpoint::RunnerResetToken
        )
    }
}

/// What a faulted call does instead of its normal work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer this status with this body.
    Respond {
        /// HTTP status.
        status: u16,
        /// Body; `None` gives the GitLab JSON `{"message": "<status> <reason>"}`.
        body: Option<String>,
        /// Content type; `None` gives `application/json`.
        content_type: Option<String>,
        /// `Retry-After` header value (seconds), if any.
        retry_after: Option<u64>,
    },
    /// Never answer (until the server shuts down or the client gives up).
    Hang,
}

/// A fault rule: the next `times` calls to an endpoint get `action`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// How many calls the rule still applies to.
    pub times: u32,
    /// What those calls get.
    pub action: FaultAction,
}

impl Fault {
    /// The next `times` calls answer `status` with the default JSON body.
    pub fn status(status: u16, times: u32) -> Fault {
        Fault {
            times,
            action: FaultAction::Respond {
                status,
                body: None,
                content_type: None,
                retry_after: None,
            },
        }
    }

    /// The next `times` calls answer `status` with an HTML page, as a proxy
    /// in front of GitLab does.
    pub fn html(status: u16, times: u32) -> Fault {
        Fault {
            times,
            action: FaultAction::Respond {
                status,
                body: Some(html_page(status)),
                content_type: Some("text/html".to_owned()),
                retry_after: None,
            },
        }
    }

    /// The next `times` calls never get an answer.
    pub fn hang(times: u32) -> Fault {
        Fault {
            times,
            action: FaultAction::Hang,
        }
    }

    /// Replaces the body and content type (for `Respond` rules).
    pub fn with_body(mut self, body: impl Into<String>, content_type: impl Into<String>) -> Fault {
        if let FaultAction::Respond {
            body: b,
            content_type: c,
            ..
        } = &mut self.action
        {
            *b = Some(body.into());
            *c = Some(content_type.into());
        }
        self
    }

    /// Adds a `Retry-After` header (for `Respond` rules).
    pub fn with_retry_after(mut self, seconds: u64) -> Fault {
        if let FaultAction::Respond { retry_after, .. } = &mut self.action {
            *retry_after = Some(seconds);
        }
        self
    }
}

/// The HTML error page a reverse proxy sends.
pub fn html_page(status: u16) -> String {
    let reason = reason_phrase(status);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
         <body><h1>{status} {reason}</h1><p>Whoops, GitLab is taking too much time to respond.</p>\
         </body></html>\n"
    )
}

/// Canonical reason phrase of a status ("Unknown" when none).
pub fn reason_phrase(status: u16) -> &'static str {
    actix_web::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

/// All fault settings of one fake coordinator.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: BTreeMap<Endpoint, VecDeque<Fault>>,
    latency: BTreeMap<Endpoint, Duration>,
    /// Every endpoint answers 502 with an HTML page.
    pub(crate) down: bool,
    /// Every runner-API endpoint answers 429 + `Retry-After: 60`.
    pub(crate) migration_backoff: bool,
}

impl Faults {
    /// Queues a rule for an endpoint (after the already queued ones).
    pub(crate) fn push(&mut self, endpoint: Endpoint, fault: Fault) {
        if fault.times > 0 {
            self.rules.entry(endpoint).or_default().push_back(fault);
        }
    }

    /// Sets (or clears with `None`) the added latency of an endpoint.
    pub(crate) fn set_latency(&mut self, endpoint: Endpoint, latency: Option<Duration>) {
        match latency {
            Some(d) if !d.is_zero() => {
                self.latency.insert(endpoint, d);
            }
            _ => {
                self.latency.remove(&endpoint);
            }
        }
    }

    /// Added latency of an endpoint.
    pub(crate) fn latency(&self, endpoint: Endpoint) -> Option<Duration> {
        self.latency.get(&endpoint).copied()
    }

    /// Consumes one use of the first rule of `endpoint`, if any.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<FaultAction> {
        let queue = self.rules.get_mut(&endpoint)?;
        let first = queue.front_mut()?;
        let action = first.action.clone();
        first.times = first.times.saturating_sub(1);
        if first.times == 0 {
            queue.pop_front();
        }
        Some(action)
    }

    /// Removes every rule, latency and switch.
    pub(crate) fn clear(&mut self) {
        *self = Faults::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order_and_then_vanish() {
        let mut f = Faults::default();
        f.push(Endpoint::JobsRequest, Fault::status(500, 2));
        f.push(Endpoint::JobsRequest, Fault::hang(1));
        f.push(Endpoint::JobsRequest, Fault::status(409, 0));
        let first = f.take(Endpoint::JobsRequest);
        assert!(matches!(
            first,
            Some(FaultAction::Respond { status: 500, .. })
        ));
        assert!(matches!(
            f.take(Endpoint::JobsRequest),
            Some(FaultAction::Respond { status: 500, .. })
        ));
        assert_eq!(f.take(Endpoint::JobsRequest), Some(FaultAction::Hang));
        assert_eq!(f.take(Endpoint::JobsRequest), None);
        assert_eq!(f.take(Endpoint::JobStatus), None);
    }

    #[test]
    fn endpoint_names_match_serde() {
        for ep in Endpoint::ALL {
            let json = serde_json::to_value(ep).expect("serialise");
            assert_eq!(json, serde_json::Value::String(ep.as_str().to_owned()));
        }
    }
}
