//! The keys of the executors' own sections, declared once each like
//! [`super::keys`]: the `cc_*` keys of clever-docker (their defaults are
//! `crate::executors::clever::settings`'s constants) and local-docker's.

use paas_actors::settings::{Fallback, Key, Kind, Reload, Value};
use paas_actors::StandbyPolicy;

use crate::executors::clever::service::settings::{DEFAULT_HELPER_IMAGE, DEFAULT_READY_TIMEOUT};
use crate::executors::clever::settings::{
    DEFAULT_API_URL, DEFAULT_AUTH_USER, DEFAULT_DEPLOYMENT_REPO_TIMEOUT,
    DEFAULT_DEPLOYMENT_REPO_WAIT_STEP, DEFAULT_FLAVOR, DEFAULT_FLAVOR_CONTEXT,
    DEFAULT_INSTANCE_VARIANT_UUID, DEFAULT_ORGA_ID_ATTRIBUTE, DEFAULT_ORGA_TOKEN_ATTRIBUTE,
    DEFAULT_ZONE,
};
use crate::executors::local_docker::DEFAULT_DOCKER_HOST;

/// Declares one key of an executor: a running runner keeps its executor,
/// so a reload leaves them to the next start of the runner.
macro_rules! key {
    ($name:literal, $kind:expr, $default:expr, $doc:literal) => {
        Key {
            name: $name,
            aliases: &[],
            kind: $kind,
            default: $default,
            doc: &[$doc],
            reload: Reload::AtStart,
        }
    };
}

const SINGLE: Fallback = Fallback::Words("(required in single-organisation mode)");

/// `cc_orga_id`.
pub(crate) const ORGA_ID: Key = key!(
    "cc_orga_id",
    Kind::TEXT,
    SINGLE,
    "Clever Cloud organisation id (`orga_…`); every job is billed there."
);

/// `cc_token`.
pub(crate) const ORGA_TOKEN: Key = key!(
    "cc_token",
    Kind::TEXT,
    SINGLE,
    "API token of that organisation, able to create, deploy and delete applications."
);

/// `cc_multi_tenant`.
pub(crate) const MULTI_TENANT: Key = key!(
    "cc_multi_tenant",
    Kind::FLAG,
    Fallback::Value(Value::Flag(false)),
    "If true, the organisation and its token are read from the custom attributes of the \
     top-level group of the job's project (as GitLab reports the project, never from job \
     variables)."
);

/// `cc_gitlab_namespace_attributes_token`.
pub(crate) const ATTRIBUTES_TOKEN: Key = key!(
    "cc_gitlab_namespace_attributes_token",
    Kind::TEXT,
    Fallback::Words("(required in multi-tenant mode)"),
    "GitLab administrator token able to read projects and group custom attributes \
     (`read_api`)."
);

/// `cc_multi_tenant_forward_secrets`: lets a multi-tenant runner forward
/// its cache credentials and `cc_extra_env` to every tenant's job host.
pub(crate) const FORWARD_SECRETS: Key = key!(
    "cc_multi_tenant_forward_secrets",
    Kind::FLAG,
    Fallback::Value(Value::Flag(false)),
    "Multi-tenant mode only. Unset, the runner refuses to start (exit 2, naming the key) when \
     `[runners.cache.s3]`, `.gcs` or `.azure` holds static credentials or \
     `[runners.cc_extra_env]` has keys other than `CC_ENABLE_HEPTAPOD_RUNNER` and \
     `CC_MOUNT_DOCKER_SOCKET`. **Unsafe**: set to true, those values are forwarded to every \
     tenant's job host and deployment repository, where every tenant can read them (one shared \
     cache bucket for all tenants, for instance). Never forwarded to the inner runner."
);

/// `cc_orga_id_attribute`.
pub(crate) const ORGA_ID_ATTRIBUTE: Key = key!(
    "cc_orga_id_attribute",
    Kind::TEXT,
    Fallback::Text(DEFAULT_ORGA_ID_ATTRIBUTE),
    "Name of the group attribute holding the organisation id (multi-tenant mode)."
);

