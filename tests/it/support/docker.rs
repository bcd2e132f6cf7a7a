//! A real Docker engine for the local-docker tests.
//!
//! The engine socket comes from `HPR_TEST_DOCKER_HOST` (`unix://…`, see
//! `scripts/dockerd-start`); without it, [`docker_host`] prints why the test
//! is skipped. No registry is reachable, so job images are built `FROM` a
//! base image made here `FROM scratch` with the statically linked
//! `sim-inner-runner` of paas-sim at `/usr/bin/gitlab-runner`
//! ([`build_base_image`]; the binary is taken from `HPR_TEST_INNER_RUNNER`
//! if set, else built with `cargo rustc … -C target-feature=+crt-static`).
//!
//! [`Cleanup`] removes images and containers when dropped, so that a failed
//! test leaves nothing on the engine either. Set-up and checks use the
//! `docker` CLI synchronously: they are not the code under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the deploy context puts the inner runner's configuration.
pub const INNER_RUNNER_TOML: &str = "/etc/gitlab-runner/runner.toml";

/// The engine socket URL, or `None` (with the reason printed) to skip.
pub fn docker_host(test: &str) -> Option<String> {
    match std::env::var("HPR_TEST_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Some(host),
        _ => {
            eprintln!(
                "SKIPPED {test}: no Docker engine given; set HPR_TEST_DOCKER_HOST=unix://… \
                 (eval \"$(scripts/dockerd-start)\" starts a private one)"
            );
            None
        }
    }
}

/// Runs the docker CLI synchronously against `host`.
pub fn docker(host: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("docker CLI runs")
}

/// True if the engine has image `name`.
pub fn image_exists(host: &str, name: &str) -> bool {
    docker(host, &["image", "inspect", name]).status.success()
}

/// True if the engine has container `name` (in any state).
pub fn container_exists(host: &str, name: &str) -> bool {
    docker(host, &["container", "inspect", name])
        .status
        .success()
}

/// The names in a listing's output that start with `prefix`, or `None`
/// if the listing failed.
fn names_of(out: &Output, prefix: &str) -> Option<Vec<String>> {
    if !out.status.success() {
        return None;
    }
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

fn list_images(host: &str, prefix: &str) -> Option<Vec<String>> {
    let filter = format!("reference={prefix}*");
    let out = docker(
        host,
        &[
            "image",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Repository}}",
        ],
    );
    names_of(&out, prefix)
}

fn list_containers(host: &str, prefix: &str) -> Option<Vec<String>> {
    let filter = format!("name=^{prefix}");
    let out = docker(
        host,
        &[
            "container",
            "ls",
            "--all",
            "--filter",
            &filter,
            "--format",
            "{{.Names}}",
        ],
    );
    names_of(&out, prefix)
}

/// Repositories of the images whose name starts with `prefix`.
pub fn images_with_prefix(host: &str, prefix: &str) -> Vec<String> {
    list_images(host, prefix).expect("docker image ls works")
}

/// Names of the containers (any state) whose name starts with `prefix`.
pub fn containers_with_prefix(host: &str, prefix: &str) -> Vec<String> {
    list_containers(host, prefix).expect("docker container ls works")
}

/// The text of file `path` in container `name` (running or exited), or
/// `None` if the container or the file is not there (any more).
pub fn file_in_container(host: &str, name: &str, path: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("copied");
    let dest_arg = dest.to_str().expect("utf-8 temp path");
    let source = format!("{name}:{path}");
    if !docker(host, &["cp", &source, dest_arg]).status.success() {
        return None;
    }
    std::fs::read_to_string(&dest).ok()
}

/// Removes images and containers at drop, even on test failure: the ones
/// named in `names`, and every one whose name starts with one of
/// `prefixes` (a runner's `hpd-job-<unique name>-`).
pub struct Cleanup {
    /// The engine.
    pub host: String,
    /// Exact image/container names.
    pub names: Vec<String>,
    /// Name prefixes.
    pub prefixes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut containers = self.names.clone();
        let mut images = self.names.clone();
        for prefix in &self.prefixes {
            // No assertion here: a panic while unwinding would abort.
            containers.extend(list_containers(&self.host, prefix).unwrap_or_default());
            images.extend(list_images(&self.host, prefix).unwrap_or_default());
        }
        // Containers first: an image in use by one cannot be removed.
        for name in &containers {
            let _ = docker(&self.host, &["container", "rm", "--force", name]);
        }
        for name in &images {
            let _ = docker(&self.host, &["image", "rm", "--force", name]);
        }
    }
}

/// True if the ELF file has no program interpreter (statically linked).
pub fn is_static_elf(bytes: &[u8]) -> bool {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        bytes.get(o..o + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a) as usize
        })
    };
    if bytes.get(..5) != Some(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .is_some_and(|t| t != PT_INTERP)
    })
}

/// Builds the static stand-in with cargo and returns the artifact path.
fn cargo_build_static_inner_runner() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "rustc",
            "--locked",
            "--quiet",
            "-p",
            "paas-sim",
            "--bin",
            "sim-inner-runner",
            "--message-format=json",
            "--",
            "-C",
            "target-feature=+crt-static",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "static build of sim-inner-runner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "sim-inner-runner")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the sim-inner-runner executable")
}

/// Copies a statically linked sim-inner-runner to `dest`.
pub fn install_static_inner_runner(dest: &Path) {
    if let Some(given) = std::env::var_os("HPR_TEST_INNER_RUNNER") {
        let bytes = std::fs::read(&given).expect("HPR_TEST_INNER_RUNNER is readable");
        assert!(is_static_elf(&bytes), "{given:?} is not statically linked");
        std::fs::write(dest, bytes).expect("copy");
    } else {
        // The uplifted artifact is shared with ordinary (dynamic) builds
        // that may relink it meanwhile: check, and rebuild once if so.
        let mut ok = false;
        for _ in 0..2 {
            let bytes = std::fs::read(cargo_build_static_inner_runner()).expect("artifact");
            if is_static_elf(&bytes) {
                std::fs::write(dest, bytes).expect("copy");
                ok = true;
                break;
            }
        }
        assert!(ok, "could not get a statically linked sim-inner-runner");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Builds the base image (FROM scratch + the stand-in) tagged `tag`.
pub fn build_base_image(host: &str, tag: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    install_static_inner_runner(&dir.path().join("gitlab-runner"));
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY gitlab-runner /usr/bin/gitlab-runner\n",
    )
    .expect("Dockerfile");
    let dir_arg = dir.path().to_str().expect("utf-8 temp path");
    let out = docker(host, &["build", "--quiet", "--tag", tag, dir_arg]);
    assert!(
        out.status.success(),
        "base image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
