//! Exchanges with deployment repositories over Git:
//!
//! - `push`: the push of a job's deploy context to `master`: the commit
//!   built in memory with git2, sent over smart HTTP with the runner's
//!   awc client, on the caller's thread;
//! - `pack`: the pack file of that push (uncompressed, no compressor);
//! - `smart_http`: the receive-pack protocol's parsing and request body,
//!   without I/O;
//! - `fetch`: the read-back of the `job.json` pushed there, with libgit2
//!   on a git worker thread;
//! - `session`: the remote URL without credentials and [`RemoteError`]
//!   (both), the fetch's bounded credential callback, deadline, isolated
//!   bare repository and libgit2 error classification;
//! - `workers`: the small pool of git worker threads the fetch runs on.

pub mod fetch;
pub mod pack;
pub mod push;
mod session;
pub mod smart_http;
mod workers;

pub use fetch::{
    fetch_job_json, fetch_job_json_async, JOB_FILE, MAX_FETCH_BYTES, MAX_JOB_FILE_BYTES,
};
pub use push::{
    push_client, push_context, push_context_async, push_files_async, PushError, PushOutcome,
    COMMITTER_EMAIL, COMMITTER_NAME, COMMIT_MESSAGE, MAX_CONCURRENT_PUSHES,
};
pub use session::{
    init_transport, is_loopback, same_origin, RemoteError, RemoteSchemes, RemoteUrl, DEPLOY_REF,
    MAX_CREDENTIAL_OFFERS, MAX_GIT_THREADS, MAX_TIMEOUT, SERVER_CONNECT_TIMEOUT, SERVER_IO_TIMEOUT,
};