/// `cc_orga_token_attribute`.
pub(crate) const ORGA_TOKEN_ATTRIBUTE: Key = key!(
    "cc_orga_token_attribute",
    Kind::TEXT,
    Fallback::Text(DEFAULT_ORGA_TOKEN_ATTRIBUTE),
    "Name of the group attribute holding the organisation's token (multi-tenant mode)."
);

/// `[runners.cc_extra_env]`.
pub(crate) const EXTRA_ENV: Key = key!(
    "cc_extra_env",
    Kind::TABLE,
    Fallback::Absent,
    "Extra environment of the job's host; `CC_ENABLE_HEPTAPOD_RUNNER = \"true\"` is needed on \
     Clever Cloud. `CC_MOUNT_DOCKER_SOCKET=true` is set unless this table sets it otherwise."
);

/// `cc_api_url`.
pub(crate) const API_URL: Key = key!(
    "cc_api_url",
    Kind::TEXT,
    Fallback::Text(DEFAULT_API_URL),
    "API base URL."
);

/// `cc_zone`.
pub(crate) const ZONE: Key = key!(
    "cc_zone",
    Kind::TEXT,
    Fallback::Text(DEFAULT_ZONE),
    "Zone; pick the one closest to the coordinator."
);

/// `cc_default_flavor`.
pub(crate) const DEFAULT_FLAVOR_KEY: Key = key!(
    "cc_default_flavor",
    Kind::TEXT,
    Fallback::Text(DEFAULT_FLAVOR),
    "Flavor of jobs that do not set `CI_CLEVER_CLOUD_FLAVOR`."
);

/// `cc_max_flavor`.
pub(crate) const MAX_FLAVOR: Key = key!(
    "cc_max_flavor",
    Kind::TEXT.expecting("a non-empty flavor name"),
    Fallback::Words("none (the largest available)"),
    "Largest flavor a job may ask for. The weight of this flavor is reserved before each poll, \
     so it must fit in the runner's share of the quota (checked at start-up)."
);

/// `cc_deployment_repo_timeout`.
pub(crate) const REPO_TIMEOUT: Key = key!(
    "cc_deployment_repo_timeout",
    Kind::SECONDS,
    Fallback::Value(Value::Seconds(DEFAULT_DEPLOYMENT_REPO_TIMEOUT)),
    "How long to wait for the application's Git repository."
);

/// `cc_deployment_repo_wait_step`.
pub(crate) const REPO_WAIT_STEP: Key = key!(
    "cc_deployment_repo_wait_step",
    Kind::SECONDS,
    Fallback::Value(Value::Seconds(DEFAULT_DEPLOYMENT_REPO_WAIT_STEP)),
    "The longest wait between two looks at that repository (the first look comes after the \
     delay the previous applications' repositories took to be ready, at once before any is \
     known; then waits of 0.1 s doubling up to it)."
);

/// `cc_auth_user`.
pub(crate) const AUTH_USER: Key = key!(
    "cc_auth_user",
    Kind::TEXT,
    Fallback::Text(DEFAULT_AUTH_USER),
    "User name of the Git push (the password is the organisation token)."
);

/// `cc_flavor_context`.
pub(crate) const FLAVOR_CONTEXT: Key = key!(
    "cc_flavor_context",
    Kind::TEXT,
    Fallback::Text(DEFAULT_FLAVOR_CONTEXT),
    "Which Clever flavors are offered (`heptapod-runner-XS` … `heptapod-runner-3XL` become \
     `XS` … `3XL`)."
);

/// `cc_flavor_name_prefix` (may be empty).
pub(crate) const FLAVOR_NAME_PREFIX: Key = key!(
    "cc_flavor_name_prefix",
    Kind::TEXT.expecting("a string"),
    Fallback::Words("context + `-`"),
    "What the names of the offered flavors start with, left out of the names jobs ask for."
);

