//! Where a job's time goes, cut at what the simulated world saw: the
//! acquisition, the application's creation, the push's arrival and its
//! deployment, the first trace bytes; the job's end, the first status check
//! after it, the delete request and the deletion. Also the gap between a
//! freed slot (an application deleted) and the next acquisition, and the
//! tail from the last job's end to the last deletion.
//!
//! The world's floors: the repository is ready `--repo-delay` after the
//! creation, the inner runner writes its first trace `--start-delay` after
//! the deployment; everything else in acquisition → started is the runner's
//! own time (or its wait for the machine).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::report::{Figures, Unit};
use super::stats::Distribution;
use crate::clever::Endpoint as CleverEndpoint;
use crate::coordinator::Endpoint;
use crate::world::{job_id_of_app_name, World};

/// The milestones of one job (each `None` when the world did not see it).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Marks {
    /// Handed out to the runner.
    pub handed_out: Option<Instant>,
    /// The create request of its application arrived.
    pub create_requested: Option<Instant>,
    /// Its application created (the create request answered).
    pub created: Option<Instant>,
    /// The first Git `info/refs` request for that application arrived.
    pub first_look: Option<Instant>,
    /// The first `git-receive-pack` request for that application arrived.
    pub push_arrived: Option<Instant>,
    /// The push moved `master` (the deployment).
    pub deployed: Option<Instant>,
    /// The inner runner's first trace bytes.
    pub first_trace: Option<Instant>,
    /// Terminal status.
    pub finished: Option<Instant>,
    /// First status check (`GET /job`) at or after the terminal status.
    pub seen_finished: Option<Instant>,
    /// First delete request for its application.
    pub delete_requested: Option<Instant>,
    /// Its application deleted.
    pub deleted: Option<Instant>,
}

fn span(from: Option<Instant>, to: Option<Instant>) -> Option<Duration> {
    Some(to?.saturating_duration_since(from?))
}

