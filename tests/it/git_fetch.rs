//! Reading `job.json` back from deployment repositories with git2, over
//! `file://` (the HTTP paths, with authentication, are in
//! `tests/it/clever_sim.rs` against paas-sim's git smart-HTTP server): what a
//! push wrote is read back byte for byte; an empty repository, a `master`
//! without `job.json` and an oversized `job.json` are told apart; a server
//! that never answers costs the timeout, not more.

use crate::git_exchanges::Exchanges;
use heptapod_paas_runner::deploy::BuildContext;
use heptapod_paas_runner::git::RemoteSchemes;
use heptapod_paas_runner::git::{fetch_job_json, MAX_JOB_FILE_BYTES};
use heptapod_paas_runner::git::{push_context, PushOutcome, RemoteError, DEPLOY_REF};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::Job;
use serde_json::json;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-token";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The exchanges of these tests (bare repositories on disk included).
const GIT: Exchanges = Exchanges {
    schemes: RemoteSchemes::NetworkAndLocalPaths,
    timeout: TIMEOUT,
};

fn file_url(path: &Path) -> String {
    url::Url::from_file_path(path)
        .expect("absolute path")
        .to_string()
}

fn bare() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git2::Repository::init_bare(dir.path()).expect("bare repository");
    dir
}

/// Commits `files` on `master` of the bare repository at `path`.
fn commit_files(path: &Path, files: &[(&str, &[u8])]) {
    let repo = git2::Repository::open_bare(path).expect("open");
    let mut tree = repo.treebuilder(None).expect("treebuilder");
    for (name, content) in files {
        let blob = repo.blob(content).expect("blob");
        tree.insert(name, blob, 0o100_644).expect("insert");
    }
    let tree = repo
        .find_tree(tree.write().expect("tree"))
        .expect("find tree");
    let sig = git2::Signature::now("t", "t@example.test").expect("signature");
    repo.commit(Some(DEPLOY_REF), &sig, &sig, "x", &tree, &[])
        .expect("commit");
}

#[test]
fn what_a_push_wrote_is_read_back_byte_for_byte() {
    let remote = bare();
    let url = file_url(remote.path());
    let job = Job::from_payload(json!({
        "id": 4242, "token": "glcbt-job", "zeta": [1, {"b": 2, "a": 1}],
        "job_info": {"project_id": 7}, "unicode": "é"}))
    .expect("job");
    let ctx = BuildContext::new(None, "concurrent = 1\n".into(), &job).expect("context");
    let pushed = GIT.push(&ctx, &url, "Jenkins", PASSWORD);
    assert_eq!(pushed, Ok(PushOutcome::Pushed));

    let read = GIT
        .fetch(&url, "Jenkins", PASSWORD)
        .expect("fetch")
        .expect("job.json present");
    assert_eq!(read, ctx.job_json.as_bytes());
    let back: serde_json::Value = serde_json::from_slice(&read).expect("JSON");
    let recovered = Job::from_payload(back).expect("a job payload");
    assert_eq!(recovered, job);
}

#[test]
fn an_empty_repository_or_a_master_without_job_json_holds_no_job() {
    let empty = bare();
    let got = fetch_job_json(
        &file_url(empty.path()),
        GIT.schemes,
        "Jenkins",
        &Secret::new(PASSWORD),
        TIMEOUT,
    );
    assert_eq!(got, Ok(None), "empty repository");

    let other = bare();
    commit_files(other.path(), &[("README", b"not a deployment")]);
    let got = fetch_job_json(
        &file_url(other.path()),
        GIT.schemes,
        "Jenkins",
        &Secret::new(PASSWORD),
        TIMEOUT,
    );
    assert_eq!(got, Ok(None), "master without job.json");
}

#[test]
fn an_oversized_job_json_is_a_permanent_error() {
    let remote = bare();
    let big = vec![b' '; MAX_JOB_FILE_BYTES + 1];
    commit_files(remote.path(), &[("job.json", &big)]);
    let err = fetch_job_json(
        &file_url(remote.path()),
        GIT.schemes,
        "Jenkins",
        &Secret::new(PASSWORD),
        TIMEOUT,
    )
    .expect_err("too large");
    assert!(matches!(err, RemoteError::TooLarge { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("more than the"), "{err}");
}

#[test]
fn bad_urls_are_refused_without_echoing_secrets() {
    for url in ["not a url", "ssh://git:s3cret@push.example/app.git"] {
        let err = GIT
            .fetch(url, "Jenkins", PASSWORD)
            .expect_err("invalid URL");
        assert!(matches!(err, RemoteError::InvalidUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}

#[test]
fn a_local_path_is_refused_with_the_default_schemes() {
    let remote = bare();
    let url = file_url(remote.path());
    let job = Job::from_payload(json!({"id": 1, "token": "t"})).expect("job");
    let ctx = BuildContext::new(None, "a = 1\n".into(), &job).expect("context");
    let secret = Secret::new(PASSWORD);
    let pushed = push_context(&ctx, &url, RemoteSchemes::default(), "J", &secret, TIMEOUT);
    assert!(
        matches!(&pushed, Err(RemoteError::InvalidUrl { detail, .. }) if detail.contains("local path")),
        "{pushed:?}"
    );
    let fetched = fetch_job_json(&url, RemoteSchemes::default(), "J", &secret, TIMEOUT);
    assert!(
        matches!(&fetched, Err(RemoteError::InvalidUrl { .. })),
        "{fetched:?}"
    );
    let repo = git2::Repository::open_bare(remote.path()).expect("open");
    assert!(repo.find_reference(DEPLOY_REF).is_err(), "nothing pushed");
}

#[test]
fn a_server_that_never_answers_costs_the_timeout() {
    // Accepts connections (kept in the backlog) and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("http://Jenkins:{PASSWORD}@127.0.0.1:{port}/app_1.git?x=1");
    let timeout = Duration::from_millis(600);
    let started = Instant::now();
    let err = fetch_job_json(
        &url,
        GIT.schemes,
        "Jenkins",
        &Secret::new(PASSWORD),
        timeout,
    )
    .expect_err("no answer");
    let took = started.elapsed();
    assert!(matches!(err, RemoteError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let text = err.to_string();
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/app_1.git ")),
        "{text}"
    );
    drop(listener);
}
