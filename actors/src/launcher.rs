//! The launcher (one per job being launched) and the failure reporter.
//!
//! [`Launcher`]: record the resource name (write-ahead), create, record the
//! resource, prepare, launch, record again. A job resumed from a `creating`
//! marker first looks for its resource by name; when the listing does not
//! show it, the launcher waits `creating_grace` and lists once more before
//! creating, because the previous process's create may still be landing at
//! the PAAS (its answer lost with the process): this narrows the window in
//! which a restart makes a duplicate. A duplicate that still slips through
//! is found by reconciliation once the job is forgotten. The create, prepare and launch
//! calls are uninterruptible: once sent they finish, so that nothing exists
//! that the state does not know. Between steps the launcher honours the
//! drain (the job stays pending for the next process) and the job's
//! cancellation at the coordinator (the resource gets decommissioned).
//! A *transient* PAAS error (the port's promise: nothing half-done, worth
//! retrying; for `create`, the executor already looked for the resource by
//! name) is retried a bounded number of times with back-off, so that a
//! burst of 500/429 answers delays jobs instead of failing them; the waits
//! end on drain or cancellation. A create is retried only within
//! `create_retry_budget` from the first attempt (then one last look-up by
//! name `creating_grace` later), so that a PAAS answering 5xx holds the
//! job's weight for a bounded time.
//!
//! [`FailureReporter`]: append a red explanatory line to the job trace, then
//! report the job failed (`script_failure`, exit code 103), a bounded number
//! of attempts apart; the waits end on drain, leaving the job pending.

use crate::backoff::{BackoffPolicy, LazyBackoff};
use crate::job_ctx::{JobCtx, SupervisorLink};
use crate::mailbox::answer;
use crate::messages::{
    FailureReported, LaunchFailed, LaunchStopped, NotRecorded, RecordCreating, ReportOutcome,
    ResourceLaunched, ResourceProvisioned, TaskEnded,
};
use crate::metrics::LaunchFailureReason;
use crate::ports::{
    FailureReason, PaasError, PaasErrorClass, PortFuture, Resource, TraceAppend,
    LAUNCH_FAILURE_EXIT_CODE,
};
use crate::quota::JobKey;
use crate::shutdown::{Interrupt, OpSubject};
use crate::untrusted::untrusted;
use actix::prelude::*;
use std::time::Duration;

/// How a launcher retries transient PAAS errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Attempts per call, the first included (at least 1).
    pub attempts: u32,
    /// The delays between attempts.
    pub policy: BackoffPolicy,
    /// Seed of the delays' jitter (`None`: from the clock).
    pub seed: Option<u64>,
    /// A create is attempted again only if the attempt starts within this
    /// time from the first one (`SupervisorSettings::create_retry_budget`).
    pub create_budget: Duration,
}

impl Retry {
    /// A fresh back-off for one call's attempts.
    fn backoff(&self) -> LazyBackoff {
        LazyBackoff::new(self.policy, self.seed)
    }
}

/// Launches one job (see the module documentation).
pub struct Launcher {
    jc: JobCtx,
    resource: Option<Resource>,
    resume_creating: Option<String>,
    retry: Retry,
    creating_grace: Duration,
}

impl Launcher {
    /// A launcher for `jc.job`, resuming from an existing `resource` or from
    /// a resource name recorded before a create call whose fate is unknown
    /// (then looked for again after `creating_grace` if not found at once).
    pub(crate) fn new(
        jc: JobCtx,
        resource: Option<Resource>,
        resume_creating: Option<String>,
        retry: Retry,
        creating_grace: Duration,
    ) -> Self {
        Launcher {
            jc,
            resource,
            resume_creating,
            retry,
            creating_grace,
        }
    }
}

impl Actor for Launcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let fut = launch(
            self.jc.clone(),
            self.resource.take(),
            self.resume_creating.take(),
            self.retry,
            self.creating_grace,
        );
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc
            .supervisor
            .task_ended
            .do_send(TaskEnded { key: self.jc.key });
    }
}

fn red_line(message: &str) -> String {
    format!("\x1b[31m{message}\x1b[0m\n")
}

/// How a retried call ended without success.
enum CallEnd {
    Failed(PaasError),
    Stopped(Interrupt),
}

