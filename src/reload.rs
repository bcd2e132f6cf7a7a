//! SIGHUP: the configuration file is read and validated again, off the
//! service's thread (on the blocking pool, with the secrets and the runner
//! system id files), and its difference with the configuration last
//! applied goes to the supervisor as one typed
//! [`ApplySettings`](paas_actors::service::ApplySettings), whose answer is
//! logged here. What cannot change live (the keys declared `Restart`: the
//! state file, the listen address, the quota reference, the shutdown
//! timeout) is logged as "restart needed" and left as it was; a file that
//! does not validate (or a `tls-ca-file` without certificates) is refused
//! with the messages of start-up and the running configuration stays. The
//! supervisor never reads a file nor calls back here.

use crate::config::{self, Config, ConfigError, RunnerConfig};
use crate::gitlab::{load_or_create_system_id, system_id_path};
use crate::local_checks;
use crate::wiring::{self, Overrides};
use paas_actors::metrics::Metrics;
use paas_actors::ports::Weight;
use paas_actors::service::SettingsSender;
use paas_actors::service::{ApplyOutcome, ApplySettings, ReloadReport, SettingsDiff};
use paas_actors::settings::{changed, Reload, RunnerSettings, SupervisorSettings};
use slog::{error, info, warn, Logger};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::Notify;

/// Pure: the keys that differ between the running configuration and the
/// new one but cannot change without a restart (declared `Restart`).
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = config::restart_keys()
        .filter(|key| running.restart_values.get(key) != new.restart_values.get(key))
        .collect();
    keys.extend(changed(
        SupervisorSettings::KEYS,
        &running.settings,
        &new.settings,
        Reload::Restart,
    ));
    keys
}

/// How the runner sections changed, by unique name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunnerDiff {
    /// Indexes (in the new list) of runners not running now.
    pub added: Vec<usize>,
    /// Names of running runners absent from the new list.
    pub removed: Vec<String>,
    /// Indexes (in the new list) of running runners whose settings changed.
    pub changed: Vec<usize>,
}

/// Pure: `running` are the runners polled now, `new` the new sections.
pub fn diff_runners(
    running: &[(&str, &RunnerSettings)],
    new: &[(&str, &RunnerSettings)],
) -> RunnerDiff {
    let mut diff = RunnerDiff::default();
    for (i, (name, settings)) in new.iter().enumerate() {
        match running.iter().find(|(n, _)| n == name) {
            None => diff.added.push(i),
            Some((_, old)) if old != settings => diff.changed.push(i),
            Some(_) => {}
        }
    }
    for (name, _) in running {
        if !new.iter().any(|(n, _)| n == name) {
            diff.removed.push((*name).to_string());
        }
    }
    diff
}

fn named(runners: &[RunnerConfig]) -> Vec<(&str, &RunnerSettings)> {
    runners
        .iter()
        .map(|r| (r.unique_name.as_str(), &r.settings))
        .collect()
}

/// Asks for a reload (SIGHUP). Requests made while one runs make one more;
/// a request made before the reloads start (during the start-up checks) is
/// kept and served once they start.
#[derive(Clone, Debug, Default)]
pub struct ReloadTrigger(Arc<Notify>);

impl ReloadTrigger {
    /// Asks for a reload.
    pub fn request(&self) {
        self.0.notify_one();
    }
}

/// Told when a reload begins and how it ended (systemd: `RELOADING=1`, then
/// `READY=1`, `crate::notify`).
pub trait ReloadObserver {
    /// A reload begins.
    fn reloading(&self);
    /// It ended: applied (`None`), or refused and why.
    fn reloaded(&self, refused: Option<&str>);
}

/// What the reloads keep: the configuration last applied, and what the
/// service was started with.
pub struct Reloads {
    applied: Config,
    overrides: Overrides,
    quota: Weight,
    metrics: Arc<Metrics>,
    sender: SettingsSender,
    logger: Logger,
    observer: Option<Rc<dyn ReloadObserver>>,
}

impl Reloads {
    /// The reloads of the service started from `running` with `quota`,
    /// sending to its supervisor through `sender`.
    pub fn new(
        running: Config,
        overrides: Overrides,
        quota: Weight,
        metrics: Arc<Metrics>,
        sender: SettingsSender,
        logger: Logger,
    ) -> Self {
        Reloads {
            applied: running,
            overrides,
            quota,
            metrics,
            sender,
            logger,
            observer: None,
        }
    }

