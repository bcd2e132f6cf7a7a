//! The launch of one job ([`Launch`], a per-job task).
//!
//! Record the resource name (write-ahead), create, record the
//! resource, prepare, launch, record again. A job resumed from a `creating`
//! marker first looks for its resource by name (`Paas::find_resource`: a
//! transient error of the look-up, a coordinator or PAAS outage during the
//! restart, is retried with back-off within `create_retry_budget`, never
//! failing the job at once); when the look-up does not show it, the launcher waits `creating_grace` and lists once more before
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
//! A job given a standby resource (`reuse`) asks the resource whether it
//! can take the job (`prepare_reuse`, bounded by the executor) instead of
//! `prepare`; any error there ends the launch with [`ReuseFailed`]: the
//! supervisor has the resource deleted and the job launched on a new one.

use crate::backoff::{BackoffPolicy, LazyBackoff};
use crate::job_actor::JobTask;
use crate::job_ctx::{JobCtx, SupervisorLink};
use crate::launch_spacing::LaunchSpacing;
use crate::mailbox::answer;
use crate::messages::{
    LaunchFailed, LaunchStopped, NotRecorded, RecordCreating, ResourceLaunched,
    ResourceProvisioned, ReuseFailed,
};
use crate::metrics::LaunchFailureReason;
use crate::ports::{PaasError, PaasErrorClass, PortFuture, Resource};
use crate::quota::JobKey;
use crate::shutdown::{Interrupt, OpSubject};
use crate::untrusted::untrusted;
use std::rc::Rc;
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
pub(crate) struct Launch {
    /// The job's resource when it exists already (resumed): no create.
    pub resource: Option<Resource>,
    /// The resource name recorded before a create call whose fate is
    /// unknown (resumed from a `creating` marker): looked for by name
    /// before creating, again after `creating_grace` if not found at once.
    pub resume_creating: Option<String>,
    /// How transient PAAS errors are retried.
    pub retry: Retry,
    /// How long a create in flight may take to land.
    pub creating_grace: Duration,
    /// The planned starts of creates, shared by every launch.
    pub spacing: Rc<LaunchSpacing>,
    /// `resource` is a standby resource given to this job: checked with
    /// `prepare_reuse` instead of prepared.
    pub reuse: bool,
}

impl JobTask for Launch {
    const PHASE: &'static str = "launching";
    const CANCELLABLE: bool = true;

    async fn run(self, mut jc: JobCtx) {
        let key = jc.key;
        match launched_resource(&mut jc, self).await {
            Ok(resource) => {
                let request = jc.supervisor.ask(ResourceLaunched { key, resource });
                if let Some(Err(e)) = answer(request, "supervisor", &jc.logger).await {
                    slog::warn!(jc.logger, "launch not recorded"; "error" => %e);
                }
            }
            Err(LaunchEnd::Stopped(interrupt)) => {
                jc.supervisor.tell(LaunchStopped { key, interrupt });
            }
            Err(LaunchEnd::Failed(reason, message)) => jc.supervisor.tell(LaunchFailed {
                key,
                message,
                reason,
            }),
            Err(LaunchEnd::ReuseRefused(message)) => {
                jc.supervisor.tell(ReuseFailed { key, message });
            }
            Err(LaunchEnd::SupervisorGone) => {}
        }
    }
}

/// Why a launch ended before the job was launched.
enum LaunchEnd {
    /// Interrupted between steps or during a wait ([`LaunchStopped`]).
    Stopped(Interrupt),
    /// Failed ([`LaunchFailed`]).
    Failed(LaunchFailureReason, String),
    /// The standby resource could not take the job ([`ReuseFailed`]).
    ReuseRefused(String),
    /// The supervisor did not answer: nobody left to tell.
    SupervisorGone,
}

impl LaunchEnd {
    /// The end of a launch whose call of step `reason` ended without success.
    fn of_call(end: CallEnd, reason: LaunchFailureReason) -> Self {
        match end {
            CallEnd::Stopped(i) => LaunchEnd::Stopped(i),
            CallEnd::Failed(e) => LaunchEnd::Failed(reason, e.to_string()),
        }
    }

    /// The end of a launch whose step needed the supervisor to record
    /// something it did not record.
    fn not_recorded(e: impl std::fmt::Display) -> Self {
        LaunchEnd::Failed(LaunchFailureReason::State, e.to_string())
    }
}

