//! Giving back a job lost at acquisition, with the trace-watch
//! (administrator) token: `GET /runners/:id/jobs?status=running` (this
//! runner manager's jobs only: `system_id`, which GitLab 16.8 and later
//! filter on, and a `runner_manager.system_id` of another manager when an
//! answer shows one), then `POST /projects/:id/jobs/:job_id/cancel` and
//! `…/retry`, whose answer is the new job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::Call;
use super::errors::{rejected, status_error};
use super::GitlabCoordinator;
use awc::http::Method;
use paas_actors::ports::{CoordinatorError, RunningJob};
use serde_json::Value;

/// Jobs asked per page (GitLab's largest page).
const PER_PAGE: u32 = 100;

/// Most pages read in one listing: a runner with more running jobs than
/// this holds has the rest read at the next pass.
const MAX_PAGES: u32 = 10;

/// What a refusal of the administrator calls means.
const ADMIN_HINT: &str = "giving back a lost job needs the trace-watch token to be an \
                          administrator token with the api scope";

impl GitlabCoordinator {
    pub(super) async fn running_jobs_impl(
        &self,
    ) -> Result<Option<Vec<RunningJob>>, CoordinatorError> {
        let (Some(token), Some(runner_id)) = (&self.trace_watch_token, self.runner_id.get()) else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let mut jobs = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_PAGES {
            let mut url = format!(
                "{}/runners/{runner_id}/jobs?status=running&per_page={PER_PAGE}&page={page}",
                self.api
            );
            // A system id is `[sr]_` and 12 alphanumerics: nothing to escape.
            let plain = |id: &&String| id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            if let Some(system_id) = self.system_id.as_ref().filter(plain) {
                url.push_str("&system_id=");
                url.push_str(system_id);
            }
            let call = Call::new("runner jobs", Method::GET, url, self.http.timeouts.request)
                .header("PRIVATE-TOKEN", token.expose());
            let reply = self.http.call(call).await?;
            let name = reply.name();
            match reply.status {
                200 => {}
                401 | 403 => {
                    return Err(rejected(name, &reply, &self.secrets(None), ADMIN_HINT));
                }
                _ => return Err(status_error(name, &reply, &self.secrets(None))),
            }
            let listed: Vec<Value> = reply.json()?;
            jobs.extend(
                listed
                    .iter()
                    .filter_map(|j| running_job(j, self.system_id.as_deref(), now)),
            );
            match reply
                .header("x-next-page")
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                Some(next) if next > page => page = next,
                _ => break,
            }
        }
        Ok(Some(jobs))
    }

    pub(super) async fn give_back_impl(
        &self,
        job: &RunningJob,
    ) -> Result<Option<i64>, CoordinatorError> {
        let Some(token) = &self.trace_watch_token else {
            return Err(CoordinatorError::Unexpected {
                detail: "give back: no trace-watch token configured".to_owned(),
            });
        };
        let base = format!("{}/projects/{}/jobs/{}", self.api, job.project_id, job.id);
        let cancel = Call::new(
            "job cancel",
            Method::POST,
            format!("{base}/cancel"),
            self.http.timeouts.request,
        )
        .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(cancel).await?;
        match reply.status {
            200 | 201 => {}
            401 | 403 => {
                return Err(rejected(
                    reply.name(),
                    &reply,
                    &self.secrets(None),
                    ADMIN_HINT,
                ))
            }
            _ => return Err(status_error(reply.name(), &reply, &self.secrets(None))),
        }
        let retry = Call::new(
            "job retry",
            Method::POST,
            format!("{base}/retry"),
            self.http.timeouts.request,
        )
        .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(retry).await?;
        match reply.status {
            200 | 201 => {
                let new_job: Value = reply.json()?;
                Ok(new_job.get("id").and_then(Value::as_i64))
            }
            _ => Err(status_error(reply.name(), &reply, &self.secrets(None))),
        }
    }
}