    /// Tells `observer` when each reload begins and ends.
    pub fn with_observer(mut self, observer: Rc<dyn ReloadObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Runs the reloads on the current actix system, one at a time, each
    /// when `trigger` asks (a request already made is served at once).
    pub fn start(mut self, trigger: &ReloadTrigger) {
        let asked = trigger.0.clone();
        actix_rt::spawn(async move {
            loop {
                asked.notified().await;
                if let Some(observer) = &self.observer {
                    observer.reloading();
                }
                let outcome = self.reload().await;
                if let Some(observer) = &self.observer {
                    match &outcome {
                        ApplyOutcome::Applied(_) => observer.reloaded(None),
                        ApplyOutcome::Refused(why) => observer.reloaded(Some(why)),
                    }
                }
            }
        });
    }

    /// One reload, logged; its outcome says whether the new file applies
    /// (a refused file is `Refused` with the start-up message).
    pub async fn reload(&mut self) -> ApplyOutcome {
        let log = self.logger.clone();
        info!(log, "SIGHUP received: reloading the configuration";
              "config" => %self.applied.path.display());
        let (new, message) = match self.prepare().await {
            Ok(prepared) => prepared,
            Err(e) => {
                error!(log, "configuration reload refused; the running configuration stays";
                       "error" => &e);
                return ApplyOutcome::Refused(e);
            }
        };
        let outcome = self.sender.apply(message).await;
        let outcome =
            outcome.unwrap_or_else(|| ApplyOutcome::Refused("the service has stopped".into()));
        match &outcome {
            ApplyOutcome::Applied(report) => {
                log_applied(&log, report);
                self.applied = new;
            }
            ApplyOutcome::Refused(why) => {
                error!(log, "configuration reload refused; the running configuration stays";
                       "reason" => why);
            }
        }
        outcome
    }

    /// The new configuration (what needs a restart as it runs) and the
    /// message that applies it; why not, as start-up says it.
    async fn prepare(&self) -> Result<(Config, ApplySettings), String> {
        let read = read(self.applied.path.clone(), self.applied.state_file.clone()).await;
        let (loaded, system_id) = read.map_err(|e| e.to_string())?;
        for warning in &loaded.warnings {
            warn!(self.logger, "configuration warning"; "detail" => warning);
        }
        let new = loaded.config;
        let restart = restart_needed(&self.applied, &new);
        let new = self.keep_what_needs_a_restart(new);
        let message = self.diff(&new, restart, &system_id).await?;
        Ok((new, message))
    }

    /// `new`, with the values that need a restart as they run.
    fn keep_what_needs_a_restart(&self, mut new: Config) -> Config {
        let running = &self.applied;
        new.state_file.clone_from(&running.state_file);
        new.listen_address.clone_from(&running.listen_address);
        new.quota_computation = running.quota_computation.clone();
        new.restart_values.clone_from(&running.restart_values);
        let restart: Vec<&str> = SupervisorSettings::KEYS
            .iter()
            .filter(|s| s.key.reload == Reload::Restart)
            .map(|s| s.key.name)
            .collect();
        new.settings.apply_keys(&running.settings, &restart);
        new
    }

    /// The message of a reload from the applied configuration to `new`:
    /// the settings, the runners added (their ports built here, on the
    /// service's thread, each learning its runner id), changed and removed.
    async fn diff(
        &self,
        new: &Config,
        restart_needed: Vec<&'static str>,
        system_id: &str,
    ) -> Result<ApplySettings, String> {
        let old_settings = wiring::supervisor_settings(&self.applied, &self.overrides, self.quota);
        let settings = wiring::supervisor_settings(new, &self.overrides, self.quota);
        let live = changed(
            SupervisorSettings::KEYS,
            &old_settings,
            &settings,
            Reload::Live,
        );
        let runners = diff_runners(&named(&self.applied.runners), &named(&new.runners));
        let mut added = Vec::with_capacity(runners.added.len());
        for index in runners.added {
            let Some(runner) = new.runners.get(index) else {
                continue;
            };
            let ports =
                wiring::runner_ports(new, index, runner, system_id, &self.metrics, &self.logger)
                    .await
                    .map_err(|e| e.to_string())?;
            added.push(ports);
        }
        let changed = runners
            .changed
            .iter()
            .filter_map(|i| new.runners.get(*i))
            .map(|r| (r.unique_name.clone(), r.settings.clone()))
            .collect();
        ApplySettings::new(SettingsDiff {
            settings,
            live,
            restart_needed,
            added,
            changed,
            removed: runners.removed,
        })
        .map_err(|e| e.to_string())
    }
}

/// Why a reload could not read its files.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The configuration (or its secrets file) is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The runner system id could not be read.
    #[error("cannot read the runner system id beside the state file {state_file}: {detail}")]
    SystemId {
        /// The running state file.
        state_file: String,
        /// Why.
        detail: String,
    },
    /// A runner section's `tls-ca-file` holds no certificate.
    #[error("{0}")]
    CaFile(String),
    /// The blocking pool did not run the read.
    #[error("the configuration could not be read: {0}")]
    Pool(String),
}

