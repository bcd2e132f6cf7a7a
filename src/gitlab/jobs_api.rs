//! GitLab's Jobs API read of one job with the trace-watch (administrator)
//! token, `GET /projects/:id/jobs/:job_id`: what the coordinator says of a
//! job whose job token it refuses. Only an answer about that very job
//! (`id`) with a documented `status` teaches something; any other answer
//! (no token, no project id, a refusal, an error, an unreadable body) is
//! "nothing learnt".

use super::client::Call;
use super::errors::status_error;
use super::GitlabCoordinator;
use awc::http::Method;
use paas_actors::ports::{CoordinatorError, Job, JobApiStatus};
use serde_json::Value;

impl GitlabCoordinator {
    pub(super) async fn job_api_status_impl(
        &self,
        job: &Job,
    ) -> Result<Option<JobApiStatus>, CoordinatorError> {
        let (Some(token), Some(project_id)) = (&self.trace_watch_token, job.project_id) else {
            return Ok(None);
        };
        let url = format!("{}/projects/{project_id}/jobs/{}", self.api, job.id);
        let call = Call::new("job read", Method::GET, url, self.http.timeouts.request)
            .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(call).await?;
        if reply.status != 200 {
            return Err(status_error(reply.name(), &reply, &self.secrets(Some(job))));
        }
        Ok(job_api_status(&reply.body, job.id))
    }
}

/// The status a Jobs API answer gives job `job_id`, when it is about that
/// job and the status is one GitLab documents.
fn job_api_status(body: &[u8], job_id: i64) -> Option<JobApiStatus> {
    let entity: Value = serde_json::from_slice(body).ok()?;
    if entity.get("id")?.as_i64()? != job_id {
        return None;
    }
    JobApiStatus::parse(entity.get("status")?.as_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_about_the_job_with_a_known_status_teaches_something() {
        let read = |body: &str| job_api_status(body.as_bytes(), 7);
        assert_eq!(
            read(r#"{"id": 7, "status": "success", "name": "x"}"#),
            Some(JobApiStatus::Over("success"))
        );
        assert_eq!(
            read(r#"{"id": 7, "status": "running"}"#),
            Some(JobApiStatus::Executing("running"))
        );
        for body in [
            r#"{"id": 8, "status": "success"}"#,
            r#"{"id": "7", "status": "success"}"#,
            r#"{"status": "success"}"#,
            r#"{"id": 7, "status": "finished"}"#,
            r#"{"id": 7, "status": 1}"#,
            r#"[{"id": 7, "status": "success"}]"#,
            "<html>502</html>",
            "",
        ] {
            assert_eq!(read(body), None, "{body}");
        }
    }
}
