//! Control and inspection of the fake, in-process ([`CleverControl`]) and over HTTP under
//! `/__sim/` (JSON) for other processes such as the demo:
//!
//! | method | path | body / answer |
//! |---|---|---|
//! | GET | `/__sim/ledger` | [`LedgerSummary`] |
//! | GET | `/__sim/apps` | every app, deleted ones included ([`AppEntry`]) |
//! | GET | `/__sim/violations` | [`Violation`] list |
//! | GET | `/__sim/deployments` | [`DeploymentEntry`] list |
//! | GET | `/__sim/requests` | the request journal |
//! | GET | `/__sim/curve` | live weight / count points |
//! | GET | `/__sim/faults` | faults per endpoint |
//! | POST | `/__sim/faults` | a [`FaultCommand`] |
//! | POST | `/__sim/orgs` | an [`OrgSeed`] (adds tokens) |
//! | PUT | `/__sim/docker-version` | `{"version": "…"}` |
//! | PUT | `/__sim/flavors` | a [`FlavorSpec`] list (replaces the table) |
//! | PUT | `/__sim/timing` | a [`Timing`] |
//! | PUT | `/__sim/apps/{id}/repo-state` | `{"state": "CREATING" / "CREATED" / "NOT_NEEDED" / null}` |
//! | GET | `/__sim/helper-calls` | [`HelperCall`] list (bounded journal) |
//! | GET | `/__sim/helper-jobs` | [`HelperJobEntry`] list |
//! | GET | `/__sim/helper-faults` | pending [`HelperFaults`] |
//! | POST | `/__sim/helper-faults` | a [`HelperFaultCommand`] |
//! | POST | `/__sim/apps/{id}/kill-helper` | closes that helper's listener (404: none open) |
//! | PUT | `/__sim/tenant-orgs` | `{"<top-level group>": "<organisation id>", …}` |

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::config::{OrgSeed, Timing};
use super::faults::FaultCommand;
use super::helper::faults::{HelperFaultCommand, HelperFaults};
use super::helper::lifecycle;
use super::ledger::{
    AppEntry, DeploymentEntry, HelperCall, HelperJobEntry, HelperRoute, LedgerSummary, LivePoint,
    RequestEntry, Violation,
};
use super::model::{RepoState, SharedWorld};
use super::products::FlavorSpec;

/// In-process control of a running fake (cheap to clone, usable from any thread).
#[derive(Debug, Clone)]
pub struct CleverControl {
    pub(crate) world: SharedWorld,
}

impl CleverControl {
    /// Allows every token of `seed` on organisation `seed.id`.
    pub fn seed_org(&self, seed: &OrgSeed) {
        let mut w = self.world.lock();
        for t in &seed.tokens {
            w.tokens
                .entry(t.clone())
                .or_default()
                .insert(seed.id.clone());
        }
    }

    /// Revokes every token on organisation `orga_id`: its calls answer 401
    /// from now on; the other organisations are untouched.
    pub fn revoke_org_tokens(&self, orga_id: &str) {
        let mut w = self.world.lock();
        for orgs in w.tokens.values_mut() {
            orgs.remove(orga_id);
        }
    }

    /// Sets the current Docker `instanceVersion` (a rotation makes cached versions stale).
    pub fn set_docker_version(&self, version: &str) {
        self.world.lock().docker_version = version.to_owned();
    }

    /// Replaces the flavor table of the configured context.
    pub fn set_flavors(&self, flavors: Vec<FlavorSpec>) {
        self.world.lock().flavors = flavors;
    }

