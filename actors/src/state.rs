//! State snapshots: the Python-compatible format and the store port.
//!
//! The format is the reference runner's JSON: `launched` (handles of
//! started jobs), `pending` (`[handle, job_data]` pairs of jobs not fully
//! launched), `to_decommission` (handles whose resource must be deleted);
//! a handle has `runner_name`, `job_id`, `token`, `trace_offset`,
//! `expected_weight` and, once a resource exists, `paas_resource` (the
//! executor's own dump). What the reference does not know goes in extra
//! top-level keys, which it ignores: `creating` (resource names recorded
//! before a create call), `launch_failures` (failures not yet reported),
//! `uncertain` (operations in flight at a forced stop). `standby_resources`
//! (handles whose resource waits for another job) is the Python runner
//! 1.1's section, with two keys of ours in each handle: `since` and
//! `use_count`.
//!
//! A write is given the records already encoded ([`StateDoc`]).
//! [`FileStore`] writes atomically in the blocking pool: temp file in the
//! same directory (mode 0600), written through a buffer, fsync, rename,
//! fsync of the directory. A file that does not parse is an error naming
//! it; it is never deleted.

use crate::ports::PortFuture;
use crate::secret::Secret;
pub use crate::state_doc::{Encoded, StateDoc};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn default_weight() -> f64 {
    1.0
}

/// A weight read from the state file: a number ≥ 0 (a negative one would
/// lower the quota's used total, so the file is refused as corrupt).
fn weight<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let w = f64::deserialize(deserializer)?;
    if w.is_finite() && w >= 0.0 {
        Ok(w)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected_weight {w} is not a weight (a number >= 0)"
        )))
    }
}

/// A job handle, as the reference saves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandleRecord {
    /// Unique name of the runner that acquired the job.
    pub runner_name: String,
    /// Job id at that runner's coordinator.
    pub job_id: i64,
    /// The job token.
    pub token: Secret,
    /// Bytes of the job trace written by this runner.
    #[serde(default)]
    pub trace_offset: u64,
    /// Weight expected from the job's flavor.
    #[serde(default = "default_weight", deserialize_with = "weight")]
    pub expected_weight: f64,
    /// The executor's dump of the resource, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paas_resource: Option<Value>,
}

fn one() -> u32 {
    1
}

/// A `standby_resources` entry: the handle of the job that last ran on the
/// resource, as the Python runner 1.1 saves it (its `paas_resource` holds
/// the helper's token), and two keys it does not write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandbyRecord {
    /// The handle.
    #[serde(flatten)]
    pub handle: HandleRecord,
    /// When the resource went on standby, in seconds since the Unix epoch;
    /// absent (the Python runner): at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// How many jobs the resource ran.
    #[serde(default = "one")]
    pub use_count: u32,
}

/// A `pending` entry: `[handle, job_data]`.
#[derive(Clone, PartialEq)]
pub struct PendingRecord {
    /// The handle.
    pub handle: HandleRecord,
    /// The full job payload, as the coordinator sent it.
    pub job_data: Arc<Value>,
}

/// Leaves `job_data` out: it holds the job token and the CI variables.
impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord")
            .field("handle", &self.handle)
            .field("job_data", &"[not shown]")
            .finish()
    }
}

impl Serialize for PendingRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&self.handle)?;
        t.serialize_element(&*self.job_data)?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for PendingRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (handle, job_data) = <(HandleRecord, Value)>::deserialize(deserializer)?;
        Ok(PendingRecord {
            handle,
            job_data: Arc::new(job_data),
        })
    }
}

/// Extra key `creating`: a resource name recorded before its create call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatingRecord {
    /// Unique name of the runner.
    pub runner_name: String,
    /// Job id.
    pub job_id: i64,
    /// Deterministic resource name (`hpd-job-<unique>-<id>`).
    pub resource_name: String,
}

/// Extra key `launch_failures`: a launch failure not yet reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Unique name of the runner.
    pub runner_name: String,
    /// Job id.
    pub job_id: i64,
    /// The explanation appended to the job trace.
    pub message: String,
    /// Whether the explanation is already in the job trace.
    #[serde(default)]
    pub trace_appended: bool,
}

