//! Deploy context: the `Dockerfile`, `runner.toml` and `job.json` that make
//! a PAAS Docker host run one job.
//!
//! The clever-docker executor pushes these three files to the application's
//! Git repository (see [`crate::git::push`]); local-docker builds an image
//! from them. The image runs the inner Heptapod Runner, which executes the
//! already-acquired job with `gitlab-runner exec-fetched-job`.
//!
//! Architecture invariant: building a context is pure (no I/O but
//! [`BuildContext::write_to`]); `job.json` is the coordinator's payload with
//! only the dependency-proxy rewrite applied, every other field and the key
//! order untouched.

pub mod dependency_proxy;
pub mod expand;
pub mod image_name;

use paas_actors::ports::Job;
use std::fmt;
use std::path::Path;

/// Main image of the reference 0.6.3 (`DockerBuildHelper.base_image`): the
/// Heptapod Runner image of the same version.
pub const DEFAULT_MAIN_IMAGE: &str =
    "registry.heptapod.net:443/heptapod/heptapod-runner/runner:0.6.3";

/// Where the inner runner finds its files in the image.
pub const CONFIG_DIR: &str = "/etc/gitlab-runner";

/// File names of the context, in the order of [`BuildContext::files`].
pub const FILE_NAMES: [&str; 3] = ["Dockerfile", "runner.toml", "job.json"];

/// Why a deploy context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The configured main image cannot go on a `FROM` line.
    #[error(
        "invalid heptapod_runner_main_image {image:?}: must be non-empty, without whitespace or control characters"
    )]
    InvalidMainImage {
        /// The offending value (configuration, not a secret).
        image: String,
    },
    /// An image or service name of the payload is longer than
    /// [`image_name::MAX_IMAGE_NAME_LEN`] bytes.
    #[error(
        "job {job_id}: the image name in `{field}` is {len} bytes long; at most {max} bytes are accepted",
        max = image_name::MAX_IMAGE_NAME_LEN
    )]
    ImageNameTooLong {
        /// The job.
        job_id: i64,
        /// Where the name is in the payload (`image.name`, `services[2].name`).
        field: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The dependency-proxy rewrite failed (an image name cannot be expanded).
    #[error("dependency proxy rewrite of job {job_id}: {source}")]
    DependencyProxy {
        /// The job.
        job_id: i64,
        /// Which name and why.
        source: dependency_proxy::DependencyProxyError,
    },
    /// The blocking task building the context did not complete.
    #[error("building the deploy context of job {job_id} failed: {message}")]
    Task {
        /// The job.
        job_id: i64,
        /// The join error (panic or cancellation).
        message: String,
    },
    /// The job payload could not be serialised (should not happen).
    #[error("cannot serialise the payload of job {job_id}: {source}")]
    Serialize {
        /// The job.
        job_id: i64,
        /// The serde error (never contains payload values).
        source: serde_json::Error,
    },
}

/// The three files of a deploy context, ready to push or write.
///
/// `runner_toml` and `job_json` hold secrets (runner and job tokens): the
/// `Debug` form masks them.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// The `Dockerfile`: `FROM` the main image, runs `exec-fetched-job`.
    pub dockerfile: String,
    /// Configuration of the inner runner (its `[[runners]]` section).
    pub runner_toml: String,
    /// The job payload after the dependency-proxy rewrite.
    pub job_json: String,
}

impl fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildContext")
            .field("dockerfile", &self.dockerfile)
            .field("runner_toml", &paas_actors::secret::MASK)
            .field("job_json", &paas_actors::secret::MASK)
            .finish()
    }
}

/// The Dockerfile for `main_image`.
///
/// Same lines as the reference 0.6.3 template, `ENV DEBUG="true"` included
/// (the inner runner's debug logs go to the PAAS application logs, which
/// operators of the Python runner rely on); the only difference is a space
/// after the last comma of the `ENTRYPOINT` array (same JSON array).
pub fn dockerfile(main_image: &str) -> String {
    format!(
        "FROM {main_image}\n\
         COPY runner.toml {CONFIG_DIR}/runner.toml\n\
         COPY job.json {CONFIG_DIR}/job.json\n\
         ENV DEBUG=\"true\"\n\
         ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \
         \"--config\", \"{CONFIG_DIR}/runner.toml\", \"{CONFIG_DIR}/job.json\"]\n"
    )
}

impl BuildContext {
    /// Builds the context of `job`: `main_image` (the config's
    /// `heptapod_runner_main_image`, else [`DEFAULT_MAIN_IMAGE`]),
    /// `runner_toml` (the inner runner configuration, as is), and the job
    /// payload after the dependency-proxy rewrite.
    pub fn new(
        main_image: Option<&str>,
        runner_toml: String,
        job: &Job,
    ) -> Result<BuildContext, DeployError> {
        Self::with_rewrites(main_image, runner_toml, job).map(|(ctx, _)| ctx)
    }

