//! Fault injection: per-endpoint added latency, "next N calls" faults, an error rate, and
//! outage windows. Faults are decided under the world lock and acted out by the handlers.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Endpoints of the fake Clever Cloud (request counting and fault targeting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /v2/products/instances`
    ProductsInstances,
    /// `GET /v2/products/flavors`
    ProductsFlavors,
    /// `POST /v2/organisations/{o}/applications`
    CreateApp,
    /// `GET /v2/organisations/{o}/applications/{app}`
    GetApp,
    /// `GET /v2/organisations/{o}/applications`
    ListApps,
    /// `DELETE /v2/organisations/{o}/applications/{app}`
    DeleteApp,
    /// `PUT /v2/organisations/{o}/applications/{app}/env`
    PutEnv,
    /// `GET /v2/organisations/{o}/applications/{app}/env`
    GetEnv,
    /// `GET /v2/organisations/{o}/applications/{app}/deployments` or `/instances`
    AppActivity,
    /// Git `GET …/info/refs`
    GitInfoRefs,
    /// Git `POST …/git-upload-pack`
    GitUploadPack,
    /// Git `POST …/git-receive-pack`
    GitReceivePack,
    /// Anything else under `/v2` or `/git` (answered 404)
    Other,
}

impl Endpoint {
    /// True for the Git smart-HTTP endpoints.
    pub fn is_git(self) -> bool {
        matches!(
            self,
            Endpoint::GitInfoRefs | Endpoint::GitUploadPack | Endpoint::GitReceivePack
        )
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this status instead of doing the work. Body: the Clever error JSON with `id`
    /// (default: the status), or an HTML page when `html` is set.
    Status {
        /// HTTP status.
        status: u16,
        /// Error id in the JSON body.
        #[serde(default)]
        id: Option<i64>,
        /// Send an HTML body (as proxies do) instead of JSON.
        #[serde(default)]
        html: bool,
        /// `Retry-After` header value in seconds.
        #[serde(default)]
        retry_after_s: Option<u64>,
    },
    /// Answer this status and JSON body verbatim (e.g. an app without `deployment`, an
    /// object where a list is expected, an instances list without Docker).
    Respond {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: serde_json::Value,
    },
    /// Never answer (the handler sleeps until the server stops or ten minutes pass).
    Hang,
    /// Do the work (e.g. create the app), then never answer: the response is lost.
    PerformThenHang,
    /// Git receive-pack only: the pre-receive hook rejects the push.
    RejectPush,
}

impl FaultKind {
    /// A plain status fault with a JSON body.
    pub fn status(status: u16) -> Self {
        FaultKind::Status {
            status,
            id: None,
            html: false,
            retry_after_s: None,
        }
    }
}

/// An outage window, in ms since the fake started: every call in `[from_ms, until_ms)` gets
/// the fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    /// Start of the window (ms since start).
    pub from_ms: u64,
    /// End of the window, exclusive (ms since start).
    pub until_ms: u64,
    /// The fault served during the window.
    pub fault: FaultKind,
}

/// Faults configured for one endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EndpointFaults {
    /// Latency added to every call.
    #[serde(default)]
    pub latency_ms: u64,
    /// Faults served to the next calls, one per call, in order.
    #[serde(default)]
    pub next: VecDeque<FaultKind>,
    /// Probability in `[0, 1]` that a call gets `rate_fault`.
    #[serde(default)]
    pub error_rate: f64,
    /// Fault served by the error rate (default 500).
    #[serde(default)]
    pub rate_fault: Option<FaultKind>,
    /// Outage windows.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

/// Request to change faults, as accepted by `POST /__sim/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FaultCommand {
    /// The next `count` calls of `endpoint` get `fault`.
    FailNext {
        /// Target endpoint.
        endpoint: Endpoint,
        /// Number of calls.
        count: usize,
        /// The fault.
        fault: FaultKind,
    },
    /// Every call of `endpoint` gets `fault` with probability `rate`.
    ErrorRate {
        /// Target endpoint.
        endpoint: Endpoint,
        /// Probability in `[0, 1]`.
        rate: f64,
        /// The fault.
        fault: FaultKind,
    },
    /// Adds `latency_ms` to every call of `endpoint`.
    Latency {
        /// Target endpoint.
        endpoint: Endpoint,
        /// Latency in ms.
        latency_ms: u64,
    },
    /// Calls of `endpoint` between `start_in_ms` and `start_in_ms + duration_ms` from now get
    /// `fault`.
    Outage {
        /// Target endpoint.
        endpoint: Endpoint,
        /// Delay from now to the start of the window.
        start_in_ms: u64,
        /// Length of the window.
        duration_ms: u64,
        /// The fault.
        fault: FaultKind,
    },
    /// Removes every fault.
    Clear,
}

/// What a call must suffer, decided under the lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Latency to add before anything else.
    pub latency: Duration,
    /// The fault, if any.
    pub fault: Option<FaultKind>,
}

/// All faults of the fake.
#[derive(Debug, Default)]
pub struct Faults {
    by_endpoint: BTreeMap<Endpoint, EndpointFaults>,
}