/// Runs a PAAS call (registered as uninterruptible while in flight),
/// retrying transient errors per `retry`; the waits end on interrupts.
async fn call_retrying<'p, T>(
    jc: &mut JobCtx,
    retry: Retry,
    step: &'static str,
    call: impl Fn() -> PortFuture<'p, Result<T, PaasError>>,
) -> Result<T, CallEnd> {
    let mut backoff = retry.backoff();
    let attempts = retry.attempts.max(1);
    let mut attempt = 1;
    loop {
        let op = jc
            .ops
            .begin(jc.runner_name.clone(), OpSubject::Job(jc.key), step);
        let out = call().await;
        drop(op);
        let delay = match out {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < attempts => {
                let delay = backoff.next_delay();
                slog::warn!(jc.logger, "transient PAAS error; retrying";
                            "step" => step, "attempt" => attempt, "attempts" => attempts,
                            "error" => %untrusted(&e), "retry_in_s" => delay.as_secs_f64());
                delay
            }
            Err(e) => return Err(CallEnd::Failed(e)),
        };
        if let Some(i) = jc.interrupts.sleep(delay).await {
            return Err(CallEnd::Stopped(i));
        }
        attempt += 1;
    }
}

async fn launch(
    mut jc: JobCtx,
    mut resource: Option<Resource>,
    resume_creating: Option<String>,
    retry: Retry,
    creating_grace: Duration,
) {
    let key = jc.key;
    let sup = jc.supervisor.clone();
    let stop = |i: Interrupt| {
        sup.launch_stopped
            .do_send(LaunchStopped { key, interrupt: i })
    };
    let fail = |reason: LaunchFailureReason, message: String| {
        sup.launch_failed.do_send(LaunchFailed {
            key,
            message,
            reason,
        })
    };

    if resource.is_none() {
        if let Some(i) = jc.interrupts.check() {
            return stop(i);
        }
        // On resume, the name recorded on disk is the one a previous
        // create may have used.
        let resumed = resume_creating.is_some();
        let name = resume_creating.unwrap_or_else(|| jc.paas.resource_name(jc.job.id));
        if resumed {
            // A create call may have happened before the last stop: look for
            // the resource by its deterministic name before creating again.
            match find_by_name(&jc, &name).await {
                Ok(found) => resource = found,
                Err(e) => return fail(LaunchFailureReason::Create, e.to_string()),
            }
            if resource.is_none() {
                // The previous process's create may still be landing.
                match look_again_after_grace(&mut jc, &name, creating_grace).await {
                    Ok(found) => resource = found,
                    Err(CallEnd::Stopped(i)) => return stop(i),
                    Err(CallEnd::Failed(e)) => {
                        return fail(LaunchFailureReason::Create, e.to_string())
                    }
                }
            }
            if let Some(r) = &resource {
                slog::info!(jc.logger, "resumed job: its resource exists; adopting it";
                            "app" => &r.id, "name" => &name);
            }
        } else {
            let request = sup.record_creating.send(RecordCreating {
                key,
                name: name.clone(),
            });
            match answer(request, "supervisor", &jc.logger).await {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    return fail(
                        LaunchFailureReason::State,
                        format!("the runner could not record its state before provisioning: {e}"),
                    )
                }
                None => return,
            }
        }
        if resource.is_none() {
            if let Some(i) = jc.interrupts.check() {
                return stop(i);
            }
            match create_resource(&mut jc, retry, creating_grace, &name).await {
                Ok(r) => resource = Some(r),
                Err(CallEnd::Stopped(i)) => return stop(i),
                Err(CallEnd::Failed(e)) => return fail(LaunchFailureReason::Create, e.to_string()),
            }
        }
        let Some(r) = resource.clone() else { return };
        slog::info!(jc.logger, "resource created"; "app" => &r.id,
                   "weight" => crate::ports::TwoDecimals(r.weight));
        if let Err(e) = record(&sup, key, r, &jc.logger).await {
            return fail(LaunchFailureReason::State, e.to_string());
        }
    }
    let Some(mut res) = resource else { return };
    if !res.launched {
        for step in ["prepare", "launch"] {
            if let Some(i) = jc.interrupts.check() {
                return stop(i);
            }
            let (paas, job, current) = (jc.paas.clone(), jc.job.clone(), res.clone());
            let out = call_retrying(&mut jc, retry, step, || {
                if step == "prepare" {
                    paas.prepare(&current, &job)
                } else {
                    paas.launch(&current, &job)
                }
            })
            .await;
            match out {
                Ok(r) => res = r,
                Err(CallEnd::Stopped(i)) => return stop(i),
                Err(CallEnd::Failed(e)) => {
                    let reason = if step == "prepare" {
                        LaunchFailureReason::Prepare
                    } else {
                        LaunchFailureReason::Launch
                    };
                    return fail(reason, e.to_string());
                }
            }
            if step == "prepare" {
                if let Err(e) = record(&sup, key, res.clone(), &jc.logger).await {
                    return fail(LaunchFailureReason::State, e.to_string());
                }
            }
        }
        res.launched = true;
    }
    let request = sup.launched.send(ResourceLaunched { key, resource: res });
    if let Some(Err(e)) = answer(request, "supervisor", &jc.logger).await {
        slog::warn!(jc.logger, "launch not recorded"; "error" => %e);
    }
}

