//! What a service application's helper is at a given moment (pure, under the world lock):
//! its loopback listener, the deployment it booted from, the job it runs, and the tenant of
//! the jobs it ran. A generation number changes on every redeployment and death, so a job
//! started by an older instance of the helper notices it no longer runs.

use std::net::SocketAddr;
use std::time::Instant;

use actix_web::dev::ServerHandle;

/// What the helper can do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// No helper Dockerfile was pushed yet.
    NotDeployed,
    /// Deployed, still building and booting.
    Booting,
    /// Deployed, and will never boot (injected fault).
    NeverReady,
    /// Up and idle: takes a job.
    Idle,
    /// Up and running a job.
    Busy,
    /// Its listener is closed (died, or the application was deleted).
    Dead,
}

/// A job the helper runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    /// Job id.
    pub job_id: i64,
    /// `runner_name` of the launch request.
    pub runner_name: String,
}

/// What [`Helper::start_job`] gives the job it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Generation the job runs in (see [`Helper::runs`]).
    pub generation: u64,
    /// The helper had accepted another job before this one.
    pub reused: bool,
}

#[derive(Debug, Clone)]
struct Boot {
    ready_at: Instant,
    never_ready: bool,
    token: Option<String>,
}

/// The helper of one service application.
#[derive(Debug, Clone)]
pub struct Helper {
    addr: SocketAddr,
    server: Option<ServerHandle>,
    boot: Option<Boot>,
    running: Option<RunningJob>,
    generation: u64,
    tenant: Option<String>,
    jobs_started: u32,
    closed: bool,
}

impl Helper {
    /// A helper listening on `addr` (`server` stops it; `None` in unit tests).
    pub fn new(addr: SocketAddr, server: Option<ServerHandle>) -> Self {
        Helper {
            addr,
            server,
            boot: None,
            running: None,
            generation: 0,
            tenant: None,
            jobs_started: 0,
            closed: false,
        }
    }

    /// `127.0.0.1:PORT`: the application's `vhosts[0].fqdn`.
    pub fn fqdn(&self) -> String {
        self.addr.to_string()
    }

    /// The current instance: changes on every deployment and on death.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A helper Dockerfile was deployed: the helper (re)boots, ready at `ready_at` unless
    /// `never_ready`, expecting `token` as its bearer credential. A job of the previous
    /// instance stops running.
    pub fn deploy(&mut self, ready_at: Instant, never_ready: bool, token: Option<String>) {
        self.boot = Some(Boot {
            ready_at,
            never_ready,
            token,
        });
        self.running = None;
        self.generation += 1;
    }

    /// The bearer token to check: the one of the booted deployment, else `current` (the
    /// application's env as set now, before any deployment).
    pub fn expected_token<'a>(&'a self, current: Option<&'a str>) -> Option<&'a str> {
        match &self.boot {
            Some(b) => b.token.as_deref(),
            None => current,
        }
    }

    /// What the helper can do at `now`.
    pub fn availability(&self, now: Instant) -> Availability {
        if self.closed {
            return Availability::Dead;
        }
        match &self.boot {
            None => Availability::NotDeployed,
            Some(b) if b.never_ready => Availability::NeverReady,
            Some(b) if now < b.ready_at => Availability::Booting,
            Some(_) if self.running.is_some() => Availability::Busy,
            Some(_) => Availability::Idle,
        }
    }

    /// Starts `job` when idle at `now`; otherwise what the helper is instead.
    pub fn start_job(&mut self, now: Instant, job: RunningJob) -> Result<Started, Availability> {
        match self.availability(now) {
            Availability::Idle => {
                let reused = self.jobs_started > 0;
                self.jobs_started = self.jobs_started.saturating_add(1);
                self.running = Some(job);
                Ok(Started {
                    generation: self.generation,
                    reused,
                })
            }
            other => Err(other),
        }
    }

    /// True while the job started in `generation` still runs (same instance, not dead).
    pub fn runs(&self, generation: u64) -> bool {
        !self.closed && self.generation == generation && self.running.is_some()
    }

