//! Exchanges with deployment repositories over Git (git2):
//!
//! - `session`: what both share (remote URL without credentials, bounded
//!   credential callback, deadline, dedicated thread, isolated bare
//!   repository, [`RemoteError`] classification);
//! - `push`: the push of a job's deploy context to `master`;
//! - `fetch`: the read-back of the `job.json` pushed there.

pub mod fetch;
pub mod push;
mod session;

pub use fetch::{fetch_job_json, JOB_FILE, MAX_FETCH_BYTES, MAX_JOB_FILE_BYTES};
pub use push::{
    push_context, PushError, PushOutcome, COMMITTER_EMAIL, COMMITTER_NAME, COMMIT_MESSAGE,
};
pub use session::{RemoteError, DEPLOY_REF, MAX_CREDENTIAL_OFFERS, MAX_TIMEOUT};
