//! `forget CONFIG --resource ID`: releases a tracked resource by hand. The
//! entry of the resource of id `ID` (a Clever `app_…` id, a local-docker
//! image name) leaves the state file, with its job and its weight: the
//! service no longer waits for it, nor tries to delete it. For a resource
//! the service cannot operate on any more (its tenant's organisation gone
//! for good, a token revoked), after the operator has deleted it (or
//! decided to keep it) by hand. The resource itself is not touched.
//!
//! Refused while a service holds the state file's lock (the service would
//! write its own state back); the file is then read, the entry removed and
//! the file replaced atomically (as the service's store writes it: mode
//! 0600), then, run as root, given to the state directory's owner (opened
//! without following a link, and only a plain file with one name). What is
//! released is told before the write and logged after it; an unknown id
//! lists the ids the file tracks (never a token).

use crate::cli::ForgetArgs;
use crate::config::{Config, ConfigError};
use crate::instance_lock::{InstanceLock, LockError};
use crate::state_owner::give_to_directory_owner;
use paas_actors::state::{read_state_file, write_atomic, HandleRecord, Snapshot, StateError};
use slog::{info, Logger};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Most resource ids an "unknown id" message lists.
const LISTED_IDS: usize = 20;

/// Why `forget` released nothing.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configuration sets no `state_file`: nothing is tracked.
    #[error("the configuration sets no state_file: no resource is tracked, nothing to forget")]
    NoStateFile,
    /// A service uses the state file, or its lock cannot be taken.
    #[error("{0}. forget changes the state file: stop the service (systemctl stop heptapod-paas-runner), run forget, then start it again")]
    Lock(LockError),
    /// The state file cannot be read or parsed.
    #[error(transparent)]
    State(#[from] StateError),
    /// No tracked resource has this id.
    #[error("no resource of id {id:?} is tracked in {}; {known}", path.display())]
    Unknown {
        /// The id asked for.
        id: String,
        /// The state file.
        path: PathBuf,
        /// The ids tracked, for the operator.
        known: String,
    },
    /// The new state file cannot be written.
    #[error("cannot write the state file {}: {detail}; it is left as it was", path.display())]
    Write {
        /// The state file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// Which list of the state file an entry is in, as the file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Launched,
    ToDecommission,
    Pending,
}

impl Section {
    fn as_str(self) -> &'static str {
        match self {
            Section::Launched => "launched",
            Section::ToDecommission => "to_decommission",
            Section::Pending => "pending",
        }
    }
}

/// One entry released: what is told and logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    /// The runner section's name (its unique name when no section has it).
    pub runner: String,
    /// The job of the entry.
    pub job_id: i64,
    /// The resource id.
    pub resource: String,
    /// The weight freed.
    pub weight: f64,
    /// The state file's list it was in.
    pub section: &'static str,
}

impl std::fmt::Display for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resource {} of runner {}, job {}, weight {:.2} (state file list `{}`)",
            self.resource, self.runner, self.job_id, self.weight, self.section
        )
    }
}

/// The id of the resource a handle records, if any.
fn resource_id(h: &HandleRecord) -> Option<&str> {
    h.paas_resource.as_ref()?.get("id")?.as_str()
}

/// The weight a handle holds: its resource's, else the job's expected one.
fn weight_of(h: &HandleRecord) -> f64 {
    h.paas_resource
        .as_ref()
        .and_then(|r| r.get("weight"))
        .and_then(serde_json::Value::as_f64)
        .filter(|w| w.is_finite() && *w > 0.0)
        .unwrap_or(h.expected_weight)
}

/// The section name of the runner of unique name `unique` (today's or the
/// legacy one), else `unique` itself.
fn runner_of(config: &Config, unique: &str) -> String {
    config
        .runners
        .iter()
        .find(|r| r.unique_name == unique || r.legacy_unique_name.as_deref() == Some(unique))
        .map_or_else(|| unique.to_string(), |r| r.name.clone())
}

/// Removes every entry whose resource has id `id` from `snapshot`; what was
/// removed (runner names as the state file has them).
pub fn remove_resource(snapshot: &mut Snapshot, id: &str) -> Vec<Released> {
    let mut released = Vec::new();
    let mut take = |h: &HandleRecord, section: Section| {
        let hit = resource_id(h) == Some(id);
        if hit {
            released.push(Released {
                runner: h.runner_name.clone(),
                job_id: h.job_id,
                resource: id.to_string(),
                weight: weight_of(h),
                section: section.as_str(),
            });
        }
        !hit
    };
    snapshot.launched.retain(|h| take(h, Section::Launched));
    snapshot
        .to_decommission
        .retain(|h| take(h, Section::ToDecommission));
    snapshot
        .pending
        .retain(|p| take(&p.handle, Section::Pending));
    released
}

