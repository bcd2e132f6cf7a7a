//! Runner lifecycle calls: register with a registration token,
//! verify a runner token, unregister; and the runner manager `system_id`
//! kept in a file beside the state file.

use super::client::{api_base, Call, ClientConfigError, Http, Timeouts};
use super::errors::{rejected, status_error};
use super::reply::Reply;
use crate::secret::Secret;
use awc::http::Method;
use paas_actors::ports::CoordinatorError;
use paas_actors::state::write_atomic;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use std::io;
use std::path::{Path, PathBuf};

/// Name of the system id file (as gitlab-runner's, beside its config).
pub const SYSTEM_ID_FILE: &str = ".runner_system_id";

/// Answer of a registration.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredRunner {
    /// Runner id (absent on old GitLab).
    pub id: Option<i64>,
    /// The new runner authentication token.
    pub token: Secret,
    /// Token expiry (ISO 8601), if the token expires.
    pub token_expires_at: Option<String>,
}

/// Answer of a verification.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedRunner {
    /// Runner id (absent on old GitLab, which answers a plain `200`).
    pub id: Option<i64>,
    /// Token expiry (ISO 8601), if known and the token expires.
    pub token_expires_at: Option<String>,
}

/// The `/runners` endpoints of one coordinator.
#[derive(Debug)]
pub struct RunnersApi {
    api: String,
    http: Http,
}