/// Extra key `uncertain`: an operation in flight when a stop was forced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UncertainRecord {
    /// Unique name of the runner.
    pub runner_name: String,
    /// Job id; absent for a poll, which has no job yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The operation (`create`, `prepare`, `launch`, `decommission`, `poll`).
    pub operation: String,
}

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Started jobs.
    pub launched: Vec<HandleRecord>,
    /// Jobs not fully launched, with their payload.
    pub pending: Vec<PendingRecord>,
    /// Resources to delete.
    #[serde(default)]
    pub to_decommission: Vec<HandleRecord>,
    /// Resources kept for another job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_resources: Vec<StandbyRecord>,
    /// Extra: resource names recorded before their create call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creating: Vec<CreatingRecord>,
    /// Extra: launch failures not yet reported to the coordinator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_failures: Vec<FailureRecord>,
    /// Extra: operations in flight at a forced stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncertain: Vec<UncertainRecord>,
}

impl Snapshot {
    /// Number of entries in the reference sections (standby included).
    pub fn len(&self) -> usize {
        self.launched.len()
            + self.pending.len()
            + self.to_decommission.len()
            + self.standby_resources.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.creating.is_empty() && self.launch_failures.is_empty()
    }

    /// Parses a state file's content.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Serialises to the state file's content.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Encodes every record, for a write (its content is that of
    /// [`Snapshot::to_json`]).
    pub(crate) fn to_doc(&self) -> Result<StateDoc, serde_json::Error> {
        fn all<T: Serialize>(records: &[T]) -> Result<Vec<Encoded>, serde_json::Error> {
            records.iter().map(Encoded::new).collect()
        }
        Ok(StateDoc {
            launched: all(&self.launched)?,
            pending: all(&self.pending)?,
            to_decommission: all(&self.to_decommission)?,
            standby_resources: all(&self.standby_resources)?,
            creating: all(&self.creating)?,
            launch_failures: all(&self.launch_failures)?,
            uncertain: all(&self.uncertain)?,
        })
    }
}

/// What went wrong with the state store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StateError {
    /// The file exists but cannot be read.
    #[error("cannot read state file {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// The file does not parse or has the wrong shape. It is left untouched.
    #[error(
        "state file {path} is corrupt: {detail}. It was left untouched. To recover, move it \
         aside and start again: reconciliation rebuilds the state from the PAAS and the \
         coordinator"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong (truncated, invalid JSON, wrong shape) and where:
        /// line and column, and for a wrong shape the entry (`launched[3]`).
        detail: String,
    },
    /// Writing failed; the previous file is intact.
    #[error("cannot write state file {path}: {detail}")]
    Write {
        /// The file.
        path: String,
        /// The I/O or serialisation error.
        detail: String,
    },
    /// The blocking task doing the I/O did not complete.
    #[error("state store task for {path} failed: {detail}")]
    Task {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

/// Where snapshots are kept. Implemented by [`FileStore`] and, for tests,
/// by `testing::MemoryStore`.
pub trait StateStore {
    /// Reads the saved state; `Ok(None)` when there is none yet.
    fn load(&self) -> PortFuture<'_, Result<Option<Snapshot>, StateError>>;

    /// Replaces the saved state with `doc`, atomically. The returned
    /// future owns everything it needs (it may outlive the borrow).
    fn save(&self, doc: StateDoc) -> PortFuture<'static, Result<(), StateError>>;

    /// Where the state lives, for logs.
    fn location(&self) -> String;
}

/// The state file, written atomically.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (the configuration's `state_file`).
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        FileStore { path: path.into() }
    }
}

/// Reads and parses the state file at `path` (blocking): `None` when there
/// is none yet, or why it cannot be used. What [`FileStore::load`] does on
/// the blocking pool, and what the start-up checks do before any network
/// call.
pub fn read_state_file(path: &Path) -> Result<Option<Snapshot>, StateError> {
    let shown = || path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Read {
                path: shown(),
                detail: e.to_string(),
            })
        }
    };
    Snapshot::from_json(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            path: shown(),
            detail: describe_corruption(&bytes, &e),
        })
}

