//! The integration tests of paas-actors, in one test binary: the service
//! started on fake ports (`paas_actors::testing`), on paused tokio time.

mod common;
mod gauge_property;
mod launch_spacing;
mod lifecycle;
mod long_poll;
mod metrics;
mod progress;
mod quota_property;
mod readiness;
mod reconcile;
mod reload;
mod resume;
mod runner_side;
mod shutdown;
mod standby;
mod standby_property;
mod statistics;
mod write_ahead_property;
