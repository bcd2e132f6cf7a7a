//! `register CONFIG`: asks for what the command line does not give,
//! obtains the runner token from the coordinator and appends the section
//! (the prompts, token kinds and file writing are in `crate::register`);
//! why it could not is a [`RegisterError`].

use crate::cli::RegisterArgs;
use crate::gitlab::{ClientConfigError, RunnersApi, Timeouts};
use crate::register::{self, AskError, Given, Prompter};
use crate::runtime;
use crate::secret::Secret;
use paas_actors::ports::CoordinatorError;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why no section was appended.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// `--token-file` cannot be read.
    #[error("cannot read --token-file {}: {source}", path.display())]
    TokenFile {
        /// The file given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value is missing, invalid or could not be asked for.
    #[error(transparent)]
    Ask(#[from] AskError),
    /// The coordinator URL cannot be used.
    #[error(transparent)]
    Url(#[from] ClientConfigError),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The coordinator refused the token, or did not answer.
    #[error("registration failed: {0}")]
    Refused(CoordinatorError),
    /// Another section of the file already uses the token.
    #[error("{}: {why}; nothing written", path.display())]
    Clash {
        /// The configuration file.
        path: PathBuf,
        /// Which section.
        why: String,
    },
    /// The section cannot be appended.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Turns the terminal's echo on or off (`stty`), for typing a token.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// The `register` command.
pub fn run(args: RegisterArgs) -> Result<(), RegisterError> {
    let config = args.config.path();
    let exists = config.exists();
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    let given = given(&args)?;
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stdout(), interactive);
    if interactive {
        prompter = prompter.with_echo_control(set_echo);
    }
    let answers = register::gather(&mut prompter, exists, config, given)?;
    let api = RunnersApi::new(&answers.url, Timeouts::default())?;
    let system = runtime::system().map_err(RegisterError::Runtime)?;
    let obtained = system.block_on(register::obtain_token(&api, &answers, None));
    let registered = obtained.map_err(RegisterError::Refused)?;
    let obtained_at = match answers.token {
        register::TokenKind::Authentication(_) => Some(register::rfc3339_utc(SystemTime::now())),
        register::TokenKind::Registration(_) => None,
    };
    if exists {
        check_existing(config, registered.token.expose())?;
    }
    let section = register::render_section(&answers, &registered, obtained_at.as_deref());
    let header = answers.new_file.as_ref().map(register::render_new_file);
    register::append_section(config, header.as_deref(), &section).map_err(|source| {
        RegisterError::Write {
            path: config.to_path_buf(),
            source,
        }
    })?;
    print!(
        "{}",
        register::next_steps(
            &answers.executor,
            config,
            answers.new_file.is_some(),
            &answers.token
        )
    );
    Ok(())
}

/// The values of the command line, else of GitLab Runner's environment
/// variables; the token of `--token-file` wins over both.
fn given(args: &RegisterArgs) -> Result<Given, RegisterError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut given = Given {
        name: args.name.clone().or_else(|| env("RUNNER_NAME")),
        url: args
            .coordinator_url
            .clone()
            .or_else(|| env("CI_SERVER_URL")),
        registration_token: args
            .registration_token
            .clone()
            .or_else(|| env("REGISTRATION_TOKEN").map(Secret::new)),
        token: args
            .token
            .clone()
            .or_else(|| env("CI_SERVER_TOKEN").map(Secret::new)),
        executor: args.executor.clone().or_else(|| env("RUNNER_EXECUTOR")),
        max_concurrency: args.max_concurrency,
        state_file: args.state_file_path.clone(),
    };
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path).map_err(|source| RegisterError::TokenFile {
            path: path.clone(),
            source,
        })?;
        match register::TokenKind::classify(text.trim()) {
            register::TokenKind::Authentication(t) => {
                given.token = Some(t);
                given.registration_token = None;
            }
            register::TokenKind::Registration(t) => {
                given.registration_token = Some(t);
                given.token = None;
            }
        }
    }
    Ok(given)
}

/// Refuses a token another section of the existing file uses; warns about
/// a shared unique name and about permissions that expose the token.
fn check_existing(path: &Path, token: &str) -> Result<(), RegisterError> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    match register::clash(&existing, token) {
        Err(why) => {
            return Err(RegisterError::Clash {
                path: path.to_path_buf(),
                why,
            })
        }
        Ok(Some(warning)) => eprintln!("warning: {}: {warning}", path.display()),
        Ok(None) => {}
    }
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(w) = register::exposure_warning(meta.permissions().mode(), path) {
            eprintln!("warning: {w}");
        }
    }
    Ok(())
}
