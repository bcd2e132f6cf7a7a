//! The clever-docker executor against paas-sim: the fake Clever Cloud (API,
//! git smart-HTTP, build-context checker, inner runner) and the fake
//! coordinator that hands out the jobs (acquired, and group attributes
//! read, through the real GitLab client).
//!
//! Every test checks at the end that the sim's checker found no violation
//! and, where the test cleans up, that no application leaked.

use heptapod_paas_runner::config;
use heptapod_paas_runner::executors::clever::{
    CleverExecutor, CleverSettings, GroupAttributes, HttpSettings, RetryPolicy, Tenancy,
};
use heptapod_paas_runner::gitlab::{CoordinatorSettings, GitlabCoordinator};
use heptapod_paas_runner::secret::Secret;
use paas_actors::ports::{
    weight_of_mem_mib, Coordinator, Job, Paas, PaasErrorClass, PollKind, Resource,
};
use paas_sim::clever::config::{DEFAULT_ORG, DEFAULT_TOKEN};
use paas_sim::clever::OrgSeed;
use paas_sim::clever::{
    CleverHandle, CleverSimConfig, Endpoint, FakeClever, FaultCommand, FaultKind, RepoDelay, Timing,
};
use paas_sim::coordinator::{CoordinatorConfig, CoordinatorHandle, FakeCoordinator, JobSpec};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

const RUNNER_TOKEN: &str = "D3adNQYu8OCjkYDbwDaG";
const ADMIN_TOKEN: &str = "admin-attributes-token";

struct World {
    clever: CleverHandle,
    coord: CoordinatorHandle,
}

impl World {
    fn start(cfg: CleverSimConfig) -> World {
        let clever = FakeClever::start(cfg).expect("fake clever");
        let coord = FakeCoordinator::start(CoordinatorConfig {
            runner_tokens: vec![RUNNER_TOKEN.to_string()],
            admin_tokens: vec![ADMIN_TOKEN.to_string()],
            ..CoordinatorConfig::default()
        })
        .expect("fake coordinator");
        World { clever, coord }
    }

    fn default() -> World {
        World::start(CleverSimConfig::default())
    }

