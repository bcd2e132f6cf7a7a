//! Job trace calls: `PATCH /jobs/:id/trace` with byte offsets and one
//! resynchronisation on 416 (the coordinator's `Range` answer says where
//! it stands), and the admin read of
//! `GET /projects/:id/jobs/:job_id/trace` used to detect that the inner
//! runner started (a non-empty trace).

use super::client::Call;
use super::errors::{rejected, status_error};
use super::reply::CallName;
use super::GitlabCoordinator;
use awc::http::Method;
use paas_actors::ports::{CoordinatorError, Job, TraceAppend};

/// End of a `Range: 0-<n>` header (the new trace length; public for the
/// fuzz targets of `fuzz/`).
pub fn range_end(value: &str) -> Option<u64> {
    value.split_once('-')?.1.trim().parse().ok()
}

impl GitlabCoordinator {
    pub(super) async fn append_trace_impl(
        &self,
        job: &Job,
        offset: u64,
        text: &str,
    ) -> Result<TraceAppend, CoordinatorError> {
        if text.is_empty() {
            return Ok(TraceAppend::Appended { new_offset: offset });
        }
        let url = format!("{}/jobs/{}/trace", self.api, job.id);
        let name = CallName {
            what: "trace append",
            method: "PATCH",
            url: &url,
        };
        let len = text.len() as u64;
        let mut start = offset;
        for attempt in 0..2 {
            // The start may come from the server's `Range`: a length past
            // what a trace can hold is an answer we cannot use.
            let Some(end) = start.checked_add(len) else {
                return Err(CoordinatorError::Unexpected {
                    detail: format!("{name}: trace offset {start} out of range"),
                });
            };
            // Upstream form: inclusive end. The server only reads the start.
            let range = format!("{start}-{}", end.saturating_sub(1));
            let call = Call::new(
                "trace append",
                Method::PATCH,
                url.clone(),
                self.http.timeouts.request,
            )
            .header("JOB-TOKEN", job.token.expose())
            .header("Content-Range", &range)
            .text(text);
            let reply = self.http.call(call).await?;
            match reply.status {
                202 => {
                    let new_offset = reply.header("range").and_then(range_end).unwrap_or(end);
                    return Ok(TraceAppend::Appended { new_offset });
                }
                416 if attempt == 0 => {
                    let Some(server_len) = reply.header("range").and_then(range_end) else {
                        return Err(CoordinatorError::Unexpected {
                            detail: format!("{name}: 416 without a usable Range header"),
                        });
                    };
                    slog::info!(self.log, "trace offset mismatch: resynchronising";
                        "job_id" => job.id, "offset" => start, "server_len" => server_len);
                    start = server_len;
                }
                403 => {
                    slog::info!(self.log, "job no longer accepts trace updates";
                        "job_id" => job.id,
                        "job_status" => reply.header("job-status").unwrap_or("unknown").to_owned());
                    return Ok(TraceAppend::JobOver);
                }
                _ => return Err(status_error(name, &reply, &self.secrets(Some(job)))),
            }
        }
        Err(CoordinatorError::Unexpected {
            detail: format!("{name}: offset still refused (416) after resynchronising"),
        })
    }

    pub(super) async fn trace_len_impl(&self, job: &Job) -> Result<u64, CoordinatorError> {
        let Some(token) = &self.trace_watch_token else {
            return Err(CoordinatorError::Unexpected {
                detail: "trace read: no trace-watch token configured".to_owned(),
            });
        };
        let Some(project_id) = job.project_id else {
            return Err(CoordinatorError::Unexpected {
                detail: format!("trace read: job {} has no job_info.project_id", job.id),
            });
        };
        let url = format!("{}/projects/{project_id}/jobs/{}/trace", self.api, job.id);
        let call = Call::new("trace read", Method::GET, url, self.http.timeouts.request)
            .header("PRIVATE-TOKEN", token.expose())
            .count_body();
        let reply = self.http.call(call).await?;
        let name = reply.name();
        match reply.status {
            200 => Ok(reply.body_len),
            // "Nothing yet" answers, as the Python reference reads them.
            404 | 429 | 500..=599 => Ok(0),
            401 | 403 => Err(rejected(
                name,
                &reply,
                &self.secrets(Some(job)),
                "the trace-watch token must be an administrator token with read_api",
            )),
            _ => Err(status_error(name, &reply, &self.secrets(Some(job)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_ends_are_parsed_leniently() {
        assert_eq!(range_end("0-12"), Some(12));
        assert_eq!(range_end("0- 12 "), Some(12));
        assert_eq!(range_end("12"), None);
        assert_eq!(range_end("0-x"), None);
        assert_eq!(range_end(""), None);
    }
}
