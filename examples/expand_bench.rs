//! Prints how long job variable expansion takes on hostile inputs, the
//! figures behind the linear-time claim of `src/deploy/expand.rs`:
//!
//! ```text
//! cargo run --release --example expand_bench -- [OPENS [REFS]]
//! ```
//!
//! Cases: a string of OPENS unterminated `${` (default 100000); the string
//! `$V` repeated REFS times (default 4096) with `V` holding that string;
//! the dependency-proxy rewrite of a job whose image and 64 services are
//! `$I`, `I` holding REFS - 1 references to `V` (within the substitution
//! limit with the reference to `I`). Each case runs once, its result or
//! error printed beside its time.

use heptapod_paas_runner::deploy::{dependency_proxy, expand::expand};
use serde_json::json;
use std::collections::HashMap;
use std::time::Instant;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn report<T, E: std::fmt::Display>(
    case: &str,
    run: impl FnOnce() -> Result<T, E>,
    show: impl Fn(&T) -> String,
) {
    let start = Instant::now();
    let result = run();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let outcome = match &result {
        Ok(v) => format!("ok: {}", show(v)),
        Err(e) => format!("error: {e}"),
    };
    println!("{case:<48} {ms:>12.3} ms  {outcome}");
}

fn main() {
    let opens_n = arg(1, 100_000);
    let refs_n = arg(2, 4096);
    let opens = "${".repeat(opens_n);
    let refs = "$V".repeat(refs_n);
    let vars: HashMap<String, String> = [("V".to_owned(), opens.clone())].into();

    report(
        &format!("{opens_n} unterminated `${{`"),
        || expand(&opens, &HashMap::new()),
        |s| format!("{} bytes", s.len()),
    );
    report(
        &format!("{refs_n} x `$V`, V = {opens_n} x `${{`"),
        || expand(&refs, &vars),
        |s| format!("{} bytes", s.len()),
    );
    let mut payload = json!({
        "id": 1, "token": "t",
        "variables": [
            {"key": dependency_proxy::PROXY_PREFIX_VARIABLE, "value": "gl.test/g/dependency_proxy/containers"},
            {"key": "V", "value": opens},
            {"key": "I", "value": "$V".repeat(refs_n.saturating_sub(1))},
        ],
        "image": {"name": "$I"},
        "services": (0..64).map(|_| json!({"name": "$I"})).collect::<Vec<_>>(),
    });
    report(
        &format!(
            "proxy rewrite, 65 names = $I, I = {} x `$V`",
            refs_n.saturating_sub(1)
        ),
        || dependency_proxy::rewrite(&mut payload),
        |r| format!("{} names rewritten", r.len()),
    );
}