/// A provisioned resource the supervisor did not record.
#[derive(Debug, thiserror::Error)]
#[error("the runner could not record resource {id}: {why}")]
struct ResourceNotRecorded {
    id: String,
    why: NotRecorded,
}

/// Records a provisioned resource with the supervisor (on disk when this
/// returns `Ok`). An error means the resource is not recorded: the launch
/// must not go on (reconciliation finds what exists by its name).
async fn record(
    sup: &SupervisorLink,
    key: JobKey,
    resource: Resource,
    log: &slog::Logger,
) -> Result<(), ResourceNotRecorded> {
    let id = resource.id.clone();
    let request = sup.provisioned.send(ResourceProvisioned { key, resource });
    match answer(request, "supervisor", log).await {
        Some(Ok(())) => Ok(()),
        Some(Err(why)) => Err(ResourceNotRecorded { id, why }),
        None => Err(ResourceNotRecorded {
            id,
            why: NotRecorded::SupervisorGone,
        }),
    }
}

/// Creates the job's resource without ever sending a create blindly: a
/// create that failed other than permanently may still have taken effect
/// (lost answer, 5xx), so before each new attempt, and once more
/// `grace` after the last one, the resource is looked up by its name.
async fn create_resource(
    jc: &mut JobCtx,
    retry: Retry,
    grace: Duration,
    name: &str,
) -> Result<Resource, CallEnd> {
    let mut backoff = retry.backoff();
    let attempts = retry.attempts.max(1);
    let mut attempt = 1;
    let first = tokio::time::Instant::now();
    loop {
        let op = jc
            .ops
            .begin(jc.runner_name.clone(), OpSubject::Job(jc.key), "create");
        let out = jc.paas.create(&jc.job).await;
        drop(op);
        let e = match out {
            Ok(r) => return Ok(r),
            Err(e) if e.class == PaasErrorClass::Permanent => return Err(CallEnd::Failed(e)),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        if attempt >= attempts || first.elapsed() + delay > retry.create_budget {
            slog::warn!(jc.logger, "PAAS error at create; no more attempts";
                        "attempt" => attempt, "error" => %e,
                        "budget_s" => retry.create_budget.as_secs_f64());
            return match look_again_after_grace(jc, name, grace).await? {
                Some(r) => Ok(r),
                None => Err(CallEnd::Failed(e)),
            };
        }
        slog::warn!(jc.logger, "transient PAAS error; retrying (the failed create may \
                                have taken effect: looking for the resource by name first)";
                    "attempt" => attempt, "attempts" => attempts,
                    "error" => %untrusted(&e), "retry_in_s" => delay.as_secs_f64());
        if let Some(i) = jc.interrupts.sleep(delay).await {
            return Err(CallEnd::Stopped(i));
        }
        match find_by_name(jc, name).await {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => return Err(CallEnd::Failed(e)),
        }
        attempt += 1;
    }
}

/// After `grace` (a create in flight may still land), looks for the
/// resource named `name` once more.
async fn look_again_after_grace(
    jc: &mut JobCtx,
    name: &str,
    grace: Duration,
) -> Result<Option<Resource>, CallEnd> {
    if grace.is_zero() {
        return Ok(None);
    }
    slog::info!(jc.logger, "no resource of this name yet; looking again before creating it \
                            (or giving up on it)";
                "name" => name, "grace_s" => grace.as_secs_f64());
    if let Some(i) = jc.interrupts.sleep(grace).await {
        return Err(CallEnd::Stopped(i));
    }
    find_by_name(jc, name).await.map_err(CallEnd::Failed)
}

/// The resource named `name`, if the listing shows it: by its name, or by
/// its id when that is the name (an executor whose ids are names lists a
/// resource created under an older identity of the runner with today's
/// name and the old one as id). A listing error keeps its class: a
/// permanent one (a bad token) is not retried.
async fn find_by_name(jc: &JobCtx, name: &str) -> Result<Option<Resource>, PaasError> {
    match jc.paas.list_resources().await {
        Ok(list) => Ok(list.into_iter().find(|r| r.name == name || r.id == name)),
        Err(e) => Err(PaasError {
            action: "find-by-name".into(),
            message: format!("could not look for resource {name}: {e}"),
            class: e.class,
        }),
    }
}

/// Reports one launch failure (see the module documentation).
pub struct FailureReporter {
    jc: JobCtx,
    message: String,
    trace_offset: u64,
    trace_appended: bool,
    attempts: u32,
    interval: Duration,
}

impl FailureReporter {
    /// A reporter for `message`; the red line is appended at `trace_offset`
    /// unless `trace_appended` (a previous process already did).
    pub(crate) fn new(
        jc: JobCtx,
        message: String,
        trace_offset: u64,
        trace_appended: bool,
        attempts: u32,
        interval: Duration,
    ) -> Self {
        FailureReporter {
            jc,
            message,
            trace_offset,
            trace_appended,
            attempts,
            interval,
        }
    }
}

impl Actor for FailureReporter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let fut = report(
            self.jc.clone(),
            std::mem::take(&mut self.message),
            self.trace_offset,
            self.trace_appended,
            self.attempts,
            self.interval,
        );
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.jc
            .supervisor
            .task_ended
            .do_send(TaskEnded { key: self.jc.key });
    }
}

