//! `check CONFIG [--online]`: the configuration's every error and every
//! warning at once, without starting anything; `--online` adds the checks
//! of `verify`.

use crate::config::{self, Loaded};
use std::path::Path;

/// What `check` prints for a configuration, and its exit code without
/// `--online` (0 valid, 2 invalid). `Loaded` is returned when valid.
pub fn offline(path: &Path) -> (String, i32, Option<Loaded>) {
    match config::load(path) {
        Ok(loaded) => {
            let mut out = format!(
                "{}: valid ({} runner section{})\n",
                path.display(),
                loaded.config.runners.len(),
                if loaded.config.runners.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            if !loaded.warnings.is_empty() {
                out.push_str("warnings:\n");
                for w in &loaded.warnings {
                    out.push_str(&format!("  - {w}\n"));
                }
            }
            (out, 0, Some(loaded))
        }
        Err(e) => (format!("{e}\n"), e.exit_code(), None),
    }
}
