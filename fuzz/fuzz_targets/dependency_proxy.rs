//! The dependency-proxy rewrite of a job payload (`deploy::dependency_proxy`)
//! built from lines: the proxy prefix, the image name, then `S<name>`
//! service names and `KEY=VALUE` variables. Checked: no panic; every name
//! written is the prefix, `/`, and at most `MAX_IMAGE_NAME_LEN` bytes; the
//! payload is untouched when nothing is rewritten.
#![no_main]

use heptapod_paas_runner::deploy::dependency_proxy::{rewrite, PROXY_PREFIX_VARIABLE};
use heptapod_paas_runner::deploy::image_name::MAX_IMAGE_NAME_LEN;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let prefix = lines.next().unwrap_or_default();
    let image = lines.next().unwrap_or_default();
    let mut services = Vec::new();
    let mut variables = vec![json!({"key": PROXY_PREFIX_VARIABLE, "value": prefix})];
    for line in lines {
        if let Some(name) = line.strip_prefix('S') {
            services.push(json!({"name": name, "alias": null}));
        } else if let Some((k, v)) = line.split_once('=') {
            variables.push(json!({"key": k, "value": v}));
        }
    }
    let mut payload = json!({"id": 1, "token": "t", "variables": variables,
                             "image": {"name": image}, "services": services});
    let before = payload.clone();
    match rewrite(&mut payload) {
        Ok(rewritten) if rewritten.is_empty() => assert_eq!(payload, before),
        Ok(rewritten) => {
            for r in rewritten {
                assert!(r.to.len() <= MAX_IMAGE_NAME_LEN, "{}", r.to.len());
                assert!(r.to.starts_with(&format!("{prefix}/")), "{:?}", r.to);
            }
            let names = payload["services"].as_array().map_or(0, Vec::len);
            assert_eq!(names, before["services"].as_array().map_or(0, Vec::len));
        }
        Err(e) => assert!(!e.field.is_empty()),
    }
});
