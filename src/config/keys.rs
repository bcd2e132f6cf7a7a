//! The keys this crate reads itself, declared once each (name, shape,
//! default, documentation line, reload class) as `paas_actors::settings`
//! declares the keys the actors use. Validation reads the file through
//! these declarations; README's key tables are checked against both
//! (`tests_readme.rs`); a reload's "restart needed" comes from their
//! [`Reload`] class.

use paas_actors::settings::{Fallback, Key, Kind, Reload, Shape, Value};

/// Declares one key; `doc` is its README line.
macro_rules! key {
    ($name:literal $(| $alias:literal)*, $kind:expr, $default:expr, $reload:ident, $doc:literal) => {
        Key {
            name: $name,
            aliases: &[$($alias),*],
            kind: $kind,
            default: $default,
            doc: &[$doc],
            reload: Reload::$reload,
        }
    };
}

/// `state_file`.
pub(crate) const STATE_FILE: Key = key!(
    "state_file",
    Kind::TEXT.expecting("a non-empty path string"),
    Fallback::Required,
    Restart,
    "Where jobs and resources are tracked across restarts. Kept current while running, written \
     atomically, mode 0600. A `.runner_system_id` file and the lock file `<state_file>.lock` \
     are kept beside it; its directory must exist and be writable by the service."
);

/// `secrets_file`: read again by every reload.
pub(crate) const SECRETS_FILE: Key = key!(
    "secrets_file",
    Kind::TEXT.expecting("the path of a TOML file of secrets (a non-empty string)"),
    Fallback::Absent,
    Live,
    "A flat TOML map; any string value written `secret:KEY` anywhere in the configuration is \
     replaced by `KEY`'s value (relative paths are relative to the configuration file)."
);

/// `listen_address`.
pub(crate) const LISTEN_ADDRESS: Key = key!(
    "listen_address",
    Kind::TEXT.expecting("a non-empty address string such as \"127.0.0.1:9252\""),
    Fallback::Absent,
    Restart,
    "Address of the monitoring endpoints (`/metrics`, `/healthz`, `/readyz`, \
     `/debug/jobs/list`; see \"Monitoring\"), in GitLab Runner's forms: `host:port`, \
     `[ipv6]:port`, `:port` (every IPv4 interface) or `host` alone (port 9252, GitLab \
     Runner's); none when absent. `--listen-address` overrides it. `check` and the start-up \
     bind it: a failure stops the start-up (exit 2)."
);

/// `log_level`.
pub(crate) const LOG_LEVEL: Key = key!(
    "log_level",
    Kind::TEXT.expecting("one of debug, info, warn, error, fatal, panic (GitLab Runner's levels)"),
    Fallback::Absent,
    AtStart,
    "GitLab Runner's key: `debug`, `info`, `warn`, `error`, `fatal` or `panic`; \
     `-l`/`--logging-level` and `--debug` win (see \"Operator notes\")."
);

/// `log_format`.
pub(crate) const LOG_FORMAT: Key = key!(
    "log_format",
    Kind::TEXT.expecting("one of runner, text, json"),
    Fallback::Absent,
    AtStart,
    "GitLab Runner's key: `runner` or `text` (human lines) or `json`; `--log-format` wins."
);

/// `[quota_computation]`.
pub(crate) const QUOTA: Key = key!(
    "quota_computation",
    Kind::TABLE,
    Fallback::Required,
    Restart,
    "The weighted quota: the weight of `reference_jobs_count` jobs of `reference_flavor` on \
     `reference_runner`."
);

/// `quota_computation.reference_runner`.
pub(crate) const REFERENCE_RUNNER: Key = key!(
    "quota_computation.reference_runner",
    Kind::TEXT,
    Fallback::Required,
    Restart,
    "A runner `name`."
);

/// `quota_computation.reference_flavor`.
pub(crate) const REFERENCE_FLAVOR: Key = key!(
    "quota_computation.reference_flavor",
    Kind::TEXT,
    Fallback::Required,
    Restart,
    "A flavor of that runner (e.g. `3XL`)."
);

/// `quota_computation.reference_jobs_count`.
pub(crate) const REFERENCE_JOBS_COUNT: Key = key!(
    "quota_computation.reference_jobs_count",
    Kind::COUNT,
    Fallback::Required,
    Restart,
    "How many jobs of that flavor the quota holds."
);

/// The global keys declared here.
pub(crate) const GLOBAL: &[&Key] = &[
    &STATE_FILE,
    &SECRETS_FILE,
    &LISTEN_ADDRESS,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &QUOTA,
    &REFERENCE_RUNNER,
    &REFERENCE_FLAVOR,
    &REFERENCE_JOBS_COUNT,
];

/// `name` of a runner section.
pub(crate) const NAME: Key = key!(
    "name",
    Kind::TEXT,
    Fallback::Required,
    AtStart,
    "Runner name, as in GitLab."
);

/// `url` of a runner section.
pub(crate) const URL: Key = key!(
    "url",
    Kind::TEXT,
    Fallback::Required,
    AtStart,
    "Coordinator URL (a path prefix such as `https://host/gitlab` is kept)."
);