    /// Settings as the wiring builds them: from a configuration file
    /// through configuration validation (so the inner runner.toml is
    /// the real one), with test-sized timings.
    fn settings(&self) -> CleverSettings {
        let text = format!(
            r#"
[quota_computation]
reference_runner = "cc"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "cc"
url = "{}"
token = "{RUNNER_TOKEN}"
executor = "clever-docker"
cc_api_url = "{}"
cc_orga_id = "{DEFAULT_ORG}"
cc_token = "{DEFAULT_TOKEN}"
cc_deployment_repo_timeout = 0.4
cc_deployment_repo_wait_step = 0.02
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
[runners.docker]
image = "debian:bookworm"
"#,
            self.coord.url(),
            self.clever.api_url()
        );
        let loaded = config::parse_str(&text, Path::new("test.toml")).expect("valid config");
        let runner = loaded.config.runners.first().expect("one runner");
        let mut s = runner.clever.clone().expect("clever runner");
        s.push_timeout = Duration::from_secs(30);
        s.http = HttpSettings {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
            },
        };
        s
    }

    fn executor(&self, s: CleverSettings) -> CleverExecutor {
        CleverExecutor::new(s, None, logger()).expect("executor")
    }

    /// The runner's GitLab client (also reading group attributes).
    fn gitlab(&self) -> GitlabCoordinator {
        let mut s = CoordinatorSettings::new(self.coord.url(), Secret::new(RUNNER_TOKEN));
        s.attributes_token = Some(Secret::new(ADMIN_TOKEN));
        GitlabCoordinator::new(s).expect("gitlab client")
    }

    /// Enqueues a job and acquires it as the runner does.
    async fn acquire(&self, spec: JobSpec) -> Job {
        self.coord.control().enqueue_job(spec);
        self.gitlab()
            .request_job(PollKind::Short)
            .await
            .expect("jobs/request")
            .expect("a job is handed out")
    }

    /// Waits (bounded) until every deployment is checked; there must be
    /// `expected` of them.
    async fn settle(&self, expected: usize) {
        assert_eq!(self.clever.control().deployments().len(), expected);
        for _ in 0..200 {
            if self
                .clever
                .control()
                .deployments()
                .iter()
                .all(|d| d.checked)
            {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("deployments not checked within 5 s");
    }

    fn assert_clean(&self) {
        let violations = self.clever.control().violations();
        assert!(violations.is_empty(), "sim violations: {violations:#?}");
        let summary = self.clever.control().summary();
        assert!(
            summary.leaks.is_empty(),
            "leaked apps: {:#?}",
            summary.leaks
        );
        assert!(summary.duplicates.is_empty(), "{:#?}", summary.duplicates);
    }
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

async fn provision(ex: &CleverExecutor, job: &Job) -> Resource {
    let r = ex.create(job).await.expect("create");
    ex.prepare(&r, job).await.expect("prepare")
}

#[actix_rt::test]
async fn single_org_job_is_deployed_and_cleaned_up() {
    let w = World::default();
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("build").flavor("S")).await;
    let weight = ex.expected_weight(&job).await.expect("weight");
    let r = provision(&ex, &job).await;
    assert_eq!(r.weight, weight);
    assert_eq!(r.weight, weight_of_mem_mib(4096));
    let git_requests = || {
        let control = w.clever.control();
        (
            control.request_count(Endpoint::GitInfoRefs),
            control.request_count(Endpoint::GitReceivePack),
        )
    };
    let (refs_before, packs_before) = git_requests();
    let launched = ex.launch(&r, &job).await.expect("launch");
    assert!(launched.launched);
    // One push, two requests: the references (credentials sent at once,
    // no 401 round), then the pack.
    assert_eq!(git_requests(), (refs_before + 1, packs_before + 1));
    w.settle(1).await;
    let deployments = w.clever.control().deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(
        deployments.first().and_then(|d| d.job_id),
        Some(job.id),
        "job.json pushed"
    );
    let envs = w.clever.control().deployment_envs(&r.id);
    let env = envs.first().expect("env snapshot");
    assert_eq!(
        env.get("CC_MOUNT_DOCKER_SOCKET").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        env.get("CC_ENABLE_HEPTAPOD_RUNNER").map(String::as_str),
        Some("true")
    );

    // A second launch (after a restart) finds master: already launched,
    // nothing sent after the references.
    let again = ex.launch(&r, &job).await.expect("second launch");
    assert!(again.launched);
    assert_eq!(w.clever.control().deployments().len(), 1);
    assert_eq!(git_requests(), (refs_before + 2, packs_before + 1));

    ex.decommission(&launched).await.expect("delete");
    ex.decommission(&launched).await.expect("delete twice");
    w.assert_clean();
}

#[actix_rt::test]
async fn services_and_dependency_proxy_pass_the_checker() {
    let w = World::default();
    let ex = w.executor(w.settings());
    let mut spec = JobSpec::new("with-services");
    spec.dependency_proxy_prefix =
        Some("heptapod.example:443/group/dependency_proxy/containers".into());
    spec.image = Some("python:3.11".into());
    spec.services = vec!["postgres:13".into(), "tutum/wordpress".into()];
    let job = w.acquire(spec).await;
    let r = provision(&ex, &job).await;
    ex.launch(&r, &job).await.expect("launch");
    w.settle(1).await;
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn flavor_errors_reach_the_user_and_create_nothing() {
    let w = World::default();
    let mut s = w.settings();
    s.max_flavor = Some("L".into());
    let ex = w.executor(s);
    for (flavor, part) in [
        ("XXL", "is not available; allowed flavors: XS, S, M, L"),
        ("3XL", "bigger than this runner's maximum \"L\""),
    ] {
        let job = w.acquire(JobSpec::new("f").flavor(flavor)).await;
        let e = ex.expected_weight(&job).await.expect_err("flavor");
        assert_eq!(e.class, PaasErrorClass::Permanent);
        assert!(e.message.contains(part), "{}", e.message);
        let e = ex.create(&job).await.expect_err("flavor");
        assert!(e.message.contains(part), "{}", e.message);
    }
    assert_eq!(w.clever.control().summary().apps_created, 0);
    w.assert_clean();
}

#[actix_rt::test]
async fn create_answering_500_leaves_nothing() {
    let w = World::default();
    let ex = w.executor(w.settings());
    w.clever.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::CreateApp,
        count: 1,
        fault: FaultKind::status(500),
    });
    let job = w.acquire(JobSpec::new("c")).await;
    let e = ex.create(&job).await.expect_err("500");
    assert_eq!(e.action, "create-app");
    assert!(e.message.contains("HTTP 500"), "{}", e.message);
    assert_eq!(w.clever.control().request_count(Endpoint::CreateApp), 1);
    assert_eq!(w.clever.control().summary().apps_created, 0);
    w.assert_clean();
}

