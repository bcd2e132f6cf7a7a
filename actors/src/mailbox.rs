//! One way to await an answer from another actor: a [`MailboxError`] (the
//! actor stopped, or its mailbox is closed) is logged once, here, and the
//! caller gets `None` to decide what "no answer" means for it.

use actix::MailboxError;
use std::future::Future;

/// Awaits `request` (an `Addr::send` or `Recipient::send`); on a mailbox
/// error logs `"actor unreachable"` with `to` (the actor asked) and returns
/// `None`.
pub(crate) async fn answer<R>(
    request: impl Future<Output = Result<R, MailboxError>>,
    to: &'static str,
    log: &slog::Logger,
) -> Option<R> {
    match request.await {
        Ok(r) => Some(r),
        Err(e) => {
            slog::warn!(log, "actor unreachable"; "to" => to, "error" => %e);
            None
        }
    }
}
