//! What `build.rs` embeds at build time: the git revision and the build
//! date, shown by `--version` and sent to the coordinator.

/// 12 hex digits of the commit built, or "unknown" outside a git checkout.
pub const REVISION: &str = env!("HPR_GIT_REVISION");

/// UTC build date, `YYYY-MM-DD`.
pub const BUILD_DATE: &str = env!("HPR_BUILD_DATE");

/// The `--version` text after the program name.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("HPR_GIT_REVISION"),
    ", built ",
    env!("HPR_BUILD_DATE"),
    ")"
);
