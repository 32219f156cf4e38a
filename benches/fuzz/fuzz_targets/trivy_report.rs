//! Fuzz target: the Trivy CLI JSON report parser (`Report::from_json`, what `trivy_scan_image`
//! and `sre-agent scan --report` read) and the summary built from it. Beyond "no panic": an
//! error never quotes a secret-looking token of the input whole, and a parsed report
//! re-serializes to JSON that parses to the same report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_tools::trivy::report::Report;
use sre_tools::trivy::summary::Summary;

fuzz_target!(|data: &[u8]| {
    match Report::from_json(data) {
        Ok(report) => {
            let _ = Summary::of(&report).render();
            let json = serde_json::to_vec(&report).expect("a parsed report serializes");
            let again = Report::from_json(&json)
                .unwrap_or_else(|e| panic!("a re-serialized report does not parse: {e}"));
            sre_fuzz::assert_same(&report, &again, "trivy report");
        }
        Err(e) => {
            let text = String::from_utf8_lossy(data);
            sre_fuzz::assert_no_secret_echo(&text, &e.to_string(), "trivy report");
        }
    }
});
