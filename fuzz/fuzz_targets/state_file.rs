//! The state-file loader (`Snapshot::from_json`) and its corruption report.
//! Checked: no panic; a snapshot that loads writes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paas_actors::state::{describe_corruption, Snapshot};

fuzz_target!(|data: &[u8]| {
    match Snapshot::from_json(data) {
        Ok(snapshot) => {
            let bytes = snapshot.to_json().expect("a snapshot serialises");
            let back = Snapshot::from_json(&bytes).expect("its own output loads");
            assert_eq!(back, snapshot);
        }
        Err(e) => {
            let _ = describe_corruption(data, &e);
        }
    }
});
