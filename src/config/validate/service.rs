//! The keys a clever-service-docker section adds to clever-docker's
//! ([`super::super::keys_executors::SERVICE`]), read into the executor's
//! [`ServiceSettings`]; in another section they are warned about.

use super::super::fields::{Ctx, Section};
use super::super::keys;
use super::super::keys_executors::{
    HELPER_IMAGE, KEEP_FOR_REUSE, MAX_JOBS_PER_RESOURCE, READY_TIMEOUT, SERVICE,
};
use super::super::settings::ExecutorKind;
use crate::executors::clever::ServiceSettings;
use paas_actors::settings::Value;
use paas_actors::StandbyPolicy;

/// An image name that can go on a `FROM` line as written.
fn is_image_name(text: &str) -> bool {
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The service settings of a clever-service-docker section.
pub(super) fn settings(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<ServiceSettings> {
    let before = ctx.problems.len();
    let mut service = ServiceSettings::default();
    let image = sec.read_key(ctx, &HELPER_IMAGE, |v| {
        v.as_str().filter(|s| is_image_name(s)).map(str::to_string)
    });
    if let Some(image) = image {
        service.helper_image = image;
    }
    if let Some(timeout) = sec.seconds(ctx, &READY_TIMEOUT) {
        service.ready_timeout = timeout;
    }
    if sec.get(keys::MAIN_IMAGE.leaf()).is_some() {
        ctx.warn(
            &sec.key_path(keys::MAIN_IMAGE.leaf()),
            "is not used by clever-service-docker: its applications run the helper image \
             (`heptapod_paas_runner_helper_image`), which runs the jobs",
        );
    }
    (ctx.problems.len() == before).then_some(service)
}

/// How long a clever-service-docker section keeps finished jobs'
/// applications on standby, and for how many jobs at most.
pub(super) fn standby(sec: &Section<'_>, ctx: &mut Ctx<'_>) -> StandbyPolicy {
    let mut policy = StandbyPolicy::default();
    match sec.value(ctx, &KEEP_FOR_REUSE) {
        Some(Value::Seconds(d)) => policy.keep = d,
        Some(Value::Off) => policy.keep = std::time::Duration::ZERO,
        _ => {}
    }
    if let Some(Value::Count(n)) = sec.value(ctx, &MAX_JOBS_PER_RESOURCE) {
        policy.max_jobs_per_resource = u32::try_from(n).unwrap_or(u32::MAX);
    }
    policy
}

/// Warns about the service keys of a section whose executor does not use them.
pub(super) fn warn_service_keys(sec: &Section<'_>, ctx: &mut Ctx<'_>, executor: ExecutorKind) {
    for key in SERVICE {
        if sec.get(key.leaf()).is_some() {
            ctx.warn(
                &sec.key_path(key.leaf()),
                format!(
                    "is ignored with `executor = \"{executor}\"`: only clever-service-docker \
                     uses it (not forwarded)"
                ),
            );
        }
    }
}
