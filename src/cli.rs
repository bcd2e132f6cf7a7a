//! Command line: `run` and `register`, plus the Python runner's spellings.
//!
//! Accepted forms (drop-in with `python-heptapod-runner` 0.6.x):
//! - `heptapod-paas-runner run CONFIG [OPTIONS]`
//! - `heptapod-paas-runner CONFIG [OPTIONS]` (no subcommand, as the Python
//!   runner is started: existing systemd units keep working): read as `run`;
//! - `heptapod-paas-runner register CONFIG [OPTIONS]`, also reachable as
//!   `heptapod-paas-runner-register CONFIG [OPTIONS]` (argv\[0\] dispatch).
//!
//! The hidden `generate-cli-docs DIR` writes the man page and the shell
//! completions from this definition (`src/cli_docs.rs`, `scripts/package`).

use crate::exit::Exit;
use crate::secret::Secret;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use structopt::clap::AppSettings;
use structopt::StructOpt;

/// Top-level command.
#[derive(Debug, StructOpt)]
#[structopt(
    name = "heptapod-paas-runner",
    version = crate::build_info::VERSION,
    setting = AppSettings::VersionlessSubcommands,
    about = "Takes CI jobs from GitLab / Heptapod coordinators, then provisions a right-sized \
             Docker host per job on a PAAS (Clever Cloud, or local Docker for development), \
             within a weighted quota.",
    after_help = "The form `heptapod-paas-runner CONFIG [OPTIONS]` (no subcommand) is read as `run`. \
                  `heptapod-paas-runner-register` is `register`. -c/--config CONFIG may replace \
                  CONFIG (register: --config). -l, --debug and --log-format may come before the \
                  command.\n\
                  Exit codes: 0 normal stop, 1 runtime failure, 2 configuration error, 3 state file \
                  unreadable or corrupt."
)]
pub enum Command {
    /// Run the service with the given configuration file.
    Run(RunArgs),
    /// Register a runner with a coordinator and append its `[[runners]]`
    /// section to the configuration file (created if missing).
    Register(RegisterArgs),
    /// Validate the configuration file offline (every error and every
    /// warning at once), then make the start-up checks of `run` that need
    /// no network. Exit 0 when valid, 2 when not, 3 for an unusable state
    /// file.
    Check(CheckArgs),
    /// Check each runner section's credentials and flavors against the
    /// coordinator and the PAAS; prints a table, exit 1 when a check fails.
    Verify(ConfigArgs),
    /// List the runner sections: identity, executor, limits.
    List(ConfigArgs),
    /// Unregister runners from their coordinator and remove their sections
    /// from the configuration file (refused while a service uses its state
    /// file).
    Unregister(UnregisterArgs),
    /// Release a tracked resource by hand: its entry (job and weight) leaves
    /// the state file, so that the service no longer waits for it nor tries
    /// to delete it; the resource itself is not touched. Refused while a
    /// service uses the state file: stop it first.
    Forget(ForgetArgs),
    /// Write the man page and the bash, zsh and fish completions into a
    /// directory (for packaging; hidden from `--help`).
    #[structopt(name = "generate-cli-docs", setting = AppSettings::Hidden)]
    GenerateCliDocs(CliDocsArgs),
}

/// The command words, for the "no such command" suggestion.
pub const COMMANDS: &[&str] = &[
    "run",
    "register",
    "check",
    "verify",
    "list",
    "unregister",
    "forget",
];

/// Commands hidden from `--help` (and from the suggestion).
pub const HIDDEN_COMMANDS: &[&str] = &["generate-cli-docs"];

/// The configuration file of a command: `CONFIG`, or GitLab Runner's
/// `-c/--config CONFIG`.
#[derive(Debug, StructOpt)]
pub struct ConfigFile {
    /// Path to the runner configuration file (GitLab Runner style TOML), or
    /// `-c/--config CONFIG`.
    #[structopt(name = "CONFIG", parse(from_os_str), required_unless = "config-option")]
    positional: Option<PathBuf>,

