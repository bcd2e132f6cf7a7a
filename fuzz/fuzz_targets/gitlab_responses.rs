//! The GitLab answer parsers: a `POST /jobs/request` body (`Job::from_payload`
//! and the job-id scan of an undecodable one), `Range` and `Retry-After`
//! headers, and body excerpts. Checked: no panic; an excerpt never shows a
//! secret and is bounded.
#![no_main]

use heptapod_paas_runner::gitlab::{range_end, scan_job_id};
use heptapod_paas_runner::http_text::{excerpt, retry_after_seconds};
use libfuzzer_sys::fuzz_target;
use paas_actors::ports::Job;

const SECRET: &str = "glrt-s3cr3tT0k3n";

fuzz_target!(|data: &[u8]| {
    let _ = scan_job_id(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Job::from_payload(v);
    }
    let text = String::from_utf8_lossy(data);
    let _ = range_end(&text);
    let _ = retry_after_seconds(&text);
    let max = data.first().map_or(0, |b| usize::from(*b));
    let out = excerpt(data, max, &[SECRET]);
    assert!(!out.contains(SECRET), "secret in {out:?}");
    assert!(
        out.chars().count() <= max + 1,
        "{} > {max} + 1",
        out.chars().count()
    );
    assert!(!out.chars().any(char::is_control), "{out:?}");
});
