//! The `env:` and `file:` secret sources: values, the `#key` of a JSON object, every error kind,
//! and that no error ever shows the value.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

#[path = "secrets_support/hidden.rs"]
mod hidden;
#[path = "secrets_support/temp.rs"]
mod temp;

use std::sync::Arc;
use std::time::Duration;

use hidden::assert_hidden;
use sre_core::secret::{SecretError, SecretRef, SecretSource, Secrets};
use sre_llm::secrets::{EnvSource, FileSource, MAX_FILE_BYTES, standard_sources};
use temp::TempDir;

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn fake_env() -> EnvSource {
    EnvSource::with_lookup(|name| match name {
        "GROQ_API_KEY" => Some("gsk_env_value_1".to_owned()),
        "EMPTY" => Some(String::new()),
        "KEYS" => Some(r#"{"groq": "gsk_env_json_2", "slack": "xoxb-env-3"}"#.to_owned()),
        _ => None,
    })
}

#[tokio::test]
async fn env_gives_the_variable_and_a_key_of_its_json() {
    let env = fake_env();
    let got = env.fetch(&r("env:GROQ_API_KEY")).await.unwrap();
    assert_eq!(got.value.expose(), "gsk_env_value_1");
    assert_eq!(got.valid_for, None);
    let got = env.fetch(&r("env:KEYS#slack")).await.unwrap();
    assert_eq!(got.value.expose(), "xoxb-env-3");
}

#[tokio::test]
async fn env_errors_name_the_variable_and_never_the_value() {
    let env = fake_env();
    let err = env.fetch(&r("env:MISSING_VAR")).await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "secret env:MISSING_VAR not found: environment variable MISSING_VAR is not set"
    );
    let err = env.fetch(&r("env:EMPTY")).await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("EMPTY is set but empty"), "{err}");

    let err = env.fetch(&r("env:KEYS#openai")).await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(r#"has no key "openai" (its keys: "groq", "slack")"#),
        "{err}"
    );
    assert_hidden(&err, &["gsk_env_json_2", "xoxb-env-3"]);

    // A key asked of a value that is not JSON: refused without quoting it.
    let err = env.fetch(&r("env:GROQ_API_KEY#groq")).await.unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("is not JSON"), "{err}");
    assert_hidden(&err, &["gsk_env_value_1"]);

    let err = env.fetch(&r("env:A=B")).await.unwrap_err();
    assert!(matches!(err, SecretError::BadReference { .. }), "{err}");
}

#[tokio::test]
async fn env_reads_the_process_environment_by_default() {
    // Read-only: the test does not change the process environment.
    let env = EnvSource::new();
    let err = env
        .fetch(&r("env:SRE_LLM_SECRETS_TEST_NEVER_SET_9F2C"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        env.fetch(&r("env:PATH")).await.unwrap().value.expose(),
        path
    );
}

#[tokio::test]
async fn a_file_is_read_with_one_trailing_newline_trimmed_and_a_short_lifetime() {
    let dir = TempDir::new();
    let files = FileSource::new();
    for (content, expected) in [
        ("gsk_file_value\n", "gsk_file_value"),
        ("gsk_file_value\r\n", "gsk_file_value"),
        ("gsk_file_value", "gsk_file_value"),
        ("line1\nline2\n\n", "line1\nline2\n"),
    ] {
        let path = dir.write("key", content);
        let got = files
            .fetch(&r(&format!("file:{}", path.display())))
            .await
            .unwrap();
        assert_eq!(got.value.expose(), expected, "{content:?}");
        assert_eq!(got.valid_for, Some(Duration::from_secs(30)));
    }
    let got = FileSource::new()
        .refresh_after(Duration::from_secs(5))
        .fetch(&r(&format!("file:{}", dir.path().join("key").display())))
        .await
        .unwrap();
    assert_eq!(got.valid_for, Some(Duration::from_secs(5)));
}

#[tokio::test]
async fn a_rotated_file_is_picked_up_by_the_next_fetch() {
    let dir = TempDir::new();
    let path = dir.write("token", "first-token-value\n");
    let secrets = Secrets::new().with(Arc::new(FileSource::new()));
    let handle = secrets.handle(&format!("file:{}", path.display())).unwrap();
    assert_eq!(handle.get().await.unwrap().expose(), "first-token-value");
    // Kubernetes swaps the mounted Secret; a 401 makes the user invalidate the handle.
    dir.write("token", "second-token-value\n");
    handle.invalidate();
    assert_eq!(handle.get().await.unwrap().expose(), "second-token-value");
}

#[tokio::test]
async fn a_file_may_hold_a_json_object_and_a_key_picks_from_it() {
    let dir = TempDir::new();
    let path = dir.write(
        "keys.json",
        "{\"groq\": \"gsk_file_json\", \"azure\": \"az_file_json\"}\n",
    );
    let files = FileSource::new();
    let got = files
        .fetch(&r(&format!("file:{}#azure", path.display())))
        .await
        .unwrap();
    assert_eq!(got.value.expose(), "az_file_json");
    let err = files
        .fetch(&r(&format!("file:{}#bedrock", path.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(r#""azure", "groq""#), "{err}");
    assert_hidden(&err, &["gsk_file_json", "az_file_json"]);
}

#[tokio::test]
async fn file_errors_have_their_kinds_and_never_show_the_content() {
    let dir = TempDir::new();
    let files = FileSource::new();

    let err = files
        .fetch(&r("file:var/run/secrets/key"))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::BadReference { .. }), "{err}");
    assert!(err.to_string().contains("relative"), "{err}");

    let missing = dir.path().join("nope");
    let err = files
        .fetch(&r(&format!("file:{}", missing.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("no file {}", missing.display())),
        "{err}"
    );

    let err = files
        .fetch(&r(&format!("file:{}", dir.path().display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("is a directory"), "{err}");

    let big = "gsk_big_".repeat(usize::try_from(MAX_FILE_BYTES).unwrap() / 8 + 1);
    let path = dir.write("big", &big);
    let err = files
        .fetch(&r(&format!("file:{}", path.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    assert_hidden(&err, &["gsk_big_"]);

    // Exactly the limit is fine.
    let path = dir.write(
        "limit",
        "k".repeat(usize::try_from(MAX_FILE_BYTES).unwrap()),
    );
    files
        .fetch(&r(&format!("file:{}", path.display())))
        .await
        .unwrap();

    let path = dir.write("binary", b"gsk_bin\xff\xfe");
    let err = files
        .fetch(&r(&format!("file:{}", path.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    assert_hidden(&err, &["gsk_bin"]);

    let path = dir.write("plain", "gsk_plain_file\n");
    let err = files
        .fetch(&r(&format!("file:{}#groq", path.display())))
        .await
        .unwrap_err();
    assert!(matches!(err, SecretError::Invalid { .. }), "{err}");
    assert_hidden(&err, &["gsk_plain_file"]);
}

#[test]
fn the_standard_sources_without_vault_or_aws_are_env_and_file() {
    let secrets = standard_sources(&|_| None, None).unwrap();
    assert_eq!(secrets.schemes().collect::<Vec<_>>(), ["env", "file"]);
    let err = secrets.handle("vault:secret/data/sre#groq").unwrap_err();
    assert!(matches!(err, SecretError::UnknownScheme { .. }), "{err}");
}
