//! State of the fake Clever Cloud ("the world"): tokens, flavor table, applications (with
//! their helpers), ledger and faults, all behind one lock that is never held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{json, Value};

use super::checker::Finding;
use super::config::{CleverSimConfig, RepoDelay, Timing};
use super::faults::{Decision, Endpoint, Faults};
use super::helper::faults::HelperFaults;
use super::helper::state::Helper;
use super::ledger::{Ledger, Violation};
use super::products::FlavorSpec;

/// `deployment.repoState` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepoState {
    /// The Git repository is being created; pushes fail.
    Creating,
    /// Ready for pushes.
    Created,
    /// No Git repository.
    NotNeeded,
    /// Removed.
    Deleted,
}

impl RepoState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoState::Creating => "CREATING",
            RepoState::Created => "CREATED",
            RepoState::NotNeeded => "NOT_NEEDED",
            RepoState::Deleted => "DELETED",
        }
    }
}

/// A deployment of an application (one per push moving `master`).
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// `deployment_<uuid>`.
    pub id: String,
    /// Commit deployed.
    pub commit: String,
    /// Env snapshot taken when the deployment started.
    pub env: BTreeMap<String, String>,
    /// Unix time in ms.
    pub date_ms: u64,
    /// `WIP`, `TASK_RUNNING`, `OK`, `FAIL`, `CANCELLED`.
    pub state: String,
}

/// One application.
#[derive(Debug, Clone)]
pub struct App {
    /// `app_<uuid>`.
    pub id: String,
    /// Owning organisation.
    pub org: String,
    /// Name (not unique).
    pub name: String,
    /// Description (defaults to the name).
    pub description: String,
    /// Zone.
    pub zone: String,
    /// `instanceVersion` given at creation.
    pub instance_version: String,
    /// `instanceVariant` given at creation.
    pub variant: String,
    /// `TASK`, `REGULAR` or `MIGRATION`.
    pub lifetime: String,
    /// Instances bounds.
    pub min_instances: u64,
    /// Instances bounds.
    pub max_instances: u64,
    /// Min flavor.
    pub min_flavor: FlavorSpec,
    /// Max flavor (gives the weight).
    pub max_flavor: FlavorSpec,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Creation instant.
    pub created: Instant,
    /// Creation time, unix ms.
    pub creation_unix_ms: u64,
    /// When the repository becomes `CREATED` (`None`: never).
    pub repo_ready_at: Option<Instant>,
    /// Forced repoState (control API), overriding the timing.
    pub forced_repo_state: Option<RepoState>,
    /// Deleted (tombstone kept for the ledger and `/__sim/apps`).
    pub deleted: bool,
    /// `state` field (`SHOULD_BE_DOWN`, `WANTS_TO_BE_UP`, `SHOULD_BE_UP`).
    pub state: String,
    /// Instance state (`NONE`, `DEPLOYING`, `TASK_IN_PROGRESS`, `DELETED`, …).
    pub instance_state: String,
    /// Deployments, oldest first.
    pub deployments: Vec<Deployment>,
    /// Repository path on disk.
    pub repo_path: PathBuf,
    /// Last pushed build context (in-process inspection only: it holds tokens).
    pub last_context: Option<super::checker::BuildContext>,
    /// The helper of a service application (created without `instanceLifetime`): its own
    /// loopback listener, given as `vhosts[0].fqdn`.
    pub helper: Option<Helper>,
}

impl App {
    /// Current repoState.
    pub fn repo_state(&self, now: Instant) -> RepoState {
        if self.deleted {
            return RepoState::Deleted;
        }
        if let Some(forced) = self.forced_repo_state {
            return forced;
        }
        match self.repo_ready_at {
            Some(at) if now >= at => RepoState::Created,
            _ => RepoState::Creating,
        }
    }

