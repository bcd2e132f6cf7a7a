//! The actix System every command runs on: one thread for the actors and
//! the async I/O (a current-thread tokio runtime), plus tokio's blocking
//! pool, bounded here.
//!
//! What runs on the blocking pool: state file reads and writes, build
//! contexts (`src/deploy/mod.rs`), host name lookups of the HTTP clients
//! (`src/http_client.rs`: at most one per host at a time), temporary
//! directories and `docker` calls of the local-docker executor. All are short,
//! and two cores run at most two of them at once, so
//! [`MAX_BLOCKING_THREADS`] threads are enough; tasks beyond that wait in
//! tokio's queue instead of each starting a thread (tokio's default allows
//! 512). An idle blocking thread ends after [`BLOCKING_KEEP_ALIVE`].
//!
//! Threads of the process, by name (`/proc/PID/task/*/comm`):
//! the main thread (program name), `log` (the asynchronous log drain,
//! `src/logging.rs`), `blocking` (this pool), the git worker threads
//! of the fetches (`src/git/`), and with `listen_address` the monitoring server's
//! `actix-server acceptor` and one `actix-server worker 0`
//! (`src/monitoring.rs`).

use std::time::Duration;

/// Most threads of the blocking pool.
pub const MAX_BLOCKING_THREADS: usize = 4;

/// How long an idle blocking thread waits for work before it ends.
pub const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Name of the blocking pool's threads.
pub const BLOCKING_THREAD_NAME: &str = "blocking";

/// A new actix System on a current-thread runtime whose blocking pool has
/// at most [`MAX_BLOCKING_THREADS`] threads.
pub fn system() -> std::io::Result<actix_rt::SystemRunner> {
    system_with(MAX_BLOCKING_THREADS)
}

/// [`system`] with at most `max_blocking` blocking threads (at least one).
pub fn system_with(max_blocking: usize) -> std::io::Result<actix_rt::SystemRunner> {
    build(max_blocking, BLOCKING_THREAD_NAME)
}

fn build(max_blocking: usize, thread_name: &str) -> std::io::Result<actix_rt::SystemRunner> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(max_blocking.max(1))
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .thread_name(thread_name)
        .build()?;
    Ok(actix_rt::System::with_tokio_rt(move || runtime))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Live threads of this process named `name`.
    fn threads_named(name: &str) -> usize {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return 0;
        };
        tasks
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
            })
            .count()
    }

    #[test]
    fn blocking_work_beyond_the_bound_waits_on_named_threads_and_completes() {
        const TASKS: usize = 12;
        const BOUND: usize = 2;
        // a name of this test only: other tests' pools are not counted
        const NAME: &str = "blocking-test";
        let system = build(BOUND, NAME).expect("runtime");
        let running = Arc::new(AtomicUsize::new(0));
        let most_running = Arc::new(AtomicUsize::new(0));
        let most_threads = Arc::new(AtomicUsize::new(0));
        let names = system.block_on(async {
            let mut handles = Vec::new();
            for _ in 0..TASKS {
                let (running, most_running, most_threads) =
                    (running.clone(), most_running.clone(), most_threads.clone());
                handles.push(actix_rt::task::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most_running.fetch_max(now, Ordering::SeqCst);
                    most_threads.fetch_max(threads_named(NAME), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    std::thread::current().name().map(str::to_owned)
                }));
            }
            let mut names = Vec::new();
            for h in handles {
                names.push(h.await.expect("blocking task"));
            }
            names
        });
        assert_eq!(names.len(), TASKS);
        assert!(
            names.iter().all(|n| n.as_deref() == Some(NAME)),
            "{names:?}"
        );
        let most_running = most_running.load(Ordering::SeqCst);
        assert!(
            (1..=BOUND).contains(&most_running),
            "{most_running} tasks at once"
        );
        let most_threads = most_threads.load(Ordering::SeqCst);
        assert!(
            (1..=BOUND).contains(&most_threads),
            "{most_threads} threads"
        );
    }

    #[test]
    fn the_service_system_runs_blocking_work() {
        let system = system().expect("runtime");
        let name = system.block_on(async {
            actix_rt::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                .await
        });
        assert_eq!(
            name.expect("blocking task").as_deref(),
            Some(BLOCKING_THREAD_NAME)
        );
    }
}
