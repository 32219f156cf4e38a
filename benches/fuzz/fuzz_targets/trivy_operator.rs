//! Fuzz target: the Trivy Operator `VulnerabilityReport` reader. The input is what the API
//! server could list (a `VulnerabilityReportList`, or one object), decoded as kube decodes a
//! list of `DynamicObject`s, each read by `operator::read_report` (the per-object step of
//! `workload_reports`) and rendered for the model and the brain. Beyond "no panic": each
//! resolved report survives a serialize/deserialize round trip.
#![no_main]

use kube::api::{DynamicObject, ObjectList};
use libfuzzer_sys::fuzz_target;
use sre_tools::trivy::operator::{self, WorkloadReport};

fuzz_target!(|data: &[u8]| {
    let objects = match serde_json::from_slice::<ObjectList<DynamicObject>>(data) {
        Ok(list) => list.items,
        Err(_) => match serde_json::from_slice::<DynamicObject>(data) {
            Ok(one) => vec![one],
            Err(_) => return,
        },
    };
    let reports: Vec<WorkloadReport> = objects
        .iter()
        .map(|o| operator::read_report(o, "fuzz"))
        .collect();
    for w in &reports {
        let json = serde_json::to_value(w).expect("a workload report serializes");
        let again: WorkloadReport = serde_json::from_value(json)
            .unwrap_or_else(|e| panic!("a serialized workload report does not parse: {e}"));
        sre_fuzz::assert_same(w, &again, "operator report");
    }
    let _ = operator::render(&reports, 5);
    let _ = operator::data(&reports);
});
