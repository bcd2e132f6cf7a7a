//! Placeholder for `crate::deploy` and `crate::git_push` (written by another
//! branch at the same time), with the agreed signatures. Removed as soon as
//! the real modules are on main; it never pushes anything.

/// Stand-in for `crate::deploy`.
pub mod deploy {
    use paas_actors::ports::Job;

    /// Stand-in for the build context (Dockerfile, runner.toml, job.json).
    pub struct BuildContext {
        _private: (),
    }

    /// Stand-in for the build context error.
    #[derive(Debug, thiserror::Error)]
    #[error("the build context is not implemented in this branch yet")]
    pub struct DeployError;

    impl BuildContext {
        /// Agreed constructor.
        pub fn new(
            _main_image: Option<&str>,
            _runner_toml: String,
            _job: &Job,
        ) -> Result<BuildContext, DeployError> {
            Ok(BuildContext { _private: () })
        }
    }
}

/// Stand-in for `crate::git_push`.
pub mod git_push {
    use super::deploy::BuildContext;
    use crate::secret::Secret;
    use std::time::Duration;

    /// Agreed outcome of a push.
    #[allow(dead_code)] // constructed by the real module only
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum PushOutcome {
        /// Pushed to `master`.
        Pushed,
        /// `master` already existed: launched earlier.
        AlreadyLaunched,
    }

    /// Stand-in for the push error.
    #[derive(Debug, thiserror::Error)]
    #[error("the git push is not implemented in this branch yet")]
    pub struct PushError;

    impl PushError {
        /// Agreed classification.
        pub fn is_retryable(&self) -> bool {
            false
        }
    }

    /// Agreed blocking push.
    pub fn push_context(
        _ctx: &BuildContext,
        _remote_url: &str,
        _user: &str,
        _password: &Secret,
        _timeout: Duration,
    ) -> Result<PushOutcome, PushError> {
        Err(PushError)
    }
}
