//! The answers of a Git server to a push (`src/git/smart_http.rs`): the
//! reference advertisement of `info/refs` and the status report of
//! `git-receive-pack`. The input is given to both parsers. Checked: no
//! panic; an accepted advertisement's target id is 40 lowercase
//! hexadecimal digits; a refusal's reason has no control character and is
//! bounded; an input over the size bound is refused.
#![no_main]

use heptapod_paas_runner::git::smart_http::{
    parse_advertisement, parse_report, ProtocolError, Report, MAX_ANSWER_BYTES, MAX_REASON_CHARS,
};
use libfuzzer_sys::fuzz_target;

const TARGET: &str = "refs/heads/master";

fuzz_target!(|data: &[u8]| {
    let advertisement = parse_advertisement(data, TARGET);
    let report = parse_report(data, TARGET);
    if data.len() > MAX_ANSWER_BYTES {
        assert!(matches!(advertisement, Err(ProtocolError::TooLarge(_))));
        assert!(matches!(report, Err(ProtocolError::TooLarge(_))));
    }
    if let Ok(parsed) = advertisement {
        if let Some(id) = parsed.target {
            assert_eq!(id.len(), 40, "{id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
    }
    if let Ok(Report::Refused(reason)) = report {
        assert!(!reason.chars().any(char::is_control), "{reason:?}");
        // The reason, its prefix (`unpack failed: ` or the reference's
        // name and `: `) and an ellipsis.
        assert!(
            reason.chars().count() <= MAX_REASON_CHARS + TARGET.len() + 16,
            "{reason:?}"
        );
    }
});
