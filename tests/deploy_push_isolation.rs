//! The push ignores a hostile global Git configuration.
//!
//! This binary holds a single test on purpose: it points `HOME` and
//! `XDG_CONFIG_HOME` at a temporary directory before libgit2 first reads
//! its configuration search paths, which is only safe when no other test
//! of the process touches libgit2 or the environment.

use heptapod_paas_runner::deploy::BuildContext;
use heptapod_paas_runner::git::RemoteSchemes;
use heptapod_paas_runner::git::{
    push_context, PushOutcome, COMMITTER_EMAIL, COMMITTER_NAME, DEPLOY_REF,
};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::Job;
use serde_json::json;
use std::time::Duration;

/// Deployment URLs these tests use (bare repositories on disk included).
const SCHEMES: RemoteSchemes = RemoteSchemes::NetworkAndLocalPaths;

#[test]
fn hostile_global_config_changes_nothing() {
    let home = tempfile::tempdir().expect("home");
    let remote = tempfile::tempdir().expect("remote");
    let markers = home.path().join("markers");
    std::fs::create_dir(&markers).expect("markers dir");

    // Hooks that would leave a marker (and fail) if anything ran them.
    let hooks = home.path().join("hooks");
    let templates = home.path().join("templates");
    for dir in [hooks.clone(), templates.join("hooks")] {
        std::fs::create_dir_all(&dir).expect("hooks dir");
        for hook in ["pre-commit", "commit-msg", "post-commit", "pre-push"] {
            let path = dir.join(hook);
            std::fs::write(
                &path,
                format!("#!/bin/sh\ntouch '{}/{hook}'\nexit 1\n", markers.display()),
            )
            .expect("hook");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
        }
    }
    let remote_url = url::Url::from_file_path(remote.path())
        .expect("absolute")
        .to_string();
    let gitconfig = format!(
        "[init]\n\tdefaultBranch = main\n\ttemplateDir = {templates}\n\
         [user]\n\tname = Hostile User\n\temail = hostile@example.test\n\
         [core]\n\tautocrlf = true\n\thooksPath = {hooks}\n\
         [commit]\n\tgpgSign = true\n\
         [url \"file:///nonexistent/\"]\n\tinsteadOf = {remote_url}\n",
        templates = templates.display(),
        hooks = hooks.display(),
    );
    std::fs::write(home.path().join(".gitconfig"), &gitconfig).expect("gitconfig");
    let xdg = home.path().join("xdg");
    std::fs::create_dir_all(xdg.join("git")).expect("xdg");
    std::fs::write(xdg.join("git").join("config"), &gitconfig).expect("xdg config");

    // Before libgit2's first use in this process (see the module docs).
    std::env::set_var("HOME", home.path());
    std::env::set_var("XDG_CONFIG_HOME", &xdg);

    // The hostile configuration is really visible to libgit2, so the test
    // below means something.
    let global = git2::Config::open_default().expect("default config");
    assert_eq!(
        global.get_string("init.defaultBranch").ok().as_deref(),
        Some("main")
    );
    assert_eq!(
        global.get_string("user.name").ok().as_deref(),
        Some("Hostile User")
    );

    git2::Repository::init_bare(remote.path()).expect("bare remote");
    let job = Job::from_payload(json!({"id": 1, "token": "t"})).expect("job");
    let ctx = BuildContext::new(Some("img:1"), "a = 1\nb = 2\n".into(), &job).expect("context");
    let outcome = push_context(
        &ctx,
        &remote_url,
        SCHEMES,
        "Jenkins",
        &Secret::new("pw"),
        Duration::from_secs(20),
    );
    assert_eq!(outcome, Ok(PushOutcome::Pushed));

    let repo = git2::Repository::open_bare(remote.path()).expect("open remote");
    let names: Vec<String> = repo
        .references()
        .expect("refs")
        .filter_map(|r| r.ok().and_then(|r| r.name().ok().map(str::to_owned)))
        .collect();
    assert_eq!(names, [DEPLOY_REF]);
    let commit = repo
        .find_reference(DEPLOY_REF)
        .and_then(|r| r.peel_to_commit())
        .expect("commit");
    assert_eq!(commit.author().name().ok(), Some(COMMITTER_NAME));
    assert_eq!(commit.committer().email().ok(), Some(COMMITTER_EMAIL));
    assert!(
        commit.header_field_bytes("gpgsig").is_err(),
        "signed commit"
    );
    let tree = commit.tree().expect("tree");
    for (name, content) in ctx.files() {
        let entry = tree.get_name(name).expect(name);
        let blob = repo.find_blob(entry.id()).expect("blob");
        // No CRLF conversion.
        assert_eq!(blob.content(), content, "{name}");
    }
    let ran: Vec<_> = std::fs::read_dir(&markers)
        .expect("markers")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(ran.is_empty(), "hooks ran: {ran:?}");
}