#[actix_rt::test]
async fn lost_create_answer_adopts_the_app_without_duplicate() {
    let w = World::default();
    let mut s = w.settings();
    s.http.request_timeout = Duration::from_millis(500);
    let ex = w.executor(s);
    w.clever.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::CreateApp,
        count: 1,
        fault: FaultKind::PerformThenHang,
    });
    let job = w.acquire(JobSpec::new("lost")).await;
    let r = ex.create(&job).await.expect("adopted");
    assert_eq!(r.name, format!("hpd-job-D3adNQYu-{}", job.id));
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn env_failure_after_create_is_decommissioned() {
    let w = World::default();
    let ex = w.executor(w.settings());
    w.clever.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::PutEnv,
        count: 1,
        fault: FaultKind::status(500),
    });
    let job = w.acquire(JobSpec::new("env")).await;
    let r = ex.create(&job).await.expect("create");
    let e = ex.prepare(&r, &job).await.expect_err("env");
    assert_eq!(e.action, "put-env");
    assert!(e.message.contains("HTTP 500"));
    assert_eq!(w.clever.control().summary().live_count, 1);
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn repository_never_ready_times_out() {
    let w = World::start(CleverSimConfig {
        timing: Timing {
            repo_create_delay: RepoDelay::Never,
            ..Timing::default()
        },
        ..CleverSimConfig::default()
    });
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("never")).await;
    let r = ex.create(&job).await.expect("create");
    let e = ex.prepare(&r, &job).await.expect_err("timeout");
    assert_eq!(e.action, "wait-git");
    assert!(
        e.message.contains("not deployable after 0.4 s"),
        "{}",
        e.message
    );
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn push_auth_failure_is_permanent() {
    let w = World::start(CleverSimConfig {
        git_strict_user: true,
        ..CleverSimConfig::default()
    });
    let mut s = w.settings();
    s.auth_user = "not-jenkins".into();
    let ex = w.executor(s);
    let job = w.acquire(JobSpec::new("auth")).await;
    let r = provision(&ex, &job).await;
    let e = ex.launch(&r, &job).await.expect_err("auth");
    assert_eq!(e.action, "push");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(!e.message.contains(DEFAULT_TOKEN), "no password in errors");
    assert!(w.clever.control().deployments().is_empty());
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_push_refused_by_the_server_is_a_permanent_rejection() {
    let w = World::default();
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("refused")).await;
    let r = provision(&ex, &job).await;
    w.clever.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::GitReceivePack,
        count: 1,
        fault: FaultKind::RejectPush,
    });
    let e = ex.launch(&r, &job).await.expect_err("rejected");
    assert_eq!(e.action, "push");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(e.message.contains("rejected"), "{}", e.message);
    assert!(e.message.contains("refs/heads/master"), "{}", e.message);
    assert!(!e.message.contains(DEFAULT_TOKEN), "no password in errors");
    assert!(w.clever.control().deployments().is_empty());
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn state_round_trip_then_decommission() {
    let w = World::default();
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("state").flavor("XL")).await;
    let r = provision(&ex, &job).await;
    let r = ex.launch(&r, &job).await.expect("launch");
    w.settle(1).await;
    let saved = ex.dump_resource(&r);
    // A new executor (restart) reads it back.
    let ex2 = w.executor(w.settings());
    let back = ex2.load_resource(&saved).await.expect("load");
    assert_eq!(back.id, r.id);
    assert_eq!(back.weight, weight_of_mem_mib(16384));
    assert!(back.launched);
    assert_eq!(ex2.list_resources().await.expect("list").len(), 1);
    ex2.decommission(&back).await.expect("delete");
    assert!(ex2.list_resources().await.expect("list").is_empty());
    w.assert_clean();
}

