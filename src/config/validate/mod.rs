//! Raw TOML tree → typed [`Config`], reporting every problem at once.
//!
//! The keys are read through their declarations (`paas_actors::settings`
//! for the actors' settings, [`super::keys`] for the others), one file per
//! concern: [`global`] (the top level: known, upstream and unknown keys),
//! [`quota`], [`runner`] (a `[[runners]]` section and its trace watch),
//! [`unique`] (unique names across sections), [`clever`], [`service`] and
//! [`local_docker`] (the executors' keys), [`forwarded`] (secrets a
//! multi-tenant runner would share with every tenant).
//!
//! Where it differs from the Python reference (see the module docs of
//! [`super`]): aliases are accepted with a warning, both
//! trace-watch spellings are read, duplicate unique names are refused.

mod clever;
mod forwarded;
mod global;
mod local_docker;
mod quota;
mod runner;
mod service;
mod unique;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::listen_address::ListenAddress;
use paas_actors::settings::SupervisorSettings;
use toml::Value;

use super::error::{ConfigError, Location, Problem};
use super::fields::{as_nonempty_string, Ctx, Section};
use super::keys;
use super::raw::RawDocument;
use super::secrets;
use super::settings::Config;
use super::Loaded;

/// What validation reads from the process environment (injected for tests).
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    /// `DOCKER_HOST`, if set.
    pub docker_host: Option<String>,
}

impl Env {
    /// The real process environment.
    pub fn from_process() -> Self {
        Env {
            docker_host: std::env::var("DOCKER_HOST").ok(),
        }
    }
}

/// Validates a parsed document read from `path`.
pub(crate) fn validate(doc: RawDocument, path: &Path, env: &Env) -> Result<Loaded, ConfigError> {
    let RawDocument { mut table, lines } = doc;
    let mut ctx = Ctx::new(&lines, path.display().to_string());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    secrets::substitute(&mut table, &dir, &mut ctx);
    let config = build(&table, path, env, &mut ctx);
    match config {
        Some(config) if ctx.problems.is_empty() => Ok(Loaded {
            config,
            warnings: ctx.warnings,
        }),
        _ => {
            let mut problems = ctx.problems;
            if problems.is_empty() {
                // Unreachable by construction (every `None` above records a
                // problem), but never return an error that explains nothing.
                problems.push(Problem {
                    key: String::new(),
                    location: Location::Unknown,
                    message: "invalid configuration".to_string(),
                });
            }
            // File order; problems without a line last (sort is stable).
            problems.sort_by_key(|p| match p.location {
                Location::Line(n) | Location::Section(n) => n,
                Location::Unknown => usize::MAX,
            });
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
                warnings: ctx.warnings,
            })
        }
    }
}

fn build(table: &toml::Table, path: &Path, env: &Env, ctx: &mut Ctx<'_>) -> Option<Config> {
    let top = Section::new(table, "");
    global::check_keys(&top, ctx);
    let settings = supervisor_settings(&top, ctx);
    let state_file = top
        .read_key(ctx, &keys::STATE_FILE, as_nonempty_string)
        .map(PathBuf::from);
    let listen_address = listen_address(&top, ctx);
    let log_level = top.read_key(ctx, &keys::LOG_LEVEL, |v| {
        v.as_str().and_then(|s| crate::logging::parse_level(s).ok())
    });
    let log_format = top.read_key(ctx, &keys::LOG_FORMAT, |v| {
        v.as_str()
            .and_then(|s| crate::logging::parse_format(s).ok())
    });

    let config_dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut runners = runner::sections(&top, env, config_dir, ctx);
    unique::check(&mut runners, ctx);
    let names: Vec<&str> = runner_names(table);
    let quota_computation = quota::read(&top, &names, ctx);

    Some(Config {
        settings,
        state_file,
        quota_computation: quota_computation?,
        listen_address,
        log_level,
        log_format,
        runners: runners.into_iter().flatten().collect(),
        path: path.to_path_buf(),
        lines: ctx.lines.clone(),
        restart_values: restart_values(table),
    })
}

/// `listen_address`, in any of GitLab Runner's forms; a refused one is a
/// problem saying why.
fn listen_address(top: &Section<'_>, ctx: &mut Ctx<'_>) -> Option<ListenAddress> {
    let text = top.read_key(ctx, &keys::LISTEN_ADDRESS, as_nonempty_string)?;
    match ListenAddress::parse(&text) {
        Ok(address) => Some(address),
        Err(e) => {
            let path = keys::LISTEN_ADDRESS.name;
            let found = ctx.shown(path, &text);
            ctx.problem(path, format!("{found}: {e}"));
            None
        }
    }
}

/// The actors' global settings: each key declared in [`SupervisorSettings`],
/// read from the top level or from its table (`[quota_computation]`,
/// whose shape [`quota::read`] checks).
fn supervisor_settings(top: &Section<'_>, ctx: &mut Ctx<'_>) -> SupervisorSettings {
    let mut settings = SupervisorSettings::default();
    for setting in SupervisorSettings::KEYS {
        let section = match setting.key.table() {
            None => Some(Section::new(top.table, "")),
            Some(table) => top.table(table),
        };
        if let Some(section) = section {
            section.read_setting(ctx, setting, &mut settings);
        }
    }
    settings
}

/// The values of this crate's keys that need a restart, as written.
fn restart_values(table: &toml::Table) -> BTreeMap<&'static str, Value> {
    keys::restart_keys()
        .filter_map(|k| {
            let value = match k.table() {
                None => table.get(k.name),
                Some(t) => table.get(t)?.as_table()?.get(k.leaf()),
            };
            Some((k.name, value?.clone()))
        })
        .collect()
}

fn runner_names(table: &toml::Table) -> Vec<&str> {
    match table.get("runners") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| r.as_table()?.get("name")?.as_str())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `text` is an http:// or https:// URL with a host.
fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .unwrap_or(false)
}

/// Checks that `text`, at `path`, is an http(s) URL, and warns when it is
/// a plain `http://` URL to a host that is not loopback: tokens would
/// cross the network in clear.
fn check_url(ctx: &mut Ctx<'_>, path: &str, text: &str) {
    if !is_http_url(text) {
        let found = ctx.shown(path, text);
        ctx.problem(
            path,
            format!("expected an http:// or https:// URL, found {found}"),
        );
    }
    let Ok(url) = url::Url::parse(text) else {
        return;
    };
    if url.scheme() == "http" && !crate::git::is_loopback(&url) {
        let found = ctx.shown(path, text);
        ctx.warn(
            path,
            format!(
                "is {found}, a plain http:// URL to a host that is not loopback: tokens \
                 travel unencrypted (expected an https:// URL)"
            ),
        );
    }
}