fn opt_string(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl RunnersApi {
    /// A client for the coordinator at `url` (validated).
    pub fn new(url: &str, timeouts: Timeouts) -> Result<RunnersApi, ClientConfigError> {
        Ok(RunnersApi::from_parts(api_base(url)?, timeouts))
    }

    pub(crate) fn from_parts(api: String, timeouts: Timeouts) -> RunnersApi {
        RunnersApi {
            api,
            http: Http::new(timeouts),
        }
    }

    /// Trusts the CA certificates of `ca_file` too (a runner section's
    /// `tls-ca-file`).
    pub fn with_ca_file(mut self, ca_file: Option<std::path::PathBuf>) -> RunnersApi {
        self.http = self.http.with_ca_file(ca_file);
        self
    }

    /// Sends `body` to `<api>/<path>` (`what`: the call's name in errors).
    async fn send_json(
        &self,
        what: &'static str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, CoordinatorError> {
        let url = format!("{}/{path}", self.api);
        let call = Call::new(what, method, url, self.http.timeouts.request).json(body);
        self.http.call(call).await
    }

    /// `POST /runners` with a registration token. `paused` is sent as the
    /// `active` flag, which every GitLab version understands (the reference
    /// registers paused runners this way).
    pub async fn register(
        &self,
        registration_token: &Secret,
        description: &str,
        paused: bool,
    ) -> Result<RegisteredRunner, CoordinatorError> {
        let body = json!({
            "info": {"name": description},
            "description": description,
            "active": !paused,
            "token": registration_token.expose(),
        });
        let reply = self
            .send_json("runner registration", Method::POST, "runners", &body)
            .await?;
        let name = reply.name();
        let secrets = [registration_token.expose()];
        match reply.status {
            200 | 201 => {
                let v: Value = reply.json()?;
                let token =
                    opt_string(&v, "token").ok_or_else(|| CoordinatorError::Unexpected {
                        detail: format!("{name}: answer has no token"),
                    })?;
                Ok(RegisteredRunner {
                    id: v.get("id").and_then(Value::as_i64),
                    token: Secret::new(token),
                    token_expires_at: opt_string(&v, "token_expires_at"),
                })
            }
            403 => {
                let hint = if registration_token.expose().starts_with("glrt-") {
                    "this is a runner authentication token, not a registration token: verify it instead"
                } else {
                    "the registration token is invalid"
                };
                Err(rejected(name, &reply, &secrets, hint))
            }
            410 => Err(rejected(
                name,
                &reply,
                &secrets,
                "registration tokens are disabled on this instance: create the runner in \
                 GitLab and use its glrt- token",
            )),
            _ => Err(status_error(name, &reply, &secrets)),
        }
    }

    /// `POST /runners/verify`: is this runner token valid?
    pub async fn verify(
        &self,
        token: &Secret,
        system_id: Option<&str>,
    ) -> Result<VerifiedRunner, CoordinatorError> {
        let mut body = json!({"token": token.expose()});
        if let (Some(id), Some(obj)) = (system_id, body.as_object_mut()) {
            obj.insert("system_id".to_owned(), json!(id));
        }
        let reply = self
            .send_json("runner verification", Method::POST, "runners/verify", &body)
            .await?;
        let name = reply.name();
        let secrets = [token.expose()];
        match reply.status {
            200 => {
                // Old GitLab answers a plain `200`.
                let v = serde_json::from_slice::<Value>(&reply.body).unwrap_or(Value::Null);
                Ok(VerifiedRunner {
                    id: v.get("id").and_then(Value::as_i64),
                    token_expires_at: opt_string(&v, "token_expires_at"),
                })
            }
            403 | 422 => Err(rejected(
                name,
                &reply,
                &secrets,
                "the runner token is invalid or the runner was removed",
            )),
            _ => Err(status_error(name, &reply, &secrets)),
        }
    }

    /// Unregisters: `glrt-` tokens with a system id delete only this runner
    /// manager (`DELETE /runners/managers`), others the whole runner
    /// (`DELETE /runners`), as gitlab-runner does. A manager already gone is
    /// success.
    pub async fn unregister(
        &self,
        token: &Secret,
        system_id: Option<&str>,
    ) -> Result<(), CoordinatorError> {
        let (path, body) = match system_id {
            Some(id) if token.expose().starts_with("glrt-") => (
                "runners/managers",
                json!({"token": token.expose(), "system_id": id}),
            ),
            _ => ("runners", json!({"token": token.expose()})),
        };
        let managers = path.ends_with("/managers");
        let reply = self
            .send_json("runner unregistration", Method::DELETE, path, &body)
            .await?;
        let name = reply.name();
        let secrets = [token.expose()];
        match reply.status {
            200 | 204 => Ok(()),
            404 if managers => Ok(()),
            403 => Err(rejected(
                name,
                &reply,
                &secrets,
                "the runner token is invalid or the runner was already removed",
            )),
            _ => Err(status_error(name, &reply, &secrets)),
        }
    }
}

impl RunnersApi {
    /// `GET /personal_access_tokens/self`: the scopes of a personal (or
    /// administrator) access token, such as the trace-watch token.
    pub async fn token_scopes(&self, token: &Secret) -> Result<Vec<String>, CoordinatorError> {
        let url = format!("{}/personal_access_tokens/self", self.api);
        let call = Call::new("token check", Method::GET, url, self.http.timeouts.request)
            .header("PRIVATE-TOKEN", token.expose());
        let reply = self.http.call(call).await?;
        let name = reply.name();
        let secrets = [token.expose()];
        match reply.status {
            200 => {
                let v: Value = reply.json()?;
                Ok(v.get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default())
            }
            401 | 403 => Err(rejected(
                name,
                &reply,
                &secrets,
                "the token is invalid, expired or revoked",
            )),
            _ => Err(status_error(name, &reply, &secrets)),
        }
    }
}

/// True for `s_` or `r_` + 12 ASCII alphanumerics.
fn valid_system_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("r_").or_else(|| s.strip_prefix("s_")) else {
        return false;
    };
    rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The system id file beside a state file.
pub fn system_id_path(state_file: &Path) -> PathBuf {
    state_file.with_file_name(SYSTEM_ID_FILE)
}

/// Reads the runner manager id from `path`, or creates one (`r_` + 12
/// random alphanumerics) and writes it there atomically. An unreadable
/// (invalid) content is replaced, as gitlab-runner does.
pub fn load_or_create_system_id(path: &Path) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(content) => {
            let id = content.trim();
            if valid_system_id(id) {
                return Ok(id.to_owned());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = format!("r_{}", Alphanumeric.sample_string(&mut rand::rng(), 12));
    write_atomic(path, format!("{id}\n").as_bytes())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids_are_created_once_and_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = system_id_path(&dir.path().join("state.json"));
        assert_eq!(path, dir.path().join(SYSTEM_ID_FILE));
        let id = load_or_create_system_id(&path).expect("create");
        assert!(valid_system_id(&id), "{id}");
        assert!(id.starts_with("r_"));
        assert_eq!(load_or_create_system_id(&path).expect("load"), id);
        std::fs::write(&path, "s_ABCdef123456\n").expect("write");
        assert_eq!(
            load_or_create_system_id(&path).expect("load"),
            "s_ABCdef123456"
        );
        std::fs::write(&path, "garbage é").expect("write");
        let replaced = load_or_create_system_id(&path).expect("replace");
        assert!(valid_system_id(&replaced));
        assert_ne!(replaced, "garbage é");
        let missing_dir = dir.path().join("nope").join(SYSTEM_ID_FILE);
        assert!(load_or_create_system_id(&missing_dir).is_err());
    }

    #[test]
    fn system_id_shape() {
        for (s, ok) in [
            ("r_abcdefABCDEF", true),
            ("s_000000000000", true),
            ("r_abc", false),
            ("x_abcdefABCDEF", false),
            ("r_abcdefABCDE-", false),
            ("r_abcdefABCDEé", false),
        ] {
            assert_eq!(valid_system_id(s), ok, "{s}");
        }
    }
}
