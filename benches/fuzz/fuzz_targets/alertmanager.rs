//! Fuzz target: the Alertmanager webhook payload parser (`serve::alertmanager::parse`, what
//! `POST /api/v1/alerts` reads) and the mapping of each alert to an incident. Beyond "no panic":
//! an error never quotes a secret-looking token of the input whole, and a parsed webhook
//! re-serializes to JSON that parses to the same webhook.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_tools::serve::alertmanager;

fuzz_target!(|data: &[u8]| {
    match alertmanager::parse(data) {
        Ok(webhook) => {
            for alert in &webhook.alerts {
                let _ = alertmanager::map_alert(alert);
            }
            let json = serde_json::to_vec(&webhook).expect("a parsed webhook serializes");
            let again = alertmanager::parse(&json)
                .unwrap_or_else(|e| panic!("a re-serialized webhook does not parse: {e}"));
            assert_eq!(webhook, again, "a re-serialized webhook parses differently");
        }
        Err(e) => {
            let text = String::from_utf8_lossy(data);
            sre_fuzz::assert_no_secret_echo(&text, &e.to_string(), "alertmanager webhook");
        }
    }
});
