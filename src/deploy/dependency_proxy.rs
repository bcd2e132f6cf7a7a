//! Dependency-proxy rewrite of a job payload.
//!
//! PAAS hosts start with an empty image cache, so, unlike the standard
//! Docker executor, the runner sends Docker Hub pulls through the GitLab
//! group's Dependency Proxy when the job has
//! `CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX`:
//!
//! - `image.name` and every `services[].name` that (after `$VAR`
//!   expansion) designate a Docker Hub image become
//!   `<prefix>/<remainder>` (see [`super::image_name`]); other registries
//!   are left untouched, unexpanded;
//! - a rewritten service without alias (absent, `null` or empty) gets the
//!   alias the job author expects from the original name: tag dropped, `/`
//!   replaced by `-` (`postgres:13` → `postgres`, `tutum/wordpress` →
//!   `tutum-wordpress`; the `tutum__wordpress` form is lost, as the
//!   product documentation states).
//!
//! Everything else in the payload, key order included, is left as is.
//! Variables are read with the reference's `all_job_variables` rule: the
//! *last* value of a duplicated key wins.
//!
//! Every name is expanded by one [`Expander`] per job (one work budget), and
//! no name, expanded or proxied, may exceed [`MAX_IMAGE_NAME_LEN`] bytes.

use super::expand::{ExpandError, Expander};
use super::image_name::{split_domain, MAX_IMAGE_NAME_LEN};
use serde_json::Value;
use std::collections::HashMap;

/// The job variable holding the dependency proxy image prefix.
pub const PROXY_PREFIX_VARIABLE: &str = "CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX";

/// An image name that could not be rewritten.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot expand the image name in `{field}`: {source}")]
pub struct DependencyProxyError {
    /// Where the name is in the payload (`image.name`, `services[2].name`).
    pub field: String,
    /// Why expansion failed (`TooLong` when the expanded or proxied name
    /// would exceed [`MAX_IMAGE_NAME_LEN`]).
    pub source: ExpandError,
}

/// One image name rewritten to go through the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewrittenImage {
    /// Where the name is in the payload (`image.name`, `services[2].name`).
    pub field: String,
    /// The name as the job gave it (unexpanded).
    pub from: String,
    /// The name written in its place.
    pub to: String,
    /// The alias added to a service that had none.
    pub alias_added: Option<String>,
}

