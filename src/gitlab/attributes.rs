//! The administrator reads of clever-docker's multi-tenant mode, all with
//! the attributes token: a project's namespace (`GET /projects/:id`) and
//! a group's custom attributes (`GET /groups/:id/custom_attributes`), where
//! a job's Clever organisation and token are found.

use super::client::Call;
use super::errors::{rejected, status_error};
use super::GitlabCoordinator;
use crate::executors::clever::{GroupAttributes, GroupInfo};
use awc::http::Method;
use paas_actors::ports::{CoordinatorError, PortFuture};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// Everything but RFC 3986 unreserved characters is encoded, `/` included.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, percent-encoded (`a/b` → `a%2Fb`).
pub(crate) fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[derive(Deserialize)]
struct Attribute {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Namespace {
    full_path: String,
}

#[derive(Deserialize)]
struct Group {
    id: i64,
    full_path: String,
    parent_id: Option<i64>,
}

#[derive(Deserialize)]
struct Project {
    namespace: Namespace,
}

impl GitlabCoordinator {
    /// `GET <api>/<path>` with the attributes token: the 200 body decoded,
    /// or an error (`not_found` describes a 404).
    async fn admin_get<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        path: String,
        not_found: impl FnOnce() -> String,
    ) -> Result<T, CoordinatorError> {
        let Some(token) = &self.attributes_token else {
            return Err(CoordinatorError::Rejected {
                detail: format!(
                    "{what}: no attributes token configured \
                     (cc_gitlab_namespace_attributes_token)"
                ),
            });
        };
        let url = format!("{}/{path}", self.api);
        let call = Call::new(what, Method::GET, url, self.http.timeouts.request)
            .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(call).await?;
        let name = reply.name();
        match reply.status {
            200 => reply.json(),
            401 | 403 => Err(rejected(
                name,
                &reply,
                &self.secrets(None),
                "the attributes token must be an administrator token with read_api",
            )),
            404 => Err(CoordinatorError::Unexpected {
                detail: format!("{name}: {}", not_found()),
            }),
            _ => Err(status_error(name, &reply, &self.secrets(None))),
        }
    }

    async fn group_attributes_impl(
        &self,
        group_path: &str,
    ) -> Result<Vec<(String, String)>, CoordinatorError> {
        let attrs: Vec<Attribute> = self
            .admin_get(
                "group custom attributes",
                format!("groups/{}/custom_attributes", encode_segment(group_path)),
                || format!("group {group_path:?} not found (a user namespace is not a group)"),
            )
            .await?;
        Ok(attrs.into_iter().map(|a| (a.key, a.value)).collect())
    }

    async fn project_namespace_impl(&self, project_id: i64) -> Result<String, CoordinatorError> {
        let project: Project = self
            .admin_get("project", format!("projects/{project_id}"), || {
                format!("project {project_id} not found")
            })
            .await?;
        Ok(project.namespace.full_path)
    }

    async fn group_by_path_impl(&self, path: &str) -> Result<GroupInfo, CoordinatorError> {
        let group: Group = self
            .admin_get("group", format!("groups/{}", encode_segment(path)), || {
                format!("group {path:?} not found (a user namespace is not a group)")
            })
            .await?;
        Ok(GroupInfo {
            id: group.id,
            full_path: group.full_path,
            parent_id: group.parent_id,
        })
    }
}

impl GroupAttributes for GitlabCoordinator {
    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>> {
        Box::pin(self.group_attributes_impl(group_path))
    }

    fn project_namespace(
        &self,
        project_id: i64,
    ) -> PortFuture<'_, Result<String, CoordinatorError>> {
        Box::pin(self.project_namespace_impl(project_id))
    }

    fn group_by_path<'a>(
        &'a self,
        path: &'a str,
    ) -> PortFuture<'a, Result<GroupInfo, CoordinatorError>> {
        Box::pin(self.group_by_path_impl(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_slashes_and_unicode() {
        assert_eq!(encode_segment("group"), "group");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert_eq!(encode_segment("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_segment("é-x_y.z~"), "%C3%A9-x_y.z~");
    }
}
