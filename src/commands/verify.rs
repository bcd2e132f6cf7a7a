//! `verify CONFIG` (and `check --online`): for each runner section, the
//! coordinator token (`POST /runners/verify`, with the runner's
//! `system_id` when the service has created one), the trace-watch token (`GET /personal_access_tokens/self`:
//! `api` or `read_api` scope), the Clever token (listing the
//! organisation's applications; in multi-tenant mode, each tenant known
//! from the state file: its organisation and token read from its GitLab
//! group, then its applications listed) and every configured flavor; for
//! local-docker, the engine (`docker version`). Prints one line per check.

use super::known_tenants::{tenants, StateView};
use super::{apply_config_logging, table};
use crate::cli::ConfigArgs;
use crate::config::{Config, ConfigError, RunnerConfig, Tenancy};
use crate::executors::clever::{CleverExecutor, GroupAttributes};
use crate::executors::local_docker::socket_path;
use crate::gitlab::{system_id_path, CoordinatorSettings, GitlabCoordinator, RunnersApi, Timeouts};
use crate::logging::Logging;
use crate::preflight::docker_version;
use crate::runtime;
use paas_actors::ports::Paas;
use slog::{Level, Logger};
use std::rc::Rc;

/// Why `verify` (or `check --online`) fails.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// A check failed: the table printed says which.
    #[error("a check failed")]
    Failed,
}

/// The `verify` command.
pub fn run(args: &ConfigArgs, logging: &mut Logging, cli_level: Level) -> Result<(), VerifyError> {
    let config = super::load(args.config.path())?;
    apply_config_logging(logging, &args.log, cli_level, &config);
    online(&config, logging)
}

/// Runs every check in a new actix system and prints the table (`verify`,
/// `check --online`).
pub fn online(config: &Config, logging: &Logging) -> Result<(), VerifyError> {
    let system = runtime::system().map_err(VerifyError::Runtime)?;
    let rows = system.block_on(checks(config, &logging.logger));
    print!("{}", render(&rows));
    if all_ok(&rows) {
        Ok(())
    } else {
        Err(VerifyError::Failed)
    }
}

/// One check of one runner section.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `runners[i] (name)`.
    pub runner: String,
    /// What was checked.
    pub check: String,
    /// Passed (`None`: not applicable, skipped).
    pub ok: Option<bool>,
    /// What was found.
    pub detail: String,
}

impl Row {
    fn new(runner: &str, check: impl Into<String>, ok: Option<bool>, detail: String) -> Row {
        Row {
            runner: runner.to_string(),
            check: check.into(),
            ok,
            detail,
        }
    }
}

/// Runs every check of every runner section. Must run inside an actix
/// system.
pub async fn checks(config: &Config, logger: &Logger) -> Vec<Row> {
    // The runner manager id the service sends, when it has one: never
    // created here (run as another user, the file would not be readable by
    // the service).
    let system_id = config
        .state_file
        .as_deref()
        .map(system_id_path)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|id| id.trim().to_string())
        .filter(|id| id.starts_with("r_") || id.starts_with("s_"));
    // Read once, only when a runner needs the tenants it records.
    let any_multi = config.runners.iter().any(|r| {
        r.clever
            .as_ref()
            .is_some_and(|c| matches!(c.tenancy, Tenancy::Multi { .. }))
    });
    let state = if any_multi {
        StateView::read(config.state_file.as_deref())
    } else {
        StateView::NotConfigured
    };
    let mut rows = Vec::new();
    for (i, runner) in config.runners.iter().enumerate() {
        let label = format!("runners[{i}] ({})", runner.name);
        rows.extend(
            check_runner(config, runner, &label, system_id.as_deref(), &state, logger).await,
        );
    }
    rows
}

async fn check_runner(
    config: &Config,
    runner: &RunnerConfig,
    label: &str,
    system_id: Option<&str>,
    state: &StateView,
    logger: &Logger,
) -> Vec<Row> {
    let mut rows = Vec::new();
    match RunnersApi::new(&runner.url, Timeouts::default())
        .map(|api| api.with_ca_file(runner.tls_ca_file.clone()))
    {
        Err(e) => rows.push(Row::new(
            label,
            "coordinator token",
            Some(false),
            e.to_string(),
        )),
        Ok(api) => {
            let verified = api.verify(&runner.token, system_id).await;
            rows.push(match verified {
                Ok(v) => Row::new(
                    label,
                    "coordinator token",
                    Some(true),
                    match (v.id, v.token_expires_at) {
                        (Some(id), Some(exp)) => format!("runner id {id}, expires {exp}"),
                        (Some(id), None) => format!("runner id {id}"),
                        (None, _) => "valid".to_string(),
                    },
                ),
                Err(e) => Row::new(label, "coordinator token", Some(false), e.to_string()),
            });
            if let Some(token) = &runner.trace_watch_token {
                rows.push(match api.token_scopes(token).await {
                    Ok(scopes) if scopes.iter().any(|s| s == "api" || s == "read_api") => {
                        Row::new(label, "trace-watch token", Some(true), scopes.join(","))
                    }
                    Ok(scopes) => Row::new(
                        label,
                        "trace-watch token",
                        Some(false),
                        format!(
                            "scopes {:?}: expected `read_api` (or `api`) on an administrator token",
                            scopes
                        ),
                    ),
                    Err(e) => Row::new(label, "trace-watch token", Some(false), e.to_string()),
                });
            }
        }
    }
    if runner.clever.is_some() {
        rows.extend(check_clever(config, runner, label, state, logger).await);
    }
    if let Some(ld) = &runner.local_docker {
        rows.push(match socket_path(&ld.host) {
            Ok(socket) => match docker_version(&ld.host, &socket).await {
                Ok(v) => Row::new(label, "docker engine", Some(true), format!("server {v}")),
                Err(e) => Row::new(label, "docker engine", Some(false), e.to_string()),
            },
            Err(e) => Row::new(label, "docker engine", Some(false), e.to_string()),
        });
    }
    rows
}

