//! Helpers shared by several integration tests (`mod support;` in each).
//!
//! Each test crate uses only part of them, hence `dead_code` is allowed
//! here: an unused helper in one crate is used by another.
#![allow(dead_code)]

pub mod docker;
