//! The job payload parser (`Job::from_payload`, as the coordinator client
//! applies it to a `POST /jobs/request` answer) and the deploy context built
//! from the job. Checked: no panic; without rewrite, `job.json` is the
//! payload.
#![no_main]

use heptapod_paas_runner::deploy::BuildContext;
use libfuzzer_sys::fuzz_target;
use paas_actors::ports::Job;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(job) = Job::from_payload(payload.clone()) else {
        return;
    };
    let _ = job.variable("CI_CLEVER_CLOUD_FLAVOR");
    if let Ok((ctx, rewrites)) = BuildContext::with_rewrites(None, String::new(), &job) {
        if rewrites.is_empty() {
            let back: serde_json::Value =
                serde_json::from_str(&ctx.job_json).expect("job.json is JSON");
            assert_eq!(back, payload);
        }
    }
});
