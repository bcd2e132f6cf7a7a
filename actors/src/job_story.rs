//! What the lifecycle log lines tell about a job (acquired, launched,
//! over): its project, the flavor it asked for, the organisation of its
//! resource, how it ended and how long each part took. Pure: read from the
//! payload once at acquisition (the payload of a started job is freed),
//! the times set by the supervisor. Job-chosen text (a variable's value)
//! reaches a log line only escaped ([`crate::untrusted::untrusted`]).

use crate::ports::Seconds;
use crate::untrusted::untrusted;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// How a job ended, as the runner saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It ran and was seen over at its coordinator.
    Finished,
    /// It was over at its coordinator before it started (cancelled).
    CancelledBeforeStart,
    /// Its launch failed (reported to the coordinator).
    LaunchFailed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::CancelledBeforeStart => "cancelled_before_start",
            Outcome::LaunchFailed => "launch_failed",
        }
    }
}

/// A job's story, kept in its table entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct JobStory {
    /// `job_info.project_id`.
    project_id: Option<i64>,
    /// `CI_PROJECT_PATH` (escaped when logged).
    project_path: Option<String>,
    /// `CI_CLEVER_CLOUD_FLAVOR`, the flavor the job asked for (escaped when
    /// logged).
    flavor: Option<String>,
    /// `job_info.time_in_queue_seconds`: how long GitLab queued it.
    in_queue: Option<Duration>,
    /// When its trace was first seen growing.
    started_at: Option<Instant>,
    /// How it ended, once known.
    outcome: Option<Outcome>,
}

/// The value of the last variable named `name` in a job payload.
fn variable(payload: &Value, name: &str) -> Option<String> {
    payload
        .get("variables")?
        .as_array()?
        .iter()
        .rev()
        .find(|v| v.get("key").and_then(Value::as_str) == Some(name))
        .and_then(|v| v.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl JobStory {
    /// The story of a job as its payload tells it (a loaded started job has
    /// no payload: only its project id is known).
    pub(crate) fn of(project_id: Option<i64>, payload: &Value) -> Self {
        let in_queue = payload
            .get("job_info")
            .and_then(|i| i.get("time_in_queue_seconds"))
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64);
        JobStory {
            project_id,
            project_path: variable(payload, "CI_PROJECT_PATH"),
            flavor: variable(payload, "CI_CLEVER_CLOUD_FLAVOR"),
            in_queue,
            started_at: None,
            outcome: None,
        }
    }

    /// The job started (its trace grows) at `at`.
    pub(crate) fn started(&mut self, at: Instant) {
        self.started_at.get_or_insert(at);
    }

    /// How the job ended (the first word is kept).
    pub(crate) fn ended(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// The keys of the acquisition and launch lines: `project_id`,
    /// `project_path`, `flavor` (those known).
    pub(crate) fn identity(&self) -> slog::OwnedKV<impl slog::SendSyncRefUnwindSafeKV> {
        slog::o!(
            "project_id" => self.project_id,
            "project_path" => self.project_path.as_deref().map(|p| untrusted(p).to_string()),
            "flavor" => self.flavor.as_deref().map(|f| untrusted(f).to_string()),
        )
    }

    /// The durations of the end line, for a job tracked since `tracked_at`,
    /// seen over at `finished_at`, gone `now`: GitLab's queue plus the
    /// start (`queued_to_started_s`), the run (`run_s`), and everything
    /// (`total_s`). Times before this process tracked the job (a job loaded
    /// from the state file) are not counted.
    pub(crate) fn durations(
        &self,
        tracked_at: Instant,
        finished_at: Option<Instant>,
        now: Instant,
    ) -> Durations {
        let queue = self.in_queue.unwrap_or_default();
        Durations {
            outcome: self.outcome.map_or("unknown", Outcome::as_str),
            queued_to_started: self
                .started_at
                .map(|s| queue + s.saturating_duration_since(tracked_at)),
            run: self
                .started_at
                .zip(finished_at)
                .map(|(s, f)| f.saturating_duration_since(s)),
            total: queue + now.saturating_duration_since(tracked_at),
        }
    }
}

/// The end line's outcome and durations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Durations {
    pub outcome: &'static str,
    pub queued_to_started: Option<Duration>,
    pub run: Option<Duration>,
    pub total: Duration,
}

impl slog::KV for Durations {
    fn serialize(
        &self,
        record: &slog::Record<'_>,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        use slog::Value as _;
        self.outcome.serialize(record, "outcome", serializer)?;
        self.queued_to_started
            .map(Seconds)
            .serialize(record, "queued_to_started_s", serializer)?;
        self.run
            .map(Seconds)
            .serialize(record, "run_s", serializer)?;
        Seconds(self.total).serialize(record, "total_s", serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_story_reads_the_payload_and_adds_up_the_durations() {
        let payload = json!({
            "job_info": {"project_id": 7, "time_in_queue_seconds": 2.5},
            "variables": [
                {"key": "CI_PROJECT_PATH", "value": "forged/early"},
                {"key": "CI_PROJECT_PATH", "value": "group/project"},
                {"key": "CI_CLEVER_CLOUD_FLAVOR", "value": "XS"},
            ],
        });
        let mut story = JobStory::of(Some(7), &payload);
        assert_eq!(story.project_path.as_deref(), Some("group/project"));
        assert_eq!(story.flavor.as_deref(), Some("XS"));
        let t0 = Instant::now();
        let s = Duration::from_secs;
        story.started(t0 + s(10));
        story.started(t0 + s(20));
        story.ended(Outcome::Finished);
        story.ended(Outcome::LaunchFailed);
        let d = story.durations(t0, Some(t0 + s(70)), t0 + s(75));
        assert_eq!(d.outcome, "finished");
        assert_eq!(d.queued_to_started, Some(Duration::from_millis(12_500)));
        assert_eq!(d.run, Some(s(60)));
        assert_eq!(d.total, Duration::from_millis(77_500));
        // A loaded started job: only what this process saw.
        let loaded = JobStory::of(Some(7), &Value::Null).durations(t0, None, t0 + s(3));
        assert_eq!(
            (
                loaded.outcome,
                loaded.queued_to_started,
                loaded.run,
                loaded.total
            ),
            ("unknown", None, None, s(3))
        );
    }
}
