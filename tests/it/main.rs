//! The integration tests of the root crate, as one test binary: each file
//! of this directory is a module, `common` (the real binary against
//! paas-sim's world) and `support` (a real Docker engine) are shared by
//! them. One binary links the dependency tree once instead of once per file.
//!
//! A test that changes process-wide state (environment variables, signal
//! dispositions, libgit2's configuration search path) would leak it into
//! the other tests when `cargo test` runs them as threads of one process:
//! such a test lives in its own file directly under `tests/`, as
//! `tests/deploy_push_isolation.rs` does.

mod common;
mod support;

mod chaos;
mod clever_api;
mod clever_service;
mod clever_sim;
mod commands_e2e;
mod deploy_push;
mod deploy_push_http;
mod e2e_adopt;
mod e2e_cli;
mod e2e_give_back;
mod e2e_hostile;
mod e2e_long_poll;
mod e2e_monitoring;
mod e2e_not_ours;
mod e2e_refusals;
mod e2e_restart;
mod e2e_reuse;
mod e2e_run;
mod e2e_service;
mod e2e_tenants;
mod e2e_two_hosts;
mod faults_e2e;
mod git_exchanges;
mod git_fetch;
mod gitlab_client;
mod local_checks_e2e;
mod local_docker;
mod local_docker_e2e;
mod logs_e2e;
mod signals_e2e;
mod sim_world_config;
mod startup_cli;
mod startup_failures_e2e;
mod state_ownership;
mod systemd_notify;
mod tls_ca;
mod unit_security;
