//! A runner's jobs, cancel and retry, as GitLab answers an administrator:
//! `GET /runners/:id/jobs` (`status`, `system_id`, `per_page`, `page`;
//! `X-Next-Page`), `POST /projects/:id/jobs/:job_id/cancel` and `…/retry`
//! (the new job).

use super::responses::message;
use super::state::{JobRecord, RunnerView, State};
use actix_web::HttpResponse;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// GitLab's default and largest page sizes.
const DEFAULT_PER_PAGE: usize = 20;
const MAX_PER_PAGE: usize = 100;

/// How a job entity is written (`GET /job`'s, given by the handlers).
pub(crate) type Entity = fn(&str, &JobRecord, &[RunnerView]) -> Value;

/// The parameters of `GET /runners/:id/jobs`, as sent.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) status: Option<String>,
    pub(crate) system_id: Option<String>,
    pub(crate) per_page: Option<String>,
    pub(crate) page: Option<String>,
}

/// `GET /runners/:id/jobs`, for an administrator.
pub(crate) fn runner_jobs(st: &State, id: &str, q: &ListQuery, entity: Entity) -> HttpResponse {
    let Some(runner_id) = id
        .parse::<i64>()
        .ok()
        .filter(|id| st.runners.iter().any(|r| r.id == *id))
    else {
        return message(404, "404 Runner Not Found");
    };
    let (status, system_id) = (&q.status, &q.system_id);
    let per_page = q
        .per_page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = q
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let matching: Vec<&JobRecord> = st
        .jobs
        .values()
        .rev()
        .filter(|j| j.runner_id == Some(runner_id))
        .filter(|j| status.as_deref().is_none_or(|s| j.status.as_str() == s))
        .filter(|j| system_id.is_none() || j.manager == *system_id)
        .collect();
    let shown: Vec<Value> = matching
        .iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|j| list_element(st, j, entity))
        .collect();
    let mut b = HttpResponse::Ok();
    if matching.len() > page.saturating_mul(per_page) {
        b.insert_header(("X-Next-Page", (page + 1).to_string()));
    }
    b.insert_header(("X-Page", page.to_string()));
    b.json(shown)
}

/// `POST /projects/:id/jobs/:job_id/cancel` (`retry` false) or `…/retry`,
/// for an administrator (`project`: the decoded id or path).
pub(crate) fn job_action(
    st: &mut State,
    project: &str,
    job: &str,
    retry: bool,
    entity: Entity,
) -> HttpResponse {
    {
        let found = job.parse::<i64>().ok().filter(|id| {
            st.jobs.get(id).is_some_and(|j| {
                j.spec.project_id.to_string() == project || j.spec.project_path() == project
            })
        });
        let Some(id) = found else {
            return message(404, "404 Job Not Found");
        };
        let answered = if retry {
            match st.retry(id) {
                Some(new_id) => new_id,
                None => return message(403, "403 Forbidden - Job is not retryable"),
            }
        } else {
            if !st.cancel(id) {
                return message(403, "403 Forbidden - Job is not cancelable");
            }
            id
        };
        match st.jobs.get(&answered) {
            Some(j) => HttpResponse::Created().json(list_element(st, j, entity)),
            None => message(404, "404 Job Not Found"),
        }
    }
}

/// A job as the runner's job list shows it.
fn list_element(st: &State, job: &JobRecord, entity: Entity) -> Value {
    let mut entity = entity(&st.base_url, job, &st.runners);
    if let Some(obj) = entity.as_object_mut() {
        // GitLab's list names no runner manager (its `system_id` filter does).
        obj.remove("runner_manager");
        obj.insert("created_at".to_owned(), json!(rfc3339(job.created)));
        obj.insert(
            "started_at".to_owned(),
            job.started.map_or(Value::Null, |t| json!(rfc3339(t))),
        );
        obj.insert(
            "project".to_owned(),
            json!({"id": job.spec.project_id,
                   "path_with_namespace": job.spec.project_path()}),
        );
    }
    entity
}

/// The wall-clock time of `at`, as GitLab writes dates
/// (`2026-12-07T03:58:00.123Z`).
fn rfc3339(at: Instant) -> String {
    let t = SystemTime::now()
        .checked_sub(at.elapsed())
        .unwrap_or(UNIX_EPOCH);
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        since.subsec_millis()
    )
}