    /// Path to the runner configuration file (GitLab Runner's option; same
    /// as CONFIG).
    #[structopt(
        name = "config-option",
        short = "c",
        long = "config",
        value_name = "CONFIG",
        parse(from_os_str),
        conflicts_with = "CONFIG"
    )]
    option: Option<PathBuf>,
}

impl ConfigFile {
    /// The file given, either way.
    pub fn path(&self) -> &Path {
        config_path(self.option.as_deref(), self.positional.as_deref())
    }
}

/// `register`'s configuration file: `CONFIG` or `--config CONFIG` (its `-c`
/// is the coordinator URL, as in the Python runner).
#[derive(Debug, StructOpt)]
pub struct RegisterConfigFile {
    /// Path to the configuration file to append to (created if missing), or
    /// `--config CONFIG`.
    #[structopt(name = "CONFIG", parse(from_os_str), required_unless = "config-option")]
    positional: Option<PathBuf>,

    /// Path to the configuration file (GitLab Runner's option; same as
    /// CONFIG; `-c` is `--coordinator-url` here, as in the Python runner).
    #[structopt(
        name = "config-option",
        long = "config",
        value_name = "CONFIG",
        parse(from_os_str),
        conflicts_with = "CONFIG"
    )]
    option: Option<PathBuf>,
}

impl RegisterConfigFile {
    /// The file given, either way.
    pub fn path(&self) -> &Path {
        config_path(self.option.as_deref(), self.positional.as_deref())
    }
}

/// The option's path, else the positional one; the parser requires one of
/// them, so the empty path (a file that cannot be read) is never reached.
fn config_path<'a>(option: Option<&'a Path>, positional: Option<&'a Path>) -> &'a Path {
    option.or(positional).unwrap_or_else(|| Path::new(""))
}

/// Options of `verify` and `list`.
#[derive(Debug, StructOpt)]
pub struct ConfigArgs {
    #[structopt(flatten)]
    pub config: ConfigFile,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// `check` options.
#[derive(Debug, StructOpt)]
pub struct CheckArgs {
    #[structopt(flatten)]
    pub config: ConfigFile,

    /// Also check the credentials and flavors online (as `verify`).
    #[structopt(long = "online")]
    pub online: bool,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// `unregister` options.
#[derive(Debug, StructOpt)]
pub struct UnregisterArgs {
    #[structopt(flatten)]
    pub config: ConfigFile,

    /// The `name` of the runner section to unregister.
    #[structopt(long = "name", required_unless = "all", conflicts_with = "all")]
    pub name: Option<String>,

    /// Unregister every runner section.
    #[structopt(long = "all")]
    pub all: bool,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// `forget` options.
#[derive(Debug, StructOpt)]
pub struct ForgetArgs {
    #[structopt(flatten)]
    pub config: ConfigFile,

    /// The id of the resource to release, as the state file and the logs
    /// name it (`app` field: a Clever Cloud `app_…` id, a local-docker
    /// image name). `verify` and the logs name the resources the service
    /// cannot operate on.
    #[structopt(long = "resource", value_name = "ID")]
    pub resource: String,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// Options common to every command.
#[derive(Debug, StructOpt)]
pub struct LogArgs {
    /// Logging level: CRITICAL, ERROR, WARNING, INFO, DEBUG or TRACE
    /// (case-insensitive; GitLab Runner's warn, fatal and panic too).
    /// Default: the configuration's `log_level`, else INFO.
    #[structopt(short = "l", long = "logging-level", visible_alias = "log-level")]
    pub logging_level: Option<String>,

    /// Log format: `term` (human-readable, to stderr) or `json` (one object
    /// per line, for log shippers). Default: the configuration's
    /// `log_format`, else term.
    #[structopt(long = "log-format", possible_values = &["term", "json"])]
    pub log_format: Option<String>,

