//! Fuzz target: the Teams (Bot Framework) messaging endpoint's activity reader
//! (`serve::teams::parse_activity`: the activity JSON, the token's `serviceurl` and endorsement
//! claims checked against it, an `adaptiveCard/action` invoke's verb, approval id and clicker).
//! The bearer token check before it is not fuzzed here (jsonwebtoken does it). Each input is read
//! without claims and with both claims. Beyond "no panic": with claims, an accepted click comes
//! from an activity whose `serviceUrl` and `channelId` match them; an accepted approval id is
//! plausible; an error never quotes a secret-looking token of the input whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_tools::serve::teams::parse_activity;

const SERVICE_URL: &str = "https://service.example/teams/";

fuzz_target!(|data: &[u8]| {
    let endorsed = vec!["msteams".to_owned()];
    for claims in [false, true] {
        let (url, endorsements) = if claims {
            (Some(SERVICE_URL), Some(endorsed.as_slice()))
        } else {
            (None, None)
        };
        match parse_activity(data, url, endorsements) {
            Ok(Some(click)) => {
                assert!(
                    !click.approval.is_empty()
                        && click
                            .approval
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)),
                    "an accepted click with approval id {:?}",
                    click.approval
                );
                if claims {
                    let activity: serde_json::Value =
                        serde_json::from_slice(data).expect("an accepted activity is JSON");
                    let served = activity["serviceUrl"].as_str().unwrap_or("");
                    assert_eq!(
                        served.trim_end_matches('/'),
                        SERVICE_URL.trim_end_matches('/'),
                        "a click accepted from another serviceUrl"
                    );
                    let channel = activity["channelId"].as_str();
                    assert!(
                        channel.is_none_or(|c| c == "msteams"),
                        "a click accepted from a channel the key is not endorsed for: {channel:?}"
                    );
                }
            }
            Ok(None) => {}
            Err((_, message)) => {
                let text = String::from_utf8_lossy(data);
                sre_fuzz::assert_no_secret_echo(&text, &message, "teams activity");
            }
        }
    }
});
