//! A helper over its life, after its listener opened: boot on the deployment of a helper
//! Dockerfile, the end of each job (and a death then, when injected), a death at any time.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::clever::checker::{self, BuildContext, HELPER_TOKEN_VARIABLE};
use crate::clever::model::SharedWorld;

/// Boots the helper of service application `app_id`, whose deployment (ledger index
/// `index`) pushed the helper tree `ctx` with `env`: checks the Dockerfile and the env, then,
/// when the image is the helper's, starts the boot clock. The application is up once booted.
pub fn boot(
    world: &SharedWorld,
    app_id: &str,
    index: usize,
    ctx: &BuildContext,
    env: &BTreeMap<String, String>,
) {
    let dockerfile = ctx.dockerfile.as_deref().unwrap_or("");
    let mut w = world.lock();
    let expected = w.expected_helper_image.clone();
    let mut findings = checker::check_helper_dockerfile(dockerfile, &expected);
    findings.extend(checker::check_service_env(env));
    w.record_findings(app_id, None, findings);
    if checker::helper_image(dockerfile).as_deref() != Some(expected.as_str()) {
        w.ledger.update_deployment(index, |d| {
            d.checked = true;
            d.inner_status = "aborted:not the helper image".to_owned();
        });
        if let Some(app) = w.apps.get_mut(app_id) {
            app.instance_state = "NONE".to_owned();
            if let Some(d) = app.deployments.last_mut() {
                d.state = "FAIL".to_owned();
            }
        }
        return;
    }
    let never_ready = w.helper_faults.take_never_ready();
    let boot_delay = w.timing.helper_boot_delay;
    let ready_at = Instant::now() + boot_delay;
    let token = env.get(HELPER_TOKEN_VARIABLE).cloned();
    let Some(generation) = w
        .apps
        .get_mut(app_id)
        .and_then(|a| a.helper.as_mut())
        .map(|h| {
            h.deploy(ready_at, never_ready, token);
            h.generation()
        })
    else {
        return;
    };
    let status = if never_ready {
        "helper:never ready"
    } else {
        "helper:booting"
    };
    w.ledger.update_deployment(index, |d| {
        d.checked = true;
        d.inner_status = status.to_owned();
    });
    if never_ready {
        return;
    }
    let world = world.clone();
    let app_id = app_id.to_owned();
    w.spawn_on_system(move || async move {
        tokio::time::sleep(boot_delay).await;
        up(&world, &app_id, index, generation);
    });
}

/// The helper of `generation` finished booting: the application is up.
fn up(world: &SharedWorld, app_id: &str, index: usize, generation: u64) {
    let mut w = world.lock();
    let Some(app) = w.apps.get_mut(app_id).filter(|a| !a.deleted) else {
        return;
    };
    if app.helper.as_ref().map(|h| h.generation()) != Some(generation) {
        return;
    }
    app.state = "SHOULD_BE_UP".to_owned();
    app.instance_state = "UP".to_owned();
    if let Some(d) = app.deployments.last_mut() {
        d.state = "OK".to_owned();
    }
    w.ledger
        .update_deployment(index, |d| d.inner_status = "helper:up".to_owned());
}

/// The job the helper of `app_id` started in `generation` ended: the helper is idle again,
/// and dies now when a [`super::faults::HelperFaultCommand::DieOnStandby`] is pending.
pub fn job_ended(world: &SharedWorld, app_id: &str, generation: u64) {
    let mut w = world.lock();
    let ended = w
        .apps
        .get_mut(app_id)
        .and_then(|a| a.helper.as_mut())
        .is_some_and(|h| h.job_ended(generation));
    if ended && w.helper_faults.take_die_on_standby() {
        if let Some(h) = w.apps.get_mut(app_id).and_then(|a| a.helper.as_mut()) {
            h.close();
        }
    }
}

/// Closes the listener of `app_id`'s helper now (the application stays, as when its
/// instance crashed on Clever). False when it has no open listener.
pub fn kill(world: &SharedWorld, app_id: &str) -> bool {
    world
        .lock()
        .apps
        .get_mut(app_id)
        .and_then(|a| a.helper.as_mut())
        .is_some_and(|h| h.close())
}
