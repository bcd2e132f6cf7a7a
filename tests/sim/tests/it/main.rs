//! The integration tests of paas-sim, as one test binary: each file of this
//! directory is a module, `clever_support` holds the helpers several of them
//! share. One binary links the dependency tree once instead of once per file.

mod clever_support;

mod clever_api;
mod clever_e2e;
mod clever_git;
mod clever_helper;
mod coordinator;
mod world;
mod world_demo;
mod world_e2e;
mod world_process;
mod world_scenario;