#[actix_rt::test]
async fn multi_tenant_job_runs_in_its_groups_organisation() {
    let w = World::default();
    w.clever.control().seed_org(&OrgSeed {
        id: "orga_acme".into(),
        tokens: vec!["tok-acme".into()],
    });
    w.coord.control().set_group_attributes(
        "acme",
        &[("cc_orga_id", "orga_acme"), ("cc_orga_token", "tok-acme")],
    );
    w.coord
        .control()
        .set_group_attributes("half", &[("cc_orga_id", "orga_acme")]);
    let mut s = w.settings();
    s.tenancy = Tenancy::Multi {
        attributes_token: Secret::new("attributes-token"),
        orga_id_attribute: "cc_orga_id".into(),
        orga_token_attribute: "cc_orga_token".into(),
    };
    let attrs: Rc<dyn GroupAttributes> = Rc::new(w.gitlab());
    let ex = CleverExecutor::new(s.clone(), Some(attrs.clone()), logger()).expect("executor");

    // A user-defined CI_PROJECT_ROOT_NAMESPACE placed first in the payload
    // names another tenant: the project's namespace at GitLab wins.
    w.clever.control().seed_org(&OrgSeed {
        id: "orga_victim".into(),
        tokens: vec!["tok-victim".into()],
    });
    w.coord.control().set_group_attributes(
        "victim",
        &[
            ("cc_orga_id", "orga_victim"),
            ("cc_orga_token", "tok-victim"),
        ],
    );
    let job = w
        .acquire(
            JobSpec::new("tenant")
                .root_namespace("acme")
                .leading_variable("CI_PROJECT_ROOT_NAMESPACE", "victim"),
        )
        .await;
    assert_eq!(job.variable("CI_PROJECT_ROOT_NAMESPACE"), Some("victim"));
    let r = provision(&ex, &job).await;
    let r = ex.launch(&r, &job).await.expect("launch");
    w.settle(1).await;
    let apps = w.clever.control().apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps.first().map(|a| a.org.as_str()), Some("orga_acme"));
    let saved = ex.dump_resource(&r);
    assert_eq!(saved["gitlab_namespace"], "acme");

    for (ns, part) in [
        ("half", "custom attribute \"cc_orga_token\""),
        ("ghost", "GitLab group \"ghost\""),
    ] {
        let job = w.acquire(JobSpec::new("bad").root_namespace(ns)).await;
        let e = ex.create(&job).await.expect_err("no orga");
        assert_eq!(e.action, "find-orga");
        assert_eq!(e.class, PaasErrorClass::Permanent);
        assert!(e.message.contains(part), "{}", e.message);
    }
    // A personal namespace whose path is all digits, equal to the id of
    // the victim's group: GitLab would read `/groups/<digits>` as that id.
    let victim_id = w.coord.control().set_group_attributes(
        "victim",
        &[
            ("cc_orga_id", "orga_victim"),
            ("cc_orga_token", "tok-victim"),
        ],
    );
    let digits = JobSpec::new("digits").root_namespace(victim_id.to_string());
    let job = w.acquire(digits).await;
    let e = ex.create(&job).await.expect_err("not the victim's group");
    assert_eq!(
        (e.action.as_str(), e.class),
        ("find-orga", PaasErrorClass::Permanent)
    );
    assert!(
        e.message.contains("not a top-level group of that path"),
        "{}",
        e.message
    );
    assert_eq!(w.clever.control().apps().len(), 1);

    // A project GitLab does not show: refused, nothing created.
    let mut lost = w.acquire(JobSpec::new("lost").root_namespace("acme")).await;
    lost.project_id = Some(999_999);
    let e = ex.create(&lost).await.expect_err("no project");
    assert_eq!(
        (e.action.as_str(), e.class),
        ("find-orga", PaasErrorClass::Permanent)
    );
    assert!(e.message.contains("project 999999"), "{}", e.message);
    assert_eq!(w.clever.control().apps().len(), 1);

    // After a restart, the tenant is resolved again from the saved namespace.
    let ex2 = CleverExecutor::new(s, Some(attrs), logger()).expect("executor");
    let back = ex2.load_resource(&saved).await.expect("load");
    assert_eq!(ex2.list_resources().await.expect("list").len(), 1);
    ex2.decommission(&back).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_resource_stays_in_its_organisation_when_its_group_moves() {
    let w = World::default();
    for (org, token) in [("orga_old", "tok-old"), ("orga_new", "tok-new")] {
        w.clever.control().seed_org(&OrgSeed {
            id: org.into(),
            tokens: vec![token.into()],
        });
    }
    w.coord.control().set_group_attributes(
        "acme",
        &[("cc_orga_id", "orga_old"), ("cc_orga_token", "tok-old")],
    );
    let mut s = w.settings();
    s.tenancy = Tenancy::Multi {
        attributes_token: Secret::new("attributes-token"),
        orga_id_attribute: "cc_orga_id".into(),
        orga_token_attribute: "cc_orga_token".into(),
    };
    // Every lookup asks GitLab again.
    s.tenant_cache_ttl = Duration::ZERO;
    let attrs: Rc<dyn GroupAttributes> = Rc::new(w.gitlab());
    let ex = CleverExecutor::new(s.clone(), Some(attrs.clone()), logger()).expect("executor");
    let job = w
        .acquire(JobSpec::new("moving").root_namespace("acme"))
        .await;
    let r = provision(&ex, &job).await;
    let saved = ex.dump_resource(&r);
    assert_eq!(saved["orga_id"], "orga_old");

    // The group now maps to another organisation.
    w.coord.control().set_group_attributes(
        "acme",
        &[("cc_orga_id", "orga_new"), ("cc_orga_token", "tok-new")],
    );
    // A restarted runner does not know the old organisation's token: the
    // resource is kept, its deletion retried, the listing refused (rather
    // than the resource taken for vanished).
    let ex2 = CleverExecutor::new(s, Some(attrs), logger()).expect("executor");
    let back = ex2.load_resource(&saved).await.expect("load");
    let e = ex2.decommission(&back).await.expect_err("old org unknown");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert!(e.message.contains("orga_old"), "{}", e.message);
    assert!(ex2.list_resources().await.is_err());
    assert_eq!(w.clever.control().apps().len(), 1);

    // The runner that created it lists and deletes it where it lives.
    let listed = ex.list_resources().await.expect("list");
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [r.id.as_str()]
    );
    let back = ex.load_resource(&saved).await.expect("load");
    ex.decommission(&back)
        .await
        .expect("delete in the old organisation");
    w.assert_clean();
}