    /// Same as `-l DEBUG`.
    #[structopt(long = "debug")]
    pub debug: bool,
}

impl LogArgs {
    /// The logging level given on the command line: `DEBUG` with
    /// `--debug`; `None` when neither `--debug` nor `-l` is given.
    pub fn level(&self) -> Option<&str> {
        if self.debug {
            Some("DEBUG")
        } else {
            self.logging_level.as_deref()
        }
    }
}

/// `run` options.
#[derive(Debug, StructOpt)]
pub struct RunArgs {
    #[structopt(flatten)]
    pub config: ConfigFile,

    /// Stop after N polling cycles of all runners, then shut down gracefully
    /// (for tests).
    #[structopt(long = "poll-cycles")]
    pub poll_cycles: Option<u64>,

    /// On SIGUSR1, log the whole current state (jobs, resources, quota),
    /// secrets masked.
    #[structopt(long = "debug-signal")]
    pub debug_signal: bool,

    /// Serve /metrics, /healthz and /debug/jobs/list on this address
    /// (`host:port`, `:port`, `host`, `[ipv6]:port`; overrides
    /// `listen_address`).
    #[structopt(long = "listen-address")]
    pub listen_address: Option<String>,

    /// Stops after the start-up checks that need no network, as `check`
    /// makes them (exit 0 when they pass): for the tests that compare the
    /// two.
    #[structopt(long = "local-checks-only", hidden = true)]
    pub local_checks_only: bool,

    /// DEPRECATED: overrides `check_interval` (seconds).
    #[structopt(long = "poll-interval")]
    pub poll_interval: Option<u64>,

    /// DEPRECATED: overrides `job_progress_poll_interval` (seconds).
    #[structopt(long = "job-progress-poll-interval")]
    pub job_progress_poll_interval: Option<u64>,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// `register` options. Any value not given on the command line is taken
/// from GitLab Runner's environment variables (`CI_SERVER_URL`,
/// `REGISTRATION_TOKEN`, `CI_SERVER_TOKEN`, `RUNNER_NAME`,
/// `RUNNER_EXECUTOR`), else asked for interactively (when standard input
/// is a terminal; tokens are typed without echo).
#[derive(Debug, StructOpt)]
pub struct RegisterArgs {
    #[structopt(flatten)]
    pub config: RegisterConfigFile,

    /// Runner name (description shown in GitLab).
    #[structopt(long = "name")]
    pub name: Option<String>,

    /// Base URL of the GitLab / Heptapod instance (`--url` is GitLab
    /// Runner's spelling).
    #[structopt(short = "c", long = "coordinator-url", visible_alias = "url")]
    pub coordinator_url: Option<String>,

    /// Legacy registration token (instance, group or project settings).
    #[structopt(
        short = "t",
        long = "registration-token",
        conflicts_with = "token",
        parse(from_str = secret_arg)
    )]
    pub registration_token: Option<Secret>,

    /// Runner authentication token (`glrt-…`) of a runner created in the
    /// GitLab UI or API: verified, no registration (GitLab ≥ 15.10 flow).
    #[structopt(long = "token", parse(from_str = secret_arg))]
    pub token: Option<Secret>,

    /// Reads the token (registration or `glrt-…`) from this file, so that
    /// it does not appear in the process arguments.
    #[structopt(
        long = "token-file",
        parse(from_os_str),
        conflicts_with_all = &["token", "registration-token"]
    )]
    pub token_file: Option<PathBuf>,

    /// Executor of the new runner section.
    #[structopt(short = "e", long = "executor", possible_values = &["clever-docker", "local-docker"])]
    pub executor: Option<String>,

    /// When creating the file: maximum number of concurrent jobs across all
    /// runners (`concurrent`).
    #[structopt(long = "max-concurrency")]
    pub max_concurrency: Option<u64>,

    /// When creating the file: path of the state file (`state_file`).
    #[structopt(long = "state-file-path", parse(from_os_str))]
    pub state_file_path: Option<PathBuf>,

