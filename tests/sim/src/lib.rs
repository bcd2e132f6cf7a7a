//! `paas-sim`: the simulated world heptapod-paas-runner lives in during
//! tests, benchmarks (`paas-sim bench`, [`bench`]) and the demo: a fake GitLab coordinator, a fake Clever
//! Cloud API, a real git smart-HTTP endpoint (`git http-backend`), a
//! simulated inner runner, and the helper of each service application (its
//! own listener, see [`clever::helper`]). Every server binds 127.0.0.1 on an
//! ephemeral port.

pub mod bench;
pub mod clever;
pub mod coordinator;
pub mod runner_process;
pub mod scenario;
pub mod world;
