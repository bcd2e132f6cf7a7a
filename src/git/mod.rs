//! Exchanges with deployment repositories over Git (git2): the push of a
//! job's deploy context (`push`) and the read-back of its `job.json`
//! (`fetch`).

pub mod fetch;
pub mod push;

pub use fetch::{fetch_job_json, JOB_FILE, MAX_JOB_FILE_BYTES};
pub use push::{
    push_context, PushError, PushOutcome, RemoteError, COMMITTER_EMAIL, COMMITTER_NAME,
    COMMIT_MESSAGE, DEPLOY_REF, MAX_CREDENTIAL_OFFERS, MAX_TIMEOUT,
};
