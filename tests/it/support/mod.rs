//! Helpers shared by the local-docker tests of this binary.

pub mod docker;
