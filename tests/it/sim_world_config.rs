//! paas-sim's `World::write_runner_config` writes a configuration that the
//! runner's own loader accepts without warnings, with the values asked for.
//! (Here rather than in paas-sim: nothing depends on the root package but its
//! own tests.)

use paas_sim::world::{RunnerConfigOptions, World, WorldConfig};

fn world(tenants: &[&str]) -> World {
    let config = WorldConfig {
        tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..WorldConfig::default()
    };
    match World::start(config) {
        Ok(w) => w,
        Err(e) => panic!("world: {e}"),
    }
}

#[test]
fn the_written_configuration_loads_in_the_runner_without_warnings() {
    let w = world(&["acme", "beta"]);
    for options in [
        RunnerConfigOptions::default(),
        RunnerConfigOptions {
            runners: 2,
            multi_tenant: true,
            keep_resources: true,
            decommission_launch_failures: false,
            max_flavor: None,
            ..RunnerConfigOptions::default()
        },
    ] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = match w.write_runner_config(dir.path(), options.clone()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let loaded = match heptapod_paas_runner::config::load(&path) {
            Ok(l) => l,
            Err(e) => panic!("the runner refuses the written config: {e}"),
        };
        assert_eq!(loaded.warnings, Vec::<String>::new());
        let c = loaded.config;
        assert_eq!(c.runners.len(), options.runners);
        assert_eq!(c.settings.check_interval, options.check_interval);
        assert_eq!(c.state_file, Some(dir.path().join("state.json")));
        assert_eq!(c.settings.keep_finished_resources, options.keep_resources);
        assert_eq!(c.quota_computation.reference_jobs_count, options.quota_jobs);
        for (r, token) in c.runners.iter().zip(w.runner_tokens()) {
            assert_eq!(r.token.expose(), token);
            assert_eq!(r.url, w.coordinator().url());
            let cc = r.clever.as_ref().unwrap_or_else(|| panic!("no clever"));
            assert_eq!(cc.api_url, w.clever().api_url());
            assert_eq!(
                cc.deployment_repo_wait_step,
                options.deployment_repo_wait_step
            );
            assert_eq!(
                cc.extra_env
                    .get("CC_ENABLE_HEPTAPOD_RUNNER")
                    .map(String::as_str),
                Some("true")
            );
            match &cc.tenancy {
                heptapod_paas_runner::config::Tenancy::Multi {
                    attributes_token, ..
                } => {
                    assert!(options.multi_tenant);
                    assert_eq!(attributes_token.expose(), w.admin_token());
                }
                heptapod_paas_runner::config::Tenancy::Single { orga_id, .. } => {
                    assert!(!options.multi_tenant);
                    assert_eq!(Some(orga_id), w.tenants().first().map(|t| &t.orga_id));
                }
            }
            let watch = r
                .settings
                .trace_watch
                .as_ref()
                .unwrap_or_else(|| panic!("no watch"));
            assert_eq!(watch.timeout, options.trace_watch_timeout);
            assert_eq!(
                r.main_image.as_deref(),
                Some(paas_sim::clever::config::DEFAULT_MAIN_IMAGE)
            );
        }
        // the unique names (first 8 characters of the tokens) differ
        let mut names: Vec<&str> = c.runners.iter().map(|r| r.unique_name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), options.runners);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text.contains("[runners.docker]"), "{text}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let too_many = RunnerConfigOptions {
        runners: 3,
        ..RunnerConfigOptions::default()
    };
    let err = w.write_runner_config(dir.path(), too_many).err();
    assert!(err.is_some_and(|e| e.to_string().contains("runners = 3")));
    let bad_flavor = RunnerConfigOptions {
        quota_flavor: "XXL".to_owned(),
        ..RunnerConfigOptions::default()
    };
    let err = w.write_runner_config(dir.path(), bad_flavor).err();
    assert!(err.is_some_and(|e| e.to_string().contains("XXL")));
    w.shutdown();
}
