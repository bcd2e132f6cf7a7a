//! The configuration loader (`config::parse_str`) on any text. Checked: no
//! panic; the inner `runner.toml` of every runner parses back as TOML and
//! holds the runner token only when the section opts in.
#![no_main]

use heptapod_paas_runner::config::{self, inner};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: relative `secrets_file`s fail.
    let Ok(loaded) = config::parse_str(text, Path::new("/nonexistent-hpr-fuzz/config.toml")) else {
        return;
    };
    for runner in &loaded.config.runners {
        let text = runner.inner_runner_toml();
        let doc: toml::Table = text.parse().expect("inner runner.toml is TOML");
        let pushed = doc["runners"][0]["token"].as_str().expect("token");
        let token = runner.token.expose();
        if inner::forwards_runner_token(&runner.raw) {
            assert_eq!(pushed, token);
        } else {
            assert_eq!(pushed, inner::token_placeholder(token));
            assert_ne!(pushed, token);
        }
    }
});
