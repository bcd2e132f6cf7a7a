//! The operator commands besides `run` and `register`: `check` (offline
//! validation), `verify` (credentials and flavors, online), `list` (the
//! runner sections) and `unregister` (coordinator call and section
//! removal). Each returns the process exit code; `main` dispatches.

pub mod check;
pub mod known_tenants;
pub mod list;
mod table;
pub mod unregister;
pub mod verify;