impl Faults {
    /// Applies a command; `now_ms` anchors outage windows.
    pub fn apply(&mut self, cmd: FaultCommand, now_ms: u64) {
        match cmd {
            FaultCommand::FailNext {
                endpoint,
                count,
                fault,
            } => {
                let f = self.by_endpoint.entry(endpoint).or_default();
                f.next.extend(std::iter::repeat_n(fault, count));
            }
            FaultCommand::ErrorRate {
                endpoint,
                rate,
                fault,
            } => {
                let f = self.by_endpoint.entry(endpoint).or_default();
                f.error_rate = rate.clamp(0.0, 1.0);
                f.rate_fault = Some(fault);
            }
            FaultCommand::Latency {
                endpoint,
                latency_ms,
            } => {
                self.by_endpoint.entry(endpoint).or_default().latency_ms = latency_ms;
            }
            FaultCommand::Outage {
                endpoint,
                start_in_ms,
                duration_ms,
                fault,
            } => {
                let from_ms = now_ms.saturating_add(start_in_ms);
                self.by_endpoint
                    .entry(endpoint)
                    .or_default()
                    .outages
                    .push(Outage {
                        from_ms,
                        until_ms: from_ms.saturating_add(duration_ms),
                        fault,
                    });
            }
            FaultCommand::Clear => self.by_endpoint.clear(),
        }
    }

    /// Decides what the current call of `endpoint` suffers (consumes a "next" fault).
    pub fn decide(&mut self, endpoint: Endpoint, now_ms: u64, rng: &mut StdRng) -> Decision {
        let Some(f) = self.by_endpoint.get_mut(&endpoint) else {
            return Decision {
                latency: Duration::ZERO,
                fault: None,
            };
        };
        let latency = Duration::from_millis(f.latency_ms);
        let fault = if let Some(next) = f.next.pop_front() {
            Some(next)
        } else if let Some(o) = f
            .outages
            .iter()
            .find(|o| o.from_ms <= now_ms && now_ms < o.until_ms)
        {
            Some(o.fault.clone())
        } else if f.error_rate > 0.0 && rng.random::<f64>() < f.error_rate {
            Some(f.rate_fault.clone().unwrap_or(FaultKind::status(500)))
        } else {
            None
        };
        Decision { latency, fault }
    }

    /// Snapshot of every endpoint's faults (for `GET /__sim/faults`).
    pub fn snapshot(&self) -> BTreeMap<Endpoint, EndpointFaults> {
        self.by_endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn next_faults_are_consumed_in_order_then_rate_and_outages_apply() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut f = Faults::default();
        f.apply(
            FaultCommand::FailNext {
                endpoint: Endpoint::CreateApp,
                count: 2,
                fault: FaultKind::status(503),
            },
            0,
        );
        assert_eq!(
            f.decide(Endpoint::CreateApp, 0, &mut rng).fault,
            Some(FaultKind::status(503))
        );
        assert!(f.decide(Endpoint::CreateApp, 0, &mut rng).fault.is_some());
        assert!(f.decide(Endpoint::CreateApp, 0, &mut rng).fault.is_none());
        assert!(f.decide(Endpoint::GetApp, 0, &mut rng).fault.is_none());

        f.apply(
            FaultCommand::Outage {
                endpoint: Endpoint::GetApp,
                start_in_ms: 100,
                duration_ms: 50,
                fault: FaultKind::Hang,
            },
            1000,
        );
        assert!(f.decide(Endpoint::GetApp, 1099, &mut rng).fault.is_none());
        assert_eq!(
            f.decide(Endpoint::GetApp, 1100, &mut rng).fault,
            Some(FaultKind::Hang)
        );
        assert!(f.decide(Endpoint::GetApp, 1150, &mut rng).fault.is_none());

        f.apply(
            FaultCommand::ErrorRate {
                endpoint: Endpoint::DeleteApp,
                rate: 1.0,
                fault: FaultKind::status(502),
            },
            0,
        );
        assert_eq!(
            f.decide(Endpoint::DeleteApp, 0, &mut rng).fault,
            Some(FaultKind::status(502))
        );
        f.apply(
            FaultCommand::Latency {
                endpoint: Endpoint::DeleteApp,
                latency_ms: 7,
            },
            0,
        );
        assert_eq!(
            f.decide(Endpoint::DeleteApp, 0, &mut rng).latency,
            Duration::from_millis(7)
        );
        f.apply(FaultCommand::Clear, 0);
        assert!(f.decide(Endpoint::DeleteApp, 0, &mut rng).fault.is_none());
    }

    #[test]
    fn error_rate_zero_never_fires_and_half_fires_sometimes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut f = Faults::default();
        f.apply(
            FaultCommand::ErrorRate {
                endpoint: Endpoint::GetApp,
                rate: 0.5,
                fault: FaultKind::status(500),
            },
            0,
        );
        let fired = (0..200)
            .filter(|_| f.decide(Endpoint::GetApp, 0, &mut rng).fault.is_some())
            .count();
        assert!((40..160).contains(&fired), "fired {fired} times out of 200");
    }
}