/// While GitLab is down, an expired tenant entry still deletes and lists
/// existing resources but never serves a new create.
#[actix_rt::test]
async fn an_expired_tenant_serves_cleanup_but_no_create_while_gitlab_is_down() {
    let w = World::default();
    w.clever.control().seed_org(&OrgSeed {
        id: "orga_acme".into(),
        tokens: vec!["tok-acme".into()],
    });
    w.coord.control().set_group_attributes(
        "acme",
        &[("cc_orga_id", "orga_acme"), ("cc_orga_token", "tok-acme")],
    );
    let mut s = w.settings();
    s.tenancy = Tenancy::Multi {
        attributes_token: Secret::new("attributes-token"),
        orga_id_attribute: "cc_orga_id".into(),
        orga_token_attribute: "cc_orga_token".into(),
    };
    s.tenant_cache_ttl = Duration::ZERO;
    let attrs: Rc<dyn GroupAttributes> = Rc::new(w.gitlab());
    let ex = CleverExecutor::new(s, Some(attrs), logger()).expect("executor");
    let first = w
        .acquire(JobSpec::new("first").root_namespace("acme"))
        .await;
    // A second job of another project of the same group, acquired now.
    let mut second = w
        .acquire(JobSpec::new("second").root_namespace("acme"))
        .await;
    second.project_id = Some(4242);
    let r = provision(&ex, &first).await;

    w.coord.control().set_down(true);
    let e = ex
        .create(&second)
        .await
        .expect_err("no create on stale data");
    assert_eq!(
        (e.action.as_str(), e.class),
        ("find-orga", PaasErrorClass::Transient)
    );
    let e = ex
        .create(&first)
        .await
        .expect_err("no create on a stale tenant");
    assert_eq!(e.class, PaasErrorClass::Transient);
    assert_eq!(ex.list_resources().await.expect("list").len(), 1);
    ex.decommission(&r)
        .await
        .expect("delete on the stale tenant");
    w.coord.control().set_down(false);
    w.assert_clean();
}

