//! Fuzz target: the Bedrock Converse answer parser (`bedrock::parse_answer`: a 2xx Converse
//! body, or an error body with its status and `x-amzn-ErrorType`). An input may start with a
//! line `x-amzn-errortype: <value>`. Each input is read as a 200 answer and as one error status.
//! Beyond "no panic": no error quotes the AWS secret key or session token, even when the server
//! echoes them, and the tool calls of a parsed response have unique, non-blank ids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_llm::bedrock::parse_answer;

/// The secret access key and session token the request was signed with.
const SECRETS: [&str; 2] = [
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDfuzzSESSIONTOKEN",
];

fuzz_target!(|data: &[u8]| {
    let (headers, body, status) = sre_fuzz::provider_answer(data, "x-amzn-errortype");
    for status in [200, status] {
        match parse_answer("bedrock", status, &headers, &body, &SECRETS) {
            Ok(response) => {
                assert!(
                    (200..300).contains(&status),
                    "an error status parsed as a response"
                );
                let calls = &response.message.tool_calls;
                let ids: std::collections::HashSet<&str> =
                    calls.iter().map(|c| c.id.as_str()).collect();
                assert_eq!(ids.len(), calls.len(), "tool call ids repeat: {calls:?}");
                assert!(
                    calls.iter().all(|c| !c.id.trim().is_empty()),
                    "a tool call without an id: {calls:?}"
                );
            }
            Err(e) => sre_fuzz::assert_no_secret(&e.to_string(), &SECRETS, "bedrock answer"),
        }
    }
});