impl StateStore for FileStore {
    fn load(&self) -> PortFuture<'_, Result<Option<Snapshot>, StateError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let shown = path.display().to_string();
            actix_rt::task::spawn_blocking(move || read_state_file(&path))
                .await
                .map_err(|e| StateError::Task {
                    path: shown,
                    detail: e.to_string(),
                })?
        })
    }

    fn save(&self, doc: StateDoc) -> PortFuture<'static, Result<(), StateError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let shown = path.display().to_string();
            let res = actix_rt::task::spawn_blocking(move || -> Result<Replaced, String> {
                write_atomic_with(&path, |w| doc.write_to(w)).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| StateError::Task {
                path: shown.clone(),
                detail: e.to_string(),
            })?;
            res.map(Replaced::release_later)
                .map_err(|detail| StateError::Write {
                    path: shown,
                    detail,
                })
        })
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// Says what is wrong with a state file's content that did not parse:
/// truncated, invalid JSON, or wrong shape; where (line and column), and
/// for a wrong shape which entry of which section.
pub fn describe_corruption(bytes: &[u8], error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Eof if bytes.iter().all(u8::is_ascii_whitespace) => {
            "the file is empty (truncated?)".to_string()
        }
        Category::Eof => format!("truncated: {error}"),
        Category::Syntax | Category::Io => format!("invalid JSON: {error}"),
        Category::Data => match locate_shape_error(bytes) {
            Some(entry) => format!("wrong shape: {entry} ({error})"),
            None => format!("wrong shape: {error}"),
        },
    }
}

/// serde's message with the Rust type names put in words.
fn in_words(message: &str) -> String {
    [
        ("struct HandleRecord", "a job handle object"),
        ("struct CreatingRecord", "a creating object"),
        ("struct FailureRecord", "a launch failure object"),
        ("struct UncertainRecord", "an uncertain operation object"),
        ("PendingRecord", "a [handle, job data] pair"),
    ]
    .iter()
    .fold(message.to_string(), |m, (from, to)| m.replace(from, to))
}

/// The first entry of a section that does not have the expected shape,
/// as `section[index]: why`, for a file that is valid JSON.
fn locate_shape_error(bytes: &[u8]) -> Option<String> {
    fn first_bad<T: serde::de::DeserializeOwned>(section: &str, v: &Value) -> Option<String> {
        let items = v.as_array()?;
        items.iter().enumerate().find_map(|(i, item)| {
            serde_json::from_value::<T>(item.clone())
                .err()
                .map(|e| format!("{section}[{i}]: {}", in_words(&e.to_string())))
        })
    }
    let doc: Value = serde_json::from_slice(bytes).ok()?;
    let Some(obj) = doc.as_object() else {
        return Some("the top level is not a JSON object".to_string());
    };
    for key in ["launched", "pending"] {
        if !obj.contains_key(key) {
            return Some(format!("section `{key}` is missing"));
        }
    }
    for (key, v) in obj {
        let bad = match key.as_str() {
            "launched" | "to_decommission" => first_bad::<HandleRecord>(key, v),
            "pending" => first_bad::<PendingRecord>(key, v),
            "creating" => first_bad::<CreatingRecord>(key, v),
            "launch_failures" => first_bad::<FailureRecord>(key, v),
            "uncertain" => first_bad::<UncertainRecord>(key, v),
            _ => None,
        };
        if bad.is_some() {
            return bad;
        }
        let known = matches!(
            key.as_str(),
            "launched"
                | "to_decommission"
                | "pending"
                | "creating"
                | "launch_failures"
                | "uncertain"
        );
        if known && !v.is_array() {
            return Some(format!("section `{key}` is not a list"));
        }
    }
    None
}

/// Replaces `path` by `bytes` atomically (see [`write_atomic_with`]).
/// Blocking: call it from the blocking pool.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes)).map(drop)
}

/// The file a write replaced, still open: its blocks are freed when it is
/// dropped (ext4 frees them at the last close, about 4 ms for a state
/// file of a few MiB), which `Replaced::release_later` does in the
/// blocking pool, after the write is reported durable.
#[derive(Debug)]
pub struct Replaced(Option<File>);

impl Replaced {
    /// Closes the replaced file in the blocking pool.
    pub(crate) fn release_later(self) {
        if let Some(file) = self.0 {
            drop(actix_rt::task::spawn_blocking(move || drop(file)));
        }
    }
}

/// Buffer between the content's writer and the temp file.
const WRITE_BUFFER: usize = 64 * 1024;