/// Reads and validates the file at `path` (and its secrets file), and the
/// runner system id beside `state_file`, on the blocking pool.
async fn read(
    path: PathBuf,
    state_file: Option<PathBuf>,
) -> Result<(config::Loaded, String), ReadError> {
    let task = actix_rt::task::spawn_blocking(move || {
        let loaded = config::load(&path)?;
        // A section's CA file is loaded as at start-up: a client built for
        // it later finds its TLS context.
        local_checks::check_ca_files(&loaded.config)
            .map_err(|e| ReadError::CaFile(e.to_string()))?;
        let state_file = state_file.unwrap_or_default();
        let system_id = load_or_create_system_id(&system_id_path(&state_file)).map_err(|e| {
            ReadError::SystemId {
                state_file: state_file.display().to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok((loaded, system_id))
    });
    task.await.map_err(|e| ReadError::Pool(e.to_string()))?
}

fn log_applied(log: &Logger, report: &ReloadReport) {
    for name in &report.restart_needed {
        warn!(log, "configuration reload: restart needed for this setting; left as it was";
              "setting" => *name);
    }
    info!(log, "configuration reloaded";
          "runners_added" => report.added.join(", "),
          "runners_removed" => report.removed.join(", "),
          "runners_changed" => report.changed.join(", "),
          "settings_changed" => report.settings.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::time::Duration;

    const BASE: &str = r#"
state_file = "/var/lib/x/state.json"
[quota_computation]
reference_runner = "r"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "r"
url = "https://gitlab.example"
token = "glrt-abcdefgh"
executor = "local-docker"
"#;

    fn parse(text: &str) -> Config {
        match config::parse_str(text, Path::new("/tmp/config.toml")) {
            Ok(l) => l.config,
            Err(e) => panic!("test configuration refused: {e}"),
        }
    }

    #[test]
    fn keys_that_need_a_restart_are_named() {
        let running = parse(BASE);
        assert!(restart_needed(&running, &running).is_empty());
        let changed = BASE
            .replace("state.json", "other.json")
            .replace("reference_jobs_count = 4", "reference_jobs_count = 5");
        let new = parse(&format!("listen_address = \"127.0.0.1:9252\"\n{changed}"));
        assert_eq!(
            restart_needed(&running, &new),
            vec![
                "state_file",
                "listen_address",
                "quota_computation.reference_jobs_count"
            ]
        );
        let new = parse(&format!("shutdown_timeout = 90\n{BASE}"));
        assert!(
            restart_needed(&running, &new).is_empty(),
            "90 is the default"
        );
        let new = parse(&format!("shutdown_timeout = 30\n{BASE}"));
        assert_eq!(restart_needed(&running, &new), vec!["shutdown_timeout"]);
    }

    /// A service running `config`'s runner on in-memory ports, the
    /// reloads of `config` with its sender, and the captured log.
    async fn running(
        config: &Config,
    ) -> (
        Reloads,
        paas_actors::service::RunningService,
        paas_actors::service::ServiceHandle,
        paas_actors::testing::LogCapture,
    ) {
        use paas_actors::testing::{capture_logger, FakeCoordinator, FakePaas, MemoryStore, World};
        let (handle, control) = paas_actors::service::service_control();
        let (logger, logs) = capture_logger();
        let world = World::new();
        let runner = config.runners.first().expect("one runner");
        let ports = paas_actors::RunnerPorts {
            name: runner.unique_name.clone(),
            coordinator: FakeCoordinator::new(world.clone()),
            paas: FakePaas::new(world, &runner.unique_name, 1.0),
            settings: runner.settings.clone(),
        };
        let settings = wiring::supervisor_settings(config, &Overrides::default(), 4.0);
        let reloads = Reloads::new(
            config.clone(),
            Overrides::default(),
            4.0,
            handle.metrics().clone(),
            control.settings_sender(),
            logger.clone(),
        );
        let store = Rc::new(paas_actors::testing::SharedMemoryStore(MemoryStore::new()));
        let service =
            paas_actors::service::start_service(settings, vec![ports], store, logger, control)
                .await
                .expect("the service starts");
        (reloads, service, handle, logs)
    }

    /// A configuration file in a new directory, with its state file there.
    fn write_config(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        let state = dir.join("state.json");
        let text = text.replace("/var/lib/x/state.json", &state.display().to_string());
        std::fs::write(&path, text).expect("write the configuration");
        path
    }

    #[actix_rt::test]
    async fn a_reload_applies_live_keys_and_names_the_others() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write_config(dir.path(), BASE);
        let config = config::load(&path).expect("valid").config;
        let (mut reloads, service, handle, logs) = running(&config).await;

        let changed = format!(
            "concurrent = 7
shutdown_timeout = 30
{BASE}"
        )
        .replace("reference_jobs_count = 4", "reference_jobs_count = 5");
        write_config(dir.path(), &changed);
        let want = ReloadReport {
            settings: vec!["concurrent"],
            restart_needed: vec!["quota_computation.reference_jobs_count", "shutdown_timeout"],
            ..ReloadReport::default()
        };
        assert_eq!(reloads.reload().await, ApplyOutcome::Applied(want.clone()));
        assert_eq!(reloads.applied.settings.concurrent, 7);
        assert_eq!(
            reloads.applied.settings.drain_deadline,
            Duration::from_secs(90)
        );
        // Compared with what runs: the restart is still needed, the rest is applied.
        let again = ReloadReport {
            settings: vec![],
            ..want
        };
        assert_eq!(reloads.reload().await, ApplyOutcome::Applied(again));
        let text = logs.text();
        assert!(text.contains("configuration reloaded"), "{text}");
        assert!(text.contains("restart needed for this setting"), "{text}");

        std::fs::write(&path, "concurrent = \"many\"\n").expect("write");
        let outcome = reloads.reload().await;
        assert!(
            matches!(&outcome, ApplyOutcome::Refused(why) if why.contains("`concurrent`")),
            "{outcome:?}"
        );
        assert!(logs.text().contains("configuration reload refused"));
        assert_eq!(
            reloads.applied.settings.concurrent, 7,
            "the running configuration stays"
        );

        handle.drain();
        let report = service.wait().await;
        assert!(!report.forced);
        write_config(dir.path(), BASE);
        assert_eq!(
            reloads.reload().await,
            ApplyOutcome::Refused("the service has stopped".into())
        );
    }

    fn settings(fraction: f64) -> RunnerSettings {
        RunnerSettings {
            quota_max_fraction: fraction,
            ..RunnerSettings::default()
        }
    }

    #[test]
    fn runners_added_removed_changed_by_name() {
        let (one, half) = (settings(1.0), settings(0.5));
        let running = [("a", &one), ("b", &one), ("c", &one)];
        let new = [("b", &one), ("c", &half), ("d", &one)];
        let diff = diff_runners(&running, &new);
        assert_eq!(diff.added, vec![2]);
        assert_eq!(diff.removed, vec!["a".to_string()]);
        assert_eq!(diff.changed, vec![1]);
    }

    #[test]
    fn same_runners_no_diff() {
        let one = settings(1.0);
        let running = [("a", &one)];
        assert_eq!(diff_runners(&running, &running), RunnerDiff::default());
    }
}