/// `token` of a runner section.
pub(crate) const TOKEN: Key = key!(
    "token",
    Kind::TEXT,
    Fallback::Required,
    AtStart,
    "Runner authentication token. It gives the runner's *unique name* (its identity in logs, \
     application names `hpd-job-<unique name>-<job id>` and the state file): for tokens \
     created by GitLab ≥ 15.10 (`glrt-…`, `glrtr-…`, `t1_…`), GitLab Runner's short token (the \
     prefixes stripped, then 9 characters), so several such runners can share one service; \
     for other (legacy) tokens, the first 8 characters, as in the Python runner. Two sections \
     with the same unique name are refused: add `unique_name` to one of them."
);

/// `unique_name` of a runner section.
pub(crate) const UNIQUE_NAME: Key = key!(
    "unique_name",
    Kind::TEXT,
    Fallback::Words("from `token`"),
    AtStart,
    "Overrides the unique name: 1 to 40 ASCII letters, digits, `_` or `-`. Not forwarded."
);

/// `executor` of a runner section.
pub(crate) const EXECUTOR: Key = key!(
    "executor",
    Kind::TEXT,
    Fallback::Required,
    AtStart,
    "`clever-docker`, `clever-service-docker` or `local-docker`."
);

/// `secrets_file` of a runner section (`secrets.rs`).
pub(crate) const RUNNER_SECRETS_FILE: Key = key!(
    "secrets_file",
    Kind::TEXT.expecting("the path of a TOML file of secrets (a non-empty string)"),
    Fallback::Absent,
    AtStart,
    "The Python runner 1.1's form: a secrets file of this section only; its `secret:KEY` \
     values (`token`, `cc_token`, `cc_gitlab_namespace_attributes_token`, the trace-watch \
     `token`, as 1.1 reads them, and any other) are looked up in it instead of the top-level \
     one. Never forwarded."
);

/// `heptapod_runner_main_image` of a runner section.
pub(crate) const MAIN_IMAGE: Key = key!(
    "heptapod_runner_main_image",
    Kind::TEXT.expecting("a non-empty image name"),
    Fallback::Text(crate::deploy::DEFAULT_MAIN_IMAGE),
    AtStart,
    "Image the job's Dockerfile starts `FROM`."
);

/// `tls-ca-file` of a runner section (GitLab Runner's key and spelling).
pub(crate) const TLS_CA_FILE: Key = key!(
    "tls-ca-file",
    Kind::TEXT.expecting("the path of a PEM file of CA certificates (a non-empty string)"),
    Fallback::Absent,
    AtStart,
    "GitLab Runner's key: a PEM file of CA certificates the coordinator's HTTPS certificate may \
     chain to (a private CA), trusted besides the system's for every call to `url`, the trace \
     watch's included (relative paths are relative to the configuration file). `check` and \
     the start-up load it (exit 2 when it holds no certificate), as does a reload. Also \
     written to the inner `runner.toml`, where the path must exist on the job's host to matter."
);

/// `paas_forward_runner_token` of a runner section.
pub(crate) const FORWARD_TOKEN: Key = key!(
    "paas_forward_runner_token",
    Kind::FLAG,
    Fallback::Value(Value::Flag(false)),
    AtStart,
    "**Unsafe.** If true, the inner `runner.toml` holds this runner's real `token` instead of \
     a placeholder: every job of the runner (any job with the Docker socket, any tenant able to \
     read its application's repository) can then read it and take other projects' jobs, with \
     their secrets. Only for an inner runner version that would need the runner token; \
     refused (exit 2) with `cc_multi_tenant = true`. Never forwarded itself."
);

/// `[runners.paas_job_trace_watch]`.
pub(crate) const TRACE_WATCH: Key = key!(
    "paas_job_trace_watch" | "job_trace_watch",
    Kind::TABLE,
    Fallback::Absent,
    AtStart,
    "Strongly recommended: without it, a job is considered started as soon as it is pushed."
);

/// `token` of the trace watch.
pub(crate) const TRACE_WATCH_TOKEN: Key = key!(
    "paas_job_trace_watch.token",
    Kind::TEXT.expecting("a non-empty token string"),
    Fallback::Absent,
    AtStart,
    "An administrator token with `read_api` scope, to read job logs; without it, job logs are \
     not watched. It also asks the Jobs API whether jobs whose tokens are all refused at once \
     are over (see \"Runner-side trouble and transport\"). With the `api` scope it also gives \
     back jobs lost at acquisition (see \"Jobs lost at acquisition\")."
);

/// The common runner keys declared here (README's table).
#[cfg(test)]
pub(crate) const RUNNER: &[&Key] = &[
    &NAME,
    &URL,
    &TOKEN,
    &UNIQUE_NAME,
    &EXECUTOR,
    &RUNNER_SECRETS_FILE,
    &MAIN_IMAGE,
    &TLS_CA_FILE,
    &FORWARD_TOKEN,
    &TRACE_WATCH,
    &TRACE_WATCH_TOKEN,
];

/// The global keys declared here whose change needs a restart (tables
/// aside: their keys are declared on their own).
pub(crate) fn restart_keys() -> impl Iterator<Item = &'static Key> {
    GLOBAL
        .iter()
        .copied()
        .filter(|k| k.reload == Reload::Restart && k.kind.shape != Shape::Table)
}
