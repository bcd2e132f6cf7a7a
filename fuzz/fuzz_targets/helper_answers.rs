//! What clever-service-docker reads from outside about a helper: the
//! address of its application (`vhosts[].fqdn` or a state record, and the
//! application id of the cleverapps.io rule) and the helper's answers
//! (`can-take-job` status and body, `launch-job` status and
//! `Retry-After`). The first byte chooses. Checked: no panic; an accepted
//! address is written back as text that parses to the same address; a
//! busy wait never exceeds its bound.
#![no_main]

use heptapod_paas_runner::executors::clever::service::address::{helper_netloc, parse_netloc};
use heptapod_paas_runner::executors::clever::service::answers::{
    busy_wait, read_can_take_job, read_launch, LaunchAnswer,
};
use heptapod_paas_runner::executors::clever::service::settings::BUSY_RETRY_MAX;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            if let Ok(n) = parse_netloc(&text) {
                let shown = n.to_string();
                assert_eq!(parse_netloc(&shown).as_ref(), Ok(&n), "{shown}");
                let base = n.base_url();
                assert!(!base.contains(['@', '?', '#', ' ']), "{base}");
            }
            // The text as a vhost, and as an application id.
            let (fqdn, id) = text.split_once('\n').unwrap_or((&text, "app_x"));
            for loopback in [false, true] {
                if let Ok((n, _)) = helper_netloc(Some(fqdn), id, loopback) {
                    assert!(loopback || !n.is_loopback(), "{n}");
                }
            }
        }
        1 => {
            let status = rest
                .get(..2)
                .map_or(200, |b| u16::from_be_bytes([b[0], b[1]]) % 1000);
            let body = rest.get(2..).unwrap_or_default();
            let _ = read_can_take_job(status, body);
        }
        _ => {
            let status = rest
                .get(..2)
                .map_or(503, |b| u16::from_be_bytes([b[0], b[1]]) % 1000);
            let header = rest.get(2..).map(String::from_utf8_lossy);
            if let LaunchAnswer::Busy(wait) = read_launch(status, header.as_deref()) {
                assert!(wait <= BUSY_RETRY_MAX);
            }
            assert!(busy_wait(header.as_deref()) <= BUSY_RETRY_MAX);
        }
    }
});