    /// The job started in `generation` ended: the helper is idle again. False when that
    /// instance no longer exists (redeployed or dead).
    pub fn job_ended(&mut self, generation: u64) -> bool {
        if self.runs(generation) {
            self.running = None;
            true
        } else {
            false
        }
    }

    /// The job running now, if any.
    pub fn running(&self) -> Option<&RunningJob> {
        self.running.as_ref()
    }

    /// Records the tenant of a job sent to this helper; the first job's tenant when it
    /// differs (a cross-tenant reuse).
    pub fn note_tenant(&mut self, tenant: &str) -> Result<(), String> {
        match &self.tenant {
            None => {
                self.tenant = Some(tenant.to_owned());
                Ok(())
            }
            Some(t) if t == tenant => Ok(()),
            Some(t) => Err(t.clone()),
        }
    }

    /// Closes the listener (the helper dies; the application itself is untouched). False
    /// when it was already closed.
    pub fn close(&mut self) -> bool {
        let was_open = !self.closed;
        if let Some(server) = self.server.take() {
            // The stop command is sent eagerly; the future only awaits completion.
            drop(server.stop(false));
        }
        self.generation += 1;
        self.running = None;
        self.closed = true;
        was_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn helper() -> Helper {
        Helper::new(SocketAddr::from(([127, 0, 0, 1], 1)), None)
    }

    fn job(id: i64) -> RunningJob {
        RunningJob {
            job_id: id,
            runner_name: "r".to_owned(),
        }
    }

    #[test]
    fn a_helper_boots_takes_one_job_at_a_time_then_is_reused() {
        let t0 = Instant::now();
        let boot = Duration::from_secs(5);
        let mut h = helper();
        assert_eq!(h.fqdn(), "127.0.0.1:1");
        assert_eq!(h.availability(t0), Availability::NotDeployed);
        assert_eq!(h.expected_token(Some("env")), Some("env"));
        h.deploy(t0 + boot, false, Some("tok".to_owned()));
        assert_eq!(h.expected_token(Some("env")), Some("tok"));
        assert_eq!(h.availability(t0), Availability::Booting);
        assert_eq!(h.start_job(t0, job(1)), Err(Availability::Booting));
        let up = t0 + boot;
        assert_eq!(h.availability(up), Availability::Idle);
        let first = h.start_job(up, job(1));
        assert!(matches!(first, Ok(Started { reused: false, .. })));
        assert_eq!(h.start_job(up, job(2)), Err(Availability::Busy));
        assert_eq!(h.running().map(|j| j.job_id), Some(1));
        let generation = first.map(|s| s.generation).unwrap_or(u64::MAX);
        assert!(h.runs(generation));
        assert!(h.job_ended(generation));
        assert!(!h.job_ended(generation));
        assert!(matches!(
            h.start_job(up, job(2)),
            Ok(Started { reused: true, .. })
        ));
    }

    #[test]
    fn redeployment_and_death_end_the_running_job() {
        let t0 = Instant::now();
        let mut h = helper();
        h.deploy(t0, false, None);
        let g = h.start_job(t0, job(1)).map(|s| s.generation);
        let g = g.unwrap_or(u64::MAX);
        h.deploy(t0, false, None);
        assert!(!h.runs(g));
        assert!(!h.job_ended(g));
        let g = h.start_job(t0, job(2)).map(|s| s.generation);
        let g = g.unwrap_or(u64::MAX);
        assert!(h.close());
        assert!(!h.close());
        assert!(!h.runs(g));
        assert_eq!(h.availability(t0), Availability::Dead);
        assert_eq!(h.start_job(t0, job(3)), Err(Availability::Dead));
    }

    #[test]
    fn never_ready_stays_so_and_tenants_are_noted() {
        let t0 = Instant::now();
        let mut h = helper();
        h.deploy(t0, true, None);
        assert_eq!(
            h.availability(t0 + Duration::from_secs(3600)),
            Availability::NeverReady
        );
        assert_eq!(h.expected_token(Some("env")), None);
        assert_eq!(h.note_tenant("a"), Ok(()));
        assert_eq!(h.note_tenant("a"), Ok(()));
        assert_eq!(h.note_tenant("b"), Err("a".to_owned()));
    }
}
