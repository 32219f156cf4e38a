//! Fuzz target: the simulator's scenario loader (`sim::Scenario::from_yaml`: size and YAML
//! budget checks, the typed parse, validation). Beyond "no panic" (and, by `run.sh`'s limits, no
//! blow-up in time or memory): an error never quotes a secret-looking token of the input whole,
//! and a loaded scenario re-serialized to YAML loads to the same scenario.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_tools::sim::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::from_yaml(yaml, "fuzz") {
        Ok(scenario) => {
            let text = serde_yaml::to_string(&scenario).expect("a loaded scenario serializes");
            let again = Scenario::from_yaml(&text, "fuzz (re-serialized)")
                .unwrap_or_else(|e| panic!("a re-serialized scenario does not load: {e}\n{text}"));
            sre_fuzz::assert_same(&scenario, &again, "scenario");
        }
        Err(e) => sre_fuzz::assert_no_secret_echo(yaml, &e.to_string(), "scenario"),
    }
});