/// Stops the launch if the drain or the job's cancellation was raised.
fn interrupted(jc: &JobCtx) -> Result<(), LaunchEnd> {
    match jc.interrupts.check() {
        Some(i) => Err(LaunchEnd::Stopped(i)),
        None => Ok(()),
    }
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
                            "error" => %untrusted(&e), "retry_in_s" => crate::ports::Seconds(delay));
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

/// The job's resource, launched: created and recorded unless it exists,
/// prepared and launched unless it was already.
async fn launched_resource(jc: &mut JobCtx, task: Launch) -> Result<Resource, LaunchEnd> {
    let Launch {
        resource,
        resume_creating,
        retry,
        creating_grace,
        spacing,
        reuse,
    } = task;
    if let (true, Some(r)) = (reuse, &resource) {
        if !r.launched {
            let ready = reuse_resource(jc, r).await?;
            return launch_only(jc, retry, ready).await;
        }
    }
    let resource = match resource {
        Some(r) => r,
        None => provision(jc, resume_creating, retry, creating_grace, &spacing).await?,
    };
    if resource.launched {
        return Ok(resource);
    }
    prepare_and_launch(jc, retry, resource).await
}

/// Creates the job's resource (or, resumed from a `creating` marker, finds
/// it by name) and has the supervisor record it, before `prepare`.
async fn provision(
    jc: &mut JobCtx,
    resume_creating: Option<String>,
    retry: Retry,
    creating_grace: Duration,
    spacing: &LaunchSpacing,
) -> Result<Resource, LaunchEnd> {
    interrupted(jc)?;
    // On resume, the name recorded on disk is the one a previous
    // create may have used.
    let resumed = resume_creating.is_some();
    let name = resume_creating.unwrap_or_else(|| jc.paas.resource_name(jc.job.id));
    let found = if resumed {
        find_on_resume(jc, retry, &name, creating_grace).await?
    } else {
        record_creating(jc, &name).await?;
        None
    };
    let r = match found {
        Some(r) => r,
        None => {
            interrupted(jc)?;
            wait_for_slot(jc, spacing).await?;
            create_resource(jc, retry, creating_grace, &name)
                .await
                .map_err(|e| LaunchEnd::of_call(e, LaunchFailureReason::Create))?
        }
    };
    slog::info!(jc.logger, "resource created"; "app" => &r.id,
               "weight" => crate::ports::TwoDecimals(r.weight));
    record(&jc.supervisor, jc.key, r.clone(), &jc.logger)
        .await
        .map_err(LaunchEnd::not_recorded)?;
    Ok(r)
}

/// Waits for the start planned for this create (spaced from the others'
/// by `paas_min_seconds_between_launches`); the wait ends on interrupts.
async fn wait_for_slot(jc: &mut JobCtx, spacing: &LaunchSpacing) -> Result<(), LaunchEnd> {
    let now = tokio::time::Instant::now();
    let delay = spacing.plan(now).saturating_duration_since(now);
    if delay.is_zero() {
        return Ok(());
    }
    slog::info!(jc.logger, "provisioning start delayed to keep launches spaced";
                "delay_s" => delay.as_secs_f64());
    match jc.interrupts.sleep(delay).await {
        Some(i) => Err(LaunchEnd::Stopped(i)),
        None => Ok(()),
    }
}

/// Resumed from a `creating` marker: a create call may have happened
/// before the last stop, so the resource is looked for by its
/// deterministic name before creating again, and once more after `grace`
/// (the previous process's create may still be landing).
async fn find_on_resume(
    jc: &mut JobCtx,
    retry: Retry,
    name: &str,
    grace: Duration,
) -> Result<Option<Resource>, LaunchEnd> {
    let mut found = find_retrying(jc, retry, name)
        .await
        .map_err(|e| LaunchEnd::of_call(e, LaunchFailureReason::Create))?;
    if found.is_none() {
        found = look_again_after_grace(jc, retry, name, grace)
            .await
            .map_err(|e| LaunchEnd::of_call(e, LaunchFailureReason::Create))?;
    }
    if let Some(r) = &found {
        slog::info!(jc.logger, "resumed job: its resource exists; adopting it";
                    "app" => &r.id, "name" => name);
    }
    Ok(found)
}

