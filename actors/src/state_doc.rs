//! The state file's content as encoded records, what a write is given.
//!
//! Each record of the file (a job handle, a `[handle, job_data]` pair, a
//! `creating`, `launch_failures` or `uncertain` entry) is one compact JSON
//! value, encoded once ([`Encoded`]); a write joins them into the layout of
//! [`crate::state::Snapshot`] (same keys, same order, same bytes as
//! `Snapshot::to_json`). The supervisor keeps each job's records encoded
//! until the job changes, so that a write encodes only what changed and
//! the records are shared, not copied, with the thread doing the I/O.

use serde::Serialize;
use std::io::{self, Write};
use std::sync::Arc;

/// One record: a JSON value in serde_json's compact form. Only
/// `Encoded::new` makes one, so a document of them is valid JSON.
#[derive(Clone, PartialEq, Eq)]
pub struct Encoded(Arc<str>);

impl Encoded {
    /// Encodes `value`.
    pub(crate) fn new<T: Serialize + ?Sized>(value: &T) -> Result<Encoded, serde_json::Error> {
        serde_json::to_string(value).map(|s| Encoded(Arc::from(s)))
    }

    /// The JSON text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shows the size only: a record holds a job token and CI variables.
impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.0.len())
    }
}

/// The whole state file as encoded records, section by section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDoc {
    /// Started jobs (handles).
    pub launched: Vec<Encoded>,
    /// Jobs not fully launched (`[handle, job_data]` pairs).
    pub pending: Vec<Encoded>,
    /// Resources to delete (handles).
    pub to_decommission: Vec<Encoded>,
    /// Resources kept for another job (handles with `since`, `use_count`).
    pub standby_resources: Vec<Encoded>,
    /// Extra: resource names recorded before their create call.
    pub creating: Vec<Encoded>,
    /// Extra: launch failures not yet reported to the coordinator.
    pub launch_failures: Vec<Encoded>,
    /// Extra: operations in flight at a forced stop.
    pub uncertain: Vec<Encoded>,
}

impl StateDoc {
    /// Number of entries in the three reference sections (the tests
    /// compare it with the snapshot's).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.launched.len()
            + self.pending.len()
            + self.to_decommission.len()
            + self.standby_resources.len()
    }

    /// Writes the file's content: the three reference sections always, the
    /// extra ones only when not empty (as `Snapshot::to_json`).
    pub(crate) fn write_to<W: Write + ?Sized>(&self, w: &mut W) -> io::Result<()> {
        let sections: [(&str, &[Encoded], bool); 7] = [
            ("launched", &self.launched, true),
            ("pending", &self.pending, true),
            ("to_decommission", &self.to_decommission, true),
            ("standby_resources", &self.standby_resources, false),
            ("creating", &self.creating, false),
            ("launch_failures", &self.launch_failures, false),
            ("uncertain", &self.uncertain, false),
        ];
        w.write_all(b"{")?;
        let mut first = true;
        for (key, records, always) in sections {
            if !always && records.is_empty() {
                continue;
            }
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            w.write_all(b"\"")?;
            w.write_all(key.as_bytes())?;
            w.write_all(b"\":[")?;
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(r.as_str().as_bytes())?;
            }
            w.write_all(b"]")?;
        }
        w.write_all(b"}")
    }

    /// The file's content in memory (the in-memory store of the tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let size: usize = [
            &self.launched,
            &self.pending,
            &self.to_decommission,
            &self.standby_resources,
            &self.creating,
            &self.launch_failures,
            &self.uncertain,
        ]
        .iter()
        .flat_map(|s| s.iter())
        .map(|r| r.as_str().len() + 1)
        .sum();
        let mut out = Vec::with_capacity(size + 96);
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_are_joined_into_one_json_object() {
        let doc = StateDoc {
            launched: vec![
                Encoded::new(&json!({"job_id": 1})).expect("encode"),
                Encoded::new(&json!({"job_id": 2})).expect("encode"),
            ],
            uncertain: vec![Encoded::new(&json!({"operation": "poll"})).expect("encode")],
            ..StateDoc::default()
        };
        let text = String::from_utf8(doc.to_json()).expect("utf-8");
        assert_eq!(
            text,
            r#"{"launched":[{"job_id":1},{"job_id":2}],"pending":[],"to_decommission":[],"uncertain":[{"operation":"poll"}]}"#
        );
        assert_eq!(doc.len(), 2);
    }

    #[test]
    fn debug_shows_no_content() {
        let e = Encoded::new(&json!({"token": "secret-token"})).expect("encode");
        assert_eq!(format!("{e:?}"), "Encoded(24 bytes)");
    }
}