/// Replaces `path` atomically by what `content` writes: a temp file (mode
/// 0600) in the same directory, written through a buffer, fsync, rename
/// over `path`, fsync of the directory. The temp name holds the process id
/// and a per-process counter, so two processes (or two writes of one
/// process) never share a temp file. Blocking: call it from the blocking
/// pool. The replaced file, if any, is returned open (see [`Replaced`]).
pub fn write_atomic_with<F>(path: &Path, content: F) -> io::Result<Replaced>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.{}.{n}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut replaced = Replaced(None);
    let written = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut buffered = BufWriter::with_capacity(WRITE_BUFFER, file);
        content(&mut buffered)?;
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        // Kept open across the rename, so that freeing it is not part of
        // the rename; best effort (a file that cannot be opened is simply
        // freed by the rename).
        replaced = Replaced(File::open(path).ok());
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: a temp file left behind only takes space.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&dir)?.sync_all()?;
    Ok(replaced)
}

#[cfg(test)]
mod words_tests {
    use super::*;

    #[test]
    fn shape_errors_name_no_rust_type() {
        let text = br#"{"launched": ["oops"], "pending": []}"#;
        let why = locate_shape_error(text).unwrap_or_default();
        assert!(why.starts_with("launched[0]"), "{why}");
        assert!(!why.contains("Record") && !why.contains("struct"), "{why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn python_state() -> Value {
        json!({
            "launched": [{"runner_name": "r1", "job_id": 3, "token": "t3",
                          "trace_offset": 0, "expected_weight": 2.378,
                          "paas_resource": {"app_id": "app_3", "weight": 2.378}}],
            "to_decommission": [{"runner_name": "r1", "job_id": 4, "token": "t4",
                                 "trace_offset": 57, "expected_weight": 1,
                                 "paas_resource": {"app_id": "app_4"}}],
            "pending": [[{"runner_name": "r1", "job_id": 5, "token": "t5",
                          "trace_offset": 0, "expected_weight": 1.0},
                         {"id": 5, "token": "t5", "job_info": {"project_id": 1}}]]
        })
    }

    #[test]
    fn reads_the_python_format() {
        let bytes = serde_json::to_vec(&python_state()).expect("json");
        let snap = Snapshot::from_json(&bytes).expect("parse");
        assert_eq!(snap.launched.len(), 1);
        assert_eq!(snap.launched[0].token.expose(), "t3");
        assert_eq!(snap.to_decommission[0].trace_offset, 57);
        assert_eq!(snap.to_decommission[0].expected_weight, 1.0);
        assert_eq!(snap.pending[0].handle.job_id, 5);
        assert_eq!(snap.pending[0].handle.paas_resource, None);
        assert_eq!(snap.pending[0].job_data["job_info"]["project_id"], 1);
        assert!(snap.creating.is_empty());
    }

    #[test]
    fn round_trip_keeps_python_keys_and_adds_extras_only_when_needed() {
        let bytes = serde_json::to_vec(&python_state()).expect("json");
        let snap = Snapshot::from_json(&bytes).expect("parse");
        let out: Value = serde_json::from_slice(&snap.to_json().expect("ser")).expect("json");
        let mut keys: Vec<_> = out.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["launched", "pending", "to_decommission"]);
        assert_eq!(out["pending"][0][0]["token"], "t5");
        assert!(out["pending"][0][0].get("paas_resource").is_none());
        assert_eq!(out["launched"][0]["paas_resource"]["app_id"], "app_3");

        let mut snap = snap;
        snap.creating.push(CreatingRecord {
            runner_name: "r1".into(),
            job_id: 5,
            resource_name: "hpd-job-r1-5".into(),
        });
        let back = Snapshot::from_json(&snap.to_json().expect("ser")).expect("parse");
        assert_eq!(back, snap);
    }

