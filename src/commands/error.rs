//! How a command that failed ends: [`CommandError::report`] tells why, and
//! [`CommandError::exit`] is the one place that decides the exit code of
//! each error (the codes and their meaning: `crate::exit`).

use super::check::CheckError;
use super::forget::ForgetError;
use super::list::ListError;
use super::register::RegisterError;
use super::run::RunError;
use super::unregister::UnregisterError;
use super::verify::VerifyError;
use crate::cli_docs::CliDocsError;
use crate::exit::Exit;
use crate::instance_lock::LockError;
use crate::local_checks::LocalCheckError;
use crate::logging::{self, LogFormat, Logging};
use crate::wiring::WiringError;
use paas_actors::state::StateError;
use slog::{error, Level};

/// Why a command failed: the error of that command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `run`.
    #[error(transparent)]
    Run(#[from] RunError),
    /// `register`.
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// `check`.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// `verify`.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// `list`.
    #[error(transparent)]
    List(#[from] ListError),
    /// `unregister`.
    #[error(transparent)]
    Unregister(#[from] UnregisterError),
    /// `forget`.
    #[error(transparent)]
    Forget(#[from] ForgetError),
    /// `generate-cli-docs`.
    #[error(transparent)]
    CliDocs(#[from] CliDocsError),
}

impl CommandError {
    /// The process exit code of this error.
    pub fn exit(&self) -> Exit {
        match self {
            CommandError::Run(e) => run_exit(e),
            CommandError::Register(e) => register_exit(e),
            CommandError::Check(CheckError::Invalid(_)) => Exit::Usage,
            CommandError::Check(CheckError::Local(e)) => local_exit(e),
            CommandError::Check(CheckError::Online(e)) | CommandError::Verify(e) => verify_exit(e),
            CommandError::List(ListError::Config(_)) => Exit::Usage,
            CommandError::Unregister(e) => unregister_exit(e),
            CommandError::Forget(e) => forget_exit(e),
            CommandError::CliDocs(_) => Exit::Failure,
        }
    }

    /// Tells the operator why the command failed: the one function that
    /// does, after every line logged so far (`logging` is flushed: the
    /// `starting` line with the version comes first). `run` reports through
    /// `startup_error`; the other commands on stderr, after the program's
    /// name; `check` prints an invalid configuration's problems as its
    /// output; what was already told (a failed check's table, each failed
    /// unregistration) is not repeated.
    pub fn report(&self, logging: Logging) {
        let CommandError::Run(e) = self else {
            drop(logging);
            return self.report_other();
        };
        report_run(e, logging)
    }

    fn report_other(&self) {
        match self {
            CommandError::Run(_) => {}
            CommandError::Register(e) => eprintln!("heptapod-paas-runner register: {e}"),
            CommandError::Check(CheckError::Invalid(e)) => println!("{e}"),
            CommandError::Check(CheckError::Local(e)) => println!("{e}"),
            CommandError::Check(CheckError::Online(VerifyError::Failed))
            | CommandError::Verify(VerifyError::Failed)
            | CommandError::Unregister(UnregisterError::NotUnregistered(_)) => {}
            CommandError::Unregister(UnregisterError::Config(e)) => {
                eprintln!("heptapod-paas-runner: {e}")
            }
            CommandError::Unregister(e) => eprintln!("heptapod-paas-runner unregister: {e}"),
            CommandError::Check(CheckError::Online(e)) | CommandError::Verify(e) => {
                eprintln!("heptapod-paas-runner: {e}")
            }
            CommandError::List(e) => eprintln!("heptapod-paas-runner: {e}"),
            CommandError::Forget(ForgetError::Config(e)) => eprintln!("heptapod-paas-runner: {e}"),
            CommandError::Forget(e) => eprintln!("heptapod-paas-runner forget: {e}"),
            CommandError::CliDocs(e) => eprintln!("heptapod-paas-runner: {e}"),
        }
    }
}

/// A fatal error of `run`: through the logger in JSON mode (one object per
/// line), else on stderr as the program's message, once the log lines
/// before it are written; under journald each line carries the error
/// priority (`journalctl -p err` shows it), as the logger's lines do.
fn startup_error(logging: Logging, e: &dyn std::fmt::Display) {
    match logging.format {
        LogFormat::Json => error!(logging.logger, "cannot start"; "error" => %e),
        LogFormat::Term => {
            drop(logging);
            eprint!(
                "{}",
                error_lines(
                    logging::journal_from_env(),
                    &format!("heptapod-paas-runner: {e}")
                )
            );
        }
    }
}

/// Pure: `text`'s lines, each prefixed with the error's syslog priority
/// when writing to the journal.
fn error_lines(journal: bool, text: &str) -> String {
    let prefix = match journal {
        true => format!("<{}>", logging::syslog_priority(Level::Error)),
        false => String::new(),
    };
    text.lines()
        .map(|line| format!("{prefix}{line}\n"))
        .collect()
}

/// `run`'s errors: the signal handlers and the final state are told as
/// service log lines, the others as start-up errors.
fn report_run(e: &RunError, logging: Logging) {
    match e {
        RunError::Signals(why) => {
            error!(logging.logger, "cannot install signal handlers"; "error" => %why)
        }
        RunError::FinalState { why, tracked_jobs } => {
            error!(logging.logger, "stopped, but the final state could not be written";
                   "error" => why, "tracked_jobs" => tracked_jobs)
        }
        _ => startup_error(logging, e),
    }
}

fn run_exit(e: &RunError) -> Exit {
    match e {
        RunError::Config(_)
        | RunError::ListenAddress { .. }
        | RunError::Root(_)
        | RunError::Monitoring(_)
        | RunError::Service(_) => Exit::Usage,
        RunError::Local(e) => local_exit(e),
        RunError::State(e) => state_exit(e),
        RunError::Wiring(WiringError::Config { .. }) => Exit::Usage,
        RunError::Wiring(WiringError::Setup(_))
        | RunError::Migration(_)
        | RunError::Runtime(_)
        | RunError::Signals(_)
        | RunError::FinalState { .. } => Exit::Failure,
    }
}

/// The local start-up checks end `run` and `check` with the same code.
fn local_exit(e: &LocalCheckError) -> Exit {
    match e {
        LocalCheckError::Config(_) => Exit::Usage,
        LocalCheckError::Lock(e) => lock_exit(e),
        LocalCheckError::State(e) => state_exit(e),
        LocalCheckError::SystemId { .. } => Exit::Failure,
    }
}

/// A state file that cannot be read or parsed has its own code; a failed
/// write or task is a runtime failure.
fn state_exit(e: &StateError) -> Exit {
    match e {
        StateError::Read { .. } | StateError::Corrupt { .. } => Exit::StateFile,
        StateError::Write { .. } | StateError::Task { .. } => Exit::Failure,
    }
}

fn register_exit(e: &RegisterError) -> Exit {
    match e {
        RegisterError::TokenFile { .. }
        | RegisterError::Ask(_)
        | RegisterError::Url(_)
        | RegisterError::Clash { .. } => Exit::Usage,
        RegisterError::Runtime(_) | RegisterError::Refused(_) | RegisterError::Write { .. } => {
            Exit::Failure
        }
    }
}

fn verify_exit(e: &VerifyError) -> Exit {
    match e {
        VerifyError::Config(_) => Exit::Usage,
        VerifyError::Runtime(_) | VerifyError::Failed => Exit::Failure,
    }
}

fn unregister_exit(e: &UnregisterError) -> Exit {
    match e {
        UnregisterError::Config(_)
        | UnregisterError::NoSuchSection(_)
        | UnregisterError::Read { .. } => Exit::Usage,
        UnregisterError::Lock(e) => lock_exit(e),
        UnregisterError::Edit(_)
        | UnregisterError::Runtime(_)
        | UnregisterError::Rewrite { .. }
        | UnregisterError::NotUnregistered(_) => Exit::Failure,
    }
}

/// A state directory to fix is the operator's; a running holder is not a
/// configuration mistake.
fn forget_exit(e: &ForgetError) -> Exit {
    match e {
        ForgetError::Config(_) | ForgetError::NoStateFile | ForgetError::Unknown { .. } => {
            Exit::Usage
        }
        ForgetError::Lock(e) => lock_exit(e),
        ForgetError::State(e) => state_exit(e),
        ForgetError::Write { .. } => Exit::Failure,
    }
}

fn lock_exit(e: &LockError) -> Exit {
    match e {
        LockError::Directory { .. }
        | LockError::ForeignOwner { .. }
        | LockError::NotAFile { .. } => Exit::Usage,
        LockError::Held { .. } | LockError::Io { .. } => Exit::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_state_directory_is_the_operators_a_held_lock_is_not() {
        let directory = LockError::Directory {
            state_file: PathBuf::from("/nope/state.json"),
            directory: PathBuf::from("/nope"),
            problem: "does not exist".to_string(),
        };
        let held = LockError::Held {
            state_file: PathBuf::from("/srv/state.json"),
            pid: Some(1),
        };
        assert_eq!(
            CommandError::from(RunError::Local(LocalCheckError::Lock(directory))).exit(),
            Exit::Usage
        );
        assert_eq!(
            CommandError::from(RunError::Local(LocalCheckError::Lock(held))).exit(),
            Exit::Failure
        );
        let held = LockError::Held {
            state_file: PathBuf::from("/srv/state.json"),
            pid: None,
        };
        assert_eq!(
            CommandError::from(UnregisterError::Lock(held)).exit(),
            Exit::Failure
        );
        // A lock file to give back or remove is the operator's too.
        let foreign = LockError::ForeignOwner {
            lock_file: PathBuf::from("/srv/state.json.lock"),
            owner: crate::state_owner::UserName { uid: 0, name: None },
            user: crate::state_owner::UserName { uid: 1, name: None },
        };
        assert_eq!(
            CommandError::from(RunError::Local(LocalCheckError::Lock(foreign))).exit(),
            Exit::Usage
        );
        let link = LockError::NotAFile {
            lock_file: PathBuf::from("/srv/state.json.lock"),
            what: "a symbolic link".to_string(),
        };
        assert_eq!(
            CommandError::from(UnregisterError::Lock(link)).exit(),
            Exit::Usage
        );
    }

    #[test]
    fn an_unusable_state_file_has_its_own_code_in_run_and_check() {
        let corrupt = || StateError::Corrupt {
            path: "/srv/state.json".to_string(),
            detail: "the file is empty".to_string(),
        };
        let unreadable = StateError::Read {
            path: "/srv/state.json".to_string(),
            detail: "Permission denied".to_string(),
        };
        assert_eq!(
            CommandError::from(RunError::Local(LocalCheckError::State(corrupt()))).exit(),
            Exit::StateFile
        );
        assert_eq!(
            CommandError::from(CheckError::Local(LocalCheckError::State(corrupt()))).exit(),
            Exit::StateFile
        );
        assert_eq!(
            CommandError::from(RunError::State(unreadable)).exit(),
            Exit::StateFile
        );
        let write = StateError::Write {
            path: "/srv/state.json".to_string(),
            detail: "No space left on device".to_string(),
        };
        assert_eq!(
            CommandError::from(RunError::State(write)).exit(),
            Exit::Failure
        );
    }

    #[test]
    fn start_up_errors_carry_the_error_priority_on_every_line_under_journald() {
        assert_eq!(
            error_lines(
                true,
                "heptapod-paas-runner: invalid file (2 problems):\n  - a\n  - b"
            ),
            "<3>heptapod-paas-runner: invalid file (2 problems):\n<3>  - a\n<3>  - b\n"
        );
        assert_eq!(error_lines(false, "x: y"), "x: y\n");
    }

    #[test]
    fn wiring_errors_split_between_configuration_and_setup() {
        let config = WiringError::Config {
            key: "state_file".to_string(),
            message: "is required".to_string(),
        };
        let setup = WiringError::Setup("no answer".to_string());
        assert_eq!(
            CommandError::from(RunError::Wiring(config)).exit(),
            Exit::Usage
        );
        assert_eq!(
            CommandError::from(RunError::Wiring(setup)).exit(),
            Exit::Failure
        );
    }
}
