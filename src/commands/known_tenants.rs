//! The tenants a multi-tenant runner knows, as `verify` finds them: the
//! top-level groups (and the organisations) its resources in the state file
//! were created for.
//!
//! The state file is only read: no lock is taken or waited for (a running
//! service holds it), nothing is written. Tenant tokens are not in the
//! state file; `verify` reads them from GitLab again.

use paas_actors::state::Snapshot;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the state file says, for `verify`.
#[derive(Debug)]
pub enum StateView {
    /// No `state_file` key in the configuration.
    NotConfigured,
    /// The file does not exist (yet): no tenant known.
    Absent(PathBuf),
    /// The file cannot be read or parsed.
    Unreadable(String),
    /// The file's content.
    Read(Box<Snapshot>),
}

impl StateView {
    /// Reads `state_file` without locking it.
    pub fn read(state_file: Option<&Path>) -> StateView {
        let Some(path) = state_file else {
            return StateView::NotConfigured;
        };
        match std::fs::read(path) {
            Ok(bytes) => match Snapshot::from_json(&bytes) {
                Ok(s) => StateView::Read(Box::new(s)),
                Err(e) => StateView::Unreadable(format!(
                    "state file {} is corrupt: {}",
                    path.display(),
                    paas_actors::state::describe_corruption(&bytes, &e)
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                StateView::Absent(path.to_path_buf())
            }
            Err(e) => {
                StateView::Unreadable(format!("cannot read state file {}: {e}", path.display()))
            }
        }
    }
}

/// `(top-level group, organisation recorded)` of every resource the
/// snapshot holds for the runner of identity `names` (today's and the
/// legacy one), once each, sorted.
pub fn tenants(snapshot: &Snapshot, names: &[&str]) -> BTreeSet<(String, Option<String>)> {
    snapshot
        .launched
        .iter()
        .chain(&snapshot.to_decommission)
        .chain(snapshot.pending.iter().map(|p| &p.handle))
        .filter(|h| names.contains(&h.runner_name.as_str()))
        .filter_map(|h| {
            let resource = h.paas_resource.as_ref()?;
            let namespace = resource.get("gitlab_namespace")?.as_str()?;
            let orga_id = resource
                .get("orga_id")
                .and_then(|o| o.as_str())
                .map(str::to_string);
            (!namespace.is_empty()).then(|| (namespace.to_string(), orga_id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tenants_of_a_runner_are_read_from_its_resources_only() {
        let state = json!({
            "launched": [
                {"runner_name": "abcdefghi", "job_id": 1, "token": "t",
                 "paas_resource": {"id": "app_1", "gitlab_namespace": "acme", "orga_id": "orga_a"}},
                {"runner_name": "other", "job_id": 2, "token": "t",
                 "paas_resource": {"id": "app_2", "gitlab_namespace": "initech", "orga_id": "orga_i"}},
                {"runner_name": "abcdefghi", "job_id": 3, "token": "t"}
            ],
            "pending": [[{"runner_name": "glrt-abc", "job_id": 4, "token": "t",
                          "paas_resource": {"id": "app_4", "gitlab_namespace": "globex"}}, {}]],
            "to_decommission": [
                {"runner_name": "abcdefghi", "job_id": 5, "token": "t",
                 "paas_resource": {"id": "app_5", "gitlab_namespace": "acme", "orga_id": "orga_a"}},
                {"runner_name": "abcdefghi", "job_id": 6, "token": "t",
                 "paas_resource": {"id": "app_6", "gitlab_namespace": ""}}
            ]
        });
        let snapshot = Snapshot::from_json(state.to_string().as_bytes()).expect("state");
        let found = tenants(&snapshot, &["abcdefghi", "glrt-abc"]);
        let expected: BTreeSet<(String, Option<String>)> = [
            ("acme".to_string(), Some("orga_a".to_string())),
            ("globex".to_string(), None),
        ]
        .into_iter()
        .collect();
        assert_eq!(found, expected);
        assert!(tenants(&snapshot, &["nobody"]).is_empty());
    }

    #[test]
    fn an_absent_file_is_no_tenant_and_a_corrupt_one_is_said() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert!(matches!(StateView::read(None), StateView::NotConfigured));
        assert!(matches!(StateView::read(Some(&path)), StateView::Absent(p) if p == path));
        std::fs::write(&path, "{\"launched\": [").expect("write");
        match StateView::read(Some(&path)) {
            StateView::Unreadable(why) => assert!(why.contains("corrupt"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Reading leaves the file as it was.
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "{\"launched\": ["
        );
    }
}
