//! `register`: obtain a runner token from a coordinator and append a
//! `[[runners]]` section to the configuration file.
//!
//! The user's file is never re-serialised: a new section is appended as
//! text, so existing content and comments stay byte-identical. A new file is
//! created with mode 0600 and the global `state_file` and `concurrent`
//! keys. Values missing from the command line are asked for interactively,
//! again and again until valid (the Python `heptapod-paas-runner-register`
//! flow). The network part is [`obtain_token`]: `POST /runners` with a
//! legacy registration token, or `POST /runners/verify` with a `glrt-`
//! runner authentication token (GitLab's current flow).

use crate::gitlab::{RegisteredRunner, RunnersApi};
use crate::secret::Secret;
use paas_actors::ports::CoordinatorError;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Executors a runner section may name, with their description.
pub const EXECUTORS: &[(&str, &str)] = &[
    ("clever-docker", "Clever Cloud Docker"),
    ("local-docker", "Local Docker, for testing purposes only"),
];

/// How the new runner gets its token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// Legacy registration token: `POST /runners`.
    Registration(Secret),
    /// Runner authentication token (`glrt-…`): verified only.
    Authentication(Secret),
}

impl TokenKind {
    /// A token typed at the prompt: `glrt-`/`glrtr-` tokens authenticate a
    /// runner created in GitLab; anything else is a registration token.
    pub fn classify(token: &str) -> TokenKind {
        if token.starts_with("glrt-") || token.starts_with("glrtr-") {
            TokenKind::Authentication(Secret::new(token))
        } else {
            TokenKind::Registration(Secret::new(token))
        }
    }
}

/// Everything needed to append a section, once asked and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    /// Runner name.
    pub name: String,
    /// Coordinator base URL, as typed.
    pub url: String,
    /// How to obtain the runner token.
    pub token: TokenKind,
    /// `clever-docker` or `local-docker`.
    pub executor: String,
    /// For a new file: `state_file` and `concurrent`.
    pub new_file: Option<NewFile>,
}

/// Global keys written when the configuration file does not exist yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    /// `state_file`.
    pub state_file: PathBuf,
    /// `concurrent`.
    pub concurrent: u64,
}

/// Values given on the command line (any may be missing).
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `--name`.
    pub name: Option<String>,
    /// `--coordinator-url`.
    pub url: Option<String>,
    /// `--registration-token`.
    pub registration_token: Option<Secret>,
    /// `--token`.
    pub token: Option<Secret>,
    /// `--executor`.
    pub executor: Option<String>,
    /// `--max-concurrency`.
    pub max_concurrency: Option<u64>,
    /// `--state-file-path`.
    pub state_file: Option<PathBuf>,
}