/// The runner's resource of `app_id` as a reconciliation listing gives it.
async fn listed(ex: &CleverExecutor, app_id: &str) -> Resource {
    ex.list_resources()
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.id == app_id)
        .expect("app listed")
}

#[actix_rt::test]
async fn a_pushed_apps_job_is_read_back_equal_to_the_pushed_payload() {
    let w = World::default();
    let ex = w.executor(w.settings());
    // Long enough to be still running when asked about, even on a loaded machine.
    let spec = JobSpec::new("recover")
        .flavor("S")
        .duration(Duration::from_secs(120));
    let job = w.acquire(spec).await;
    let r = provision(&ex, &job).await;
    ex.launch(&r, &job).await.expect("launch");
    w.settle(1).await;

    // A restarted runner without state: a new executor, the app as listed.
    let ex2 = w.executor(w.settings());
    let found = listed(&ex2, &r.id).await;
    let recovered = ex2
        .recover_job(&found)
        .await
        .expect("recover")
        .expect("a job in the repository");
    assert_eq!(recovered, job, "the payload pushed, token included");
    // The recovered token is accepted by the coordinator.
    let status = w.gitlab().job_status(&recovered).await.expect("job status");
    assert_eq!(status, paas_actors::ports::JobStatus::Running);

    ex2.decommission(&found).await.expect("delete");
    w.assert_clean();
}

/// Makes `app_id` older than the longest provisioning of `settings`.
fn age_past_grace(w: &World, settings: &CleverSettings, app_id: &str) {
    let by = settings.no_job_grace() + Duration::from_secs(1);
    assert!(w.clever.control().age_app(app_id, by));
}

#[actix_rt::test]
async fn an_app_never_pushed_holds_no_job() {
    // Repository ready but empty (prepared, never launched).
    let w = World::default();
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("empty")).await;
    let r = provision(&ex, &job).await;
    let found = listed(&ex, &r.id).await;
    // Younger than the longest provisioning: maybe being launched.
    let young = ex.recover_job(&found).await.expect_err("too young");
    assert_eq!(young.class, PaasErrorClass::Transient);
    assert!(
        young.message.contains("next pass decides"),
        "{}",
        young.message
    );
    age_past_grace(&w, &w.settings(), &r.id);
    assert_eq!(ex.recover_job(&found).await.expect("recover"), None);
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();

    // Repository never created: the git URL answers 404, the app says why.
    let w = World::start(CleverSimConfig {
        timing: Timing {
            repo_create_delay: RepoDelay::Never,
            ..Timing::default()
        },
        ..CleverSimConfig::default()
    });
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("no-repo")).await;
    let r = ex.create(&job).await.expect("create");
    let found = listed(&ex, &r.id).await;
    assert!(found.detail["deploy_url"].is_string(), "{:?}", found.detail);
    age_past_grace(&w, &w.settings(), &r.id);
    assert_eq!(ex.recover_job(&found).await.expect("recover"), None);
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

