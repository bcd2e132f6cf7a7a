//! Service applications and their helpers, as heptapod-paas-runner's `clever-service-docker`
//! executor meets them on Clever Cloud.
//!
//! An application created without `instanceLifetime` (or with `REGULAR`) is a service
//! application: it gets its own loopback listener at creation ([`server`]), given as its
//! `vhosts[0].fqdn` (`127.0.0.1:PORT`) and closed when the application is deleted. Pushing a
//! single `Dockerfile` `FROM` the configured helper image boots its helper ([`lifecycle`]):
//! after the timing's `helper_boot_delay` it answers `GET /can-take-job` with `true` while
//! idle, and accepts one `POST /launch-job` at a time ([`routes`]), running each job with the
//! simulated inner runner. Every call carries `Authorization: Bearer <token>`, checked
//! against the `HEPTAPOD_PAAS_RUNNER_TOKEN` the helper was deployed with. [`state`] holds what
//! a helper is, [`faults`] the helper faults.

pub mod faults;
pub mod lifecycle;
pub mod routes;
pub mod server;
pub mod state;