/// Has the supervisor record the resource name (write-ahead, before
/// `create`).
async fn record_creating(jc: &JobCtx, name: &str) -> Result<(), LaunchEnd> {
    let request = jc.supervisor.ask(RecordCreating {
        key: jc.key,
        name: name.to_string(),
    });
    match answer(request, "supervisor", &jc.logger).await {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(LaunchEnd::not_recorded(format!(
            "the runner could not record its state before provisioning: {e}"
        ))),
        None => Err(LaunchEnd::SupervisorGone),
    }
}

/// Prepares and launches the recorded resource (each call retried per
/// `retry`); the prepared resource is recorded before the launch.
async fn prepare_and_launch(
    jc: &mut JobCtx,
    retry: Retry,
    mut res: Resource,
) -> Result<Resource, LaunchEnd> {
    for step in ["prepare", "launch"] {
        interrupted(jc)?;
        let (paas, job, current) = (jc.paas.clone(), jc.job.clone(), res.clone());
        let out = call_retrying(jc, retry, step, || {
            if step == "prepare" {
                paas.prepare(&current, &job)
            } else {
                paas.launch(&current, &job)
            }
        })
        .await;
        let reason = if step == "prepare" {
            LaunchFailureReason::Prepare
        } else {
            LaunchFailureReason::Launch
        };
        res = out.map_err(|e| LaunchEnd::of_call(e, reason))?;
        if step == "prepare" {
            record(&jc.supervisor, jc.key, res.clone(), &jc.logger)
                .await
                .map_err(LaunchEnd::not_recorded)?;
            wait_ready(jc, &res).await?;
        }
    }
    res.launched = true;
    Ok(res)
}

/// Waits until the prepared resource can take the job
/// ([`crate::ports::Paas::wait_ready`]). The wait only reads, so a drain
/// or the job's cancellation ends it at once: the job stays prepared, and
/// a resumed launch prepares and waits again.
async fn wait_ready(jc: &mut JobCtx, resource: &Resource) -> Result<(), LaunchEnd> {
    let (paas, job) = (jc.paas.clone(), jc.job.clone());
    match jc
        .interrupts
        .unless_interrupted(paas.wait_ready(resource, &job))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(LaunchEnd::Failed(
            LaunchFailureReason::Prepare,
            e.to_string(),
        )),
        Err(i) => {
            slog::info!(jc.logger, "wait for the resource to be ready interrupted";
                        "app" => &resource.id, "interrupt" => ?i);
            Err(LaunchEnd::Stopped(i))
        }
    }
}

/// Asks a standby resource whether it can take the job, and has the
/// supervisor record it (before the launch).
async fn reuse_resource(jc: &mut JobCtx, resource: &Resource) -> Result<Resource, LaunchEnd> {
    interrupted(jc)?;
    let op = jc
        .ops
        .begin(jc.runner_name.clone(), OpSubject::Job(jc.key), "prepare");
    let out = jc.paas.prepare_reuse(resource, &jc.job).await;
    drop(op);
    let ready = out.map_err(|e| LaunchEnd::ReuseRefused(e.to_string()))?;
    record(&jc.supervisor, jc.key, ready.clone(), &jc.logger)
        .await
        .map_err(LaunchEnd::not_recorded)?;
    Ok(ready)
}

/// Launches the job on a recorded, ready resource (retried per `retry`).
async fn launch_only(jc: &mut JobCtx, retry: Retry, res: Resource) -> Result<Resource, LaunchEnd> {
    interrupted(jc)?;
    let (paas, job) = (jc.paas.clone(), jc.job.clone());
    let mut res = call_retrying(jc, retry, "launch", || paas.launch(&res, &job))
        .await
        .map_err(|e| LaunchEnd::of_call(e, LaunchFailureReason::Launch))?;
    res.launched = true;
    Ok(res)
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
    let request = sup.ask(ResourceProvisioned { key, resource });
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
                        "budget_s" => crate::ports::Seconds(retry.create_budget));
            return match look_again_after_grace(jc, retry, name, grace).await? {
                Some(r) => Ok(r),
                None => Err(CallEnd::Failed(e)),
            };
        }
        slog::warn!(jc.logger, "transient PAAS error; retrying (the failed create may \
                                have taken effect: looking for the resource by name first)";
                    "attempt" => attempt, "attempts" => attempts,
                    "error" => %untrusted(&e), "retry_in_s" => crate::ports::Seconds(delay));
        if let Some(i) = jc.interrupts.sleep(delay).await {
            return Err(CallEnd::Stopped(i));
        }
        if let Some(r) = find_retrying(jc, retry, name).await? {
            return Ok(r);
        }
        attempt += 1;
    }
}

