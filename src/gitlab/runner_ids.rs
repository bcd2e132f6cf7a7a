//! This runner's ids at the coordinator, kept beside the state file in
//! `<state file>.runner-ids.json`: one entry per `[[runners]]` section (by
//! unique name), with the short form of the token it was learnt for (the
//! first 8 characters after a `glrt-` prefix, which GitLab shows publicly as
//! the runner's short token) so that a changed token is verified again.
//!
//! The id proves that a job found on the PAAS is this runner's (`GET /job`
//! answers with `runner.id`). Unknown at start-up, it is learnt with
//! `POST /runners/verify`; when that fails, the id stays unknown and
//! reconciliation adopts nothing (the unknown resources are left alone).

use super::GitlabCoordinator;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use slog::{info, warn, Logger};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One runner's remembered id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    short_token: String,
    id: i64,
}

/// Where the runner ids of the state file `state_file` are kept.
pub fn runner_ids_path(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".runner-ids.json");
    PathBuf::from(name)
}

/// The public short form of a runner token.
fn short_token(token: &Secret) -> String {
    let t = token.expose();
    let t = t.strip_prefix("glrt-").unwrap_or(t);
    t.chars().take(8).collect()
}

fn load(path: &Path) -> BTreeMap<String, Entry> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(path: &Path, ids: &BTreeMap<String, Entry>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&serde_json::to_vec_pretty(ids).map_err(io::Error::other)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Gives `coordinator` its runner id: the one remembered in `path` for
/// `name` and this token, else the one `POST /runners/verify` answers
/// (then remembered). Failures are logged, never fatal.
pub async fn learn_runner_id(
    coordinator: &GitlabCoordinator,
    path: &Path,
    name: &str,
    token: &Secret,
    logger: &Logger,
) {
    let short = short_token(token);
    let mut ids = load(path);
    if let Some(e) = ids.get(name).filter(|e| e.short_token == short) {
        coordinator.set_runner_id(Some(e.id));
        return;
    }
    match coordinator.verify().await {
        Ok(v) => match v.id {
            Some(id) => {
                coordinator.set_runner_id(Some(id));
                info!(logger, "runner id learnt from the coordinator"; "runner_id" => id);
                ids.insert(
                    name.to_string(),
                    Entry {
                        short_token: short,
                        id,
                    },
                );
                if let Err(e) = save(path, &ids) {
                    warn!(logger, "cannot remember the runner id";
                          "path" => %path.display(), "error" => %e);
                }
            }
            None => warn!(
                logger,
                "the coordinator gives no runner id (old GitLab): resources found on the \
                 PAAS cannot be proved this runner's and are never adopted"
            ),
        },
        Err(e) => warn!(
            logger,
            "cannot learn the runner id (POST /runners/verify failed): resources found on the \
             PAAS cannot be proved this runner's and are not adopted until a restart";
            "error" => %e
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_short_token() {
        assert_eq!(
            runner_ids_path(Path::new("/var/lib/x/state.json")),
            PathBuf::from("/var/lib/x/state.json.runner-ids.json")
        );
        assert_eq!(short_token(&Secret::new("glrt-abcdefghijk")), "abcdefgh");
        assert_eq!(short_token(&Secret::new("D3adNQYu8OCj")), "D3adNQYu");
    }

    #[test]
    fn entries_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = runner_ids_path(&dir.path().join("state.json"));
        assert!(load(&path).is_empty());
        let mut ids = BTreeMap::new();
        ids.insert(
            "cc".to_string(),
            Entry {
                short_token: "abcdefgh".into(),
                id: 42,
            },
        );
        save(&path, &ids).expect("save");
        assert_eq!(load(&path), ids);
        std::fs::write(&path, "not json").expect("write");
        assert!(load(&path).is_empty());
    }
}
