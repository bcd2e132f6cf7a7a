//! Faults of service applications' helpers, injected at run time like the fake's other
//! faults (in process or with `POST /__sim/helper-faults`): helpers that never become ready,
//! launches refused with 503, helpers that die once idle on standby. Each is consumed by the
//! next helper (or launch) it applies to.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Request to change helper faults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HelperFaultCommand {
    /// The next `count` helper deployments never become ready: `can-take-job` answers
    /// `false` for ever.
    NeverReady {
        /// Number of deployments.
        count: usize,
    },
    /// The next `count` authenticated `launch-job` calls answer 503 (with `Retry-After`
    /// when given) and launch nothing.
    RefuseLaunch {
        /// Number of calls.
        count: usize,
        /// `Retry-After` header value in seconds.
        #[serde(default)]
        retry_after_s: Option<u64>,
    },
    /// The next `count` helpers to finish a job die right after it, idle as on standby:
    /// their listener closes, their application stays.
    DieOnStandby {
        /// Number of helpers.
        count: usize,
    },
    /// Removes every pending helper fault.
    Clear,
}

/// Pending helper faults (as served by `GET /__sim/helper-faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelperFaults {
    /// Deployments still to be made never ready.
    pub never_ready: usize,
    /// Launch refusals still to serve, each with its `Retry-After` seconds.
    pub refuse_launch: VecDeque<Option<u64>>,
    /// Helpers still to die once idle.
    pub die_on_standby: usize,
}

/// Most refusals queued at once (a command asking for more is capped).
const MAX_QUEUED_REFUSALS: usize = 100_000;

impl HelperFaults {
    /// Applies a command.
    pub fn apply(&mut self, cmd: HelperFaultCommand) {
        match cmd {
            HelperFaultCommand::NeverReady { count } => {
                self.never_ready = self.never_ready.saturating_add(count);
            }
            HelperFaultCommand::RefuseLaunch {
                count,
                retry_after_s,
            } => {
                let room = MAX_QUEUED_REFUSALS.saturating_sub(self.refuse_launch.len());
                self.refuse_launch
                    .extend(std::iter::repeat_n(retry_after_s, count.min(room)));
            }
            HelperFaultCommand::DieOnStandby { count } => {
                self.die_on_standby = self.die_on_standby.saturating_add(count);
            }
            HelperFaultCommand::Clear => *self = HelperFaults::default(),
        }
    }

    /// True when the deployment being booted must never become ready (consumes one).
    pub fn take_never_ready(&mut self) -> bool {
        take(&mut self.never_ready)
    }

    /// The refusal the current launch gets, with its `Retry-After` (consumes one).
    pub fn take_refusal(&mut self) -> Option<Option<u64>> {
        self.refuse_launch.pop_front()
    }

    /// True when the helper that just finished a job must die (consumes one).
    pub fn take_die_on_standby(&mut self) -> bool {
        take(&mut self.die_on_standby)
    }
}

fn take(counter: &mut usize) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_one_by_one_and_cleared() {
        let mut f = HelperFaults::default();
        f.apply(HelperFaultCommand::NeverReady { count: 1 });
        f.apply(HelperFaultCommand::RefuseLaunch {
            count: 2,
            retry_after_s: Some(1),
        });
        f.apply(HelperFaultCommand::DieOnStandby { count: 1 });
        assert!(f.take_never_ready());
        assert!(!f.take_never_ready());
        assert_eq!(f.take_refusal(), Some(Some(1)));
        assert_eq!(f.take_refusal(), Some(Some(1)));
        assert_eq!(f.take_refusal(), None);
        f.apply(HelperFaultCommand::RefuseLaunch {
            count: usize::MAX,
            retry_after_s: None,
        });
        assert_eq!(f.refuse_launch.len(), MAX_QUEUED_REFUSALS);
        f.apply(HelperFaultCommand::Clear);
        assert_eq!(f, HelperFaults::default());
    }

    #[test]
    fn commands_read_as_json() {
        let cmd: Result<HelperFaultCommand, _> =
            serde_json::from_str(r#"{"op": "refuse_launch", "count": 3}"#);
        assert_eq!(
            cmd.ok(),
            Some(HelperFaultCommand::RefuseLaunch {
                count: 3,
                retry_after_s: None
            })
        );
    }
}