/// Looks for the resource named `name`; a transient error (the PAAS or
/// the coordinator answering 5xx during a restart) is retried with
/// back-off within `create_budget` from the first attempt, the waits ending
/// on drain or cancellation. A permanent error, or a transient one beyond
/// the budget, ends the look-up.
async fn find_retrying(
    jc: &mut JobCtx,
    retry: Retry,
    name: &str,
) -> Result<Option<Resource>, CallEnd> {
    let mut backoff = retry.backoff();
    let first = tokio::time::Instant::now();
    loop {
        let e = match find_by_name(jc, name).await {
            Ok(found) => return Ok(found),
            Err(e) if e.class == PaasErrorClass::Permanent => return Err(CallEnd::Failed(e)),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        if first.elapsed() + delay > retry.create_budget {
            return Err(CallEnd::Failed(e));
        }
        slog::warn!(jc.logger, "transient error looking for the job's resource by name; \
                                retrying";
                    "error" => %untrusted(&e), "retry_in_s" => delay.as_secs_f64());
        if let Some(i) = jc.interrupts.sleep(delay).await {
            return Err(CallEnd::Stopped(i));
        }
    }
}

/// After `grace` (a create in flight may still land), looks for the
/// resource named `name` once more.
async fn look_again_after_grace(
    jc: &mut JobCtx,
    retry: Retry,
    name: &str,
    grace: Duration,
) -> Result<Option<Resource>, CallEnd> {
    if grace.is_zero() {
        return Ok(None);
    }
    slog::info!(jc.logger, "no resource of this name yet; looking again before creating it \
                            (or giving up on it)";
                "name" => name, "grace_s" => crate::ports::Seconds(grace));
    if let Some(i) = jc.interrupts.sleep(grace).await {
        return Err(CallEnd::Stopped(i));
    }
    find_retrying(jc, retry, name).await
}

/// The resource named `name`, if the PAAS shows it
/// ([`crate::ports::Paas::find_resource`]). An error keeps its class: a
/// permanent one (a bad token) is not retried.
async fn find_by_name(jc: &JobCtx, name: &str) -> Result<Option<Resource>, PaasError> {
    match jc.paas.find_resource(&jc.job, name).await {
        Ok(found) => Ok(found),
        Err(e) => Err(PaasError {
            action: "find-by-name".into(),
            message: format!("could not look for resource {name}: {e}"),
            class: e.class,
        }),
    }
}

#[cfg(test)]
mod tests {
    // The `testing` feature is on in every test build (dev-dependency).
    use super::*;
    use crate::job_actor::JobActor;
    use crate::job_ctx::stub::{Event, Harness};
    use crate::testing::{job, FakeCoordinator, FakePaas, Step, World};

    const RETRY: Retry = Retry {
        attempts: 2,
        policy: BackoffPolicy::new(Duration::from_secs(1), Duration::from_secs(2)),
        seed: Some(1),
        create_budget: Duration::from_secs(60),
    };
    const STEP: Duration = Duration::from_secs(1);

    /// A launch without resource, resumed from `resume_creating` if given.
    fn task(resume_creating: Option<String>, creating_grace: Duration) -> Launch {
        Launch {
            resource: None,
            resume_creating,
            retry: RETRY,
            creating_grace,
            spacing: Rc::default(),
            reuse: false,
        }
    }

    /// Launches of jobs `ids` sharing a spacing of `gap` between creates.
    fn spaced(h: &Harness, paas: &Rc<FakePaas>, world: &Rc<World>, ids: &[i64], gap: Duration) {
        let spacing = Rc::new(LaunchSpacing::new(gap));
        for id in ids {
            let jc = h.job_ctx(
                job(*id, &[]),
                FakeCoordinator::new(world.clone()),
                paas.clone(),
            );
            let mut launch = task(None, Duration::ZERO);
            launch.spacing = spacing.clone();
            JobActor::start(jc, launch);
        }
    }

    #[actix_rt::test]
    async fn creates_are_spaced_by_their_planned_starts() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let h = Harness::start(Ok(()));
        spaced(&h, &paas, &world, &[1, 2, 3], Duration::from_secs(2));
        let mut seen = Vec::new();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..6 {
            // Samples at 0.5 s, 1.5 s, … 5.5 s: between the planned starts.
            seen.push(paas.calls(Step::Create));
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        assert_eq!(
            seen,
            [1, 1, 2, 2, 3, 3],
            "creates at 0 s, 2 s and 4 s, not all together at 2 s"
        );
    }

    #[actix_rt::test]
    async fn a_drain_ends_the_readiness_wait_and_the_job_stays_prepared() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.set_latency(Step::WaitReady, Duration::from_secs(600));
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        JobActor::start(jc, task(None, Duration::ZERO));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(paas.calls(Step::WaitReady), 1);
        let _ = h.drain.send(true);
        // Ends within a step of virtual time, not at the 600 s of the wait.
        assert!(h.until_ended(Duration::from_millis(100), 10).await);
        let events = h.events();
        let provisioned = events
            .iter()
            .filter(|e| matches!(e, Event::Provisioned(_)))
            .count();
        assert_eq!(provisioned, 2, "created and prepared, recorded: {events:?}");
        assert!(
            events.contains(&Event::LaunchStopped(Interrupt::Drain)),
            "{events:?}"
        );
        assert_eq!(paas.calls(Step::Launch), 0);
    }

    #[actix_rt::test]
    async fn a_resource_never_ready_fails_the_launch() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        paas.fail(
            Step::WaitReady,
            [PaasError::permanent("wait-helper", "never ready")],
        );
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        JobActor::start(jc, task(None, Duration::ZERO));
        assert!(h.until_ended(STEP, 20).await);
        assert!(
            h.events()
                .iter()
                .any(|e| matches!(e, Event::LaunchFailed(m) if m.contains("never ready"))),
            "{:?}",
            h.events()
        );
        assert_eq!(paas.calls(Step::Launch), 0);
    }

    #[actix_rt::test]
    async fn a_drain_ends_the_wait_for_a_planned_start() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let h = Harness::start(Ok(()));
        spaced(&h, &paas, &world, &[1, 2], Duration::from_secs(600));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(paas.calls(Step::Create), 1);
        let _ = h.drain.send(true);
        let mut stopped = false;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopped = h.events().contains(&Event::LaunchStopped(Interrupt::Drain));
            if stopped {
                break;
            }
        }
        assert!(stopped, "{:?}", h.events());
        assert_eq!(
            paas.calls(Step::Create),
            1,
            "the waiting launch never created"
        );
    }

    #[actix_rt::test]
    async fn records_before_each_step_and_launches() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        JobActor::start(jc, task(None, Duration::ZERO));
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
        JobActor::start(jc, task(None, Duration::ZERO));
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
        JobActor::start(jc, task(resume, Duration::from_secs(5)));
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
    async fn a_transient_look_up_error_on_resume_is_retried_and_fails_no_job() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let down = || {
            PaasError::transient(
                "find-orga",
                "the organisation of a tracked resource is unknown now: 502",
            )
        };
        paas.fail(Step::List, [down(), down()]);
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        let resume = Some("hpd-job-r-1".to_string());
        JobActor::start(jc, task(resume, Duration::from_secs(5)));
        assert!(h.until_ended(STEP, 60).await);
        // Two failed look-ups, then the one that answers, then the look
        // again after the grace; then the create.
        assert_eq!(paas.calls(Step::List), 4);
        assert_eq!(paas.calls(Step::Create), 1);
        let events = h.events();
        assert!(
            !events.iter().any(|e| matches!(e, Event::LaunchFailed(_))),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(e, Event::Provisioned(_))),
            "{events:?}"
        );
    }

    #[actix_rt::test]
    async fn a_transient_look_up_error_beyond_the_create_budget_fails_the_job() {
        tokio::time::pause();
        let world = World::new();
        let paas = FakePaas::new(world.clone(), "r", 1.0);
        let down = || PaasError::transient("list", "502");
        paas.fail(Step::List, std::iter::repeat_with(down).take(200));
        let h = Harness::start(Ok(()));
        let jc = h.job_ctx(job(1, &[]), FakeCoordinator::new(world), paas.clone());
        let resume = Some("hpd-job-r-1".to_string());
        JobActor::start(jc, task(resume, Duration::from_secs(5)));
        assert!(h.until_ended(STEP, 200).await);
        // The budget (60 s) at waits of 1 s then 2 s: bounded.
        let calls = paas.calls(Step::List);
        assert!((2..=62).contains(&calls), "{calls}");
        assert_eq!(paas.calls(Step::Create), 0);
        assert!(h
            .events()
            .iter()
            .any(|e| matches!(e, Event::LaunchFailed(m) if m.contains("502"))));
    }
}
