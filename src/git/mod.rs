//! Exchanges with deployment repositories over Git (git2):
//!
//! - `session`: what both share (remote URL without credentials, bounded
//!   credential callback, deadline, isolated bare repository,
//!   [`RemoteError`] classification);
//! - `workers`: the small pool of git worker threads both run on;
//! - `push`: the push of a job's deploy context to `master`, built in
//!   memory;
//! - `fetch`: the read-back of the `job.json` pushed there.

pub mod fetch;
pub mod push;
mod session;
mod workers;

pub use fetch::{
    fetch_job_json, fetch_job_json_async, JOB_FILE, MAX_FETCH_BYTES, MAX_JOB_FILE_BYTES,
};
pub use push::{
    push_context, push_context_async, push_files_async, PushError, PushOutcome, COMMITTER_EMAIL,
    COMMITTER_NAME, COMMIT_MESSAGE,
};
pub use session::{
    init_transport, is_loopback, same_origin, RemoteError, RemoteSchemes, RemoteUrl, DEPLOY_REF,
    MAX_CREDENTIAL_OFFERS, MAX_GIT_THREADS, MAX_TIMEOUT, SERVER_CONNECT_TIMEOUT, SERVER_IO_TIMEOUT,
};
