//! The Clever Cloud response parsers (`CleverApi::parse` into the wire
//! types, their accessors, the flavor catalog, the Docker version pick,
//! `parse_error_body`). The first byte chooses the type. Checked: no panic.
#![no_main]

use heptapod_paas_runner::executors::clever::api::{
    parse_error_body, Application, CleverApi, InstanceType, WireFlavor,
};
use heptapod_paas_runner::executors::clever::flavors::{pick_docker_version, FlavorCatalog};
use libfuzzer_sys::fuzz_target;

fn app(a: &Application) {
    let _ = (a.http_url(), a.repo_state(), a.max_flavor_mem_mib());
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let _ = parse_error_body(body);
    match kind % 4 {
        0 => {
            if let Ok(types) = CleverApi::parse::<Vec<InstanceType>>("fuzz", body, true) {
                let _ = pick_docker_version(&types);
            }
        }
        1 => {
            if let Ok(list) = CleverApi::parse::<Vec<WireFlavor>>("fuzz", body, true) {
                let _: Vec<_> = list.iter().map(WireFlavor::mem_mib).collect();
                let catalog = FlavorCatalog::from_wire(&list, "heptapod-runner-");
                let _ = catalog.largest();
                for f in catalog.flavors() {
                    let _ = catalog.get(&f.user_name);
                    let _ = f.weight();
                }
            }
        }
        2 => {
            if let Ok(a) = CleverApi::parse::<Application>("fuzz", body, true) {
                app(&a);
            }
        }
        _ => {
            if let Ok(list) = CleverApi::parse::<Vec<Application>>("fuzz", body, true) {
                list.iter().for_each(app);
            }
        }
    }
});
