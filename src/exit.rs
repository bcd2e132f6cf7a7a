//! The process exit codes of every command, as README.md's "Command line"
//! section lists them (a test compares that table with [`Exit::ALL`]).
//! Which error ends with which code is decided in one place:
//! `commands::CommandError::exit`.

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The service stopped normally, or a command did what it was asked.
    Success,
    /// Something outside the configuration failed (systemd restarts the
    /// service).
    Failure,
    /// Something the operator must fix: the configuration or the command
    /// line (the systemd unit does not restart on it).
    Usage,
    /// The state file cannot be read or does not parse: restarting does
    /// not fix it (the systemd unit does not restart on it); the operator
    /// moves it aside (README, "Corrupt state file").
    StateFile,
}

impl Exit {
    /// Every exit code, in README's order.
    pub const ALL: [Exit; 4] = [Exit::Success, Exit::Failure, Exit::Usage, Exit::StateFile];

    /// The process exit code.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::StateFile => 3,
        }
    }

    /// How README's table of exit codes starts the code's meaning.
    pub fn summary(self) -> &'static str {
        match self {
            Exit::Success => "normal stop",
            Exit::Failure => "runtime failure",
            Exit::Usage => "anything the operator must fix",
            Exit::StateFile => "the state file is unreadable or corrupt",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `| code | meaning |` rows of README's table of exit codes.
    fn readme_rows() -> Vec<(i32, String)> {
        let readme = include_str!("../README.md");
        let table = readme
            .split_once("\nExit codes")
            .map(|(_, after)| after)
            .unwrap_or_default();
        table
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| {
                let mut cells = line.trim_matches('|').splitn(2, '|');
                let code = cells.next()?.trim().parse().ok()?;
                Some((code, cells.next()?.trim().to_string()))
            })
            .collect()
    }

    #[test]
    fn the_unit_does_not_restart_on_what_a_restart_cannot_fix() {
        let unit = include_str!("../deploy/heptapod-paas-runner.service");
        let line = unit
            .lines()
            .find(|l| l.starts_with("RestartPreventExitStatus="))
            .unwrap_or_default();
        let codes: Vec<&str> = line
            .trim_start_matches("RestartPreventExitStatus=")
            .split_whitespace()
            .collect();
        for exit in [Exit::Usage, Exit::StateFile] {
            assert!(
                codes.contains(&exit.code().to_string().as_str()),
                "{exit:?} not in {line:?}"
            );
        }
        assert!(!codes.contains(&"1"), "{line:?}");
    }

    #[test]
    fn readme_lists_every_exit_code_with_its_meaning() {
        let rows = readme_rows();
        let codes: Vec<i32> = rows.iter().map(|(code, _)| *code).collect();
        let expected: Vec<i32> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, expected, "README's exit codes: {rows:?}");
        for (exit, (_, meaning)) in Exit::ALL.iter().zip(&rows) {
            assert!(
                meaning.starts_with(exit.summary()),
                "README says {meaning:?} for {exit:?}"
            );
        }
    }
}
