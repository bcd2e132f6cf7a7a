//! Process signals, in one place, installed before the first start-up
//! check so that no signal meets its default action (SIGTERM killing the
//! process with 143, SIGHUP too) while the checks run or retry.
//!
//! SIGTERM or SIGINT: graceful stop (drain, bounded by `shutdown_timeout`).
//! A second one: forced stop, the state is written at once with what is
//! known. SIGQUIT: finish and exit: no more polling, every tracked job is
//! supervised until it is over and its resource deleted, then exit 0, with
//! no deadline; a SIGTERM or SIGINT meanwhile stops as above, a second
//! SIGQUIT is ignored (logged). During the start-up checks, any of the
//! three ends the start-up ([`StopRequest`]): the process exits 0 without
//! starting the service, its state file kept. SIGHUP: the
//! configuration file is read again, off this thread, and what may change
//! live is applied (`crate::reload`); during the start-up checks the
//! request is kept and served once the service runs. SIGUSR1: log the
//! whole state, secrets masked, when started with `--debug-signal`
//! (ignored with a log line otherwise).

use crate::reload::ReloadTrigger;
use paas_actors::service::ServiceHandle;
use slog::{info, warn, Logger};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// Whether a stop signal came, for the start-up to give up at once.
#[derive(Debug)]
pub struct StopRequest(watch::Receiver<bool>);

impl StopRequest {
    /// Completes once a stop signal has come (never if the signal task
    /// ended without one).
    pub async fn requested(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Installs the handlers on the current actix system.
pub fn install(
    handle: ServiceHandle,
    reloads: ReloadTrigger,
    debug_signal: bool,
    logger: Logger,
) -> std::io::Result<StopRequest> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    actix_rt::spawn(async move {
        let mut stops = 0u32;
        let mut finishing = false;
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                Some(()) = quit.recv() => "SIGQUIT",
                Some(()) = hup.recv() => "SIGHUP",
                Some(()) = usr1.recv() => "SIGUSR1",
                else => break,
            };
            if name == "SIGUSR1" {
                if debug_signal {
                    info!(logger, "SIGUSR1 received: dumping state");
                    handle.dump_state();
                } else {
                    warn!(logger, "SIGUSR1 received but ignored (start with --debug-signal to dump the state)");
                }
                continue;
            }
            if name == "SIGHUP" {
                reloads.request();
                continue;
            }
            // The start-up, if it still runs, gives up; the service, once
            // running, drains or finishes (its mailbox keeps the request).
            stop_tx.send_replace(true);
            if name == "SIGQUIT" {
                if finishing || stops > 0 {
                    info!(logger, "SIGQUIT ignored: the service is already stopping";
                          "signal" => name);
                } else {
                    finishing = true;
                    info!(logger, "SIGQUIT received: finishing every tracked job, then exit (SIGTERM stops sooner)";
                          "signal" => name);
                    handle.finish_jobs();
                }
                continue;
            }
            stops += 1;
            if stops == 1 {
                info!(logger, "stop signal received: graceful shutdown (a second signal forces it)"; "signal" => name);
                handle.drain();
            } else {
                warn!(logger, "second stop signal: forcing shutdown, writing state now"; "signal" => name);
                handle.force_stop();
            }
        }
    });
    Ok(StopRequest(stop_rx))
}
