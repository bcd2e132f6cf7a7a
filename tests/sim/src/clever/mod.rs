//! Fake Clever Cloud API v2 with its git deployment endpoint and simulated inner runner.
//!
//! [`FakeClever::start`] runs an actix-web server (signals disabled) on `127.0.0.1:0` in its
//! own thread with its own actix system, so it works the same from sync tests, from actix or
//! tokio tests (even with a paused clock) and from the CLI. The [`CleverHandle`] gives the URLs,
//! the in-process control ([`CleverControl`]) and [`CleverHandle::shutdown`].
//!
//! Layout: [`config`] (seed and knobs), [`products`] (flavors, instance types, weight),
//! [`model`] (the world behind one lock), [`auth`], [`handlers`] (error ids, fault guard),
//! [`routes`] (the route table), [`product_endpoints`] (product listings), [`apps`]
//! (application endpoints), [`repos`] (bare repositories, clean `git` command), [`git_http`]
//! (CGI bridge to `git http-backend`), [`checker`] and [`inner_runner`] (what happens on a
//! deployment), [`helper`] (service applications: each one's loopback listener serving the
//! helper's API, and its faults), [`ledger`], [`faults`], [`control`] (`/__sim/` and
//! in-process control).

pub mod apps;
pub mod auth;
pub mod checker;
pub mod config;
pub mod control;
pub mod faults;
pub mod git_http;
pub mod handlers;
pub mod helper;
pub mod inner_runner;
pub mod ledger;
pub mod model;
pub mod product_endpoints;
pub mod products;
pub mod repos;
pub mod routes;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::{web, App, HttpServer};

pub use config::{CleverSimConfig, OrgSeed, RepoDelay, Timing, DEFAULT_HELPER_IMAGE};
pub use control::CleverControl;
pub use faults::{Endpoint, FaultCommand, FaultKind};
pub use helper::faults::{HelperFaultCommand, HelperFaults};
pub use ledger::{
    AppEntry, DeploymentEntry, HelperCall, HelperJobEntry, HelperRoute, LedgerSummary, Violation,
};
pub use model::RepoState;
pub use products::{weight_of_mem_mib, FlavorSpec};

use model::{SharedWorld, World};

/// Largest request body accepted (git packs included).
const MAX_BODY: usize = 256 << 20;
/// How long [`FakeClever::start`] waits for the server thread to bind.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the fake could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The temporary directory for the repositories could not be created.
    #[error("cannot create the repositories directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// Binding 127.0.0.1:0 failed.
    #[error("cannot bind 127.0.0.1:0 for the fake Clever Cloud: {0}")]
    Bind(#[source] std::io::Error),
    /// The server thread died or did not report in time.
    #[error("the fake Clever Cloud server thread did not start")]
    Thread,
    /// `git` is not usable (needed for the Git endpoint).
    #[error("`git` is not usable: {0}")]
    Git(String),
}

/// Entry point of the fake Clever Cloud.
pub struct FakeClever;

struct Started {
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
}

impl FakeClever {
    /// Starts a fake on `127.0.0.1:0` in a dedicated thread.
    pub fn start(config: CleverSimConfig) -> Result<CleverHandle, StartError> {
        check_git()?;
        let repos = tempfile::Builder::new()
            .prefix("paas-sim-clever-")
            .tempdir()
            .map_err(StartError::TempDir)?;
        let world = SharedWorld::new(World::new(&config, repos.path().to_path_buf()));
        let workers = config.workers.max(1);
        let (tx, rx) = mpsc::channel::<Result<Started, std::io::Error>>();
        let thread_world = world.clone();
        let thread = std::thread::Builder::new()
            .name("paas-sim-clever".to_owned())
            .spawn(move || {
                let system = actix_rt::System::new();
                // Helper listeners and their jobs run on this arbiter (see World::spawn_on_system).
                thread_world.lock().arbiter = Some(actix_rt::System::current().arbiter().clone());
                let data = web::Data::new(thread_world);
                let bound = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(MAX_BODY))
                        .configure(routes::routes)
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(1)
                .bind(("127.0.0.1", 0));
                let server = match bound {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let Some(addr) = server.addrs().first().copied() else {
                    let _ = tx.send(Err(std::io::Error::other("no bound address")));
                    return;
                };
                let server = server.run();
                let _ = tx.send(Ok(Started {
                    addr,
                    server: server.handle(),
                }));
                let _ = system.block_on(server);
            })
            .map_err(|_| StartError::Thread)?;
        let started = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(StartError::Bind(e)),
            Err(_) => return Err(StartError::Thread),
        };
        let base_url = format!("http://{}", started.addr);
        world.lock().git_base_url = format!("{base_url}/git");
        Ok(CleverHandle {
            base_url,
            addr: started.addr,
            control: CleverControl { world },
            server: Some(started.server),
            thread: Some(thread),
            _repos: repos,
        })
    }
}

fn check_git() -> Result<(), StartError> {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .map_err(|e| StartError::Git(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(StartError::Git(format!("git --exec-path: {}", out.status)))
    }
}

/// A running fake Clever Cloud. Dropping it shuts the server down.
pub struct CleverHandle {
    base_url: String,
    addr: SocketAddr,
    control: CleverControl,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    _repos: tempfile::TempDir,
}

impl std::fmt::Debug for CleverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleverHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl CleverHandle {
    /// `http://127.0.0.1:P` (root of the server, also serving `/__sim/`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// API base, `http://127.0.0.1:P/v2` (the runner's `cc_api_url`).
    pub fn api_url(&self) -> String {
        format!("{}/v2", self.base_url)
    }

    /// Git base URL, `http://127.0.0.1:P/git`; each app's `httpUrl` is `<this>/<app id>.git`.
    pub fn git_base_url(&self) -> String {
        format!("{}/git", self.base_url)
    }

    /// `http://127.0.0.1:P/__sim` (HTTP control and inspection).
    pub fn sim_url(&self) -> String {
        format!("{}/__sim", self.base_url)
    }

    /// In-process control and inspection.
    pub fn control(&self) -> &CleverControl {
        &self.control
    }

    /// Stops the server and joins its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        {
            let mut w = self.control.world.lock();
            for app in w.apps.values_mut() {
                if let Some(h) = app.helper.as_mut() {
                    h.close();
                }
            }
        }
        if let Some(server) = self.server.take() {
            // The stop command is sent eagerly; the returned future only awaits completion,
            // which joining the thread below also does.
            drop(server.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CleverHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