/// `cc_instance_variant_uuid`.
pub(crate) const INSTANCE_VARIANT: Key = key!(
    "cc_instance_variant_uuid",
    Kind::TEXT,
    Fallback::Text(DEFAULT_INSTANCE_VARIANT_UUID),
    "Instance variant of the applications."
);

/// The keys of a clever-docker section.
pub(crate) const CLEVER: &[&Key] = &[
    &ORGA_ID,
    &ORGA_TOKEN,
    &MULTI_TENANT,
    &ATTRIBUTES_TOKEN,
    &FORWARD_SECRETS,
    &ORGA_ID_ATTRIBUTE,
    &ORGA_TOKEN_ATTRIBUTE,
    &EXTRA_ENV,
    &API_URL,
    &ZONE,
    &DEFAULT_FLAVOR_KEY,
    &MAX_FLAVOR,
    &REPO_TIMEOUT,
    &REPO_WAIT_STEP,
    &AUTH_USER,
    &FLAVOR_CONTEXT,
    &FLAVOR_NAME_PREFIX,
    &INSTANCE_VARIANT,
];

/// `heptapod_paas_runner_helper_image` of a clever-service-docker section.
pub(crate) const HELPER_IMAGE: Key = key!(
    "heptapod_paas_runner_helper_image",
    Kind::TEXT.expecting("a non-empty image name without whitespace"),
    Fallback::Text(DEFAULT_HELPER_IMAGE),
    "Image of the helper service each application runs (the Dockerfile pushed is `FROM` it). \
     Never forwarded."
);

/// `cc_service_ready_timeout` of a clever-service-docker section.
pub(crate) const READY_TIMEOUT: Key = key!(
    "cc_service_ready_timeout",
    Kind::SECONDS,
    Fallback::Value(Value::Seconds(DEFAULT_READY_TIMEOUT)),
    "How long a new application's helper may take (image build and boot) to answer that it \
     can take a job; past it the job fails and the application is deleted. Asked on waits \
     growing from 0.1 s up to 20 s, the first after the delay the previous helpers took."
);

/// `paas_keep_resources_for_reuse_seconds` of a clever-service-docker section.
pub(crate) const KEEP_FOR_REUSE: Key = key!(
    "paas_keep_resources_for_reuse_seconds",
    Kind::seconds_or_off("a number of seconds (0: never kept)"),
    Fallback::Value(Value::Seconds(StandbyPolicy::DEFAULT_KEEP)),
    "How long a finished job's application waits on standby for the next job of the same \
     organisation and size before it is deleted; 0: deleted at once. Never forwarded."
);

/// `paas_max_jobs_per_resource` of a clever-service-docker section.
pub(crate) const MAX_JOBS_PER_RESOURCE: Key = key!(
    "paas_max_jobs_per_resource",
    Kind::COUNT,
    Fallback::Value(Value::Count(StandbyPolicy::DEFAULT_MAX_JOBS as u64)),
    "How many jobs one application runs at most: after the last one it is deleted instead of \
     kept on standby. Never forwarded."
);

/// The keys a clever-service-docker section adds to clever-docker's.
pub(crate) const SERVICE: &[&Key] = &[
    &HELPER_IMAGE,
    &READY_TIMEOUT,
    &KEEP_FOR_REUSE,
    &MAX_JOBS_PER_RESOURCE,
];

/// `host` of a local-docker section.
pub(crate) const HOST: Key = key!(
    "host",
    Kind::TEXT.expecting("a unix:// URL string"),
    Fallback::Text(DEFAULT_DOCKER_HOST),
    "The Docker engine, a `unix://` socket URL; when absent, `$DOCKER_HOST` if set."
);

/// `local_docker_network_mode`.
pub(crate) const NETWORK_MODE: Key = key!(
    "local_docker_network_mode",
    Kind::TEXT.expecting("a non-empty Docker network mode such as \"host\""),
    Fallback::Absent,
    "Network of the job container (e.g. `host`)."
);

/// The keys of a local-docker section (README's table).
#[cfg(test)]
pub(crate) const LOCAL_DOCKER: &[&Key] = &[&HOST, &NETWORK_MODE];