    #[test]
    fn encoded_records_write_the_same_bytes_as_the_snapshot() {
        let mut snap = Snapshot::from_json(&serde_json::to_vec(&python_state()).expect("json"))
            .expect("parse");
        let same = |snap: &Snapshot| {
            let doc = snap.to_doc().expect("encode");
            assert_eq!(doc.to_json(), snap.to_json().expect("ser"));
            assert_eq!(doc.len(), snap.len());
        };
        same(&snap);
        same(&Snapshot::default());
        snap.creating.push(CreatingRecord {
            runner_name: "r1".into(),
            job_id: 5,
            resource_name: "hpd-job-r1-5".into(),
        });
        snap.launch_failures.push(FailureRecord {
            runner_name: "r1".into(),
            job_id: 5,
            message: "quota \"exceeded\"\n".into(),
            trace_appended: true,
        });
        snap.uncertain.push(UncertainRecord {
            runner_name: "r1".into(),
            job_id: None,
            operation: "poll".into(),
        });
        same(&snap);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let cases = [
            "",
            "{",
            "[]",
            r#"{"pending": []}"#,
            r#"{"launched": [], "pending": [[{"runner_name": "r", "job_id": 1, "token": "t"}]]}"#,
            r#"{"launched": [{"job_id": 1, "token": "t"}], "pending": []}"#,
            r#"{"launched": [], "pending": [], "to_decommission": {}}"#,
        ];
        for c in cases {
            assert!(Snapshot::from_json(c.as_bytes()).is_err(), "{c:?} parsed");
        }
        assert!(Snapshot::from_json(br#"{"launched": [], "pending": [], "zz": 1}"#).is_ok());
    }

    #[actix_rt::test]
    async fn file_store_round_trip_mode_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let store = FileStore::new(&path);
        assert_eq!(store.load().await, Ok(None));
        let snap = Snapshot::from_json(&serde_json::to_vec(&python_state()).expect("json"))
            .expect("parse");
        store
            .save(snap.to_doc().expect("encode"))
            .await
            .expect("save");
        store
            .save(snap.to_doc().expect("encode"))
            .await
            .expect("save again");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.load().await, Ok(Some(snap)));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("readdir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("state.json")]);
    }

    #[actix_rt::test]
    async fn corrupt_file_is_an_error_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"launched\": [").expect("write");
        let store = FileStore::new(&path);
        let err = store.load().await.expect_err("corrupt");
        let msg = err.to_string();
        assert!(matches!(err, StateError::Corrupt { .. }), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(fs::read(&path).expect("still there"), b"{\"launched\": [");
    }

    #[test]
    fn corruption_is_described_with_what_and_where() {
        let cases = [
            ("", "the file is empty"),
            ("  \n", "the file is empty"),
            (
                r#"{"launched": [{"runner_name": "r""#,
                "truncated: EOF while parsing",
            ),
            (
                r#"{"launched": [}"#,
                "invalid JSON: expected value at line 1 column 15",
            ),
            ("[]", "wrong shape: the top level is not a JSON object"),
            (
                r#"{"pending": []}"#,
                "wrong shape: section `launched` is missing",
            ),
            (
                r#"{"launched": [], "pending": [], "to_decommission": {}}"#,
                "wrong shape: section `to_decommission` is not a list",
            ),
            (
                r#"{"launched": [{"runner_name": "r", "job_id": 1, "token": "t"},
                                {"runner_name": "r", "token": "t"}], "pending": []}"#,
                "wrong shape: launched[1]: missing field `job_id`",
            ),
            (
                r#"{"launched": [], "pending": [[{"runner_name": "r", "job_id": "x", "token": "t"}, {}]]}"#,
                "wrong shape: pending[0]: invalid type: string \"x\"",
            ),
            (
                r#"{"launched": [{"runner_name": "r", "job_id": 1, "token": "t",
                                  "expected_weight": -76.1}], "pending": []}"#,
                "wrong shape: launched[0]: expected_weight -76.1 is not a weight",
            ),
        ];
        for (content, expected) in cases {
            let err = Snapshot::from_json(content.as_bytes()).expect_err(content);
            let got = describe_corruption(content.as_bytes(), &err);
            assert!(got.starts_with(expected), "{content:?}: {got}");
        }
        // Line and column of the parser are kept for wrong shapes too.
        let content = "{\"launched\": [{\"job_id\": 1}],\n \"pending\": []}";
        let err = Snapshot::from_json(content.as_bytes()).expect_err("bad");
        assert!(describe_corruption(content.as_bytes(), &err).contains("line 1"));
    }

    #[actix_rt::test]
    async fn unwritable_directory_is_a_write_error() {
        let store = FileStore::new("/nonexistent-dir-for-test/state.json");
        let err = store.save(StateDoc::default()).await.expect_err("no dir");
        assert!(matches!(err, StateError::Write { .. }), "{err}");
    }
}
