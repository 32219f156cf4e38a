//! Fuzz target: the OpenAI-compatible chat-completions answer parser shared by Groq, OpenAI,
//! Azure OpenAI, Ollama and vLLM (`openai_compat::parse_answer`: a 2xx body, or an error body
//! with its status and `Retry-After`). Each input is read as a 200 answer and as one error
//! status. Beyond "no panic": no error quotes the API key the request carried, even when the
//! server echoes it, and the tool calls
//! of a parsed response have unique, non-blank ids (results are paired with calls by id).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sre_llm::openai_compat::parse_answer;

/// A Groq-shaped key and an Azure-shaped key, as the provider would hold them.
const SECRETS: [&str; 2] = [
    "gsk_Zq8vT3mXw9LkP2rN7yBc4HdJfGs6Ua1Ee5Ri0Oo3Mm8Nn2Bb7Vv4Cc9Xx",
    "8f14e45fceea167a5a36dedd4bea2543",
];

fuzz_target!(|data: &[u8]| {
    let (headers, body, status) = sre_fuzz::provider_answer(data, "retry-after");
    for status in [200, status] {
        let answer = parse_answer("groq", status, &headers, &body, &SECRETS);
        sre_fuzz::check_answer(status, answer, &SECRETS, "openai answer");
    }
});