    /// The first vhost: a service application's helper listener (`127.0.0.1:PORT`), else
    /// the `app-<uuid>.cleverapps.io` name Clever gives every application.
    pub fn fqdn(&self) -> String {
        match &self.helper {
            Some(h) => h.fqdn(),
            None => format!("app-{}.cleverapps.io", self.id.trim_start_matches("app_")),
        }
    }

    /// The Application JSON.
    pub fn to_json(&self, now: Instant, git_base_url: &str) -> Value {
        let http_url = format!("{git_base_url}/{}.git", self.id);
        let ssh_url = format!("git+ssh://git@fake/{}.git", self.id);
        let commit = self.deployments.last().map(|d| d.commit.clone());
        let env: Vec<Value> = self
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "zone": self.zone,
            "zoneId": format!("zone-{}", self.zone),
            "instance": {
                "type": "docker",
                "version": self.instance_version,
                "variant": {
                    "id": self.variant,
                    "slug": "heptapod-docker-runner",
                    "name": "Heptapod Docker Runner",
                    "deployType": "docker",
                    "logo": "https://assets.clever-cloud.com/logos/docker.svg",
                },
                "minInstances": self.min_instances,
                "maxInstances": self.max_instances,
                "maxAllowedInstances": self.max_instances,
                "minFlavor": self.min_flavor.to_json(),
                "maxFlavor": self.max_flavor.to_json(),
                "flavors": [self.max_flavor.to_json()],
                "defaultEnv": {},
                "lifetime": self.lifetime,
                "instanceAndVersion": format!("docker-{}", self.instance_version),
            },
            "deployment": {
                "shutdownable": false,
                "type": "GIT",
                "repoState": self.repo_state(now).as_str(),
                "url": ssh_url,
                "httpUrl": http_url,
            },
            "vhosts": [{"fqdn": self.fqdn()}],
            "creationDate": self.creation_unix_ms,
            "last_deploy": self.deployments.len(),
            "archived": false,
            "stickySessions": false,
            "homogeneous": false,
            "favourite": false,
            "cancelOnPush": false,
            "webhookUrl": null,
            "webhookSecret": null,
            "separateBuild": false,
            "buildFlavor": null,
            "ownerId": self.org,
            "state": self.state,
            "commitId": commit,
            "appliance": null,
            "branch": "master",
            "forceHttps": "DISABLED",
            "env": env,
            "deployUrl": ssh_url,
        })
    }
}

/// Everything mutable of the fake.
#[derive(Debug)]
pub struct World {
    /// Start of the fake (ledger times are relative to it).
    pub started: Instant,
    /// Token → organisations it is allowed on.
    pub tokens: HashMap<String, BTreeSet<String>>,
    /// Flavor context of `flavors`.
    pub flavor_context: String,
    /// Flavor table of `flavor_context`.
    pub flavors: Vec<FlavorSpec>,
    /// Docker instance version.
    pub docker_version: String,
    /// Accepted variants.
    pub known_variants: Vec<String>,
    /// Accepted zones.
    pub zones: Vec<String>,
    /// Git basic-auth user.
    pub git_auth_user: String,
    /// Refuse other Git users.
    pub git_strict_user: bool,
    /// Expected `FROM` image.
    pub expected_main_image: String,
    /// Expected `FROM` image of helper Dockerfiles.
    pub expected_helper_image: String,
    /// Timing knobs.
    pub timing: Timing,
    /// Applications by id (deleted ones kept as tombstones).
    pub apps: BTreeMap<String, App>,
    /// The ledger.
    pub ledger: Ledger,
    /// The faults.
    pub faults: Faults,
    /// The helpers' faults.
    pub helper_faults: HelperFaults,
    /// Top-level group → organisation its jobs must run in (the tenant of a job; see
    /// [`super::checker::job_tenant`]).
    pub tenant_orgs: BTreeMap<String, String>,
    /// The arbiter of the fake's actix System (helper listeners and their jobs run there),
    /// set once started.
    pub arbiter: Option<actix_rt::ArbiterHandle>,
    /// Random generator of error rates.
    pub rng: StdRng,
    /// Directory holding the bare repositories.
    pub repo_root: PathBuf,
    /// Base URL of the git endpoint (`http://127.0.0.1:P/git`), set once bound.
    pub git_base_url: String,
}

