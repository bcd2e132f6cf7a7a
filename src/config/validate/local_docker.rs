//! The keys of a local-docker section, read through their declarations
//! ([`super::super::keys_executors`]) into the executor's own settings
//! ([`LocalDockerSettings`]).

use super::super::fields::{as_nonempty_string, Ctx, Section};
use super::super::keys_executors::{HOST, NETWORK_MODE};
use super::Env;
use crate::executors::local_docker::{
    socket_path, LocalDockerSettings, LocalDockerTimeouts, DEFAULT_DOCKER_HOST,
};

/// The local-docker settings of a runner section; the runner-level fields
/// (`unique_name`, `main_image`, `inner_runner_toml`) are filled by
/// [`super::runner`].
pub(super) fn settings(
    sec: &Section<'_>,
    env: &Env,
    ctx: &mut Ctx<'_>,
) -> Option<LocalDockerSettings> {
    let before = ctx.problems.len();
    let written = sec.read_key(ctx, &HOST, as_nonempty_string);
    let (host, origin) = match (written, &env.docker_host) {
        (Some(h), _) => (h, "the `host` key"),
        (None, Some(h)) if !h.is_empty() && sec.get(HOST.name).is_none() => (
            h.clone(),
            "the DOCKER_HOST environment variable (no `host` key)",
        ),
        _ => (DEFAULT_DOCKER_HOST.to_string(), "the default"),
    };
    if ctx.problems.len() == before && socket_path(&host).is_err() {
        let path = sec.key_path(HOST.name);
        let found = ctx.shown(&path, &host);
        ctx.problem(
            &path,
            format!(
                "expected a Unix socket URL such as `{DEFAULT_DOCKER_HOST}`, found {found} \
                 (from {origin}); only unix:// Docker endpoints are supported"
            ),
        );
    }
    let network_mode = sec.read_key(ctx, &NETWORK_MODE, as_nonempty_string);
    (ctx.problems.len() == before).then(|| LocalDockerSettings {
        host,
        network_mode,
        unique_name: String::new(),
        legacy_unique_name: None,
        main_image: None,
        inner_runner_toml: String::new(),
        timeouts: LocalDockerTimeouts::default(),
    })
}
