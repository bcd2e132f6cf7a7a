//! systemd notifications (`Type=notify`): the datagrams of sd_notify(3),
//! written to `$NOTIFY_SOCKET` with std's `UnixDatagram`. It implements the
//! actors' `ServiceObserver`: `READY=1` once the state is loaded, the
//! executors checked and every runner's first reconciliation listing done;
//! `STATUS=` when the status line changes; `WATCHDOG=1` from the
//! supervisor's own tick, every half `$WATCHDOG_USEC`; `STOPPING=1` when
//! the drain begins. A failed send is ignored (systemd is then not
//! listening; the watchdog, if any, restarts the service).

use paas_actors::observer::{ServiceObserver, ServiceStatus};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The notifier of the service started by systemd.
#[derive(Debug)]
pub struct SystemdNotifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
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
        Ok(Some(SystemdNotifier {
            socket,
            addr,
            watchdog,
        }))
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

/// Pure: a status line as one `STATUS=` field (no newline inside).
fn status_field(status: &ServiceStatus) -> String {
    format!("STATUS={}", status.to_string().replace('\n', " "))
}

impl ServiceObserver for SystemdNotifier {
    fn ready(&self, status: &ServiceStatus) {
        self.send(&format!("READY=1\n{}", status_field(status)));
    }

    fn status(&self, status: &ServiceStatus) {
        self.send(&status_field(status));
    }

    fn alive(&self) {
        self.send("WATCHDOG=1");
    }

    fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining");
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
        let notifier = SystemdNotifier {
            socket: UnixDatagram::unbound().expect("socket"),
            addr: SocketAddr::from_pathname(&path).expect("address"),
            watchdog: Some(Duration::from_secs(2)),
        };
        assert_eq!(notifier.alive_interval(), Some(Duration::from_secs(1)));
        let status = ServiceStatus {
            jobs: 1,
            used_weight: 2.0,
            quota: 4.0,
            provisioning: 0,
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
    }
}