impl World {
    /// A new world from the configuration.
    pub fn new(config: &CleverSimConfig, repo_root: PathBuf) -> Self {
        let mut tokens: HashMap<String, BTreeSet<String>> = HashMap::new();
        for org in &config.orgs {
            for t in &org.tokens {
                tokens.entry(t.clone()).or_default().insert(org.id.clone());
            }
        }
        World {
            started: Instant::now(),
            tokens,
            flavor_context: config.flavor_context.clone(),
            flavors: config.flavors.clone(),
            docker_version: config.docker_version.clone(),
            known_variants: config.known_variants.clone(),
            zones: config.zones.clone(),
            git_auth_user: config.git_auth_user.clone(),
            git_strict_user: config.git_strict_user,
            expected_main_image: config.expected_main_image.clone(),
            expected_helper_image: config.expected_helper_image.clone(),
            timing: config.timing.clone(),
            apps: BTreeMap::new(),
            ledger: Ledger::default(),
            faults: Faults::default(),
            helper_faults: HelperFaults::default(),
            tenant_orgs: BTreeMap::new(),
            arbiter: None,
            rng: StdRng::seed_from_u64(config.seed),
            repo_root,
            git_base_url: String::new(),
        }
    }

    /// Milliseconds since the fake started.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts the request and decides its faults.
    pub fn enter(&mut self, endpoint: Endpoint, method: &str, path: &str) -> Decision {
        let now = self.now_ms();
        self.ledger.record_request(now, endpoint, method, path);
        self.faults.decide(endpoint, now, &mut self.rng)
    }

    /// When a repository created now becomes ready.
    pub fn repo_ready_at(&self, now: Instant) -> Option<Instant> {
        match self.timing.repo_create_delay {
            RepoDelay::After(d) => Some(now + d),
            RepoDelay::Never => None,
        }
    }

    /// Records each finding as a violation of `app_id` (and `job_id` when known).
    pub fn record_findings(&mut self, app_id: &str, job_id: Option<i64>, findings: Vec<Finding>) {
        let t_ms = self.now_ms();
        for f in findings {
            self.ledger.violation(Violation {
                t_ms,
                app_id: Some(app_id.to_owned()),
                job_id,
                kind: f.kind.to_owned(),
                message: f.message,
            });
        }
    }

    /// Runs `task` on the fake's System arbiter, so that what it spawns outlives the request
    /// (and the helper listener) that started it. False when the fake is not running (the
    /// task is then dropped: the fake is stopping).
    pub fn spawn_on_system<F, Fut>(&self, task: F) -> bool
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        match &self.arbiter {
            Some(a) => a.spawn_fn(move || {
                actix_rt::spawn(task());
            }),
            None => false,
        }
    }

    /// Live (not deleted) app of `org` with id `app_id`.
    pub fn live_app(&self, org: &str, app_id: &str) -> Option<&App> {
        self.apps.get(app_id).filter(|a| !a.deleted && a.org == org)
    }
}

/// Shared handle on the world.
#[derive(Debug, Clone)]
pub struct SharedWorld(Arc<Mutex<World>>);

impl SharedWorld {
    /// Wraps a world.
    pub fn new(world: World) -> Self {
        SharedWorld(Arc::new(Mutex::new(world)))
    }

    /// Locks the world (a poisoned lock is recovered: the fake keeps serving).
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unix time in ms.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A random UUID v4 string.
pub fn new_uuid(rng: &mut StdRng) -> String {
    use rand::Rng;
    let a: u32 = rng.random();
    let b: u16 = rng.random();
    let c: u16 = (rng.random::<u16>() & 0x0fff) | 0x4000;
    let d: u16 = (rng.random::<u16>() & 0x3fff) | 0x8000;
    let e: u64 = rng.random::<u64>() & 0xffff_ffff_ffff;
    format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
}
