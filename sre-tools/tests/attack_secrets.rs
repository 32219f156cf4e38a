//! `serve`'s own secrets, attacked: a token that was rotated away (because it leaked) must stop
//! opening the approvals API at once, as it did before secrets came by reference.
//!
//! The test failed on the code it was written against (commit 3d330db).

#![cfg(feature = "serve")]

use sre_tools::serve::api::ApiToken;
use sre_tools::serve::secret::{API_TOKEN, ServiceSecret};

const LEAKED: &str = "leaked-api-token-0123456789abcdef";
const ROTATED: &str = "rotated-api-token-0123456789abcdef";

/// `serve --api-token file:/var/run/secrets/…` builds its token exactly so
/// (`serve_cmd::secret`: the process registry's handle, wrapped in a `ServiceSecret`). The
/// `file:` source says its value is good for 30 s and the handle keeps it 80 % of that, so after
/// the operator rotates a leaked token the leaked one keeps opening the approvals API for up to
/// 24 s (and a `vault:` / `aws-sm:` token for up to 5 min, the default TTL). Before this commit
/// `--api-token-file` refused it at the next request (`ApiToken` still documents that).
#[tokio::test]
async fn a_rotated_out_api_token_is_refused_at_the_next_request() {
    let dir = std::env::temp_dir().join(format!("sre-attack-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("api-token");
    std::fs::write(&path, format!("{LEAKED}\n")).unwrap();

    let secrets = sre_llm::secrets::standard_sources(&|_| None, None).unwrap();
    // As serve builds it from `--api-token file:…`.
    let reference = format!("file:{}", path.display());
    let token =
        ApiToken::new(ServiceSecret::by_reference(&API_TOKEN, &secrets, &reference).unwrap());
    token.check().await.unwrap();
    assert!(token.matches(LEAKED).await);

    // The operator rotates the Secret (kubelet swaps the file behind the path).
    let next = dir.join("api-token.next");
    std::fs::write(&next, format!("{ROTATED}\n")).unwrap();
    std::fs::rename(&next, &path).unwrap();

    let leaked_still_works = token.matches(LEAKED).await;
    let rotated_works = token.matches(ROTATED).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !leaked_still_works,
        "the rotated-away (leaked) token still opens the approvals API"
    );
    assert!(rotated_works, "the new token is refused");
}
