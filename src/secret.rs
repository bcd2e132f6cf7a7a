//! The `Secret` type, owned by `paas-actors` (job tokens cross the actor
//! boundary) and re-exported here for the adapters.

pub use paas_actors::secret::{Secret, MASK};