    /// Never prompt: fail if a required value is missing.
    #[structopt(long = "non-interactive")]
    pub non_interactive: bool,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// `generate-cli-docs` options.
#[derive(Debug, StructOpt)]
pub struct CliDocsArgs {
    /// Directory to write into (created if missing; files are replaced).
    #[structopt(parse(from_os_str))]
    pub dir: PathBuf,

    #[structopt(flatten)]
    pub log: LogArgs,
}

/// Tokens given on the command line are secrets from the start (never in a
/// `Debug` output).
fn secret_arg(value: &str) -> Secret {
    Secret::new(value)
}

impl Command {
    /// The logging options of whichever command was chosen.
    pub fn log_args(&self) -> &LogArgs {
        match self {
            Command::Run(args) => &args.log,
            Command::Register(args) => &args.log,
            Command::Check(args) => &args.log,
            Command::Verify(args) | Command::List(args) => &args.log,
            Command::Unregister(args) => &args.log,
            Command::Forget(args) => &args.log,
            Command::GenerateCliDocs(args) => &args.log,
        }
    }
}

/// The options of every command that GitLab Runner takes before the
/// command word (`gitlab-runner --debug run`), and whether each takes a
/// value.
const GLOBAL_OPTIONS: &[(&str, bool)] = &[
    ("--debug", false),
    ("-l", true),
    ("--logging-level", true),
    ("--log-level", true),
    ("--log-format", true),
];

/// How many of the leading `args` are [`GLOBAL_OPTIONS`] with their values
/// (`-l DEBUG`, `-lDEBUG`, `--log-format=json`, `--debug`).
fn leading_globals(args: &[OsString]) -> usize {
    let mut taken = 0;
    while let Some(arg) = args.get(taken).and_then(|a| a.to_str()) {
        let step = GLOBAL_OPTIONS.iter().find_map(|&(name, takes_value)| {
            let attached = arg
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('=') || (name == "-l" && !rest.is_empty()));
            if arg == name {
                Some(if takes_value { 2 } else { 1 })
            } else if takes_value && attached {
                Some(1)
            } else {
                None
            }
        });
        match step {
            Some(n) => taken += n,
            None => break,
        }
    }
    taken.min(args.len())
}

/// Whether `word` chooses a command (or the help of one).
fn is_command_word(word: &str) -> bool {
    COMMANDS.contains(&word) || HIDDEN_COMMANDS.contains(&word) || word == "help"
}

/// Rewrites the raw arguments into the canonical subcommand form:
/// `heptapod-paas-runner-register X` → `… register X`; global options
/// before the command word → after it (`--debug run X` → `run --debug X`);
/// a first argument that is neither a subcommand nor a top-level flag →
/// `… run …`.
pub fn canonical_args<I: IntoIterator<Item = OsString>>(raw: I) -> Vec<OsString> {
    let mut args: Vec<OsString> = raw.into_iter().collect();
    if args.is_empty() {
        args.push(OsString::from("heptapod-paas-runner"));
    }
    let program = PathBuf::from(&args[0]);
    let invoked_as_register = program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-register"));
    args[0] = OsString::from("heptapod-paas-runner");
    if invoked_as_register {
        args.insert(1, OsString::from("register"));
        return args;
    }
    let globals = leading_globals(args.get(1..).unwrap_or_default());
    if globals > 0 {
        match args.get(1 + globals).and_then(|a| a.to_str()) {
            Some(word) if is_command_word(word) => {
                let moved: Vec<OsString> = args.drain(1..1 + globals).collect();
                args.splice(2..2, moved);
            }
            // They mean nothing to `--help` / `--version` of the program.
            Some("-h" | "--help" | "-V" | "--version") => {
                args.drain(1..1 + globals);
            }
            _ => {}
        }
    }
    let first = args.get(1).and_then(|a| a.to_str()).map(str::to_owned);
    let keeps_as_is = match first.as_deref() {
        None => true,
        Some(a) => is_command_word(a) || matches!(a, "-h" | "--help" | "-V" | "--version"),
    };
    if !keeps_as_is {
        args.insert(1, OsString::from("run"));
    }
    args
}

/// Refuses a first argument that is neither a command, an option nor an
/// existing file, when it looks like a mistyped command (no `/`, no `.`):
/// "no such command or file", with the closest command.
pub fn unknown_word(raw: &[OsString]) -> Option<String> {
    let program = raw.first().map(PathBuf::from)?;
    if program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with("-register"))
    {
        return None;
    }
    let globals = leading_globals(raw.get(1..).unwrap_or_default());
    let word = raw.get(1 + globals)?.to_str()?;
    if word.starts_with('-')
        || word.contains('/')
        || word.contains('.')
        || is_command_word(word)
        || Path::new(word).exists()
    {
        return None;
    }
    let hint = match crate::config::closest_word(word, COMMANDS) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => format!("; commands: {}", COMMANDS.join(", ")),
    };
    Some(format!(
        "no such command or file: `{word}`{hint} (see `heptapod-paas-runner --help`)"
    ))
}

