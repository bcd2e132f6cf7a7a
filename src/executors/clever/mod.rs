//! clever-docker executor: Clever Cloud API client and the `Paas` port over
//! it (issue 5).

use paas_actors::ports::{CoordinatorError, PortFuture};

/// Custom attributes of a GitLab group, as `(key, value)` pairs.
///
/// Multi-tenant mode finds a job's Clever organisation and token in the
/// custom attributes of its top-level group. The GitLab client implements
/// this (`GET /groups/:path/custom_attributes` with the attributes token);
/// the clever executor consumes it.
pub trait GroupAttributes {
    /// All custom attributes of the group whose full path is `group_path`
    /// (URL-encoding is the implementation's job).
    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>>;
}
