//! PAAS executors: implementations of `paas_actors::ports::Paas`.

pub mod clever;
pub mod local_docker;
