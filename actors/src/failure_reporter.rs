//! The report of one launch failure ([`ReportFailure`], a per-job task).
//!
//! Append a red explanatory line to the job trace, then report the job
//! failed (`script_failure`, exit code 103), a bounded number of attempts
//! apart; the waits end on drain, leaving the job pending. The job's
//! cancellation at the coordinator does not interrupt it.

use crate::job_actor::JobTask;
use crate::job_ctx::JobCtx;
use crate::messages::{FailureReported, ReportOutcome};
use crate::ports::{FailureReason, TraceAppend, LAUNCH_FAILURE_EXIT_CODE};
use crate::untrusted::untrusted;
use std::time::Duration;

/// Reports one launch failure (see the module documentation).
pub(crate) struct ReportFailure {
    /// The explanation, for the job trace.
    pub message: String,
    /// Where the red line is appended.
    pub trace_offset: u64,
    /// The red line is in the trace already (a previous process put it).
    pub trace_appended: bool,
    /// Attempts of `report_failed`, the first included.
    pub attempts: u32,
    /// The wait between two attempts.
    pub interval: Duration,
}

impl JobTask for ReportFailure {
    const PHASE: &'static str = "reporting_failure";
    const CANCELLABLE: bool = false;

    async fn run(self, mut jc: JobCtx) {
        let ReportFailure {
            message,
            mut trace_offset,
            mut trace_appended,
            attempts,
            interval,
        } = self;
        let key = jc.key;
        let log = jc.logger.clone();
        let mut job_over = false;
        if !trace_appended {
            match jc
                .coordinator
                .append_trace(&jc.job, trace_offset, &red_line(&message))
                .await
            {
                Ok(TraceAppend::Appended { new_offset }) => {
                    trace_offset = new_offset;
                    trace_appended = true;
                }
                Ok(TraceAppend::JobOver) => job_over = true,
                Err(e) => slog::warn!(log, "could not append the failure to the job trace";
                                      "error" => %untrusted(&e)),
            }
        }
        let mut outcome = ReportOutcome::GaveUp;
        if job_over {
            slog::info!(
                log,
                "job already over at the coordinator: no failure to report"
            );
            outcome = ReportOutcome::Reported;
        } else {
            for attempt in 1..=attempts.max(1) {
                match jc
                    .coordinator
                    .report_failed(
                        &jc.job,
                        FailureReason::ScriptFailure,
                        LAUNCH_FAILURE_EXIT_CODE,
                    )
                    .await
                {
                    Ok(()) => {
                        slog::warn!(log, "reported the job as failed to launch");
                        outcome = ReportOutcome::Reported;
                        break;
                    }
                    Err(e) => {
                        slog::error!(log, "could not report the launch failure";
                                     "attempt" => attempt, "attempts" => attempts, "error" => %untrusted(&e));
                    }
                }
                if attempt < attempts && jc.interrupts.sleep(interval).await.is_some() {
                    slog::warn!(
                        log,
                        "shutdown: the launch failure stays pending for the next process"
                    );
                    outcome = ReportOutcome::Interrupted;
                    break;
                }
            }
        }
        jc.supervisor.tell(FailureReported {
            key,
            outcome,
            trace_offset,
            trace_appended,
        });
    }
}

fn red_line(message: &str) -> String {
    format!("\x1b[31m{message}\x1b[0m\n")
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::job_actor::JobActor;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::testing::{job, FakeCoordinator, FakePaas, World};

    const STEP: Duration = Duration::from_secs(1);

    #[actix_rt::test]
    async fn failure_reporter_appends_then_reports() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord.clone(), FakePaas::new(world, "r", 1.0));
        let task = ReportFailure {
            message: "no flavor".into(),
            trace_offset: 0,
            trace_appended: false,
            attempts: 3,
            interval: STEP,
        };
        JobActor::start(jc, task);
        assert!(h.until_ended(STEP, 20).await);
        assert!(h
            .events()
            .contains(&Event::FailureReported(ReportOutcome::Reported)));
        let s = coord.script.borrow();
        assert_eq!(s.appended.len(), 1);
        assert!(s.appended[0].2.contains("no flavor"));
        assert_eq!(s.reports.len(), 1);
    }
}
