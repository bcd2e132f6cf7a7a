//! The application names a listing reads from every organisation the
//! runner can see, tenants' own applications included: the job id of a
//! name this runner gives (`reconcile::job_id_of`, `hpd-job-<unique
//! name>-<job id>`) and of a name of the legacy identity
//! (`CleverSettings::legacy_app_job_id`). The input is the unique name,
//! the legacy unique name and the application name, one a line. Checked: no
//! panic; a name is recognised only when the runner would give it back
//! exactly; every name the runner gives is recognised with its job id.
#![no_main]

use heptapod_paas_runner::executors::clever::settings::{CleverSettings, Tenancy};
use libfuzzer_sys::fuzz_target;
use paas_actors::reconcile::job_id_of;
use paas_actors::Secret;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let (Some(unique), Some(legacy), Some(name)) = (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let mut settings = CleverSettings::new(
        unique,
        Tenancy::Single {
            orga_id: "orga_fuzz".into(),
            token: Secret::new("fuzz"),
        },
    );
    settings.legacy_unique_name = Some(legacy.to_string());
    let name_of = |id: i64| settings.app_name(id);

    if let Some(id) = job_id_of(name, name_of) {
        assert!(id >= 0, "{id}");
        assert_eq!(settings.app_name(id), name);
    }
    if let Some(id) = settings.legacy_app_job_id(name) {
        assert_eq!(format!("hpd-job-{legacy}-{id}"), name);
    }
    // Every name given is read back: the id from the name's length and
    // bytes, so that it varies with the input.
    let id = i64::try_from(
        data.iter().fold(data.len() as u64, |h, &b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        }) >> 1,
    )
    .unwrap_or(0);
    assert_eq!(job_id_of(&settings.app_name(id), name_of), Some(id));
    assert_eq!(
        settings.legacy_app_job_id(&format!("hpd-job-{legacy}-{id}")),
        Some(id)
    );
});
