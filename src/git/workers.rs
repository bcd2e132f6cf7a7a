//! The git worker threads: a small pool, reused from one exchange to the
//! next, that runs the blocking libgit2 work of pushes and fetches.
//!
//! - At most `max` threads (one pool per process,
//!   [`crate::git::MAX_GIT_THREADS`]), started on demand: a task queued
//!   while no worker is idle starts one if fewer than `max` are alive.
//! - A worker with nothing to do for `idle_exit` ends, so an idle process
//!   holds no git thread.
//! - At most `max_queued` tasks wait for a worker; past that
//!   [`Workers::submit`] refuses.
//!
//! A worker runs one task at a time; a task stuck in libgit2 holds its
//! worker until libgit2 returns (the callers' deadlines are checked in
//! libgit2's callbacks, `src/git/session.rs`). A task that panics ends
//! without a result; its worker lives on.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Work for a git worker thread.
pub(crate) type Task = Box<dyn FnOnce() + Send + 'static>;

/// Why [`Workers::submit`] did not queue a task.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SubmitError {
    /// `max_queued` tasks already wait.
    #[error("{0} git exchanges already wait for a worker thread")]
    QueueFull(usize),
    /// No worker is alive and none could be started.
    #[error("cannot start a git worker thread: {0}")]
    Spawn(String),
}

/// A pool of git worker threads (see the module documentation).
pub(crate) struct Workers {
    name: &'static str,
    max: usize,
    max_queued: usize,
    idle_exit: Duration,
    state: Mutex<State>,
    queued: Condvar,
}

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    alive: usize,
    idle: usize,
}

impl Workers {
    /// A pool of at most `max` threads named `name`, each ending after
    /// `idle_exit` without work, with at most `max_queued` waiting tasks.
    pub(crate) const fn new(
        name: &'static str,
        max: usize,
        max_queued: usize,
        idle_exit: Duration,
    ) -> Workers {
        Workers {
            name,
            max,
            max_queued,
            idle_exit,
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                alive: 0,
                idle: 0,
            }),
            queued: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `task` for the next free worker, starting one if none is idle
    /// and fewer than `max` are alive.
    pub(crate) fn submit(&'static self, task: Task) -> Result<(), SubmitError> {
        let mut state = self.lock();
        if state.tasks.len() >= self.max_queued {
            return Err(SubmitError::QueueFull(state.tasks.len()));
        }
        let waiting_for_idle = state.tasks.len() + 1;
        if state.idle < waiting_for_idle && state.alive < self.max {
            let spawned = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || self.work());
            match spawned {
                Ok(_) => state.alive += 1,
                // The task can still wait for a living worker.
                Err(e) if state.alive == 0 => return Err(SubmitError::Spawn(e.to_string())),
                Err(_) => {}
            }
        }
        state.tasks.push_back(task);
        self.queued.notify_one();
        Ok(())
    }

    /// Threads alive now (busy or idle).
    #[cfg(test)]
    pub(crate) fn alive(&self) -> usize {
        self.lock().alive
    }

    /// Tasks waiting for a worker now.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.lock().tasks.len()
    }

    /// A worker's life: the next task, or an end after `idle_exit` without.
    fn work(&'static self) {
        loop {
            let task = {
                let mut state = self.lock();
                let idle_since = Instant::now();
                loop {
                    if let Some(task) = state.tasks.pop_front() {
                        break task;
                    }
                    let Some(left) = self.idle_exit.checked_sub(idle_since.elapsed()) else {
                        // Counted out under the same lock as the decision
                        // to end: no task is queued for a leaving worker.
                        state.alive = state.alive.saturating_sub(1);
                        return;
                    };
                    state.idle += 1;
                    state = self
                        .queued
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.idle -= 1;
                }
            };
            // A task that panics drops its reply sender (its caller sees
            // no result); the worker lives on.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Waits (bounded) until `probe()` is `expected`, then returns it.
    fn wait_for(probe: impl Fn() -> usize, expected: usize) -> usize {
        let started = Instant::now();
        while probe() != expected && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        probe()
    }

    #[test]
    fn threads_are_bounded_reused_and_end_when_idle() {
        static WORKERS: Workers = Workers::new("git-test", 2, 3, Duration::from_millis(300));
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = std::sync::Arc::new(Mutex::new(release_rx));
        let (done_tx, done_rx) = mpsc::channel::<std::thread::ThreadId>();
        let blocking = |release: std::sync::Arc<Mutex<mpsc::Receiver<()>>>,
                        done: mpsc::Sender<std::thread::ThreadId>|
         -> Task {
            Box::new(move || {
                let _ = release
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .recv_timeout(Duration::from_secs(5));
                let _ = done.send(std::thread::current().id());
            })
        };
        // Two busy workers, three tasks waiting: the pool is full.
        for queued in [0, 0, 1, 2, 3] {
            WORKERS
                .submit(blocking(release_rx.clone(), done_tx.clone()))
                .expect("queued");
            assert_eq!(wait_for(|| WORKERS.queued(), queued), queued);
        }
        assert_eq!(WORKERS.alive(), 2);
        assert_eq!(
            WORKERS.submit(Box::new(|| {})),
            Err(SubmitError::QueueFull(3))
        );
        let mut ran_on = std::collections::HashSet::new();
        for _ in 0..5 {
            release_tx.send(()).expect("release");
            ran_on.insert(
                done_rx
                    .recv_timeout(Duration::from_secs(5))
                    .expect("task ran"),
            );
        }
        assert!(ran_on.len() <= 2, "five tasks on {} threads", ran_on.len());
        assert_eq!(WORKERS.alive(), 2);
        assert_eq!(wait_for(|| WORKERS.alive(), 0), 0, "idle workers end");
        WORKERS
            .submit(blocking(release_rx.clone(), done_tx.clone()))
            .expect("queued");
        release_tx.send(()).expect("release");
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a new worker ran it");
    }

    #[test]
    fn a_task_that_panics_leaves_its_worker_alive() {
        static WORKERS: Workers = Workers::new("git-test", 1, 4, Duration::from_secs(5));
        let (tx, rx) = mpsc::channel::<std::thread::ThreadId>();
        let first = tx.clone();
        WORKERS
            .submit(Box::new(move || {
                let _ = first.send(std::thread::current().id());
                panic!("a task panics");
            }))
            .expect("queued");
        WORKERS
            .submit(Box::new(move || {
                let _ = tx.send(std::thread::current().id());
            }))
            .expect("queued");
        let panicked_on = rx.recv_timeout(Duration::from_secs(5)).expect("first ran");
        let next_on = rx.recv_timeout(Duration::from_secs(5)).expect("second ran");
        assert_eq!(panicked_on, next_on, "the same worker ran both");
        assert_eq!(WORKERS.alive(), 1);
    }
}
