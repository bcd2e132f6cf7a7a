//! File descriptors: the process's limit (`RLIMIT_NOFILE`) and how it is
//! shared, so that the monitoring port can never starve the runner.
//!
//! A descriptor is what everything takes: a state write (the temporary
//! file, the directory's fsync), an API call (a socket), a git transfer, a
//! connection to the monitoring endpoints. When the process holds as many
//! as its limit allows, the next `open()` or `connect()` fails, whichever
//! comes first: with an unbounded listener, connections anyone can open to
//! `listen_address` took them all, and state writes, polls and deletes
//! failed with "Too many open files".
//!
//! So, at start-up, the soft limit is raised to the hard limit (the unit
//! sets both with `LimitNOFILE=`; a shell's `ulimit -n` may set the soft
//! one only), and a [`Budget`] is drawn from it: the monitoring server
//! accepts at most [`Budget::monitoring_connections`] connections at once
//! (the acceptor stops accepting beyond that: further connections wait in
//! the kernel's backlog, which holds no descriptor of the process), and
//! [`Budget::reserve`] descriptors are kept for the runner's own work:
//! `/readyz` answers 503 when fewer are free.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::io;

/// Most connections the monitoring server holds at once, whatever the
/// limit (a Prometheus server, a load balancer's checks and an operator's
/// `list` need a handful).
pub const MAX_MONITORING_CONNECTIONS: usize = 64;

/// Fewest connections the monitoring server accepts at once.
const MIN_MONITORING_CONNECTIONS: usize = 4;

/// Most descriptors kept for the runner's own work.
const MAX_RESERVE: u64 = 256;

/// The descriptor limit and its shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit in force.
    pub limit: u64,
    /// Connections the monitoring server may hold at once.
    pub monitoring_connections: usize,
    /// Descriptors that must stay free for state writes and API calls;
    /// fewer is "not ready".
    pub reserve: u64,
}

impl Budget {
    /// The shares of `limit`: an eighth for the monitoring server (between
    /// [`MIN_MONITORING_CONNECTIONS`] and [`MAX_MONITORING_CONNECTIONS`]),
    /// a quarter (at most [`MAX_RESERVE`]) kept free for the runner, the
    /// rest for its ordinary work.
    pub fn for_limit(limit: u64) -> Budget {
        let eighth = usize::try_from(limit / 8).unwrap_or(usize::MAX);
        Budget {
            limit,
            monitoring_connections: eighth
                .clamp(MIN_MONITORING_CONNECTIONS, MAX_MONITORING_CONNECTIONS),
            reserve: (limit / 4).min(MAX_RESERVE),
        }
    }

    /// Descriptors free now, out of the limit; `None` when they cannot be
    /// counted (no `/proc`).
    pub fn free(&self) -> Option<u64> {
        match open_count() {
            Ok(open) => Some(self.limit.saturating_sub(open)),
            // Not even one descriptor to list them with: none free.
            Err(e) if is_exhausted(&e) => Some(0),
            Err(_) => None,
        }
    }

    /// The free descriptors when fewer than [`Budget::reserve`] are.
    pub fn below_reserve(&self) -> Option<u64> {
        self.free().filter(|&free| free < self.reserve)
    }
}

/// What [`raise_limit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    /// The soft limit found at start.
    pub before: u64,
    /// The soft limit in force now.
    pub now: u64,
}

/// Raises the soft descriptor limit to the hard one. Under the unit both
/// are already equal (and `setrlimit` is outside its system-call filter):
/// nothing is asked then.
pub fn raise_limit() -> io::Result<Raised> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft >= hard {
        return Ok(Raised {
            before: soft,
            now: soft,
        });
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Ok(Raised {
            before: soft,
            now: hard,
        }),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// The soft descriptor limit in force.
pub fn current_limit() -> io::Result<u64> {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft)
        .map_err(io::Error::from)
}

/// Descriptors this process holds now (the entries of `/proc/self/fd`,
/// the one listing them included).
pub fn open_count() -> io::Result<u64> {
    let mut n = 0u64;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// True for "Too many open files" (process or system).
pub fn is_exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::errno::Errno::EMFILE as i32
            || code == nix::errno::Errno::ENFILE as i32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_the_limit() {
        // (limit, monitoring connections, reserve)
        let table = [
            (65_536, 64, 256),
            (1_024, 64, 256),
            (512, 64, 128),
            (256, 32, 64),
            (128, 16, 32),
            (16, 4, 4),
            (0, 4, 0),
        ];
        for (limit, connections, reserve) in table {
            let b = Budget::for_limit(limit);
            assert_eq!(
                (b.monitoring_connections, b.reserve),
                (connections, reserve),
                "limit {limit}"
            );
        }
    }

    #[test]
    fn open_descriptors_are_counted() {
        let before = open_count().expect("count");
        let files: Vec<std::fs::File> = (0..5)
            .map(|_| tempfile::tempfile().expect("tempfile"))
            .collect();
        let during = open_count().expect("count");
        // Other tests' threads may open files meanwhile: at least ours.
        assert!(during >= before + 5, "{before} then {during}");
        drop(files);
        let budget = Budget::for_limit(current_limit().expect("limit"));
        assert!(budget.free().is_some_and(|f| f > 0));
        assert!(is_exhausted(&io::Error::from_raw_os_error(
            nix::errno::Errno::EMFILE as i32
        )));
        assert!(!is_exhausted(&io::Error::from_raw_os_error(
            nix::errno::Errno::ENOENT as i32
        )));
    }
}
