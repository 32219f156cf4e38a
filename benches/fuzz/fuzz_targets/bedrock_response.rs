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
        let answer = parse_answer("bedrock", status, &headers, &body, &SECRETS);
        sre_fuzz::check_answer(status, answer, &SECRETS, "bedrock answer");
    }
});