    /// [`BuildContext::with_rewrites`] on the blocking thread pool: the
    /// expansion of job-controlled names is bounded but not free, and must
    /// not hold the actor thread.
    pub async fn build_off_thread(
        main_image: Option<String>,
        runner_toml: String,
        job: Job,
    ) -> Result<(BuildContext, Vec<dependency_proxy::RewrittenImage>), DeployError> {
        let job_id = job.id;
        tokio::task::spawn_blocking(move || {
            Self::with_rewrites(main_image.as_deref(), runner_toml, &job)
        })
        .await
        .map_err(|e| DeployError::Task {
            job_id,
            message: e.to_string(),
        })?
    }

    /// Like [`BuildContext::new`], also returning the image names the
    /// dependency proxy rewrote (for the log). Refuses image and service
    /// names longer than [`image_name::MAX_IMAGE_NAME_LEN`] bytes.
    pub fn with_rewrites(
        main_image: Option<&str>,
        runner_toml: String,
        job: &Job,
    ) -> Result<(BuildContext, Vec<dependency_proxy::RewrittenImage>), DeployError> {
        let image = main_image.unwrap_or(DEFAULT_MAIN_IMAGE);
        if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(DeployError::InvalidMainImage {
                image: image.to_owned(),
            });
        }
        if let Some((field, len)) = image_name::overlong_name(&job.payload) {
            return Err(DeployError::ImageNameTooLong {
                job_id: job.id,
                field,
                len,
            });
        }
        let mut payload = (*job.payload).clone();
        let rewrites = dependency_proxy::rewrite(&mut payload).map_err(|source| {
            DeployError::DependencyProxy {
                job_id: job.id,
                source,
            }
        })?;
        let job_json =
            serde_json::to_string(&payload).map_err(|source| DeployError::Serialize {
                job_id: job.id,
                source,
            })?;
        let ctx = BuildContext {
            dockerfile: dockerfile(image),
            runner_toml,
            job_json,
        };
        Ok((ctx, rewrites))
    }

    /// The files as `(name, content)`: Dockerfile, runner.toml, job.json.
    pub fn files(&self) -> [(&'static str, &[u8]); 3] {
        let [dockerfile, runner_toml, job_json] = FILE_NAMES;
        [
            (dockerfile, self.dockerfile.as_bytes()),
            (runner_toml, self.runner_toml.as_bytes()),
            (job_json, self.job_json.as_bytes()),
        ]
    }

    /// Writes the three files into the existing directory `dir`
    /// (overwriting them).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (name, content) in self.files() {
            std::fs::write(dir.join(name), content)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(payload: serde_json::Value) -> Job {
        Job::from_payload(payload).expect("valid job")
    }

    #[test]
    fn dockerfile_matches_the_reference_template() {
        assert_eq!(
            dockerfile("img:1"),
            "FROM img:1\n\
             COPY runner.toml /etc/gitlab-runner/runner.toml\n\
             COPY job.json /etc/gitlab-runner/job.json\n\
             ENV DEBUG=\"true\"\n\
             ENTRYPOINT [\"/usr/bin/gitlab-runner\", \"exec-fetched-job\", \"--config\", \
             \"/etc/gitlab-runner/runner.toml\", \"/etc/gitlab-runner/job.json\"]\n"
        );
    }

    #[test]
    fn main_image_defaults_and_is_validated() {
        let j = job(json!({"id": 1, "token": "t"}));
        let cases: [(Option<&str>, Option<&str>); 6] = [
            (None, Some(DEFAULT_MAIN_IMAGE)),
            (Some("my.reg/runner:2"), Some("my.reg/runner:2")),
            (Some(""), None),
            (Some("img\nRUN rm -rf /"), None),
            (Some("img latest"), None),
            (Some("img\t"), None),
        ];
        for (given, expected) in cases {
            let result = BuildContext::new(given, String::new(), &j);
            match expected {
                Some(image) => {
                    let ctx = result.expect("valid image");
                    assert_eq!(ctx.dockerfile, dockerfile(image));
                    assert!(ctx.dockerfile.starts_with(&format!("FROM {image}\n")));
                }
                None => assert!(
                    matches!(result, Err(DeployError::InvalidMainImage { .. })),
                    "{given:?}"
                ),
            }
        }
    }

    #[test]
    fn job_json_keeps_order_and_fields_and_applies_the_proxy() {
        let payload = json!({"token": "jt", "id": 7, "zeta": 1, "alpha": {"b": 2, "a": 1},
            "variables": [{"key": "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX",
                           "value": "gl.test:443/g/dependency_proxy/containers"}],
            "image": {"name": "alpine:3", "entrypoint": null},
            "services": [{"name": "postgres:13", "alias": null}],
            "unicode": "é"});
        let (ctx, rewrites) =
            BuildContext::with_rewrites(None, "concurrent = 1\n".into(), &job(payload))
                .expect("context");
        let fields: Vec<&str> = rewrites.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["image.name", "services[0].name"]);
        assert_eq!(
            ctx.job_json,
            r#"{"token":"jt","id":7,"zeta":1,"alpha":{"b":2,"a":1},"variables":[{"key":"CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX","value":"gl.test:443/g/dependency_proxy/containers"}],"image":{"name":"gl.test:443/g/dependency_proxy/containers/library/alpine:3","entrypoint":null},"services":[{"name":"gl.test:443/g/dependency_proxy/containers/library/postgres:13","alias":"postgres"}],"unicode":"é"}"#
        );
        assert_eq!(ctx.runner_toml, "concurrent = 1\n");
    }

    #[test]
    fn without_proxy_job_json_is_the_payload() {
        let payload = json!({"id": 7, "token": "jt", "image": {"name": "alpine:3"},
                             "services": [{"name": "postgres:13", "alias": null}]});
        let ctx = BuildContext::new(None, String::new(), &job(payload.clone())).expect("context");
        let back: serde_json::Value = serde_json::from_str(&ctx.job_json).expect("json");
        assert_eq!(back, payload);
    }

    #[test]
    fn unexpandable_image_is_an_error_naming_job_and_field() {
        let payload = json!({"id": 9, "token": "jt", "image": {"name": "$X"},
            "variables": [{"key": "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX", "value": "p"},
                          {"key": "X", "value": "$X"}]});
        let err = BuildContext::new(None, String::new(), &job(payload)).expect_err("cycle");
        let text = err.to_string();
        assert!(
            text.contains("job 9") && text.contains("image.name"),
            "{text}"
        );
    }

    #[test]
    fn overlong_image_names_are_refused_with_the_field_and_limit() {
        let long = "a".repeat(image_name::MAX_IMAGE_NAME_LEN + 1);
        // As given, proxy or not.
        for variables in [
            json!([]),
            json!([{"key": dependency_proxy::PROXY_PREFIX_VARIABLE, "value": "p"}]),
        ] {
            let payload = json!({"id": 3, "token": "jt", "variables": variables,
                                 "services": [{"name": "redis"}, {"name": long}]});
            let err = BuildContext::new(None, String::new(), &job(payload)).expect_err("too long");
            assert!(
                matches!(&err, DeployError::ImageNameTooLong { job_id: 3, field, len }
                         if field == "services[1].name" && *len == long.len()),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("services[1].name") && text.contains("1024"),
                "{text}"
            );
        }
        // Short as given, too long once expanded or once proxied.
        let half = "b".repeat(image_name::MAX_IMAGE_NAME_LEN / 2 + 1);
        let cases = [
            json!([{"key": dependency_proxy::PROXY_PREFIX_VARIABLE, "value": "p"},
                   {"key": "H", "value": half}]),
            json!([{"key": dependency_proxy::PROXY_PREFIX_VARIABLE, "value": half},
                   {"key": "H", "value": half}]),
        ];
        for (variables, image) in cases.into_iter().zip(["$H$H", "$H"]) {
            let payload = json!({"id": 4, "token": "jt", "variables": variables,
                                 "image": {"name": image}});
            let err = BuildContext::new(None, String::new(), &job(payload)).expect_err("too long");
            assert!(
                matches!(&err, DeployError::DependencyProxy { job_id: 4, source }
                         if source.field == "image.name"
                            && source.source == expand::ExpandError::TooLong {
                                max: image_name::MAX_IMAGE_NAME_LEN }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn build_off_thread_gives_the_same_context() {
        let payload = json!({"id": 5, "token": "jt", "image": {"name": "alpine"}});
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (ctx, rewrites) = rt
            .block_on(BuildContext::build_off_thread(
                Some("img".into()),
                "a = 1\n".into(),
                job(payload.clone()),
            ))
            .expect("context");
        assert!(rewrites.is_empty());
        assert_eq!(
            ctx,
            BuildContext::new(Some("img"), "a = 1\n".into(), &job(payload)).expect("context")
        );
    }

    #[test]
    fn files_write_to_and_debug_masking() {
        let ctx = BuildContext::new(
            Some("img"),
            "token = \"glrt-secret\"\n".into(),
            &job(json!({"id": 1, "token": "job-secret"})),
        )
        .expect("context");
        let names: Vec<&str> = ctx.files().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, FILE_NAMES);
        let dir = tempfile::tempdir().expect("tempdir");
        ctx.write_to(dir.path()).expect("write");
        for (name, content) in ctx.files() {
            assert_eq!(std::fs::read(dir.path().join(name)).expect("read"), content);
        }
        let debug = format!("{ctx:?}");
        assert!(!debug.contains("glrt-secret") && !debug.contains("job-secret"));
        assert!(debug.contains("FROM img"));
    }
}