async fn report(
    mut jc: JobCtx,
    message: String,
    mut trace_offset: u64,
    mut trace_appended: bool,
    attempts: u32,
    interval: Duration,
) {
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
    jc.supervisor.failure_reported.do_send(FailureReported {
        key,
        outcome,
        trace_offset,
        trace_appended,
    });
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::testing::{job, FakeCoordinator, FakePaas, Step, World};

    const RETRY: Retry = Retry {
        attempts: 2,
        policy: BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(2)),
        seed: Some(1),
        create_budget: Duration::from_secs(60),
    };
    const STEP: Duration = Duration::from_secs(1);

    #[actix_rt::test]
    async fn records_before_each_step_and_launches() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        Launcher::new(jc, None, None, RETRY, Duration::ZERO).start();
        assert!(h.until_ended(STEP, 20).await);
        let events = h.events();
        assert!(
            matches!(events.first(), Some(Event::RecordCreating(n)) if n == "hpd-job-r-1"),
            "{events:?}"
        );
        let provisioned = events
            .iter()
            .filter(|e| matches!(e, Event::Provisioned(_)))
            .count();
        assert_eq!(provisioned, 2, "after create and after prepare: {events:?}");
        assert!(
            matches!(events.get(3), Some(Event::Launched(_))),
            "{events:?}"
        );
        assert_eq!(paas.calls(Step::Launch), 1);
    }

    #[actix_rt::test]
    async fn does_not_create_what_the_supervisor_did_not_record() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let h = Harness::start(Err(NotRecorded::NotExpected { phase: "gone" }));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        Launcher::new(jc, None, None, RETRY, Duration::ZERO).start();
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::Create), 0);
        let events = h.events();
        assert!(
            events.iter().any(|e| matches!(e, Event::LaunchFailed(m)
                if m.contains("could not record") && m.contains("not expected"))),
            "{events:?}"
        );
    }

    #[actix_rt::test]
    async fn a_permanent_listing_error_on_resume_is_not_retried() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.fail(Step::List, [PaasError::permanent("list", "bad token")]);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        let resume = Some("hpd-job-r-1".to_string());
        Launcher::new(jc, None, resume, RETRY, Duration::from_secs(5)).start();
        assert!(h.until_ended(STEP, 20).await);
        assert_eq!(paas.calls(Step::List), 1, "looked up once, not again");
        assert_eq!(paas.calls(Step::Create), 0);
        let events = h.events();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::LaunchFailed(m) if m.contains("bad token"))),
            "{events:?}"
        );
    }

    #[actix_rt::test]
    async fn failure_reporter_appends_then_reports() {
        tokio::time::pause();
        let world = World::new();
        let coord = FakeCoordinator::new(world.clone());
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), coord.clone(), FakePaas::new(world, "r", 1.0));
        FailureReporter::new(jc, "no flavor".into(), 0, false, 3, STEP).start();
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
