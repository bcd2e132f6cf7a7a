//! The bare repositories of the fake: a `git` command with a clean environment, repository
//! creation (receive-pack over HTTP, fault hook) and the commit of `refs/heads/master`.

use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Pre-receive hook installed in every repository: rejects the push when the fake asks for it
/// (fault `reject_push`) through the environment of `git http-backend`.
const PRE_RECEIVE_HOOK: &str = "#!/bin/sh\n\
if [ -n \"$PAAS_SIM_REJECT_PUSH\" ]; then\n\
  echo \"paas-sim: push rejected by the pre-receive hook (injected fault)\" >&2\n\
  exit 1\n\
fi\n\
exit 0\n";

/// A `git` command with a clean environment (no system or user configuration).
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `git args…` in `dir`; stdout when it succeeds.
pub async fn git_output(dir: &Path, args: &[&str]) -> io::Result<Vec<u8>> {
    let out = git_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(io::Error::other(format!(
            "git {} failed ({}): {}",
            args.first().copied().unwrap_or(""),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates the bare repository of an application, with receive-pack enabled over HTTP and the
/// fault hook.
pub async fn init_repo(path: &Path) -> io::Result<()> {
    let out = git_command()
        .args(["init", "--bare", "-q", "--initial-branch=master"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "git init failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let config = path.join("config");
    let mut text = tokio::fs::read_to_string(&config).await?;
    text.push_str("[http]\n\treceivepack = true\n");
    tokio::fs::write(&config, text).await?;
    let hook = path.join("hooks").join("pre-receive");
    tokio::fs::create_dir_all(path.join("hooks")).await?;
    tokio::fs::write(&hook, PRE_RECEIVE_HOOK).await?;
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).await?;
    Ok(())
}

/// Commit of `refs/heads/master`, if the branch exists.
pub async fn master_commit(repo: &Path) -> Option<String> {
    let out = git_output(repo, &["rev-parse", "--verify", "-q", "refs/heads/master"])
        .await
        .ok()?;
    let s = String::from_utf8(out).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}
