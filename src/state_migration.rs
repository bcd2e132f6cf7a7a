//! State entries written under a runner's legacy identity (the token's
//! first 8 characters, see `config::identity`) are renamed to its current
//! identity before the service reads the state, so that they are resumed
//! by that runner instead of being kept aside as "an unknown runner's".
//!
//! Only `runner_name` changes; resource ids and names stay as written (the
//! resources keep their names on the PAAS). Runs under the instance lock,
//! before the state store is opened. A file that does not parse is left
//! alone: the store reports it.

use crate::config::Config;
use paas_actors::state::{write_atomic, Snapshot};
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// `(legacy identity, current identity)` of every runner that has one.
pub fn renames(config: &Config) -> Vec<(String, String)> {
    config
        .runners
        .iter()
        .filter_map(|r| {
            r.legacy_unique_name
                .as_ref()
                .map(|old| (old.clone(), r.unique_name.clone()))
        })
        .collect()
}

/// Why the state file could not be migrated.
#[derive(Debug, thiserror::Error)]
#[error("cannot update the runner names of state file {path}: {source}")]
pub struct MigrationError {
    /// The state file.
    pub path: String,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// Renames the `runner_name` of every entry written under a legacy
/// identity in `state_file`; returns how many entries were renamed (0 when
/// the file is absent, does not parse, or has none).
pub fn migrate(state_file: &Path, renames: &[(String, String)]) -> Result<usize, MigrationError> {
    let error = |source| MigrationError {
        path: state_file.display().to_string(),
        source,
    };
    if renames.is_empty() {
        return Ok(0);
    }
    let bytes = match std::fs::read(state_file) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(error(e)),
    };
    let Ok(mut snapshot) = Snapshot::from_json(&bytes) else {
        return Ok(0);
    };
    let count = rename_all(&mut snapshot, renames);
    if count > 0 {
        let bytes = snapshot.to_json().map_err(|e| error(io::Error::other(e)))?;
        write_atomic(state_file, &bytes).map_err(error)?;
    }
    Ok(count)
}

/// Renames in place; returns the number of entries renamed.
pub fn rename_all(snapshot: &mut Snapshot, renames: &[(String, String)]) -> usize {
    let map: HashMap<&str, &str> = renames
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut count = 0;
    let mut rename = |name: &mut String| {
        if let Some(new) = map.get(name.as_str()) {
            *name = (*new).to_string();
            count += 1;
        }
    };
    for h in snapshot
        .launched
        .iter_mut()
        .chain(snapshot.to_decommission.iter_mut())
        .chain(snapshot.pending.iter_mut().map(|p| &mut p.handle))
    {
        rename(&mut h.runner_name);
    }
    for c in &mut snapshot.creating {
        rename(&mut c.runner_name);
    }
    for f in &mut snapshot.launch_failures {
        rename(&mut f.runner_name);
    }
    for u in &mut snapshot.uncertain {
        rename(&mut u.runner_name);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_entries_are_renamed_and_others_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let state = json!({
            "launched": [
                {"runner_name": "glrt-abc", "job_id": 1, "token": "t1",
                 "paas_resource": {"id": "app_1", "name": "hpd-job-glrt-abc-1"}},
                {"runner_name": "D3adNQYu", "job_id": 2, "token": "t2"}
            ],
            "pending": [[{"runner_name": "glrt-abc", "job_id": 3, "token": "t3"}, {"id": 3}]],
            "to_decommission": [],
            "creating": [{"runner_name": "glrt-abc", "job_id": 4,
                          "resource_name": "hpd-job-glrt-abc-4"}]
        });
        std::fs::write(&path, state.to_string()).expect("write");
        let renames = vec![("glrt-abc".to_string(), "abcdefghi".to_string())];
        assert_eq!(migrate(&path, &renames).expect("migrate"), 3);
        let after = Snapshot::from_json(&std::fs::read(&path).expect("read")).expect("parse");
        assert_eq!(after.launched[0].runner_name, "abcdefghi");
        assert_eq!(after.launched[1].runner_name, "D3adNQYu");
        assert_eq!(after.pending[0].handle.runner_name, "abcdefghi");
        assert_eq!(after.creating[0].runner_name, "abcdefghi");
        // Resource names stay those the PAAS knows.
        assert_eq!(after.creating[0].resource_name, "hpd-job-glrt-abc-4");
        assert_eq!(
            after.launched[0].paas_resource.as_ref().expect("resource")["name"],
            "hpd-job-glrt-abc-1"
        );
        // Nothing left to rename: the file is not rewritten.
        assert_eq!(migrate(&path, &renames).expect("again"), 0);
    }

    #[test]
    fn absent_or_corrupt_files_are_left_to_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let renames = vec![("a".to_string(), "b".to_string())];
        assert_eq!(migrate(&path, &renames).expect("absent"), 0);
        std::fs::write(&path, "{not json").expect("write");
        assert_eq!(migrate(&path, &renames).expect("corrupt"), 0);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{not json");
    }
}
