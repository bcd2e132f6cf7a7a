//! Group custom attributes (`GET /groups/:id/custom_attributes`),
//! used by clever-docker's multi-tenant mode to find a group's Clever
//! organisation and token.

use super::client::Call;
use super::errors::{rejected, status_error, CallName};
use super::GitlabCoordinator;
use crate::executors::clever::GroupAttributes;
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

impl GitlabCoordinator {
    async fn group_attributes_impl(
        &self,
        group_path: &str,
    ) -> Result<Vec<(String, String)>, CoordinatorError> {
        let Some(token) = &self.attributes_token else {
            return Err(CoordinatorError::Rejected {
                detail: "group custom attributes: no attributes token configured \
                         (cc_gitlab_namespace_attributes_token)"
                    .to_owned(),
            });
        };
        let url = format!(
            "{}/groups/{}/custom_attributes",
            self.api,
            encode_segment(group_path)
        );
        let call = Call::new(
            "group custom attributes",
            Method::GET,
            url.clone(),
            self.http.timeouts.request,
        )
        .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(call).await?;
        let name = CallName {
            what: "group custom attributes",
            method: "GET",
            url: &url,
        };
        match reply.status {
            200 => {
                let attrs: Vec<Attribute> = serde_json::from_slice(&reply.body).map_err(|e| {
                    CoordinatorError::Unexpected {
                        detail: format!("{name}: malformed answer: {e}"),
                    }
                })?;
                Ok(attrs.into_iter().map(|a| (a.key, a.value)).collect())
            }
            401 | 403 => Err(rejected(
                name,
                &reply,
                &self.secrets(None),
                "the attributes token must be an administrator token with read_api",
            )),
            404 => Err(CoordinatorError::Unexpected {
                detail: format!(
                    "{name}: group {group_path:?} not found (a user namespace is not a group)"
                ),
            }),
            _ => Err(status_error(name, &reply, &self.secrets(None))),
        }
    }
}

impl GroupAttributes for GitlabCoordinator {
    fn group_custom_attributes<'a>(
        &'a self,
        group_path: &'a str,
    ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>> {
        Box::pin(self.group_attributes_impl(group_path))
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
