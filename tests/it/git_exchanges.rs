//! What the git tests (`deploy_push`, `deploy_push_http`, `git_fetch`)
//! share: a push and a fetch with a password given as text, their
//! deployment URL schemes and timeout as each test file sets them.

use heptapod_paas_runner::deploy::BuildContext;
use heptapod_paas_runner::git::{
    fetch_job_json, push_context, PushError, PushOutcome, RemoteError, RemoteSchemes,
};
use heptapod_paas_runner::secret::Secret;
use std::time::Duration;

/// Deployment URL schemes and timeout of one test file's exchanges.
#[derive(Clone, Copy)]
pub struct Exchanges {
    /// The URLs accepted.
    pub schemes: RemoteSchemes,
    /// Each exchange's timeout.
    pub timeout: Duration,
}

impl Exchanges {
    /// [`push_context`] of `ctx` to `url` as `user` / `password`.
    pub fn push(
        self,
        ctx: &BuildContext,
        url: &str,
        user: &str,
        password: &str,
    ) -> Result<PushOutcome, PushError> {
        let password = Secret::new(password);
        push_context(ctx, url, self.schemes, user, &password, self.timeout)
    }

    /// [`fetch_job_json`] of `url` as `user` / `password`.
    pub fn fetch(
        self,
        url: &str,
        user: &str,
        password: &str,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        let password = Secret::new(password);
        fetch_job_json(url, self.schemes, user, &password, self.timeout)
    }
}