/// Parses the process arguments. `--help` and `--version` print and exit 0;
/// a usage error prints and exits 2 (as documented: configuration or usage
/// error).
pub fn from_env() -> Command {
    let raw: Vec<OsString> = std::env::args_os().collect();
    if let Some(message) = unknown_word(&raw) {
        eprintln!("heptapod-paas-runner: {message}");
        std::process::exit(Exit::Usage.code());
    }
    match Command::from_iter_safe(canonical_args(raw)) {
        Ok(command) => command,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", e.message);
            std::process::exit(Exit::Usage.code());
        }
        Err(e) => {
            println!("{}", e.message);
            std::process::exit(Exit::Success.code());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, structopt::clap::Error> {
        Command::from_iter_safe(canonical_args(args.iter().map(OsString::from)))
    }

    #[test]
    fn seed_form_is_run() {
        let cmd = parse(&["heptapod-paas-runner", "/etc/runner.toml"]).expect("parses");
        match cmd {
            Command::Run(a) => {
                assert_eq!(a.config.path(), Path::new("/etc/runner.toml"));
                assert_eq!(a.log.logging_level, None);
                assert_eq!(a.log.log_format, None);
                assert_eq!(a.log.level(), None);
                assert!(!a.debug_signal);
            }
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn options_before_the_config_still_mean_run() {
        let cmd = parse(&[
            "/usr/bin/heptapod-paas-runner",
            "-l",
            "DEBUG",
            "--poll-cycles",
            "3",
            "--debug-signal",
            "c.toml",
        ])
        .expect("parses");
        match cmd {
            Command::Run(a) => {
                assert_eq!(a.log.logging_level.as_deref(), Some("DEBUG"));
                assert_eq!(a.poll_cycles, Some(3));
                assert!(a.debug_signal);
                assert_eq!(a.config.path(), Path::new("c.toml"));
            }
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn register_by_program_name_and_by_subcommand() {
        for args in [
            &[
                "/venv/bin/heptapod-paas-runner-register",
                "c.toml",
                "--name",
                "n",
            ][..],
            &["heptapod-paas-runner", "register", "c.toml", "--name", "n"][..],
        ] {
            match parse(args).expect("parses") {
                Command::Register(a) => {
                    assert_eq!(a.config.path(), Path::new("c.toml"));
                    assert_eq!(a.name.as_deref(), Some("n"));
                }
                other => panic!("expected register, got {other:?}"),
            }
        }
    }

    #[test]
    fn register_refuses_both_token_kinds() {
        let res = parse(&[
            "heptapod-paas-runner",
            "register",
            "c.toml",
            "-t",
            "GR1348941abc",
            "--token",
            "glrt-abc",
        ]);
        assert!(res.is_err());
    }

    #[test]
    fn bad_log_format_is_refused() {
        assert!(parse(&[
            "heptapod-paas-runner",
            "run",
            "c.toml",
            "--log-format",
            "xml"
        ])
        .is_err());
    }

    #[test]
    fn subcommands_parse_and_debug_is_an_alias() {
        match parse(&["heptapod-paas-runner", "check", "c.toml", "--online"]).expect("check") {
            Command::Check(a) => assert!(a.online),
            other => panic!("expected check, got {other:?}"),
        }
        match parse(&["heptapod-paas-runner", "verify", "c.toml", "--debug"]).expect("verify") {
            Command::Verify(a) => assert_eq!(a.log.level(), Some("DEBUG")),
            other => panic!("expected verify, got {other:?}"),
        }
        match parse(&["heptapod-paas-runner", "c.toml", "--debug"]).expect("run") {
            Command::Run(a) => assert_eq!(a.log.level(), Some("DEBUG")),
            other => panic!("expected run, got {other:?}"),
        }
        assert!(matches!(
            parse(&["heptapod-paas-runner", "list", "c.toml"]),
            Ok(Command::List(_))
        ));
        assert!(matches!(
            parse(&["heptapod-paas-runner", "unregister", "c.toml", "--all"]),
            Ok(Command::Unregister(_))
        ));
        match parse(&[
            "heptapod-paas-runner",
            "forget",
            "-c",
            "c.toml",
            "--resource",
            "app_1",
        ])
        .expect("forget")
        {
            Command::Forget(a) => {
                assert_eq!(a.resource, "app_1");
                assert_eq!(a.config.path(), std::path::Path::new("c.toml"));
            }
            other => panic!("expected forget, got {other:?}"),
        }
        // The resource is required.
        assert!(parse(&["heptapod-paas-runner", "forget", "c.toml"]).is_err());
        // One of --name / --all, not both.
        assert!(parse(&["heptapod-paas-runner", "unregister", "c.toml"]).is_err());
        assert!(parse(&[
            "heptapod-paas-runner",
            "unregister",
            "c.toml",
            "--all",
            "--name",
            "x"
        ])
        .is_err());
    }

    #[test]
    fn unknown_words_suggest_the_closest_command() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let msg =
            unknown_word(&args(&["heptapod-paas-runner", "verfy", "c.toml"])).expect("refused");
        assert!(msg.contains("no such command or file: `verfy`"), "{msg}");
        assert!(msg.contains("did you mean `verify`?"), "{msg}");
        for ok in [
            &["heptapod-paas-runner", "verify", "c.toml"][..],
            &["heptapod-paas-runner", "c.toml"][..],
            &["heptapod-paas-runner", "/etc/runner"][..],
            &["heptapod-paas-runner", "-l", "DEBUG", "c.toml"][..],
            &["heptapod-paas-runner-register", "config"][..],
        ] {
            assert_eq!(unknown_word(&args(ok)), None, "{ok:?}");
        }
    }

    #[test]
    fn config_option_is_accepted_wherever_config_is() {
        for args in [
            &["heptapod-paas-runner", "run", "-c", "c.toml"][..],
            &["heptapod-paas-runner", "run", "--config", "c.toml"][..],
            &["heptapod-paas-runner", "run", "--config=c.toml"][..],
            &["heptapod-paas-runner", "-c", "c.toml"][..],
            &[
                "heptapod-paas-runner",
                "--config",
                "c.toml",
                "--poll-cycles",
                "1",
            ][..],
        ] {
            match parse(args) {
                Ok(Command::Run(a)) => assert_eq!(a.config.path(), Path::new("c.toml"), "{args:?}"),
                other => panic!("{args:?}: expected run, got {other:?}"),
            }
        }
        for word in ["check", "verify", "list"] {
            let cmd = parse(&["heptapod-paas-runner", word, "-c", "c.toml"]).expect(word);
            let path = match &cmd {
                Command::Check(a) => a.config.path(),
                Command::Verify(a) | Command::List(a) => a.config.path(),
                other => panic!("{word}: {other:?}"),
            };
            assert_eq!(path, Path::new("c.toml"), "{word}");
        }
        match parse(&[
            "heptapod-paas-runner",
            "unregister",
            "--all",
            "--config",
            "c.toml",
        ]) {
            Ok(Command::Unregister(a)) => assert_eq!(a.config.path(), Path::new("c.toml")),
            other => panic!("expected unregister, got {other:?}"),
        }
        // register: `-c` stays the coordinator URL (the Python runner's flag).
        match parse(&[
            "heptapod-paas-runner",
            "register",
            "--config",
            "c.toml",
            "-c",
            "https://gitlab.example",
        ]) {
            Ok(Command::Register(a)) => {
                assert_eq!(a.config.path(), Path::new("c.toml"));
                assert_eq!(a.coordinator_url.as_deref(), Some("https://gitlab.example"));
            }
            other => panic!("expected register, got {other:?}"),
        }
        match parse(&[
            "heptapod-paas-runner",
            "register",
            "c.toml",
            "--url",
            "https://g.example",
        ]) {
            Ok(Command::Register(a)) => {
                assert_eq!(a.coordinator_url.as_deref(), Some("https://g.example"))
            }
            other => panic!("expected register, got {other:?}"),
        }
        // One of them, not both, not neither.
        assert!(parse(&["heptapod-paas-runner", "check", "a.toml", "-c", "b.toml"]).is_err());
        assert!(parse(&["heptapod-paas-runner", "check"]).is_err());
        assert!(parse(&["heptapod-paas-runner", "run", "--poll-cycles", "1"]).is_err());
    }

    #[test]
    fn global_options_may_come_before_the_command() {
        match parse(&["heptapod-paas-runner", "--debug", "run", "c.toml"]) {
            Ok(Command::Run(a)) => {
                assert_eq!(a.log.level(), Some("DEBUG"));
                assert_eq!(a.config.path(), Path::new("c.toml"));
            }
            other => panic!("expected run, got {other:?}"),
        }
        match parse(&[
            "heptapod-paas-runner",
            "--log-format",
            "json",
            "-l",
            "warn",
            "check",
            "-c",
            "c.toml",
        ]) {
            Ok(Command::Check(a)) => {
                assert_eq!(a.log.log_format.as_deref(), Some("json"));
                assert_eq!(a.log.level(), Some("warn"));
            }
            other => panic!("expected check, got {other:?}"),
        }
        match parse(&[
            "heptapod-paas-runner",
            "--log-level=debug",
            "--log-format=json",
            "verify",
            "c.toml",
        ]) {
            Ok(Command::Verify(a)) => {
                assert_eq!(a.log.level(), Some("debug"));
                assert_eq!(a.log.log_format.as_deref(), Some("json"));
            }
            other => panic!("expected verify, got {other:?}"),
        }
        // Before a configuration file, they are `run`'s, as before.
        match parse(&["heptapod-paas-runner", "-lDEBUG", "c.toml"]) {
            Ok(Command::Run(a)) => assert_eq!(a.log.level(), Some("DEBUG")),
            other => panic!("expected run, got {other:?}"),
        }
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let msg = unknown_word(&args(&[
            "heptapod-paas-runner",
            "--debug",
            "lsit",
            "c.toml",
        ]))
        .expect("refused");
        assert!(msg.contains("did you mean `list`?"), "{msg}");
        assert_eq!(
            canonical_args(args(&["heptapod-paas-runner", "--debug", "--version"])),
            args(&["heptapod-paas-runner", "--version"])
        );
    }

    #[test]
    fn help_and_version_are_not_rewritten() {
        for flag in ["--help", "-h", "--version", "-V"] {
            let args = canonical_args(["heptapod-paas-runner", flag].iter().map(OsString::from));
            assert_eq!(args.len(), 2, "{flag}");
        }
    }
}
