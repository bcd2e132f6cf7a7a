//! heptapod-paas-runner: adapters and the program.
//!
//! The actor system lives in the `paas-actors` crate; this crate implements
//! its ports (GitLab coordinator client, PAAS executors), parses the
//! configuration, and wires everything into the `heptapod-paas-runner`
//! command. See ARCHITECTURE.md for the map.

pub mod build_info;
pub mod cli;
pub mod cli_docs;
pub mod commands;
pub mod config;
pub mod deploy;
pub mod descriptors;
pub mod executors;
pub mod exit;
pub mod git;
pub mod gitlab;
pub mod http_client;
pub mod http_text;
pub mod instance_lock;
pub mod listen_address;
pub mod local_checks;
pub mod logging;
pub mod monitoring;
pub mod notify;
pub mod preflight;
pub mod process_metrics;
pub mod register;
pub mod reload;
pub mod runtime;
pub mod secret;
pub mod signal;
pub mod state_migration;
pub mod state_owner;
pub mod wiring;
