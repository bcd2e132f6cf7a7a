//! Fake GitLab coordinator (runner API, job API, traces, custom attributes)
//! answering the runner's calls as GitLab does.
//!
//! [`FakeCoordinator::start`] runs an actix-web server on 127.0.0.1 (ephemeral
//! port) in its own thread with its own actix system, so it can be started
//! from a sync `main`, a tokio test or an actix test alike. The returned
//! [`CoordinatorHandle`] gives the URLs and dereferences to a
//! [`CoordinatorControl`] (enqueue jobs, inspect them, inject faults…); the
//! same control is served over HTTP under `/__sim/`.
//!
//! Modules: `state` (runners, jobs, traces, journal, settings), `jobs` (job
//! specs and payloads), `handlers` (`/api/v4` endpoints), `admin_jobs`
//! (a runner's jobs, cancel and retry, for administrators), `control`
//! (in-process and `/__sim/` control), `responses` (response builders both
//! use), `faults` (fault injection).

mod admin_jobs;
mod control;
mod faults;
mod handlers;
mod jobs;
mod responses;
mod state;

pub use control::{CoordinatorControl, FaultRequest};
pub use faults::{html_page, Endpoint, Fault, FaultAction};
pub use jobs::{
    build_payload, JobSpec, JobState, Outcome, Variable, DURATION_VARIABLE, FAILURE_REASONS,
    OUTCOME_VARIABLE,
};
pub use state::{
    ForbiddenFlavour, JobTimes, JobView, RecordedRequest, RunnerView, Settings, Stats, TokenStyle,
    JOURNAL_LIMIT,
};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use handlers::Ctx;
use state::{Shared, State};
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;

/// How to start a fake coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Relative URL root, e.g. `/gitlab` (empty for none).
    pub path_prefix: String,
    /// Runner authentication tokens known from the start.
    pub runner_tokens: Vec<String>,
    /// Registration tokens known from the start, with the style of the
    /// runner tokens they yield.
    pub registration_tokens: Vec<(String, TokenStyle)>,
    /// Administrator personal access tokens.
    pub admin_tokens: Vec<String>,
    /// Valid personal access tokens of non-administrators.
    pub user_tokens: Vec<String>,
    /// Behaviour switches.
    pub settings: Settings,
    /// actix-web worker threads.
    pub workers: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            path_prefix: String::new(),
            runner_tokens: Vec::new(),
            registration_tokens: Vec::new(),
            admin_tokens: Vec::new(),
            user_tokens: Vec::new(),
            settings: Settings::default(),
            workers: 2,
        }
    }
}

/// Why the fake coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorStartError {
    /// Binding 127.0.0.1:0 failed.
    #[error("fake coordinator: cannot bind 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The server thread could not be spawned or died before binding.
    #[error("fake coordinator: server thread failed: {0}")]
    Thread(String),
    /// The path prefix is malformed.
    #[error("fake coordinator: path prefix {0:?} must be empty or start with '/'")]
    BadPrefix(String),
}

/// Entry point: starts fake coordinators.
#[derive(Debug)]
pub struct FakeCoordinator;

impl FakeCoordinator {
    /// Starts a fake coordinator on 127.0.0.1 (ephemeral port).
    pub fn start(config: CoordinatorConfig) -> Result<CoordinatorHandle, CoordinatorStartError> {
        let prefix = config.path_prefix.trim_end_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.starts_with('/') {
            return Err(CoordinatorStartError::BadPrefix(config.path_prefix));
        }
        let mut st = State::new(config.settings);
        for t in &config.runner_tokens {
            st.add_runner(t, false);
        }
        for (t, style) in config.registration_tokens {
            st.registration_tokens.insert(t, style);
        }
        st.admin_tokens.extend(config.admin_tokens);
        st.user_tokens.extend(config.user_tokens);
        let shared = Arc::new(Shared::new(st));
        let ctx = Ctx {
            shared: Arc::clone(&shared),
            prefix: prefix.clone(),
        };
        let workers = config.workers.max(1);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("fake-coordinator".to_owned())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let data = web::Data::new(ctx);
                    let bound = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(64 << 20))
                            .default_service(web::to(handlers::entry))
                    })
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .bind(("127.0.0.1", 0));
                    match bound {
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                        Ok(server) => {
                            let addrs = server.addrs();
                            let running = server.run();
                            let _ = tx.send(Ok((addrs, running.handle())));
                            let _ = running.await;
                        }
                    }
                });
            })
            .map_err(|e| CoordinatorStartError::Thread(e.to_string()))?;
        let (addrs, server) = match rx.recv() {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(CoordinatorStartError::Bind(e)),
            Err(_) => {
                return Err(CoordinatorStartError::Thread(
                    "exited before binding".to_owned(),
                ))
            }
        };
        let Some(addr) = addrs.first().copied() else {
            drop(server.stop(false));
            return Err(CoordinatorStartError::Thread("no bound address".to_owned()));
        };
        let url = format!("http://{addr}{prefix}");
        shared.with(|st| st.base_url = url.clone());
        Ok(CoordinatorHandle {
            addr,
            url,
            control: CoordinatorControl { shared },
            server,
            thread: Some(thread),
        })
    }
}

/// A running fake coordinator. Dropping it stops the server (without
/// waiting); [`CoordinatorHandle::shutdown`] stops it and waits.
#[derive(Debug)]
pub struct CoordinatorHandle {
    addr: SocketAddr,
    url: String,
    control: CoordinatorControl,
    server: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl CoordinatorHandle {
    /// Base URL as a runner config's `url` (with the prefix, without `/api/v4`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `url()` + `/api/v4`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.url)
    }

    /// Base URL of the HTTP control API (`http://127.0.0.1:port/__sim`).
    pub fn sim_url(&self) -> String {
        format!("http://{}/__sim", self.addr)
    }

    /// Bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A cloneable control handle (stays usable after shutdown, on the
    /// frozen state).
    pub fn control(&self) -> CoordinatorControl {
        self.control.clone()
    }

    /// Stops the server (pending requests are dropped) and waits for its
    /// thread to end.
    pub fn shutdown(mut self) {
        drop(self.server.stop(false));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Deref for CoordinatorHandle {
    type Target = CoordinatorControl;

    fn deref(&self) -> &CoordinatorControl {
        &self.control
    }
}

impl Drop for CoordinatorHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // The stop command is sent eagerly; not awaiting it keeps drop
            // non-blocking.
            drop(self.server.stop(false));
        }
    }
}
