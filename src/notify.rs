//! systemd notifications (`Type=notify`): the datagrams of sd_notify(3),
//! written to `$NOTIFY_SOCKET` with std's `UnixDatagram`. It implements the
//! actors' `ServiceObserver`: `READY=1` once the state is loaded, the
//! executors checked and every runner's first reconciliation listing done;
//! `STATUS=` when the status line changes; `WATCHDOG=1` from the
//! supervisor's own tick, every half `$WATCHDOG_USEC`; `STOPPING=1` when
//! the drain begins. A failed send is ignored (systemd is then not
//! listening; the watchdog, if any, restarts the service).
//!
//! Start-up and reload too: `EXTEND_TIMEOUT_USEC=` each time a start-up
//! check waits to retry (so that `TimeoutStartSec=` counts from the last
//! sign of life, not from the start: the checks may retry for minutes);
//! `RELOADING=1` with `MONOTONIC_USEC=` when a reload begins and `READY=1`
//! when it ends. A refused reload keeps its reason in every `STATUS=` line
//! until a reload is applied. systemd fails a reload job on the exit code
//! of the unit's `ExecReload=` command, not on a notification (`ERRNO=`
//! only sets `StatusErrno`), so the unit runs `check` there as well
//! (deploy/heptapod-paas-runner.service).

use crate::preflight::StartupProgress;
use crate::reload::ReloadObserver;
use paas_actors::{ServiceObserver, ServiceStatus};
use std::cell::RefCell;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The longest reason of a refused reload kept in the status line.
pub const MAX_REFUSAL_CHARS: usize = 300;

/// The notifier of the service started by systemd.
#[derive(Debug)]
pub struct SystemdNotifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
    /// The last status line sent, for the end of a reload.
    last_status: RefCell<Option<String>>,
    /// Why the last reload was refused, until one is applied.
    refusal: RefCell<Option<String>>,
}

/// Why `$NOTIFY_SOCKET` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use NOTIFY_SOCKET {path:?}: {source}")]
pub struct NotifyError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Pure: the watchdog period (`$WATCHDOG_USEC`) when it is meant for this
/// process (`$WATCHDOG_PID` absent or equal to `pid`).
pub fn watchdog_period(
    usec: Option<&str>,
    watchdog_pid: Option<&str>,
    pid: u32,
) -> Option<Duration> {
    if let Some(p) = watchdog_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

impl SystemdNotifier {
    /// From the environment systemd sets; `Ok(None)` outside systemd
    /// (no `$NOTIFY_SOCKET`).
    pub fn from_env() -> Result<Option<SystemdNotifier>, NotifyError> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let path = path.to_string_lossy().into_owned();
        let err = |source| NotifyError {
            path: path.clone(),
            source,
        };
        let addr = match path.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).map_err(err)?,
            None => SocketAddr::from_pathname(&path).map_err(err)?,
        };
        let socket = UnixDatagram::unbound().map_err(err)?;
        let watchdog = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Ok(Some(SystemdNotifier::new(socket, addr, watchdog)))
    }

    fn new(socket: UnixDatagram, addr: SocketAddr, watchdog: Option<Duration>) -> Self {
        SystemdNotifier {
            socket,
            addr,
            watchdog,
            last_status: RefCell::new(None),
            refusal: RefCell::new(None),
        }
    }

    /// How often the supervisor must say it is alive: half the watchdog
    /// period, when systemd set one.
    pub fn alive_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    fn send(&self, message: &str) {
        let _ = self.socket.send_to_addr(message.as_bytes(), &self.addr);
    }
}

/// Pure: a status line as one `STATUS=` field (no newline inside), with
/// the reason of a refused reload after it.
fn status_field(status: &str, refusal: Option<&str>) -> String {
    let line = match refusal {
        None => status.to_string(),
        Some(why) => format!("{status}; last reload refused: {why}"),
    };
    format!("STATUS={}", line.replace('\n', " "))
}

/// Pure: a refusal's reason on one line, at most [`MAX_REFUSAL_CHARS`]
/// characters (a configuration's problems are one per line).
pub fn refusal_text(why: &str) -> String {
    let line = why
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(MAX_REFUSAL_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Pure: the datagram that begins a reload.
pub fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\nSTATUS=reloading the configuration")
}

/// The monotonic clock in microseconds, as `MONOTONIC_USEC=` wants it
/// (systemd compares it with the time it sent the reload signal).
fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .ok()
        .and_then(|t| {
            let secs = u64::try_from(t.tv_sec()).ok()?;
            let micros = u64::try_from(t.tv_nsec()).ok()? / 1_000;
            secs.checked_mul(1_000_000)?.checked_add(micros)
        })
        .unwrap_or(0)
}