    /// Flips the `available` switch of flavor `name`; false when there is no such flavor.
    pub fn set_flavor_available(&self, name: &str, available: bool) -> bool {
        let mut w = self.world.lock();
        match w.flavors.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.available = available;
                true
            }
            None => false,
        }
    }

    /// Replaces the timing knobs (apps created later use the new repo delay).
    pub fn set_timing(&self, timing: Timing) {
        self.world.lock().timing = timing;
    }

    /// Forces the repoState of an app (`None`: back to the timing); false for an unknown app.
    pub fn force_repo_state(&self, app_id: &str, state: Option<RepoState>) -> bool {
        let mut w = self.world.lock();
        match w.apps.get_mut(app_id) {
            Some(a) => {
                a.forced_repo_state = state;
                true
            }
            None => false,
        }
    }

    /// Makes an app's `creationDate` `by` older; false for an unknown app.
    pub fn age_app(&self, app_id: &str, by: std::time::Duration) -> bool {
        let mut w = self.world.lock();
        match w.apps.get_mut(app_id) {
            Some(a) => {
                let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
                a.creation_unix_ms = a.creation_unix_ms.saturating_sub(ms);
                true
            }
            None => false,
        }
    }

    /// Applies a fault command.
    pub fn fault(&self, cmd: FaultCommand) {
        let mut w = self.world.lock();
        let now = w.now_ms();
        w.faults.apply(cmd, now);
    }

    /// The instant the ledger's times (`*_ms`, milliseconds) count from.
    pub fn epoch(&self) -> std::time::Instant {
        self.world.lock().started
    }

    /// The ledger summary.
    pub fn summary(&self) -> LedgerSummary {
        self.world.lock().ledger.summary()
    }

    /// Every app, deleted ones included.
    pub fn apps(&self) -> Vec<AppEntry> {
        self.world.lock().ledger.apps()
    }

    /// Every violation.
    pub fn violations(&self) -> Vec<Violation> {
        self.world.lock().ledger.violations()
    }

    /// Every deployment.
    pub fn deployments(&self) -> Vec<DeploymentEntry> {
        self.world.lock().ledger.deployments()
    }

    /// The request journal.
    pub fn requests(&self) -> Vec<RequestEntry> {
        self.world.lock().ledger.journal()
    }

    /// The live weight / count curve.
    pub fn curve(&self) -> Vec<LivePoint> {
        self.world.lock().ledger.curve()
    }

    /// Requests counted on one endpoint.
    pub fn request_count(&self, endpoint: super::faults::Endpoint) -> u64 {
        self.world.lock().ledger.requests(endpoint)
    }

    /// The last build context pushed to an app (deleted apps included). In-process only: it
    /// holds the runner and job tokens.
    pub fn pushed_tree(&self, app_id: &str) -> Option<super::checker::BuildContext> {
        self.world
            .lock()
            .apps
            .get(app_id)
            .and_then(|a| a.last_context.clone())
    }

    /// The env of a live app, as currently set.
    pub fn app_env(&self, app_id: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let w = self.world.lock();
        w.apps
            .get(app_id)
            .filter(|a| !a.deleted)
            .map(|a| a.env.clone())
    }

    /// Applies a helper fault command.
    pub fn helper_fault(&self, cmd: HelperFaultCommand) {
        self.world.lock().helper_faults.apply(cmd);
    }

    /// The helper faults still pending.
    pub fn helper_faults(&self) -> HelperFaults {
        self.world.lock().helper_faults.clone()
    }

    /// Closes the listener of `app_id`'s helper now: it dies, its application stays (as on
    /// Clever when the instance crashed). A job it runs stops. False when it has no open
    /// listener.
    pub fn kill_helper(&self, app_id: &str) -> bool {
        lifecycle::kill(&self.world, app_id)
    }

    /// The address of a service application's helper listener (its `vhosts[0].fqdn`), while
    /// the application lives.
    pub fn helper_addr(&self, app_id: &str) -> Option<std::net::SocketAddr> {
        let w = self.world.lock();
        w.apps
            .get(app_id)
            .filter(|a| !a.deleted)
            .and_then(|a| a.helper.as_ref())
            .map(|h| h.addr())
    }

    /// The calls made to helpers (bounded journal, oldest first).
    pub fn helper_calls(&self) -> Vec<HelperCall> {
        self.world.lock().ledger.helper_calls()
    }

    /// Helper calls on `route` answered `status` (any status when `None`); exact, not bounded
    /// by the journal.
    pub fn helper_call_count(&self, route: HelperRoute, status: Option<u16>) -> u64 {
        self.world.lock().ledger.helper_call_count(route, status)
    }

    /// Every job a helper accepted, in order.
    pub fn helper_jobs(&self) -> Vec<HelperJobEntry> {
        self.world.lock().ledger.helper_jobs()
    }

    /// Sets which organisation each top-level group's jobs belong to: a job's tenant, whose
    /// mismatch with its service application is a violation (`helper_wrong_org`, and
    /// `helper_cross_tenant` when one application runs jobs of two tenants). Without an
    /// entry, a job's tenant is its top-level group.
    pub fn set_tenant_orgs(&self, tenant_orgs: std::collections::BTreeMap<String, String>) {
        self.world.lock().tenant_orgs = tenant_orgs;
    }

    /// The env snapshots of an app's deployments, oldest first.
    pub fn deployment_envs(&self, app_id: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let w = self.world.lock();
        w.apps
            .get(app_id)
            .map(|a| a.deployments.iter().map(|d| d.env.clone()).collect())
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

#[derive(Deserialize)]
struct RepoStateBody {
    state: Option<String>,
}

fn ctl(world: &web::Data<SharedWorld>) -> CleverControl {
    CleverControl {
        world: world.get_ref().clone(),
    }
}

/// Routes of `/__sim/`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/ledger",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).summary()) }),
    )
    .route(
        "/apps",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).apps()) }),
    )
    .route(
        "/violations",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).violations()) }),
    )
    .route(
        "/deployments",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).deployments()) }),
    )
    .route(
        "/requests",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).requests()) }),
    )
    .route(
        "/curve",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).curve()) }),
    )
    .route(
        "/faults",
        web::get().to(|w: web::Data<SharedWorld>| async move {
            HttpResponse::Ok().json(w.lock().faults.snapshot())
        }),
    )
    .route(
        "/faults",
        web::post().to(|w: web::Data<SharedWorld>, cmd: web::Json<FaultCommand>| async move {
            ctl(&w).fault(cmd.into_inner());
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/orgs",
        web::post().to(|w: web::Data<SharedWorld>, seed: web::Json<OrgSeed>| async move {
            ctl(&w).seed_org(&seed);
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/docker-version",
        web::put().to(|w: web::Data<SharedWorld>, b: web::Json<VersionBody>| async move {
            ctl(&w).set_docker_version(&b.version);
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/flavors",
        web::put().to(|w: web::Data<SharedWorld>, b: web::Json<Vec<FlavorSpec>>| async move {
            ctl(&w).set_flavors(b.into_inner());
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/timing",
        web::put().to(|w: web::Data<SharedWorld>, b: web::Json<Timing>| async move {
            ctl(&w).set_timing(b.into_inner());
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/apps/{id}/repo-state",
        web::put().to(
            |w: web::Data<SharedWorld>, id: web::Path<String>, b: web::Json<RepoStateBody>| async move {
                let state = match b.state.as_deref() {
                    None => None,
                    Some("CREATING") => Some(RepoState::Creating),
                    Some("CREATED") => Some(RepoState::Created),
                    Some("NOT_NEEDED") => Some(RepoState::NotNeeded),
                    Some(other) => {
                        return HttpResponse::BadRequest()
                            .json(json!({"error": format!("unknown repoState {other}")}))
                    }
                };
                if ctl(&w).force_repo_state(&id, state) {
                    HttpResponse::Ok().json(json!({"ok": true}))
                } else {
                    HttpResponse::NotFound().json(json!({"error": "unknown app"}))
                }
            },
        ),
    )
    .route(
        "/helper-calls",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).helper_calls()) }),
    )
    .route(
        "/helper-jobs",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).helper_jobs()) }),
    )
    .route(
        "/helper-faults",
        web::get().to(|w: web::Data<SharedWorld>| async move { HttpResponse::Ok().json(ctl(&w).helper_faults()) }),
    )
    .route(
        "/helper-faults",
        web::post().to(|w: web::Data<SharedWorld>, cmd: web::Json<HelperFaultCommand>| async move {
            ctl(&w).helper_fault(cmd.into_inner());
            HttpResponse::Ok().json(json!({"ok": true}))
        }),
    )
    .route(
        "/apps/{id}/kill-helper",
        web::post().to(|w: web::Data<SharedWorld>, id: web::Path<String>| async move {
            if ctl(&w).kill_helper(&id) {
                HttpResponse::Ok().json(json!({"ok": true}))
            } else {
                HttpResponse::NotFound().json(json!({"error": "no open helper listener"}))
            }
        }),
    )
    .route(
        "/tenant-orgs",
        web::put().to(
            |w: web::Data<SharedWorld>, b: web::Json<std::collections::BTreeMap<String, String>>| async move {
                ctl(&w).set_tenant_orgs(b.into_inner());
                HttpResponse::Ok().json(json!({"ok": true}))
            },
        ),
    );
}