/// The resource ids `snapshot` tracks, for an "unknown id" message.
fn known_ids(snapshot: &Snapshot) -> String {
    let ids: Vec<String> = snapshot
        .launched
        .iter()
        .chain(&snapshot.to_decommission)
        .chain(snapshot.pending.iter().map(|p| &p.handle))
        .filter_map(|h| resource_id(h).map(|id| format!("{id} (job {})", h.job_id)))
        .collect();
    match ids.len() {
        0 => "the state file tracks no resource".to_string(),
        n if n <= LISTED_IDS => format!("tracked: {}", ids.join(", ")),
        n => format!(
            "tracked ({n}, the first {LISTED_IDS}): {}",
            ids[..LISTED_IDS].join(", ")
        ),
    }
}

/// Replaces the state file by `snapshot`, as the service's store does,
/// and gives it to the state directory's owner when run as root.
fn write(path: &Path, snapshot: &Snapshot) -> Result<(), ForgetError> {
    let failed = |detail: String| ForgetError::Write {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = snapshot.to_json().map_err(|e| failed(e.to_string()))?;
    write_atomic(path, &bytes).map_err(|e| failed(e.to_string()))?;
    let directory = crate::instance_lock::state_directory(path);
    let dir_meta = std::fs::metadata(&directory).map_err(|e| failed(e.to_string()))?;
    // The directory's owner may swap the new file for a link meanwhile:
    // never follow one, and give only a plain file with one name.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| failed(e.to_string()))?;
    let meta = file.metadata().map_err(|e| failed(e.to_string()))?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(failed(
            "it was replaced by something else than a plain file with one name".to_string(),
        ));
    }
    give_to_directory_owner(&file, &dir_meta).map_err(|e| failed(e.to_string()))
}

/// `forget`: see the module documentation.
pub fn run(args: &ForgetArgs, logger: &Logger) -> Result<(), ForgetError> {
    let config = super::load(args.config.path())?;
    let path = config.state_file.clone().ok_or(ForgetError::NoStateFile)?;
    let _lock = InstanceLock::acquire(&path).map_err(ForgetError::Lock)?;
    let mut snapshot = read_state_file(&path)?.unwrap_or_default();
    let mut released = remove_resource(&mut snapshot, &args.resource);
    if released.is_empty() {
        return Err(ForgetError::Unknown {
            id: args.resource.clone(),
            path,
            known: known_ids(&snapshot),
        });
    }
    for r in &mut released {
        r.runner = runner_of(&config, &r.runner);
        println!("releasing {r}");
    }
    write(&path, &snapshot)?;
    for r in &released {
        info!(logger, "released a tracked resource by hand: the service no longer tracks it \
                       nor counts its weight; the resource itself was not touched";
              "runner" => &r.runner, "job_id" => r.job_id, "app" => &r.resource,
              "weight" => r.weight, "list" => r.section,
              "state_file" => %path.display());
    }
    println!(
        "released: the state file no longer tracks resource {}; delete it on the PAAS by hand if \
         it still exists",
        args.resource
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Snapshot {
        let handle = |job: i64, app: &str, weight: f64| {
            json!({"runner_name": "abc", "job_id": job, "token": "glcbt-secret",
                   "expected_weight": 9.0,
                   "paas_resource": {"id": app, "weight": weight, "name": format!("hpd-job-abc-{job}")}})
        };
        let doc = json!({
            "launched": [handle(1, "app_1", 2.0), handle(2, "app_2", 4.0)],
            "to_decommission": [handle(3, "app_3", 0.0)],
            "pending": [],
        });
        Snapshot::from_json(doc.to_string().as_bytes()).expect("snapshot")
    }

    #[test]
    fn removes_the_entries_of_that_resource_only() {
        let mut s = snapshot();
        let released = remove_resource(&mut s, "app_2");
        assert_eq!(
            released,
            vec![Released {
                runner: "abc".into(),
                job_id: 2,
                resource: "app_2".into(),
                weight: 4.0,
                section: "launched",
            }]
        );
        assert_eq!(s.launched.len(), 1);
        assert_eq!(s.to_decommission.len(), 1);
        // Without a usable weight: the job's expected one.
        let released = remove_resource(&mut s, "app_3");
        assert_eq!(released.first().map(|r| r.weight), Some(9.0));
        assert!(remove_resource(&mut s, "app_404").is_empty());
    }

    #[test]
    fn an_unknown_id_lists_ids_and_no_token() {
        let text = known_ids(&snapshot());
        assert!(text.contains("app_1 (job 1)"), "{text}");
        assert!(!text.contains("glcbt"), "{text}");
        assert_eq!(
            known_ids(&Snapshot::default()),
            "the state file tracks no resource"
        );
    }
}