/// The rows this module adds, in order: each with the two marks it spans.
type Span = (&'static str, fn(&Marks) -> Option<Duration>);

const SPANS: [Span; 8] = [
    ("  acquired -> create requested", |m| {
        span(m.handed_out, m.create_requested)
    }),
    ("  create requested -> app created", |m| {
        span(m.create_requested, m.created)
    }),
    ("  app created -> first git request", |m| {
        span(m.created, m.first_look)
    }),
    ("  first git request -> push arrived", |m| {
        span(m.first_look, m.push_arrived)
    }),
    ("  push arrived -> deployed (push)", |m| {
        span(m.push_arrived, m.deployed)
    }),
    ("  deployed -> started (inner runner)", |m| {
        span(m.deployed, m.first_trace)
    }),
    ("  finished -> seen by a status check", |m| {
        span(m.finished, m.seen_finished)
    }),
    ("  seen -> delete requested", |m| {
        span(m.seen_finished, m.delete_requested)
    }),
];

/// Adds the breakdown rows to `figures`: one distribution per span, the
/// delete request → deletion span, the freed slot → next acquisition gap
/// (the k-th acquisition after the first `concurrent` against the k-th
/// deletion) and the tail from the last job's end to the last deletion.
pub fn push_figures(figures: &mut Figures, marks: &[Marks], concurrent: usize) {
    for (name, f) in SPANS {
        let values: Vec<Duration> = marks.iter().filter_map(f).collect();
        figures.push_distribution(name, Distribution::of(&values));
    }
    let values: Vec<Duration> = marks
        .iter()
        .filter_map(|m| span(m.delete_requested, m.deleted))
        .collect();
    figures.push_distribution(
        "  delete requested -> app deleted",
        Distribution::of(&values),
    );
    figures.push_distribution(
        "app deleted -> next acquisition (freed slot)",
        Distribution::of(&slot_gaps(marks, concurrent)),
    );
    let last_finished = marks.iter().filter_map(|m| m.finished).max();
    let last_deleted = marks.iter().filter_map(|m| m.deleted).max();
    if let Some(tail) = span(last_finished, last_deleted) {
        figures.push(
            "last job finished -> last app deleted",
            tail.as_secs_f64(),
            Unit::Seconds,
        );
    }
}

/// With every slot taken from the start, the k-th acquisition after the
/// first `concurrent` waits for the k-th deletion: the gaps between them
/// (zero when the acquisition came first).
pub fn slot_gaps(marks: &[Marks], concurrent: usize) -> Vec<Duration> {
    let mut acquired: Vec<Instant> = marks.iter().filter_map(|m| m.handed_out).collect();
    let mut deleted: Vec<Instant> = marks.iter().filter_map(|m| m.deleted).collect();
    acquired.sort();
    deleted.sort();
    acquired
        .iter()
        .skip(concurrent)
        .zip(deleted.iter())
        .map(|(a, d)| a.saturating_duration_since(*d))
        .collect()
}

/// Every job's marks, from the world's records.
pub fn collect(world: &World) -> Vec<Marks> {
    let clever = world.clever().control();
    let epoch = clever.epoch();
    let at = |ms: u64| epoch + Duration::from_millis(ms);
    let mut app_of_job: BTreeMap<i64, String> = BTreeMap::new();
    let mut marks_of_app: BTreeMap<String, Marks> = BTreeMap::new();
    for app in clever.apps() {
        let Some(job) = job_id_of_app_name(&app.name) else {
            continue;
        };
        app_of_job.insert(job, app.id.clone());
        marks_of_app.insert(
            app.id.clone(),
            Marks {
                create_requested: Some(at(app.requested_ms)),
                created: Some(at(app.created_ms)),
                deleted: app.deleted_ms.map(at),
                ..Marks::default()
            },
        );
    }
    for request in clever.requests() {
        let app = match request.endpoint {
            CleverEndpoint::GitInfoRefs | CleverEndpoint::GitReceivePack => git_app(&request.path),
            CleverEndpoint::DeleteApp => request.path.rsplit('/').next(),
            _ => continue,
        };
        let Some(m) = app.and_then(|a| marks_of_app.get_mut(a)) else {
            continue;
        };
        let field = match request.endpoint {
            CleverEndpoint::GitInfoRefs => &mut m.first_look,
            CleverEndpoint::GitReceivePack => &mut m.push_arrived,
            _ => &mut m.delete_requested,
        };
        field.get_or_insert(at(request.t_ms));
    }
    for d in clever.deployments() {
        if let Some(m) = marks_of_app.get_mut(&d.app_id) {
            m.deployed.get_or_insert(at(d.t_ms));
        }
    }
    let coordinator = world.coordinator();
    let mut checks: BTreeMap<String, Vec<Instant>> = BTreeMap::new();
    for r in coordinator.requests_to(Endpoint::JobStatus) {
        if let (Some(token), Some(t)) = (r.header("job-token"), r.at) {
            checks.entry(token.to_owned()).or_default().push(t);
        }
    }
    coordinator
        .jobs()
        .iter()
        .map(|job| {
            let mut m = app_of_job
                .get(&job.id)
                .and_then(|app| marks_of_app.get(app))
                .copied()
                .unwrap_or_default();
            m.handed_out = job.times.handed_out;
            m.first_trace = job.times.first_trace;
            m.finished = job.times.finished;
            m.seen_finished = job.times.finished.and_then(|f| {
                checks
                    .get(&job.token)
                    .and_then(|ts| ts.iter().filter(|t| **t >= f).min().copied())
            });
            m
        })
        .collect()
}

/// The application of a Git path `/git/app_X.git/…`.
fn git_app(path: &str) -> Option<&str> {
    path.split('/')
        .find_map(|segment| segment.strip_suffix(".git"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_paths_name_their_application() {
        assert_eq!(
            git_app("/git/app_ab-1.git/git-receive-pack"),
            Some("app_ab-1")
        );
        assert_eq!(git_app("/v2/organisations/o/applications/a"), None);
    }

    #[test]
    fn a_freed_slot_is_matched_with_the_acquisition_it_allowed() {
        let t0 = Instant::now();
        let s = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let job = |handed_out, deleted| Marks {
            handed_out,
            deleted,
            ..Marks::default()
        };
        // two slots: jobs 3 and 4 wait for the deletions at 500 and 900 ms;
        // job 4 came before the second deletion (no wait)
        let marks = [
            job(s(0), s(900)),
            job(s(10), s(500)),
            job(s(700), s(2000)),
            job(s(850), s(2100)),
        ];
        let gaps = slot_gaps(&marks, 2);
        assert_eq!(
            gaps,
            vec![Duration::from_millis(200), Duration::ZERO],
            "the third acquisition waited 200 ms after the first deletion"
        );
    }

    #[test]
    fn spans_are_left_out_when_a_mark_is_missing() {
        let t0 = Instant::now();
        let m = Marks {
            handed_out: Some(t0),
            create_requested: Some(t0 + Duration::from_millis(120)),
            ..Marks::default()
        };
        let mut figures = Figures::default();
        push_figures(&mut figures, &[m], 1);
        assert_eq!(
            figures.get("  acquired -> create requested mean"),
            Some(0.12)
        );
        assert_eq!(figures.get("  push arrived -> deployed (push) mean"), None);
        assert_eq!(figures.get("last job finished -> last app deleted"), None);
    }
}
