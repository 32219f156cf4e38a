//! Secrets by reference on the command line: `--api-key file:…` reaches the provider (and only
//! the provider), and a bad or unresolvable reference stops the command with an error that names
//! the flag and the reference — never the value, never a panic.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_sre-agent");
const KEY: &str = "sk-file-ref-0123456789abcdefSECRET";

fn temp(name: &str, content: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("sre-cli-secret-refs-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("VAULT_ADDR");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback OpenAI-compatible endpoint answering one chat completion; sends back the
/// `Authorization` header it received.
fn one_completion_server() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (mut auth, mut length) = (String::new(), 0_usize);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            if name.eq_ignore_ascii_case("authorization") {
                value.trim().clone_into(&mut auth);
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        tx.send(auth).unwrap();
        let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Nothing to fix."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}"#;
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
    });
    (url, rx)
}

#[test]
fn a_key_from_a_file_reference_reaches_the_provider_and_is_never_printed() {
    let file = temp("key", &format!("{KEY}\n"));
    let (url, auth) = one_completion_server();
    let key_ref = format!("file:{}", file.display());
    let out = run(
        &[
            "demo",
            "--scenario",
            "healthy",
            "--provider",
            "openai",
            "--model",
            "gpt-4o-mini",
            "--api-key",
            &key_ref,
            "--approve",
            "deny",
        ],
        &[("OPENAI_BASE_URL", &url)],
    );
    let seen = auth
        .recv_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    assert_eq!(seen, format!("Bearer {KEY}"));
    let all = text(&out);
    assert!(!all.contains(KEY), "the key was printed: {all}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn unresolvable_references_name_the_flag_and_the_reference() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "demo",
                "--provider",
                "openai",
                "--api-key",
                "vault:secret/data/sre#openai",
            ],
            "no source for scheme \"vault\"",
        ),
        (
            &[
                "demo",
                "--provider",
                "openai",
                "--api-key",
                "OPENAI_KEY_VALUE",
            ],
            "no scheme",
        ),
        (
            &[
                "serve",
                "--namespace",
                "shop",
                "--api-token",
                "env:SRE_TEST_NO_SUCH_VARIABLE",
            ],
            "--api-token: secret env:SRE_TEST_NO_SUCH_VARIABLE not found",
        ),
        (
            &[
                "serve",
                "--namespace",
                "shop",
                "--api-token",
                "aws-sm:prod/sre#api",
            ],
            "no source for scheme \"aws-sm\"",
        ),
    ];
    for (args, needle) in cases {
        let out = run(args, &[]);
        let all = text(&out);
        assert!(!out.status.success(), "{args:?}: {all}");
        assert!(all.contains(needle), "{args:?}: {all}");
        assert!(!all.contains("panicked"), "{args:?}: {all}");
        // A value passed where a reference goes is never echoed back.
        assert!(!all.contains("OPENAI_KEY_VALUE"), "{args:?}: {all}");
    }
}

#[test]
fn a_malformed_token_file_stops_serve_naming_the_problem_not_the_value() {
    let file = temp("short-token", "short-secret\n");
    let reference = format!("file:{}", file.display());
    let out = run(
        &["serve", "--namespace", "shop", "--api-token", &reference],
        &[],
    );
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("--api-token") && all.contains("is 12 bytes long; use at least 16"),
        "{all}"
    );
    assert!(!all.contains("short-secret"), "{all}");
    let _ = std::fs::remove_file(file);
}