/// Why the answers could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// A value is missing and prompting is not possible.
    #[error("missing {0} (give it on the command line, or run interactively)")]
    Missing(&'static str),
    /// A value given is invalid and prompting is not possible.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    /// Input ended before a valid value was typed.
    #[error("input ended while asking for {0}")]
    Eof(&'static str),
    /// Terminal I/O failed.
    #[error("terminal input/output failed: {0}")]
    Io(#[from] io::Error),
}

/// Asks questions on a terminal (or anything readable/writable, in tests).
pub struct Prompter<R, W> {
    input: R,
    output: W,
    interactive: bool,
    hide: Option<Box<dyn Fn(bool)>>,
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    /// A prompter; with `interactive == false` a missing value is an error.
    pub fn new(input: R, output: W, interactive: bool) -> Self {
        Prompter {
            input,
            output,
            interactive,
            hide: None,
        }
    }

    /// Calls `echo(false)` before reading a secret and `echo(true)` after
    /// (for a terminal: `stty -echo` / `stty echo`).
    pub fn with_echo_control(mut self, echo: impl Fn(bool) + 'static) -> Self {
        self.hide = Some(Box::new(echo));
        self
    }

    /// [`Prompter::ask`] with the typed line not echoed.
    fn ask_secret<T>(
        &mut self,
        what: &'static str,
        given: Option<String>,
        intro: &str,
        prompt: &str,
        convert: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, AskError> {
        if given.is_some() || !self.interactive {
            return self.ask(what, given, intro, prompt, convert);
        }
        if let Some(echo) = &self.hide {
            echo(false);
        }
        let answer = self.ask(what, given, intro, prompt, convert);
        if let Some(echo) = &self.hide {
            echo(true);
            // The newline typed by the user was not echoed either.
            writeln!(self.output)?;
        }
        answer
    }

    /// Returns `given` if valid, else asks until `convert` accepts a line.
    fn ask<T>(
        &mut self,
        what: &'static str,
        given: Option<String>,
        intro: &str,
        prompt: &str,
        convert: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, AskError> {
        if let Some(value) = given {
            match convert(value.trim()) {
                Ok(v) => return Ok(v),
                Err(why) if !self.interactive => return Err(AskError::Invalid(what, why)),
                Err(why) => writeln!(self.output, "Invalid {what}: {why}")?,
            }
        }
        if !self.interactive {
            return Err(AskError::Missing(what));
        }
        writeln!(self.output, "{intro}")?;
        // Bounded: a script piping endless garbage must not loop forever.
        for _ in 0..100 {
            write!(self.output, "{prompt}: ")?;
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                return Err(AskError::Eof(what));
            }
            match convert(line.trim()) {
                Ok(v) => return Ok(v),
                Err(why) => writeln!(self.output, "Invalid {what}: {why}")?,
            }
        }
        Err(AskError::Eof(what))
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_owned())
    }
}

fn http_url(s: &str) -> Result<String, String> {
    let parsed = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL ({e})"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(s.to_owned()),
        _ => Err(format!("`{s}` is not an http(s) URL")),
    }
}

fn positive(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{s}` is not a positive integer")),
    }
}

fn executor(s: &str) -> Result<String, String> {
    if EXECUTORS.iter().any(|(name, _)| *name == s) {
        Ok(s.to_owned())
    } else {
        let names: Vec<&str> = EXECUTORS.iter().map(|(n, _)| *n).collect();
        Err(format!("`{s}` is not one of {}", names.join(", ")))
    }
}

/// Gathers every answer, prompting for what `given` lacks.
pub fn gather<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    config_exists: bool,
    config_path: &Path,
    given: Given,
) -> Result<Answers, AskError> {
    let new_file = if config_exists {
        None
    } else {
        Some(ask_new_file(prompter, config_path, &given)?)
    };
    let url = prompter.ask(
        "coordinator URL",
        given.url,
        "Please enter the base URL of the GitLab / Heptapod instance to run for",
        "URL",
        http_url,
    )?;
    let name = prompter.ask(
        "runner name",
        given.name,
        "Please enter the runner name",
        "Name",
        non_empty,
    )?;
    let token = match (given.token, given.registration_token) {
        (Some(t), _) if !t.expose().trim().is_empty() => {
            TokenKind::Authentication(Secret::new(t.expose().trim()))
        }
        (_, given_reg) => prompter.ask_secret(
            "token",
            given_reg.map(|t| t.expose().to_owned()),
            "Please enter a registration token, or the runner authentication token \
             (glrt-…) of a runner created in GitLab",
            "Token",
            |s| non_empty(s).map(|t| TokenKind::classify(&t)),
        )?,
    };
    let listed: Vec<String> = EXECUTORS
        .iter()
        .map(|(n, d)| format!("  {n} ({d})"))
        .collect();
    let executor = prompter.ask(
        "executor",
        given.executor,
        &format!(
            "Please choose an executor. Available choices are:\n{}",
            listed.join("\n")
        ),
        "Executor",
        executor,
    )?;
    Ok(Answers {
        name,
        url,
        token,
        executor,
        new_file,
    })
}

/// The global keys of a configuration file that does not exist yet.
fn ask_new_file<R: BufRead, W: Write>(
    prompter: &mut Prompter<R, W>,
    config_path: &Path,
    given: &Given,
) -> Result<NewFile, AskError> {
    writeln!(prompter.output, "This is a brand new configuration file!")?;
    let state_file = prompter.ask(
        "state file path",
        given.state_file.as_ref().map(|p| p.display().to_string()),
        "Please enter the state file path (keeps track of jobs across restarts; \
         its directory must be writable by the service user)",
        "State file path",
        |s| non_empty(s).map(PathBuf::from),
    )?;
    let concurrent = prompter.ask(
        "concurrency",
        given.max_concurrency.map(|n| n.to_string()),
        &format!(
            "Please choose the maximum number of concurrent jobs across all runners \
             defined in {}",
            config_path.display()
        ),
        "Concurrency",
        positive,
    )?;
    Ok(NewFile {
        state_file,
        concurrent,
    })
}

/// Obtains the runner token: registers with a registration token (the
/// runner is created paused, as the Python runner does), or verifies a
/// runner authentication token.
pub async fn obtain_token(
    api: &RunnersApi,
    answers: &Answers,
    system_id: Option<&str>,
) -> Result<RegisteredRunner, CoordinatorError> {
    match &answers.token {
        TokenKind::Registration(token) => api.register(token, &answers.name, true).await,
        TokenKind::Authentication(token) => {
            let verified = api.verify(token, system_id).await?;
            Ok(RegisteredRunner {
                id: verified.id,
                token: token.clone(),
                token_expires_at: verified.token_expires_at,
            })
        }
    }
}

/// `t` as an RFC 3339 UTC datetime with seconds precision
/// (`2026-11-27T20:00:00Z`), for `token_obtained_at`.
pub fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// A TOML basic string literal for `value` (quotes and escapes).
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// Global keys of a new configuration file.
pub fn render_new_file(new_file: &NewFile) -> String {
    format!(
        "# heptapod-paas-runner configuration, created by `register`.\n\
         state_file = {}\nconcurrent = {}\n",
        toml_string(&new_file.state_file.display().to_string()),
        new_file.concurrent
    )
}

/// The `[[runners]]` section appended for a registered runner.
pub fn render_section(
    answers: &Answers,
    registered: &RegisteredRunner,
    obtained_at: Option<&str>,
) -> String {
    let mut out = String::from("\n[[runners]]\n");
    out.push_str(&format!("name = {}\n", toml_string(&answers.name)));
    out.push_str(&format!("url = {}\n", toml_string(&answers.url)));
    if let Some(id) = registered.id {
        out.push_str(&format!("id = {id}\n"));
    }
    out.push_str(&format!(
        "token = {}\n",
        toml_string(registered.token.expose())
    ));
    if let Some(at) = obtained_at {
        out.push_str(&format!("token_obtained_at = {at}\n"));
    }
    if let Some(exp) = registered
        .token_expires_at
        .as_deref()
        .filter(|e| is_plain_datetime(e))
    {
        out.push_str(&format!("token_expires_at = {exp}\n"));
    }
    out.push_str(&format!("executor = {}\n", toml_string(&answers.executor)));
    out
}

/// True for an RFC 3339 datetime safe to write bare in TOML (only the
/// characters a datetime uses, and parsable by toml as one).
fn is_plain_datetime(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || "-:TZ.+".contains(c))
        && s.parse::<toml::value::Datetime>().is_ok()
}

/// What the operator must still add, printed after a successful registration.
pub fn next_steps(executor: &str, config_path: &Path, new_file: bool, token: &TokenKind) -> String {
    let mut s = format!(
        "Runner registered and appended to {}.\nBefore running, complete it:\n",
        config_path.display()
    );
    if new_file {
        s.push_str(
            "  - add a [quota_computation] table with reference_runner (this runner's name), \
             reference_flavor and reference_jobs_count\n",
        );
    } else {
        s.push_str(
            "  - check that [quota_computation] exists (reference_runner, reference_flavor, \
             reference_jobs_count)\n",
        );
    }
    match executor {
        "clever-docker" => s.push_str(
            "  - in the new [[runners]] section: cc_orga_id and cc_token (single organisation), \
             or cc_multi_tenant = true and cc_gitlab_namespace_attributes_token\n\
             \x20 - [runners.cc_extra_env] with CC_ENABLE_HEPTAPOD_RUNNER = \"true\"\n\
             \x20 - recommended: [runners.paas_job_trace_watch] with an administrator read_api \
             token\n",
        ),
        _ => s.push_str(
            "  - optionally host (unix:// socket of the Docker engine) and \
             local_docker_network_mode\n",
        ),
    }
    if matches!(token, TokenKind::Registration(_)) {
        s.push_str("  - the runner was created paused: unpause it in GitLab\n");
    }
    if new_file {
        s.push_str(&format!(
            "  - the file was created with mode 0600, owned by you: give the service user read \
             access as deploy/README.md says (chown root:heptapod-runner {0}; chmod 0640 {0})\n",
            config_path.display()
        ));
    }
    s.push_str(&format!(
        "Then check it (heptapod-paas-runner check {0}) and {1}
",
        config_path.display(),
        if new_file {
            "start the service: systemctl enable --now heptapod-paas-runner"
        } else {
            "reload the running service, which starts polling the new runner: systemctl reload \
             heptapod-paas-runner (a file with a mistake is refused and the running \
             configuration stays)"
        }
    ));
    s
}

/// Where the configuration file's permissions let others read the tokens
/// appended to it: `Some(advice)` when the file can be read by "other"
/// users or written by its group (deploy/README.md: mode 0640, owner root,
/// group of the service user).
pub fn exposure_warning(mode: u32, path: &Path) -> Option<String> {
    (mode & 0o027 != 0).then(|| {
        format!(
            "{} has mode {:04o}: the runner token written to it is readable or writable beyond \
             the service user. Use mode 0640, owner root, group of the service user \
             (deploy/README.md), or 0600 owned by the service user",
            path.display(),
            mode & 0o7777
        )
    })
}

/// What another section of the existing file shares with a new runner
/// token: the same token (refused: the runner would be defined twice) or
/// the same unique name (the file would be refused at start-up).
pub fn clash(existing: &str, token: &str) -> Result<Option<String>, String> {
    let Ok(table) = existing.parse::<toml::Table>() else {
        return Ok(None);
    };
    let Some(toml::Value::Array(sections)) = table.get("runners") else {
        return Ok(None);
    };
    let identity = crate::config::unique_name(token);
    for (i, section) in sections.iter().enumerate() {
        let Some(other) = section.get("token").and_then(toml::Value::as_str) else {
            continue;
        };
        let name = section
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("?");
        if other == token {
            return Err(format!(
                "runners[{i}] ({name:?}) already uses this token: the runner is already in the \
                 file"
            ));
        }
        let other_identity = section
            .get("unique_name")
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| crate::config::unique_name(other));
        if other_identity == identity {
            return Ok(Some(format!(
                "runners[{i}] ({name:?}) has the same unique name `{identity}`: add \
                 unique_name = \"…\" (letters, digits, `_`, `-`) to the new section before \
                 starting the service"
            )));
        }
    }
    Ok(None)
}

/// Appends `section` to the file at `path`, creating it (mode 0600) with
/// `header` first when it does not exist. Existing bytes are never
/// rewritten; a missing final newline is added before the section.
pub fn append_section(path: &Path, header: Option<&str>, section: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let len = file.metadata()?.len();
    let mut text = String::new();
    if len == 0 {
        if let Some(h) = header {
            text.push_str(h);
        }
    } else {
        file.seek(SeekFrom::Start(len - 1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(section);
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::fs::PermissionsExt;

    fn prompter(input: &str) -> Prompter<Cursor<Vec<u8>>, Vec<u8>> {
        Prompter::new(Cursor::new(input.as_bytes().to_vec()), Vec::new(), true)
    }

    #[test]
    fn asks_again_on_invalid_input_and_classifies_tokens() {
        let mut p = prompter("/var/state.json\n0\nabc\n4\nnot a url\nhttps://gl.example\n\nrunner-1\nglrt-abcdef\nshell\nclever-docker\n");
        let answers = gather(&mut p, false, Path::new("c.toml"), Given::default()).expect("ok");
        assert_eq!(
            answers.new_file,
            Some(NewFile {
                state_file: PathBuf::from("/var/state.json"),
                concurrent: 4
            })
        );
        assert_eq!(answers.url, "https://gl.example");
        assert_eq!(answers.name, "runner-1");
        assert_eq!(
            answers.token,
            TokenKind::Authentication(Secret::new("glrt-abcdef"))
        );
        assert_eq!(answers.executor, "clever-docker");
        let out = String::from_utf8(p.output).expect("utf8");
        assert!(out.contains("Invalid concurrency"), "{out}");
        assert!(out.contains("Invalid coordinator URL"), "{out}");
        assert!(out.contains("Invalid executor"), "{out}");
        assert!(!out.contains("glrt-abcdef"), "token echoed: {out}");
    }

    #[test]
    fn non_interactive_missing_value_names_it() {
        let mut p = Prompter::new(Cursor::new(Vec::new()), Vec::new(), false);
        let given = Given {
            url: Some("https://gl.example".into()),
            ..Given::default()
        };
        let err = gather(&mut p, true, Path::new("c.toml"), given).expect_err("missing name");
        assert!(matches!(err, AskError::Missing("runner name")), "{err}");
    }

    #[test]
    fn flags_suffice_without_prompting() {
        let mut p = Prompter::new(Cursor::new(Vec::new()), Vec::new(), false);
        let given = Given {
            name: Some("n".into()),
            url: Some("http://127.0.0.1:8080/gitlab".into()),
            registration_token: Some(Secret::new("GR1348941xyz")),
            executor: Some("local-docker".into()),
            ..Given::default()
        };
        let a = gather(&mut p, true, Path::new("c.toml"), given).expect("ok");
        assert_eq!(
            a.token,
            TokenKind::Registration(Secret::new("GR1348941xyz"))
        );
        assert_eq!(a.new_file, None);
    }

    #[test]
    fn eof_while_asking_is_an_error() {
        let mut p = prompter("");
        let err = gather(&mut p, true, Path::new("c.toml"), Given::default()).expect_err("eof");
        assert!(matches!(err, AskError::Eof("coordinator URL")), "{err}");
    }

    fn answers() -> Answers {
        Answers {
            name: "my \"runner\"".into(),
            url: "https://gl.example".into(),
            token: TokenKind::Registration(Secret::new("reg")),
            executor: "clever-docker".into(),
            new_file: None,
        }
    }

    #[test]
    fn section_is_valid_toml_with_escaped_values() {
        let reg = RegisteredRunner {
            id: Some(12),
            token: Secret::new("glrt-tok\"en"),
            token_expires_at: Some("2030-01-02T03:04:05Z".into()),
        };
        let text = render_section(&answers(), &reg, Some("2026-11-27T20:00:00Z"));
        let parsed: toml::Table = toml::from_str(&text).expect("valid toml");
        let runner = &parsed["runners"][0];
        assert_eq!(runner["name"].as_str(), Some("my \"runner\""));
        assert_eq!(runner["token"].as_str(), Some("glrt-tok\"en"));
        assert_eq!(runner["id"].as_integer(), Some(12));
        assert!(runner["token_expires_at"].is_datetime());
        assert_eq!(runner["executor"].as_str(), Some("clever-docker"));
    }

    #[test]
    fn hostile_expiry_is_not_written_bare() {
        let reg = RegisteredRunner {
            id: None,
            token: Secret::new("t"),
            token_expires_at: Some("2030-01-01\n[x]".into()),
        };
        let text = render_section(&answers(), &reg, None);
        assert!(!text.contains("token_expires_at"));
        toml::from_str::<toml::Table>(&text).expect("valid toml");
    }

    #[test]
    fn append_keeps_existing_bytes_and_creates_private_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let existing = dir.path().join("existing.toml");
        let original =
            "# my comments\nconcurrent = 3 # inline\n[quota_computation]\nreference_runner = \"x\"";
        std::fs::write(&existing, original).expect("write");
        append_section(
            &existing,
            Some("ignored = 1\n"),
            "\n[[runners]]\nname = \"a\"\n",
        )
        .expect("append");
        let after = std::fs::read_to_string(&existing).expect("read");
        assert!(after.starts_with(original), "{after}");
        assert!(!after.contains("ignored"));
        toml::from_str::<toml::Table>(&after).expect("still valid toml");

        let fresh = dir.path().join("new.toml");
        let header = render_new_file(&NewFile {
            state_file: PathBuf::from("/srv/state.json"),
            concurrent: 7,
        });
        append_section(&fresh, Some(&header), "\n[[runners]]\nname = \"a\"\n").expect("create");
        let mode = std::fs::metadata(&fresh)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let parsed: toml::Table =
            toml::from_str(&std::fs::read_to_string(&fresh).expect("read")).expect("toml");
        assert_eq!(parsed["concurrent"].as_integer(), Some(7));
        assert_eq!(parsed["state_file"].as_str(), Some("/srv/state.json"));
    }

    #[test]
    fn rfc3339_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        let table = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_809_600, "2026-11-27T20:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
        ];
        for (secs, text) in table {
            assert_eq!(rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs)), text);
        }
    }

    #[test]
    fn next_steps_name_what_is_missing() {
        let reg = TokenKind::Registration(Secret::new("GR1348941x"));
        let s = next_steps("clever-docker", Path::new("c.toml"), true, &reg);
        assert!(s.contains("[quota_computation]"));
        assert!(s.contains("cc_orga_id"));
        assert!(s.contains("cc_token"));
        assert!(s.contains("unpause"));
        assert!(s.contains("chmod 0640 c.toml"), "{s}");
        let glrt = TokenKind::Authentication(Secret::new("glrt-x"));
        let s = next_steps("clever-docker", Path::new("c.toml"), false, &glrt);
        assert!(!s.contains("unpause") && !s.contains("paused"), "{s}");
        assert!(
            s.trim_end()
                .lines()
                .last()
                .is_some_and(|l| l.contains("systemctl reload heptapod-paas-runner")
                    && l.contains("heptapod-paas-runner check c.toml")),
            "{s}"
        );
        let s = next_steps("local-docker", Path::new("c.toml"), true, &glrt);
        assert!(
            s.contains("systemctl enable --now heptapod-paas-runner"),
            "{s}"
        );
    }

    #[test]
    fn a_bad_url_is_one_message() {
        let mut p = Prompter::new(Cursor::new(Vec::new()), Vec::new(), false);
        let given = Given {
            url: Some("not a url".into()),
            name: Some("n".into()),
            ..Given::default()
        };
        let err = gather(&mut p, true, Path::new("c.toml"), given).expect_err("bad url");
        assert!(
            matches!(err, AskError::Invalid("coordinator URL", _)),
            "{err}"
        );
        assert!(err.to_string().contains("not a URL"), "{err}");
        assert!(p.output.is_empty(), "printed twice");
    }

    #[test]
    fn secrets_are_read_without_echo() {
        use std::cell::RefCell;
        use std::rc::Rc;
        let calls = Rc::new(RefCell::new(Vec::new()));
        let seen = calls.clone();
        let mut p = prompter("glrt-secret\nclever-docker\n")
            .with_echo_control(move |on| seen.borrow_mut().push(on));
        let given = Given {
            url: Some("https://gl.example".into()),
            name: Some("n".into()),
            ..Given::default()
        };
        let a = gather(&mut p, true, Path::new("c.toml"), given).expect("ok");
        assert_eq!(
            a.token,
            TokenKind::Authentication(Secret::new("glrt-secret"))
        );
        assert_eq!(*calls.borrow(), vec![false, true]);
    }

    #[test]
    fn exposure_and_clashes_are_told() {
        assert_eq!(exposure_warning(0o600, Path::new("c")), None);
        assert_eq!(exposure_warning(0o640, Path::new("c")), None);
        assert!(exposure_warning(0o644, Path::new("c")).is_some_and(|w| w.contains("0644")));
        assert!(exposure_warning(0o660, Path::new("c")).is_some());
        let file = "[[runners]]\nname = \"a\"\ntoken = \"glrt-t1_abcdefghXYZ\"\n";
        assert!(clash(file, "glrt-t1_abcdefghXYZ").is_err());
        let same_identity = clash(file, "glrt-abcdefghXOTHER").expect("not refused");
        assert!(same_identity.is_some_and(|w| w.contains("unique_name")));
        assert_eq!(clash(file, "glrt-zzzzzzzzzOTHER"), Ok(None));
        assert_eq!(clash("not toml [", "x"), Ok(None));
    }
}
