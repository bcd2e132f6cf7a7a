//! `register CONFIG`: asks for what the command line does not give,
//! obtains the runner token from the coordinator and appends the section
//! (the prompts, token kinds and file writing are in `crate::register`);
//! returns the process exit code.

use crate::cli::RegisterArgs;
use crate::gitlab::{RunnersApi, Timeouts};
use crate::register::{self, Given, Prompter};
use crate::runtime;
use crate::secret::Secret;
use std::io::IsTerminal;
use std::time::SystemTime;

/// Turns the terminal's echo on or off (`stty`), for typing a token.
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// The `register` command.
pub fn run(args: RegisterArgs) -> i32 {
    let exists = args.config.exists();
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    // GitLab Runner's environment variables, as defaults of the flags.
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut given = Given {
        name: args.name.or_else(|| env("RUNNER_NAME")),
        url: args.coordinator_url.or_else(|| env("CI_SERVER_URL")),
        registration_token: args
            .registration_token
            .or_else(|| env("REGISTRATION_TOKEN").map(Secret::new)),
        token: args
            .token
            .or_else(|| env("CI_SERVER_TOKEN").map(Secret::new)),
        executor: args.executor.or_else(|| env("RUNNER_EXECUTOR")),
        max_concurrency: args.max_concurrency,
        state_file: args.state_file_path,
    };
    if let Some(path) = &args.token_file {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "heptapod-paas-runner register: cannot read --token-file {}: {e}",
                    path.display()
                );
                return 2;
            }
        };
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
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stdout(), interactive);
    if interactive {
        prompter = prompter.with_echo_control(set_echo);
    }
    let answers = match register::gather(&mut prompter, exists, &args.config, given) {
        Ok(answers) => answers,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: {e}");
            return 2;
        }
    };
    let api = match RunnersApi::new(&answers.url, Timeouts::default()) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: {e}");
            return 2;
        }
    };
    let system = match runtime::system() {
        Ok(system) => system,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let obtained = system.block_on(register::obtain_token(&api, &answers, None));
    let registered = match obtained {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heptapod-paas-runner register: registration failed: {e}");
            return 1;
        }
    };
    let obtained_at = match answers.token {
        register::TokenKind::Authentication(_) => Some(register::rfc3339_utc(SystemTime::now())),
        register::TokenKind::Registration(_) => None,
    };
    if exists {
        let existing = std::fs::read_to_string(&args.config).unwrap_or_default();
        match register::clash(&existing, registered.token.expose()) {
            Err(why) => {
                eprintln!(
                    "heptapod-paas-runner register: {}: {why}; nothing written",
                    args.config.display()
                );
                return 2;
            }
            Ok(Some(warning)) => eprintln!("warning: {}: {warning}", args.config.display()),
            Ok(None) => {}
        }
        if let Ok(meta) = std::fs::metadata(&args.config) {
            use std::os::unix::fs::PermissionsExt;
            if let Some(w) = register::exposure_warning(meta.permissions().mode(), &args.config) {
                eprintln!("warning: {w}");
            }
        }
    }
    let section = register::render_section(&answers, &registered, obtained_at.as_deref());
    let header = answers.new_file.as_ref().map(register::render_new_file);
    if let Err(e) = register::append_section(&args.config, header.as_deref(), &section) {
        eprintln!(
            "heptapod-paas-runner register: cannot write {}: {e}",
            args.config.display()
        );
        return 1;
    }
    print!(
        "{}",
        register::next_steps(
            &answers.executor,
            &args.config,
            answers.new_file.is_some(),
            &answers.token
        )
    );
    0
}