/// All job variables as a map; for duplicated keys the *last* value wins
/// (the reference's `all_job_variables`). Entries without a string key or
/// value are skipped.
pub fn all_job_variables(payload: &Value) -> HashMap<String, String> {
    payload
        .get("variables")
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    let key = v.get("key")?.as_str()?;
                    let value = v.get("value")?.as_str()?;
                    Some((key.to_owned(), value.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The alias a Docker Hub service gets when the job gives none, computed
/// from its expanded name: digest and tag dropped, `/` replaced by `-`.
///
/// Dropping an `@digest` goes beyond the reference (which would produce
/// `postgres@sha256`, not a valid host name).
pub fn service_alias(expanded_name: &str) -> String {
    let no_digest = expanded_name
        .split_once('@')
        .map_or(expanded_name, |(name, _)| name);
    // Docker Hub names carry no port, so the last `:` starts the tag.
    let no_tag = no_digest
        .rsplit_once(':')
        .map_or(no_digest, |(name, _)| name);
    no_tag.replace('/', "-")
}

/// Rewrites `payload` in place to pull Docker Hub images through the
/// dependency proxy, if the job has one. Returns what was rewritten (empty
/// without a proxy).
pub fn rewrite(payload: &mut Value) -> Result<Vec<RewrittenImage>, DependencyProxyError> {
    let vars = all_job_variables(payload);
    let prefix = match vars.get(PROXY_PREFIX_VARIABLE) {
        Some(prefix) if !prefix.is_empty() => prefix.as_str(),
        _ => return Ok(Vec::new()),
    };
    let mut expander = Expander::new(&vars);
    let mut rewritten = Vec::new();

    if let Some(image) = payload.get_mut("image").and_then(Value::as_object_mut) {
        if let Some(name) = image.get("name").and_then(Value::as_str) {
            let field = "image.name".to_owned();
            if let Some(to) = proxied_name(name, prefix, &mut expander, &field)? {
                rewritten.push(RewrittenImage {
                    field,
                    from: name.to_owned(),
                    to: to.proxied.clone(),
                    alias_added: None,
                });
                image.insert("name".into(), Value::String(to.proxied));
            }
        }
    }

    if let Some(services) = payload.get_mut("services").and_then(Value::as_array_mut) {
        for (index, service) in services.iter_mut().enumerate() {
            let Some(service) = service.as_object_mut() else {
                continue;
            };
            let Some(name) = service.get("name").and_then(Value::as_str) else {
                continue;
            };
            let field = format!("services[{index}].name");
            let Some(to) = proxied_name(name, prefix, &mut expander, &field)? else {
                continue;
            };
            let from = name.to_owned();
            service.insert("name".into(), Value::String(to.proxied.clone()));
            let has_alias = match service.get("alias") {
                None | Some(Value::Null) => false,
                Some(Value::String(alias)) => !alias.is_empty(),
                Some(_) => true,
            };
            let alias_added = if has_alias {
                None
            } else {
                let alias = service_alias(&to.expanded);
                service.insert("alias".into(), Value::String(alias.clone()));
                Some(alias)
            };
            rewritten.push(RewrittenImage {
                field,
                from,
                to: to.proxied,
                alias_added,
            });
        }
    }
    Ok(rewritten)
}

/// A Docker Hub name with its proxied replacement.
struct Proxied {
    expanded: String,
    proxied: String,
}

/// The proxied form of `name` if it designates a Docker Hub image.
fn proxied_name(
    name: &str,
    prefix: &str,
    expander: &mut Expander<'_>,
    field: &str,
) -> Result<Option<Proxied>, DependencyProxyError> {
    let error = |source| DependencyProxyError {
        field: field.to_owned(),
        source,
    };
    let expanded = expander
        .expand_at_most(name, MAX_IMAGE_NAME_LEN)
        .map_err(error)?;
    let split = split_domain(&expanded);
    if !split.is_docker_hub() {
        return Ok(None);
    }
    let proxied = format!("{prefix}/{}", split.remainder);
    if proxied.len() > MAX_IMAGE_NAME_LEN {
        return Err(error(ExpandError::TooLong {
            max: MAX_IMAGE_NAME_LEN,
        }));
    }
    Ok(Some(Proxied { proxied, expanded }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PREFIX: &str = "gitlab.example:443/grp/dependency_proxy/containers";

    fn job_with(image: Value, services: Value, extra_vars: Value) -> Value {
        let mut variables = vec![json!({"key": "CI_JOB_ID", "value": "1", "public": true})];
        variables.extend(extra_vars.as_array().cloned().unwrap_or_default());
        json!({"id": 1, "token": "t", "variables": variables,
               "image": image, "services": services, "zz": "last"})
    }

    fn proxy_var() -> Value {
        json!({"key": PROXY_PREFIX_VARIABLE, "value": PREFIX, "public": true})
    }

    #[test]
    fn seed_alias_examples() {
        let table = [
            ("postgres:13", "postgres"),
            ("tutum/wordpress", "tutum-wordpress"),
            ("postgres", "postgres"),
            ("tutum/wordpress:5.1", "tutum-wordpress"),
            ("docker.io/postgres:13", "docker.io-postgres"),
            ("postgres@sha256:0123abcd", "postgres"),
            ("postgres:13@sha256:0123abcd", "postgres"),
            ("a/b/c:1", "a-b-c"),
        ];
        for (name, alias) in table {
            assert_eq!(service_alias(name), alias, "name {name:?}");
        }
    }

    #[test]
    fn services_and_image_are_rewritten_with_aliases() {
        // (service name, alias given, expected name, expected alias)
        let table: &[(&str, Value, String, Value)] = &[
            (
                "postgres:13",
                Value::Null,
                format!("{PREFIX}/library/postgres:13"),
                json!("postgres"),
            ),
            (
                "tutum/wordpress",
                Value::Null,
                format!("{PREFIX}/tutum/wordpress"),
                json!("tutum-wordpress"),
            ),
            (
                "redis",
                json!(""),
                format!("{PREFIX}/library/redis"),
                json!("redis"),
            ),
            (
                "mysql:8",
                json!("db"),
                format!("{PREFIX}/library/mysql:8"),
                json!("db"),
            ),
            (
                "index.docker.io/library/mysql:8",
                json!("db other"),
                format!("{PREFIX}/library/mysql:8"),
                json!("db other"),
            ),
            (
                "quay.io/prometheus/node-exporter",
                Value::Null,
                "quay.io/prometheus/node-exporter".to_owned(),
                Value::Null,
            ),
            (
                "localhost:5000/svc",
                Value::Null,
                "localhost:5000/svc".to_owned(),
                Value::Null,
            ),
        ];
        for (name, alias, expected_name, expected_alias) in table {
            let mut payload = job_with(
                json!({"name": "debian:bookworm", "entrypoint": null}),
                json!([{"name": name, "alias": alias, "entrypoint": null, "command": null}]),
                json!([proxy_var()]),
            );
            rewrite(&mut payload).expect("rewrite");
            assert_eq!(
                payload["image"]["name"],
                json!(format!("{PREFIX}/library/debian:bookworm"))
            );
            let service = &payload["services"][0];
            assert_eq!(service["name"], json!(expected_name), "service {name}");
            assert_eq!(service["alias"], *expected_alias, "service {name}");
        }
    }

    #[test]
    fn alias_is_added_at_the_end_when_absent_and_in_place_when_empty() {
        let mut payload = job_with(
            Value::Null,
            json!([{"name": "postgres:13", "entrypoint": null},
                   {"alias": "", "name": "redis"}]),
            json!([proxy_var()]),
        );
        rewrite(&mut payload).expect("rewrite");
        let keys = |i: usize| -> Vec<String> {
            payload["services"][i]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(keys(0), ["name", "entrypoint", "alias"]);
        assert_eq!(keys(1), ["alias", "name"]);
    }

    #[test]
    fn names_are_expanded_before_deciding_with_last_value_winning() {
        let mut payload = job_with(
            json!({"name": "$REG/tool:${TAG}"}),
            json!([{"name": "$SVC", "alias": null}, {"name": "${OTHER}/x", "alias": null}]),
            json!([proxy_var(),
                   {"key": "REG", "value": "registry.example.com", "public": true},
                   {"key": "TAG", "value": "1", "public": true},
                   {"key": "SVC", "value": "first", "public": true},
                   {"key": "SVC", "value": "postgres:${TAG}", "public": true},
                   {"key": "OTHER", "value": "ns", "public": true}]),
        );
        let rewritten = rewrite(&mut payload).expect("rewrite");
        // Not Docker Hub: untouched, not even expanded.
        assert_eq!(payload["image"]["name"], json!("$REG/tool:${TAG}"));
        assert_eq!(
            payload["services"][0],
            json!({"name": format!("{PREFIX}/library/postgres:1"), "alias": "postgres"})
        );
        assert_eq!(
            payload["services"][1],
            json!({"name": format!("{PREFIX}/ns/x"), "alias": "ns-x"})
        );
        assert_eq!(
            rewritten.first(),
            Some(&RewrittenImage {
                field: "services[0].name".into(),
                from: "$SVC".into(),
                to: format!("{PREFIX}/library/postgres:1"),
                alias_added: Some("postgres".into()),
            })
        );
        assert_eq!(rewritten.len(), 2);
    }

    #[test]
    fn no_proxy_means_no_change() {
        let cases = [
            json!([]),
            json!([{"key": PROXY_PREFIX_VARIABLE, "value": "", "public": true}]),
            // Last value wins: emptied by a later entry.
            json!([proxy_var(), {"key": PROXY_PREFIX_VARIABLE, "value": ""}]),
        ];
        for vars in cases {
            let mut payload = job_with(
                json!({"name": "debian"}),
                json!([{"name": "postgres", "alias": null}]),
                vars,
            );
            let before = payload.clone();
            assert_eq!(rewrite(&mut payload), Ok(Vec::new()));
            assert_eq!(payload, before);
        }
    }

    #[test]
    fn odd_payloads_are_left_alone() {
        let cases = [
            json!({"variables": [proxy_var()]}),
            json!({"variables": [proxy_var()], "image": null, "services": null}),
            json!({"variables": [proxy_var()], "image": "debian", "services": ["postgres", 3]}),
            json!({"variables": [proxy_var()], "image": {"name": 3}, "services": [{"alias": "x"}]}),
            json!({"variables": "nope", "image": {"name": "debian"}}),
            json!({"variables": [{"key": 1, "value": "x"}, {"value": PREFIX}],
                   "image": {"name": "debian"}}),
            json!([1, 2]),
            json!(null),
        ];
        for payload in cases {
            let mut copy = payload.clone();
            assert_eq!(rewrite(&mut copy), Ok(Vec::new()), "payload {payload}");
            assert_eq!(copy, payload);
        }
    }

    #[test]
    fn unexpandable_name_names_the_field() {
        let mut payload = job_with(
            json!({"name": "debian"}),
            json!([{"name": "redis"}, {"name": "$LOOP"}]),
            json!([proxy_var(), {"key": "LOOP", "value": "x$LOOP"}]),
        );
        let err = rewrite(&mut payload).expect_err("cycle");
        assert_eq!(err.field, "services[1].name");
        assert_eq!(
            err.source,
            ExpandError::Cycle {
                name: "LOOP".into()
            }
        );
        assert!(err.to_string().contains("services[1].name"));
    }

    #[test]
    fn all_job_variables_keeps_the_last_value() {
        let payload = json!({"variables": [
            {"key": "A", "value": "1"}, {"key": "B", "value": "2"}, {"key": "A", "value": "3"},
            {"key": "C"}, {"key": "D", "value": 4}]});
        let vars = all_job_variables(&payload);
        assert_eq!(vars.get("A").map(String::as_str), Some("3"));
        assert_eq!(vars.get("B").map(String::as_str), Some("2"));
        assert_eq!(vars.len(), 2);
    }
}