impl SystemdNotifier {
    /// Sends `STATUS=` for `status`, remembering it.
    fn send_status(&self, prefix: &str, status: String) {
        let field = status_field(&status, self.refusal.borrow().as_deref());
        self.last_status.replace(Some(status));
        self.send(&format!("{prefix}{field}"));
    }
}

impl ServiceObserver for SystemdNotifier {
    fn ready(&self, status: &ServiceStatus) {
        self.send_status("READY=1\n", status.to_string());
    }

    fn status(&self, status: &ServiceStatus) {
        self.send_status("", status.to_string());
    }

    fn alive(&self) {
        self.send("WATCHDOG=1");
    }

    fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining");
    }
}

impl StartupProgress for SystemdNotifier {
    fn waiting(&self, next_sign_within: Duration, what: &str) {
        let usec = u64::try_from(next_sign_within.as_micros()).unwrap_or(u64::MAX);
        self.send(&format!(
            "EXTEND_TIMEOUT_USEC={usec}\nSTATUS={}",
            what.replace('\n', " ")
        ));
    }
}

impl ReloadObserver for SystemdNotifier {
    fn reloading(&self) {
        self.send(&reloading_message(monotonic_usec()));
    }

    fn reloaded(&self, refused: Option<&str>) {
        self.refusal.replace(refused.map(refusal_text));
        let status = self
            .last_status
            .borrow()
            .clone()
            .unwrap_or_else(|| "running".to_string());
        self.send_status("READY=1\n", status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_only_for_this_pid() {
        let half = Some(Duration::from_secs(30));
        assert_eq!(watchdog_period(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_period(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(None, None, 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("x"), None, 7), None);
    }

    #[test]
    fn datagrams_reach_the_socket() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = SystemdNotifier::new(
            UnixDatagram::unbound().expect("socket"),
            SocketAddr::from_pathname(&path).expect("address"),
            Some(Duration::from_secs(2)),
        );
        assert_eq!(notifier.alive_interval(), Some(Duration::from_secs(1)));
        let status = ServiceStatus {
            jobs: 1,
            used_weight: 2.0,
            quota: 4.0,
            provisioning: 0,
            standby: 0,
        };
        notifier.ready(&status);
        notifier.alive();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(
            &buf[..n],
            b"READY=1\nSTATUS=1 jobs, weight 2.00/4.00, 0 provisioning"
        );
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        let mut next = || {
            let n = listener.recv(&mut buf).expect("recv");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        notifier.reloading();
        let begin = next();
        let usec = begin
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|rest| rest.split('\n').next())
            .and_then(|n| n.parse::<u64>().ok());
        assert!(usec.is_some_and(|u| u > 0), "{begin:?}");
        notifier.reloaded(Some("c.toml:3: `concurrent`: expected\na count"));
        assert_eq!(
            next(),
            "READY=1\nSTATUS=1 jobs, weight 2.00/4.00, 0 provisioning; last reload refused: \
             c.toml:3: `concurrent`: expected a count"
        );
        notifier.status(&status);
        assert!(next().ends_with("last reload refused: c.toml:3: `concurrent`: expected a count"));
        notifier.reloading();
        next();
        notifier.reloaded(None);
        assert_eq!(
            next(),
            "READY=1\nSTATUS=1 jobs, weight 2.00/4.00, 0 provisioning"
        );
        notifier.waiting(Duration::from_secs(12), "start-up checks: retrying");
        assert_eq!(
            next(),
            "EXTEND_TIMEOUT_USEC=12000000\nSTATUS=start-up checks: retrying"
        );
    }

    #[test]
    fn refusals_are_one_bounded_line() {
        assert_eq!(refusal_text("a\n  b\n\nc"), "a b c");
        let long = "x".repeat(MAX_REFUSAL_CHARS + 10);
        let cut = refusal_text(&long);
        assert_eq!(cut.chars().count(), MAX_REFUSAL_CHARS + 1);
        assert!(cut.ends_with('…'));
        let accents = "é".repeat(MAX_REFUSAL_CHARS * 2);
        assert_eq!(
            refusal_text(&accents).chars().count(),
            MAX_REFUSAL_CHARS + 1
        );
    }
}