/// One element of the runner's job list, unless it names another runner
/// manager than `system_id`.
fn running_job(job: &Value, system_id: Option<&str>, now: SystemTime) -> Option<RunningJob> {
    let id = job.get("id")?.as_i64()?;
    let project_id = job
        .get("project")
        .and_then(|p| p.get("id"))
        .or_else(|| job.get("pipeline").and_then(|p| p.get("project_id")))
        .and_then(Value::as_i64)?;
    let manager = job
        .get("runner_manager")
        .and_then(|m| m.get("system_id"))
        .and_then(Value::as_str);
    if let (Some(ours), Some(theirs)) = (system_id, manager) {
        if ours != theirs {
            return None;
        }
    }
    let since = ["started_at", "created_at"]
        .iter()
        .find_map(|k| job.get(*k).and_then(Value::as_str).and_then(parse_rfc3339));
    let age = since.map(|t| now.duration_since(t).unwrap_or(Duration::ZERO));
    Some(RunningJob {
        id,
        project_id,
        age,
    })
}

/// An RFC 3339 date-time as GitLab writes it (`2026-12-07T03:58:00.123Z`,
/// or with a `+hh:mm` / `-hh:mm` offset); `None` for anything else or a
/// date before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return None;
        }
        let kept = fraction.get(..len.min(9))?;
        let scale = 10u32.pow(9 - u32::try_from(kept.len()).ok()?);
        nanos = kept.parse::<u32>().ok()?.checked_mul(scale)?;
        rest = fraction.get(len..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

/// Days from 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::rfc3339_utc;
    use serde_json::json;

    #[test]
    fn rfc3339_dates_read_back_what_the_writer_wrote() {
        for secs in [
            0u64,
            951_782_400,
            1_700_000_000,
            1_796_000_000,
            4_102_444_800,
        ] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&rfc3339_utc(t)), Some(t), "{secs}");
        }
        let base = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let text = rfc3339_utc(base);
        let stem = text.trim_end_matches('Z');
        assert_eq!(
            parse_rfc3339(&format!("{stem}.250Z")),
            Some(base + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339(&format!("{stem}+01:30")),
            Some(base - Duration::from_secs(5400))
        );
        assert_eq!(
            parse_rfc3339(&format!("{stem}-02:00")),
            Some(base + Duration::from_secs(7200))
        );
        // Digits past the nanosecond are read and dropped.
        assert_eq!(
            parse_rfc3339(&format!("{stem}.1234567890123456789012Z")),
            Some(base + Duration::from_nanos(123_456_789))
        );
        for bad in [
            "",
            "2026-12-07",
            "2026-13-07T00:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T00:00:00",
            "2026-12-07T00:00:00.Z",
            "2026-12-07T00:00:00+0100",
            "1969-12-31T23:59:59Z",
            "２０２6-12-07T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn list_elements_of_another_runner_manager_are_left_out() {
        let now = UNIX_EPOCH + Duration::from_secs(1_796_000_100);
        let started = rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_796_000_000));
        let job = json!({"id": 7, "project": {"id": 3}, "started_at": started,
                         "runner_manager": {"system_id": "s_aaaaaaaaaaaa"}});
        let mine = running_job(&job, Some("s_aaaaaaaaaaaa"), now).expect("mine");
        assert_eq!(
            mine,
            RunningJob {
                id: 7,
                project_id: 3,
                age: Some(Duration::from_secs(100))
            }
        );
        assert_eq!(running_job(&job, Some("s_bbbbbbbbbbbb"), now), None);
        // No manager in the answer (GitLab before 16.8): the runner's id decides.
        let plain = json!({"id": 8, "pipeline": {"project_id": 4}});
        assert_eq!(
            running_job(&plain, Some("s_bbbbbbbbbbbb"), now),
            Some(RunningJob {
                id: 8,
                project_id: 4,
                age: None
            })
        );
        assert_eq!(running_job(&json!({"id": 9}), None, now), None);
        assert_eq!(
            running_job(&json!({"id": "9", "project": {"id": 1}}), None, now),
            None
        );
    }
}
