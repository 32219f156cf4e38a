//! Fuzz target: the redactor (`sre_core::Redactor`), on text and on JSON values. Beyond "no
//! panic": redacting twice changes nothing more (idempotent), and no built-in rule matches the
//! redacted text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_fuzz::redactor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let r = redactor();
    let once = r.redact(text);
    let twice = r.redact(&once);
    assert_eq!(once, twice, "redacting twice changed the text again");
    let left = r.matching_rules(&once);
    assert!(
        left.is_empty(),
        "rules {left:?} still match the redacted text {once:?}"
    );
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let once = r.redact_value(&value);
        assert_eq!(
            once,
            r.redact_value(&once),
            "redact_value is not idempotent"
        );
    }
});
