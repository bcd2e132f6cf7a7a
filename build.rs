//! Embeds the git revision and the build date, read by `src/build_info.rs`:
//! `HPR_GIT_REVISION` (12 hex digits of the checked-out commit, "unknown"
//! outside a git checkout or without `git`) and `HPR_BUILD_DATE`
//! (`YYYY-MM-DD`, UTC, from `SOURCE_DATE_EPOCH` when set, as reproducible
//! builds do, else the clock).
//!
//! The script runs again only when the checked-out commit changes (the
//! `HEAD` file, the branch's ref file, `packed-refs`), when
//! `SOURCE_DATE_EPOCH` changes, or when this file does: other edits do not
//! re-run it, so the date is the one of its last run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let revision = git(&manifest_dir, &["rev-parse", "--short=12", "HEAD"])
        .filter(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    if revision != "unknown" {
        for file in watched_git_files(&manifest_dir) {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    println!("cargo:rustc-env=HPR_GIT_REVISION={revision}");
    println!("cargo:rustc-env=HPR_BUILD_DATE={}", build_date());
}

/// Runs `git` in `dir`; `None` when git is missing, fails, or prints no
/// UTF-8.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The files whose change means another commit is checked out: `HEAD`
/// (per worktree), the current branch's ref file and `packed-refs` (shared).
/// Only existing files are named: cargo re-runs the script every time for a
/// missing one.
fn watched_git_files(dir: &Path) -> Vec<PathBuf> {
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    let mut files = Vec::new();
    if let Some(git_dir) = git(dir, &["rev-parse", "--git-dir"]).map(absolute) {
        files.push(git_dir.join("HEAD"));
    }
    if let Some(common) = git(dir, &["rev-parse", "--git-common-dir"]).map(absolute) {
        if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            files.push(common.join(branch));
        }
        files.push(common.join("packed-refs"));
    }
    files.retain(|f| f.is_file());
    files
}

/// `YYYY-MM-DD` (UTC) of `SOURCE_DATE_EPOCH` when set and valid, else of now.
fn build_date() -> String {
    let from_env = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let secs = from_env.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}