#[actix_rt::test]
async fn a_wrong_token_is_an_error_that_does_not_show_it() {
    let w = World::default();
    let ex = w.executor(w.settings());
    let job = w.acquire(JobSpec::new("wrong-token")).await;
    let r = provision(&ex, &job).await;
    ex.launch(&r, &job).await.expect("launch");
    w.settle(1).await;
    let found = listed(&ex, &r.id).await;

    const WRONG: &str = "not-the-orga-token-1234";
    let mut s = w.settings();
    s.tenancy = Tenancy::Single {
        orga_id: DEFAULT_ORG.into(),
        token: Secret::new(WRONG),
    };
    let bad = w.executor(s);
    let e = bad.recover_job(&found).await.expect_err("refused");
    assert_eq!(e.action, "recover-job");
    assert_eq!(e.class, PaasErrorClass::Permanent);
    assert!(
        e.message.contains("authentication refused"),
        "{}",
        e.message
    );
    for secret in [WRONG, DEFAULT_TOKEN] {
        assert!(!e.message.contains(secret), "secret in {}", e.message);
    }
    ex.decommission(&r).await.expect("delete");
    w.assert_clean();
}

/// One retry layer: the prepare step's `PUT env` is retried by the
/// launcher only. Under persistent 503s (which the client would retry
/// itself on a call it owns), the whole service, wired from a
/// configuration file as the binary does, sends at most `launch_attempts`
/// `PUT env` calls for the job, counted by the simulator, then reports the
/// job failed.
#[actix_rt::test]
async fn prepare_under_persistent_5xx_sends_at_most_launcher_attempts_env_calls() {
    use heptapod_paas_runner::wiring::{build, Overrides};
    use paas_actors::service::{service_control, start_service};
    use paas_sim::coordinator::JobState;

    let w = World::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"
state_file = "{}"
check_interval = 1
[quota_computation]
reference_runner = "cc"
reference_flavor = "M"
reference_jobs_count = 4
[[runners]]
name = "cc"
url = "{}"
token = "{RUNNER_TOKEN}"
executor = "clever-docker"
cc_api_url = "{}"
cc_orga_id = "{DEFAULT_ORG}"
cc_token = "{DEFAULT_TOKEN}"
cc_max_flavor = "M"
[runners.cc_extra_env]
CC_ENABLE_HEPTAPOD_RUNNER = "true"
"#,
        dir.path().join("state.json").display(),
        w.coord.url(),
        w.clever.api_url()
    );
    let loaded = config::parse_str(&text, &dir.path().join("config.toml")).expect("valid config");
    let metrics = std::sync::Arc::default();
    let state_file = dir.path().join("state.json");
    let mut service = build(
        &loaded.config,
        &state_file,
        &Overrides::default(),
        &metrics,
        None,
        &logger(),
    )
    .await
    .expect("wiring");
    // Test-sized launcher back-off; the attempts stay the production ones.
    service.settings.backoff_min = Duration::from_millis(20);
    service.settings.backoff_max = Duration::from_millis(100);
    let attempts = u64::from(service.settings.launch_attempts);
    assert!(attempts > 1, "the launcher retries");

    w.clever.control().fault(FaultCommand::FailNext {
        endpoint: Endpoint::PutEnv,
        count: 1000,
        fault: FaultKind::Status {
            status: 503,
            id: None,
            html: false,
            retry_after_s: None,
        },
    });
    let id = w.coord.control().enqueue_job(JobSpec::new("env-down"));
    let (handle, control) = service_control();
    let running = start_service(
        service.settings,
        service.runners,
        service.store,
        logger(),
        control,
    )
    .await
    .expect("service starts");

    let mut failed = false;
    for _ in 0..400 {
        if w.coord.control().job_status(id) == Some(JobState::Failed) {
            failed = true;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(25)).await;
    }
    handle.drain();
    let report = running.wait().await;
    assert!(failed, "job {id} not reported failed within 10 s");
    assert!(!report.forced, "{report:?}");

    let env_calls = w.clever.control().request_count(Endpoint::PutEnv);
    assert!(
        (1..=attempts).contains(&env_calls),
        "{env_calls} PUT env calls for one job, the launcher makes {attempts} attempts"
    );
    assert_eq!(env_calls, attempts, "each launcher attempt sends one");
}
