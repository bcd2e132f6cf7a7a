//! `recover_job`: reconciliation reads a job back from an application the
//! state does not know: `job.json` from `master` of the app's deployment
//! repository (`deployment.httpUrl`), fetched on a git worker thread as
//! `cc_auth_user` with the organisation's token (`git::fetch`). No `master`,
//! no repository (its state is not `CREATED`: nothing was ever pushed), or
//! a `job.json` that is not a job payload: `Ok(None)`, the app holds no job
//! this runner can ask about. Network trouble is transient, like a push's.
//! These reads keep the client's retries: nobody but the next pass retries
//! them.
//!
//! An application without a job to read back is one being created by
//! somebody (another host sharing the runner token, or this one before a
//! crash) until its push lands: `Ok(None)` only once its Clever
//! `creationDate` is older than the longest provisioning
//! ([`crate::executors::clever::settings::CleverSettings::no_job_grace`]); before, a transient error, and the
//! next pass decides. An application whose answer gives no creation date
//! keeps the rule without grace.

use super::{remote_error, CleverExecutor};
use crate::executors::clever::api::{OrgAuth, Retries};
use crate::executors::clever::orgs::kept_for_later;
use crate::executors::clever::records::AppDetail;
use crate::git::{fetch_job_json_async, RemoteError};
use paas_actors::metrics::ApiStatus;
use paas_actors::ports::{Job, PaasError, Resource};
use paas_actors::untrusted::untrusted;
use slog::{info, warn};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ACTION: &str = "recover-job";

impl CleverExecutor {
    /// The job `resource`'s application was pushed, if it holds one.
    pub(super) async fn recover(&self, resource: &Resource) -> Result<Option<Job>, PaasError> {
        if let Some(why) = self.unreadable.borrow().get(&resource.id) {
            return Err(PaasError::permanent(
                ACTION,
                format!("{why} (remembered: not fetched again)"),
            ));
        }
        let detail = AppDetail::of(resource);
        let org = self
            .apps
            .resource_org(&detail)
            .await
            .map_err(|e| kept_for_later(ACTION, resource, e))?;
        let job = self.read_back(resource, &org, &detail).await?;
        if job.is_none() {
            self.refuse_young(resource, &org).await?;
        }
        Ok(job)
    }

    /// A transient error while `resource`'s application is younger than
    /// [`crate::executors::clever::settings::CleverSettings::no_job_grace`] (a gone one is old enough).
    async fn refuse_young(&self, resource: &Resource, org: &OrgAuth) -> Result<(), PaasError> {
        let app = match self
            .apps
            .api
            .get_app(org, &resource.id, Retries::Policy)
            .await
        {
            Ok(app) => app,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(created_ms) = app.creation_date else {
            return Ok(());
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let age =
            Duration::from_millis(u64::try_from(now_ms.saturating_sub(created_ms)).unwrap_or(0));
        let grace = self.apps.settings.no_job_grace();
        if age < grace {
            return Err(PaasError::transient(
                ACTION,
                format!(
                    "no job to read back yet, and the application was created {} s ago,                      less than the longest provisioning ({} s): maybe being launched; the                      next pass decides",
                    age.as_secs(),
                    grace.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// The job `resource`'s application holds, read back.
    async fn read_back(
        &self,
        resource: &Resource,
        org: &OrgAuth,
        detail: &AppDetail,
    ) -> Result<Option<Job>, PaasError> {
        let url = match &detail.deploy_url {
            Some(u) => u.clone(),
            None => match self
                .apps
                .api
                .get_app(org, &resource.id, Retries::Policy)
                .await
            {
                Ok(app) => match app.http_url() {
                    Some(u) => u.to_string(),
                    None => return Ok(None),
                },
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        Ok(match self.fetch_job_json(resource, org, &url).await? {
            Some(bytes) => self.job_of(resource, &bytes),
            None => None,
        })
    }

    /// The bytes of `job.json` on `master` of `url`, `None` when there is
    /// no such file (or no repository: never pushed).
    async fn fetch_job_json(
        &self,
        resource: &Resource,
        org: &OrgAuth,
        url: &str,
    ) -> Result<Option<Vec<u8>>, PaasError> {
        let settings = &self.apps.settings;
        let fetched = fetch_job_json_async(
            url,
            settings.deployment_url_schemes,
            &settings.auth_user,
            &org.token,
            settings.push_timeout,
        )
        .await;
        self.apps.count_git(
            "fetch",
            match &fetched {
                Ok(_) => ApiStatus::Ok,
                Err(RemoteError::Http { status, .. }) => ApiStatus::Http(*status),
                Err(_) => ApiStatus::Error,
            },
        );
        match fetched {
            Ok(found) => Ok(found),
            Err(e @ RemoteError::Http { status: 404, .. }) => {
                // No repository behind the URL: never created (nothing was
                // pushed) or gone with the app; otherwise a passing 404.
                let app = self
                    .apps
                    .api
                    .get_app(org, &resource.id, Retries::Policy)
                    .await;
                match app {
                    Ok(app) if app.repo_state() != Some("CREATED") => Ok(None),
                    Err(lookup) if lookup.is_not_found() => Ok(None),
                    _ => Err(PaasError::transient(ACTION, e.to_string())),
                }
            }
            Err(e @ RemoteError::TooLarge { .. }) => {
                warn!(self.apps.logger, "the deployment repository exceeds the fetch bounds: \
                                         not fetched again";
                      "app" => &resource.id, "error" => %e);
                self.unreadable
                    .borrow_mut()
                    .insert(resource.id.clone(), e.to_string());
                Err(PaasError::permanent(ACTION, e.to_string()))
            }
            Err(e) => Err(remote_error(ACTION, e)),
        }
    }

    /// The job of a fetched `job.json`; `None` when it holds no job payload.
    fn job_of(&self, resource: &Resource, bytes: &[u8]) -> Option<Job> {
        let job = serde_json::from_slice(bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| Job::from_payload(v).map_err(|e| e.to_string()));
        match job {
            Ok(job) => {
                info!(self.apps.logger, "job read back from the deployment repository";
                      "app" => &resource.id, "job_id" => job.id);
                Some(job)
            }
            Err(why) => {
                warn!(self.apps.logger, "the deployment repository holds no job payload";
                      "app" => &resource.id, "error" => %untrusted(&why));
                None
            }
        }
    }
}
