//! Docker image names: splitting off the registry domain.
//!
//! Follows `splitDockerDomain` of Docker's reference normalisation
//! (`github.com/distribution/reference`, `normalize.go`), which the Python
//! reference (`split_docker_image_domain`) also follows:
//!
//! - the part before the first `/` is a domain when it contains `.` or `:`,
//!   is exactly `localhost`, or is not all lowercase; otherwise (and when
//!   there is no `/` at all) the image is on Docker Hub and the whole name is
//!   the remainder;
//! - `index.docker.io` is the legacy spelling of `docker.io`;
//! - a Docker Hub remainder without `/` is an official image: `library/` is
//!   prepended.
//!
//! The tag or digest, if any, stays in the remainder. No validation of the
//! name is attempted (the inner runner and Docker do that).

/// The canonical Docker Hub domain.
pub const DOCKER_HUB_DOMAIN: &str = "docker.io";

/// The legacy Docker Hub domain, normalised to [`DOCKER_HUB_DOMAIN`].
pub const LEGACY_DOCKER_HUB_DOMAIN: &str = "index.docker.io";

/// Namespace of Docker Hub's official images.
pub const OFFICIAL_NAMESPACE: &str = "library";

/// Longest image name (as given, expanded or proxied) a job may use, in
/// bytes. Docker refuses names over 255 characters, tags over 128 and
/// digests are 71 for sha256: this leaves room for unexpanded variables
/// while keeping every later step (expansion, logs, trace lines) small.
pub const MAX_IMAGE_NAME_LEN: usize = 1024;

/// An image name split into its registry domain and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitImageName {
    /// Registry domain, `docker.io` for Docker Hub (whatever the spelling).
    pub domain: String,
    /// Path (and tag/digest) inside the registry; `library/` prepended for
    /// official Docker Hub images.
    pub remainder: String,
}

impl SplitImageName {
    /// True when the image is on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.domain == DOCKER_HUB_DOMAIN
    }
}

/// Splits an image name (with or without tag) into domain and remainder,
/// normalising the Docker Hub domain. See the module documentation.
pub fn split_domain(name: &str) -> SplitImageName {
    let (mut domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DOCKER_HUB_DOMAIN {
        domain = DOCKER_HUB_DOMAIN.to_owned();
    }
    let remainder = if domain == DOCKER_HUB_DOMAIN && !remainder.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{remainder}")
    } else {
        remainder
    };
    SplitImageName { domain, remainder }
}

/// The first image or service name of a job payload (`image.name`,
/// `services[].name`) longer than [`MAX_IMAGE_NAME_LEN`] bytes, as
/// `(field, length)`.
pub fn overlong_name(payload: &serde_json::Value) -> Option<(String, usize)> {
    let image = payload
        .get("image")
        .and_then(|i| i.get("name"))
        .and_then(serde_json::Value::as_str)
        .map(|name| ("image.name".to_owned(), name.len()));
    let services = payload
        .get("services")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, s)| {
            let name = s.get("name")?.as_str()?;
            Some((format!("services[{i}].name"), name.len()))
        });
    image
        .into_iter()
        .chain(services)
        .find(|(_, len)| *len > MAX_IMAGE_NAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlong_names_are_found_by_field() {
        let long = "a".repeat(MAX_IMAGE_NAME_LEN + 1);
        let fits = "a".repeat(MAX_IMAGE_NAME_LEN);
        let cases = [
            (
                json!({"image": {"name": long}}),
                Some(("image.name", long.len())),
            ),
            (
                json!({"image": {"name": fits}, "services": [{"name": fits}]}),
                None,
            ),
            (
                json!({"image": {"name": "x"}, "services": [{"name": "y"}, "z", {"name": long}]}),
                Some(("services[2].name", long.len())),
            ),
            (json!({"image": "x", "services": {"name": long}}), None),
            (json!(null), None),
        ];
        for (payload, expected) in cases {
            let found = overlong_name(&payload);
            assert_eq!(
                found.as_ref().map(|(f, l)| (f.as_str(), *l)),
                expected,
                "{payload}"
            );
        }
    }

    #[test]
    fn splits_like_docker_reference_normalisation() {
        // (input, domain, remainder)
        let table = [
            // Docker Hub, official images
            ("postgres", "docker.io", "library/postgres"),
            ("postgres:13", "docker.io", "library/postgres:13"),
            (
                "postgres@sha256:abc",
                "docker.io",
                "library/postgres@sha256:abc",
            ),
            ("docker.io/postgres", "docker.io", "library/postgres"),
            (
                "index.docker.io/postgres:13",
                "docker.io",
                "library/postgres:13",
            ),
            ("library/postgres", "docker.io", "library/postgres"),
            (
                "docker.io/library/postgres",
                "docker.io",
                "library/postgres",
            ),
            // Docker Hub, user images
            ("tutum/wordpress", "docker.io", "tutum/wordpress"),
            (
                "tutum/wordpress:latest",
                "docker.io",
                "tutum/wordpress:latest",
            ),
            ("docker.io/tutum/wordpress", "docker.io", "tutum/wordpress"),
            (
                "index.docker.io/tutum/wordpress",
                "docker.io",
                "tutum/wordpress",
            ),
            ("a/b/c", "docker.io", "a/b/c"),
            ("my_ns-1/img", "docker.io", "my_ns-1/img"),
            // Other registries
            (
                "registry.heptapod.net:443/heptapod/runner:0.6.3",
                "registry.heptapod.net:443",
                "heptapod/runner:0.6.3",
            ),
            ("quay.io/podman/stable", "quay.io", "podman/stable"),
            ("example.com/img", "example.com", "img"),
            ("localhost/img", "localhost", "img"),
            ("localhost:5000/img:1", "localhost:5000", "img:1"),
            ("myregistry:5000/img", "myregistry:5000", "img"),
            ("127.0.0.1/img", "127.0.0.1", "img"),
            ("[::1]:5000/img", "[::1]:5000", "img"),
            ("Registry/img", "Registry", "img"),
            // `index.docker.io` with a port is not Docker Hub
            (
                "index.docker.io:443/postgres",
                "index.docker.io:443",
                "postgres",
            ),
            // Degenerate input does not panic
            ("", "docker.io", "library/"),
            ("/", "docker.io", "/"),
            ("é/ü", "docker.io", "é/ü"),
        ];
        for (input, domain, remainder) in table {
            let split = split_domain(input);
            assert_eq!(
                split,
                SplitImageName {
                    domain: domain.into(),
                    remainder: remainder.into()
                },
                "input {input:?}"
            );
            assert_eq!(split.is_docker_hub(), domain == DOCKER_HUB_DOMAIN);
        }
    }
}
