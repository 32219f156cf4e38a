//! The secret references every flag that takes a secret accepts (`--api-key`, `--api-token`,
//! `--slack-bot-token`, …): one registry of sources for the whole process, built from the
//! environment the platform gives the pod.

use sre_core::secret::Secrets;

use crate::Failure;

/// `env:` and `file:` always; `vault:` when `VAULT_ADDR` is set; `aws-sm:` when an AWS region is
/// known (`AWS_REGION` or `AWS_DEFAULT_REGION`), with credentials from the standard AWS chain
/// (environment, profile, IRSA web identity, EKS Pod Identity, ECS, `IMDSv2`). Nothing is fetched
/// here: each secret is fetched when first used.
pub(crate) fn registry() -> Result<Secrets, Failure> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let aws = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .map(|region| {
            let chain = sre_llm::aws::credential_chain(Some(&region), &env).shared();
            (chain, region)
        });
    sre_llm::secrets::standard_sources(&env, aws)
        .map_err(|e| Failure(format!("secret sources: {e}")))
}