/// The Clever executor of a section; in multi-tenant mode with the GitLab
/// client reading group custom attributes, as the service builds it.
fn clever_executor(runner: &RunnerConfig, logger: &Logger) -> Result<CleverExecutor, String> {
    let Some(cc) = &runner.clever else {
        return Err("not a clever-docker runner".to_string());
    };
    let attributes: Option<Rc<dyn GroupAttributes>> = match &cc.tenancy {
        Tenancy::Single { .. } => None,
        Tenancy::Multi {
            attributes_token, ..
        } => {
            let mut settings = CoordinatorSettings::new(runner.url.clone(), runner.token.clone());
            settings.attributes_token = Some(attributes_token.clone());
            let gitlab = GitlabCoordinator::new(settings).map_err(|e| e.to_string())?;
            Some(Rc::new(gitlab))
        }
    };
    CleverExecutor::new(cc.clone(), attributes, logger.clone()).map_err(|e| e.to_string())
}

/// One row per tenant the state file records for this runner (its
/// organisation and token read from its group, its applications listed);
/// one skipped row saying why when none is known.
async fn check_tenants(
    executor: &CleverExecutor,
    runner: &RunnerConfig,
    label: &str,
    state: &StateView,
) -> Vec<Row> {
    let none = |why: String| vec![Row::new(label, "clever tenants", None, why)];
    let snapshot = match state {
        StateView::NotConfigured => {
            return none("no tenant known yet: no state_file is configured".to_string())
        }
        StateView::Absent(path) => {
            return none(format!(
                "no tenant known yet: no state file at {} (tenants are known once the \
                 service has run their jobs)",
                path.display()
            ))
        }
        StateView::Unreadable(why) => {
            return vec![Row::new(label, "clever tenants", Some(false), why.clone())]
        }
        StateView::Read(snapshot) => snapshot,
    };
    let mut names = vec![runner.unique_name.as_str()];
    names.extend(runner.legacy_unique_name.as_deref());
    let known = tenants(snapshot, &names);
    if known.is_empty() {
        return none(
            "no tenant known yet: the state file records no application of this runner".to_string(),
        );
    }
    let mut rows = Vec::new();
    for (namespace, recorded) in known {
        let check = format!("clever tenant {namespace:?}");
        rows.push(
            match executor.check_tenant(&namespace, recorded.as_deref()).await {
                Ok((orga_id, apps)) => Row::new(
                    label,
                    check,
                    Some(true),
                    format!(
                        "organisation {orga_id} readable, {apps} application(s) of this runner"
                    ),
                ),
                Err(e) => Row::new(label, check, Some(false), e),
            },
        );
    }
    rows
}

async fn check_clever(
    config: &Config,
    runner: &RunnerConfig,
    label: &str,
    state: &StateView,
    logger: &Logger,
) -> Vec<Row> {
    let Some(cc) = &runner.clever else {
        return Vec::new();
    };
    let executor = match clever_executor(runner, logger) {
        Ok(e) => e,
        Err(e) => return vec![Row::new(label, "clever token", Some(false), e)],
    };
    let mut rows = Vec::new();
    if matches!(cc.tenancy, Tenancy::Multi { .. }) {
        rows.extend(check_tenants(&executor, runner, label, state).await);
    } else {
        rows.push(match executor.list_resources().await {
            Ok(apps) => Row::new(
                label,
                "clever token",
                Some(true),
                format!(
                    "organisation readable, {} application(s) of this runner",
                    apps.len()
                ),
            ),
            Err(e) => Row::new(label, "clever token", Some(false), e.to_string()),
        });
    }
    let mut flavors = vec![("cc_default_flavor", cc.default_flavor.clone())];
    if let Some(max) = &cc.max_flavor {
        flavors.push(("cc_max_flavor", max.clone()));
    }
    if config.quota_computation.reference_runner == runner.name {
        flavors.push((
            "quota_computation.reference_flavor",
            config.quota_computation.reference_flavor.clone(),
        ));
    }
    for (key, flavor) in flavors {
        rows.push(match executor.flavor_weight(&flavor).await {
            Ok(w) => Row::new(
                label,
                key,
                Some(true),
                format!("{flavor:?} (weight {w:.3})"),
            ),
            Err(e) => Row::new(
                label,
                key,
                Some(false),
                format!("{flavor:?}: {}", e.message),
            ),
        });
    }
    rows
}

/// The table printed by `verify`.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.runner.clone(),
                r.check.clone(),
                match r.ok {
                    Some(true) => "ok",
                    Some(false) => "FAILED",
                    None => "skipped",
                }
                .to_string(),
                r.detail.clone(),
            ]
        })
        .collect();
    table::render(&["runner", "check", "result", "detail"], &cells)
}

/// True when no check failed.
pub fn all_ok(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.ok != Some(false))
}
